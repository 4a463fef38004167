"""Tests of matcher.digests and matcher.files: digests, read-only streamed reading, and the walk.

All data is synthetic and created under pytest's tmp_path.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import socket
import stat
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import matcher.files as files
from matcher.digests import DigestAccumulator, Digests, digest_bytes
from matcher.errors import FileReadError, MatcherError, NotAFileError, UsageError
from matcher.files import Entry, display_path, read_file, read_stream, walk

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file types and permissions")
OLD_TIME_NS = 946_684_800 * 10**9  # 2000-01-01: old enough that a relatime mount would update it on read


def expected(data: bytes) -> Digests:
    return Digests(hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(), hashlib.sha256(data).hexdigest())


def synthetic(size: int, seed: int = 1) -> bytes:
    return bytes((i * 31 + seed * 7 + (i >> 8)) & 0xFF for i in range(size))


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def paths_of(entries: list[Entry], root: Path) -> list[bytes]:
    prefix = os.fsencode(root) + b"/"
    return [e.path.removeprefix(prefix) for e in entries]


def run_with_timeout(function, seconds: float = 10.0):
    """Run ``function`` in a daemon thread; fail (rather than hang) if it has not finished in time."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = function()
        except BaseException as exc:  # handed back to the test
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "call blocked"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("value")


# --- digests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"a", b"abc" * 1000, synthetic(3 * 1024 + 5)])
def test_digest_bytes_matches_hashlib(data: bytes) -> None:
    assert digest_bytes(data) == expected(data)
    assert digest_bytes(memoryview(data)) == expected(data)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=4096), st.lists(st.integers(min_value=0, max_value=4096), max_size=8))
def test_accumulator_is_independent_of_chunking(data: bytes, cuts: list[int]) -> None:
    accumulator = DigestAccumulator()
    bounds = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    for start, end in zip(bounds, bounds[1:]):
        accumulator.update(memoryview(data)[start:end])
    assert accumulator.result() == expected(data)


def test_accumulator_result_does_not_end_accumulation() -> None:
    accumulator = DigestAccumulator()
    accumulator.update(b"abc")
    assert accumulator.result() == expected(b"abc")
    accumulator.update(b"def")
    assert accumulator.result() == expected(b"abcdef")


def test_digests_are_lowercase_and_validated() -> None:
    e = expected(b"x")
    assert Digests(e.md5.upper(), e.sha1.upper(), e.sha256) == e
    with pytest.raises(UsageError, match="md5"):
        Digests("zz" * 16, e.sha1, e.sha256)
    with pytest.raises(UsageError, match="sha256"):
        Digests(e.md5, e.sha1, e.sha256[:-1])


# --- read_file ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 10_000])
def test_read_file_digests_size_and_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    monkeypatch.setattr(files, "CHUNK_SIZE", 1000)  # many chunks, and a head spanning several
    data = synthetic(size)
    result = read_file(write(tmp_path / "f.bin", data))
    assert (result.size, result.digests, result.head, result.data) == (size, expected(data), data[:4096], None)
    assert result.changed is False


def test_read_file_multi_chunk_at_real_chunk_size(tmp_path: Path) -> None:
    data = synthetic(files.CHUNK_SIZE * 2 + 123)
    result = read_file(write(tmp_path / "big.bin", data), keep=True)
    assert result.digests == expected(data) and result.data == data and result.size == len(data)


def test_read_file_accepts_str_bytes_and_pathlike(tmp_path: Path) -> None:
    path = write(tmp_path / "f", b"content")
    for form in (path, str(path), os.fsencode(path)):
        assert read_file(form).digests == expected(b"content")


