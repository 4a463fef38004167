"""A video larger than ``max_file_bytes`` (a seized drive's multi-GB recording) is hashed from its
file, not held in memory: once digested, the file is opened again read-only and decoded only if it
is still the file digested; a file swapped or rewritten in between is refused with an error record.

The videos are small generated ones; ``max_file_bytes`` is set low instead of making huge files.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import replace
from pathlib import Path

import pytest

from fixtures.video import video
from matcher import files, pipeline
from matcher import video as video_module
from matcher.pipeline import FeatureRequest, HashOptions, read_entry, read_source
from matcher.video import VideoOptions

REQUEST = FeatureRequest(("pdq",))
SMALL = HashOptions(max_file_bytes=4096)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, bytes]:
    return {
        "known": video(21, seconds=4, fps=25, size=(320, 240)),
        "other": video(22, seconds=3, fps=25, size=(320, 240)),
    }


@pytest.fixture()
def evidence(tmp_path, clips) -> Path:
    folder = tmp_path / "evidence"
    folder.mkdir()
    (folder / "big.mp4").write_bytes(clips["known"])
    return folder


def only_entry(folder: Path):
    (entry,) = [e for e in files.walk([folder]) if e.kind == "file"]
    return entry


def frames_of(got) -> list[tuple]:
    return [(f.index, f.timestamp, f.hashes["pdq"].hex(), f.hashes["pdq"].quality) for f in got.frames]


def test_a_video_over_max_file_bytes_is_hashed_from_its_file_with_the_frames_it_has_in_memory(evidence):
    entry = only_entry(evidence)
    assert entry.size > SMALL.max_file_bytes
    held = read_entry(entry, REQUEST, HashOptions())
    streamed = read_entry(entry, REQUEST, SMALL)
    assert held.error is None and streamed.error is None
    assert streamed.digests == held.digests and streamed.frame_count == held.frame_count == 100
    assert frames_of(streamed) == frames_of(held)
    assert [f[0] for f in frames_of(streamed)] == [0, 25, 50, 75]


def test_a_video_path_given_directly_is_hashed_from_its_file_too(evidence):
    path = evidence / "big.mp4"
    held = read_source(files.read_file, str(path), path.name, None, REQUEST, HashOptions())
    streamed = read_source(files.read_file, str(path), path.name, None, REQUEST, SMALL)
    assert streamed.error is None and frames_of(streamed) == frames_of(held)


def test_a_video_with_more_packets_than_are_held_is_demuxed_twice_with_the_same_frames(evidence, monkeypatch):
    entry = only_entry(evidence)
    expected = frames_of(read_entry(entry, REQUEST, SMALL))
    monkeypatch.setattr(video_module, "HELD_PACKET_BYTES", 1000)
    assert frames_of(read_entry(entry, REQUEST, SMALL)) == expected
    monkeypatch.setattr(video_module, "_plan", lambda *args: None)  # every frame decoded and counted
    assert frames_of(read_entry(entry, REQUEST, SMALL)) == expected


def test_the_video_limits_bound_a_video_decoded_from_its_file(evidence):
    options = HashOptions(max_file_bytes=4096, video=VideoOptions(max_seconds=2))
    got = read_entry(only_entry(evidence), REQUEST, options)
    assert "longer than the limit of 2 s" in (got.error or "")
    assert [f.index for f in got.frames] == [0, 25]


def swap_before_reopening(monkeypatch, change) -> None:
    """Change the file between its digests and the decoder's opening it again."""
    real = files.reopen_entry

    def reopen(entry, identity):
        change(Path(os.fsdecode(entry.path)))
        return real(entry, identity)

    monkeypatch.setattr(files, "reopen_entry", reopen)


