"""Border trimming and region views: edited copies (bordered, captioned, cropped, slightly rotated)
still match their known originals, and unrelated images still do not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import fixtures
from fixtures import KINDS
from matcher.algorithms import registry
from matcher.borders import BorderRule, find_content_box
from matcher.errors import UsageError
from matcher.hashes import Hash
from matcher.imaging import iter_frames
from matcher.variants import VARIANT_NAMES
from matcher.views import (
    KNOWN_VIEWS,
    MIN_VIEW_SIZE,
    REGION_VIEWS,
    known_view_hashes,
    known_views_for,
    query_view_hashes,
    region_box,
)

PDQ = registry.get("pdq")
MATCH = PDQ.default_max_distance  # 31
PHOTO_KINDS = ("landscape", "plasma", "shapes", "text")
W, H = 320, 240


@pytest.fixture(scope="module")
def scenes() -> dict[tuple[str, int], Image.Image]:
    """Two small scenes of each photo-like kind, shared by the tests of this module."""
    return {(kind, seed): fixtures.scene(seed, W, H, kind) for kind in PHOTO_KINDS for seed in (1, 2)}


@pytest.fixture(scope="module")
def known(scenes) -> dict[tuple[str, int], dict[str, Hash]]:
    """The PDQ known views of each scene (computed once: the rotated views take a while)."""
    return {key: known_view_hashes(PDQ, img) for key, img in scenes.items()}


def _pad(
    img: Image.Image, colour: object, sides: str, fraction: float = 0.2
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """``img`` inside bars of ``colour`` on ``sides`` (letters t, b, l, r), each ``fraction / 2`` of the
    dimension; returns the padded image and the true content box."""
    w, h = img.size
    dx, dy = round(w * fraction / 2), round(h * fraction / 2)
    left, top = dx * ("l" in sides), dy * ("t" in sides)
    out = Image.new("RGB", (w + left + dx * ("r" in sides), h + top + dy * ("b" in sides)), colour)
    out.paste(img, (left, top))
    return out, (left, top, left + w, top + h)


# Bordered copies: name -> (make(img) -> (bordered, true box)).
BORDERS = {
    "pad20_black": lambda img: (fixtures.edit(img, "pad20_black"), (0, 24, W, 24 + H)),
    "pad20_white": lambda img: (fixtures.edit(img, "pad20_white"), (0, 24, W, 24 + H)),
    "pillarbox20_black": lambda img: (fixtures.edit(img, "pillarbox20_black"), (32, 0, 32 + W, H)),
    "pillarbox20_white": lambda img: _pad(img, "white", "lr"),
    "grey_all_sides": lambda img: _pad(img, (128, 128, 128), "tblr"),
    "blue_top_left": lambda img: _pad(img, (30, 90, 160), "tl", 0.3),
}


def _after(img: Image.Image, name: str) -> Image.Image:
    """``img`` after the fixtures' edit ``name`` (``"none"``: as it is)."""
    return img if name == "none" else fixtures.edit(img, name)


def _scaled(box: tuple[int, int, int, int], before: Image.Image, after: Image.Image) -> tuple[float, ...]:
    """``box`` of ``before`` in the pixels of its resized copy ``after``."""
    sx, sy = after.width / before.width, after.height / before.height
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


# ------------------------------------------------------------------------------------------ borders


@pytest.mark.parametrize("after", ["none", "jpeg30", "resize0.5"])
@pytest.mark.parametrize("border", sorted(BORDERS))
def test_content_box_is_found_within_two_pixels(scenes, border, after):
    for img in scenes.values():
        bordered, true_box = BORDERS[border](img)
        edited = _after(bordered, after)
        box = find_content_box(edited)
        assert box is not None, (border, after)
        expected = _scaled(true_box, bordered, edited)
        assert max(abs(a - b) for a, b in zip(box, expected)) <= 2, (border, after, box, expected)


@pytest.mark.parametrize("after", ["none", "jpeg30"])
@pytest.mark.parametrize("border", sorted(BORDERS))
def test_trim_view_matches_the_original(scenes, border, after):
    for img in scenes.values():
        edited = _after(BORDERS[border](img)[0], after)
        views = query_view_hashes(PDQ, edited, rotations=False, regions=False)
        assert views["trim"] - PDQ.hash_image(img) <= (0 if after == "none" else MATCH), border
        assert views["orig"] - PDQ.hash_image(img) > MATCH  # what trimming is for