def test_keep_decides_whether_data_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "CHUNK_SIZE", 1000)
    data = synthetic(9000)
    path = write(tmp_path / "f.bin", data)
    heads: list[bytes] = []

    def looks_wanted(head: bytes) -> bool:
        heads.append(head)
        return head.startswith(data[:4])

    assert read_file(path).data is None
    assert read_file(path, keep=False).data is None
    assert read_file(path, keep=True).data == data
    assert read_file(path, keep=looks_wanted).data == data
    assert heads == [data[:4096]]  # asked once, with the complete head
    assert read_file(path, keep=lambda head: False).data is None
    short = write(tmp_path / "short", b"tiny")
    assert read_file(short, keep=lambda head: heads.append(head) or True).data == b"tiny"
    assert heads[-1] == b"tiny"  # a file shorter than the head: asked at the end, with all of it
    assert read_file(write(tmp_path / "empty", b""), keep=True).data == b""


def test_data_kept_only_up_to_max_keep_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "CHUNK_SIZE", 1024)
    data = synthetic(10_000)
    path = write(tmp_path / "f.bin", data)
    assert read_file(path, keep=True, max_keep_bytes=10_000).data == data
    too_big = read_file(path, keep=True, max_keep_bytes=9_999)
    assert too_big.data is None
    assert too_big.digests == expected(data) and too_big.size == 10_000 and too_big.head == data[:4096]
    assert read_file(path, keep=lambda head: True, max_keep_bytes=100).data is None


def test_memory_stays_bounded_for_a_file_bigger_than_max_keep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "CHUNK_SIZE", 64 * 1024)
    data = os.urandom(16 * 1024 * 1024)
    path = write(tmp_path / "big.bin", data)
    digests = expected(data)
    del data
    tracemalloc.start()
    try:
        result = read_file(path, keep=True, max_keep_bytes=1024 * 1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.data is None and result.digests == digests
    assert peak < 3 * 1024 * 1024, f"peak {peak} bytes while reading a 16 MiB file"


def test_read_file_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "CHUNK_SIZE", 1000)
    data = synthetic(5000)
    path = write(tmp_path / "evidence.jpg", data)
    os.utime(path, ns=(OLD_TIME_NS, OLD_TIME_NS))  # test setup on synthetic data
    before = os.stat(path)
    result = read_file(path, keep=True)
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_mode) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ctime_ns,
        before.st_mode,
    )
    if result.noatime:
        assert after.st_atime_ns == before.st_atime_ns
    assert path.read_bytes() == data == result.data
    assert sorted(os.listdir(tmp_path)) == ["evidence.jpg"]


@pytest.mark.skipif(not hasattr(os, "O_NOATIME"), reason="Linux O_NOATIME")
def test_noatime_used_when_permitted_and_dropped_silently_on_eperm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "f", b"abc")
    if os.geteuid() == 0 or os.stat(path).st_uid == os.geteuid():
        assert read_file(path).noatime is True
    real_open = os.open
    calls: list[int] = []

    def refuse_noatime(p, flags, *args, **kwargs):
        calls.append(flags)
        if flags & os.O_NOATIME:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real_open(p, flags, *args, **kwargs)

    monkeypatch.setattr(files.os, "open", refuse_noatime)
    result = read_file(path, keep=True)
    assert result.noatime is False and result.data == b"abc"
    assert [bool(f & os.O_NOATIME) for f in calls] == [True, False]
    assert all(f & os.O_NONBLOCK and f & os.O_CLOEXEC and f & os.O_NOCTTY for f in calls)
    assert all(f & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND) == 0 for f in calls)


def test_changed_is_reported_when_the_file_changes_while_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "CHUNK_SIZE", 4096)
    path = write(tmp_path / "growing.log", synthetic(20_000))

    def append_meanwhile(head: bytes) -> bool:  # called mid-read: simulate another writer
        with open(path, "ab") as other:
            other.write(b"more")
        return False

    assert read_file(path, keep=append_meanwhile).changed is True
    assert read_file(path).changed is False


@posix_only
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(NotAFileError, match=r"pipe\.jpg: not a regular file \(fifo\)"):
        run_with_timeout(lambda: read_file(fifo))


