"""Progress and logs that a long run needs (issue 16).

* Without a terminal (nohup, cron, a case-management tool) every long command prints a plain progress
  line at a fixed interval on stderr (``MATCHER_PROGRESS_INTERVAL`` seconds, default 30), and ends with
  a summary line; on a terminal a live bar is drawn (``rich``); ``--quiet`` silences both.
* The ETA comes from bytes, after a warm-up (5 % of the bytes or 10 s), never from the first files.
* ``-v`` shows matcher's own debug lines, not Pillow's (or any other library's); ``-vv`` shows them all.
* ``matcher index add --workers N`` hashes in a pool and keeps the records in the order of one worker.
"""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ROOT, matcher_command, run_matcher

from fixtures import encode, scene
from matcher import batch
from matcher.progress import (
    INTERVAL_VARIABLE,
    EtaEstimator,
    ProgressReporter,
    ProgressState,
    format_duration,
    progress_line,
)

FAST = {INTERVAL_VARIABLE: "0.01"}
LINE = re.compile(r"^matcher (hash|scan|cluster|index add): (\d+)/(\d+) files, .* errors, \d+:\d\d:\d\d elapsed")


@pytest.fixture(scope="module")
def evidence(tmp_path_factory) -> Path:
    """Twelve small synthetic PNGs and one text file."""
    folder = tmp_path_factory.mktemp("progress") / "evidence"
    folder.mkdir()
    for i in range(12):
        (folder / f"img{i:02d}.png").write_bytes(encode(scene(300 + i, 96, 72), "PNG"))
    (folder / "notes.txt").write_text("not an image\n")
    return folder


@pytest.fixture(scope="module")
def index(tmp_path_factory, evidence) -> Path:
    path = tmp_path_factory.mktemp("progress-index") / "index"
    assert run_matcher("index", "create", path, "-a", "pdq").returncode == 0
    done = run_matcher("index", "add", path, evidence, "--list", "known", "-j", "1", "-q")
    assert done.returncode == 0, done.stderr
    return path


def progress_lines(stderr: bytes) -> list[str]:
    return [line for line in stderr.decode().splitlines() if LINE.match(line)]


# --------------------------------------------------------------------------------------------------
# The ETA


def test_no_eta_before_five_percent_of_the_bytes_or_ten_seconds():
    estimate = EtaEstimator(1000)
    estimate.observe(0.0, 0)
    estimate.observe(1.0, 10)  # 1 % in 1 s: still warming up
    assert estimate.eta() is None
    estimate.observe(2.0, 60)  # 6 %: an estimate, from the bytes
    assert estimate.eta() == pytest.approx((1000 - 60) / 30)


def test_eta_after_ten_seconds_even_when_the_bytes_are_few():
    estimate = EtaEstimator(1_000_000)
    estimate.observe(0.0, 0)
    estimate.observe(9.9, 1000)
    assert estimate.eta() is None
    estimate.observe(10.0, 1000)
    assert estimate.eta() == pytest.approx((1_000_000 - 1000) / 100)


def test_eta_needs_bytes_read_and_a_total():
    stalled = EtaEstimator(1000)
    stalled.observe(0.0, 0)
    stalled.observe(20.0, 0)  # warmed up by time, but nothing read (workers starting): no guess
    assert stalled.eta() is None
    unknown = EtaEstimator(None)
    unknown.observe(0.0, 0)
    unknown.observe(20.0, 500)
    assert unknown.eta() is None


def test_eta_of_a_resumed_run_counts_from_where_it_resumed():
    estimate = EtaEstimator(1000)
    estimate.observe(0.0, 500)  # half done by the interrupted run
    estimate.observe(1.0, 510)  # 2 % of what is left
    assert estimate.eta() is None
    estimate.observe(2.0, 550)
    assert estimate.eta() == pytest.approx(450 / 25)


def test_eta_follows_the_recent_rate_not_the_slow_start():
    estimate = EtaEstimator(10_000_000, window=60.0)
    estimate.observe(0.0, 0)
    estimate.observe(30.0, 1000)  # workers starting, first small files
    for second in range(31, 200):
        estimate.observe(float(second), 1000 + (second - 30) * 10_000)
    assert estimate.rate() == pytest.approx(10_000)
    done = 1000 + 169 * 10_000
    assert estimate.eta() == pytest.approx((10_000_000 - done) / 10_000)


