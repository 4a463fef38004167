"""Fuzzing of every parser that takes outside bytes (property tests; the long campaign is
``python -m benchmarks.fuzz_campaign``, whose targets, seeds and mutators these tests share).

The property, for every input (see :mod:`benchmarks.fuzz_campaign`): the call ends normally or with a
clear :class:`matcher.errors.MatcherError` (or, for ``hash_bytes``, a record with a clear error);
nothing else escapes, no message is the library's "unexpected ..." safety net, no ``MemoryError``,
no input takes more than 5 s, and a refused import leaves the index answering exactly as before.

``MATCHER_FUZZ_PROFILE=ci`` (the default: short, derandomized, the same inputs on every run) or
``long`` (a hundred times the examples, random). Every file in ``tests/fuzz_regressions/`` (a crash
the fuzzers found, named after its target) is replayed by :func:`test_regression`.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from contextlib import redirect_stderr
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.fuzz_campaign import (
    TARGETS,
    Finding,
    _state,
    _template_index,
    check,
    fuzz_inputs_strategy,
    known_open,
    mutate,
    regression_files,
)
from matcher import imaging
from matcher.errors import HashListError, ImageTooLargeError, MatcherError
from matcher.formats.registry import read_records
from matcher.hashing import hash_bytes

PROFILE = os.environ.get("MATCHER_FUZZ_PROFILE", "ci")
if PROFILE not in ("ci", "long"):
    raise RuntimeError(f"MATCHER_FUZZ_PROFILE must be 'ci' or 'long', not {PROFILE!r}")

#: Examples per target in CI (the whole file stays well under a minute on 2 cores).
CI_EXAMPLES = {
    "image": 80,
    "hashlist": 80,
    "vics": 80,
    "nsrl": 40,
    "manifest": 80,
    "shards": 50,
    "index": 50,
    "import": 12,
}
_SCALE = 1 if PROFILE == "ci" else 100


def _settings(target: str) -> settings:
    return settings(
        max_examples=CI_EXAMPLES[target] * _SCALE,
        deadline=None,
        derandomize=PROFILE == "ci",
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


_SEEDS: dict[str, list[bytes]] = {}


def _seeds(target: str) -> list[bytes]:
    if target not in _SEEDS:
        _SEEDS[target] = TARGETS[target].seeds()
    return _SEEDS[target]


def _inputs(target: str) -> st.SearchStrategy[bytes]:
    return st.deferred(lambda: fuzz_inputs_strategy(_seeds(target), st, max_random=2048))


# --------------------------------------------------------------------------------------------------
# The property tests, one per target


@_settings("image")
@given(_inputs("image"))
def test_fuzz_image(data: bytes) -> None:
    check(TARGETS["image"], data, allow_known=True)


@_settings("hashlist")
@given(_inputs("hashlist"))
def test_fuzz_hashlist(data: bytes) -> None:
    check(TARGETS["hashlist"], data, allow_known=True)


@_settings("vics")
@given(_inputs("vics"))
def test_fuzz_vics(data: bytes) -> None:
    check(TARGETS["vics"], data, allow_known=True)


@_settings("nsrl")
@given(_inputs("nsrl"))
def test_fuzz_nsrl(data: bytes) -> None:
    check(TARGETS["nsrl"], data, allow_known=True)


@_settings("manifest")
@given(_inputs("manifest"))
def test_fuzz_manifest(data: bytes) -> None:
    check(TARGETS["manifest"], data, allow_known=True)


@_settings("shards")
@given(_inputs("shards"))
def test_fuzz_shards(data: bytes) -> None:
    check(TARGETS["shards"], data, allow_known=True)


@_settings("index")
@given(_inputs("index"))
def test_fuzz_index(data: bytes) -> None:
    check(TARGETS["index"], data, allow_known=True)


@_settings("import")
@given(_inputs("import"))
def test_fuzz_import(data: bytes) -> None:
    check(TARGETS["import"], data, allow_known=True)


# --------------------------------------------------------------------------------------------------
# Every crash found, kept


@pytest.mark.parametrize("path", regression_files(), ids=lambda p: p.name)
def test_regression(path: Path) -> None:
    """A saved crashing input now gives a clear error (or none), within the bounds.

    An input whose finding is listed in ``KNOWN_OPEN`` (a bug in code outside the parsers, reported to
    its owners) is an expected failure until that code is fixed.
    """
    target = TARGETS[path.name.split("-", 1)[0]]
    try:
        check(target, path.read_bytes())
    except Finding as finding:
        explanation = known_open(target, finding)
        if explanation:
            pytest.xfail(f"known open: {explanation}")
        raise


def test_regressions_are_named_after_targets() -> None:
    folder = Path(__file__).parent / "fuzz_regressions"
    stray = [
        p.name
        for p in folder.iterdir()
        if p.is_file() and p.name.split("-", 1)[0] not in TARGETS and not p.name.startswith(".") and p.name != "README"
    ]
    assert not stray, f"files in tests/fuzz_regressions/ not named <target>-NNNN.ext: {stray}"


# --------------------------------------------------------------------------------------------------
# The harness is not vacuous: seeds go deep, and mutations change them


def test_image_seeds_decode_and_hash() -> None:
    for data in _seeds("image"):
        records = hash_bytes(data, "pdq")
        assert records and all(r.error is None and r.hashes for r in records), records


@pytest.mark.parametrize("target", ["hashlist", "vics", "nsrl"])
def test_list_seeds_give_records(target: str, tmp_path: Path) -> None:
    for number, data in enumerate(_seeds(target)):
        path = tmp_path / f"{number}.{TARGETS[target].extension}"
        path.write_bytes(data)
        assert list(read_records(str(path), strict=True)), f"{target} seed {number} gave no record"


def test_index_and_import_seeds_pass() -> None:
    for name in ("manifest", "shards", "index", "import"):
        for data in _seeds(name):
            check(TARGETS[name], data)


def test_mutations_are_deterministic_and_change_the_input() -> None:
    seeds = _seeds("image")
    ops = [(0, 123, 4), (6, 99, 1234), (10, 5, 6)]
    assert mutate(seeds[2], ops, seeds) == mutate(seeds[2], ops, seeds) != seeds[2]


def test_property_catches_foreign_exceptions() -> None:
    """The harness itself: a ValueError escaping a target is a finding, a MatcherError is not."""
    from benchmarks.fuzz_campaign import Target

    def raises(exc: BaseException) -> Target:
        def run(_data: bytes) -> None:
            from benchmarks.fuzz_campaign import _property

            with _property("test"):
                raise exc

        return Target("t", "", lambda: [], run)

    check(raises(HashListError("x.txt:3: md5 is not hex")), b"")
    with pytest.raises(Finding, match="crash"):
        check(raises(ValueError("bare")), b"")
    with pytest.raises(Finding, match="unclear"):
        check(raises(HashListError("x.txt: unexpected IndexError reading vics hash list")), b"")
    with pytest.raises(Finding, match="memory"):
        check(raises(MemoryError()), b"")


# --------------------------------------------------------------------------------------------------
# Hand-written cases the fuzzers aim at


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_huge_declared_dimensions_are_refused_before_decoding() -> None:
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 0x7FFFFFFF, 0x7FFFFFFF, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )
    with pytest.raises(MatcherError):
        imaging.open_image(png)
    declared = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 5000, 5000, 8, 2, 0, 0, 0))
        + _png_chunk(b"IEND", b"")
    )
    with pytest.raises(ImageTooLargeError):
        imaging.open_image(declared, imaging.DecodeOptions(max_pixels=1_000_000))
    check(TARGETS["image"], png)


def test_strict_refused_import_leaves_the_index_unchanged(tmp_path: Path) -> None:
    import shutil

    from matcher import cli
    from matcher.index import KnownIndex
    from matcher.index.importing import import_sources

    root = tmp_path / "index"
    shutil.copytree(_template_index(), root)
    before = _state(root)
    good = "0" * 64 + "\n"
    bad = tmp_path / "bad.txt"
    bad.write_text(good + "f" * 64 + "\n" + "not a hash at all\n" + "1" * 64 + "\n")
    with KnownIndex.open(root, writable=True) as index, pytest.raises(HashListError, match="bad.txt:3"):
        import_sources(index, [bad], list_name="refused", strict=True)
    assert _state(root) == before
    with redirect_stderr(io.StringIO()) as err:
        assert cli.main(["index", "add", str(root), str(bad), "--strict", "--list", "refused"]) == 2
    assert "bad.txt:3" in err.getvalue()
    assert _state(root) == before
    with redirect_stderr(io.StringIO()):  # not strict: imported, the bad line skipped
        assert cli.main(["index", "add", str(root), str(bad), "--list", "kept", "--quiet"]) == 0
    after = _state(root)
    assert after[1] == before[1] + 1 and after[4]["kept"] == 3


def test_resigned_manifest_with_wrong_field_types_is_refused(tmp_path: Path) -> None:
    """A manifest whose checksum matches but whose fields have the wrong JSON types is refused, not coerced
    (found by the fuzzer: ``"directory": {}`` was read as the directory ``"{}"``, ``"records": "12"`` as 12)."""
    from matcher.errors import IndexStoreError
    from matcher.index.manifest import body_digest, read_manifest

    document = json.loads((_template_index() / "manifest.json").read_text())
    sqlite_entry = document["files"]["records.sqlite"]
    for key, value in [
        ("records", [1]),
        ("files", {"a": 1}),
        ("algorithms", {"pdq": None}),
        ("views", [1]),
        ("generation", "x"),
        ("lists", 3),
        ("directory", {}),
        ("records", "12"),
        ("records", True),
        ("records", -1),
        ("generation", 1.5),
        ("extra", [["a", "b"]]),
        ("lists", {"x": [["a", 1]]}),
        ("created_at", {"a": 1}),
        ("files", {"records.sqlite": {**sqlite_entry, "size": "3"}}),
        ("files", {"records.sqlite": {**sqlite_entry, "sha256": 5}}),
        ("views", {"pdq": [1]}),
    ]:
        changed = dict(document)
        changed.pop("manifest_sha256")
        changed[key] = value
        changed["manifest_sha256"] = body_digest(changed)
        (tmp_path / "manifest.json").write_text(json.dumps(changed))
        with pytest.raises(IndexStoreError):
            read_manifest(tmp_path)


def test_vics_too_deep_or_too_long_numbers_end_the_read_with_a_problem() -> None:
    """Found by fuzzing: a deeply nested value raised RecursionError, an integer of more than 4300 digits
    a bare ValueError, inside the VICS reader (both reached callers as "unexpected ..." errors)."""
    head = b'{"odata.metadata":"x#Media","value":[{"MD5":"' + b"a" * 32 + b'"},'
    for tail, message in [
        (b"[" * 5000 + b"]" * 5000 + b"]}", "nested too deeply"),
        (b'{"MD5":"' + b"b" * 32 + b'","Category":' + b"9" * 5000 + b"}]}", "unreadable JSON value"),
    ]:
        problems: list = []
        records = list(read_records(io.BytesIO(head + tail), "vics", on_problem=problems.append))
        assert [r.md5 for r in records] == ["a" * 32]
        assert len(problems) == 1 and message in problems[0].message and problems[0].line == 1
        with pytest.raises(HashListError, match=message):
            list(read_records(io.BytesIO(head + tail), "vics", strict=True))


def _sqlite(path: Path, *statements: str) -> Path:
    import sqlite3

    connection = sqlite3.connect(path)
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()
    return path


@pytest.mark.parametrize("where", ["", " WHERE x > 1000000000000"])
def test_nsrl_endless_view_is_refused_not_read_forever(tmp_path: Path, where: str) -> None:
    """Found by review for the fuzzing: a FILE view over a recursive WITH gave endless rows (or ran
    forever before its first row); now the read stops with a clear error."""
    view = (
        "CREATE VIEW FILE AS WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
        "SELECT printf('%064x', x) AS sha256, NULL AS sha1, NULL AS md5, 'f' AS file_name, 1 AS file_size "
        "FROM n" + where
    )
    path = _sqlite(tmp_path / "nsrl.db", view)
    with pytest.raises(HashListError, match="crafted view"):
        list(read_records(str(path)))


def test_nsrl_text_that_is_not_utf8(tmp_path: Path) -> None:
    """Found by fuzzing: bytes that are not UTF-8 in the schema raised UnicodeDecodeError; in a row they
    stopped the whole read. Now a damaged schema is a clear error, a bad row one problem."""
    path = _sqlite(
        tmp_path / "nsrl.db",
        "CREATE TABLE FILE (sha256 TEXT, sha1 TEXT, md5 TEXT, file_name TEXT, file_size INTEGER)",
        f"INSERT INTO FILE VALUES ('{'a' * 64}', NULL, NULL, CAST(X'6E616D65FF' AS TEXT), 1)",
        f"INSERT INTO FILE VALUES (CAST(X'FF{'61' * 63}' AS TEXT), NULL, NULL, 'x', 1)",
    )
    problems: list = []
    records = list(read_records(str(path), on_problem=problems.append))
    assert [(r.sha256, r.name) for r in records] == [("a" * 64, "name\ufffd")]
    assert len(problems) == 1 and "sha256 is not hex" in problems[0].message
    damaged = Path(__file__).parent / "fuzz_regressions" / "nsrl-0004.db"
    with pytest.raises(HashListError, match="schema is damaged"):
        list(read_records(str(damaged), "nsrl"))
