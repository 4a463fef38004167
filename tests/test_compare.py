"""matcher.compare: image vs image (with and without rotations), hash vs image, hash vs hash, the
quality rule, bad inputs, and the JSON/table output. Synthetic images only (fixtures), ~200x150."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from fixtures import edit, encode, scene
from matcher.compare import Comparison, compare, comparisons_to_dict, format_table
from matcher.errors import DecodeError, FileReadError, MatcherError, NotAFileError, UsageError
from matcher.hashes import Hash
from matcher.hashing import hash_image

W, H = 200, 150


@pytest.fixture(scope="module")
def known() -> Image.Image:
    return scene(11, W, H, "landscape")


def best(comparisons: list[Comparison], algorithm: str = "pdq") -> Comparison:
    return next(c for c in comparisons if c.algorithm == algorithm)


def test_jpeg_copy_matches_as_orig(known: Image.Image, tmp_path: Path) -> None:
    a = tmp_path / "known.png"
    b = tmp_path / "copy.jpg"
    a.write_bytes(encode(known, "PNG"))
    b.write_bytes(encode(edit(known, "jpeg75"), "JPEG", quality=95))
    result = compare(a, str(b))
    assert len(result) == 8  # one per variant
    top = result[0]
    assert (top.algorithm, top.variant, top.is_match, top.note) == ("pdq", "orig", True, None)
    assert top.distance <= 10 and top.max_distance == 31
    assert [c.distance for c in result] == sorted(c.distance for c in result)


def test_mirror_matches_as_flipy_only_with_rotations(known: Image.Image) -> None:
    mirrored = edit(known, "mirror")
    with_rot = compare(known, mirrored)
    assert best(with_rot).variant == "flipy" and best(with_rot).is_match
    without = compare(known, mirrored, rotations=False)
    assert [c.variant for c in without] == ["orig"]
    assert not without[0].is_match


@pytest.mark.parametrize(("edit_name", "variant"), [("rotate90", "rot90"), ("rotate270", "rot270"), ("flip", "flipx")])
def test_rotations_named_as_evidence_relative_to_known(known: Image.Image, edit_name: str, variant: str) -> None:
    result = compare(known, edit(known, edit_name), ["pdq", "phash"])
    for algorithm in ("pdq", "phash"):
        top = best(result, algorithm)
        assert (top.variant, top.is_match) == (variant, True), (algorithm, top)
    assert [c.algorithm for c in result] == ["pdq"] * 8 + ["phash"] * 8


def test_unrelated_image_does_not_match(known: Image.Image) -> None:
    result = compare(known, scene(12, W, H, "shapes"), "pdq,dhash")
    assert not any(c.is_match for c in result)
    assert best(result).distance > 60


def test_hash_vs_image_both_ways(known: Image.Image) -> None:
    rotated = edit(known, "rotate90")
    known_hash = hash_image(known, "pdq")[0].hashes["pdq"]
    forward = compare(Hash.from_hex("pdq", str(known_hash)), rotated)
    assert (forward[0].variant, forward[0].is_match) == ("rot90", True)
    # The image is the known side now: b (the hash of the rotated copy) is still "rot90" of a.
    rotated_hash = hash_image(rotated, "pdq")[0].hashes["pdq"]
    backward = compare(known, rotated_hash)
    assert (backward[0].variant, backward[0].is_match) == ("rot90", True)
    # Only the hash's algorithm is compared; naming others that leave it out is refused.
    phash = hash_image(known, "phash")[0].hashes["phash"]
    assert {c.algorithm for c in compare(phash, known)} == {"phash"}
    assert compare(phash, known, rotations=False)[0].distance == 0
    with pytest.raises(UsageError, match="phash hash"):
        compare(phash, known, ["pdq"])


def test_hash_vs_hash() -> None:
    a = Hash.from_hex("pdq", "f" * 64)
    b = Hash.from_hex("pdq", "f" * 60 + "0000")
    result = compare(a, b, rotations=True)
    assert result == [Comparison("pdq", "orig", 16, 31, True, None)]
    assert compare(a, b, max_distances={"pdq": 10})[0].is_match is False
    with pytest.raises(UsageError):
        compare(a, Hash.from_hex("phash", "0" * 16))


def test_low_quality_pdq_never_matches() -> None:
    flat = scene(13, W, H, "lowtexture")
    result = compare(flat, flat.copy())
    top = result[0]
    assert top.distance == 0
    assert top.is_match is False
    assert top.note is not None and "quality" in top.note and "below 50" in top.note
    # A hash with a low quality score on one side only is enough.
    low = Hash("pdq", bytes(32), quality=10)
    good = Hash("pdq", bytes(32), quality=90)
    assert compare(good, low)[0].note == "pdq quality of b 10 below 50: not matched"


def test_multi_frame_image_uses_first_frame(known: Image.Image, tmp_path: Path) -> None:
    other = scene(14, W, H, "shapes")
    path = tmp_path / "anim.gif"
    known.save(path, save_all=True, append_images=[other], duration=100)
    first = Image.open(path).convert("RGB")
    result = compare(first, path, rotations=False)
    assert result[0].distance == 0


def test_bad_inputs(tmp_path: Path, known: Image.Image) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("just some text, not an image\n")
    with pytest.raises(DecodeError, match="notes.txt"):
        compare(text, known)
    cut = tmp_path / "cut.png"
    cut.write_bytes(encode(known, "PNG")[:300])
    with pytest.raises(DecodeError, match="cut.png"):
        compare(known, cut)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(DecodeError, match="empty"):
        compare(empty, known)
    with pytest.raises(FileReadError, match="missing.png"):
        compare(tmp_path / "missing.png", known)
    with pytest.raises(NotAFileError):
        compare(tmp_path, known)
    with pytest.raises(UsageError):
        compare(b"\x00" * 10, known)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        compare(known, known, max_distances={"pdq": -1})
    with pytest.raises(MatcherError):
        compare(known, known, "nosuchhash")


def test_output_helpers(known: Image.Image) -> None:
    result = compare(known, edit(known, "mirror"), "pdq,phash")
    data = comparisons_to_dict(result)
    assert json.loads(json.dumps(data)) == data
    assert data["match"] is True
    assert data["best"]["pdq"]["variant"] == "flipy" and data["best"]["phash"]["variant"] == "flipy"
    assert len(data["comparisons"]) == 16
    table = format_table(result)
    lines = table.splitlines()
    assert lines[0].split() == ["algorithm", "variant", "distance", "max", "match", "note"]
    assert len(lines) == 17 and "flipy" in lines[1] and "yes" in lines[1]
    assert format_table([]).splitlines()[0].startswith("algorithm")
