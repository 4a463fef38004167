"""vPDQ hashes written and read back: vpdq's text, ThreatExchange's vPDQ lines, ``matcher hash``'s
JSON Lines and ``--format vpdq``, and a known video imported into an index as one record."""

from __future__ import annotations

import io
import json

import pytest

from fixtures.video import video
from matcher.cli import main
from matcher.errors import HashFormatError
from matcher.formats.registry import detect_format, read_records, write_records
from matcher.hashes import Hash
from matcher.index import KnownIndex
from matcher.video_hash import (
    VideoThresholds,
    VpdqFeature,
    compare,
    known_video,
    parse_compact,
    parse_vpdq_line,
    video_features,
    vpdq_line,
)

HEX_A = "f52855ab4b2d690d2d4ba52d5ab14a50687fad5257c8d496d492d15ebdd12c2e"
HEX_B = "6a512b5da944945357705a754a532352b51fd7c2738ed29653d2557b95b1aa26"


def feature(frame: int, hex_text: str, quality: int = 100) -> VpdqFeature:
    return VpdqFeature(frame, Hash("pdq", bytes.fromhex(hex_text), quality), frame / 25)


def test_vpdq_lines_round_trip_in_the_order_vpdq_writes_them():
    line = vpdq_line(feature(25, HEX_A, 87))
    assert line == f"25,87,{HEX_A},1.000"
    assert parse_vpdq_line(line) == feature(25, HEX_A, 87)
    assert parse_vpdq_line(f"25,{HEX_A},87,1.0") == feature(25, HEX_A, 87)  # hash before quality, too
    assert parse_compact(f"{HEX_A},87,1.000", 25) == feature(25, HEX_A, 87)
    for bad in ("1,2,3", f"x,100,{HEX_A},0", f"0,101,{HEX_A},0", f"0,100,{HEX_A[:-1]},0", f"0,100,{HEX_A},-1"):
        with pytest.raises(HashFormatError):
            parse_vpdq_line(bad)


def test_both_text_forms_are_detected_and_read_as_one_known_video_each():
    text = "\n".join(vpdq_line(f) for f in (feature(0, HEX_A), feature(25, HEX_B, 60))) + "\n"
    assert detect_format(text.encode()).name == "vpdq"
    (record,) = read_records(io.BytesIO(text.encode()))
    assert record.hashes["pdq"].hex() == HEX_A and video_features(record) == (feature(0, HEX_A), feature(25, HEX_B, 60))
    te = json.dumps([f"{HEX_A},100,0.000", f"{HEX_B},60,1.000"])
    data = f"{te}\nclip two\t{te}\n".encode()
    assert detect_format(data).name == "vpdq-json"
    first, second = read_records(io.BytesIO(data))
    assert [f.hash.hex() for f in video_features(first)] == [HEX_A, HEX_B] and second.name == "clip two"


def test_known_videos_write_and_read_back_in_both_formats():
    records = [known_video([feature(0, HEX_A), feature(25, HEX_B)], name="one"), known_video([feature(0, HEX_B)])]
    for name in ("vpdq", "vpdq-json"):
        out = io.StringIO()
        assert write_records(records, out, name) == 2
        back = list(read_records(io.BytesIO(out.getvalue().encode()), name))

        def kept(rs, numbered=name == "vpdq"):
            return [[(f.frame if numbered else 0, f.hash, f.timestamp) for f in video_features(r) or ()] for r in rs]

        assert kept(back) == kept(records)  # ThreatExchange's form has no frame numbers


def test_compare_gives_vpdqs_percentages():
    far = "0" * 64
    query = [feature(0, HEX_A), feature(25, HEX_B), feature(50, far)]
    known = [feature(0, HEX_A), feature(25, HEX_B), feature(50, HEX_B), feature(75, HEX_A, 10)]
    result = compare(query, known)
    # the known's repeated hash counts once and its low-quality frame not at all: 2 of 2 matched
    assert (round(result.query_percent, 2), result.compared_percent) == (66.67, 100.0)
    assert result.matched_frames == (0, 25) and result.matched_timestamps == (0.0, 1.0)
    assert not result.matches(VideoThresholds()) and result.matches(VideoThresholds(query_percent=60))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    base = tmp_path_factory.mktemp("vf")
    (base / "clip.mp4").write_bytes(video(8, seconds=3, size=(320, 240)))
    return base / "clip.mp4"


def test_hash_writes_one_record_per_video_with_its_frames(clip, tmp_path, capsys):
    assert main(["hash", "-q", str(clip)]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["mime"] == "video/mp4" and row["frame"] is None and row["frame_count"] == 75
    assert [(f["frame"], f["timestamp"]) for f in row["vpdq"]] == [(0, 0.0), (25, 1.0), (50, 2.0)]
    assert main(["hash", "-q", "--format", "vpdq", "--video-fps", "2", str(clip)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"# {clip}" and [line.split(",")[0] for line in lines[1:]] == [
        "0",
        "12",
        "24",
        "36",
        "48",
        "60",
        "72",
    ]


def test_index_add_stores_a_video_as_one_known_video(clip, tmp_path, capsys):
    index = tmp_path / "index"
    assert main(["index", "create", str(index)]) == 0
    assert main(["index", "add", str(index), str(clip), "--list", "videos"]) == 0
    hashes = tmp_path / "h.jsonl"
    assert main(["hash", "-q", str(clip), "-o", str(hashes)]) == 0
    assert main(["index", "add", str(index), str(hashes), "--list", "from-hash"]) == 0
    assert main(["index", "add", str(index), str(tmp_path / "h.jsonl"), "--list", "again", "--quiet"]) == 0
    hashes.write_text('{"path": "image.png", "frame": null, "pdq": "' + HEX_A + '", "pdq_quality": 90}\n')
    assert main(["index", "add", str(index), str(hashes), "--list", "images", "--quiet"]) == 0
    with KnownIndex.open(index) as known:
        records = [r for r in known.iter_records() if r.list_name != "images"]
        assert [r.id for r in known.video_records()] == [r.id for r in records]  # the image is not one
    records = records[:2]
    assert len(records) == 2
    assert video_features(records[0]) == video_features(records[1])
    assert [f.frame for f in video_features(records[0]) or ()] == [0, 25, 50]
