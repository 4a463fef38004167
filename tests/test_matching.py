"""Matching hashed entries against an index: batches, the plainest explanation, empty content.

Against a small index of generated scenes imported with their known-side views (as ``matcher index
add`` does for images), the scan must (1) give the same records whether entries are matched one by
one or a chunk at a time, with one search per known-side table for the whole chunk; (2) report a
whole-image edit (blurred, gamma-shifted, resized, re-encoded) as the image itself at its own hash's
distance, not as a region that happens to sit nearer; (3) never report the digest of zero-length
content as a match, whatever a list holds.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from fixtures import edit, encode, scene
from matcher import files
from matcher.algorithms import registry
from matcher.index import KnownIndex
from matcher.index.importing import import_sources
from matcher.known import KnownRecord
from matcher.scan import ScanOptions, scan
from matcher.scan.matching import explanation_rank, is_view_match, view_radius
from matcher.scan.options import resolve_config
from matcher.scan.scanner import HashedEntry, Scanner
from matcher.scan_records import EMPTY_CONTENT_DIGESTS, ScanRecord
from matcher.views import describe_match

KINDS = ("landscape", "plasma", "shapes")
WHOLE_IMAGE_EDITS = ("blur2", "gamma0.7", "resize0.5", "jpeg75")
# edits whose explanation is not the image itself: (query view, known view) expected
OTHER_EDITS = {
    "mirror": ("flipy", None),
    "rotate90": ("rot90", None),
    "pad20_black": ("trim", None),
    "caption": ("top88", "top88"),
    "crop10": ("orig", "crop10"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("matching")
    known, evidence = base / "known", base / "evidence"
    known.mkdir()
    evidence.mkdir()
    for i, kind in enumerate(KINDS):
        image = scene(500 + i, 240, 180, kind)
        (known / f"o{i}.png").write_bytes(encode(image, "PNG"))
        for name in (*WHOLE_IMAGE_EDITS, *OTHER_EDITS):
            (evidence / f"o{i}_{name}.png").write_bytes(encode(edit(image, name), "PNG"))
    (evidence / "empty.jpg").write_bytes(b"")
    (evidence / "unrelated.jpg").write_bytes(encode(scene(900, 200, 150, "text"), "JPEG"))
    index_path = base / "index"
    with KnownIndex.create(index_path, ("pdq",)) as index:
        import_sources(index, [str(p) for p in sorted(known.iterdir())], list_name="agency", views=True)
        # a list that (wrongly) holds the digests of zero-length content
        empty = b""
        index.add(
            [
                KnownRecord(
                    md5=hashlib.md5(empty).hexdigest(),
                    sha1=hashlib.sha1(empty).hexdigest(),
                    sha256=hashlib.sha256(empty).hexdigest(),
                    name="empty",
                )
            ],
            "careless",
        )
        ids = {record.name: record.id for record in index.iter_records()}
        assert index.views["pdq"]  # the originals carry their views
    return {"evidence": evidence, "index": index_path, "ids": ids, "known": known}


@pytest.fixture(scope="module")
def found(world) -> dict[str, ScanRecord]:
    """The scan's records of the evidence, by file name."""
    return {Path(r.path).name: r for r in scan([str(world["evidence"])], str(world["index"]))}


@pytest.mark.parametrize("name", WHOLE_IMAGE_EDITS)
def test_a_whole_image_edit_is_reported_as_the_image_itself_at_its_own_distance(world, found, name):
    for i in range(len(KINDS)):
        record = found[f"o{i}_{name}.png"]
        original = next(r for r in scan([str(world["known"] / f"o{i}.png")], str(world["index"])))
        (match,) = [m for m in record.matches if m.list == "agency"]
        assert (match.variant, match.view) == ("orig", None), (i, match)
        assert match.distance == record.hashes["pdq"] - original.hashes["pdq"]


def test_other_edits_keep_the_explanation_they_need(found):
    for name, expected in OTHER_EDITS.items():
        for i in range(len(KINDS)):
            (match,) = found[f"o{i}_{name}.png"].matches
            assert (match.variant, match.view) == expected, (name, i, match)


def test_explanations_rank_plainest_first():
    ranked = [
        ("orig", None),
        ("rot90", None),
        ("trim", None),
        ("orig", "trim"),
        ("trim+flipy", None),
        ("orig", "crop10"),
        ("top88", "top88"),
        ("flipy", "rotl4"),
    ]
    keys = [explanation_rank(variant, view) for variant, view in ranked]
    assert keys == sorted(keys)
    assert keys[0] < keys[1] < keys[2] == keys[3] < keys[4] < keys[5] == keys[6] < keys[7]


def test_zero_length_content_never_matches_even_when_a_list_holds_its_digest(found):
    empty = found["empty.jpg"]
    assert empty.status == "error" and empty.matches == ()
    assert empty.sha256 == EMPTY_CONTENT_DIGESTS["sha256"]  # its digests are reported, not matched
    assert all(m.list != "careless" for r in found.values() for m in r.matches)
    assert found["unrelated.jpg"].status == "no_match"


def test_a_file_with_the_empty_digest_is_not_matched_by_it_whatever_its_size(world):
    # a file read as empty (truncated while scanned, say) carries the empty digests: never a match
    with KnownIndex.open(world["index"]) as index:
        scanner = Scanner(index, resolve_config(index, str(world["index"]), ScanOptions()))
        (entry,) = files.walk([str(world["evidence"] / "unrelated.jpg")])
        hashed = scanner.hash_entry(entry)
        assert isinstance(hashed, HashedEntry)
        base = replace(hashed.base, **EMPTY_CONTENT_DIGESTS)
        (record,) = scanner.matcher.match(index, base, hashed.entry)[0]
    assert record.status == "no_match" and record.matches == ()


