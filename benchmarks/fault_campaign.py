"""Fault-injection campaign (issue 8): kill scans and index updates, fill the disk, pull files away.

One command runs the long campaign and writes ``benchmarks/results/fault_campaign.json`` and ``.md``::

    nice -n 10 python -m benchmarks.fault_campaign --runs 200 --seed 1 [--minutes 20]

``tests/test_faults.py`` runs a handful of the same runs on every commit. Every run is seeded (its own
seed is drawn from ``--seed`` and recorded with any failure, so ``--only KIND --seed S --runs 1``
style reproduction is possible); kills after a random *delay* also depend on timing, so what they
interrupt varies between machines, the checks after them do not.

Kinds of fault (each run injects one; round-robin, so the kinds get equal shares):

``scan_kill_delay``
    A real ``matcher scan ... --output R`` child (``--workers`` 1 or 2) killed with SIGKILL (its whole
    process group: driver and workers) after a seeded random delay within its uninterrupted run
    time; sometimes the ``--resume`` run is killed again (kill twice). Then ``--resume`` to the end.
``scan_kill_hook``
    The same, killed at a seeded random entry by ``tests.fault_injection.kill_after_command`` (a wrapper
    around the scan driver's journal write: the driver kills itself right after journaling that
    many entries).
``index_kill_delay``
    ``matcher index add INDEX SOURCE`` (a hash list, or a folder of images hashed with views) into an
    existing index, killed after a seeded random delay.
``index_kill_checkpoint``
    The same update in a child that SIGKILLs itself at one of the store's ``_checkpoint`` steps
    (``temp-created`` ... ``manifest-replaced``, cycled).
``disk_full_scan``
    The report and journal on a small tmpfs (seeded size, page-granular), or, where mounting is not
    permitted, under ``RLIMIT_FSIZE`` with SIGXFSZ ignored: the scan fits, or fails with a clear
    message and exit code 2 (no traceback); space is then freed and ``--resume`` finishes it.
``disk_full_index``
    The index on a small tmpfs (or under ``RLIMIT_FSIZE``): the update succeeds, or is refused with a
    clear message and exit code 2 and the index is exactly as before; space is freed and the update
    is run again.
``file_fault``
    In-process scans (``--workers 1``) with one fault placed deterministically, cycling: a file that
    vanishes between listing and reading (``files.walk`` wrapped to unlink it after listing), one
    rewritten between listing and reading, one swapped for a FIFO, one growing while it is read (a
    real writer thread, released by a wrapped ``os.read`` after the first chunk), permission denied on
    a file and on a directory (``os.open`` interposed with EACCES), and the same two for real: a scan
    child dropped to uid/gid 65534 over ``chmod 000`` entries (when run as root; plain chmod otherwise).

After every run: a scan's final report must equal the uninterrupted reference byte for byte (rows are
also compared by ``(path, frame)``: lost and duplicated rows are counted); an index must open with
verification and hold exactly the records, and give exactly the search answers (main hashes and every
view table), of the reference index before the update or of the one after it, never anything else;
the next update must succeed (no stale lock) and leave only the new generation; a faulted file must
get its own record saying so and every other record must equal a clean scan's.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.fault_injection import kill_after_command

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
KINDS = (
    "scan_kill_delay",
    "scan_kill_hook",
    "index_kill_delay",
    "index_kill_checkpoint",
    "disk_full_scan",
    "disk_full_index",
    "file_fault",
)
CHECKPOINTS = (
    "temp-created",
    "database-written",
    "arrays-written",
    "generation-synced",
    "generation-renamed",
    "manifest-temp-written",
    "manifest-replaced",
)
FILE_FAULTS = ("vanish", "rewritten", "fifo_swapped", "growing", "denied_file", "denied_dir", "denied_real")
NOBODY = 65534
_CHILD_TIMEOUT = 300


# --------------------------------------------------------------------------------------------------
# Children


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def matcher_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "matcher", *args]


@dataclasses.dataclass
class Finished:
    returncode: int
    stderr: str
    killed: bool  # we killed it (it had not finished)
    seconds: float
    lingering: bool = False  # processes of its group outlived it by 10 s (e.g. orphaned pool workers)


def run_child(
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    kill_after: float | None = None,
    preexec: Callable[[], None] | None = None,
) -> Finished:
    """Run a child in its own process group; with ``kill_after``, SIGKILL the whole group after that many
    seconds unless it finished. Leftover processes of the group (orphaned workers) are killed too."""
    started = time.monotonic()
    child = subprocess.Popen(
        command,
        env=env or child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=preexec,
    )
    killed = False
    err = bytearray()
    reader = threading.Thread(target=lambda: err.extend(child.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        if kill_after is not None:
            try:
                child.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                killed = True
        child.wait(timeout=_CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        err.extend(b"\n[fault campaign: child timed out]")
    finally:
        # what is left of the group once the driver is gone (pool workers of a driver killed alone are
        # meant to exit by themselves: give them up to 10 s, then count and kill any that did not)
        lingering = _group_alive(child.pid, wait=10.0)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        reader.join(10)
        if child.stderr is not None:
            child.stderr.close()
    return Finished(child.returncode, err.decode("utf-8", "replace"), killed, time.monotonic() - started, lingering)


def _group_alive(pgid: int, wait: float) -> bool:
    """Whether any process of group ``pgid`` is still alive after up to ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        if not _group_members(pgid):
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of group ``pgid``; from /proc where there is one."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


# --------------------------------------------------------------------------------------------------
# The world: an evidence tree, an index, hash-list and image sources, reference results


