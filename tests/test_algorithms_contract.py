"""The contract every registered algorithm passes: its facts are present and consistent, its hashes
round-trip, are deterministic and in range, and its variant hashes undo real rotations and flips.

A new algorithm is registered and this file tests it, with no test of its own needed for these.
Also here: the facts are what records, reports and formats use (no algorithm is special-cased by
name there), and the algorithms, the Hash value and the formats import no module that imports them
back.
"""

from __future__ import annotations

import ast
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures import generate as fixtures
from matcher import Hash
from matcher.algorithms import QUALITY_RANGE, Algorithm, Registry, registry
from matcher.formats.registry import read_records, write_records
from matcher.formats.scan_report import SCAN_WRITERS
from matcher.hashing import file_columns
from matcher.known import KnownRecord
from matcher.scan_records import ScanRecord
from matcher.variants import APPLY_TRANSPOSE, INVERSE, UNDO_TRANSPOSE, VARIANT_NAMES, variant_hashes

ROOT = Path(__file__).resolve().parent.parent
ALGORITHMS = [registry.get(name) for name in registry.names()]


@pytest.fixture(params=ALGORITHMS, ids=lambda a: a.name)
def algorithm(request: pytest.FixtureRequest) -> Algorithm:
    return request.param


@pytest.fixture(scope="module")
def known() -> Image.Image:
    """A textured generated picture, not square (so width and height cannot be mixed up)."""
    return fixtures.scene(11, 150, 110, "landscape")


def test_the_built_in_algorithms_are_registered() -> None:
    assert registry.names() == ["phash", "dhash", "ahash", "whash", "pdq"]  # export columns follow it
    assert all(isinstance(a, Algorithm) for a in registry)
    import matcher.algorithms

    assert isinstance(matcher.algorithms.registry, Registry)  # no submodule shadows the instance


def test_facts_are_present_and_consistent(algorithm: Algorithm) -> None:
    assert algorithm.name == algorithm.name.lower().strip() and re.fullmatch(r"[a-z][a-z0-9]*", algorithm.name)
    assert algorithm.display_name and algorithm.display_name.lower() == algorithm.name
    assert algorithm.vics_name and algorithm.vics_name.lower() == algorithm.name
    assert registry.find(algorithm.vics_name) is algorithm and registry.find(algorithm.display_name) is algorithm
    assert algorithm.bit_length > 0 and algorithm.bit_length % 8 == 0
    assert 0 <= algorithm.strong_max_distance <= algorithm.default_max_distance < algorithm.bit_length // 2
    assert 0 <= algorithm.view_max_distance <= algorithm.default_max_distance
    if algorithm.has_quality:
        assert algorithm.quality_field and algorithm.quality_field not in file_columns(ScanRecord(None, "no_match"))
        low, high = QUALITY_RANGE
        assert algorithm.min_quality is None or low <= algorithm.min_quality <= high
    else:
        assert algorithm.quality_field is None and algorithm.min_quality is None
    if algorithm.draft_size is not None:
        assert all(isinstance(side, int) and side >= 64 for side in algorithm.draft_size)


def test_hash_is_deterministic_in_range_and_round_trips(algorithm: Algorithm, known: Image.Image) -> None:
    first = algorithm.hash_image(known)
    again = algorithm.hash_image(fixtures.scene(11, 150, 110, "landscape"))
    assert first == again and first.quality == again.quality
    assert first.algorithm == algorithm.name and first.bit_length == algorithm.bit_length
    assert first - first == 0 and first.distance(again) == 0
    assert registry.hash_from_hex(algorithm.name, str(first)) == first
    assert registry.hash_from_hex(algorithm.name, str(first).upper(), 7).quality == 7
    assert len(str(first)) == algorithm.bit_length // 4
    if algorithm.has_quality:
        low, high = QUALITY_RANGE
        assert first.quality is not None and low <= first.quality <= high
    else:
        assert first.quality is None
    other = algorithm.hash_image(fixtures.scene(12, 150, 110, "shapes"))
    assert other - first > algorithm.strong_max_distance  # a different picture is not a strong match


def test_array_and_image_give_the_same_hash(algorithm: Algorithm, known: Image.Image) -> None:
    pixels = np.asarray(known)
    assert algorithm.hash_array(pixels) == algorithm.hash_image(known)
    grey = known.convert("L")
    assert algorithm.hash_array(np.asarray(grey)) == algorithm.hash_image(grey.convert("RGB"))


def test_variant_hashes_undo_real_rotations_and_flips(algorithm: Algorithm, known: Image.Image) -> None:
    """The evidence is the known picture really rotated or flipped (each variant by its Pillow
    transpose); its variant hash of that name is exactly the known picture's hash."""
    known_hash = algorithm.hash_image(known)
    own = algorithm.variant_hashes(known)
    assert tuple(own) == VARIANT_NAMES and own["orig"] == known_hash
    assert variant_hashes(algorithm, known) == own
    assert variant_hashes(algorithm, known, rotations=False) == {"orig": known_hash}
    for name in VARIANT_NAMES:
        transpose = APPLY_TRANSPOSE[name]
        evidence = known if transpose is None else known.transpose(transpose)
        assert algorithm.variant_hashes(evidence)[name] == known_hash, name
        undo = UNDO_TRANSPOSE[name]
        back = evidence if undo is None else evidence.transpose(undo)
        assert np.array_equal(np.asarray(back), np.asarray(known)), name
        assert INVERSE.get(name, name) in VARIANT_NAMES


