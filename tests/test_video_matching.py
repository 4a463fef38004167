"""Videos in scan, compare and cluster: a re-encoded copy of a known video matches it (vPDQ, with its
percentages and the timestamps of the matching frames), a video holding a known picture matches
that picture, an unrelated video matches nothing, and each video is one record.

All videos are generated (:mod:`fixtures.video`): small ones, so the tests stay fast.
"""

from __future__ import annotations

import io
import json

import av
import pytest

from fixtures.video import VARIANTS, transcode, video
from matcher.cli import main
from matcher.cluster import cluster_paths
from matcher.compare import compare
from matcher.index import KnownIndex
from matcher.scan import ScanOptions, scan
from matcher.scan_records import ScanRecord
from matcher.video_hash import VideoThresholds

SIZE = (320, 240)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("video_matching")
    known, evidence = base / "known", base / "evidence"
    known.mkdir()
    evidence.mkdir()
    original = video(21, seconds=6, size=SIZE)
    (known / "original.mp4").write_bytes(original)
    holder = video(22, seconds=5, size=SIZE)
    with av.open(io.BytesIO(holder)) as container:  # the picture at 2 s of a video, known as an image
        for number, frame in enumerate(container.decode(video=0)):
            if number == 50:
                frame.to_image().save(known / "still.png")
                break
    for name, change in VARIANTS.items():
        if name == "480p":
            change = {"size": (240, 180)}  # the same step down, from this smaller original
        (evidence / f"copy_{name}.mp4").write_bytes(transcode(original, **change))
    (evidence / "holder.mkv").write_bytes(transcode(holder, container="matroska"))
    (evidence / "unrelated.mp4").write_bytes(video(23, seconds=5, size=SIZE))
    index = base / "index"
    KnownIndex.create(index, ["pdq"]).close()
    assert main(["index", "add", str(index), str(known), "--list", "known", "--quiet"]) == 0
    with KnownIndex.open(index) as opened:
        ids = {record.name.rsplit("/", 1)[-1]: record.id for record in opened.iter_records()}
    return base, index, ids


def by_name(records):
    return {record.path.rsplit("/", 1)[-1]: record for record in records}


def test_copies_match_the_known_video_and_a_video_holding_a_known_picture_matches_it(tree):
    base, index, ids = tree
    records = list(scan([base / "evidence"], index))
    assert len(records) == len(VARIANTS) + 2  # one record per video
    found = by_name(records)
    for name in VARIANTS:
        record = found[f"copy_{name}.mp4"]
        assert record.status == "match", (name, record)
        (match,) = record.matches
        assert (match.algorithm, match.record) == ("vpdq", ids["original.mp4"])
        assert match.video["query_percent"] >= 80 and match.video["timestamps"][0] == 0.0
    assert found["copy_trimmed.mp4"].matches[0].video["compared_percent"] < 100  # its ends are cut
    holder = found["holder.mkv"]
    assert holder.status == "match" and [(m.algorithm, m.record) for m in holder.matches] == [("pdq", ids["still.png"])]
    assert holder.matches[0].video == {"timestamps": [2.0]}
    assert [f["frame"] for f in holder.video["frames"]] == [50] and holder.video["frames_sampled"] == 5
    assert found["unrelated.mp4"].status == "no_match" and found["unrelated.mp4"].matches == ()


def test_the_video_thresholds_decide_and_the_records_survive_a_journal(tree):
    base, index, ids = tree
    strict = ScanOptions(video=VideoThresholds(compared_percent=90.0))
    (record,) = scan([base / "evidence" / "copy_trimmed.mp4"], index, strict)
    assert record.status == "no_match"  # 4 of its 6 known frames: 66.7 % < 90 %
    (record,) = scan([base / "evidence" / "copy_30fps.mp4"], index)
    again = ScanRecord.from_dict(json.loads(json.dumps(record.to_dict(["pdq"]))), ["pdq"])
    assert again == record


def test_the_run_manifest_records_the_video_thresholds(tree, tmp_path):
    base, index, _ids = tree
    manifest = tmp_path / "manifest.json"
    out = tmp_path / "report.jsonl"
    status = main(
        [
            "scan",
            "-q",
            "--index",
            str(index),
            "--video-query-percent",
            "70",
            "-o",
            str(out),
            "--manifest",
            str(manifest),
            str(base / "evidence" / "copy_480p.mp4"),
        ]
    )
    assert status == 1
    text = manifest.read_text()
    assert '"video_query_percent": 70.0' in text and '"video_distance": 31' in text and '"video_fps": 1.0' in text
    row = json.loads(out.read_text())
    assert row["matches"][0]["video"]["query_percent"] >= 70 and "frames" in row["video"]


def test_compare_explains_a_video_match(tree):
    base, _index, _ids = tree
    result = compare(base / "known" / "original.mp4", base / "evidence" / "copy_letterbox.mp4")
    assert result.match and result.reason.startswith("match: vPDQ: ")
    assert result.known.kind == "video" and result.evidence.kind == "video"
    assert not compare(base / "known" / "original.mp4", base / "evidence" / "unrelated.mp4").match


def test_cluster_links_a_re_encoded_copy_of_a_video_and_not_an_unrelated_one(tree):
    base, _index, _ids = tree
    result = cluster_paths([base / "known" / "original.mp4", base / "evidence"])
    together: dict[int, set[str]] = {}
    for member in result.members():
        together.setdefault(member.group, set()).add(str(member.path).rsplit("/", 1)[-1])
    groups_of_original = [names for names in together.values() if "original.mp4" in names]
    assert groups_of_original and all("copy_low_bitrate.mp4" in names for names in groups_of_original)
    assert not any("unrelated.mp4" in names and "original.mp4" in names for names in together.values())


def test_a_still_of_a_known_video_matches_it_with_the_known_frame(tree, tmp_path):
    base, index, ids = tree
    with av.open(str(base / "known" / "original.mp4")) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == 50:  # a sampled frame (2 s), saved smaller as a JPEG
                frame.to_image().resize((200, 150)).save(tmp_path / "still.jpg", quality=80)
                break
    (record,) = scan([tmp_path / "still.jpg"], index)
    assert record.status == "match"
    (match,) = record.matches
    assert (match.algorithm, match.record) == ("pdq", ids["original.mp4"])
    assert match.video == {"known_frame": 50, "known_timestamp": 2.0}
