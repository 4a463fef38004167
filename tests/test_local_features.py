"""Local features find a known image inside a crop, a turn, a screenshot or a collage, and say where.

What a user relies on: the known image is found in the edited frame and the region reported is
where it lies (within a few pixels); images that share only a logo, a watermark or a caption band
are not matched; a flat image has no features and is no error; the value pickles and stays within
its size cap; OpenCV is imported only when local features are used.
"""

from __future__ import annotations

import dataclasses
import io
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fixtures.generate import scene
from matcher import local_features as lf
from matcher.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
SIZE = (640, 480)


@pytest.fixture(scope="module")
def known_image() -> Image.Image:
    return scene(11, *SIZE, "landscape")


@pytest.fixture(scope="module")
def known(known_image: Image.Image) -> lf.LocalFeatures:
    return lf.extract(known_image)


def true_corners(matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    points = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], float) @ matrix.T
    return points[:, :2] / points[:, 2:3]


def assert_found(
    frame: Image.Image, known: lf.LocalFeatures, matrix: np.ndarray, tolerance: float = 4.0
) -> lf.LocalMatch:
    """``known`` is verified in ``frame`` and its corners land within ``tolerance`` px of the truth."""
    match = lf.verify(lf.extract(frame, lf.QUERY_PARAMS), known)
    assert match is not None, "known image not found"
    assert match.inliers >= lf.DEFAULT_RULE.min_inliers
    truth = true_corners(matrix, (known.width, known.height))
    error = np.abs(np.array(match.corners) - truth).max()
    assert error <= tolerance, f"corners off by {error:.1f} px: {match.corners} vs {truth.tolist()}"
    lo, hi = np.clip(truth.min(axis=0), 0, frame.size), np.clip(truth.max(axis=0), 0, frame.size)
    assert np.abs(np.array(match.region) - [*lo, *hi]).max() <= tolerance + 1
    return match


def shift(dx: float, dy: float) -> np.ndarray:
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], float)


def test_found_in_a_20_percent_crop(known_image, known):
    frame = known_image.crop((64, 48, 576, 432))  # 20 % off each dimension, centred
    match = assert_found(frame, known, shift(-64, -48))
    assert match.region == (0, 0, 512, 384)  # the whole frame is the known image
    assert match.scale == pytest.approx(1.0, abs=0.02)


def test_found_turned_10_degrees(known_image, known):
    frame = known_image.rotate(10, Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0))
    a = math.radians(10)
    turn = np.array([[math.cos(a), math.sin(a), 0], [-math.sin(a), math.cos(a), 0], [0, 0, 1]])
    matrix = shift(frame.size[0] / 2, frame.size[1] / 2) @ turn @ shift(-SIZE[0] / 2, -SIZE[1] / 2)
    match = assert_found(frame, known, matrix)
    assert match.rotation == pytest.approx(10, abs=1)


def chat_canvas(size: tuple[int, int]) -> Image.Image:
    """An interface-like canvas: header bar, avatars and lines of text, an input bar."""
    canvas = Image.new("RGB", size, (236, 238, 242))
    draw = ImageDraw.Draw(canvas)
    w, h = size
    draw.rectangle((0, 0, w, 70), fill=(40, 90, 160))
    draw.text((30, 20), "Group chat  12 members", fill=(255, 255, 255), font_size=28)
    for i in range(10):
        draw.ellipse((20, 100 + 110 * i, 60, 140 + 110 * i), fill=(90 + 10 * i, 120, 160))
        draw.text((80, 105 + 110 * i), f"someone {i}: see this one", fill=(30, 30, 30), font_size=22)
    draw.rectangle((0, h - 90, w, h), fill=(250, 250, 250))
    draw.text((30, h - 60), "Type a message", fill=(120, 120, 120), font_size=26)
    return canvas


def test_found_in_a_screenshot(known_image, known):
    canvas = chat_canvas((720, 1280))
    box = (110, 400, 110 + 512, 400 + 384)  # the image at 71 % of the canvas width
    canvas.paste(known_image.resize((512, 384), Image.Resampling.BICUBIC), box[:2])
    match = assert_found(canvas, known, shift(110, 400) @ np.diag([0.8, 0.8, 1]), tolerance=6)
    assert match.region == pytest.approx(box, abs=6)


