"""Scale benchmark of matcher.index: build, save, reload and query an index of random PDQ records.

Not part of the normal test run (``testpaths`` is ``tests``). Run it with::

    python -m pytest benchmarks/test_index_scale.py -s
    MATCHER_INDEX_RECORDS=100000 MATCHER_INDEX_QUERIES=2000 python -m pytest benchmarks/test_index_scale.py -s
    MATCHER_INDEX_RECORDS=10000000 MATCHER_INDEX_QUERIES=500 MATCHER_INDEX_BRUTE_SAMPLE=10 \
        python -m pytest benchmarks/test_index_scale.py -s      # the 10M figures of docs/scaling.md (~12 min)

It builds an index of ``MATCHER_INDEX_RECORDS`` (default 1,000,000) random PDQ records, then runs
``MATCHER_INDEX_QUERIES`` (default 10,000) queries, each a stored record with 0..31 bits flipped
(a planted near-duplicate at every distance up to the PDQ threshold). The peer is a bare
``faiss.IndexBinaryFlat`` over the same codes: its add, write, read and ``range_search`` (radius 32,
i.e. ``<= 31``) are timed in the same run, and our results are asserted equal to FAISS flat's on
every query and to a numpy brute-force scan on a sample. Figures go to
``benchmarks/results/index_scale.json`` and pytest-benchmark's own report (the query phase).
All data is synthetic.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from pathlib import Path

import faiss
import numpy as np
import pytest

from matcher.hashes import Hash
from matcher.index import KnownIndex
from matcher.index import store as store_module
from matcher.known import KnownRecord

RECORDS = int(os.environ.get("MATCHER_INDEX_RECORDS", "1000000"))
QUERIES = int(os.environ.get("MATCHER_INDEX_QUERIES", "10000"))
BRUTE_SAMPLE = int(os.environ.get("MATCHER_INDEX_BRUTE_SAMPLE", "100"))
#: ``index_scale.json`` at the default size, ``index_scale_<records>.json`` otherwise.
RESULTS = (
    Path(__file__).resolve().parent
    / "results"
    / ("index_scale.json" if RECORDS == 1_000_000 else f"index_scale_{RECORDS}.json")
)
MAX_DISTANCE = 31


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """Current resident set size."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def planted_queries(codes: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` queries: stored codes with ``i % 32`` distinct bits flipped; returns (queries, source rows, distances)."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, codes.shape[0], count)
    distances = np.arange(count) % (MAX_DISTANCE + 1)
    bits = np.unpackbits(codes[rows], axis=1)
    for i in range(count):
        flip = rng.choice(256, size=int(distances[i]), replace=False)
        bits[i, flip] ^= 1
    return np.packbits(bits, axis=1), rows, distances


def faiss_sorted(
    lims: np.ndarray, dist: np.ndarray, labels: np.ndarray, ids: np.ndarray
) -> list[list[tuple[int, int]]]:
    out = []
    for i in range(lims.shape[0] - 1):
        a, b = int(lims[i]), int(lims[i + 1])
        hits = sorted(zip(dist[a:b].astype(np.int64).tolist(), ids[labels[a:b]].tolist()))
        out.append([(record_id, d) for d, record_id in hits])
    return out