def test_a_chunk_is_matched_with_one_search_per_table_and_the_same_records(world, monkeypatch):
    with KnownIndex.open(world["index"]) as index:
        scanner = Scanner(index, resolve_config(index, str(world["index"]), ScanOptions()))
        entries = list(files.walk([str(world["evidence"])]))
        one_by_one = [scanner.scan_entry(entry) for entry in entries]
        calls: list[tuple[str | None, int]] = []
        real = KnownIndex.search

        def counting(self, queries, max_distance=None, *, view=None):
            calls.append((view, len(queries)))
            return real(self, queries, max_distance, view=view)

        monkeypatch.setattr(KnownIndex, "search", counting)
        together = scanner.scan_entries(entries)
        tables = {view for view, _count in calls}
        assert len(calls) == len(tables) <= 1 + len(index.views["pdq"])  # one search per table
        assert sum(count for view, count in calls if view is None) > 8 * len(KINDS)  # every entry's views
    assert [r.records for r in together] == [r.records for r in one_by_one]
    assert [r.known_good for r in together] == [r.known_good for r in one_by_one]
    assert [r.path for r in together] == [e.path for e in entries]


# -- what the evidence differs by, in words ----------------------------------------------------------

WORDS = {
    (None, None): "identical file",
    ("orig", None): "as is",
    ("rot90", None): "rotated 90° counter-clockwise",
    ("rot270", None): "rotated 90° clockwise",
    ("flipy", None): "mirrored",
    ("flipx", None): "flipped upside down",
    ("orig", "crop10"): "cropped 10% centred",
    ("orig", "crop5tl"): "cropped 5% at top and left",
    ("rot90", "crop10br"): "cropped 10% at bottom and right, rotated 90° counter-clockwise",
    ("orig", "rotl4"): "rotated 4° counter-clockwise",
    ("trim", None): "borders added",
    ("trim+flipy", None): "mirrored, borders added",
    ("orig", "trim"): "borders trimmed",
    ("top88", "top88"): "caption band cut at bottom",
    ("bottom88", "bottom88"): "caption band cut at top",
}


def test_describe_match_names_what_the_evidence_differs_by():
    assert {codes: describe_match(*codes) for codes in WORDS} == WORDS
    assert describe_match("future", "view9") == "variant future, view view9"  # unknown codes shown, no error


def test_the_words_say_what_was_done_to_the_known_image(world):
    """Each fixture edit, scanned, is described as the edit it is: the words follow the pixels."""
    known = Image.open(world["known"] / "o2.png").convert("RGB")  # shapes: a top band moves its own hash far
    expected = {
        "rotate90": "rotated 90° counter-clockwise",  # Pillow's ROTATE_90
        "rotate270": "rotated 90° clockwise",
        "mirror": "mirrored",
        "flip": "flipped upside down",
        "crop10": "cropped 10% centred",
        "caption": "caption band cut at bottom",  # the fixture's banner covers the bottom 12%
        "pad20_black": "borders added",
        "blur2": "as is",
    }
    folder = world["evidence"].parent / "words"
    folder.mkdir(exist_ok=True)
    for name in expected:
        (folder / f"{name}.png").write_bytes(encode(edit(known, name), "PNG"))
    top_caption = edit(edit(edit(known, "flip"), "caption"), "flip")  # the caption band over the *top* 12%
    (folder / "top_caption.png").write_bytes(encode(top_caption, "PNG"))
    expected["top_caption"] = "caption band cut at top"
    got = {}
    for record in scan([str(folder)], str(world["index"])):
        (match,) = record.matches
        got[Path(record.path).stem] = match.explanation
        assert match.to_dict()["explanation"] == match.explanation
    assert got == expected


def test_a_match_through_a_view_is_held_to_the_view_distance(tmp_path, world, monkeypatch):
    """Views multiply the comparisons of a pair of images: a 64-bit pHash match through a view at 8
    bits joined unrelated text cards and landscapes on the robustness benchmark (10 pairs), so a view
    match must be within ``view_max_distance`` (7), while the image itself and its exact turns keep 8."""
    phash = registry.get("phash")
    assert phash.view_max_distance == phash.default_max_distance - 1
    assert view_radius(phash, 10) == 9 and view_radius(registry.get("pdq"), 40) == 40
    index_path = tmp_path / "phash-index"
    with KnownIndex.create(index_path, ("phash",)) as index:
        import_sources(index, [str(p) for p in sorted(world["known"].iterdir())], list_name="agency", views=True)
    options = ScanOptions(algorithms=("phash",))

    def matches() -> list:
        records = scan([str(world["evidence"])], str(index_path), options)
        return [m for r in records for m in r.matches if m.algorithm == "phash"]

    assert any(is_view_match(m.variant, m.view) for m in matches())  # views explain some edits
    real = KnownIndex.search

    def every_match_at_the_limit(self, queries, max_distance=None, *, view=None):
        results = real(self, queries, max_distance, view=view)
        return [replace(r, matches=[replace(m, distance=max_distance) for m in r.matches]) for r in results]

    monkeypatch.setattr(KnownIndex, "search", every_match_at_the_limit)
    at_the_limit = matches()
    assert at_the_limit and {m.distance for m in at_the_limit} == {8}
    assert not any(is_view_match(m.variant, m.view) for m in at_the_limit)


def test_is_view_match_is_every_explanation_but_the_image_and_its_exact_turns():
    assert not is_view_match("orig", None) and not is_view_match("rot90", None)
    assert is_view_match("trim", None) and is_view_match("orig", "trim") and is_view_match("orig", "crop10")
    assert is_view_match("top88", "top88") and is_view_match("trim+flipy", None)
