"""The Dask scan engine (``matcher scan --engine dask``): the same report as the local engine, record
for record, with a local cluster or a scheduler address; nothing lost or repeated when a worker dies
mid-task; a file that kills every worker gets an error record; resuming across engines; the index
opened once per worker; an untouched evidence tree.

All images are synthetic (the repo's ``fixtures``). Skipped where ``dask.distributed`` is not installed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

import matcher  # noqa: E402
from fixtures import animated_gif, edit, encode, scene  # noqa: E402
from matcher import allocator  # noqa: E402
from matcher.cli import main  # noqa: E402
from matcher.errors import MatcherError, UsageError  # noqa: E402
from matcher.hashing import HashOptions  # noqa: E402
from matcher.index import KnownIndex  # noqa: E402
from matcher.index.importing import known_from_hash_record  # noqa: E402
from matcher.index.shards import ShardCatalog, split_index  # noqa: E402
from matcher.known import KnownRecord  # noqa: E402
from matcher.scan import JOURNAL_SUFFIX, MANIFEST_SUFFIX, ScanOptions, run_scan, scan  # noqa: E402
from matcher.scan.engines import dask_engine  # noqa: E402
from tests.dask_fault_preload import EXIT_ON, EXIT_ON_OPEN, EXIT_ONCE  # noqa: E402
from tests.fault_injection import DASK_PRELOAD  # noqa: E402

ALGORITHMS = ["pdq", "phash"]
EDITS = ("jpeg75", "rotate90", "mirror", "resize0.5")
KINDS = ("landscape", "shapes", "text")
CHUNK = 2  # small tasks, so that a scan of the tree is many of them


def snapshot(root: Path) -> dict[str, tuple]:
    """lstat facts and content of everything under root."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            content = Path(path).read_bytes() if os.path.isfile(path) else b""
            out[path] = (st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, content)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Evidence (edited copies of the originals, unrelated images, a corrupt JPEG, an animated GIF, a
    text file) and an index of the originals."""
    base = tmp_path_factory.mktemp("dask")
    evidence, known = base / "evidence", base / "known"
    (evidence / "edits").mkdir(parents=True)
    (evidence / "other").mkdir()
    known.mkdir()
    originals = []
    for i, kind in enumerate(KINDS):
        img = scene(500 + i, 240, 180, kind)
        path = known / f"original_{i}.png"
        path.write_bytes(encode(img, "PNG"))
        originals.append(path)
        for name in EDITS:
            if name == "jpeg75":
                (evidence / "edits" / f"o{i}_{name}.jpg").write_bytes(encode(edit(img, name), "JPEG", quality=75))
            else:
                (evidence / "edits" / f"o{i}_{name}.png").write_bytes(encode(edit(img, name), "PNG"))
    for j in range(3):
        (evidence / "other" / f"unrelated_{j}.jpg").write_bytes(encode(scene(950 + j, 200, 150, KINDS[j]), "JPEG"))
    whole = encode(scene(960, 320, 240), "JPEG", quality=85)
    (evidence / "other" / "corrupt.jpg").write_bytes(whole[: len(whole) // 2])
    (evidence / "other" / "animated.gif").write_bytes(animated_gif(961, 120, 90, frames=3))
    (evidence / "other" / "notes.txt").write_text("meeting notes, nothing to see\n")

    index_path = base / "index"
    index = KnownIndex.create(index_path, ALGORITHMS)
    index.add(
        [known_from_hash_record(r) for p in originals for r in matcher.hash_file(p, ALGORITHMS)], "agency", category=1
    )
    index.close()
    before = snapshot(evidence)
    reports = base / "reports"
    reports.mkdir()
    out = reports / "local.jsonl"
    summary = run_scan([str(evidence)], str(index_path), ScanOptions(workers=1), str(out))
    return {
        "base": base,
        "evidence": evidence,
        "index": index_path,
        "before": before,
        "reference": out,
        "summary": summary,
        "reports": reports,
    }


@pytest.fixture(scope="module")
def cluster(world):
    """A running two-worker cluster of this test's own, reached by its scheduler address."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as running:
        with distributed.Client(running, set_as_default=False) as client:
            yield {"address": running.scheduler_address, "client": client}


@pytest.fixture
def crash_preload():
    """Workers started meanwhile load the test's fault-injection preload (exit on a named entry)."""
    with dask.config.set({"distributed.worker.preload": [DASK_PRELOAD]}):
        yield


