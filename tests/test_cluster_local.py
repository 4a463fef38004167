"""Places: ``matcher cluster --local`` links photos of one room, never images that share only an overlay."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
from functools import cache
from pathlib import Path

import pytest

from fixtures.rooms import OVERLAYS, room_pair, shared_overlay_pair
from matcher import local_features as lf
from matcher import places
from matcher.cluster import ClusterItem, cluster_hashes, cluster_paths, write_cluster_report
from matcher.hashes import Hash
from matcher.local_features import LocalFeaturesUnavailableError
from tests.conftest import run_matcher


@cache
def features(kind: str, seed: int) -> tuple[lf.LocalFeatures, lf.LocalFeatures]:
    """Both images' local features, extracted alike (as clustering does)."""
    a, b = room_pair(seed) if kind == "room" else shared_overlay_pair(kind, seed)
    return lf.extract(a, lf.QUERY_PARAMS), lf.extract(b, lf.QUERY_PARAMS)


@pytest.mark.parametrize("seed", [1, 2])
def test_two_photos_of_one_room_link_with_their_regions(seed: int) -> None:
    a, b = features("room", seed)
    link = places.link_places(a, b)
    assert link is not None and link.inliers >= 40
    # b (a window 0.8 times as large, to the right and lower) covers the right-bottom part of a
    left, top, right, bottom = link.region_a
    assert 270 <= left <= 330 and 90 <= top <= 150 and (right, bottom) == (640, 480)
    left, top, right, bottom = link.region_b
    assert (left, top) == (0, 0) and 400 <= right <= 460 and 420 <= bottom <= 480
    assert link.in_a.scale == pytest.approx(0.8, abs=0.03)
    assert link.to_dict()["inliers"] == link.inliers
    assert places.link_places(b, a) is not None  # symmetric


def test_different_rooms_do_not_link() -> None:
    rooms = [*features("room", 1), *features("room", 2), *features("room", 3)]
    for i, x in enumerate(rooms):
        for j, y in enumerate(rooms):
            if i // 2 != j // 2:
                assert places.link_places(x, y) is None, (i, j)


@pytest.mark.parametrize("kind", OVERLAYS)
def test_a_shared_overlay_does_not_link_unrelated_pictures(kind: str) -> None:
    for seed in (0, 1):
        a, b = features(kind, seed)
        assert places.link_places(a, b) is None
        assert places.link_places(b, a) is None


@pytest.mark.parametrize("kind", ["logo", "watermark", "caption"])
def test_the_spread_condition_is_what_refuses_a_small_shared_region(kind: str) -> None:
    a, b = features(kind, 0)
    loose = dataclasses.replace(places.PLACE_RULE, min_spread=0.0)
    found = lf.verify(a, b, loose)
    assert found is not None and found.inliers >= 15 and found.spread < 0.1  # it matches point for point...
    assert lf.verify(a, b, places.PLACE_RULE) is None  # ...in a thin region


def test_an_interface_around_different_pictures_is_frame_anchored() -> None:
    a, b = features("interface", 0)
    found = lf.verify(a, b, places.PLACE_RULE)
    assert found is not None and found.spread >= 0.1  # wide: the spread alone would link them
    assert places.frame_anchored(found, (a.width, a.height), (b.width, b.height))
    room = places.link_places(*features("room", 1))
    assert room is not None and not places.frame_anchored(room.in_a, (640, 480), (640, 480))


def test_candidates_and_links_among_a_mixed_set() -> None:
    mixed = [
        *features("room", 1),
        *features("logo", 0),
        *features("room", 2),
        *features("interface", 0),
        *features("caption", 1),
        None,
    ]
    candidates = places.place_candidates(mixed)
    assert all(i < j and votes >= places.MIN_VOTES for i, j, votes in candidates)
    assert {(0, 1), (4, 5)} <= {(i, j) for i, j, _ in candidates}
    assert [(i, j) for i, j, _ in places.place_links(mixed)] in ([(0, 1), (4, 5)], [(4, 5), (0, 1)])