def test_registry_refuses_clashing_names() -> None:
    fresh = Registry(registry)
    pdq = registry.get("pdq")
    with pytest.raises(ValueError):
        fresh.register(pdq)
    assert fresh.names() == registry.names() and "pdq" in fresh and "nope" not in fresh
    assert fresh.quality_fields() == ("phash_quality", "dhash_quality", "ahash_quality", "whash_quality", "pdq_quality")


# --------------------------------------------------------------------------------------------------
# Records, reports and formats ask the algorithms.


def test_quality_columns_follow_the_facts() -> None:
    with_quality = [a for a in registry if a.has_quality]
    assert registry.quality_fields() == tuple(a.quality_field for a in with_quality)
    value = Hash("pdq", bytes(32), 77)
    assert registry.quality_columns({"pdq": value})["pdq_quality"] == 77
    assert set(registry.quality_columns({}).values()) == {None}
    row = ScanRecord("a.png", "no_match", hashes={"pdq": value}, pdq_quality=77).to_dict(["pdq"])
    assert row["pdq_quality"] == 77
    back = ScanRecord.from_dict(json.loads(json.dumps(row)), ["pdq"])
    assert back.hashes["pdq"].quality == 77 and back.quality("pdq") == 77 and back.quality("phash") is None
    flat = Hash("phash", bytes(8), 3)
    row = ScanRecord("b.png", "no_match", hashes={"phash": flat}).to_dict(["phash"])
    assert row["phash_quality"] == 3 and row["pdq_quality"] is None
    assert ScanRecord.from_dict(json.loads(json.dumps(row)), ["phash"]).hashes["phash"].quality == 3


def test_vics_names_come_from_the_algorithms(algorithm: Algorithm, known: Image.Image) -> None:
    value = algorithm.hash_image(known)
    out = io.BytesIO()
    write_records([KnownRecord(hashes={algorithm.name: value}, md5="0" * 32)], out, "vics")
    document = json.loads(out.getvalue())
    assert document["value"][0]["AlternativeHashes"] == [{"HashName": algorithm.vics_name, "HashValue": str(value)}]
    for spelling in (algorithm.vics_name, algorithm.display_name, algorithm.name.upper()):
        media = {"MD5": "0" * 32, "AlternativeHashes": [{"HashName": spelling, "HashValue": str(value)}]}
        text = json.dumps({"@odata.context": "x#Media", "value": [media]}).encode()
        (record,) = read_records(io.BytesIO(text), "vics")
        assert record.hashes == {algorithm.name: value}

    scan = ScanRecord(
        "a.png",
        "no_match",
        hashes={algorithm.name: value},
        pdq_quality=value.quality if algorithm.quality_field == "pdq_quality" else None,
    )
    stream = io.StringIO()
    with SCAN_WRITERS["vics"](stream, [algorithm.name]) as writer:
        writer.write(scan)
    (media,) = json.loads(stream.getvalue())["value"][0]["Media"]
    assert media["AlternativeHashes"] == [{"HashName": algorithm.vics_name, "HashValue": str(value)}]
    if algorithm.has_quality:
        assert f"{algorithm.display_name} quality {value.quality}" in media["Comments"]


# --------------------------------------------------------------------------------------------------
# No import circles through the algorithms.


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """Modules of matcher that ``path`` (module ``module``) imports anywhere in its text (also
    inside functions: a lazy import closes a circle as well)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:  # "from p import m" imports module p.m, "from p import name" p
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    # The root package is loaded before any of its modules, so reading an attribute of it
    # (``from .. import __version__``) runs no import; such edges are left out.
    return (found & modules) - {module, "matcher"}


def _graph() -> dict[str, set[str]]:
    paths = {}
    for path in (ROOT / "matcher").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {name: _imports(path, name, set(paths)) for name, path in paths.items()}


@pytest.mark.parametrize(
    "module",
    [
        "matcher.hashes",
        "matcher.algorithms",
        "matcher.algorithms.algorithm_registry",
        "matcher.algorithms.pdq",
        "matcher.algorithms.imagehash_family",
        "matcher.algorithms.base",
        "matcher.algorithms.dihedral",
        "matcher.variants",
        "matcher.known",
        "matcher.formats.vics",
        "matcher.formats.textlists",
        "matcher.formats.exports",
        "matcher.formats.scan_report",
        "matcher.formats.base",
    ],
)
def test_no_module_imports_one_that_imports_it_back(module: str) -> None:
    graph = _graph()
    seen: set[str] = set()
    todo = list(graph[module])
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(graph.get(current, ()))
    assert module not in seen, f"{module} is reachable from its own imports"


def test_hashes_is_a_leaf_and_the_algorithms_do_not_import_their_package() -> None:
    graph = _graph()
    assert graph["matcher.hashes"] <= {"matcher.errors"}
    for name in ("algorithm_registry", "pdq", "imagehash_family", "base", "dihedral"):
        assert "matcher.algorithms" not in graph[f"matcher.algorithms.{name}"], name
    assert graph["matcher.algorithms.dihedral"] == set()