@posix_only
def test_fifo_swapped_in_after_the_check_is_opened_without_blocking_and_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "swapped"
    os.mkfifo(fifo)
    regular = os.stat(write(tmp_path / "regular", b"x"))
    real_stat = os.stat

    def stale_stat(path, *args, **kwargs):  # what a check made just before the swap saw
        return regular if os.fsencode(path) == os.fsencode(fifo) else real_stat(path, *args, **kwargs)

    monkeypatch.setattr(files.os, "stat", stale_stat)
    with pytest.raises(NotAFileError, match=r"not a regular file \(fifo\)"):
        run_with_timeout(lambda: read_file(fifo))


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(NotAFileError, match=r"not a regular file \(directory\)"):
        read_file(tmp_path)


def test_missing_file_is_a_file_read_error(tmp_path: Path) -> None:
    with pytest.raises(FileReadError, match=r"nothere\.jpg: cannot open: no such file or directory") as info:
        read_file(tmp_path / "nothere.jpg")
    assert isinstance(info.value, OSError) and isinstance(info.value, MatcherError)
    assert info.value.errno == errno.ENOENT


def test_permission_denied_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "locked.jpg", b"secret")

    def deny(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(files.os, "open", deny)
    with pytest.raises(FileReadError) as info:
        read_file(path)
    assert str(path) in str(info.value) and "permission denied" in str(info.value)
    assert info.value.errno == errno.EACCES


@posix_only
@pytest.mark.skipif(os.name == "posix" and os.geteuid() == 0, reason="root is not stopped by chmod 000")
def test_permission_denied_real(tmp_path: Path) -> None:
    path = write(tmp_path / "locked.jpg", b"secret")
    path.chmod(0)
    try:
        with pytest.raises(FileReadError, match="permission denied") as info:
            read_file(path)
        assert str(path) in str(info.value)
    finally:
        path.chmod(0o600)


def test_read_error_midway_closes_the_descriptor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "CHUNK_SIZE", 100)
    path = write(tmp_path / "bad-sector.bin", synthetic(1000))
    real_read, real_close = os.read, os.close
    state = {"reads": 0, "closed": []}

    def failing_read(fd: int, n: int) -> bytes:
        state["reads"] += 1
        if state["reads"] == 3:
            raise OSError(errno.EIO, "Input/output error")
        return real_read(fd, n)

    def recording_close(fd: int) -> None:
        state["closed"].append(fd)
        real_close(fd)

    monkeypatch.setattr(files.os, "read", failing_read)
    monkeypatch.setattr(files.os, "close", recording_close)
    with pytest.raises(FileReadError, match=r"bad-sector\.bin: read failed after 200 bytes: input/output error"):
        read_file(path)
    assert len(state["closed"]) == 1


@pytest.mark.parametrize(
    "bad", [{"keep": "yes"}, {"max_keep_bytes": -1}, {"max_keep_bytes": 1.5}, {"max_keep_bytes": True}]
)
def test_bad_arguments_raise_usage_error(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(UsageError):
        read_file(write(tmp_path / "f", b"x"), **bad)


# --- read_stream ----------------------------------------------------------------------------------


def test_read_stream_on_bytesio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "CHUNK_SIZE", 1000)
    data = synthetic(7000)
    result = read_stream(io.BytesIO(data), keep=True)
    assert (result.size, result.digests, result.head, result.data) == (7000, expected(data), data[:4096], data)
    assert (result.noatime, result.changed) == (False, False)
    assert read_stream(io.BytesIO(data)).data is None
    assert read_stream(io.BytesIO(data), keep=True, max_keep_bytes=6999).data is None
    assert read_stream(io.BytesIO(b"")).digests == expected(b"")


def test_read_stream_on_open_file_and_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "f", b"stream me")
    with open(path, "rb") as stream:
        assert read_stream(stream, keep=True).data == b"stream me"
    with pytest.raises(UsageError, match="binary mode"):
        read_stream(io.StringIO("text"))  # type: ignore[arg-type]

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(FileReadError, match="input/output error"):
        read_stream(Broken())  # type: ignore[arg-type]


# --- walk -----------------------------------------------------------------------------------------


