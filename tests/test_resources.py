"""Resource bounds, fast versions for every commit (the long run: ``python -m benchmarks.resource_bounds``).

Pathological trees are handled within bounds and every entry gets its record: a directory 1,000 levels
deep, a tree deeper than PATH_MAX (walked through directory descriptors), sparse files digested in full
or skipped by the image size limit without holding them, awkward names and symbolic-link loops; and a
scan's peak memory does not grow with the number of files (checked in child processes, comparing N and
4N files with a generous margin). All data is synthetic.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import matcher
from benchmarks.resource_bounds import (
    JPEG_HEAD,
    _extension,
    build_deep,
    build_empty_files,
    build_mixed,
    build_odd_names,
    build_sparse,
    image_blobs,
    remove_tree,
    report_paths,
)
from matcher import files
from matcher.hashing import HashOptions
from matcher.index import KnownIndex
from matcher.index.importing import known_from_hash_record
from matcher.scan import ScanOptions, run_scan

PATH_MAX = 4096
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PATH_MAX, /proc and sparse files as on Linux")


@pytest.fixture(scope="module")
def blobs():
    return image_blobs(8)


@pytest.fixture(scope="module")
def index(tmp_path_factory, blobs):
    """A small PDQ index of two generated images."""
    base = tmp_path_factory.mktemp("resources-index")
    known = base / "known"
    known.mkdir()
    for i, blob in enumerate(blobs[:2]):
        (known / f"k{i}.{_extension(blob)}").write_bytes(blob)
    path = base / "index"
    idx = KnownIndex.create(path, ["pdq"])
    idx.add(
        [known_from_hash_record(r) for p in sorted(known.iterdir()) for r in matcher.hash_file(p, ["pdq"])],
        "synthetic",
        category=1,
    )
    idx.close()
    return path


@pytest.fixture
def work(tmp_path):
    """A scratch directory removed at the end whatever its depth (pytest's own clean-up recurses)."""
    yield tmp_path
    for child in list(tmp_path.iterdir()):
        remove_tree(child)


def scan_rows(paths, index, out: Path, **hash_options) -> list[dict]:
    options = (
        ScanOptions(workers=1, hash_options=HashOptions(**hash_options)) if hash_options else ScanOptions(workers=1)
    )
    run_scan([os.fsencode(p) for p in paths], str(index), options, str(out), "jsonl", False)
    with open(out, "rb") as handle:
        return [json.loads(line) for line in handle]


def deep_file_paths(root: Path, depth: int, name: bytes) -> set[bytes]:
    return {os.fsencode(root) + (b"/" + name) * level + b"/f" for level in range(depth + 1)}


# --------------------------------------------------------------------------------------------------
# Deep trees


def test_a_directory_1000_levels_deep_gives_every_file_a_digested_row(work, index):
    tree = work / "deep"
    assert build_deep(tree, 1000, b"d") == 1001
    rows = scan_rows([tree], index, work / "report.jsonl")
    assert set(report_paths(rows)) == deep_file_paths(tree, 1000, b"d") and len(rows) == 1001
    assert all(r["status"] == "no_match" and r["size"] == 1 and r["md5"] for r in rows)


def test_walk_reaches_directories_deeper_than_path_max(work):
    tree = work / "deeper"
    build_deep(tree, 600, b"abcdefgh")  # ~5,400-byte paths at the bottom
    bottom = os.fsencode(tree) + b"/abcdefgh" * 600
    assert len(bottom) > PATH_MAX
    _symlink_at(tree, 600, b"abcdefgh", b"..", b"up")
    entries = list(files.walk([tree]))
    assert [e.kind for e in entries].count("file") == 601
    assert not [e for e in entries if e.kind not in ("file", "symlink")]
    assert {e.path for e in entries if e.kind == "file"} == deep_file_paths(tree, 600, b"abcdefgh")
    (link,) = [e for e in entries if e.kind == "symlink"]
    assert link.path == bottom + b"/up" and link.error == "symbolic link (to '..'), not followed"
    assert [e.path for e in entries] == sorted(e.path for e in entries)  # the walk's order holds


def test_a_relative_path_deeper_than_path_max_is_walked_too(work, monkeypatch):
    build_deep(work / "rel", 500, b"abcdefgh")
    monkeypatch.chdir(work)
    entries = list(files.walk([b"rel"]))
    assert {e.path for e in entries} == {b"rel" + b"/abcdefgh" * level + b"/f" for level in range(501)}


def test_without_descriptor_opens_a_too_deep_directory_is_a_clear_error_entry(work, monkeypatch):
    """Where ``openat`` is missing, the directory past PATH_MAX is one error entry, nothing raised."""
    tree = work / "deeper"
    build_deep(tree, 600, b"abcdefgh")
    monkeypatch.setattr(files, "_OPENS_AT", False)
    entries = list(files.walk([tree]))
    (problem,) = [e for e in entries if e.kind == "directory_error"]
    assert problem.error == "directory could not be listed: file name too long"
    assert len(problem.path) > PATH_MAX - 9


def test_open_in_pieces_refuses_a_final_symbolic_link_with_nofollow(work):
    tree = work / "deeper"
    build_deep(tree, 500, b"abcdefgh")
    _symlink_at(tree, 500, b"abcdefgh", b".", b"loop")
    path = os.fsencode(tree) + b"/abcdefgh" * 500 + b"/loop"
    with pytest.raises(OSError) as info:
        files._open_directory(path, files._DIR_FLAGS | files._O_NOFOLLOW)
    assert info.value.errno in (errno.ELOOP, errno.ENOTDIR)  # never followed
    fd = files._open_directory(os.path.dirname(path), files._DIR_FLAGS)
    try:
        assert sorted(os.listdir(fd)) == ["f", "loop"]
    finally:
        os.close(fd)


def test_scan_of_a_tree_deeper_than_path_max_gives_every_file_one_row(work, index):
    """Files over PATH_MAX get a row each, digested like any other (their directory is opened a piece at
    a time); no directory vanishes from the report and nothing crashes."""
    tree = work / "deeper"
    build_deep(tree, 500, b"abcdefgh")  # ~4,500-byte paths at the bottom
    rows = scan_rows([tree], index, work / "report.jsonl")
    paths = report_paths(rows)
    assert set(paths) == deep_file_paths(tree, 500, b"abcdefgh") and len(paths) == 501
    assert any(len(path) >= PATH_MAX for path in paths)
    for row in rows:  # every file holds b"x", however deep
        assert row["md5"] == hashlib.md5(b"x").hexdigest() and not row.get("error"), row


def _symlink_at(root: Path, depth: int, name: bytes, target: bytes, link: bytes) -> None:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.symlink(target, link, dir_fd=fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------
# Sparse files, names, links


def test_a_sparse_file_is_digested_in_full(work, index):
    folder = work / "sparse"
    folder.mkdir()
    size = 48 * 1024 * 1024
    build_sparse(folder / "big.bin", size)
    (row,) = scan_rows([folder], index, work / "report.jsonl")
    assert row["size"] == size and row["status"] == "no_match"
    assert row["sha256"] == hashlib.sha256(bytes(size)).hexdigest()


def test_an_image_over_the_size_limit_is_digested_not_decoded(work, index):
    folder = work / "sparse"
    folder.mkdir()
    size = 24 * 1024 * 1024
    build_sparse(folder / "big.jpg", size, JPEG_HEAD)
    (row,) = scan_rows([folder], index, work / "report.jsonl", max_file_bytes=1024 * 1024)
    assert row["status"] == "error" and row["size"] == size and row["md5"] and row["sha256"]
    assert row["error"] == f"image file of {size} bytes is over the limit of {1024 * 1024} bytes; not decoded"
    # the same limit from the command line
    from matcher.cli import main

    out = work / "cli.jsonl"
    assert (
        main(
            [
                "scan",
                str(folder),
                "--index",
                str(index),
                "--workers",
                "1",
                "--max-file-bytes",
                "1048576",
                "--output",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    (cli_row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert cli_row["error"] == row["error"] and cli_row["sha256"] == row["sha256"]


def test_awkward_names_and_link_loops_each_get_one_row(work, index):
    made = build_odd_names(work / "odd")
    rows = scan_rows([work / "odd"], index, work / "report.jsonl")
    paths = report_paths(rows)
    assert sorted(paths) == sorted(made["paths"]) and len(paths) == len(set(paths))
    by_path = dict(zip(paths, rows))
    for path, row in by_path.items():
        if b"/loops/" in path:
            assert row["status"] == "skipped" and row["notes"][0].startswith("symbolic link (to '"), row
        elif len(path) >= PATH_MAX:  # digested once the reading side opens through descriptors
            assert row["md5"] or (row["status"] == "error" and "file name too long" in row["error"]), row
        else:
            assert row["md5"], row
    assert made["longest_path_bytes"] > 10_000
    assert all(row["path_raw_hex"] == path.hex() for path, row in by_path.items() if b"\xff" in path or b"\xe9" in path)


# --------------------------------------------------------------------------------------------------
# Memory stays flat in the number of files

# A first scan of a small tree warms the process up (imports, compiled kernels); the peak is then reset
# (clear_refs, where permitted) so that what is compared is the measured scan's own peak.
_PEAK_SCRIPT = textwrap.dedent("""
    import os, re, sys
    from matcher.scan import ScanOptions, run_scan
    tree, warm, index, out = sys.argv[1:5]
    run_scan([os.fsencode(warm)], index, ScanOptions(workers=1), out + ".warm", "jsonl", False)
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
    run_scan([os.fsencode(tree)], index, ScanOptions(workers=1), out, "jsonl", False)
    with open("/proc/self/status") as handle:
        print(re.search(r"VmHWM:\\s+(\\d+)", handle.read()).group(1))
""")


def _scan_peak_kib(tree: Path, warm: Path, index: Path, out: Path) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(tree), str(warm), str(index), str(out)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    with open(out, "rb") as handle:
        rows = sum(1 for _ in handle)
    return int(done.stdout.split()[-1]), rows


def test_peak_memory_of_a_scan_does_not_grow_with_the_number_of_files(work, index, blobs):
    """N and 4N files (mostly empty and text files, one in ten a tiny image; 1,000 per directory), each
    scanned in a fresh process after a warm-up scan: the peak RSS at 4N may exceed N's by at most 3 MiB,
    i.e. 1 KiB per extra file (measured: ~0.6 MiB, native allocations settling). Holding every record
    (~1.5-2 KiB each) would fail; the long benchmark (``python -m benchmarks.resource_bounds``) states
    the slope over 1,000 to 100,000 files."""
    n = 1000
    peaks = {}
    warm = work / "warm"
    build_mixed(warm, 40, blobs)
    for count in (n, 4 * n):
        tree = work / f"tree{count}"
        build_mixed(tree, count, blobs)
        peak, rows = _scan_peak_kib(tree, warm, index, work / f"report{count}.jsonl")
        assert rows == count
        peaks[count] = peak
        remove_tree(tree)
    assert peaks[4 * n] - peaks[n] < 3 * 1024, peaks


def test_many_empty_files_in_one_directory_each_get_a_row(work, index):
    build_empty_files(work / "empty", 1500, dirs=1)
    rows = scan_rows([work / "empty"], index, work / "report.jsonl")
    assert len(rows) == 1500 and len(set(report_paths(rows))) == 1500
    assert {(r["status"], r["size"], r["md5"]) for r in rows} == {("error", 0, hashlib.md5(b"").hexdigest())}


def test_a_file_growing_while_it_is_read_is_not_read_forever(work, monkeypatch):
    """Reading stops once the file has grown by its own size (at least GROWTH_ALLOWANCE) since it was
    opened, and the result says it changed."""
    path = work / "growing.bin"
    path.write_bytes(b"g" * 1000)
    monkeypatch.setattr(files, "GROWTH_ALLOWANCE", 3 * files.CHUNK_SIZE)
    real_read = os.read
    calls = []

    def read_and_grow(fd, n):
        calls.append(n)
        with open(path, "ab") as more:  # a writer faster than the reader: one more chunk per read
            more.write(b"g" * (2 * files.CHUNK_SIZE))
        return real_read(fd, n)

    monkeypatch.setattr(files.os, "read", read_and_grow)
    result = files.read_file(path)
    monkeypatch.undo()
    assert result.changed
    assert 3 * files.CHUNK_SIZE < result.size <= 4 * files.CHUNK_SIZE + 1000
    assert len(calls) < 10