@pytest.mark.parametrize("kind", PHOTO_KINDS)
def test_trim_view_after_a_downscale_costs_no_more_than_the_downscale(kind):
    """pad20 then resize 0.5: the trimmed view is as near the original as a plain resize is."""
    img = fixtures.scene(3, 640, 480, kind)
    original = PDQ.hash_image(img)
    resized = PDQ.hash_image(fixtures.edit(img, "resize0.5")) - original
    trimmed = query_view_hashes(PDQ, fixtures.edit(img, "pad20_resize0.5"), rotations=False, regions=False)["trim"]
    assert trimmed - original <= min(MATCH, resized + 6)


def test_unpadded_scenes_have_no_border():
    found = [
        (kind, seed)
        for kind in KINDS
        for seed in range(15)
        if find_content_box(fixtures.scene(seed, 160, 120, kind)) is not None
    ]
    assert found == []


def test_flat_thin_or_tiny_images_have_no_border():
    img = fixtures.scene(4, 200, 150, "plasma")
    assert find_content_box(Image.new("RGB", (200, 150), (40, 80, 120))) is None  # all flat
    assert find_content_box(_pad(img.resize((40, 150)), "black", "lr", 3.0)[0]) is None  # content < 1/3 wide
    assert find_content_box(_pad(img, "black", "tb", 0.01)[0]) is None  # 1 px bars: under 2 px and 1%
    for size in ((1, 1), (2, 9), (9, 2), (3, 3)):
        assert find_content_box(Image.new("RGB", size)) is None


def test_bars_of_different_colours_and_modes():
    img = fixtures.scene(5, 200, 150, "shapes")
    out = Image.new("RGB", (200, 190), "white")
    out.paste(Image.new("RGB", (200, 20), (200, 30, 30)), (0, 0))
    out.paste(img, (0, 20))  # red bar on top, white at the bottom
    assert find_content_box(out) == (0, 20, 200, 170)
    bordered, box = _pad(img, "black", "tb")
    for mode in ("L", "RGBA", "P"):
        assert find_content_box(bordered.convert(mode)) == box, mode


def test_border_rule_is_validated():
    with pytest.raises(UsageError):
        BorderRule(flat_outliers=1.5)
    with pytest.raises(UsageError):
        BorderRule(edge_lines=-1)
    with pytest.raises(UsageError):
        find_content_box(Image.new("RGB", (50, 50)), rule="strict")  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------- views


def test_view_names_and_search_rule():
    crops = (
        "crop5",
        "crop10",
        "crop5tl",
        "crop5tr",
        "crop5bl",
        "crop5br",
        "crop10tl",
        "crop10tr",
        "crop10bl",
        "crop10br",
    )
    assert KNOWN_VIEWS == ("trim", "top88", "bottom88", *crops, "rotl4", "rotr4")
    for variant in VARIANT_NAMES:
        assert known_views_for(variant) == (None, "trim", *crops, "rotl4", "rotr4")
        assert known_views_for(f"trim+{variant}") == (None, "trim")
    assert known_views_for("trim") == (None, "trim")
    assert known_views_for("top88") == ("top88",) and known_views_for("bottom88") == ("bottom88",)
    for bad in ("crop5", "trim+crop5", "rot45", ""):
        with pytest.raises(UsageError):
            known_views_for(bad)


@pytest.mark.parametrize("size", [(320, 240), (333, 211), (9, 9)])
def test_region_boxes_cut_what_the_crop_edits_cut(size):
    img = fixtures.scene(6, *size, "plasma")
    w, h = size
    for edit, view in (("crop5", "crop5"), ("crop10", "crop10"), ("crop10_offcentre", "crop10tl")):
        assert fixtures.edit(img, edit).tobytes() == img.crop(region_box(view, size)).tobytes()
    dw, dh = round(w * 0.1), round(h * 0.1)
    assert region_box("crop10tr", size) == (0, dh, w - dw, h)
    assert region_box("crop10bl", size) == (dw, 0, w, h - dh)
    assert region_box("crop10br", size) == (0, 0, w - dw, h - dh)
    band = max(1, round(h * 0.12))
    assert region_box("top88", size) == (0, 0, w, h - band)
    assert region_box("bottom88", size) == (0, band, w, h)
    with pytest.raises(UsageError):
        region_box("rotl4", size)