def test_walk_nested_tree_sorted_by_full_path(tmp_path: Path) -> None:
    for name in ["a/z.jpg", "a/b/c.png", "a-x", "a.jpg", "b", "A", "a/b/d/e.gif", "ab/1"]:
        write(tmp_path / name, name.encode())
    (tmp_path / "empty").mkdir()
    entries = list(walk([tmp_path]))
    got = paths_of(entries, tmp_path)
    assert got == [b"A", b"a-x", b"a.jpg", b"a/b/c.png", b"a/b/d/e.gif", b"a/z.jpg", b"ab/1", b"b"]
    assert [e.path for e in entries] == sorted(e.path for e in entries)
    assert all(e.kind == "file" and e.error is None for e in entries)
    assert {e.path.rsplit(b"/", 1)[1]: e.size for e in entries}[b"c.png"] == len(b"a/b/c.png")
    assert list(walk([tmp_path])) == entries  # deterministic


def test_walk_given_file_and_mixed_paths(tmp_path: Path) -> None:
    f = write(tmp_path / "one.jpg", b"12345")
    d = write(tmp_path / "d" / "two.jpg", b"12").parent
    entries = list(walk([f, str(d), os.fsencode(tmp_path / "gone")]))
    assert entries == [
        Entry(os.fsencode(f), "file", 5, None),
        Entry(os.fsencode(d / "two.jpg"), "file", 2, None),
        Entry(os.fsencode(tmp_path / "gone"), "missing", None, "no such file or directory"),
    ]


def test_walk_requires_an_iterable_of_paths(tmp_path: Path) -> None:
    for single in (str(tmp_path), os.fsencode(tmp_path), tmp_path):
        with pytest.raises(UsageError, match="wrap it in a list"):
            walk(single)  # type: ignore[arg-type]


@posix_only
def test_walk_symlink_loop_terminates_and_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "tree" / "sub" / "x.jpg", b"x")
    os.symlink("..", tmp_path / "tree" / "sub" / "loop")
    os.symlink(".", tmp_path / "tree" / "self")
    entries = run_with_timeout(lambda: list(walk([tmp_path / "tree"])))
    assert entries == [
        Entry(os.fsencode(tmp_path / "tree/self"), "symlink", None, "symbolic link (to '.'), not followed"),
        Entry(os.fsencode(tmp_path / "tree/sub/loop"), "symlink", None, "symbolic link (to '..'), not followed"),
        Entry(os.fsencode(tmp_path / "tree/sub/x.jpg"), "file", 1, None),
    ]


@posix_only
def test_walk_does_not_follow_symlink_out_of_the_tree(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "secret.jpg", b"outside")
    write(tmp_path / "tree" / "in.jpg", b"in")
    os.symlink(outside, tmp_path / "tree" / "link.jpg")
    os.symlink(outside.parent, tmp_path / "tree" / "linkdir")
    entries = list(walk([tmp_path / "tree"]))
    assert [(e.path, e.kind) for e in entries] == [
        (os.fsencode(tmp_path / "tree/in.jpg"), "file"),
        (os.fsencode(tmp_path / "tree/link.jpg"), "symlink"),
        (os.fsencode(tmp_path / "tree/linkdir"), "symlink"),
    ]
    assert entries[1].error == f"symbolic link (to '{outside}'), not followed"
    assert not any(b"secret" in e.path for e in entries)


@posix_only
def test_walk_follows_symlinks_given_explicitly(tmp_path: Path) -> None:
    target = write(tmp_path / "real" / "pic.jpg", b"pic")
    os.symlink(target.parent, tmp_path / "dirlink")
    os.symlink(target, tmp_path / "filelink.jpg")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    entries = list(walk([tmp_path / "dirlink", tmp_path / "filelink.jpg", tmp_path / "dangling"]))
    assert entries[:2] == [
        Entry(os.fsencode(tmp_path / "dirlink/pic.jpg"), "file", 3, None),
        Entry(os.fsencode(tmp_path / "filelink.jpg"), "file", 3, None),
    ]
    assert entries[2].kind == "symlink" and entries[2].path == os.fsencode(tmp_path / "dangling")
    target = tmp_path / "nowhere"
    assert entries[2].error == f"symbolic link (to '{target}') could not be followed: no such file or directory"