def test_the_eta_comes_from_bytes_not_files(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("matcher.progress.time.monotonic", lambda: clock[0])
    stream = io.StringIO()
    reporter = ProgressReporter("scan", stream=stream, interval=3600, live=False)
    reporter.start()
    reporter.update(files=0, total_files=100, bytes_done=0, total_bytes=1_000_000)
    clock[0] += 20
    # 99 of 100 files, but the last one is the video holding 90 % of the bytes
    reporter.update(files=99, bytes_done=100_000)
    state = reporter.state()
    reporter.finish()
    assert state.eta == pytest.approx(900_000 / 5_000)
    assert "ETA 0:03:00" in progress_line(state)
    assert stream.getvalue() == ""  # nothing printed before the first interval, so no last line either


def test_the_line_says_starting_until_the_run_reports(monkeypatch):
    reporter = ProgressReporter("scan", stream=io.StringIO(), interval=3600, live=False)
    assert "starting" in progress_line(reporter.state())  # e.g. while the files are counted
    reporter.update(files=0, total_files=10, total_bytes=100)
    assert "starting" not in progress_line(reporter.state())


def test_progress_line_says_everything_a_log_reader_needs():
    state = ProgressState(
        files=120, total_files=500, bytes_done=1_200_000_000, total_bytes=4_800_000_000, matches=3, errors=1
    )
    line = progress_line(replace(state, elapsed=90.0, rate=4e7, eta=3600))
    assert line == ("120/500 files, 1.2 GB/4.8 GB (25%), 40.0 MB/s, 3 matched, 1 errors, 0:01:30 elapsed, ETA 1:00:00")
    assert format_duration(90061) == "25:01:01"


# --------------------------------------------------------------------------------------------------
# The reporter


def test_plain_lines_at_the_interval_and_a_last_one(monkeypatch):
    stream = io.StringIO()
    reporter = ProgressReporter("hash", stream=stream, interval=0.01, live=False)
    with reporter:
        reporter.update(files=1, total_files=3, bytes_done=10, total_bytes=30, records=1)
        while reporter.lines < 2:
            pass
        reporter.update(files=3, bytes_done=30, records=3)
    reporter.summary("matcher hash: 3 files, 3 records, 0 errors in 0.1s")
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 4 and all(line.startswith("matcher hash: ") for line in lines)
    assert lines[-2].startswith("matcher hash: 3/3 files, 30 B/30 B (100%)")  # the last state
    assert lines[-1] == "matcher hash: 3 files, 3 records, 0 errors in 0.1s"


def test_quiet_reporter_prints_nothing():
    stream = io.StringIO()
    with ProgressReporter("scan", stream=stream, interval=0.001, quiet=True) as reporter:
        reporter.update(files=1, bytes_done=5)
    reporter.summary("done")
    assert stream.getvalue() == ""


def test_live_reporter_draws_a_bar_with_rich():
    stream = io.StringIO()
    with ProgressReporter("cluster", stream=stream, live=True) as reporter:
        reporter.update(files=2, total_files=4, bytes_done=50, total_bytes=100, errors=0)
        reporter.note("matcher: skipped something")
    out = stream.getvalue()
    assert "\x1b[?25l" in out  # a live display (cursor hidden while drawing), not lines
    assert "matcher cluster" in out and "2/4 files" in out and "matcher: skipped something" in out


def test_a_bad_interval_is_a_usage_error(evidence):
    done = run_matcher("hash", evidence, "-o", os.devnull, env={INTERVAL_VARIABLE: "soon"})
    assert done.returncode == 2 and INTERVAL_VARIABLE in done.stderr.decode()


# --------------------------------------------------------------------------------------------------
# The commands, as a case tool or cron runs them: stderr is not a terminal


def test_hash_prints_progress_lines_and_a_summary(evidence, tmp_path):
    done = run_matcher("hash", evidence, "-o", tmp_path / "h.jsonl", "-j", "1", env=FAST)
    assert done.returncode == 0, done.stderr
    lines = progress_lines(done.stderr)
    assert lines, done.stderr
    assert lines[-1].startswith("matcher hash: 13/13 files, ") and "13 records" in lines[-1]
    summary, last = done.stderr.decode().splitlines()[-2:]
    assert re.fullmatch(r"matcher hash: 13 files, 13 records, \d+ errors in \d+\.\ds", summary), summary
    assert last.startswith("exit 0: hashing completed"), last  # the last line says what the status means


def test_scan_prints_progress_lines_with_matches_and_a_summary(evidence, index, tmp_path):
    done = run_matcher("scan", evidence, "--index", index, "-o", tmp_path / "r.jsonl", "-j", "1", env=FAST)
    assert done.returncode == 1, done.stderr  # matched
    lines = progress_lines(done.stderr)
    assert lines, done.stderr
    assert lines[-1].startswith("matcher scan: 13/13 files, ") and "12 matched, 0 errors" in lines[-1]
    assert "ETA" in lines[-1] or "elapsed" in lines[-1]
    assert "matcher scan: 13 files" in done.stderr.decode()


def test_cluster_prints_progress_lines_and_a_summary(evidence, tmp_path):
    done = run_matcher("cluster", evidence, "-o", tmp_path / "c.jsonl", "-j", "1", env=FAST)
    assert done.returncode == 0, done.stderr
    lines = progress_lines(done.stderr)
    assert lines and lines[-1].startswith("matcher cluster: 13/13 files, "), done.stderr
    assert (
        "matcher cluster: 13 files, 12 members hashed (an image, a frame of an animation or a whole video each) in "
        in done.stderr.decode()
    )


def test_index_add_prints_progress_lines_and_a_summary(evidence, tmp_path):
    path = tmp_path / "index"
    assert run_matcher("index", "create", path).returncode == 0
    done = run_matcher("index", "add", path, evidence, "-j", "1", env=FAST)
    assert done.returncode == 0, done.stderr
    lines = progress_lines(done.stderr)
    assert lines and lines[-1].startswith("matcher index add: 13/13 files, "), done.stderr
    assert re.search(r"added 12, .* 13 files hashed in \d+\.\ds", done.stderr.decode())


def test_default_interval_prints_no_line_for_a_short_run(evidence, tmp_path):
    done = run_matcher("hash", evidence, "-o", tmp_path / "h.jsonl", "-j", "1")
    assert done.returncode == 0
    assert progress_lines(done.stderr) == []
    assert done.stderr.decode().startswith("matcher hash: 13 files, 13 records")


def test_quiet_silences_progress_and_summary(evidence, index, tmp_path):
    hashed = run_matcher("hash", evidence, "-o", tmp_path / "h.jsonl", "-q", "-j", "1", env=FAST)
    assert hashed.returncode == 0 and hashed.stderr == b""
    scanned = run_matcher("scan", evidence, "--index", index, "-o", tmp_path / "r.jsonl", "-q", "-j", "1", env=FAST)
    assert scanned.returncode == 1 and scanned.stderr == b""


# --------------------------------------------------------------------------------------------------
# On a terminal: a live bar


def test_a_terminal_gets_a_live_bar(evidence, tmp_path):
    master, slave = os.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", "COLUMNS": "160"}
    env.pop(INTERVAL_VARIABLE, None)
    process = subprocess.Popen(
        [matcher_command(), "hash", str(evidence), "-o", str(tmp_path / "h.jsonl"), "-j", "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    drawn = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal closed when the command ended
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(master)
        process.wait(timeout=60)
    assert process.returncode == 0, drawn
    text = drawn.decode(errors="replace")
    assert "\x1b[?25l" in text, text  # a live display (cursor hidden while drawing), not plain lines
    assert "matcher hash" in text and "13/13 files" in text
    assert "matcher hash: 13 files, 13 records" in text  # and the summary


# --------------------------------------------------------------------------------------------------
# Logging


def test_verbose_hides_other_libraries_debug_lines_unless_doubled(evidence):
    image = evidence / "img00.png"
    once = run_matcher("-v", "hash", image, "-q", "-j", "1")
    twice = run_matcher("-vv", "hash", image, "-q", "-j", "1")
    assert once.returncode == 0 and twice.returncode == 0
    assert b"PIL" not in once.stderr and b"STREAM" not in once.stderr
    assert b"PIL.PngImagePlugin: STREAM" in twice.stderr


def test_verbose_shows_matchers_own_debug_lines():
    script = (
        "import logging\n"
        "from matcher.progress import configure_logging\n"
        "configure_logging({})\n"
        "logging.getLogger('matcher.scan').debug('own line')\n"
        "logging.getLogger('PIL.Image').debug('pillow line')\n"
        "logging.getLogger('distributed.worker').info('dask line')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    quiet, once, twice = (
        subprocess.run([sys.executable, "-c", script.format(n)], capture_output=True, text=True, env=env, check=True)
        for n in (0, 1, 2)
    )
    assert quiet.stderr == ""
    assert once.stderr == "matcher: own line\n"
    assert twice.stderr.splitlines() == [
        "matcher.scan: own line",
        "PIL.Image: pillow line",
        "distributed.worker: dask line",
    ]


# --------------------------------------------------------------------------------------------------
# index add in a pool


def _records(path: Path) -> list[tuple[object, ...]]:
    from matcher.index import KnownIndex

    with KnownIndex.open(path) as opened:
        return [
            (r.id, r.name, r.sha256, tuple(sorted((k, str(v)) for k, v in r.hashes.items())))
            for r in opened.iter_records()
        ]


def test_index_add_with_a_pool_keeps_the_order_of_one_worker(tmp_path, monkeypatch):
    from matcher.index import KnownIndex
    from matcher.index.importing import import_sources

    folder = tmp_path / "known"
    for sub in ("b", "a", "c"):
        (folder / sub).mkdir(parents=True)
        for i in range(7):  # sizes differ, so that workers finish out of order
            size = 48 + 40 * ((i * 5) % 7)
            (folder / sub / f"{i}.png").write_bytes(encode(scene(ord(sub) * 10 + i, size, size), "PNG"))
    real = batch.pool_map
    used: list[int] = []

    def pool_only(*args, **kwargs):  # the pool does every entry (this process hashes none meanwhile)
        used.append(args[2])
        return real(*args, **{**kwargs, "in_parent": None})

    monkeypatch.setattr(batch, "pool_map", pool_only)
    monkeypatch.setattr("matcher.hashing._ENTRIES_PER_WORKER", 1)  # a pool even for a few images
    orders = {}
    for workers in (1, 2):
        path = tmp_path / f"index{workers}"
        with KnownIndex.create(path, ("pdq",)) as created:
            import_sources(created, [folder / "c", folder / "a"], list_name="known", workers=workers)
        orders[workers] = _records(path)
    assert used == [2]  # the second import ran in a pool of two
    assert orders[1] == orders[2] and len(orders[1]) == 14
    assert [name.split(os.sep)[-2:] for _, name, _, _ in orders[1]][:2] == [["c", "0.png"], ["c", "1.png"]]


def test_index_add_workers_option_gives_the_same_index(evidence, tmp_path):
    orders = []
    for workers in ("1", "2"):
        path = tmp_path / f"index{workers}"
        assert run_matcher("index", "create", path).returncode == 0
        added = run_matcher("index", "add", path, evidence, "--workers", workers, "-q")
        assert added.returncode == 0, added.stderr
        orders.append(_records(path))
    assert orders[0] == orders[1] and len(orders[0]) == 12


# --------------------------------------------------------------------------------------------------
# What the library's progress values carry


def test_scan_progress_counts_bytes_matches_and_errors_and_resumes_with_its_bytes(evidence, index, tmp_path):
    from matcher.scan import ScanOptions, run_scan

    sizes = [p.stat().st_size for p in sorted(evidence.iterdir())]
    seen = []

    class Stop(Exception):
        pass

    def interrupt(p):
        seen.append(p)
        if p.done == 5:
            raise Stop

    out = str(tmp_path / "r.jsonl")
    options = ScanOptions(workers=1)
    with pytest.raises(Stop):
        run_scan([str(evidence)], str(index), options, out, progress=interrupt, count_first=True)
    assert seen[0].total == 13 and seen[0].total_bytes == sum(sizes) and seen[0].bytes_done == 0
    assert seen[-1].bytes_done == sum(sizes[:5]) and seen[-1].matched == 5
    resumed = []
    run_scan([str(evidence)], str(index), options, out, resume=True, progress=resumed.append, count_first=True)
    first, last = resumed[0], resumed[-1]
    assert first.resumed == 5 and first.resumed_bytes == sum(sizes[:5]) and first.bytes_done == sum(sizes[:5])
    assert (last.done, last.bytes_done, last.total_bytes) == (13, sum(sizes), sum(sizes))
    assert last.matched == 7 and last.errors == 0  # this run's: the five before were the interrupted run's


def test_cluster_progress_counts_bytes_and_totals(evidence):
    from matcher.cluster import cluster_paths

    seen = []
    cluster_paths([str(evidence)], progress=seen.append, count_first=True)
    total = sum(p.stat().st_size for p in evidence.iterdir())
    assert seen[0].stage == "hashing" and (seen[0].done, seen[0].total, seen[0].total_bytes) == (0, 13, total)
    assert seen[-1].stage == "grouping" and seen[-1].bytes_done == total and seen[-1].errors == 0


def test_hash_paths_progress_counts_files_records_and_errors(tmp_path):
    from matcher.hashing import hash_paths

    (tmp_path / "a.png").write_bytes(encode(scene(1, 64, 48), "PNG"))
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    seen = []
    records = list(hash_paths([tmp_path], ["pdq"], progress=seen.append, count_first=True))
    assert len(records) == 2 and seen[0].files == 0 and seen[0].total == 2
    assert (seen[-1].files, seen[-1].records, seen[-1].errors) == (2, 2, 1)
    assert seen[-1].bytes_done == seen[-1].total_bytes == sum(p.stat().st_size for p in tmp_path.iterdir())