@dataclasses.dataclass
class World:
    base: Path
    evidence: Path
    index: Path  # the index scans run against (never written)
    before: Path  # the reference index before an update (copied for each index run)
    sources: dict[str, Path]  # "list" / "images" -> the source of an update
    after: dict[str, Path]  # source kind -> the reference index after the update
    states: dict[str, str]  # "before", "after:list", "after:images" -> state digest
    queries: list[Any]
    reference: bytes  # the uninterrupted report
    entries: int  # walked entries of the evidence tree
    scan_seconds: dict[int, float]  # workers -> an uninterrupted CLI scan's duration
    add_seconds: dict[str, float]  # source kind -> an uninterrupted CLI update's duration
    file_tree: Path  # pristine tree for the file faults
    nobody_ok: bool  # a child can drop to uid 65534 and read the code
    disk_full: str  # "tmpfs" or "rlimit_fsize"
    update_in_process: bool = False  # the update after a fault: in this process (fast tests) or a child


def _write_images(directory: Path, seeds: range, size: tuple[int, int]) -> list[Path]:
    from fixtures import encode, scene

    kinds = ("landscape", "shapes", "text", "plasma")
    out = []
    for n, seed in enumerate(seeds):
        path = directory / f"img_{seed:04d}.png"
        path.write_bytes(encode(scene(seed, size[0], size[1], kinds[n % len(kinds)]), "PNG"))
        out.append(path)
    return out