def dask_run(
    world, name: str, chunk_size: int = CHUNK, index: Path | None = None, evidence: Path | None = None, **options
) -> tuple[Path, object]:
    out = world["reports"] / name
    summary = run_scan(
        [str(evidence or world["evidence"])],
        str(index or world["index"]),
        ScanOptions(engine="dask", chunk_size=chunk_size, **options),
        str(out),
    )
    return out, summary


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_reference_scan_is_a_useful_one(world):
    """The tree has matches, non-matches, an error, a non-image and a multi-frame file."""
    statuses = [r["status"] for r in records(world["reference"])]
    assert {"match", "no_match", "error"} <= set(statuses)
    # every edited copy matches but the halved 240 x 180 text card: its PDQ moves past 31, and a text
    # card's pHash is not matched on (quality below 50)
    copies = len(KINDS) * len(EDITS) - 1
    assert world["summary"].files == len(KINDS) * len(EDITS) + 3 + 3 and world["summary"].matched_files == copies


def test_cli_dask_engine_on_a_local_cluster_gives_the_local_report(world, capsys):
    out = world["reports"] / "cli_local_cluster.jsonl"
    code = main(
        [
            "scan",
            str(world["evidence"]),
            "--index",
            str(world["index"]),
            "--engine",
            "dask",
            "--workers",
            "2",
            "--output",
            str(out),
            "--quiet",
        ]
    )
    assert code == 1, capsys.readouterr().err
    assert out.read_bytes() == world["reference"].read_bytes()
    manifest = json.loads(Path(str(out) + MANIFEST_SUFFIX).read_text())
    assert manifest["engine"] == {"name": "dask", "scheduler": None, "local_cluster_workers": 2}
    assert manifest["counts"] == world["summary"].to_dict()
    assert not Path(str(out) + JOURNAL_SUFFIX).exists()


def test_a_worker_killed_mid_scan_loses_and_repeats_nothing(world, monkeypatch, tmp_path, crash_preload):
    token = tmp_path / "killed-once"
    # the first worker to reach this file exits on the spot (os._exit), once across the cluster
    monkeypatch.setenv(EXIT_ON, "o1_mirror.png")
    monkeypatch.setenv(EXIT_ONCE, str(token))
    out, summary = dask_run(world, "killed_worker.jsonl", workers=2)
    assert token.exists()  # a worker did die mid-task
    assert out.read_bytes() == world["reference"].read_bytes()
    paths = [(r["path"], r.get("frame")) for r in records(out)]
    assert len(paths) == len(set(paths))  # each file (frame) once
    assert summary.to_dict() == world["summary"].to_dict()


def test_a_file_that_kills_every_worker_gets_an_error_record(world, monkeypatch, crash_preload):
    monkeypatch.setenv(EXIT_ON, "o0_jpeg75.jpg")  # every time: a "decoder crash"
    monkeypatch.setattr(dask_engine, "LOCAL_ALLOWED_FAILURES", 0)  # give up on a task at its first death
    out, summary = dask_run(world, "poison.jsonl", workers=2)
    got, want = records(out), records(world["reference"])
    assert [r["path"] for r in got] == [r["path"] for r in want]
    for mine, theirs in zip(got, want):
        if mine["path"].endswith("o0_jpeg75.jpg"):
            assert mine["status"] == "error" and "worker process died" in mine["error"]
            assert mine.get("md5") is None and not mine.get("matches")
        else:  # the poison file's chunk neighbour was scanned again on its own, normally
            assert mine == theirs
    assert summary.files == world["summary"].files and summary.errors == world["summary"].errors + 1


@pytest.mark.parametrize("index_kind", ["single", "sharded"])
def test_a_worker_dying_while_opening_the_index_stops_the_scan_which_then_resumes(
    world, sharded, monkeypatch, tmp_path, capsys, crash_preload, index_kind
):
    index = world["index"] if index_kind == "single" else sharded["path"]
    evidence = world["evidence"] if index_kind == "single" else sharded["evidence"]
    reference = world["reference"] if index_kind == "single" else sharded["reference"]
    out = tmp_path / "report.jsonl"
    args = [
        "scan",
        str(evidence),
        "--index",
        str(index),
        "--output",
        str(out),
        "--engine",
        "dask",
        "--workers",
        "2",
        "--quiet",
    ]
    with monkeypatch.context() as patch:
        patch.setenv(EXIT_ON_OPEN, "1")  # every worker dies opening the index (or its shards): out of memory, say
        code = main(args)
        err = capsys.readouterr().err
    assert code == 2, err
    assert "died (or failed) while opening the index" in err and "--resume" in err
    assert Path(str(out) + JOURNAL_SUFFIX).exists() and not out.exists()  # no per-file error written anywhere
    code = main([*args, "--resume"])
    assert code == 1, capsys.readouterr().err
    assert records(out) == records(reference)


