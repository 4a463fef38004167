"""Resource bounds of ``matcher scan`` (and ``matcher cluster``) on large and pathological evidence trees.

Run (with ``--million`` about 40 minutes on 2 shared cores, of which the million empty files take
~25: build 3, scan 22, removal 1; without it about 12; sparse files use almost no disk)::

    python -m benchmarks.resource_bounds --million      # the full run: every case below
    python -m benchmarks.resource_bounds                # without the million empty files
    python -m benchmarks.resource_bounds --quick        # a smoke run: small sizes, 1 GiB sparse files

Every tree is built under a temporary directory, which is deleted afterwards. Each case runs the real
command line (``python -m matcher ...``) as a child process, against a small PDQ index of generated
images, with the report written to a file (``--quiet``). Measured per case: wall time, and peak
resident memory (``VmHWM``) of the main process and of the worker processes, polled from ``/proc``
every 0.1 s; the whole process tree's peak from ``wait4`` cross-checks the polling. Checked per case:
the exit code, that the report has one row for every entry the case created (no entry lost, none twice)
and what the rows of the pathological entries say. Every case states its bound and passes or fails.

Cases:

- ``flat-N`` (N = 1,000, 10,000, 100,000; ``--sizes``): a tree of N files, 1,000 per directory: one in
  ten a tiny generated image (PNG or JPEG, 64x48), the rest empty files or short text files; two
  workers. The peak memory of the main process and the workers must not grow with N: the slope of a
  least-squares line through (N, peak) must stay under 0.1 KiB per file (a record kept per file would
  cost several KiB each), i.e. under 10 MB per 100,000 files.
- ``cluster-N``: ``matcher cluster`` of the same trees up to ``--cluster-max`` files (default 10,000):
  it must hold every image's hashes and every entry's item to group them and order its report, so its
  per-file cost is reported (slope), bounded at 16 KiB per file.
- ``million-empty``: 1,000,000 empty files in 10 directories of 100,000 (``--million``).
- ``deep-1000``: a directory 1,000 levels deep (2-byte names) with a file at each level.
- ``deep-beyond-path-max``: 1,000 levels of 8-byte names (paths to ~9,000 bytes, over PATH_MAX) with a
  file at each level: every file must get a row with its digests (files whose path is longer than
  PATH_MAX are opened through their directory, opened a piece at a time).
- ``sparse-10g``: a 10 GiB sparse file of zeros (not an image): digested in full, never kept.
- ``sparse-10g-jpeg``: a 10 GiB sparse file starting with a JPEG header: over the image size limit, so
  digested and not decoded.
- ``odd-names``: names of 255 bytes (NAME_MAX), names that are not UTF-8, a path of over 10,000
  characters, and symbolic-link loops (self, pair, to a parent directory).

Results: ``benchmarks/results/resource_bounds.json`` and ``.md`` (machine, date, git commit).
All data is synthetic (:mod:`fixtures`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import hashlib
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
KIB = 1024
MIB = 1024 * 1024
GIB = 1024 * MIB

# --------------------------------------------------------------------------------------------------
# Building trees (all synthetic)


def image_blobs(count: int = 24) -> list[bytes]:
    """Tiny generated images (64x48), half PNG and half JPEG, all different."""
    from fixtures import encode, scene

    kinds = ("landscape", "plasma", "shapes", "text")
    blobs = []
    for i in range(count):
        img = scene(7000 + i, 64, 48, kinds[i % len(kinds)])
        blobs.append(encode(img, "PNG") if i % 2 else encode(img, "JPEG", quality=85))
    return blobs


def _extension(blob: bytes) -> str:
    return "png" if blob.startswith(b"\x89PNG") else "jpg"


def _write(path: bytes | str, data: bytes, dir_fd: int | None = None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dir_fd)
    try:
        if data:
            os.write(fd, data)
    finally:
        os.close(fd)


def build_mixed(root: Path, count: int, blobs: list[bytes], per_dir: int = 1000) -> dict[str, int]:
    """``count`` files, ``per_dir`` per directory: 1 in 10 an image, 4 in 10 empty, the rest text."""
    kinds = {"image": 0, "empty": 0, "text": 0}
    for i in range(count):
        folder = root / f"d{i // per_dir:05d}"
        if i % per_dir == 0:
            folder.mkdir(parents=True)
        r = i % 10
        if r == 0:
            blob = blobs[(i // 10) % len(blobs)]
            _write(str(folder / f"f{i:07d}.{_extension(blob)}"), blob)
            kinds["image"] += 1
        elif r <= 4:
            _write(str(folder / f"f{i:07d}.dat"), b"")
            kinds["empty"] += 1
        else:
            _write(str(folder / f"f{i:07d}.txt"), b"note %d: nothing to see here\n" % i)
            kinds["text"] += 1
    return kinds


def build_empty_files(root: Path, count: int, dirs: int = 10) -> None:
    """``count`` empty files in ``dirs`` directories, created with ``os.open``/``os.close`` relative to
    each directory's descriptor."""
    per_dir = -(-count // dirs)
    made = 0
    for d in range(dirs):
        folder = root / f"dir{d:02d}"
        folder.mkdir(parents=True)
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(min(per_dir, count - made)):
                os.close(os.open(b"e%07d" % i, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dfd))
                made += 1
        finally:
            os.close(dfd)


def build_deep(root: Path, depth: int, name: bytes, file_every: int = 1) -> int:
    """A chain of ``depth`` directories named ``name`` under ``root``, a one-byte file ``f`` in every
    ``file_every``-th level (root included), made with descriptors so that depth past PATH_MAX is no
    obstacle. Returns the number of files."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    files = 0
    try:
        for level in range(depth + 1):
            if level % file_every == 0:
                _write(b"f", b"x", dir_fd=fd)
                files += 1
            if level == depth:
                break
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    return files


def build_sparse(path: Path, size: int, head: bytes = b"") -> None:
    """A sparse file of ``size`` bytes: ``head`` then zeros (holes, using no disk)."""
    with open(path, "wb") as handle:
        handle.write(head)
        handle.truncate(size)


JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


def build_odd_names(root: Path) -> dict[str, Any]:
    """Awkward names and links; returns what was made and the paths of its entries."""
    root.mkdir(parents=True)
    made: list[bytes] = []
    base = os.fsencode(root)
    long_name = b"n" * 251 + b".txt"  # 255 bytes: NAME_MAX
    _write(base + b"/" + long_name, b"long name\n")
    made.append(base + b"/" + long_name)
    try:
        _write(base + b"/" + b"x" * 10_000, b"")
        too_long_name_refused = False
    except OSError as exc:
        too_long_name_refused = exc.errno == errno.ENAMETOOLONG
    for raw in (b"latin1-caf\xe9.txt", b"broken-\xff\xfe.jpg", b"ctrl-\x01\x1b[31m.txt", b"newline\nname.txt"):
        _write(base + b"/" + raw, b"odd name\n")
        made.append(base + b"/" + raw)
    # a path of over 10,000 characters: 40 levels of 250-byte names, a file at the bottom
    chain = root / "long-path"
    build_deep(chain, 40, b"p" * 250, file_every=40)
    made += [os.fsencode(chain) + b"/f", os.fsencode(chain) + (b"/" + b"p" * 250) * 40 + b"/f"]
    loops = root / "loops"
    loops.mkdir()
    os.symlink("self", loops / "self")
    os.symlink("b", loops / "a")
    os.symlink("a", loops / "b")
    os.symlink("..", loops / "up")
    os.symlink(".", loops / "here")
    made += [os.fsencode(loops / n) for n in ("self", "a", "b", "up", "here")]
    return {
        "paths": made,
        "name_of_10000_bytes_refused_by_the_file_system": too_long_name_refused,
        "longest_path_bytes": max(len(p) for p in made),
    }


def remove_tree(path: str | Path) -> None:
    """Delete a tree of any depth: iteratively, through directory descriptors (``shutil.rmtree``
    recurses, and paths deeper than PATH_MAX cannot be named whole)."""
    path = os.fsencode(path)
    if not os.path.lexists(path):
        return
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        os.unlink(path)
        return
    parent, name = os.path.split(path.rstrip(b"/"))
    top = os.open(parent or b".", os.O_RDONLY | os.O_DIRECTORY)
    stack: list[tuple[int, bytes]] = [(top, name)]  # (fd of the parent, name of a directory to empty)
    opened: list[int] = [top]
    try:
        while stack:
            pfd, dname = stack[-1]
            fd = os.open(dname, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
            subdirs = []
            with os.scandir(fd) as listing:
                for entry in listing:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(os.fsencode(entry.name))
                    else:
                        os.unlink(entry.name, dir_fd=fd)
            if subdirs:
                opened.append(fd)
                stack.extend((fd, s) for s in subdirs)
            else:
                os.close(fd)
                os.rmdir(dname, dir_fd=pfd)
                stack.pop()
                # a parent whose last pending subdirectory is gone is retried (now empty) when reached again
    finally:
        for fd in opened:
            try:
                os.close(fd)
            except OSError:
                pass


def make_index(index: Path, known: list[bytes], work: Path, python: str = sys.executable) -> None:
    """A small PDQ index of ``known`` generated images, through the command line."""
    folder = work / "known"
    folder.mkdir(parents=True)
    for i, blob in enumerate(known):
        (folder / f"k{i}.{_extension(blob)}").write_bytes(blob)
    run = [python, "-m", "matcher", "index"]
    subprocess.run([*run, "create", str(index)], check=True, capture_output=True)
    subprocess.run(
        [*run, "add", str(index), str(folder), "--list", "synthetic", "--category", "1", "--quiet"],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(folder)


# --------------------------------------------------------------------------------------------------
# Measuring


def _status_kib(pid: int, key: str = "VmHWM") -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(key.encode() + b":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _children(pid: int) -> dict[int, int]:
    """Descendants of ``pid`` as {pid: depth below ``pid``} (from /proc, no psutil needed)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
                parents[int(name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    found: dict[int, int] = {}
    frontier = {pid: 0}
    while frontier:
        nxt = {}
        for child, parent in parents.items():
            if parent in frontier and child not in found:
                found[child] = frontier[parent] + 1
                nxt[child] = frontier[parent] + 1
        frontier = nxt
    return found


def measure(
    argv: list[str], *, poll: float = 0.1, timeout: float = 1800.0, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``argv``; wall time, exit code, and peak RSS (KiB) of the main process, of its workers
    (descendants two levels down: forkserver children) and helpers (one level down), and of the whole
    tree (``wait4``'s ``ru_maxrss``: the largest single process of the tree)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    main_peak = 0
    peaks: dict[int, tuple[int, int]] = {}  # pid -> (depth, VmHWM)
    last_children = 0.0
    known: dict[int, int] = {}
    status = None
    rusage = None
    while True:
        waited, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if waited == proc.pid:
            break
        if time.perf_counter() - started > timeout:
            proc.kill()
            _, status, rusage = os.wait4(proc.pid, 0)
            break
        main_peak = max(main_peak, _status_kib(proc.pid) or 0)
        now = time.perf_counter()
        if now - last_children > 1.0:  # scanning /proc is dearer: once a second
            known.update(_children(proc.pid))
            last_children = now
        for child, depth in list(known.items()):
            value = _status_kib(child)
            if value is not None:
                peaks[child] = (depth, max(value, peaks.get(child, (depth, 0))[1]))
        time.sleep(poll)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    workers = [v for d, v in peaks.values() if d >= 2]
    helpers = [v for d, v in peaks.values() if d == 1]
    return {
        "exit_code": proc.returncode,
        "seconds": round(elapsed, 2),
        "peak_rss_main_mib": round(main_peak / KIB, 1),
        "peak_rss_workers_mib": round(max(workers) / KIB, 1) if workers else None,
        "workers_seen": len(workers),
        "peak_rss_helpers_mib": round(max(helpers) / KIB, 1) if helpers else None,
        "peak_rss_tree_max_mib": round(rusage.ru_maxrss / KIB, 1) if rusage else None,
        "stderr_tail": stderr[-600:],
    }


def read_report(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, "rb") as handle:
        for line in handle:
            rows.append(json.loads(line))
    return rows


def report_paths(rows: list[dict[str, Any]]) -> list[bytes]:
    """The raw path of every row (``path_raw_hex`` when the path is not UTF-8)."""
    return [bytes.fromhex(r["path_raw_hex"]) if r.get("path_raw_hex") else r["path"].encode() for r in rows]


def count_report(path: Path) -> tuple[int, dict[str, int], set[bytes], int]:
    """Rows, rows by status, the set of distinct paths and how many paths appeared on two rows or more,
    streamed (a million-row report is not held as dicts)."""
    rows = 0
    by_status: dict[str, int] = {}
    paths: set[bytes] = set()
    repeated = 0
    with open(path, "rb") as handle:
        for line in handle:
            r = json.loads(line)
            rows += 1
            by_status[r["status"]] = by_status.get(r["status"], 0) + 1
            p = bytes.fromhex(r["path_raw_hex"]) if r.get("path_raw_hex") else r["path"].encode()
            if p in paths and r.get("frame") in (None, 0):
                repeated += 1
            paths.add(p)
    return rows, by_status, paths, repeated


def scan_argv(paths: list[str], index: Path, output: Path, workers: int, python: str = sys.executable) -> list[str]:
    return [
        python,
        "-m",
        "matcher",
        "scan",
        *paths,
        "--index",
        str(index),
        "--output",
        str(output),
        "--workers",
        str(workers),
        "--quiet",
    ]


def cluster_argv(paths: list[str], output: Path, workers: int, python: str = sys.executable) -> list[str]:
    return [python, "-m", "matcher", "cluster", *paths, "--output", str(output), "--workers", str(workers), "--quiet"]


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def zeros_sha256(size: int) -> str:
    digest = hashlib.sha256()
    block = bytes(8 * MIB)
    left = size
    while left:
        n = min(left, len(block))
        digest.update(block[:n] if n < len(block) else block)
        left -= n
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Cases


def _case(name: str, bound: str, ok: bool, measured: dict[str, Any], **facts: Any) -> dict[str, Any]:
    result = {"case": name, "bound": bound, "pass": bool(ok), **facts, **measured}
    flag = "PASS" if ok else "FAIL"
    print(
        f"[{flag}] {name}: {facts.get('entries')} entries, {facts.get('rows')} rows, {measured.get('seconds')} s, "
        f"main {measured.get('peak_rss_main_mib')} MiB, workers {measured.get('peak_rss_workers_mib')} MiB",
        flush=True,
    )
    return result


def run_flat(
    work: Path, index: Path, sizes: list[int], blobs: list[bytes], workers: int, cluster: bool, cluster_max: int
) -> list[dict[str, Any]]:
    cases = []
    scan_points_main: list[tuple[int, float]] = []
    scan_points_workers: list[tuple[int, float]] = []
    cluster_points: list[tuple[int, float]] = []
    flat_cases = []
    for n in sizes:
        tree = work / f"flat-{n}"
        kinds = build_mixed(tree, n, blobs)
        out = work / f"flat-{n}.jsonl"
        m = measure(scan_argv([str(tree)], index, out, workers))
        rows, by_status, paths, repeated = count_report(out)
        ok = m["exit_code"] in (0, 1) and len(paths) == n and repeated == 0
        flat_cases.append(
            _case(
                f"flat-{n}",
                "every file one row; peak RSS slope < 0.1 KiB/file (see flat-slope)",
                ok,
                m,
                entries=n,
                rows=rows,
                distinct_paths=len(paths),
                by_status=by_status,
                kinds=kinds,
                workers=workers,
            )
        )
        scan_points_main.append((n, m["peak_rss_main_mib"] * KIB))
        if m["peak_rss_workers_mib"] is not None:
            scan_points_workers.append((n, m["peak_rss_workers_mib"] * KIB))
        out.unlink()
        if cluster:
            cout = work / f"cluster-{n}.jsonl"
            if n > cluster_max:
                remove_tree(tree)
                continue
            cm = measure(cluster_argv([str(tree)], cout, workers))
            crows, cstatus, cpaths, _ = count_report(cout)
            cok = cm["exit_code"] == 0 and len(cpaths) == n
            cases.append(
                _case(
                    f"cluster-{n}",
                    "every file one row; per-file cost reported in cluster-slope",
                    cok,
                    cm,
                    entries=n,
                    rows=crows,
                    distinct_paths=len(cpaths),
                    by_status=cstatus,
                    workers=workers,
                )
            )
            cluster_points.append((n, cm["peak_rss_main_mib"] * KIB))
            cout.unlink()
        remove_tree(tree)
    cases = flat_cases + cases
    s_main = slope(scan_points_main)
    s_workers = slope(scan_points_workers) if len(scan_points_workers) >= 2 else 0.0
    limit = 0.1
    cases.append(
        {
            "case": "flat-slope",
            "bound": f"slope of peak RSS over file count < {limit} KiB per file (main and workers)",
            "pass": s_main < limit and s_workers < limit and all(c["pass"] for c in flat_cases),
            "slope_main_kib_per_file": round(s_main, 5),
            "slope_workers_kib_per_file": round(s_workers, 5),
            "slope_main_mib_per_100k_files": round(s_main * 100_000 / KIB, 2),
            "points_main_mib": [(n, round(v / KIB, 1)) for n, v in scan_points_main],
            "points_workers_mib": [(n, round(v / KIB, 1)) for n, v in scan_points_workers],
        }
    )
    print(f"flat-slope: main {s_main:.5f} KiB/file, workers {s_workers:.5f} KiB/file", flush=True)
    if cluster and len(cluster_points) >= 2:
        c_slope = slope(cluster_points)
        cases.append(
            {
                "case": "cluster-slope",
                "bound": "matcher cluster holds every image's hashes and every record: per-file cost < 16 KiB",
                "pass": c_slope < 16 and all(c["pass"] for c in cases if c["case"].startswith("cluster-")),
                "slope_main_kib_per_file": round(c_slope, 3),
                "points_main_mib": [(n, round(v / KIB, 1)) for n, v in cluster_points],
            }
        )
        print(f"cluster-slope: {c_slope:.3f} KiB/file", flush=True)
    return cases


def run_million(work: Path, index: Path, count: int, workers: int) -> dict[str, Any]:
    tree = work / "million"
    t0 = time.perf_counter()
    build_empty_files(tree, count)
    built = time.perf_counter() - t0
    out = work / "million.jsonl"
    m = measure(scan_argv([str(tree)], index, out, workers))
    rows, by_status, paths, repeated = count_report(out)
    t0 = time.perf_counter()
    remove_tree(tree)
    removed = time.perf_counter() - t0
    out.unlink()
    time_bound, mem_bound = 1800, 512
    ok = (
        m["exit_code"] == 0
        and rows == count
        and len(paths) == count
        and repeated == 0
        and m["seconds"] < time_bound
        and m["peak_rss_main_mib"] < mem_bound
        and (m["peak_rss_workers_mib"] or 0) < mem_bound
    )
    return _case(
        "million-empty",
        f"{count} rows (one per file, status error 'empty file'); < {time_bound} s; "
        f"peak RSS < {mem_bound} MiB per process (the walk holds one directory's listing: 100,000 entries)",
        ok,
        m,
        entries=count,
        rows=rows,
        distinct_paths=len(paths),
        by_status=by_status,
        directories=10,
        build_seconds=round(built, 1),
        remove_seconds=round(removed, 1),
        workers=workers,
    )


def run_deep(work: Path, index: Path, depth: int, name: bytes, label: str, workers: int) -> dict[str, Any]:
    tree = work / label
    files = build_deep(tree, depth, name)
    base = len(os.fsencode(tree))
    deepest = base + (len(name) + 1) * depth + 2
    out = work / f"{label}.jsonl"
    m = measure(scan_argv([str(tree)], index, out, workers))
    rows = read_report(out)
    paths = report_paths(rows)
    expected = {os.fsencode(tree) + (b"/" + name) * level + b"/f" for level in range(depth + 1)}
    too_long = [r for r, p in zip(rows, paths) if len(p) >= 4096]
    read_ok = [r for r in rows if r["md5"] and not r.get("error")]
    ok = (
        m["exit_code"] == 0
        and set(paths) == expected
        and len(paths) == len(expected)
        and len(read_ok) == len(rows)
        and m["seconds"] < 120
        and m["peak_rss_main_mib"] < 512
    )
    out.unlink()
    remove_tree(tree)
    return _case(
        label,
        "every level's file one row, digested (paths over PATH_MAX read through directory "
        "descriptors); < 120 s; peak RSS < 512 MiB",
        ok,
        m,
        entries=files,
        rows=len(rows),
        depth=depth,
        deepest_path_bytes=deepest,
        rows_digested=len(read_ok),
        rows_path_over_path_max=len(too_long),
        example_error=next((r["error"] for r in rows if r.get("error")), None),
        workers=workers,
    )


def run_sparse(
    work: Path, index: Path, size: int, head: bytes, label: str, workers: int, check_digest: bool
) -> dict[str, Any]:
    folder = work / label
    folder.mkdir()
    target = folder / ("big.jpg" if head else "big.bin")
    build_sparse(target, size, head)
    out = work / f"{label}.jsonl"
    m = measure(scan_argv([str(folder)], index, out, workers))
    rows = read_report(out)
    row = rows[0] if rows else {}
    expected = zeros_sha256(size) if check_digest and not head else None
    gib = size / GIB
    time_bound = 30 + 20 * gib  # at least ~50 MiB/s for three digests of every byte, plus start-up
    # A file that looks like an image is kept in memory while it is within max_file_bytes (512 MiB by
    # default): read_file only learns it is over the limit on reaching it, so that much is held first.
    mem_bound = 256 + (512 if head else 0)
    ok = (
        m["exit_code"] == 0
        and len(rows) == 1
        and row.get("size") == size
        and bool(row.get("sha256"))
        and (expected is None or row.get("sha256") == expected)
        and m["seconds"] < time_bound
        and max(m["peak_rss_main_mib"], m["peak_rss_workers_mib"] or 0) < mem_bound
    )
    out.unlink()
    remove_tree(folder)
    return _case(
        label,
        f"one row with MD5/SHA-1/SHA-256 of all {size} bytes"
        + (" (SHA-256 checked)" if expected else "")
        + (", image not decoded (over max_file_bytes)" if head else "")
        + f"; < {time_bound:.0f} s (>= ~50 MiB/s); peak RSS < {mem_bound} MiB",
        ok,
        m,
        entries=1,
        rows=len(rows),
        size=size,
        status=row.get("status"),
        error=row.get("error"),
        sha256_checked=expected is not None,
        throughput_mib_s=round(size / MIB / m["seconds"], 1),
        workers=workers,
    )


def run_odd(work: Path, index: Path, workers: int) -> dict[str, Any]:
    tree = work / "odd"
    made = build_odd_names(tree)
    out = work / "odd.jsonl"
    m = measure(scan_argv([str(tree)], index, out, workers))
    rows = read_report(out)
    paths = report_paths(rows)
    expected = set(made["paths"])
    by = dict(zip(paths, rows))
    loops_skipped = all(by.get(p, {}).get("status") == "skipped" for p in expected if b"/loops/" in p)
    ok = (
        m["exit_code"] == 0
        and set(paths) == expected
        and len(paths) == len(expected)
        and loops_skipped
        and m["seconds"] < 60
    )
    out.unlink()
    remove_tree(tree)
    return _case(
        "odd-names",
        "every entry one row, the exact name kept (path_raw_hex for non-UTF-8); links "
        "(loops included) skipped, never followed; < 60 s",
        ok,
        m,
        entries=len(expected),
        rows=len(rows),
        longest_path_bytes=made["longest_path_bytes"],
        name_of_10000_bytes_refused_by_the_file_system=made["name_of_10000_bytes_refused_by_the_file_system"],
        by_status={s: sum(1 for r in rows if r["status"] == s) for s in {r["status"] for r in rows}},
        workers=workers,
    )


# --------------------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as handle:
            mem = int(handle.readline().split()[1]) // KIB
    except (OSError, ValueError, IndexError):
        mem = None
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mib": mem,
        "system": platform.platform(),
        "python": platform.python_version(),
    }


def git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def _short(value: Any, keep: int = 160) -> Any:
    """A long text (a 9,000-byte path in an error) cut in its middle for the Markdown table."""
    if isinstance(value, str) and len(value) > keep:
        return f"{value[:60]}...({len(value) - keep + 40} characters)...{value[-(keep - 100) :]}"
    return value


def write_results(cases: list[dict[str, Any]], meta: dict[str, Any], stem: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    body = {**meta, "cases": cases, "all_pass": all(c["pass"] for c in cases)}
    (RESULTS / f"{stem}.json").write_text(json.dumps(body, indent=2, default=str) + "\n")
    lines = [
        "# Resource bounds of `matcher scan`",
        "",
        f"Run `{meta['command']}` on {meta['date']} (git {meta['git_commit']}); {meta['machine']['cpu']}, "
        f"{meta['machine']['cores']} cores, {meta['machine']['memory_mib']} MiB, Python {meta['machine']['python']}; "
        f"total {meta['total_seconds']} s. Synthetic data only.",
        "",
        "| case | entries | rows | time (s) | peak RSS main (MiB) | peak RSS workers (MiB) | bound | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        if "entries" not in c:
            continue
        lines.append(
            f"| {c['case']} | {c['entries']:,} | {c['rows']:,} | {c['seconds']} | {c['peak_rss_main_mib']} | "
            f"{c['peak_rss_workers_mib'] if c['peak_rss_workers_mib'] is not None else '-'} | {c['bound']} | "
            f"{'pass' if c['pass'] else 'FAIL'} |"
        )
    lines.append("")
    for c in cases:
        if c["case"].endswith("-slope"):
            lines.append(
                f"- **{c['case']}**: main {c['slope_main_kib_per_file']} KiB per file"
                + (
                    f", workers {c['slope_workers_kib_per_file']} KiB per file"
                    if "slope_workers_kib_per_file" in c
                    else ""
                )
                + f" (points, MiB: {c['points_main_mib']}"
                + (f"; workers {c['points_workers_mib']}" if c.get("points_workers_mib") else "")
                + f"); bound: {c['bound']}: {'pass' if c['pass'] else 'FAIL'}"
            )
    for c in cases:
        extra = {
            k: v
            for k, v in c.items()
            if k
            in (
                "error",
                "example_error",
                "status",
                "throughput_mib_s",
                "deepest_path_bytes",
                "rows_path_over_path_max",
                "by_status",
                "build_seconds",
                "longest_path_bytes",
            )
        }
        if extra:
            lines.append(f"- {c['case']}: " + ", ".join(f"{k} = {_short(v)!r}" for k, v in extra.items()))
    lines.append("")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.resource_bounds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--million", action="store_true", help="include the million empty files")
    parser.add_argument("--quick", action="store_true", help="small sizes and 1 GiB sparse files (a smoke run)")
    parser.add_argument("--sizes", default=None, help="file counts of the flatness trees (default 1000,10000,100000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-cluster", action="store_true", help="leave matcher cluster out")
    parser.add_argument("--cluster-max", type=int, default=10_000, help="largest tree clustered (default 10000)")
    parser.add_argument("--cases", default="flat,million,deep,sparse,odd", help="comma-separated case families")
    parser.add_argument("--dir", default=None, help="where to build the trees (default: the system's temp dir)")
    parser.add_argument("--output-stem", default=None, help="results file stem (default resource_bounds)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in (args.sizes or ("300,1200" if args.quick else "1000,10000,100000")).split(",")]
    sparse_size = (1 if args.quick else 10) * GIB
    families = set(args.cases.split(","))
    stem = args.output_stem or ("resource_bounds_quick" if args.quick else "resource_bounds")
    command = "python -m benchmarks.resource_bounds " + " ".join(argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    commit = git_commit()  # the code measured: taken at the start
    cases: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="matcher-resource-bounds-", dir=args.dir))
    try:
        blobs = image_blobs()
        index = work / "index"
        make_index(index, blobs[:4], work)
        if "flat" in families:
            cases += run_flat(work, index, sizes, blobs, args.workers, not args.no_cluster, args.cluster_max)
        if "deep" in families:
            cases.append(run_deep(work, index, 1000, b"d", "deep-1000", args.workers))
            cases.append(run_deep(work, index, 1000, b"abcdefgh", "deep-beyond-path-max", args.workers))
        if "odd" in families:
            cases.append(run_odd(work, index, args.workers))
        if "sparse" in families:
            cases.append(
                run_sparse(
                    work, index, sparse_size, b"", f"sparse-{sparse_size // GIB}g", args.workers, check_digest=True
                )
            )
            cases.append(
                run_sparse(
                    work,
                    index,
                    sparse_size,
                    JPEG_HEAD,
                    f"sparse-{sparse_size // GIB}g-jpeg",
                    args.workers,
                    check_digest=False,
                )
            )
        if args.million and "million" in families:
            cases.append(run_million(work, index, 20_000 if args.quick else 1_000_000, args.workers))
    finally:
        remove_tree(work)
    meta = {
        "command": command,
        "date": date,
        "git_commit": commit,
        "machine": machine(),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    write_results(cases, meta, stem)
    failed = [c["case"] for c in cases if not c["pass"]]
    print(f"{len(cases) - len(failed)}/{len(cases)} cases pass" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