@posix_only
def test_walk_reports_fifo_and_socket_without_opening_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "x.jpg", b"x")
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    monkeypatch.chdir(tmp_path)  # keep the socket address short
    sock.bind("sock")
    real_open = os.open
    opened: list[bytes] = []

    def only_directories(path, flags, *args, **kwargs):
        opened.append(os.fsencode(path))
        assert flags & os.O_DIRECTORY, f"walk opened {path!r} as a file"
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(files.os, "open", only_directories)
    try:
        entries = run_with_timeout(lambda: list(walk([tmp_path])))
    finally:
        sock.close()
    assert [(e.path.rsplit(b"/", 1)[1], e.kind, e.error) for e in entries] == [
        (b"fifo", "fifo", "FIFO, skipped (never opened)"),
        (b"sock", "socket", "socket, skipped (never opened)"),
        (b"x.jpg", "file", None),
    ]
    assert not any(p.endswith((b"fifo", b"sock")) for p in opened)
    fifo_given = list(walk([tmp_path / "fifo"]))
    assert fifo_given == [Entry(os.fsencode(tmp_path / "fifo"), "fifo", None, "FIFO, skipped (never opened)")]


@pytest.mark.skipif(sys.platform != "linux", reason="needs a device node")
def test_walk_reports_character_device_given_explicitly() -> None:
    assert list(walk(["/dev/null"])) == [
        Entry(b"/dev/null", "char_device", None, "character device, skipped (never opened)")
    ]


@pytest.mark.skipif(sys.platform != "linux", reason="Linux accepts any bytes in names")
def test_walk_and_display_undecodable_name(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/bad\xff.jpg"
    with open(raw, "wb") as handle:
        handle.write(b"data")
    entries = list(walk([tmp_path]))
    assert entries == [Entry(raw, "file", 4, None)]
    text, raw_hex = display_path(entries[0].path)
    assert text == f"{tmp_path}/bad\\xff.jpg"
    assert raw_hex == raw.hex() and bytes.fromhex(raw_hex) == raw
    assert read_file(entries[0].path).digests == expected(b"data")


def test_display_path() -> None:
    assert display_path(b"/evidence/\xc3\xa9t\xc3\xa9.jpg") == ("/evidence/été.jpg", None)
    assert display_path(b"a\\xff") == ("a\\xff", None)  # a literal backslash: exact text, no hex needed
    assert display_path(b"a\xff") == ("a\\xff", "61ff")
    assert display_path(b"\xed\xa0\x80") == ("\\xed\\xa0\\x80", "eda080")  # encoded surrogate is not UTF-8
    assert display_path("plain") == ("plain", None)  # type: ignore[arg-type]


def _unlistable(monkeypatch: pytest.MonkeyPatch, locked: Path) -> None:
    """Make os.scandir fail for ``locked`` (given as a path or as an open descriptor)."""
    real_scandir = os.scandir
    locked_id = (os.stat(locked).st_dev, os.stat(locked).st_ino)

    def scandir(target=b"."):
        st = os.fstat(target) if isinstance(target, int) else os.stat(target)
        if (st.st_dev, st.st_ino) == locked_id:
            raise PermissionError(errno.EACCES, "Permission denied", target)
        return real_scandir(target)

    monkeypatch.setattr(files.os, "scandir", scandir)


def test_unlistable_directory_is_reported_and_walk_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "a" / "1.jpg", b"1")
    write(tmp_path / "locked" / "hidden.jpg", b"h")
    write(tmp_path / "z" / "2.jpg", b"2")
    _unlistable(monkeypatch, tmp_path / "locked")
    entries = list(walk([tmp_path]))
    denied = "permission denied"
    assert entries == [
        Entry(os.fsencode(tmp_path / "a/1.jpg"), "file", 1, None),
        Entry(os.fsencode(tmp_path / "locked"), "directory_error", None, f"directory could not be listed: {denied}"),
        Entry(os.fsencode(tmp_path / "z/2.jpg"), "file", 1, None),
    ]