def test_scheduler_address_library_scan_and_index_opened_once_per_worker(world, cluster):
    client = cluster["client"]
    out, summary = dask_run(world, "scheduler.jsonl", scheduler=cluster["address"], chunk_size=1)
    assert out.read_bytes() == world["reference"].read_bytes()
    manifest = json.loads(Path(str(out) + MANIFEST_SUFFIX).read_text())
    assert manifest["engine"] == {"name": "dask", "scheduler": cluster["address"]}
    # one task per file, but each worker opened the index at most once
    opened = client.run(dask_engine._opened_indexes)
    assert sum(opened.values()) >= 1 and all(n <= 1 for n in opened.values()), opened
    # a worker that scanned tuned its allocator as matcher's own pool workers do
    tuned = client.run(allocator.allocator_tuned)
    assert any(tuned[worker] for worker, n in opened.items() if n), tuned

    options = ScanOptions(engine="dask", scheduler=cluster["address"], chunk_size=3)
    got = [r.to_dict(ALGORITHMS) for r in scan([str(world["evidence"])], world["index"], options)]
    assert got == records(world["reference"])
    assert all(n <= 1 for n in client.run(dask_engine._opened_indexes).values())  # same config: reused


class Interrupted(Exception):
    pass


def interrupt_after(count: int):
    def progress(p):
        if p.done - p.resumed >= count:
            raise Interrupted

    return progress


@pytest.mark.parametrize(("first", "then"), [("dask", "dask"), ("dask", "local"), ("local", "dask")])
def test_resume_after_an_interrupted_scan_across_engines(world, cluster, first, then):
    out = world["reports"] / f"resumed_{first}_{then}.jsonl"
    journal = Path(str(out) + JOURNAL_SUFFIX)
    engine = {"dask": {"engine": "dask", "scheduler": cluster["address"]}, "local": {"workers": 2}}
    with pytest.raises(Interrupted):
        run_scan(
            [str(world["evidence"])],
            str(world["index"]),
            ScanOptions(chunk_size=CHUNK, **engine[first]),
            str(out),
            progress=interrupt_after(5),
        )
    assert journal.exists() and not out.exists()
    assert journal.read_bytes().count(b"\n") == 1 + 5
    summary = run_scan(
        [str(world["evidence"])],
        str(world["index"]),
        ScanOptions(chunk_size=CHUNK, **engine[then]),
        str(out),
        resume=True,
    )
    assert out.read_bytes() == world["reference"].read_bytes()
    assert summary.resumed_files == 5 and summary.files == world["summary"].files
    assert not journal.exists()
    assert json.loads(Path(str(out) + MANIFEST_SUFFIX).read_text())["engine"]["name"] == then


def test_options_and_flags(world, cluster, monkeypatch, capsys):
    with pytest.raises(UsageError, match="unknown scan engine"):
        ScanOptions(engine="spark")
    with pytest.raises(UsageError, match="--engine dask"):
        ScanOptions(scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(UsageError, match="relative"):
        run_scan(["evidence"], str(world["index"]), ScanOptions(engine="dask", scheduler=cluster["address"]))
    assert dask_engine.public_address("tls://examiner:s3cret@10.0.0.5:8786?token=x") == "tls://10.0.0.5:8786"
    assert dask_engine.public_address("user@10.0.0.5:8786") == "10.0.0.5:8786"
    assert dask_engine.public_address("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"

    code = main(["scan", str(world["evidence"]), "--index", str(world["index"]), "--scheduler", cluster["address"]])
    assert code == 2 and "--engine dask" in capsys.readouterr().err
    out = world["reports"] / "cli_scheduler.jsonl"
    code = main(
        [
            "scan",
            str(world["evidence"]),
            "--index",
            str(world["index"]),
            "--engine",
            "dask",
            "--scheduler",
            cluster["address"],
            "--output",
            str(out),
            "--quiet",
        ]
    )
    assert code == 1 and out.read_bytes() == world["reference"].read_bytes()

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a))
    with pytest.raises(UsageError, match=r"pip install 'dask\[distributed\]'"):  # before any work
        run_scan([str(world["evidence"])], str(world["index"]), ScanOptions(engine="dask"))
    code = main(["scan", str(world["evidence"]), "--index", str(world["index"]), "--engine", "dask"])
    assert code == 2 and "pip install" in capsys.readouterr().err