def build_world(
    base: Path, *, files: int = 30, list_codes: int = 20000, images: int = 6, calibrate: bool = True
) -> World:
    """Make the evidence tree, the index and the references. ``files``: about how many evidence files."""
    import numpy as np

    import matcher
    from fixtures import edit, encode, scene
    from matcher.index import KnownIndex
    from matcher.index.importing import import_sources, known_from_hash_record
    from matcher.scan import ScanOptions, run_scan

    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)  # the uid-65534 child must reach what it reads
    evidence, known = base / "evidence", base / "known"
    for d in (evidence / "edits", evidence / "other", known):
        d.mkdir(parents=True, exist_ok=True)
    originals = _write_images(known, range(100, 104), (128, 96))
    edits = ("jpeg75", "rotate90", "mirror", "resize0.5", "crop10", "pad20_black")
    count = 0
    for i, original in enumerate(originals):
        from PIL import Image

        with Image.open(original) as img:
            img.load()
            for name in edits:
                if count >= files * 0.6:
                    break
                encoded = encode(
                    edit(img, name),
                    "JPEG" if name == "jpeg75" else "PNG",
                    **({"quality": 75} if name == "jpeg75" else {}),
                )
                (evidence / "edits" / f"o{i}_{name}.{'jpg' if name == 'jpeg75' else 'png'}").write_bytes(encoded)
                count += 1
    for j in range(max(2, files - count - 4)):
        (evidence / "other" / f"unrelated_{j:02d}.jpg").write_bytes(encode(scene(900 + j, 96, 72, "shapes"), "JPEG"))
    (evidence / "other" / "notes.txt").write_text("meeting notes, nothing to see\n")
    (evidence / "other" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
    os.symlink(str(originals[0]), evidence / "other" / "link.png")
    with contextlib.suppress(OSError):
        os.mkfifo(evidence / "other" / "pipe")

    index = base / "index"
    with KnownIndex.create(index, ["pdq"]) as writer:
        writer.add(
            [known_from_hash_record(r) for p in originals for r in matcher.hash_file(p, ["pdq"])], "agency", category=1
        )
    before = base / "ref-before"
    shutil.copytree(index, before)

    sources_dir = base / "sources"
    (sources_dir / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    codes = rng.integers(0, 256, (list_codes, 32), dtype=np.uint8)
    hash_list = sources_dir / "list.txt"
    hash_list.write_text("".join(c.tobytes().hex() + "\n" for c in codes))
    _write_images(sources_dir / "images", range(300, 300 + images), (128, 96))
    sources = {"list": hash_list, "images": sources_dir / "images"}
    after: dict[str, Path] = {}
    for kind, source in sources.items():
        target = base / f"ref-after-{kind}"
        shutil.copytree(before, target)
        with KnownIndex.open(target, writable=True) as writer:
            import_sources(writer, [str(source)], list_name=f"new-{kind}")
        after[kind] = target

    from matcher.hashes import Hash

    queries = [Hash("pdq", bytes(c.tobytes())) for c in codes[:40]]
    flipped = codes[:20].copy()
    flipped[:, :2] ^= 0x0F  # 8 bits away
    queries += [Hash("pdq", bytes(c.tobytes())) for c in flipped]
    for path in [*originals, *sorted((sources_dir / "images").iterdir())]:
        queries += [r.hashes["pdq"] for r in matcher.hash_file(path, ["pdq"])]
    states = {"before": index_state(before, queries)}
    for kind, target in after.items():
        states[f"after:{kind}"] = index_state(target, queries)

    reference = base / "reference.jsonl"
    run_scan([str(evidence)], str(index), ScanOptions(workers=1), str(reference), "jsonl", False)
    entries = sum(1 for _ in matcher.files.walk([str(evidence)]))

    file_tree = base / "file-tree"
    (file_tree / "sub").mkdir(parents=True, exist_ok=True)
    _write_images(file_tree, range(100, 102), (128, 96))  # two known images: they match
    _write_images(file_tree / "sub", range(700, 703), (96, 72))
    (file_tree / "sub" / "readme.txt").write_text("plain text\n")

    world = World(
        base,
        evidence,
        index,
        before,
        sources,
        after,
        states,
        queries,
        reference.read_bytes(),
        entries,
        {},
        {},
        file_tree,
        nobody_can_run(base),
        disk_full_method(base),
    )
    if calibrate:
        for workers in (1, 2):
            out = base / "calibrate" / f"w{workers}.jsonl"
            out.parent.mkdir(exist_ok=True)
            done = run_child(scan_command(world, out, workers))
            world.scan_seconds[workers] = done.seconds
            if out.read_bytes() != world.reference:
                raise RuntimeError(f"an uninterrupted CLI scan ({workers} workers) differs from the reference")
        for kind, source in sources.items():
            target = base / "calibrate" / f"index-{kind}"
            shutil.copytree(before, target)
            done = run_child(
                matcher_command("index", "add", str(target), str(source), "--list", f"new-{kind}", "--quiet")
            )
            world.add_seconds[kind] = done.seconds
            if index_state(target, queries) != states[f"after:{kind}"]:
                raise RuntimeError(f"an uninterrupted CLI update ({kind}) differs from the reference")
    return world


def scan_command(world: World, output: Path, workers: int, *extra: str) -> list[str]:
    return matcher_command(
        "scan",
        str(world.evidence),
        "--index",
        str(world.index),
        "--output",
        str(output),
        "--workers",
        str(workers),
        "--quiet",
        *extra,
    )


def index_state(path: Path, queries: list[Any]) -> str:
    """A digest of everything an index answers: records, lists, searches of its main and view tables.

    Opening verifies every checksum; an index that does not open raises."""
    from matcher.index import KnownIndex

    with KnownIndex.open(path, verify=True) as index:
        records = []
        for r in index.iter_records():
            hashes = sorted((name, h.bits.hex(), h.quality) for name, h in r.hashes.items())
            records.append([r.id, r.list_name, r.category, hashes, r.md5, r.sha1, r.sha256, r.name, r.size])
        answers = {}
        for view in (None, *index.views.get("pdq", ())):
            answers[str(view)] = [
                [(m.record_id, m.distance) for m in result.matches] for result in index.search(queries, 31, view=view)
            ]
        body = {"records": sorted(records), "lists": index.lists(), "answers": answers, "count": len(index)}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------------------------------
# Disk full: tmpfs where mounting is permitted, else RLIMIT_FSIZE


def disk_full_method(base: Path) -> str:
    probe = base / "mount-probe"
    probe.mkdir(exist_ok=True)
    if os.geteuid() == 0 and shutil.which("mount"):
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
        if done.returncode == 0:
            subprocess.run(["umount", str(probe)], capture_output=True)
            return "tmpfs"
    return "rlimit_fsize"


@contextlib.contextmanager
def small_disk(path: Path, size: int, method: str) -> Iterator[Callable[[], None]]:
    """``path`` made a filesystem of ``size`` bytes (tmpfs), yielding a function that frees space
    (grows it to 64 MiB). With RLIMIT_FSIZE nothing is mounted: the limit is applied to children by
    :func:`fsize_limit` and "freeing space" means running without it."""
    path.mkdir(parents=True, exist_ok=True)
    if method != "tmpfs":
        yield lambda: None
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True, capture_output=True)
    try:
        yield lambda: subprocess.run(["mount", "-o", "remount,size=64m", str(path)], check=True, capture_output=True)
    finally:
        import gc

        gc.collect()  # index objects of this process that still hold a file there
        for _ in range(20):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:  # still busy: detach it now, the kernel frees it once the last file is closed
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fsize_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


# --------------------------------------------------------------------------------------------------
# Outcome of one run


@dataclasses.dataclass
class Outcome:
    kind: str
    seed: int
    detail: str = ""
    kills: int = 0  # SIGKILLs that interrupted something
    rows_compared: int = 0
    lost_rows: int = 0
    duplicated_rows: int = 0
    report_identical: bool | None = None
    index_state: str | None = None  # "before" / "after"
    corrupt_index: bool = False
    half_applied: bool = False
    stale_lock: bool = False
    disk_full_hit: bool | None = None
    lingering: int = 0  # children whose processes outlived them (orphaned workers)
    tags: list[str] = dataclasses.field(default_factory=list)  # counted in the results' details
    failures: list[str] = dataclasses.field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failures.append(message)


def _row_keys(report: bytes) -> list[tuple[str, Any]]:
    keys = []
    for line in report.splitlines():
        if line.strip():
            record = json.loads(line)
            keys.append((record.get("path_raw_hex") or record["path"], record.get("frame")))
    return keys


def compare_reports(outcome: Outcome, reference: bytes, report: bytes | None) -> None:
    expected = collections.Counter(_row_keys(reference))
    outcome.rows_compared += sum(expected.values())
    if report is None:
        outcome.lost_rows += sum(expected.values())
        outcome.report_identical = False
        outcome.fail("no report was written")
        return
    try:
        got = collections.Counter(_row_keys(report))
    except (ValueError, KeyError) as exc:
        outcome.report_identical = False
        outcome.fail(f"the report does not parse: {exc}")
        return
    outcome.lost_rows += sum((expected - got).values())
    outcome.duplicated_rows += sum((got - expected).values())
    outcome.report_identical = report == reference
    if not outcome.report_identical:
        outcome.fail(
            f"report differs from the uninterrupted one ({sum((expected - got).values())} lost, "
            f"{sum((got - expected).values())} duplicated rows)"
        )


def _clean_message(outcome: Outcome, finished: Finished, what: str) -> None:
    """A refused or failed command: exit code 2 and an ``error:`` line, never a traceback."""
    if finished.returncode != 2:
        outcome.fail(f"{what}: exit code {finished.returncode}, expected 2: {finished.stderr[-500:]}")
    if "Traceback" in finished.stderr or "matcher: error:" not in finished.stderr:
        outcome.fail(f"{what}: no clear error message: {finished.stderr[-800:]}")


# --------------------------------------------------------------------------------------------------
# Scans killed


def scan_kill(
    world: World, work: Path, seed: int, *, mode: str, workers: int | None = None, kills: int | None = None
) -> Outcome:
    """``mode`` "delay" or "hook"; ``kills`` 1 or 2 (the resumed run killed again)."""
    rng = random.Random(seed)
    workers = workers or rng.choice((1, 2))
    kills = kills or (2 if rng.random() < 0.35 else 1)
    outcome = Outcome(f"scan_kill_{mode}", seed, f"workers={workers} kills={kills}")
    work.mkdir(parents=True, exist_ok=True)
    output = work / "report.jsonl"
    journal = Path(str(output) + ".partial")
    expected_code = 1  # the tree holds matches
    for attempt in range(kills):
        extra = ("--resume",) if attempt else ()
        if mode == "hook":
            after = rng.randint(1, world.entries)
            finished = run_child(kill_after_command(after, scan_command(world, output, workers, *extra)))
            killed = finished.returncode == -signal.SIGKILL
            outcome.detail += f" hook@{after}"
        else:
            delay = rng.uniform(0.0, 1.1 * world.scan_seconds.get(workers, 3.0))
            finished = run_child(scan_command(world, output, workers, *extra), kill_after=delay)
            killed = finished.killed
            outcome.detail += f" delay={delay:.2f}s"
        outcome.lingering += finished.lingering
        if finished.lingering:
            outcome.fail(f"run {attempt + 1}: processes of the killed scan were still alive 10 s after it")
        if killed:
            outcome.kills += 1
        elif finished.returncode != expected_code:
            outcome.fail(f"run {attempt + 1} exited {finished.returncode}: {finished.stderr[-500:]}")
    outcome.tags.append(f"{workers} worker{'s' if workers > 1 else ''}")
    outcome.tags.append({0: "finished before the kill", 1: "killed once", 2: "killed twice"}[outcome.kills])
    if journal.exists() or not output.exists():
        finished = run_child(scan_command(world, output, workers, "--resume"))
        if finished.returncode != expected_code:
            outcome.fail(f"the resumed scan exited {finished.returncode}: {finished.stderr[-500:]}")
    if journal.exists():
        outcome.fail("the journal is still there after the resumed scan")
    compare_reports(outcome, world.reference, output.read_bytes() if output.exists() else None)
    leftovers = sorted(p.name for p in work.iterdir() if p.name not in (output.name, output.name + ".manifest.json"))
    if leftovers:
        outcome.fail(f"files left beside the report: {leftovers}")
    return outcome


# --------------------------------------------------------------------------------------------------
# Index updates killed


_CHECKPOINT_CHILD = textwrap.dedent("""
    import os, signal, sys
    from matcher.index import store
    step = sys.argv[1]
    def checkpoint(at):
        if at == step:
            os.kill(os.getpid(), signal.SIGKILL)
    store._checkpoint = checkpoint
    from matcher.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def _check_index(outcome: Outcome, world: World, path: Path, kind: str) -> str | None:
    try:
        state = index_state(path, world.queries)
    except Exception as exc:  # noqa: BLE001 - whatever it is, the index is unusable
        outcome.corrupt_index = True
        outcome.fail(f"the index does not open: {type(exc).__name__}: {exc}")
        return None
    if state == world.states["before"]:
        return "before"
    if state == world.states[f"after:{kind}"]:
        return "after"
    outcome.half_applied = True
    outcome.fail("the index answers neither as before nor as after the update")
    return None


def _update_again(outcome: Outcome, world: World, path: Path, kind: str) -> None:
    """The next update succeeds (no stale lock, debris cleaned) and gives the after state.

    A ``matcher index add`` child, or (``world.update_in_process``, the fast tests) a check that the
    write lock is free and the same update in this process."""
    if world.update_in_process:
        import fcntl

        from matcher.index import KnownIndex
        from matcher.index.importing import import_sources

        fd = os.open(path / "write.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            outcome.stale_lock = True
            outcome.fail("the write lock is still held after the update was killed")
            return
        finally:
            os.close(fd)
        try:
            with KnownIndex.open(path, writable=True) as writer:
                import_sources(writer, [str(world.sources[kind])], list_name=f"new-{kind}")
        except Exception as exc:  # noqa: BLE001
            outcome.fail(f"the next update failed: {type(exc).__name__}: {exc}")
            return
    else:
        finished = run_child(
            matcher_command("index", "add", str(path), str(world.sources[kind]), "--list", f"new-{kind}", "--quiet"),
            kill_after=120,
        )
        if finished.killed:
            outcome.stale_lock = True
            outcome.fail("the next update hung (stale lock?)")
            return
        if finished.returncode != 0:
            outcome.fail(f"the next update failed ({finished.returncode}): {finished.stderr[-500:]}")
            return
    if _check_index(outcome, world, path, kind) != "after":
        outcome.fail("after the next update the index is not the after state")
    names = sorted(p.name for p in path.iterdir())
    if len(names) != 3 or not names[0].startswith("gen-") or names[1:] != ["manifest.json", "write.lock"]:
        outcome.fail(f"debris left after the next update: {names}")


def index_kill(
    world: World, work: Path, seed: int, *, mode: str, source: str | None = None, step: str | None = None
) -> Outcome:
    """``mode`` "delay" or "checkpoint"."""
    rng = random.Random(seed)
    kind = source or rng.choice(("list", "images"))
    outcome = Outcome(f"index_kill_{mode}", seed, f"source={kind}")
    path = work / "index"
    shutil.copytree(world.before, path)
    args = ["index", "add", str(path), str(world.sources[kind]), "--list", f"new-{kind}", "--quiet"]
    if mode == "checkpoint":
        step = step or rng.choice(CHECKPOINTS)
        outcome.detail += f" step={step}"
        finished = run_child([sys.executable, "-c", _CHECKPOINT_CHILD, step, *args])
        if finished.returncode == -signal.SIGKILL:
            outcome.kills += 1
        else:
            outcome.fail(f"the update was not killed at {step} (exit {finished.returncode}): {finished.stderr[-300:]}")
    else:
        delay = rng.uniform(0.0, 1.1 * world.add_seconds.get(kind, 2.0))
        outcome.detail += f" delay={delay:.2f}s"
        finished = run_child(matcher_command(*args), kill_after=delay)
        if finished.killed:
            outcome.kills += 1
        elif finished.returncode != 0:
            outcome.fail(f"the update exited {finished.returncode}: {finished.stderr[-300:]}")
    outcome.index_state = _check_index(outcome, world, path, kind)
    if mode == "checkpoint" and outcome.index_state is not None:
        expected = "after" if step == "manifest-replaced" else "before"
        if outcome.index_state != expected:
            outcome.fail(f"killed at {step}: the index is {outcome.index_state}, expected {expected}")
    _update_again(outcome, world, path, kind)
    return outcome


# --------------------------------------------------------------------------------------------------
# Disk full


def disk_full_scan(world: World, work: Path, seed: int) -> Outcome:
    rng = random.Random(seed)
    workers = rng.choice((1, 2))
    # from "the journal header does not fit" to "everything fits" (journal + report + manifest)
    size = rng.randrange(1, max(3, (3 * len(world.reference)) // 4096 + 2)) * 4096
    outcome = Outcome("disk_full_scan", seed, f"workers={workers} size={size} method={world.disk_full}")
    mount = work / "disk"
    with small_disk(mount, size, world.disk_full) as free:
        output = mount / "report.jsonl"
        limit = fsize_limit(size) if world.disk_full != "tmpfs" else None
        finished = run_child(scan_command(world, output, workers), preexec=limit)
        outcome.disk_full_hit = finished.returncode not in (0, 1)
        if outcome.disk_full_hit:
            _clean_message(outcome, finished, "scan on a full disk")
            free()
            finished = run_child(scan_command(world, output, workers, "--resume"))
        if finished.returncode != 1:
            outcome.fail(
                f"the scan did not finish after space was freed ({finished.returncode}): {finished.stderr[-500:]}"
            )
        if Path(str(output) + ".partial").exists():
            outcome.fail("the journal is still there after the finished scan")
        compare_reports(outcome, world.reference, output.read_bytes() if output.exists() else None)
        leftovers = [p.name for p in mount.iterdir() if p.name not in ("report.jsonl", "report.jsonl.manifest.json")]
        if leftovers:
            outcome.fail(f"files left beside the report: {leftovers}")
    return outcome


def _pages(root: Path) -> int:
    """Bytes a tree takes on tmpfs: whole 4 KiB pages per file, one page per directory."""
    return sum(-(-p.stat().st_size // 4096) * 4096 if p.is_file() else 4096 for p in root.rglob("*")) + 4096


def disk_full_index(
    world: World, work: Path, seed: int, *, source: str | None = None, margin: int | None = None
) -> Outcome:
    """``margin``: free bytes beside the index copy (default: seeded, up to what an update needs)."""
    rng = random.Random(seed)
    kind = source or rng.choice(("list", "images"))
    used = _pages(world.before)
    grown = _pages(world.after[kind])
    # tmpfs: the index fits with a random margin, from nothing to about twice what an update needs
    # beside the old generation (the new one), so that every write of an update is hit in turn
    drawn = rng.randrange(0, 2 * grown // 4096 + 3) * 4096
    margin = drawn if margin is None else margin
    size = ((used // 4096) + 4) * 4096 + margin
    outcome = Outcome("disk_full_index", seed, f"source={kind} size={size} method={world.disk_full}")
    mount = work / "disk"
    with small_disk(mount, size, world.disk_full) as free:
        path = mount / "index"
        shutil.copytree(world.before, path)
        limit = fsize_limit(max(4096, margin)) if world.disk_full != "tmpfs" else None
        finished = run_child(
            matcher_command("index", "add", str(path), str(world.sources[kind]), "--list", f"new-{kind}", "--quiet"),
            preexec=limit,
        )
        outcome.disk_full_hit = finished.returncode != 0
        state = _check_index(outcome, world, path, kind)
        outcome.index_state = state
        if outcome.disk_full_hit:
            _clean_message(outcome, finished, "index update on a full disk")
            if state != "before":
                outcome.fail(f"a refused update left the index {state}, expected before")
        elif state != "after":
            outcome.fail(f"a successful update left the index {state}")
        free()
        _update_again(outcome, world, path, kind)
    return outcome


# --------------------------------------------------------------------------------------------------
# Files that vanish, change, grow, or cannot be read


def _records_by_path(records: list[Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        out.setdefault(record.path, []).append(json.loads(json.dumps(record.to_dict(["pdq"]), ensure_ascii=False)))
    return out


def _scan_in_process(tree: Path, index: Path) -> list[Any]:
    from matcher.scan import ScanOptions, scan

    return list(scan([str(tree)], str(index), ScanOptions(workers=1)))


@contextlib.contextmanager
def _patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def file_fault(world: World, work: Path, seed: int, fault: str | None = None) -> Outcome:
    from matcher import files as files_module

    rng = random.Random(seed)
    fault = fault or rng.choice(FILE_FAULTS)
    outcome = Outcome("file_fault", seed, fault)
    tree = work / "tree"
    shutil.copytree(world.file_tree, tree, symlinks=True)
    os.chmod(work, 0o755)
    clean = _records_by_path(_scan_in_process(tree, world.index))
    candidates = sorted(p for p in clean if p.endswith(".png"))
    target = rng.choice(candidates)
    target_b = os.fsencode(target)
    expected_paths = set(clean)

    if fault in ("vanish", "rewritten", "fifo_swapped"):
        original_walk = files_module.walk

        def walk(paths: Any) -> Iterator[Any]:
            for entry in original_walk(paths):
                if entry.path == target_b:  # listed; now pulled away before it is read
                    if fault == "vanish":
                        os.unlink(target)
                    elif fault == "rewritten":
                        from fixtures import encode, scene

                        Path(target).write_bytes(encode(scene(seed % 1000 + 5000, 80, 60, "plasma"), "PNG"))
                    else:
                        os.unlink(target)
                        os.mkfifo(target)
                yield entry

        with _patched(files_module, "walk", walk):
            got = _records_by_path(_scan_in_process(tree, world.index))
        expect = {
            "vanish": ("error", "no such file"),
            "rewritten": (None, "size changed between listing"),
            "fifo_swapped": ("skipped", "not a regular file"),
        }[fault]
    elif fault == "growing":
        original_read = os.read
        target_ino = os.stat(target).st_ino
        grown = threading.Event()
        go = threading.Event()

        def writer() -> None:
            go.wait(30)
            with open(target, "ab") as handle:  # a real writer appending while the scan reads
                handle.write(b"\0" * 4096)
                handle.flush()
                os.fsync(handle.fileno())
            grown.set()

        def read(fd: int, n: int) -> bytes:
            chunk = original_read(fd, n)
            if not go.is_set() and chunk and os.fstat(fd).st_ino == target_ino:
                go.set()
                grown.wait(30)  # the file grows between this read and the next
            return chunk

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        with _patched(os, "read", read):
            got = _records_by_path(_scan_in_process(tree, world.index))
        go.set()
        thread.join(30)
        expect = (None, "changed while it was read")
    elif fault in ("denied_file", "denied_dir"):
        denied = target_b if fault == "denied_file" else os.path.dirname(target_b)
        original_open = os.open

        def interposed(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            full = os.fsencode(path)
            dir_fd = kwargs.get("dir_fd")
            if dir_fd is not None and not os.path.isabs(full):  # opened name by name below the root
                full = os.path.join(os.fsencode(os.readlink(f"/proc/self/fd/{dir_fd}")), full)
            if full == denied:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            return original_open(path, flags, *args, **kwargs)

        with _patched(os, "open", interposed):
            got = _records_by_path(_scan_in_process(tree, world.index))
        if fault == "denied_dir":
            target = os.fsdecode(denied)
            expected_paths = {p for p in clean if not p.startswith(target + os.sep)} | {target}
        expect = ("error", "permission denied")
    elif fault == "denied_real":
        got, target, expected_paths, how = _denied_for_real(outcome, world, work, tree, clean, rng)
        outcome.detail += f" ({how})"
        expect = ("error", "permission denied")
    else:  # pragma: no cover
        raise ValueError(fault)

    status, text = expect
    records = got.get(target, [])
    if len(records) != 1 and fault not in ("rewritten",):
        outcome.fail(f"{fault}: {len(records)} records for the faulted entry, expected 1: {records}")
    for record in records:
        said = " ".join([record.get("error") or "", *(record.get("notes") or [])])
        if text not in said or (status is not None and record["status"] != status):
            outcome.fail(f"{fault}: the record does not say so: {record}")
    if set(got) != expected_paths:
        outcome.fail(
            f"{fault}: entries missing {sorted(expected_paths - set(got))} or extra {sorted(set(got) - expected_paths)}"
        )
    for path, recs in got.items():
        if path != target and path in clean and recs != clean[path]:
            outcome.fail(f"{fault}: the record of an unaffected file changed: {path}")
    outcome.rows_compared += sum(len(v) for v in clean.values())
    outcome.lost_rows += len(expected_paths - set(got))
    outcome.duplicated_rows += sum(max(0, len(v) - (len(clean.get(p, [])) or 1)) for p, v in got.items())
    return outcome


def nobody_can_run(base: Path) -> bool:
    """Whether scans can run as uid 65534 (as root: the child drops to it with ``os.setuid``)."""
    cache = base / "numba-cache"
    cache.mkdir(exist_ok=True)
    os.chmod(cache, 0o777)
    return os.geteuid() == 0 and hasattr(os, "setuid")


# Started as root (the interpreter and its standard library may live where uid 65534 cannot read), it
# scans a warm-up tree once so that everything is imported and compiled, then drops to uid/gid 65534
# with os.setuid and runs the command line given after its first three arguments.
_NOBODY_CHILD = textwrap.dedent(
    """
    import os, sys
    from matcher.cli import main
    from matcher.scan import ScanOptions, run_scan
    warm_tree, index, warm_output = sys.argv[1:4]
    run_scan([warm_tree], index, ScanOptions(workers=1), warm_output, "jsonl", False)
    os.setgroups([])
    os.setgid(%d)
    os.setuid(%d)
    assert os.geteuid() == %d and os.getegid() == %d
    sys.exit(main(sys.argv[4:]))
"""
    % (NOBODY, NOBODY, NOBODY, NOBODY)
)


def _denied_for_real(
    outcome: Outcome, world: World, work: Path, tree: Path, clean: dict[str, Any], rng: random.Random
) -> tuple[dict[str, Any], str, set[str], str]:
    """chmod 000 on a file (and on the ``sub`` directory) and scan as a user they deny: uid 65534
    when we are root (root ignores modes), else ourselves."""
    files_only = sorted(p for p in clean if os.path.dirname(p) == str(tree) and p.endswith(".png"))
    target = rng.choice(files_only)
    denied_dir = str(tree / "sub")
    for p in (work, tree):
        os.chmod(p, 0o755)
    os.chmod(target, 0)
    os.chmod(denied_dir, 0)
    output = work / "out" / "report.jsonl"
    output.parent.mkdir(exist_ok=True)
    os.chmod(output.parent, 0o777)
    try:
        if os.geteuid() == 0:
            if not world.nobody_ok:
                raise RuntimeError("cannot drop to uid 65534 here")
            how = "scan child dropped to uid 65534 with os.setuid"
            env = child_env(NUMBA_CACHE_DIR=str(world.base / "numba-cache"))
            warm = work / "warm"
            warm.mkdir(exist_ok=True)
            for name in ("readme.txt", "img_0700.png"):  # every kind of file of the tree: imports done
                shutil.copy(world.file_tree / "sub" / name, warm / name)
            finished = run_child(
                [
                    sys.executable,
                    "-c",
                    _NOBODY_CHILD,
                    str(warm),
                    str(world.index),
                    str(work / "warm.jsonl"),
                    "scan",
                    str(tree),
                    "--index",
                    str(world.index),
                    "--output",
                    str(output),
                    "--workers",
                    "1",
                    "--quiet",
                ],
                env=env,
            )
        else:
            how = "scan child as this user"
            finished = run_child(
                matcher_command(
                    "scan", str(tree), "--index", str(world.index), "--output", str(output), "--workers", "1", "--quiet"
                )
            )
        if finished.returncode not in (0, 1):
            raise RuntimeError(f"the scan failed ({finished.returncode}): {finished.stderr[-500:]}")
        got: dict[str, list[dict[str, Any]]] = {}
        for line in output.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            got.setdefault(record["path"], []).append(record)
    finally:
        os.chmod(target, 0o644)
        os.chmod(denied_dir, 0o755)
    # the denied directory gets its own record (its contents cannot be listed)
    expected = {p for p in clean if not p.startswith(denied_dir + os.sep)} | {denied_dir}
    sub_records = got.get(denied_dir, [])
    if (
        len(sub_records) != 1
        or sub_records[0]["status"] != "error"
        or "permission denied" not in (sub_records[0].get("error") or "")
    ):
        outcome.fail(f"denied_real: the unreadable directory's record does not say so: {sub_records}")
    return got, target, expected, how


# --------------------------------------------------------------------------------------------------
# The campaign


def run_one(world: World, kind: str, work: Path, seed: int, counter: int) -> Outcome:
    if kind == "scan_kill_delay":
        return scan_kill(world, work, seed, mode="delay")
    if kind == "scan_kill_hook":
        return scan_kill(world, work, seed, mode="hook")
    if kind == "index_kill_delay":
        return index_kill(world, work, seed, mode="delay")
    if kind == "index_kill_checkpoint":
        return index_kill(world, work, seed, mode="checkpoint", step=CHECKPOINTS[counter % len(CHECKPOINTS)])
    if kind == "disk_full_scan":
        return disk_full_scan(world, work, seed)
    if kind == "disk_full_index":
        return disk_full_index(world, work, seed)
    if kind == "file_fault":
        return file_fault(world, work, seed, FILE_FAULTS[counter % len(FILE_FAULTS)])
    raise ValueError(kind)


def _git_commit() -> tuple[str | None, bool | None]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
        )
        return commit or None, dirty
    except OSError:
        return None, None


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "host": socket.gethostname(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "euid": os.geteuid(),
    }


def campaign(
    runs: int, seed: int, minutes: float, only: list[str] | None, keep: bool, out_stem: Path, command: str
) -> dict[str, Any]:
    started = time.monotonic()
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    base = Path(tempfile.mkdtemp(prefix="matcher-fault-campaign-"))
    kinds = [k for k in KINDS if not only or k in only]
    master = random.Random(seed)
    outcomes: list[Outcome] = []
    try:
        print(f"building the world in {base} ...", file=sys.stderr, flush=True)
        world = build_world(base)
        print(
            f"world: {world.entries} entries, scan {world.scan_seconds}, add {world.add_seconds}, "
            f"disk full by {world.disk_full}, uid 65534 child: {world.nobody_ok}",
            file=sys.stderr,
            flush=True,
        )
        per_kind: collections.Counter[str] = collections.Counter()
        slot = 0
        while len(outcomes) < runs:
            if time.monotonic() - started > minutes * 60:
                print(f"time budget of {minutes} min reached after {len(outcomes)} runs", file=sys.stderr)
                break
            kind = kinds[slot % len(kinds)]
            slot += 1
            # the file faults take a fraction of a second (one child for the real permission case):
            # a file-fault slot places each of them once
            repeats = len(FILE_FAULTS) if kind == "file_fault" else 1
            for _ in range(min(repeats, runs - len(outcomes))):
                n = len(outcomes)
                run_seed = master.randrange(2**31)
                work = base / "runs" / f"{n:05d}-{kind}"
                work.mkdir(parents=True)
                try:
                    outcome = run_one(world, kind, work, run_seed, per_kind[kind])
                except Exception as exc:  # noqa: BLE001 - the campaign names it and goes on
                    outcome = Outcome(kind, run_seed, "harness error")
                    outcome.fail(f"{type(exc).__name__}: {exc}")
                per_kind[kind] += 1
                outcomes.append(outcome)
                status = "ok" if not outcome.failures else "FAIL " + "; ".join(outcome.failures)[:300]
                print(
                    f"[{n + 1}/{runs}] {kind} seed={run_seed} {outcome.detail}: {status}", file=sys.stderr, flush=True
                )
                if not keep and not outcome.failures:
                    shutil.rmtree(work, ignore_errors=True)
    finally:
        if not keep and not any(o.failures for o in outcomes):
            shutil.rmtree(base, ignore_errors=True)
    return summarise(outcomes, seed, runs, time.monotonic() - started, started_at, command, world)


def summarise(
    outcomes: list[Outcome], seed: int, runs: int, seconds: float, started_at: str, command: str, world: World
) -> dict[str, Any]:
    commit, dirty = _git_commit()
    by_kind: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        k = by_kind.setdefault(o.kind, {"runs": 0, "kills": 0, "failures": 0, "details": collections.Counter()})
        k["runs"] += 1
        k["kills"] += o.kills
        k["failures"] += bool(o.failures)
        for tag in o.tags:
            k["details"][tag] += 1
        if o.kind == "file_fault":
            k["details"][o.detail.split(" ")[0]] += 1
        elif o.kind == "index_kill_checkpoint":
            k["details"][o.detail.split("step=")[-1]] += 1
        elif o.index_state:
            k["details"][f"index {o.index_state}"] += 1
        if o.disk_full_hit is not None:
            k["details"]["disk full hit" if o.disk_full_hit else "fitted"] += 1
    for k in by_kind.values():
        k["details"] = dict(sorted(k["details"].items()))
    return {
        "command": command,
        "seed": seed,
        "runs_requested": runs,
        "runs": len(outcomes),
        "duration_seconds": round(seconds, 1),
        "date": started_at,
        "git_commit": commit,
        "git_worktree_dirty": dirty,
        "machine": _machine(),
        "disk_full_method": world.disk_full,
        "permission_denied_real": "uid 65534 child" if world.nobody_ok else "chmod as this user",
        "world": {
            "evidence_entries": world.entries,
            "reference_rows": len(_row_keys(world.reference)),
            "scan_seconds": world.scan_seconds,
            "update_seconds": world.add_seconds,
        },
        "faults_by_kind": by_kind,
        "sigkills": sum(o.kills for o in outcomes),
        "rows_compared": sum(o.rows_compared for o in outcomes),
        "lost_rows": sum(o.lost_rows for o in outcomes),
        "duplicated_rows": sum(o.duplicated_rows for o in outcomes),
        "reports_compared": sum(o.report_identical is not None for o in outcomes),
        "reports_identical": sum(o.report_identical is True for o in outcomes),
        "index_states_after_fault": dict(collections.Counter(o.index_state for o in outcomes if o.index_state)),
        "corrupt_indexes": sum(o.corrupt_index for o in outcomes),
        "half_applied_indexes": sum(o.half_applied for o in outcomes),
        "stale_locks": sum(o.stale_lock for o in outcomes),
        "killed_scans_with_lingering_processes": sum(o.lingering for o in outcomes),
        "failures": [
            {"kind": o.kind, "seed": o.seed, "detail": o.detail, "failures": o.failures} for o in outcomes if o.failures
        ],
    }


def write_results(result: dict[str, Any], stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Fault-injection campaign",
        "",
        f"`{result['command']}` — {result['date']}, commit `{result['git_commit']}`"
        + (" (with uncommitted changes)" if result["git_worktree_dirty"] else "")
        + f", {result['machine']['cpu']} ({result['machine']['cores']} cores), Python {result['machine']['python']}.",
        "",
        f"{result['runs']} runs in {result['duration_seconds'] / 60:.1f} min; {result['sigkills']} SIGKILLs that "
        f"interrupted a scan or an index update; disk full by {result['disk_full_method']}; permission denied for "
        f"real by {result['permission_denied_real']}.",
        "",
        "| kind | runs | kills | failed runs | details |",
        "|---|---|---|---|---|",
    ]
    for kind, k in result["faults_by_kind"].items():
        details = ", ".join(f"{name} {count}" for name, count in k["details"].items())
        lines.append(f"| {kind} | {k['runs']} | {k['kills']} | {k['failures']} | {details} |")
    lines += [
        "",
        "| check | figure |",
        "|---|---|",
        f"| report rows compared | {result['rows_compared']} |",
        f"| lost rows | {result['lost_rows']} |",
        f"| duplicated rows | {result['duplicated_rows']} |",
        f"| reports identical to the uninterrupted one | {result['reports_identical']} of {result['reports_compared']} |",
        f"| index states after a fault | {result['index_states_after_fault']} |",
        f"| corrupt indexes | {result['corrupt_indexes']} |",
        f"| half-applied indexes | {result['half_applied_indexes']} |",
        f"| stale locks | {result['stale_locks']} |",
        f"| killed scans whose pool processes lingered (> 10 s) | {result['killed_scans_with_lingering_processes']} |",
        f"| failed runs | {len(result['failures'])} |",
        "",
    ]
    if result["failures"]:
        lines.append("## Failures")
        lines.append("")
        for f in result["failures"]:
            lines.append(f"- {f['kind']} seed {f['seed']} ({f['detail']}): {'; '.join(f['failures'])}")
        lines.append("")
    stem.with_suffix(".md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fault_campaign", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="fault runs, round-robin over the kinds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=20.0, help="stop starting runs after this long")
    parser.add_argument("--only", action="append", choices=KINDS, help="only these kinds (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument(
        "--output", default=str(RESULTS / "fault_campaign"), help="results stem (.json and .md are written)"
    )
    args = parser.parse_args(argv)
    command = "python -m benchmarks.fault_campaign " + " ".join(argv if argv is not None else sys.argv[1:])
    result = campaign(args.runs, args.seed, args.minutes, args.only, args.keep, Path(args.output), command)
    write_results(result, Path(args.output))
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "runs",
                    "sigkills",
                    "rows_compared",
                    "lost_rows",
                    "duplicated_rows",
                    "corrupt_indexes",
                    "half_applied_indexes",
                    "stale_locks",
                )
            }
        ),
        file=sys.stderr,
    )
    print(f"{len(result['failures'])} failed runs; results in {args.output}.json/.md", file=sys.stderr)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