def test_view_sets(scenes, known):
    img = scenes["landscape", 1]
    assert set(known["landscape", 1]) == set(KNOWN_VIEWS) - {"trim"}
    bordered = fixtures.edit(img, "pad20_white")
    assert set(known_view_hashes(PDQ, bordered)) == set(KNOWN_VIEWS)
    assert set(query_view_hashes(PDQ, img)) == {*VARIANT_NAMES, *REGION_VIEWS}
    assert set(query_view_hashes(PDQ, img, rotations=False, regions=False)) == {"orig"}
    assert set(query_view_hashes(PDQ, bordered, rotations=False)) == {"orig", "trim", *REGION_VIEWS}
    assert set(query_view_hashes(PDQ, bordered, regions=False)) == {
        *VARIANT_NAMES,
        "trim",
        *(f"trim+{v}" for v in VARIANT_NAMES if v != "orig"),
    }
    assert set(query_view_hashes(PDQ, bordered, trim_borders=False, regions=False)) == set(VARIANT_NAMES)
    # a known bordered image's trim is the content: an unbordered copy matches it
    assert query_view_hashes(PDQ, img, rotations=False)["orig"] - known_view_hashes(PDQ, bordered)["trim"] == 0


@pytest.mark.parametrize(
    ("edit", "query", "view"),
    [
        ("caption", "top88", "top88"),
        ("crop5", "orig", "crop5"),
        ("crop10", "orig", "crop10"),
        ("crop10_offcentre", "orig", "crop10tl"),
        ("crop5_offcentre", "orig", "crop5tl"),
        ("rotate4", "orig", "rotl4"),
        ("crop5_jpeg75", "orig", "crop5"),
    ],
)
def test_edited_copy_matches_its_view(scenes, known, edit, query, view):
    assert view in known_views_for(query)
    exact = edit != "crop5_jpeg75"
    for key, img in scenes.items():
        copy = img.crop(region_box("crop5tl", img.size)) if edit == "crop5_offcentre" else fixtures.edit(img, edit)
        views = query_view_hashes(PDQ, copy, rotations=False, trim_borders=False)
        distance = views[query] - known[key][view]
        assert distance <= (0 if exact else MATCH), (edit, key, distance)


def test_other_corner_crops_and_clockwise_rotation_match(scenes, known):
    img, known = scenes["shapes", 2], known["shapes", 2]
    for view in ("crop10tr", "crop10bl", "crop10br"):
        copy = fixtures.edit(img.crop(region_box(view, img.size)), "jpeg75")
        assert query_view_hashes(PDQ, copy, rotations=False)["orig"] - known[view] <= MATCH, view
    banner_on_top = img.copy()  # a banner over the top 12%
    banner_on_top.paste((20, 20, 20), (0, 0, img.width, region_box("bottom88", img.size)[1]))
    assert query_view_hashes(PDQ, banner_on_top, rotations=False)["bottom88"] - known["bottom88"] == 0
    turned = img.rotate(-4, Image.Resampling.BICUBIC, fillcolor=(0, 0, 0))
    assert query_view_hashes(PDQ, turned, rotations=False)["orig"] - known["rotr4"] == 0


def test_unrelated_images_match_no_view(scenes, known):
    queries = [fixtures.scene(100 + seed, W, H, kind) for seed, kind in enumerate(PHOTO_KINDS)]
    queries.append(fixtures.edit(queries[0], "pad20_black"))  # with a trim view of its own
    for key, known_img in scenes.items():
        targets = {None: PDQ.hash_image(known_img), **known[key]}
        for query_img in queries:
            for view, value in query_view_hashes(PDQ, query_img).items():
                for target in known_views_for(view):
                    if target in targets:
                        assert value - targets[target] > MATCH, (view, target)


def test_views_of_a_draft_decoded_jpeg_stay_close():
    """The reduced-scale (draft) decode path gives views within a few bits of the full decode's."""
    data = fixtures.encode(fixtures.edit(fixtures.scene(7, 800, 600, "shapes"), "pad20_black"), "JPEG", quality=90)
    full = next(iter_frames(data))
    draft = next(iter_frames(data, draft_size=(256, 256)))
    assert draft.image.size == (400, 360) and (draft.width, draft.height) == full.image.size
    size = (draft.width, draft.height)
    for ours, theirs in (
        (known_view_hashes(PDQ, draft.image, size), known_view_hashes(PDQ, full.image)),
        (query_view_hashes(PDQ, draft.image, size), query_view_hashes(PDQ, full.image)),
    ):
        assert set(ours) == set(theirs)
        assert max(ours[v] - theirs[v] for v in ours) <= 10


