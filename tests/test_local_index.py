"""Local features in the index: stored for images added (not hash lists), format 3 with an upgrade
path, removal, sharding, info and export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fixtures.generate import scene
from matcher import local_features as lf
from matcher.cli import main
from matcher.index import FORMAT_VERSION, KnownIndex, open_any, split_index
from matcher.index.importing import import_sources
from matcher.index.local_table import LocalTable, local_file_names, pack_points, unpack_points
from matcher.index.manifest import body_digest, sha256_file

KINDS = ("landscape", "shapes", "text")


@pytest.fixture(scope="module")
def known_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("known")
    for i in range(3):
        scene(300 + i, 640, 480, KINDS[i]).save(folder / f"k{i}.png")
    return folder


@pytest.fixture(scope="module")
def indexed(known_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ix") / "ix"
    with KnownIndex.create(path) as index:
        import_sources(index, [known_dir], list_name="known")
    return path


def crop20(i: int) -> lf.LocalFeatures:
    image = scene(300 + i, 640, 480, KINDS[i])
    return lf.extract(image.crop((64, 48, 576, 432)), lf.QUERY_PARAMS)


def test_images_added_keep_their_local_features_in_the_generation(indexed: Path, known_dir: Path) -> None:
    manifest = json.loads((indexed / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION == 4
    assert manifest["local"]["records"] == 3 and manifest["local"]["keypoints"] <= 600
    for name in local_file_names():
        assert name in manifest["files"] and (indexed / manifest["directory"] / name).is_file()
    with KnownIndex.open(indexed) as index:
        assert index.local_records == 3
        info = index.info()["local"]
        assert info["records"] == 3 and 0 < info["bytes"] <= 3 * 9200
        stored = index.record_local([1, 2, 3])
        assert sorted(stored) == [1, 2, 3]
        again = lf.extract(scene(300, 640, 480, KINDS[0]), lf.KNOWN_PARAMS)
        assert stored[1] == again  # the stored form is the extraction, bit for bit
        # descriptors are searchable as stored: one contiguous array, owners beside it
        descriptors = np.load(indexed / manifest["directory"] / "local.descriptors.npy", allow_pickle=False)
        assert descriptors.dtype == np.uint8 and descriptors.shape == (manifest["local"]["keypoints"], 32)
        hits = index.find_local([crop20(1)])[0]
        assert [hit.record for hit in hits] == [2] and hits[0].match.inliers >= 15


def test_hash_lists_and_no_local_add_no_local_features(known_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "ix"
    with KnownIndex.create(path) as index:
        import_sources(index, [known_dir], list_name="known", local=False)
        assert index.local_records == 0 and index.info()["local"] == {"records": 0, "keypoints": 0, "bytes": 0}
        assert index.find_local([crop20(0)]) == [[]]
    assert "local" not in json.loads((path / "manifest.json").read_text())


def test_cli_add_no_local_info_and_export_note(known_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "ix"
    assert main(["index", "create", str(path)]) == 0
    assert main(["index", "add", str(path), str(known_dir / "k0.png"), "--no-local", "-q"]) == 0
    assert main(["index", "add", str(path), str(known_dir / "k1.png"), "-q"]) == 0
    capsys.readouterr()
    assert main(["index", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "local features: 1 images" in out
    assert main(["index", "export", str(path), "-o", str(tmp_path / "out.jsonl")]) == 0
    assert "local features (1 images) are not exported" in capsys.readouterr().err


def test_format_2_index_opens_finds_by_hash_and_gets_local_features_when_images_are_added(
    known_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "old"
    with KnownIndex.create(path) as index:
        import_sources(index, [known_dir / "k0.png"], list_name="known", local=False)
    document = json.loads((path / "manifest.json").read_text())
    document["format_version"] = 2  # what matcher before local features wrote: no local key, no local files
    document.pop("manifest_sha256")
    document["manifest_sha256"] = body_digest(document)
    (path / "manifest.json").write_text(json.dumps(document))
    with KnownIndex.open(path, writable=True) as index:
        assert index.info()["format_version"] == 2 and index.local_records == 0
        assert index.find_local([crop20(0)]) == [[]]
        import_sources(index, [known_dir / "k1.png"], list_name="known")
        assert index.info()["format_version"] == FORMAT_VERSION and index.local_records == 1
    with KnownIndex.open(path) as index:
        assert [hit.record for hit in index.find_local([crop20(1)])[0]] == [2]


def test_local_arrays_of_format_3_as_first_released_open_and_are_packed_on_the_next_write(
    indexed: Path, known_dir: Path, tmp_path: Path
) -> None:
    """Generations of format 3 (uint16 (m, 2) points) open, search and give back their features;
    the next write stores the packed form (uint8 (m, 3)) as format 4."""
    import shutil

    path = tmp_path / "legacy"
    shutil.copytree(indexed, path)
    document = json.loads((path / "manifest.json").read_text())
    points_file = path / document["directory"] / "local.points.npy"
    np.save(points_file, unpack_points(np.load(points_file)), allow_pickle=False)  # the first release's layout
    entry = sha256_file(points_file)
    document["files"]["local.points.npy"] = {"size": entry.size, "sha256": entry.sha256}
    document["format_version"] = 3  # what wrote that layout
    document.pop("manifest_sha256")
    document["manifest_sha256"] = body_digest(document)
    (path / "manifest.json").write_text(json.dumps(document))
    with KnownIndex.open(path) as index:
        legacy = index.record_local([1, 2, 3])
        assert [hit.record for hit in index.find_local([crop20(0)])[0]] == [1]
    with KnownIndex.open(indexed) as index:
        assert legacy == index.record_local([1, 2, 3])
    extra = tmp_path / "extra"
    extra.mkdir()
    scene(399, 640, 480, "shapes").save(extra / "k3.png")
    with KnownIndex.open(path, writable=True) as index:
        import_sources(index, [extra], list_name="known")
        assert index.local_records == 4 and index.record_local([1, 2, 3]) == legacy
        assert [hit.record for hit in index.find_local([crop20(2)])[0]] == [3]
    document = json.loads((path / "manifest.json").read_text())
    points = np.load(path / document["directory"] / "local.points.npy", allow_pickle=False)
    assert points.dtype == np.uint8 and points.shape == (document["local"]["keypoints"], 3)
    assert document["format_version"] == FORMAT_VERSION == 4  # a matcher of format 3 refuses it plainly


def test_positions_pack_losslessly_on_the_extraction_grid() -> None:
    steps = np.arange(lf.POINT_STEPS + 1)
    points = np.rint(np.stack([steps, steps[::-1]], axis=1) * (65535 / lf.POINT_STEPS)).astype(np.uint16)
    packed = pack_points(points)
    assert packed.dtype == np.uint8 and packed.shape == (len(points), 3)
    assert np.array_equal(unpack_points(packed), points)
    features = lf.extract(scene(301, 640, 480, "shapes"), lf.KNOWN_PARAMS)
    assert np.array_equal(unpack_points(pack_points(features.points)), features.points)


def test_remove_drops_local_features_and_the_rest_still_match(indexed: Path, tmp_path: Path) -> None:
    import shutil

    path = tmp_path / "copy"
    shutil.copytree(indexed, path)
    with KnownIndex.open(path, writable=True) as index:
        index.remove_records([2])
        assert index.local_records == 2 and sorted(index.record_local([1, 2, 3])) == [1, 3]
        assert index.find_local([crop20(1)]) == [[]]
        assert [hit.record for hit in index.find_local([crop20(2)])[0]] == [3]
        index.remove_list("known")
        assert index.local_records == 0
    assert "local" not in json.loads((path / "manifest.json").read_text())


def test_sharded_index_keeps_each_records_local_features(indexed: Path, tmp_path: Path) -> None:
    target = tmp_path / "sharded"
    split_index(indexed, target, shards=2)
    with open_any(target) as sharded:
        assert sharded.local_records == 3 and sharded.info()["local"]["records"] == 3
        for i in range(3):
            assert [hit.record for hit in sharded.find_local([crop20(i)])[0]] == [i + 1]


def test_local_table_arrays_are_checked_against_the_manifest(indexed: Path) -> None:
    with KnownIndex.open(indexed) as index:
        features = index.record_local([1, 2, 3])
    table = LocalTable.build(sorted(features.items()))
    assert table is not None and len(table) == 3
    arrays = table.arrays()
    from matcher.errors import IndexStoreError

    with pytest.raises(IndexStoreError, match="shape"):
        LocalTable.from_arrays(arrays, {**table.counts(), "keypoints": table.keypoints + 1}, "here")
    bad = dict(arrays, owners=np.full_like(arrays["owners"], 7))
    with pytest.raises(IndexStoreError, match="out of range"):
        LocalTable.from_arrays(bad, table.counts(), "here")


def test_without_opencv_images_are_added_without_local_features_and_scan_runs_without_them(
    known_dir: Path, indexed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from matcher.local_features import LocalFeaturesUnavailableError
    from matcher.scan import ScanOptions, scan

    monkeypatch.setitem(sys.modules, "cv2", None)  # OpenCV (the optional extra 'local') not installed
    path = tmp_path / "ix"
    with KnownIndex.create(path) as index:
        summary = import_sources(index, [known_dir / "k0.png"], list_name="known")
        assert summary.added == 1 and summary.problems == 0 and index.local_records == 0
        with pytest.raises(LocalFeaturesUnavailableError, match="OpenCV"):
            import_sources(index, [known_dir / "k1.png"], list_name="known", local=True)
    # an index holding local features is scanned without the stage (by default), or refused with --local
    records = list(scan([str(known_dir / "k1.png")], str(indexed), ScanOptions(workers=1)))
    assert records[0].status == "match" and all(m.variant != "local" for m in records[0].matches)
    with pytest.raises(LocalFeaturesUnavailableError):
        list(scan([str(known_dir / "k1.png")], str(indexed), ScanOptions(workers=1, local=True)))
