"""matcher.compare explains the scan's decision: cropped, captioned, letterboxed, rotated and mirrored
copies, unrelated and flat images, identical files, hashes on either side, the scan's options, bad
inputs, and the JSON/table output. Synthetic images only (fixtures), ~200x150."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from fixtures import edit, encode, scene
from matcher.compare import Comparison, Pair, compare, format_table
from matcher.errors import DecodeError, FileReadError, MatcherError, NotAFileError, UsageError
from matcher.hashes import Hash
from matcher.hashing import hash_image
from matcher.scan.matching import is_view_match

W, H = 200, 150


@pytest.fixture(scope="module")
def known() -> Image.Image:
    return scene(11, W, H, "landscape")


@pytest.fixture
def known_png(known: Image.Image, tmp_path: Path) -> Path:
    path = tmp_path / "known.png"
    path.write_bytes(encode(known, "PNG"))
    return path


def best(result: Comparison, algorithm: str = "pdq") -> Pair:
    return result.best()[algorithm]


@pytest.mark.parametrize(
    ("edit_name", "variant", "view"),
    [
        ("crop10", "orig", "crop10"),  # the crop meets the known image's crop view
        ("caption", "top88", "top88"),  # a caption band over the bottom: the top 88 % of both
        ("pad20_black", "trim", None),  # a letterbox: the evidence inside its borders, the known image itself
        ("rotate90", "rot90", None),
        ("mirror", "flipy", None),
    ],
)
def test_edited_copies_match_as_the_scan_explains_them(
    known: Image.Image, edit_name: str, variant: str, view: str | None
) -> None:
    result = compare(known, edit(known, edit_name))
    top = best(result)
    assert result.match and [r.status for r in result.records] == ["match"]
    assert (top.variant, top.view, top.within) == (variant, view, True)
    # the best pair is the scan's own match, with its distance
    scanned = result.records[0].matches[0]
    assert (scanned.variant, scanned.view, scanned.distance) == (top.variant, top.view, top.distance)
    assert result.reason.startswith("match: pdq distance")
    assert f"evidence {variant} against the known image's" in result.reason


def test_best_pair_is_the_scans_match_whatever_its_ranking(known: Image.Image) -> None:
    """A re-encoded copy matches several views at once; which explanation the scan prefers is the
    scan's ranking, and compare reports that one."""
    result = compare(known, edit(known, "jpeg75"))
    top, scanned = best(result), result.records[0].matches[0]
    assert result.match and (top.variant, top.view, top.distance) == (scanned.variant, scanned.view, scanned.distance)
    assert sum(p.within for p in result.pairs) > 1


def test_crop_that_the_global_hash_misses_is_explained(known: Image.Image) -> None:
    """The regression of issue 16: a 10 % crop is far from the known image's own hash, and compare
    said "no match" for what a scan matches."""
    result = compare(known, edit(known, "crop10"))
    own = next(p for p in result.pairs if p.variant == "orig")
    assert own.view == "crop10" and own.distance <= 10
    assert known_hash_distance(known, edit(known, "crop10")) > 31  # what compare used to report
    assert result.match


def known_hash_distance(a: Image.Image, b: Image.Image) -> int:
    return hash_image(a, "pdq")[0].hashes["pdq"].distance(hash_image(b, "pdq")[0].hashes["pdq"])


def test_scan_options_change_the_decision_as_they_change_the_scan(known: Image.Image) -> None:
    # the global hashes' switches (the local-feature stage, on by default, finds padded and captioned copies)
    assert not compare(known, edit(known, "mirror"), rotations=False, local=False).match
    assert not compare(known, edit(known, "pad20_black"), trim_borders=False, local=False).match
    assert not compare(known, edit(known, "caption"), regions=False, local=False).match
    without = compare(known, edit(known, "mirror"), rotations=False, local=False)
    assert {p.variant for p in without.pairs} <= {"orig", "top88", "bottom88"}
    assert not without.rotations