def test_a_cluster_left_without_workers_stops_the_scan_which_then_resumes(world, monkeypatch, tmp_path):
    monkeypatch.setattr(dask_engine, "WORKER_TIMEOUT", 2)
    monkeypatch.setattr(dask_engine, "POLL_SECONDS", 0.2)
    out = world["reports"] / "workers_gone.jsonl"
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as running:

        def retire_all(progress):
            if progress.done == 3:
                running.scale(0)  # every worker leaves mid-scan, none comes back

        with pytest.raises(MatcherError, match="no worker for 2 s"):
            run_scan(
                [str(world["evidence"])],
                str(world["index"]),
                ScanOptions(engine="dask", scheduler=running.scheduler_address, chunk_size=1),
                str(out),
                progress=retire_all,
            )
    assert Path(str(out) + JOURNAL_SUFFIX).exists() and not out.exists()
    run_scan([str(world["evidence"])], str(world["index"]), ScanOptions(workers=1), str(out), resume=True)
    assert out.read_bytes() == world["reference"].read_bytes()


# -- a sharded index: shards placed on the workers ---------------------------------------------------


@pytest.fixture(scope="module")
def sharded(world):
    """A 3-shard index whose records span every kind of answer: the originals with their view tables
    (region and rotation matches), unrelated filler, a digest-listed evidence file and a known-good
    one; and the local engine's report against the same index unsplit."""
    base = world["base"]
    single = base / "viewed"
    originals = sorted((base / "known").iterdir())
    filler = base / "filler"
    filler.mkdir()
    with KnownIndex.create(single, ALGORITHMS) as index:
        for i in range(12):  # spread the originals over the shards
            path = filler / f"filler_{i}.png"
            path.write_bytes(encode(scene(700 + i, 160, 120, KINDS[i % 3]), "PNG"))
            index.add([known_from_hash_record(r) for r in matcher.hash_file(path, ALGORITHMS)], "filler")
            if i % 4 == 0:
                original = originals[i // 4]
                records = matcher.hash_file(original, ALGORITHMS, options=HashOptions(views=True))
                index.add([known_from_hash_record(r) for r in records], "agency", category=1)
        listed = matcher.hash_file(world["evidence"] / "other" / "unrelated_0.jpg", ALGORITHMS)[0]
        index.add([KnownRecord(md5=listed.md5, name="listed.jpg")], "digests", category=2)
        good = matcher.hash_file(world["evidence"] / "other" / "notes.txt", ALGORITHMS)[0]
        index.add([KnownRecord(sha256=good.sha256, name="notes.txt", extra={"known_good": True})], "nsrl")
    target = base / "viewed-shards"
    split_index(single, target, 3)
    evidence = base / "evidence-views"  # copies that only a view table finds, and the digest-listed files
    evidence.mkdir()
    for i, kind in enumerate(KINDS):
        img = scene(500 + i, 240, 180, kind)
        for name in ("crop10", "caption", "rotate4", "mirror"):
            (evidence / f"o{i}_{name}.png").write_bytes(encode(edit(img, name), "PNG"))
    for name in ("unrelated_0.jpg", "unrelated_1.jpg", "notes.txt", "corrupt.jpg"):
        (evidence / name).write_bytes((world["evidence"] / "other" / name).read_bytes())
    out = world["reports"] / "viewed_local.jsonl"
    run_scan([str(evidence)], str(single), ScanOptions(workers=1), str(out))
    return {"path": target, "reference": out, "evidence": evidence}


def test_a_sharded_index_answers_from_the_workers_holding_its_shards(world, sharded, cluster):
    client = cluster["client"]
    reference = records(sharded["reference"])
    assert {"match", "known_good", "no_match", "error"} <= {r["status"] for r in reference}
    views = {m.get("view") for r in reference for m in r.get("matches", [])}
    kinds = {m["algorithm"] for r in reference for m in r.get("matches", [])}
    assert len(views - {None}) >= 1 and "md5" in kinds  # view tables and digests were searched

    opened_before = client.run(dask_engine._opened_indexes)
    out, summary = dask_run(
        world, "sharded.jsonl", scheduler=cluster["address"], index=sharded["path"], evidence=sharded["evidence"]
    )
    assert out.read_bytes() == sharded["reference"].read_bytes()
    # each worker opened only the shards placed on it, and never the whole index
    placement = dask_engine.shard_placement(ShardCatalog.read(sharded["path"]).shards, client.nthreads())
    held = client.run(dask_engine._held_shards)
    assert held == {worker: sorted(n for n, w in placement.items() if w == worker) for worker in held}
    assert sorted(n for names in held.values() for n in names) == ["shard-000", "shard-001", "shard-002"]
    assert all(len(names) < 3 for names in held.values())
    assert client.run(dask_engine._opened_indexes) == opened_before


def test_a_worker_killed_while_holding_shards_loses_nothing(world, sharded, monkeypatch, tmp_path, crash_preload):
    token = tmp_path / "killed-once"
    monkeypatch.setenv(EXIT_ON, "o1_mirror.png")
    monkeypatch.setenv(EXIT_ONCE, str(token))
    monkeypatch.setattr(dask_engine, "POLL_SECONDS", 0.5)
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger(dask_engine.__name__)
    logger.addHandler(handler)
    try:
        out, summary = dask_run(
            world, "sharded_killed.jsonl", workers=2, index=sharded["path"], evidence=sharded["evidence"]
        )
    finally:
        logger.removeHandler(handler)
    assert token.exists()
    # the dead worker held shards (3 shards on 2 workers): they were placed again, their chunks resubmitted
    assert any("now placed on" in message for message in messages), messages
    assert out.read_bytes() == sharded["reference"].read_bytes()


def test_a_finished_result_lost_with_the_worker_its_shard_was_pinned_to_is_not_waited_for_forever(monkeypatch):
    """Regression (a CI run hung 600 s in the test above): a chunk's finishing task had run, on the
    worker that also held one of its shards, when a file killed that worker; its result left with
    the worker, and Dask's recomputation waited forever for the shard task, restricted to the dead
    worker. Taking the result now gives up once a worker the chunk's shard tasks were pinned to is
    gone (the scan then submits the chunk again, placed anew), instead of polling for ever."""
    import operator
    import time

    monkeypatch.setattr(dask_engine, "POLL_SECONDS", 0.5)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as running:
        with distributed.Client(running, set_as_default=False) as client:
            client.wait_for_workers(2)
            holder = sorted(client.nthreads())[0]
            shard = client.submit(operator.add, 1, 1, workers=[holder], allow_other_workers=False, pure=False)
            finish = client.submit(operator.add, shard, 1, workers=[holder], pure=False)
            assert finish.result(timeout=30) == 3 and finish.status == "finished"
            shard.release()  # taken by the finishing task; the scan keeps only the chunk's future
            with pytest.raises(Exception):  # noqa: B017 - the worker exits under the call
                client.run(os._exit, 1, workers=[holder])
            deadline = time.monotonic() + 60
            while holder in client.nthreads() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert holder not in client.nthreads()
            started = time.monotonic()
            with pytest.raises(dask_engine._Stranded):
                dask_engine._result(client, finish, lambda alive: holder not in alive)
            assert time.monotonic() - started < 30
            assert finish.status != "finished"  # the result is lost, and its recomputation stuck


def test_evidence_tree_is_unchanged(world):
    assert snapshot(world["evidence"]) == world["before"]


def test_an_error_in_a_callback_of_dasks_event_loop_is_one_line_without_a_traceback():
    """Regression: Ctrl-C while the client waited on Dask's loop made distributed's ``sync`` cancel a
    future it had not made yet, and tornado logged that NameError with its traceback on the
    interrupted scan's terminal (seen once in CI); the engine folds such errors into one line."""
    import io
    import logging

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tornado.application")
    one_line = dask_engine.OneLineCallbackErrors()
    logger.addHandler(handler)
    logger.addFilter(one_line)
    try:
        try:
            raise NameError("cannot access free variable 'future'")
        except NameError:
            logger.error("Exception in callback %r", "cancel", exc_info=True)
    finally:
        logger.removeFilter(one_line)
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "Traceback" not in text
    assert (
        text.strip()
        == "Dask's event loop: Exception in callback 'cancel': NameError: cannot access free variable 'future'"
    )