def test_found_in_a_2x2_collage_tile(known_image, known):
    others = [scene(seed, *SIZE, kind) for seed, kind in ((21, "shapes"), (22, "text"), (23, "landscape"))]
    canvas = Image.new("RGB", SIZE)
    tiles = [others[0], others[1], known_image, others[2]]  # the known image bottom-left
    for k, tile in enumerate(tiles):
        canvas.paste(tile.resize((320, 240), Image.Resampling.BICUBIC), ((k % 2) * 320, (k // 2) * 240))
    match = assert_found(canvas, known, shift(0, 240) @ np.diag([0.5, 0.5, 1]))
    assert match.region == pytest.approx((0, 240, 320, 480), abs=4)


def test_found_among_many_known_images(known_image, known):
    """The vote over a known set puts the right image first; unrelated known images are not found."""
    others = [lf.extract(scene(seed, *SIZE, kind)) for seed, kind in ((31, "landscape"), (32, "shapes"), (33, "text"))]
    catalogue = [*others[:2], known, others[2]]
    frame = lf.extract(known_image.crop((0, 0, 560, 480)), lf.QUERY_PARAMS)  # 12.5 % cut from the right
    found = lf.find(frame, catalogue)
    assert [position for position, _ in found] == [2]


def with_logo(img: Image.Image) -> Image.Image:
    out = img.copy()
    mark = scene(4242, 140, 70, "shapes")
    ImageDraw.Draw(mark).text((10, 22), "BRAND", fill=(255, 255, 255), font_size=26)
    out.paste(mark, (out.size[0] - 150, out.size[1] - 80))
    return out


def with_watermark(img: Image.Image) -> Image.Image:
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for k in range(3):
        draw.text((40, 120 + 100 * k), "example-watermark.com (c) 2024", fill=(255, 255, 255, 120), font_size=34)
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


def with_caption(img: Image.Image) -> Image.Image:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, 400, 640, 480), fill=(24, 24, 32))
    draw.text((24, 418), "SHARED CAPTION  same text 2024", fill=(250, 250, 250), font_size=40)
    return out


@pytest.mark.parametrize("overlay", [with_logo, with_watermark, with_caption], ids=["logo", "watermark", "caption"])
def test_a_shared_region_alone_is_not_a_match(overlay):
    """Two unrelated scenes carrying the same logo, watermark or caption band are not linked, in
    either direction, while each is still found in its own edited copy."""
    first, second = overlay(scene(41, *SIZE, "landscape")), overlay(scene(42, *SIZE, "shapes"))
    for a, b in ((first, second), (second, first)):
        assert lf.verify(lf.extract(b, lf.QUERY_PARAMS), lf.extract(a)) is None
        assert lf.verify(lf.extract(a.crop((40, 0, 640, 480)), lf.QUERY_PARAMS), lf.extract(a)) is not None


@pytest.mark.parametrize("overlay", [with_logo, with_caption], ids=["logo", "caption"])
def test_between_two_evidence_frames_a_shared_region_is_not_a_match(overlay):
    """Frames extracted alike (evidence against evidence) match a shared logo or caption point for
    point; the evidence-pair rule refuses it (the inliers' hull is thin) yet links a real crop."""
    first, second = overlay(scene(41, *SIZE, "landscape")), overlay(scene(42, *SIZE, "shapes"))
    for a, b in ((first, second), (second, first)):
        fa, fb = lf.extract(a, lf.QUERY_PARAMS), lf.extract(b, lf.QUERY_PARAMS)
        assert lf.verify(fb, fa, lf.EVIDENCE_PAIR_RULE) is None
        cropped = lf.extract(a.crop((40, 30, 600, 450)), lf.QUERY_PARAMS)
        assert lf.verify(cropped, fa, lf.EVIDENCE_PAIR_RULE) is not None


def as_jpeg(img: Image.Image, quality: int = 95) -> Image.Image:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


#: Text cards of the robustness benchmark that share words in one font (seed, width, height): the
#: default rule before the inlier share verified each pair with 15-34 inliers among 62-89 matches;
#: the last (2000050 in 2000358) verified when the ratio test moved to the known side, before the
#: spread condition (``min_spread_few``).
TEXT_CARD_PAIRS = [
    ((2000020, 220, 391), (2000290, 234, 416)),
    ((2000517, 241, 321), (2000020, 220, 391)),
    ((2000427, 470, 470), (2000392, 245, 435)),
    ((2000099, 436, 245), (2000251, 264, 198)),
    ((2000307, 453, 302), (2000102, 406, 508)),
    ((2000588, 379, 284), (2000041, 260, 346)),
    ((2000050, 378, 302), (2000358, 189, 284)),
    # "thunder" in one font on both (third 2026-12-05 session): 23 of 32 inliers at 0.75 of the size,
    # a hull of 0.13 (the small-view excuse at a share of 0.7 and a hull minimum of 0.12 let it through)
    ((1000021, 297, 223), (2000207, 274, 488)),
]


@pytest.mark.parametrize("query_card, known_card", TEXT_CARD_PAIRS, ids=[str(q[0]) for q, _ in TEXT_CARD_PAIRS])
def test_text_cards_sharing_words_are_not_a_match(query_card, known_card):
    """Two different text cards that share a word or two in the same font are not linked: the word
    matches point for point, but most tentative matches disagree (the inlier share is below 55 %) or the
    inliers cluster on the word (their hull is under 12 % of the card).
    Each card is still found in its own 20 % crop."""
    query = as_jpeg(scene(query_card[0], query_card[1], query_card[2], "text"))
    known_image = as_jpeg(scene(known_card[0], known_card[1], known_card[2], "text"))
    frame, known = lf.extract(query, lf.QUERY_PARAMS), lf.extract(known_image)
    assert lf.verify(frame, known) is None
    without_share = lf.MatchRule(  # the rule before the share
        min_share=0.0, hole_inliers=30, hole_share=1.0, ratio_test="frame", min_spread_few=0.0
    )
    # the pair is a real test of the rule (with ORB's own border and the detection before, as when it was found)
    before = dataclasses.replace(lf.QUERY_PARAMS, edge_threshold=lf.ORB_EDGE, detect_factor=2)
    assert any(lf.verify(f, known, without_share) is not None for f in (frame, lf.extract(query, before)))
    w, h = known_image.size
    cropped = known_image.crop((round(w * 0.1), round(h * 0.1), round(w * 0.9), round(h * 0.9)))
    assert lf.verify(lf.extract(cropped, lf.QUERY_PARAMS), known) is not None


def test_a_shared_background_with_another_foreground_is_not_the_known_picture():
    """A panning video's frame 2 s before the known still shows the still's background, shifted,
    with its foreground elsewhere: its points agree (19 of 24) but leave a hole at full size, which
    is excused only for views shown smaller than the known image (a tile's lost fine texture)."""
    import av

    from fixtures.video import video

    frames = {}
    with av.open(io.BytesIO(video(22, seconds=5, size=(320, 240)))) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number in (0, 50):
                frames[number] = frame.to_image()
            if number >= 50:
                break
    known, earlier = lf.extract(frames[50]), lf.extract(frames[0], lf.QUERY_PARAMS)
    assert lf.verify(earlier, known) is None
    excused_at_any_scale = lf.MatchRule(hole_scale=100.0)
    match = lf.verify(earlier, known, excused_at_any_scale)
    assert match is not None and match.scale > 0.8 and match.hole > lf.DEFAULT_RULE.max_hole


def test_a_smooth_picture_is_detected_again_at_lower_thresholds_and_found_turned():
    """A soft plasma gives ORB one corner at its usual threshold: the extraction runs again at
    lower thresholds (``retry_thresholds``), so the picture has features and is found turned."""
    image = as_jpeg(scene(1000027, 305, 458, "plasma"))
    once = dataclasses.replace(lf.KNOWN_PARAMS, retry_thresholds=())
    assert len(lf.extract(image, once)) < 10
    known = lf.extract(image)
    assert len(known) == lf.KNOWN_PARAMS.max_keypoints
    turned = as_jpeg(image.rotate(10, Image.Resampling.BICUBIC))
    assert lf.verify(lf.extract(turned, lf.QUERY_PARAMS), known) is not None


@pytest.mark.parametrize(
    "seed, size, kind",
    [(1000004, (227, 303), "landscape"), (1000000, (213, 319), "text"), (1000008, (240, 300), "shapes")],
)
def test_a_half_size_copy_of_a_small_picture_is_found(seed, size, kind):
    """A frame under 256 pixels is scaled up before detection (``min_side``): a half-size copy of a
    small picture (113 x 151) is found; without the scaling, ORB's border leaves too little."""
    image = as_jpeg(scene(seed, *size, kind))
    known = lf.extract(image)
    half = as_jpeg(image.resize((size[0] // 2, size[1] // 2), Image.Resampling.BICUBIC))
    assert lf.verify(lf.extract(half, lf.QUERY_PARAMS), known) is not None
    native = dataclasses.replace(lf.QUERY_PARAMS, min_side=0)
    assert lf.verify(lf.extract(half, native), known) is None


def test_a_small_frame_keeps_a_four_pixel_inlier_distance():
    """A 28 % crop of a 385-pixel plasma is a 277-pixel frame: an inlier distance scaled with the
    frame's size (1.7 px) leaves too few of its coarse-level keypoints as inliers; the floor of 4
    pixels (``reprojection_floor``) finds it."""
    image = as_jpeg(scene(1000001, 385, 385, "plasma"))
    known = lf.extract(image)
    w, h = image.size
    crop = as_jpeg(image.crop((round(w * 0.14), round(h * 0.14), round(w * 0.86), round(h * 0.86))))
    frame = lf.extract(crop, lf.QUERY_PARAMS)
    assert lf.verify(frame, known) is not None
    assert lf.verify(frame, known, dataclasses.replace(lf.DEFAULT_RULE, reprojection_floor=0.0)) is None


def test_the_inlier_share_bounds_the_estimators_iterations():
    assert lf.MatchRule(min_share=0.0).max_iterations == 2000
    assert lf.DEFAULT_RULE.max_iterations < 300  # 55 %: 30 draws give 99.5 % confidence, twice that
    with pytest.raises(UsageError):
        lf.MatchRule(min_share=1.5)


def test_a_flat_image_has_no_features_and_is_no_error(known):
    flat = lf.extract(Image.new("RGB", SIZE, (120, 130, 140)))
    assert len(flat) == 0 and flat.descriptors.shape == (0, lf.DESCRIPTOR_BYTES)
    assert (flat.width, flat.height) == SIZE
    assert (
        lf.verify(flat, known) is None and lf.verify(lf.extract(Image.new("L", (8, 8)), lf.QUERY_PARAMS), known) is None
    )
    assert lf.find(flat, [known]) == []


def test_the_value_pickles_and_round_trips_its_stored_form(known):
    again = pickle.loads(pickle.dumps(known))
    assert again == known and not again.descriptors.flags.writeable
    assert lf.LocalFeatures.from_bytes(known.to_bytes()) == known
    assert np.allclose(again.xy(), known.xy())
    with pytest.raises(UsageError):
        lf.LocalFeatures.from_bytes(known.to_bytes()[:-1])


@pytest.mark.parametrize("seed, kind", [(71, "landscape"), (73, "text")])
def test_a_frames_voters_are_spread_over_its_quarters_and_its_pyramid_levels(seed, kind):
    """The index votes with 400 of a frame's 1,500 descriptors: each quarter of the frame gets a
    fair share (a known image shown as one tile of a 2 x 2 collage votes with its tile's share), and
    so does each quarter of the stored order, which runs through ORB's pyramid levels (a known image
    shown small or large finds its scale among them). A frame with fewer keypoints votes with all."""
    frame = lf.extract(scene(seed, 640, 480, kind), lf.QUERY_PARAMS)
    assert len(frame) == lf.QUERY_PARAMS.max_keypoints
    rows = lf.voting_rows(frame, 400)
    assert len(rows) == 400 and np.all(np.diff(rows) > 0)
    xy = frame.xy()[rows]
    quarters = np.histogram2d(xy[:, 0], xy[:, 1], bins=2, range=[[0, 640], [0, 480]])[0]
    assert quarters.min() >= 80, quarters  # of 100 each when even
    levels = np.histogram(rows, bins=4, range=(0, len(frame)))[0]
    assert levels.min() >= 75, levels
    few = lf.extract(scene(seed, 200, 150, kind))
    assert np.array_equal(lf.voting_rows(few, 400), np.arange(len(few)))


def test_the_size_cap_holds():
    """A busy known image keeps at most its cap of keypoints: at most 8 KB stored (43 bytes a
    keypoint in an index)."""
    busy = scene(51, 1600, 1200, "shapes")
    features = lf.extract(busy)
    assert 50 <= len(features) <= lf.KNOWN_PARAMS.max_keypoints
    assert len(lf.extract(busy, lf.ExtractParams(max_keypoints=60, max_side=640))) == 60
    assert features.descriptors.shape[1] == lf.DESCRIPTOR_BYTES and features.descriptors.dtype == np.uint8
    assert len(features.to_bytes()) <= 8192 and 43 * lf.KNOWN_PARAMS.max_keypoints + 24 <= 8192
    assert len(lf.extract(busy, lf.QUERY_PARAMS)) <= lf.QUERY_PARAMS.max_keypoints
    assert (features.width, features.height) == (1600, 1200)  # coordinates in the frame's pixels


@pytest.mark.parametrize(
    "params",
    [lf.KNOWN_PARAMS, lf.QUERY_PARAMS, lf.inset_params(), dataclasses.replace(lf.KNOWN_PARAMS, response_floor=0.3)],
)
def test_describing_only_the_kept_keypoints_gives_what_describing_all_would(params):
    """Extraction describes only the keypoints the grid keeps (a third of ORB's detections for
    frames): the features are exactly those of describing every detection, then keeping the same
    keypoints, on busy and smooth pictures, large and small (upscaled), at the first FAST threshold
    and after a retry."""
    import cv2

    pictures = [
        scene(seed, w, h, kind)
        for seed, (w, h), kind in [
            (61, (640, 480), "landscape"),
            (62, (640, 480), "text"),
            (63, (900, 700), "shapes"),
            (64, (640, 480), "plasma"),
            (65, (200, 150), "landscape"),
            (66, (300, 420), "plasma"),
        ]
    ]
    for picture in pictures:
        work = lf.prepare(picture, params).work
        keypoints, descriptors = (), None  # the largest set, as the retries keep
        for threshold in (params.fast_threshold, *params.retry_thresholds):
            orb = cv2.ORB_create(
                nfeatures=params.max_keypoints * params.detect_factor,
                scaleFactor=params.scale_factor,
                nlevels=params.levels,
                fastThreshold=threshold,
                edgeThreshold=params.edge_threshold,
            )
            found, described = orb.detectAndCompute(work, None)
            if len(found) > len(keypoints):
                keypoints, descriptors = found, described
            if len(keypoints) >= params.max_keypoints / 2:
                break
        expected = lf.features_from_keypoints(keypoints, descriptors, picture.size, work.shape[::-1], params)
        assert lf.extract(picture, params) == expected, picture.size
        assert len(expected) > 0


def test_bad_rules_and_parameters_are_usage_errors():
    with pytest.raises(UsageError):
        lf.MatchRule(model="projective")
    with pytest.raises(UsageError):
        lf.MatchRule(model="similarity", method="magsac")
    with pytest.raises(UsageError):
        lf.ExtractParams(max_keypoints=0)
    with pytest.raises(UsageError):
        lf.ExtractParams(min_side=1000, max_side=640)
    with pytest.raises(UsageError):
        lf.ExtractParams(retry_thresholds=(4, 0))
    with pytest.raises(UsageError):
        lf.MatchRule(ratio_test="both")
    with pytest.raises(UsageError):
        lf.MatchRule(min_spread_few=1.5)
    with pytest.raises(UsageError):
        lf.MatchRule(reprojection_floor=-1.0)


def test_opencv_is_imported_only_when_used():
    code = "import sys, matcher, matcher.local_features; print('cv2' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "False"


def test_without_opencv_the_error_says_how_to_install(monkeypatch, known):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    with pytest.raises(lf.LocalFeaturesUnavailableError, match="perceptual-matcher\\[local\\]"):
        lf.extract(Image.new("RGB", SIZE))
    with pytest.raises(lf.LocalFeaturesUnavailableError):
        lf.verify(known, known)


def test_the_pipeline_extracts_local_features_when_asked(known_image, known):
    from matcher import pipeline

    buffer = io.BytesIO()
    known_image.save(buffer, "PNG")
    asked = pipeline.FeatureRequest(("pdq",), local=lf.KNOWN_PARAMS)
    decoded = pipeline.decode(buffer.getvalue(), asked, pipeline.HashOptions())
    (frame,) = decoded.frames
    assert frame.descriptors is not None
    assert np.array_equal(frame.descriptors.descriptors, known.descriptors)
    plain = pipeline.decode(buffer.getvalue(), pipeline.FeatureRequest(("pdq",)), pipeline.HashOptions())
    assert plain.frames[0].descriptors is None


def test_a_match_found_in_an_inset_is_moved_into_the_frames_pixels() -> None:
    """``moved``: the transform followed by the shift (a known point lands where it did, plus the
    inset's corner), corners and region shifted; the rest unchanged."""
    image = scene(77, 640, 480, "landscape")
    match = lf.verify(
        lf.extract(image.crop((40, 30, 600, 450)), lf.QUERY_PARAMS),
        lf.extract(image, lf.KNOWN_PARAMS),
    )
    assert match is not None
    out = lf.moved(match, 100, 50)
    m, n = np.array(match.transform).reshape(3, 3), np.array(out.transform).reshape(3, 3)
    for x, y in ((0, 0), (320, 240), (639, 479)):
        a, b = m @ (x, y, 1), n @ (x, y, 1)
        assert np.allclose(b[:2] / b[2], a[:2] / a[2] + (100, 50))
    assert out.corners == tuple((x + 100, y + 50) for x, y in match.corners)
    assert out.region == (match.region[0] + 100, match.region[1] + 50, match.region[2] + 100, match.region[3] + 50)
    assert (out.inliers, out.matches, out.scale, out.rotation, out.hole) == (
        match.inliers,
        match.matches,
        match.scale,
        match.rotation,
        match.hole,
    )


@pytest.mark.parametrize(("kind", "seed"), [("shapes", 38), ("landscape", 51), ("text", 44)])
def test_a_heavy_crop_is_found_because_frames_are_detected_near_their_edges(kind: str, seed: int) -> None:
    """A 30 % centred crop of a 400 x 300 original is a 280 x 210 frame, where ORB's own 31-pixel
    border of every pyramid level takes half of it, and the crop's edges cut through the known
    image: frames are detected up to 24 pixels from their edges (``QUERY_PARAMS``), which finds
    these crops; with ORB's 31 they are not. Insets keep 31 (a whole picture's edges)."""
    image = scene(seed, 400, 300, kind)
    known = lf.extract(image, lf.KNOWN_PARAMS)
    crop = image.crop((60, 45, 340, 255))
    frame = lf.extract(crop, lf.QUERY_PARAMS)
    xy = frame.xy()
    assert (np.minimum(xy, np.array([280, 210]) - xy).min(axis=1) < 31).any()  # keypoints within ORB's border
    match = lf.verify(frame, known)
    assert match is not None and match.inliers >= lf.DEFAULT_RULE.min_inliers
    assert lf.verify(lf.extract(crop, dataclasses.replace(lf.QUERY_PARAMS, edge_threshold=lf.ORB_EDGE)), known) is None
    assert lf.inset_params().edge_threshold == lf.ORB_EDGE == lf.KNOWN_PARAMS.edge_threshold
    assert lf.inset_params() == dataclasses.replace(lf.QUERY_PARAMS, edge_threshold=31)