@pytest.mark.parametrize(
    "how",
    ["another file renamed over it", "rewritten in place", "a symbolic link put in its place"],
)
def test_a_video_swapped_between_digests_and_decode_is_refused(evidence, clips, monkeypatch, tmp_path, how):
    elsewhere = tmp_path / "elsewhere.mp4"
    elsewhere.write_bytes(clips["other"])

    def change(path: Path) -> None:
        if how == "another file renamed over it":
            substitute = path.with_name("substitute.tmp")
            substitute.write_bytes(clips["other"])
            os.replace(substitute, path)
        elif how == "rewritten in place":
            with open(path, "r+b") as handle:
                handle.write(clips["other"])
        else:
            path.unlink()
            path.symlink_to(elsewhere)

    entry = only_entry(evidence)
    swap_before_reopening(monkeypatch, change)
    got = read_entry(entry, REQUEST, SMALL)
    assert got.error is not None and got.frames == ()
    assert got.digests.sha256 == hashlib.sha256(clips["known"]).hexdigest()  # the digests of what was read
    if how == "a symbolic link put in its place":
        assert "symbolic link" in got.error and "not followed" in got.error
    else:
        assert "changed since its digests were computed" in got.error


def test_a_video_changed_while_it_is_decoded_from_its_file_keeps_no_frames(evidence, monkeypatch):
    real = pipeline.decode_video

    def decode_then_append(source, request, options):
        decoded = real(source, request, options)
        with open(evidence / "big.mp4", "ab") as handle:
            handle.write(b"\0" * 10)
        return decoded

    monkeypatch.setattr(pipeline, "decode_video", decode_then_append)
    got = read_entry(only_entry(evidence), REQUEST, SMALL)
    assert got.error == "video changed while it was decoded from the file; its frames are not kept"
    assert got.frames == ()


def test_decoding_from_the_file_writes_nothing_under_the_evidence(evidence):
    path = evidence / "big.mp4"
    before = (sorted(os.listdir(evidence)), path.read_bytes(), os.stat(path).st_mtime_ns, os.stat(evidence).st_mtime_ns)
    got = read_entry(only_entry(evidence), REQUEST, SMALL)
    assert got.error is None and got.frames
    after = (sorted(os.listdir(evidence)), path.read_bytes(), os.stat(path).st_mtime_ns, os.stat(evidence).st_mtime_ns)
    assert after == before


def test_a_video_read_from_a_stream_stays_bounded_by_max_file_bytes(clips):
    got = read_source(files.read_stream, io.BytesIO(clips["known"]), "upload.mp4", None, REQUEST, SMALL)
    assert got.error == f"video file of {len(clips['known'])} bytes is over the limit of 4096 bytes; not decoded"
    assert got.digests is not None and got.frames == ()


def test_a_video_that_changed_while_its_digests_were_read_is_not_decoded_from_the_file(evidence, monkeypatch):
    real = files.read_entry
    monkeypatch.setattr(files, "read_entry", lambda *args, **kwargs: replace(real(*args, **kwargs), changed=True))
    got = read_entry(only_entry(evidence), REQUEST, SMALL)
    assert got.error == "video changed while it was read; not decoded from the file"
    assert got.changed and got.frames == ()


@pytest.mark.parametrize("damage", ["truncated", "zeroed middle", "garbage after the header"])
def test_a_broken_video_decoded_from_its_file_is_one_record_with_an_error(evidence, clips, damage):
    data = clips["known"]
    half = len(data) // 2
    broken = {
        "truncated": data[:half],
        "zeroed middle": data[: half // 2] + bytes(half) + data[half // 2 + half :],
        "garbage after the header": data[:64] + bytes(range(256)) * (len(data) // 256),
    }[damage]
    (evidence / "big.mp4").write_bytes(broken)
    got = read_entry(only_entry(evidence), REQUEST, SMALL)
    held = read_entry(only_entry(evidence), REQUEST, HashOptions())
    assert got.error is not None or got.frames
    assert (got.error, frames_of(got)) == (held.error, frames_of(held))  # as it is from memory