def test_faiss_search_finds_the_same_neighbours_flat_and_inverted(monkeypatch: pytest.MonkeyPatch) -> None:
    sets = [*features("room", 1), *features("room", 2)]
    flat = places.FaissBinarySearch(sets)
    exact, owners = flat.search(sets[0].descriptors[:50], 2)
    assert (owners[:, 0] == 0).all() and (exact[:, 0] == 0).all()  # each finds itself first
    monkeypatch.setattr(places, "FLAT_UP_TO", 100)
    inverted = places.FaissBinarySearch(sets)
    assert inverted.quantizer is not None
    _, found = inverted.search(sets[0].descriptors[:50], 1)
    assert (found[:, 0] == 0).mean() >= 0.9


def _item(key: str, local: lf.LocalFeatures, bits: int) -> ClusterItem:
    pdq = Hash("pdq", bytes([bits]) * 32, quality=100)
    return ClusterItem(path=key, width=local.width, height=local.height, hashes={"pdq": {"orig": pdq}}, local=local)


def test_cluster_hashes_groups_a_room_by_its_place_link_only_with_local() -> None:
    a, b = features("room", 1)
    c, d = features("logo", 0)
    items = [_item("a", a, 0x00), _item("b", b, 0xFF), _item("c", c, 0x0F), _item("d", d, 0xF0)]
    assert cluster_hashes(items, algorithms="pdq").multi_groups == 0
    result = cluster_hashes(items, algorithms="pdq", local=True)
    assert result.multi_groups == 1 and result.place_links == 1 and result.links == 1
    group = result.groups[0]
    assert sorted(m.path for m in group.members) == ["a", "b"]
    member = group.members[1]
    assert member.link_algorithm == "local" and member.link_distance is None and member.link_variant is None
    assert member.link_inliers is not None and member.link_inliers >= 40
    record = member.to_dict(["pdq"], local=True)
    assert record["link_region"] == list(member.link_region or ())
    assert record["local_links"][0]["path"] == group.members[0].path
    assert record["local_links"][0]["other_region"] == record["linked_via_region"]
    assert "local_links" not in member.to_dict(["pdq"])  # the old columns stay as they were


def _write_rooms(folder: Path) -> None:
    for seed in (1, 2):
        a, b = room_pair(seed)
        a.save(folder / f"room{seed}_a.jpg", quality=90)
        b.save(folder / f"room{seed}_b.jpg", quality=90)
    x, y = shared_overlay_pair("caption", 0)
    x.save(folder / "caption_x.jpg", quality=90)
    y.save(folder / "caption_y.jpg", quality=90)


def test_cluster_paths_local_links_each_room_and_reports_it(tmp_path: Path) -> None:
    _write_rooms(tmp_path)
    result = cluster_paths([tmp_path], local=True)
    groups = sorted(sorted(Path(m.path or "").name for m in g.members) for g in result.groups if g.size > 1)
    assert groups == [["room1_a.jpg", "room1_b.jpg"], ["room2_a.jpg", "room2_b.jpg"]]
    assert result.summary()["place_links"] == 2 and result.summary()["local"] is True
    out = io.StringIO()
    write_cluster_report(result, out, "csv")
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    linked = [r for r in rows if r["link_algorithm"] == "local"]
    assert len(linked) == 2 and all(int(r["link_inliers"]) >= 15 for r in linked)
    assert all(len(r["link_region"].split("; ")) == 4 for r in linked)
    assert json.loads(linked[0]["local_links"])[0]["inliers"] == int(linked[0]["link_inliers"])
    plain = cluster_paths([tmp_path])
    assert plain.multi_groups == 0 and not plain.local


def test_cluster_local_without_opencv_fails_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.jpg").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(LocalFeaturesUnavailableError, match="needs OpenCV"):
        cluster_paths([tmp_path], local=True)


def test_matcher_cluster_local_command(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    _write_rooms(evidence)
    done = run_matcher("cluster", "--local", "--quiet", "--min-size", "2", evidence)
    assert done.returncode == 0, done.stderr.decode()
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(records) == 4 and {r["group_size"] for r in records} == {2}
    assert sum(r["link_algorithm"] == "local" for r in records) == 2
    assert all(r["local_links"] for r in records)
    plain = run_matcher("cluster", "--quiet", "--min-size", "2", evidence)
    assert plain.returncode == 0 and plain.stdout == b""