def brute(codes: np.ndarray, ids: np.ndarray, query: np.ndarray, limit: int) -> list[tuple[int, int]]:
    d = np.bitwise_count(np.bitwise_xor(codes, query)).sum(axis=1).astype(np.int64)
    sel = np.flatnonzero(d <= limit)
    order = np.lexsort((ids[sel], d[sel]))
    return [(int(ids[sel][i]), int(d[sel][i])) for i in order]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_index_scale(benchmark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    figures: dict = {
        "records": RECORDS,
        "queries": QUERIES,
        "max_distance": MAX_DISTANCE,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "faiss": faiss.__version__,
            "numpy": np.__version__,
            "faiss_omp_threads": faiss.omp_get_max_threads(),
        },
    }
    rng = np.random.default_rng(2024)
    codes = rng.integers(0, 256, (RECORDS, 32), dtype=np.uint8)
    qualities = rng.integers(50, 101, RECORDS)
    ids = np.arange(1, RECORDS + 1, dtype=np.int64)
    query_codes, rows, distances = planted_queries(codes, QUERIES, 7)
    queries = [Hash("pdq", q.tobytes(), 90) for q in query_codes]
    figures["rss_after_data_mib"] = round(rss_mib(), 1)

    # -- ours: build + save (one atomic add), timed per write step ------------------------------
    path = tmp_path / "ix"
    index = KnownIndex.create(path, ("pdq",))
    marks: dict[str, float] = {}
    monkeypatch.setattr(store_module, "_checkpoint", lambda step: marks.setdefault(step, time.perf_counter()))

    def records():
        for row, quality in zip(codes, qualities.tolist()):
            yield KnownRecord(hashes={"pdq": Hash("pdq", row.tobytes(), quality)})

    started = time.perf_counter()
    result = index.add(records(), "synthetic")
    finished = time.perf_counter()
    monkeypatch.undo()
    assert result.added == RECORDS
    ours = {
        "build_s": round(marks["database-written"] - started, 2),
        "save_s": round(marks["manifest-replaced"] - marks["database-written"], 2),
        "add_total_s": round(finished - started, 2),
        "build_records_per_s": round(RECORDS / (finished - started)),
        "peak_rss_after_build_mib": round(peak_rss_mib(), 1),
    }
    info = index.info()
    ours["size_on_disk_bytes"] = info["size_on_disk"]
    ours["files_bytes"] = info["files"]
    index.close()
    del index

    # -- ours: reload (with and without checksum verification) ----------------------------------
    t0 = time.perf_counter()
    KnownIndex.open(path, verify=False).close()
    ours["load_no_verify_s"] = round(time.perf_counter() - t0, 2)
    rss_before = rss_mib()
    t0 = time.perf_counter()
    index = KnownIndex.open(path)
    ours["load_s"] = round(time.perf_counter() - t0, 2)
    ours["rss_added_by_open_mib"] = round(rss_mib() - rss_before, 1)

    # -- ours: query throughput (pytest-benchmark measures this phase) --------------------------
    def run() -> list:
        return index.search(queries, max_distance=MAX_DISTANCE)

    t0 = time.perf_counter()
    ours_results = benchmark.pedantic(run, rounds=1, iterations=1)
    elapsed = time.perf_counter() - t0
    ours["query_s"] = round(elapsed, 2)
    ours["queries_per_s"] = round(QUERIES / elapsed, 1)
    ours["matches"] = sum(len(r) for r in ours_results)
    ours["peak_rss_mib"] = round(peak_rss_mib(), 1)
    figures["ours"] = ours

    # -- peer: bare FAISS IndexBinaryFlat on the same codes --------------------------------------
    peer: dict = {}
    t0 = time.perf_counter()
    flat = faiss.IndexBinaryFlat(256)
    flat.add(codes)
    peer["build_s"] = round(time.perf_counter() - t0, 2)
    flat_path = tmp_path / "flat.faissindex"
    t0 = time.perf_counter()
    faiss.write_index_binary(flat, str(flat_path))
    peer["save_s"] = round(time.perf_counter() - t0, 2)
    peer["size_on_disk_bytes"] = flat_path.stat().st_size
    del flat
    t0 = time.perf_counter()
    flat = faiss.read_index_binary(str(flat_path))
    peer["load_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    lims, dist, labels = flat.range_search(query_codes, MAX_DISTANCE + 1)  # strict <, so radius 32 is <= 31
    elapsed = time.perf_counter() - t0
    peer["query_s"] = round(elapsed, 2)
    peer["queries_per_s"] = round(QUERIES / elapsed, 1)
    peer["matches"] = int(lims[-1])
    peer["peak_rss_mib"] = round(peak_rss_mib(), 1)
    peer["note"] = "bare FAISS: no records, no list/category fields, no checksums, no atomic writes"
    figures["faiss_flat"] = peer

    # -- exactness --------------------------------------------------------------------------------
    expected = faiss_sorted(lims, dist, labels, ids)
    got = [[(m.record_id, m.distance) for m in r] for r in ours_results]
    assert got == expected
    for i in range(QUERIES):  # every planted near-duplicate is found at its distance
        assert (int(rows[i]) + 1, int(distances[i])) in got[i]
    sample = np.random.default_rng(3).choice(QUERIES, size=min(BRUTE_SAMPLE, QUERIES), replace=False)
    for i in sample.tolist():
        assert got[i] == brute(codes, ids, query_codes[i], MAX_DISTANCE)
    figures["exactness"] = {"compared_with_faiss_flat": QUERIES, "compared_with_numpy_brute_force": int(len(sample))}
    figures["directory_bytes"] = dir_bytes(path)
    benchmark.extra_info.update({"ours": ours, "faiss_flat": peer})

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(json.dumps(figures, indent=2, sort_keys=True))