def test_unrelated_image_is_no_match_with_the_nearest_pair(known: Image.Image) -> None:
    result = compare(known, scene(12, W, H, "shapes"), "pdq,dhash")
    assert not result.match and [r.status for r in result.records] == ["no_match"]
    for algorithm in ("pdq", "dhash"):
        top = best(result, algorithm)
        assert top.searched and not top.within and top.distance > top.max_distance
        assert top.distance == min(p.distance for p in result.pairs if p.algorithm == algorithm)
    assert result.reason.startswith("no match: pdq: nearest distance")
    assert "> 31" in result.reason


def test_flat_images_are_kept_apart_by_the_quality_gate() -> None:
    flat = scene(13, W, H, "lowtexture")
    result = compare(flat, flat.copy())
    assert not result.match and result.records[0].status == "no_match"
    assert all(not p.searched and "quality" in (p.note or "") for p in result.pairs)
    assert "quality gate" in result.reason and "below 50" in result.reason
    assert any("an index never returns it" in note for note in result.notes)
    # the same pixels, so the distance is 0: the gate, not the distance, decides
    assert best(result).distance == 0 and not best(result).within


def test_identical_files_match_by_digest(known_png: Path) -> None:
    result = compare(known_png, known_png)
    assert result.match
    assert result.digests_equal() == ("sha256",)
    assert result.reason == "match: the files are identical (sha256 equal)"
    assert result.records[0].matches[0].algorithm == "sha256"


def test_known_hash_has_no_views(known: Image.Image) -> None:
    known_hash = hash_image(known, "pdq")[0].hashes["pdq"]
    plain = Hash.from_hex("pdq", str(known_hash))  # as typed: no quality
    rotated = compare(plain, edit(known, "rotate90"))
    assert rotated.match and best(rotated).variant == "rot90"
    assert rotated.known.kind == "hash" and rotated.known.frames[0].views == {"pdq": ()}
    assert any("no views" in note for note in rotated.known.notes)
    assert {p.view for p in rotated.pairs} == {None}
    # without views, a 10 % crop is not matched against a hash (a scan against a hash list does the same)
    assert not compare(plain, edit(known, "crop10")).match
    # a letterbox still is: trimming borders is on the evidence side
    assert compare(plain, edit(known, "pad20_black")).match


def test_evidence_hash_is_searched_as_it_is(known: Image.Image) -> None:
    copy = hash_image(edit(known, "jpeg75"), "pdq")[0].hashes["pdq"]
    result = compare(known, Hash.from_hex("pdq", str(copy)))
    assert result.match and best(result).variant == "orig"
    assert {p.variant for p in result.pairs} == {"orig"}
    assert any("no rotations" in note for note in result.evidence.notes)
    rotated = hash_image(edit(known, "rotate90"), "pdq")[0].hashes["pdq"]
    assert not compare(known, rotated).match  # no pixels to rotate back


def test_hash_vs_hash() -> None:
    a = Hash.from_hex("pdq", "f" * 64)
    b = Hash.from_hex("pdq", "f" * 60 + "0000")
    result = compare(a, b)
    assert result.match and [(p.variant, p.view, p.distance, p.max_distance) for p in result.pairs] == [
        ("orig", None, 16, 31)
    ]
    tight = compare(a, b, max_distances={"pdq": 10})
    assert not tight.match and "nearest distance 16 > 10" in tight.reason
    with pytest.raises(UsageError):
        compare(a, Hash.from_hex("phash", "0" * 16))
    with pytest.raises(UsageError, match="pdq hash"):
        compare(a, b, ["phash"])


def test_multi_frame_evidence_gives_the_scans_record_per_frame(known: Image.Image, tmp_path: Path) -> None:
    other = scene(14, W, H, "shapes")
    path = tmp_path / "anim.gif"
    known.save(path, save_all=True, append_images=[other], duration=100)
    first = Image.open(path).convert("RGB")
    result = compare(first, path)
    assert [r.frame for r in result.records] == [0, 1]
    assert [r.status for r in result.records] == ["match", "no_match"]
    assert result.match and best(result).evidence_frame == 0 and best(result).distance == 0