@posix_only
@pytest.mark.skipif(os.name == "posix" and os.geteuid() == 0, reason="root is not stopped by chmod 000")
def test_unlistable_directory_real(tmp_path: Path) -> None:
    write(tmp_path / "locked" / "hidden.jpg", b"h")
    write(tmp_path / "open" / "2.jpg", b"2")
    (tmp_path / "locked").chmod(0)
    try:
        kinds = [(e.path.rsplit(b"/", 1)[1], e.kind) for e in walk([tmp_path])]
    finally:
        (tmp_path / "locked").chmod(0o700)
    assert kinds == [(b"locked", "directory_error"), (b"2.jpg", "file")]


def test_walk_a_thousand_levels_deep(tmp_path: Path) -> None:
    levels = [os.fsencode(tmp_path)]
    for _ in range(1000):  # one level at a time: pathlib's and os.makedirs' own recursion would not cope
        levels.append(levels[-1] + b"/d")
        os.mkdir(levels[-1])
    bottom = levels[-1] + b"/bottom.jpg"
    try:
        with open(bottom, "wb") as handle:
            handle.write(b"b")
        write(tmp_path / "top.jpg", b"t")
        assert [e.path for e in walk([tmp_path])] == [bottom, os.fsencode(tmp_path / "top.jpg")]
    finally:  # pytest's own (recursive) clean-up of tmp_path cannot remove a tree this deep
        os.unlink(bottom)
        for level in reversed(levels[1:]):
            os.rmdir(level)


@posix_only
def test_overlapping_paths_walk_each_directory_once(tmp_path: Path) -> None:
    write(tmp_path / "root" / "sub" / "s.jpg", b"s")
    write(tmp_path / "root" / "r.jpg", b"r")
    os.symlink(tmp_path / "root" / "sub", tmp_path / "alias")
    root, sub = tmp_path / "root", tmp_path / "root" / "sub"
    first = paths_of(list(walk([root, sub, root, tmp_path / "alias"])), tmp_path)
    assert first == [b"root/r.jpg", b"root/sub/s.jpg"]
    second = paths_of(list(walk([sub, root])), tmp_path)
    assert second == [b"root/sub/s.jpg", b"root/r.jpg"]


@posix_only
def test_walk_and_read_change_nothing_in_the_evidence(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    contents = {evidence / name: synthetic(3000, seed=len(name)) for name in ["a/1.jpg", "a/b/2.png", "c.gif"]}
    for path, data in contents.items():
        write(path, data)
    os.symlink("../c.gif", evidence / "a" / "link")
    os.mkfifo(evidence / "a" / "fifo")
    everything = [evidence, *sorted(evidence.rglob("*"))]
    for path in everything:  # test setup: old access times, which an ordinary read would move
        os.utime(path, ns=(OLD_TIME_NS, OLD_TIME_NS), follow_symlinks=False)

    def snapshot(with_atime: bool) -> dict[Path, tuple]:
        state = {}
        for path in everything:
            s = os.lstat(path)
            # readlink may move a link's own atime (the kernel has no way to prevent it); nothing else may
            atime = s.st_atime_ns if with_atime and not stat.S_ISLNK(s.st_mode) else None
            state[path] = (s.st_mode, s.st_size, s.st_mtime_ns, s.st_ctime_ns, atime)
        return state

    before = snapshot(with_atime=True)
    entries = list(walk([evidence]))
    results = [read_file(e.path, keep=True) for e in entries if e.kind == "file"]
    noatime = all(r.noatime for r in results)
    assert snapshot(with_atime=noatime) == {p: v[:4] + (v[4] if noatime else None,) for p, v in before.items()}
    assert [r.data for r in results] == [contents[evidence / n] for n in ["a/1.jpg", "a/b/2.png", "c.gif"]]
    assert all(path.read_bytes() == data for path, data in contents.items())
    assert sorted(p.name for p in evidence.rglob("*")) == ["1.jpg", "2.png", "a", "b", "c.gif", "fifo", "link"]


def test_entry_validates_its_fields() -> None:
    with pytest.raises(UsageError):
        Entry(b"x", "weird")
    with pytest.raises(UsageError):
        Entry("x", "file")  # type: ignore[arg-type]
