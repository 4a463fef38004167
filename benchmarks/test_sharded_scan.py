"""A Dask scan against one index and against the same index split into shards placed on the workers:
memory per worker and images per second.

Run (about 6-8 minutes on 2 cores at the default sizes, set-up included)::

    python -m pytest benchmarks/test_sharded_scan.py -s
    MATCHER_BENCH_SHARD_N=100000 MATCHER_BENCH_SHARD_FILES=200 python -m pytest benchmarks/test_sharded_scan.py -s  # quick

Not part of the normal test run (``testpaths`` is ``tests``). Sized by ``MATCHER_BENCH_SHARD_N``
(PDQ records, default 1,000,000), ``MATCHER_BENCH_SHARD_SHARDS`` (default 4) and
``MATCHER_BENCH_SHARD_FILES`` (images scanned, default 1,000). With ``MATCHER_BENCH_SHARD_DIR`` set,
the indexes and the tree are built there once and kept for later runs.

Set-up (not timed): a :class:`~matcher.index.KnownIndex` of ``N`` PDQ records (the real hashes of
40 generated 640x480 originals, the rest uniformly random codes), split by
:func:`~matcher.index.shards.split_index` into ``SHARDS`` shards; an evidence tree of ``FILES`` JPEGs
(one in five an edited copy of an original, the rest unrelated generated scenes).

Measured, after a warm-up scan of four files (so that the compiled kernels are cached), for each index (single, then sharded), on a fresh two-worker local Dask cluster (one
thread per worker process, loopback): :func:`matcher.scan.run_scan` with ``engine="dask"`` to a JSON
Lines report (wall time, images/s), then each worker process's peak and final resident memory (``VmHWM``,
``VmRSS``), its memory before the scan and the shards it opened. The two reports must be identical. Figures go to
``benchmarks/results/sharded_scan.json``. All data is synthetic.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import matcher
from benchmarks.speed_common import env_int, save, uniform_codes
from fixtures import edit, encode, scene
from matcher.hashes import Hash
from matcher.index import KnownIndex
from matcher.index.shards import split_index
from matcher.known import KnownRecord
from matcher.scan import ScanOptions, run_scan
from matcher.scan.engines import dask_engine

distributed = pytest.importorskip("distributed")

N = env_int("MATCHER_BENCH_SHARD_N", 1_000_000)
SHARDS = env_int("MATCHER_BENCH_SHARD_SHARDS", 4)
FILES = env_int("MATCHER_BENCH_SHARD_FILES", 1_000)
ORIGINALS = 40
WORKERS = 2
KINDS = ("landscape", "plasma", "shapes", "text")
EDITS = ("jpeg75", "mirror", "rotate90", "resize0.5", "greyscale")


def _memory() -> dict[str, int]:
    """This process's resident memory now and at its peak, in bytes (Linux ``/proc``)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    kept = os.environ.get("MATCHER_BENCH_SHARD_DIR")
    if kept:
        base = Path(kept) / f"n{N}-s{SHARDS}-f{FILES}"
        if (base / "done.json").exists():
            yield {
                "base": base,
                "evidence": base / "evidence",
                "single": base / "single",
                "sharded": base / "sharded",
                **json.loads((base / "done.json").read_text()),
            }
            return
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
    else:
        base = tmp_path_factory.mktemp("sharded-scan")
    evidence = base / "evidence"
    evidence.mkdir()
    started = time.perf_counter()
    originals = []
    for i in range(ORIGINALS):
        img = scene(80_000 + i, 640, 480, KINDS[i % len(KINDS)])
        (record,) = matcher.hash_image(img, "pdq")
        originals.append((img, record.hashes["pdq"]))
    single = base / "single"
    with KnownIndex.create(single, ["pdq"]) as index:
        index.add(
            [KnownRecord(hashes={"pdq": h}, name=f"original-{i}") for i, (_, h) in enumerate(originals)],
            "bench",
            category=1,
        )
        codes = uniform_codes(N - ORIGINALS, 32, seed=7)
        for start in range(0, codes.shape[0], 200_000):
            block = codes[start : start + 200_000]
            index.add([KnownRecord(hashes={"pdq": Hash("pdq", bytes(row), 100)}) for row in block], "random")
    built = time.perf_counter() - started
    started = time.perf_counter()
    sharded = base / "sharded"
    split_index(single, sharded, SHARDS)
    split = time.perf_counter() - started
    rng = np.random.default_rng(3)
    for j in range(FILES):
        if j % 5 == 0:
            img, _ = originals[(j // 5) % ORIGINALS]
            img = edit(img, EDITS[(j // 5) % len(EDITS)])
        else:
            img = scene(81_000 + j, int(rng.integers(240, 480)), int(rng.integers(180, 360)), KINDS[j % len(KINDS)])
        (evidence / f"img_{j:05d}.jpg").write_bytes(encode(img.convert("RGB"), "JPEG", quality=85))
    timings = {"built_s": built, "split_s": split}
    if kept:
        (base / "done.json").write_text(json.dumps(timings))
    yield {"base": base, "evidence": evidence, "single": single, "sharded": sharded, **timings}
    if not kept:
        shutil.rmtree(base, ignore_errors=True)


def _run(world, index: Path, name: str, evidence: Path | None = None) -> dict:
    with (
        distributed.LocalCluster(
            n_workers=WORKERS, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        before = client.run(_memory)
        out = world["base"] / f"{name}.jsonl"
        started = time.perf_counter()
        summary = run_scan(
            [str(evidence or world["evidence"])],
            str(index),
            ScanOptions(engine="dask", scheduler=cluster.scheduler_address),
            str(out),
        )
        elapsed = time.perf_counter() - started
        after = client.run(_memory)
        held = client.run(dask_engine._held_shards)
    workers = sorted(after)
    mib = 2**20
    return {
        "report": out,
        "seconds": round(elapsed, 2),
        "images_per_s": round(summary.files / elapsed, 1),
        "matched": summary.matched_files,
        "worker_peak_rss_mib": [round(after[w]["VmHWM"] / mib) for w in workers],
        "worker_rss_after_mib": [round(after[w]["VmRSS"] / mib) for w in workers],
        "worker_idle_rss_mib": [round(before[w]["VmRSS"] / mib) for w in workers],
        "worker_shards": [held[w] for w in workers],
    }


def test_sharded_scan_memory_and_rate(world):
    warm = world["base"] / "warm-up"  # compiled kernels are cached on disk by the first workers
    warm.mkdir(exist_ok=True)
    for name in sorted(world["evidence"].iterdir())[:4]:
        (warm / name.name).write_bytes(name.read_bytes())
    _run(world, world["sharded"], "warm-up", warm)
    single = _run(world, world["single"], "single")
    sharded = _run(world, world["sharded"], "sharded")
    assert Path(single["report"]).read_bytes() == Path(sharded["report"]).read_bytes()
    assert single["matched"] >= FILES // 5
    for result in (single, sharded):
        result.pop("report")
    index_bytes = sum(p.stat().st_size for p in world["single"].rglob("*") if p.is_file())
    data = {
        "records": N,
        "shards": SHARDS,
        "files": FILES,
        "workers": WORKERS,
        "index_bytes_on_disk": index_bytes,
        "build_s": round(world["built_s"], 1),
        "split_s": round(world["split_s"], 1),
        "single": single,
        "sharded": sharded,
    }
    save("sharded_scan", data)
    print(data)