def test_bad_inputs(tmp_path: Path, known: Image.Image) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("just some text, not an image\n")
    with pytest.raises(DecodeError, match="notes.txt: not an image"):
        compare(text, known)
    with pytest.raises(DecodeError, match="notes.txt: not an image"):
        compare(known, text)
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
    with pytest.raises(FileReadError, match="missing.png"):
        compare(known, tmp_path / "missing.png")
    with pytest.raises(NotAFileError):
        compare(tmp_path, known)
    with pytest.raises(NotAFileError):
        compare(known, tmp_path)
    with pytest.raises(UsageError):
        compare(b"\x00" * 10, known)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        compare(known, known, max_distances={"pdq": -1})
    with pytest.raises(MatcherError):
        compare(known, known, "nosuchhash")


def test_nothing_is_left_behind_and_evidence_is_untouched(
    known_png: Path, known: Image.Image, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    copy = evidence / "copy.png"
    copy.write_bytes(encode(edit(known, "crop10"), "PNG"))
    before = copy.read_bytes(), os.stat(copy).st_mtime_ns
    assert compare(known_png, copy).match
    assert list(scratch.iterdir()) == []  # the temporary index is removed
    assert sorted(p.name for p in evidence.iterdir()) == ["copy.png"]
    assert (copy.read_bytes(), os.stat(copy).st_mtime_ns) == before


def test_output(known: Image.Image) -> None:
    result = compare(known, edit(known, "crop10"), "pdq,phash")
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["match"] is True and data["reason"] == result.reason
    assert data["best"]["pdq"]["view"] == "crop10" and data["best"]["pdq"]["within"] is True
    assert set(data) == {
        "match",
        "reason",
        "local",
        "digests_equal",
        "best",
        "known",
        "evidence",
        "settings",
        "notes",
        "scan",
        "pairs",
    }
    assert data["settings"] == {
        "algorithms": ["pdq", "phash"],
        "max_distances": {"pdq": 31, "phash": 8},
        "rotations": True,
        "trim_borders": True,
        "regions": True,
        "insets": True,
        "local": True,
    }
    assert data["local"] is None  # the global hashes matched: the local stage did not run
    assert data["scan"][0]["status"] == "match" and data["scan"][0]["matches"][0]["view"] == "crop10"
    assert "crop10" in data["known"]["frames"][0]["views"]["pdq"]
    assert data["evidence"]["frames"][0]["views"]["pdq"][0] == "orig"
    assert len(data["pairs"]) == len(result.pairs) and {p["algorithm"] for p in data["pairs"]} == {"pdq", "phash"}
    lines = format_table(result).splitlines()
    assert lines[0] == "decision  MATCH"
    assert lines[1] == f"reason    {result.reason}"
    header = next(i for i, line in enumerate(lines) if line.startswith("algorithm"))
    assert lines[header].split() == [
        "algorithm",
        "frame",
        "variant",
        "record",
        "view",
        "distance",
        "max",
        "within",
        "note",
    ]
    assert len(lines) - header - 1 == len(result.pairs)
    assert lines[header + 1].split()[:5] == ["pdq", "-", "orig", "1", "crop10"]


def test_a_pair_through_a_view_is_held_to_the_view_distance(known: Image.Image) -> None:
    """compare explains the scan's decision: a pHash pair that only a view explains is a match only
    within the view distance (7 bits at the default 8), as the scan decides."""
    cropped = compare(known, edit(known, "crop10"), algorithms=("phash",), local=False)
    through_views = [p for p in cropped.pairs if is_view_match(p.variant, p.view)]
    assert through_views and {p.max_distance for p in through_views} == {7}
    assert all(p.within == (p.searched and p.distance <= 7) for p in through_views)
    same = compare(known, edit(known, "jpeg75"), algorithms=("phash",), local=False)
    pair = best(same, "phash")
    assert (pair.variant, pair.view, pair.max_distance) == ("orig", None, 8)
