"""The imagehash family's quality gate (issue 16): flat and smooth images are not matched on.

pHash, dHash, aHash and wHash of an image with little detail at their scale (a flat background, a
smooth gradient) are set by noise and by what such images share, so unrelated ones matched. Their
hashes now carry a detail quality (0-100) and, as PDQ's, are not matched on below 50; the bits stay
imagehash's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from fixtures import scene
from matcher.algorithms import registry
from matcher.algorithms.imagehash_family import MIN_QUALITY, detail_quality
from matcher.errors import IndexStoreError
from matcher.hashes import Hash
from matcher.index import KnownIndex
from matcher.index.manifest import body_digest
from matcher.known import KnownRecord
from tests.conftest import run_matcher
from tests.test_vics_output import text_card

FAMILY = ("phash", "dhash", "ahash", "whash")
FUNCTIONS = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
}


def flat(seed: int) -> Image.Image:
    """An almost flat colour with a little grain (the generator's ``lowtexture``)."""
    return scene(seed, 320, 240, "lowtexture")


@pytest.mark.parametrize("name", FAMILY)
def test_the_gate_is_declared_as_pdq_declares_it(name: str) -> None:
    algorithm = registry.get(name)
    assert algorithm.has_quality and algorithm.quality_field == f"{name}_quality"
    assert algorithm.min_quality == MIN_QUALITY == 50


@pytest.mark.parametrize("name", FAMILY)
def test_bits_stay_imagehash_and_the_hash_carries_the_quality(name: str) -> None:
    algorithm = registry.get(name)
    for kind in ("landscape", "text", "gradient", "lowtexture"):
        image = scene(7, 320, 240, kind)
        value = algorithm.hash_image(image)
        assert str(value) == str(FUNCTIONS[name](image))
        assert value.quality == detail_quality(image)


def test_detail_quality_separates_low_detail_images_from_detailed_ones() -> None:
    assert detail_quality(Image.new("RGB", (300, 200), (120, 130, 140))) == 0
    for seed in range(3):
        assert detail_quality(flat(seed)) < 10
        assert detail_quality(scene(seed, 320, 240, "gradient")) < MIN_QUALITY
        assert detail_quality(text_card(seed)) < MIN_QUALITY  # its detail is finer than the hashes see
        for kind in ("landscape", "plasma", "shapes"):
            assert detail_quality(scene(seed, 320, 240, kind)) >= 75, kind
    # a resized copy keeps its score (the score counts coefficients clear of the noise such edits make)
    image = scene(5, 400, 300, "landscape")
    assert abs(detail_quality(image) - detail_quality(image.resize((200, 150)))) <= 5


def test_text_cards_of_one_layout_are_not_matched_on() -> None:
    # other words in the same place: the family's hashes are within the match distance (dHash even
    # equal for some), which is why their quality is below the gate; PDQ tells them apart
    for name in FAMILY:
        algorithm = registry.get(name)
        hashes = [algorithm.hash_image(text_card(seed)) for seed in (2, 10)]
        assert all(value.quality is not None and value.quality < algorithm.min_quality for value in hashes)
    phash, pdq = registry.get("phash"), registry.get("pdq")
    assert phash.hash_image(text_card(2)) - phash.hash_image(text_card(10)) <= phash.default_max_distance
    assert pdq.hash_image(text_card(2)) - pdq.hash_image(text_card(10)) > pdq.default_max_distance


def test_unrelated_flat_images_are_not_matched(tmp_path: Path) -> None:
    known, evidence = tmp_path / "known", tmp_path / "evidence"
    known.mkdir()
    evidence.mkdir()
    flat(1).save(known / "known.png")
    flat(2).save(evidence / "other.png")
    scene(3, 320, 240, "landscape").save(known / "photo.png")
    scene(3, 320, 240, "landscape").resize((240, 180)).save(evidence / "photo-small.png")
    # without a gate these two different flat images match: their pHash is within the distance
    assert imagehash.phash(flat(1)) - imagehash.phash(flat(2)) <= registry.get("phash").default_max_distance

    index = tmp_path / "index"
    assert run_matcher("index", "create", index, "-a", ",".join(FAMILY)).returncode == 0
    assert run_matcher("index", "add", index, known, "--list", "known", "-q").returncode == 0
    report = tmp_path / "report.jsonl"
    result = run_matcher("scan", evidence, "--index", index, "--output", report, "-q")
    assert result.returncode == 1, result.stderr.decode()  # the resized photo matched
    records = {Path(r["path"]).name: r for r in map(json.loads, report.read_text().splitlines())}
    other = records["other.png"]
    assert other["status"] == "no_match" and other["matches"] == []
    for name in FAMILY:
        assert other[f"{name}_quality"] < 50
        assert f"{name} not matched: quality {other[f'{name}_quality']} below 50" in other["notes"]
    photo = records["photo-small.png"]
    assert photo["status"] == "match" and photo["phash_quality"] >= 50
    assert photo["matches"][0]["algorithm"] in FAMILY


def test_an_index_built_before_the_family_had_a_quality_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "old"
    photo = registry.get("phash").hash_image(scene(3, 320, 240, "landscape"))
    with KnownIndex.create(path, ["pdq", "phash"]) as index:  # as older lists: a hash without quality
        index.add([KnownRecord(hashes={"phash": Hash("phash", photo.bits)}, md5="b" * 32)], "old")
    document = json.loads((path / "manifest.json").read_text())
    document["algorithms"]["phash"].update(has_quality=False, min_quality=None)  # as matcher wrote it before
    document.pop("manifest_sha256")
    document["manifest_sha256"] = body_digest(document)
    (path / "manifest.json").write_text(json.dumps(document))

    with KnownIndex.open(path) as index:
        (result,) = index.search([photo])
        assert [m.distance for m in result.matches] == [0]
    document = json.loads((path / "manifest.json").read_text())
    document["algorithms"]["phash"].update(min_quality=40)  # any other difference still asks for a rebuild
    document.pop("manifest_sha256")
    document["manifest_sha256"] = body_digest(document)
    (path / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(IndexStoreError, match="rebuild the index"):
        KnownIndex.open(path)


def test_hash_lists_without_a_family_quality_still_read(tmp_path: Path) -> None:
    value = registry.get("phash").hash_image(scene(3, 320, 240, "landscape"))
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({"md5": "a" * 32, "phash": str(value)}) + "\n")
    from matcher.formats.registry import read_records

    (record,) = read_records(old, "matcher-jsonl")
    assert record.hashes["phash"] == value and record.hashes["phash"].quality is None
    assert np.array_equal(np.frombuffer(record.hashes["phash"].bits, np.uint8), np.frombuffer(value.bits, np.uint8))
