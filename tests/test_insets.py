"""Insets: a known image pasted into a collage (contact sheet) or a chat screenshot is cut back out
and matched by its global hash; canvases without a known picture match nothing, plain photographs
get few or no proposals, and ``insets=False`` / ``--no-insets`` turns it off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from fixtures.generate import scene
from fixtures.interface import chat_canvas
from matcher.algorithms import registry
from matcher.cli import main
from matcher.errors import UsageError
from matcher.index import KnownIndex
from matcher.index.importing import import_sources
from matcher.insets import MAX_INSETS, find_insets
from matcher.scan import ScanOptions, scan
from matcher.scan.matching import explanation_rank, is_view_match
from matcher.views import (
    INSET_VIEW,
    TRIM_VIEW,
    describe_match,
    inset_box,
    inset_view,
    known_views_for,
    query_view_hashes,
)

PDQ = registry.get("pdq")
GAP = 4
FILLER = ("landscape", "shapes", "text", "plasma")


def known_image(i: int) -> Image.Image:
    return scene(500 + i, 400, 300, ("landscape", "shapes", "plasma")[i % 3])


def collage(n: int, picture: Image.Image | None, at: int, seed: int = 0) -> tuple[Image.Image, tuple[int, ...]]:
    """An ``n`` x ``n`` contact sheet (tiles of 640/n x 480/n, white gutters of 4 px) with ``picture``
    at tile ``at`` (``None``: fillers only) and generated fillers elsewhere; and that tile's box."""
    tw, th = 640 // n, 480 // n
    canvas = Image.new("RGB", (n * tw + (n + 1) * GAP, n * th + (n + 1) * GAP), (255, 255, 255))
    box: tuple[int, ...] = ()
    for k in range(n * n):
        x, y = GAP + (k % n) * (tw + GAP), GAP + (k // n) * (th + GAP)
        if k == at and picture is not None:
            tile = picture.resize((tw, th), Image.Resampling.BICUBIC)
            box = (x, y, x + tw, y + th)
        else:
            tile = scene(9000 + 37 * seed + k, tw, th, FILLER[(k + seed) % 4])
        canvas.paste(tile, (x, y))
    return canvas, box


def chat(picture: Image.Image | None, fraction: float, at: tuple[int, int]) -> tuple[Image.Image, tuple[int, ...]]:
    """A chat-app-like 720 x 1280 canvas (header, avatars and message lines, input bar) with
    ``picture`` scaled to ``fraction`` of its width and pasted at ``at``; and the pasted box."""
    w = 720
    canvas = chat_canvas((w, 1280))
    if picture is None:
        return canvas, ()
    pw = round(w * fraction)
    ph = round(picture.size[1] * pw / picture.size[0])
    canvas.paste(picture.resize((pw, ph), Image.Resampling.BICUBIC), at)
    return canvas, (at[0], at[1], at[0] + pw, at[1] + ph)


def _near(found: tuple[int, ...], truth: tuple[int, ...], slack: int = 2) -> bool:
    return len(found) == 4 and all(abs(a - b) <= slack for a, b in zip(found, truth))


# --------------------------------------------------------------------------------- proposals


@pytest.mark.parametrize("n", [2, 3])
def test_every_tile_of_a_contact_sheet_is_proposed(n: int) -> None:
    sheet, _ = collage(n, None, -1, seed=n)
    boxes = find_insets(sheet)
    tw, th = 640 // n, 480 // n
    for k in range(n * n):
        x, y = GAP + (k % n) * (tw + GAP), GAP + (k // n) * (th + GAP)
        assert any(_near(b, (x, y, x + tw, y + th)) for b in boxes), (k, boxes)
    assert len(boxes) <= MAX_INSETS


def test_a_picture_pasted_into_a_screenshot_is_proposed_to_the_pixel() -> None:
    for fraction, at in ((0.4, (300, 400)), (0.6, (20, 150)), (0.9, (36, 650))):
        canvas, box = chat(known_image(0), fraction, at)
        boxes = find_insets(canvas)
        assert any(_near(b, box, 1) for b in boxes), (fraction, box, boxes)


def test_plain_photographs_get_few_or_no_proposals() -> None:
    photos = [
        len(find_insets(scene(700 + i, 640, 480, kind))) for i, kind in enumerate(("landscape", "shapes", "plasma") * 3)
    ]
    assert sum(photos) <= 1, photos
    # a text card is a document: its blocks of lines may be proposed, never more than MAX_INSETS
    assert all(len(find_insets(scene(720 + i, 640, 480, "text"))) <= MAX_INSETS for i in range(4))


def test_proposals_are_bounded_deterministic_and_never_the_whole_frame() -> None:
    # a 6 x 6 sheet has 36 tiles: at most MAX_INSETS of them are proposed, the same ones every time
    sheet = Image.new("RGB", (6 * 100 + 7 * GAP, 6 * 80 + 7 * GAP), (255, 255, 255))
    for k in range(36):
        sheet.paste(scene(300 + k, 100, 80, FILLER[k % 4]), (GAP + (k % 6) * (100 + GAP), GAP + (k // 6) * (80 + GAP)))
    first = find_insets(sheet)
    assert 0 < len(first) <= MAX_INSETS and find_insets(sheet) == first
    assert find_insets(sheet, limit=3) == first[:3]
    # a picture inside a plain border is the border-trimmed frame (the trim view's job), not an inset
    framed = Image.new("RGB", (680, 520), (0, 0, 0))
    framed.paste(known_image(1).resize((640, 480)), (20, 20))
    assert find_insets(framed) == ()
    assert find_insets(Image.new("RGB", (640, 480), (128, 128, 128))) == ()
    assert find_insets(Image.new("RGB", (20, 20))) == ()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(UsageError):
        find_insets("not an image")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        find_insets(Image.new("RGB", (64, 64)), limit=-1)


# --------------------------------------------------------------------------------- views


def test_inset_views_carry_their_box_and_meet_the_main_hash_and_trim() -> None:
    name = inset_view((10, 20, 330, 260))
    assert name == "inset@10,20,330,260" and name.startswith(INSET_VIEW)
    assert inset_box(name) == (10, 20, 330, 260)
    assert inset_box("top88") is None and inset_box("inset@1,2,3") is None and inset_box("inset@5,0,1,9") is None
    assert known_views_for(name) == (None, TRIM_VIEW)
    assert describe_match(name, None) == (
        "known image found inside a region of the frame (a collage tile or a pasted picture) at x 10-330, y 20-260"
    )
    assert describe_match(name, TRIM_VIEW).endswith(", borders trimmed")
    # an inset is a changed region: held to the view distance, ranked after the plain explanations
    assert is_view_match(name, None) and explanation_rank(name, None) > explanation_rank("trim", None)


def test_query_views_hash_the_tile_that_is_the_known_image() -> None:
    picture = known_image(2)
    sheet, box = collage(2, picture, 1)
    known = PDQ.hash_image(picture)
    views = query_view_hashes(PDQ, sheet)
    insets = {name: value for name, value in views.items() if inset_box(name) is not None}
    assert 0 < len(insets) <= MAX_INSETS
    best = min(insets, key=lambda name: known.distance(insets[name]))
    assert _near(inset_box(best) or (), box) and known.distance(insets[best]) <= PDQ.default_max_distance
    assert known.distance(views["orig"]) > PDQ.default_max_distance  # the sheet as a whole does not match
    assert not any(inset_box(name) for name in query_view_hashes(PDQ, sheet, insets=False))
    # boxes found once serve every algorithm; a reduced decode's boxes are named in full-scale pixels
    half = sheet.resize((sheet.width // 2, sheet.height // 2))
    named = query_view_hashes(PDQ, half, sheet.size, insets=[(2, 2, 162, 122)])
    assert inset_view((4, 4, 324, 244)) in named


# --------------------------------------------------------------------------------- scan


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("insets")
    known, evidence, unknown = base / "known", base / "evidence", base / "unknown"
    for folder in (known, evidence, unknown):
        folder.mkdir()
    for i in range(3):
        known_image(i).save(known / f"k{i}.png")
    collage(2, known_image(0), 2)[0].save(evidence / "collage2x2.png")
    collage(3, known_image(1), 4)[0].save(evidence / "collage3x3.png")
    chat(known_image(2), 0.5, (300, 500))[0].convert("RGB").save(evidence / "screenshot.jpg", quality=90)
    # the same canvases with unrelated pictures where the known ones were
    collage(2, scene(41, 320, 240, "landscape"), 2)[0].save(unknown / "collage2x2.png")
    collage(3, scene(42, 213, 160, "shapes"), 4)[0].save(unknown / "collage3x3.png")
    chat(scene(43, 400, 300, "plasma"), 0.5, (300, 500))[0].save(unknown / "screenshot.png")
    index = base / "ix"
    with KnownIndex.create(index) as ix:  # no local features: only the global hashes can find them
        import_sources(ix, [known], list_name="known", local=False)
    return {"base": base, "known": known, "evidence": evidence, "unknown": unknown, "index": index}


def _scan(case: dict[str, Path], folder: str, **options: object) -> dict[str, list]:
    records = scan([str(case[folder])], str(case["index"]), ScanOptions(workers=1, **options))
    return {Path(record.path or "").stem: list(record.matches) for record in records}


def _name(case: dict[str, Path], record: int) -> str:
    with KnownIndex.open(case["index"]) as index:
        return Path(index.records([record])[0].name or "").stem


def test_scan_finds_the_known_image_in_a_collage_tile_and_a_screenshot(case: dict[str, Path]) -> None:
    found = _scan(case, "evidence")
    truth = {
        "collage2x2": ("k0", (4, 248, 324, 488)),
        "collage3x3": ("k1", (221, 168, 434, 328)),
        "screenshot": ("k2", (300, 500, 660, 770)),
    }
    for stem, (known, box) in truth.items():
        matches = found[stem]
        assert [(m.algorithm, _name(case, m.record)) for m in matches] == [("pdq", known)], stem
        match = matches[0]
        assert _near(inset_box(match.variant) or (), box), (stem, match.variant)
        assert match.view is None and match.distance <= PDQ.default_max_distance
        assert match.explanation.startswith("known image found inside a region of the frame")


def test_the_same_canvases_without_a_known_picture_match_nothing(case: dict[str, Path]) -> None:
    assert _scan(case, "unknown") == {"collage2x2": [], "collage3x3": [], "screenshot": []}


def test_no_insets_turns_them_off(case: dict[str, Path]) -> None:
    assert _scan(case, "evidence", insets=False) == {"collage2x2": [], "collage3x3": [], "screenshot": []}
    out = case["base"] / "off.jsonl"
    code = main(["scan", str(case["evidence"]), "--index", str(case["index"]), "-o", str(out), "--no-insets", "-q"])
    assert code == 0
    assert json.loads(Path(str(out) + ".manifest.json").read_text())["parameters"]["insets"] is False


def test_cli_report_names_the_region(case: dict[str, Path]) -> None:
    out = case["base"] / "on.jsonl"
    code = main(["scan", str(case["evidence"] / "screenshot.jpg"), "--index", str(case["index"]), "-o", str(out), "-q"])
    assert code == 1
    match = json.loads(out.read_text().splitlines()[0])["matches"][0]
    assert inset_box(match["variant"]) is not None and "pasted picture) at x 30" in match["explanation"]
    assert json.loads(Path(str(out) + ".manifest.json").read_text())["parameters"]["insets"] is True