@pytest.mark.parametrize("name", ["pdq", "phash", "dhash"])
@pytest.mark.parametrize("size", [(1, 1), (5, 5), (7, 40), (40, 7), (9, 9), (12, 60)])
def test_tiny_images_do_not_crash(name, size):
    algorithm = registry.get(name)
    img = fixtures.scene(8, *size, "plasma")
    known = known_view_hashes(algorithm, img)
    query = query_view_hashes(algorithm, img)
    assert "orig" in query
    for view, value in (*known.items(), *query.items()):
        assert value.algorithm == name
        if view in REGION_VIEWS or view.startswith("crop"):
            box = region_box(view, size)
            assert min(box[2] - box[0], box[3] - box[1]) >= MIN_VIEW_SIZE
    if min(size) < MIN_VIEW_SIZE:
        assert known == {}


def test_other_algorithms_and_modes(scenes):
    img = scenes["text", 1]
    phash = registry.get("phash")
    captioned = query_view_hashes(phash, fixtures.edit(img, "caption"))
    assert captioned["top88"] - known_view_hashes(phash, img)["top88"] == 0
    grey = img.convert("L")
    assert query_view_hashes(PDQ, grey) == query_view_hashes(PDQ, grey.convert("RGB"))
    assert known_view_hashes(PDQ, grey) == known_view_hashes(PDQ, grey.convert("RGB"))


def test_bad_arguments_are_refused(scenes):
    img = scenes["plasma", 1]
    for bad in ((0, 10), (10,), [640, 480], (640.0, 480)):
        with pytest.raises(UsageError):
            query_view_hashes(PDQ, img, bad)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        known_view_hashes(PDQ, "not an image")  # type: ignore[arg-type]


def test_region_full_size_is_scaled_from_the_reduced_decode():
    """A view of a half-scale decode is hashed as the full-scale region would be."""
    img = fixtures.scene(9, 640, 480, "landscape")
    half = img.resize((320, 240), Image.Resampling.BOX)
    ours = known_view_hashes(PDQ, half, (640, 480))
    theirs = known_view_hashes(PDQ, img)
    assert set(ours) == set(theirs)
    assert max(ours[v] - theirs[v] for v in ours) <= 10


def test_views_of_a_flat_image_are_as_unsearchable_as_the_image():
    # a flat card: its own PDQ quality is under 50, and so must be its views' (the black corners of the
    # small rotations would otherwise lend them detail, and flat images would match each other)
    flat = Image.new("RGB", (320, 240), (128, 128, 128))
    main = PDQ.hash_image(flat)
    assert main.quality < 50
    views = known_view_hashes(PDQ, flat)
    assert {"rotl4", "rotr4"} <= views.keys()
    turned = flat.rotate(4, Image.Resampling.BICUBIC, fillcolor=(0, 0, 0))
    assert PDQ.hash_image(turned).quality >= 50  # what the rotated view would carry uncapped
    assert all(v.quality <= main.quality for v in views.values())
    assert known_view_hashes(PDQ, flat, main=main) == views


def flat_above_a_band(seed: int = 1) -> Image.Image:
    """A frame that is flat grey but for a band of noise over its bottom 12 %: detailed enough as a
    whole (PDQ quality >= 50), while its top 88 % is flat."""
    pixels = np.full((300, 400, 3), 128, np.uint8)
    band = np.random.default_rng(seed).integers(0, 256, (36, 400, 1), dtype=np.uint8)
    pixels[-36:] = band.repeat(3, axis=2)
    return Image.fromarray(pixels)


def test_every_query_view_carries_its_own_quality(scenes):
    frame = flat_above_a_band()
    views = query_view_hashes(PDQ, frame)
    assert views["orig"].quality >= 50
    assert views["top88"].quality < 50  # flat: it must not pass the gate on the frame's quality
    for name in ("top88", "bottom88"):
        assert views[name].quality == PDQ.hash_image(frame.crop(region_box(name, frame.size))).quality
    img = scenes["landscape", 1]
    captioned = fixtures.edit(fixtures.edit(img, "pad20_black"), "caption")
    views = query_view_hashes(PDQ, captioned)
    assert {"orig", "trim", "top88"} <= views.keys()
    box = find_content_box(captioned)
    assert box is not None and views["trim"].quality == PDQ.hash_image(captioned.crop(box)).quality
