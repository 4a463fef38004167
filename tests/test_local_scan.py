"""The local-feature stage of a scan, end to end (index add of images, then scan): the known image
found inside a crop, a screenshot and a collage tile that the global hashes miss, with its region and
inliers; off with --no-local; no match for unrelated images nor for images that share only a logo,
a watermark, a caption band or an interface; reports and the run manifest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures.generate import scene
from fixtures.interface import ROWS, chat_canvas
from fixtures.rooms import overlay
from matcher import local_features
from matcher.cli import main
from matcher.index import KnownIndex
from matcher.index.importing import import_sources
from matcher.scan import ScanOptions, scan

KINDS = ("landscape", "shapes", "text")
SIZE = (640, 480)


def known_image(i: int) -> Image.Image:
    return scene(400 + i, *SIZE, KINDS[i % 3])


def interface(size: tuple[int, int]) -> Image.Image:
    """A chat-app-like canvas (:func:`fixtures.interface.chat_canvas`) with its own avatars and messages."""
    return chat_canvas(size, [(60 + 15 * i, 120, 200 - 10 * i) for i in range(ROWS)], [97 * i for i in range(ROWS)])


def screenshot(image: Image.Image, fraction: float = 0.7, at: tuple[int, int] = (60, 200)) -> Image.Image:
    canvas = interface((720, 1280))
    w = round(720 * fraction)
    h = round(image.size[1] * w / image.size[0])
    canvas.paste(image.resize((w, h), Image.Resampling.BICUBIC), at)
    return canvas


def tile(image: Image.Image, others: list[Image.Image], position: int) -> Image.Image:
    tw, th = SIZE[0] // 2, SIZE[1] // 2
    canvas = Image.new("RGB", SIZE, (255, 255, 255))
    pictures = list(others[:3])
    pictures.insert(position, image)
    for k, picture in enumerate(pictures):
        canvas.paste(picture.resize((tw, th), Image.Resampling.BICUBIC), ((k % 2) * tw, (k // 2) * th))
    return canvas


def shared_screenshot(image: Image.Image) -> Image.Image:
    return screenshot(image, 0.7, (60, 200))


SHARED = {
    "logo": lambda image: overlay("logo", image),
    "watermark": lambda image: overlay("watermark", image),
    "caption": lambda image: overlay("caption", image),
    "interface": shared_screenshot,
}


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("local")
    known, evidence = base / "known", base / "evidence"
    known.mkdir()
    evidence.mkdir()
    for i in range(3):
        known_image(i).save(known / f"k{i}.png")
    # known images that carry a shared region: unrelated evidence with the same region must not match them
    for k, (name, add) in enumerate(SHARED.items()):
        add(scene(600 + k, *SIZE, KINDS[k % 3])).save(known / f"shared_{name}.png")
    others = [scene(900 + i, *SIZE, "landscape") for i in range(3)]
    image = known_image(0)
    image.crop((64, 48, 576, 432)).save(evidence / "crop20.png")
    screenshot(known_image(1), 0.6, (100, 300)).save(evidence / "screenshot.png")
    tile(known_image(2), others, 3).save(evidence / "tile2x2.png")
    for k in range(2):
        scene(700 + k, *SIZE, KINDS[k % 3]).save(evidence / f"unrelated{k}.png")
    for k, (name, add) in enumerate(SHARED.items()):
        add(scene(800 + k, *SIZE, KINDS[(k + 1) % 3])).convert("RGB").save(evidence / f"shares_{name}.jpg", quality=85)
    index = base / "ix"
    with KnownIndex.create(index) as ix:
        import_sources(ix, [known], list_name="known")
    return {"base": base, "known": known, "evidence": evidence, "index": index}


def scan_by_name(case: dict[str, Path], **options: object) -> dict[str, list]:
    out = {}
    for record in scan([str(case["evidence"])], str(case["index"]), ScanOptions(workers=1, **options)):
        out[Path(record.path or "").stem] = list(record.matches)
    return out


def record_name(case: dict[str, Path], record: int) -> str:
    with KnownIndex.open(case["index"]) as index:
        return Path(index.records([record])[0].name or "").stem


def test_scan_finds_the_known_image_inside_a_crop_a_screenshot_and_a_collage_tile(case: dict[str, Path]) -> None:
    found = scan_by_name(case, insets=False)  # (insets find the last two with PDQ first: tests/test_insets.py)
    expected = {"crop20": "k0", "screenshot": "k1", "tile2x2": "k2"}
    for stem, known in expected.items():
        matches = found[stem]
        assert len(matches) == 1, stem
        match = matches[0]
        assert (match.algorithm, match.variant, match.view, match.distance) == ("orb", "local", None, 0)
        assert record_name(case, match.record) == known
        assert match.inliers is not None and match.inliers >= 15
        assert match.transform is not None and len(match.transform) == 9
        assert match.explanation.startswith("known image found inside the frame at x ")
        assert match.explanation.endswith(f"({match.inliers} inliers)")
    # where the known image lies: the whole 512 x 384 crop, the pasted 432 x 324 window, the last tile
    assert _close(found["crop20"][0].region, (0, 0, 512, 384))
    assert _close(found["screenshot"][0].region, (100, 300, 532, 624))
    assert _close(found["tile2x2"][0].region, (320, 240, 640, 480))


def _close(region: tuple[int, int, int, int] | None, truth: tuple[int, int, int, int], slack: int = 12) -> bool:
    return region is not None and all(abs(a - b) <= slack for a, b in zip(region, truth))


def test_global_hashes_alone_miss_them_and_no_local_turns_the_stage_off(case: dict[str, Path]) -> None:
    found = scan_by_name(case, local=False, insets=False)
    for stem in ("crop20", "screenshot", "tile2x2"):
        assert found[stem] == [], stem


def test_unrelated_images_and_images_sharing_only_a_region_do_not_match(case: dict[str, Path]) -> None:
    found = scan_by_name(case)
    for stem, matches in found.items():
        if stem.startswith(("unrelated", "shares_")):
            assert matches == [], (stem, matches)


def test_a_global_match_is_reported_and_the_local_stage_not_run_for_that_frame(case: dict[str, Path]) -> None:
    with KnownIndex.open(case["index"]) as index:
        assert index.local_records == 7
    evidence = case["base"] / "as_is"
    evidence.mkdir(exist_ok=True)
    known_image(1).save(evidence / "k1.jpg", quality=90)  # not the same file: no digest match
    records = list(scan([str(evidence)], str(case["index"]), ScanOptions(workers=1)))
    assert [(m.algorithm, m.variant) for m in records[0].matches][:1] == [("pdq", "orig")]
    assert all(m.variant != "local" for m in records[0].matches)


def test_local_features_are_extracted_only_for_frames_no_global_hash_matched(
    case: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:

    extracted: list[tuple[int, int]] = []
    original = local_features.PendingFeatures.extract

    def counting(self: local_features.PendingFeatures) -> local_features.LocalFeatures:
        extracted.append((self.width, self.height))
        return original(self)

    monkeypatch.setattr(local_features.PendingFeatures, "extract", counting)
    evidence = case["base"] / "mixed"
    evidence.mkdir(exist_ok=True)
    known_image(2).save(evidence / "a_copy.jpg", quality=90)  # PDQ matches it: no extraction
    known_image(0).crop((64, 48, 576, 432)).save(evidence / "b_crop.png")  # only local features find it
    records = {Path(r.path or "").stem: r for r in scan([str(evidence)], str(case["index"]), ScanOptions(workers=1))}
    assert [m.variant for m in records["a_copy"].matches][:1] == ["orig"]
    assert [m.variant for m in records["b_crop"].matches] == ["local"]
    assert extracted == [(512, 384)]  # the crop's frame alone


def test_cli_scan_reports_local_matches_in_jsonl_csv_and_records_the_setting(case: dict[str, Path]) -> None:
    out = case["base"] / "report.jsonl"
    code = main(["scan", str(case["evidence"] / "crop20.png"), "--index", str(case["index"]), "-o", str(out), "-q"])
    assert code == 1
    record = json.loads(out.read_text().splitlines()[0])
    match = record["matches"][0]
    assert match["variant"] == "local" and match["inliers"] >= 15 and len(match["region"]) == 4
    assert len(match["transform"]) == 9 and "found inside the frame" in match["explanation"]
    manifest = json.loads(Path(str(out) + ".manifest.json").read_text())
    assert manifest["parameters"]["local"] is True
    # the settings that decided the local match: the frames' extraction, the match rule and how the
    # index's tree was searched (probes, voters)
    settings = manifest["parameters"]["local_settings"]
    assert {k: v for k, v in settings.items() if k != "search"} == json.loads(
        json.dumps(local_features.match_settings())
    )
    assert settings["search"]["max_queries"] == 400 and settings["search"]["voter_grid"] == local_features.VOTE_GRID
    assert settings["rule"]["min_share"] == local_features.DEFAULT_RULE.min_share
    assert settings["frames"]["max_keypoints"] == local_features.QUERY_PARAMS.max_keypoints
    # frames are detected near their edges (a crop's edges cut through the known image), insets not
    assert (settings["frames"]["edge_threshold"], settings["insets"]["edge_threshold"]) == (24, 31)
    out_csv = case["base"] / "report.csv"
    assert (
        main(
            [
                "scan",
                str(case["evidence"] / "crop20.png"),
                "--index",
                str(case["index"]),
                "-o",
                str(out_csv),
                "--format",
                "csv",
                "-q",
            ]
        )
        == 1
    )
    row = next(csv.DictReader(out_csv.open()))
    assert row["match_variant"] == "local" and "inliers" in row["match_explanation"]
    off = case["base"] / "off.jsonl"
    code = main(
        [
            "scan",
            str(case["evidence"] / "crop20.png"),
            "--index",
            str(case["index"]),
            "-o",
            str(off),
            "--no-local",
            "-q",
        ]
    )
    assert code == 0
    off_parameters = json.loads(Path(str(off) + ".manifest.json").read_text())["parameters"]
    assert off_parameters["local"] is False and off_parameters["local_settings"] is None


def test_vics_report_keeps_a_local_match_for_review(case: dict[str, Path]) -> None:
    out = case["base"] / "report.json"
    code = main(
        [
            "scan",
            str(case["evidence"] / "tile2x2.png"),
            "--index",
            str(case["index"]),
            "-o",
            str(out),
            "--format",
            "vics",
            "--no-insets",
            "-q",
        ]
    )
    assert code == 1
    text = out.read_text()
    assert "local-feature match (known image found inside the frame): for review, not precategorized" in text
    assert "local features (ORB" in text


def test_scan_of_an_index_without_local_features_is_unchanged(case: dict[str, Path], tmp_path: Path) -> None:
    index = tmp_path / "plain"
    with KnownIndex.create(index) as ix:
        import_sources(ix, [case["known"] / "k0.png"], list_name="known", local=False)
    records = list(scan([str(case["evidence"] / "crop20.png")], str(index), ScanOptions(workers=1)))
    assert records[0].status == "no_match"


def test_compare_explains_a_local_match_and_no_local_turns_it_off(case: dict[str, Path], capsys) -> None:
    from matcher.compare import compare

    known = case["known"] / "k1.png"
    evidence = case["evidence"] / "screenshot.png"
    comparison = compare(known, evidence, insets=False)
    assert comparison.match and comparison.local_match is not None
    _record, match = comparison.local_match
    assert match.inliers is not None and match.inliers >= 15 and _close(match.region, (100, 300, 532, 624))
    assert comparison.reason.startswith("match: local features: known image found inside the frame at x ")
    document = comparison.to_dict()
    assert document["settings"]["local"] is True and document["local"]["inliers"] == match.inliers
    off = compare(known, evidence, local=False, insets=False)
    assert not off.match and off.local_match is None
    assert main(["compare", str(known), str(evidence), "--no-insets"]) == 1
    out = capsys.readouterr().out
    assert "local features on" in out and "known image found inside the frame" in out and "inliers" in out
    assert main(["compare", str(known), str(evidence), "--no-local", "--no-insets"]) == 0
    unrelated = compare(known, case["evidence"] / "unrelated0.png")
    assert not unrelated.match and "the known image was not found inside the evidence" in unrelated.reason


def test_a_sharded_index_finds_them_too_on_both_engines(case: dict[str, Path]) -> None:
    """A sharded index runs the local stage on the local engine (a ShardedIndex) and on the Dask
    engine (each shard's worker votes and verifies, the finishing task merges): the same records as
    the unsharded index, frame for frame; the shard catalogue counts the local records."""
    from matcher.index import split_index
    from matcher.index.shards import ShardCatalog
    from matcher.scan.options import resolve_config

    sharded = case["base"] / "sharded"
    if not sharded.exists():
        split_index(case["index"], sharded, shards=2)
    records = list(scan([str(case["evidence"] / "tile2x2.png")], str(sharded), ScanOptions(workers=1, insets=False)))
    assert [(m.variant, record_name(case, m.record)) for m in records[0].matches] == [("local", "k2")]

    catalogue = ShardCatalog.read(sharded)
    with KnownIndex.open(case["index"]) as single:
        assert catalogue.local_records == single.local_records > 0
    assert resolve_config(catalogue, str(sharded), ScanOptions()).local is True  # on by default, as unsharded

    def matches(found: list) -> list:
        return [(r.path, r.status, sorted((m.variant, m.record, m.inliers) for m in r.matches)) for r in found]

    evidence = [str(case["evidence"])]
    reference = matches(list(scan(evidence, str(case["index"]), ScanOptions(workers=1, insets=False))))
    on_dask = matches(list(scan(evidence, str(sharded), ScanOptions(engine="dask", workers=2, insets=False))))
    assert on_dask == reference
    assert sum(v == "local" for _p, _s, found in on_dask for v, _r, _i in found) >= 3
    # the insets' round (a frame's own local search found nothing: its insets are searched) on both
    sheets = case["base"] / "sharded_sheets"
    sheets.mkdir(exist_ok=True)
    contact_sheet(known_image(0)).save(sheets / "sheet.png")
    reference = matches(list(scan([str(sheets)], str(case["index"]), ScanOptions(workers=1))))
    assert [(v, record_name(case, r)) for _p, _s, found in reference for v, r, _i in found] == [("local", "k0")]
    assert matches(list(scan([str(sheets)], str(sharded), ScanOptions(workers=1)))) == reference
    assert matches(list(scan([str(sheets)], str(sharded), ScanOptions(engine="dask", workers=2)))) == reference


def contact_sheet(centre: Image.Image, crop: float = 0.2) -> Image.Image:
    """A 3 x 3 contact sheet (tiles of 213 x 160, white gaps of 4 px) of unrelated scenes with, in
    the centre tile (221-434, 168-328), ``centre`` cropped by ``crop`` (so PDQ on the tile misses)."""
    tw, th, gap = SIZE[0] // 3, SIZE[1] // 3, 4
    sheet = Image.new("RGB", (3 * tw + 4 * gap, 3 * th + 4 * gap), (255, 255, 255))
    w, h = centre.size
    dx, dy = round(w * crop / 2), round(h * crop / 2)
    pictures = [scene(950 + i, *SIZE, ("landscape", "shapes", "text", "plasma")[i % 4]) for i in range(8)]
    pictures.insert(4, centre.crop((dx, dy, w - dx, h - dy)))
    for k, picture in enumerate(pictures):
        sheet.paste(
            picture.resize((tw, th), Image.Resampling.BICUBIC),
            (gap + (k % 3) * (tw + gap), gap + (k // 3) * (th + gap)),
        )
    return sheet


def test_a_tile_of_a_contact_sheet_is_found_by_the_local_features_of_its_inset(
    case: dict[str, Path], tmp_path: Path
) -> None:
    """A 3 x 3 contact sheet's tile holds a ninth of the frame's keypoints, too few to find the known
    image in (the frame's own local search finds nothing, nor do the global hashes of the tile: it
    is a 20 % crop); cut out as an inset it has 1,500 of its own, and the scan finds the known image
    there, its region and transform in the sheet's pixels. With --no-insets it is not found. A sheet
    of unrelated scenes matches nothing."""
    evidence = tmp_path / "sheets"
    evidence.mkdir()
    contact_sheet(known_image(0)).save(evidence / "sheet.png")
    contact_sheet(scene(960, *SIZE, "landscape")).save(evidence / "unrelated_sheet.png")

    sheet = contact_sheet(known_image(0))
    own = local_features.find(
        local_features.extract(sheet, local_features.QUERY_PARAMS),
        [local_features.extract(known_image(0), local_features.KNOWN_PARAMS)],
    )
    assert own == []  # the frame's own keypoints do not find it

    def by_name(**options: object) -> dict[str, list]:
        found = scan([str(evidence)], str(case["index"]), ScanOptions(workers=1, **options))
        return {Path(record.path or "").stem: list(record.matches) for record in found}

    found = by_name()
    assert found["unrelated_sheet"] == []
    assert [(m.algorithm, m.variant, record_name(case, m.record)) for m in found["sheet"]] == [("orb", "local", "k0")]
    match = found["sheet"][0]
    assert match.inliers is not None and match.inliers >= 15
    assert _close(match.region, (221, 168, 434, 328), slack=6)  # the centre tile, in the sheet's pixels
    # the transform takes the known image's centre (its crop's centre) to the tile's centre
    t = match.transform
    assert t is not None
    x, y, w = (t[0] * 320 + t[1] * 240 + t[2], t[3] * 320 + t[4] * 240 + t[5], t[6] * 320 + t[7] * 240 + t[8])
    assert abs(x / w - 327.5) < 6 and abs(y / w - 248) < 6
    assert by_name(insets=False)["sheet"] == []
    assert by_name(local=False)["sheet"] == []


def test_only_single_frame_images_keep_their_working_image_for_later() -> None:
    """Deferring holds a working image (up to 640 x 480 grey) per frame until matching: a still
    image's one frame may wait; frames of animations and videos are extracted at once, so that a
    batch of long animations cannot hold hundreds of megabytes."""
    from matcher.pipeline import FeatureRequest, frame_features

    request = FeatureRequest(("pdq",), local=local_features.QUERY_PARAMS, defer_local=True)
    image = known_image(0)
    still = frame_features(image, request, image.size)
    assert still.descriptors is None and still.pending_local is not None
    assert still.pending_local.work.shape == (480, 640)
    for frame in (
        frame_features(image, request, image.size, index=3),
        frame_features(image, request, image.size, timestamp=2.0),
    ):
        assert frame.pending_local is None and frame.descriptors is not None
        assert np.array_equal(frame.descriptors.descriptors, still.local_set().descriptors)  # type: ignore[union-attr]


def test_a_still_images_insets_keep_their_local_features_pending_as_its_own() -> None:
    """With local features and inset views, a still image's insets carry their own local features
    (boxes in full-scale pixels), pending when the frame's are and extracted at once otherwise;
    frames of animations and videos carry none (a tile search for every frame would multiply the
    stage's cost); without inset views, none."""
    from matcher.pipeline import FeatureRequest, QueryViews, frame_features

    sheet = contact_sheet(known_image(0))
    views = QueryViews(rotations=False, trim_borders=False, regions=frozenset(), insets=True)
    deferred = FeatureRequest(("pdq",), query_views=views, local=local_features.QUERY_PARAMS, defer_local=True)
    still = frame_features(sheet, deferred, sheet.size)
    boxes = [box for box, _ in still.local_insets]
    assert (221, 168, 434, 328) in boxes
    assert all(isinstance(f, local_features.PendingFeatures) for _, f in still.local_insets)
    extracted = dict(still.inset_sets())
    centre = extracted[(221, 168, 434, 328)]
    assert (centre.width, centre.height) == (213, 160) and len(centre) > 500
    at_once = frame_features(
        sheet, FeatureRequest(("pdq",), query_views=views, local=local_features.QUERY_PARAMS), sheet.size
    )
    assert all(isinstance(f, local_features.LocalFeatures) for _, f in at_once.local_insets)
    assert np.array_equal(dict(at_once.inset_sets())[(221, 168, 434, 328)].descriptors, centre.descriptors)
    assert frame_features(sheet, deferred, sheet.size, index=2).local_insets == ()
    assert frame_features(sheet, deferred, sheet.size, timestamp=1.0).local_insets == ()
    no_insets = FeatureRequest(
        ("pdq",),
        query_views=QueryViews(rotations=False, trim_borders=False, regions=frozenset(), insets=False),
        local=local_features.QUERY_PARAMS,
    )
    assert frame_features(sheet, no_insets, sheet.size).local_insets == ()
    # at reduced scale (a JPEG decoded in draft mode): boxes in full-scale pixels, features likewise
    half = sheet.resize((sheet.width // 2, sheet.height // 2))
    scaled = frame_features(half, deferred, sheet.size)
    assert all(b[2] <= sheet.width and b[3] <= sheet.height for b, _ in scaled.local_insets)
    assert any(abs(b[0] - 221) <= 2 and abs(b[2] - 434) <= 2 for b, _ in scaled.local_insets)
