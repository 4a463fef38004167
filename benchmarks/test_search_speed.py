"""Exact range search: matcher's search core against the peers, in one run.

Run (about 5-8 minutes at the default sizes on 2 cores)::

    python -m pytest benchmarks/test_search_speed.py -s
    MATCHER_BENCH_N=100000 python -m pytest benchmarks/test_search_speed.py -s   # quick
    MATCHER_BENCH_N=10000000 MATCHER_BENCH_CASES=pdq-uniform \
        python -m pytest benchmarks/test_search_speed.py -s   # the 10M runs (about 5 minutes each;
    # then MATCHER_BENCH_CASES=pdq-realistic: a run of some cases keeps the others' figures in the JSON)
    MATCHER_BENCH_PEERS=0 ...   # matcher and FAISS flat only (no FAISS multi-hash, numpy, pybktree)

``test_small_batches`` times what scans and services send: batches of 1, 8 (one hash's dihedral
variants), 10 and 106 queries (one frame's queries with views), for matcher's ``range_search``
(the chosen path), each MIH kernel, FAISS flat, and a numba flat scan that compares every row
with all the queries of the batch in one pass over the codes (the option ThreatExchange studied
for PDQ at 10M, their issue 1810 / PR 1817), on ``MATCHER_BENCH_N`` codes.

For each case (PDQ 256 bits at distance <= 31 on uniform codes and on codes with real PDQ bit
statistics; 64-bit imagehash codes at distance <= 8) it times, on the same codes and queries:

- matcher: ``range_hits`` of :mod:`matcher.index.search` (multi-index hashing where its rule picks
  it, with results mapped to record ids and sorted), and the bare MIH kernel;
- FAISS ``IndexBinaryFlat.range_search`` and ``IndexBinaryMultiHash.range_search`` (16-bit hash
  tables with ``nflip = radius // tables``, the setting that makes it exact; its recall is reported);
- a numpy ``bitwise_count`` scan, pybktree, and (64-bit) a plain loop over ``imagehash`` objects,
  these three on a sample of the queries (they are orders of magnitude slower), scaled to queries/s.

Every matcher answer is checked against FAISS flat's (recall 1.0 and no extra hits). Figures go to
``benchmarks/results/search_speed.json``.
"""

from __future__ import annotations

import itertools
import os
import time

import faiss
import numpy as np
import pytest

from benchmarks.speed_common import (
    env_int,
    load_cases,
    planted_queries,
    realistic_pdq_codes,
    save,
    uniform_codes,
)
from matcher.index.mih import flat_range_search
from matcher.index.search import AlgorithmTable, range_hits, range_search

N = env_int("MATCHER_BENCH_N", 1_000_000)
QUERIES = env_int("MATCHER_BENCH_QUERIES", 10_000)
#: 0: time matcher and FAISS flat only (the slow peers take minutes at 10M).
PEERS = env_int("MATCHER_BENCH_PEERS", 1)
RESULTS: dict[str, dict] = {}
#: Results file: ``search_speed`` at the default size, ``search_speed_<N>`` otherwise (or MATCHER_BENCH_RESULT).
RESULT_NAME = os.environ.get("MATCHER_BENCH_RESULT") or ("search_speed" if N == 1_000_000 else f"search_speed_{N}")
#: Comma-separated subset of the cases to run (default: all).
SELECTED = [c for c in os.environ.get("MATCHER_BENCH_CASES", "").split(",") if c]
if SELECTED:  # a run of some cases keeps the other cases' figures from earlier runs in the file
    RESULTS.update(load_cases(RESULT_NAME))


def timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def as_sets(lims, ids):
    return [set(ids[a:b].tolist()) for a, b in itertools.pairwise(lims)]


def sample_rate(function, queries, limit_s=20.0):
    """Queries/s of a slow peer, timed on as many queries as fit in about ``limit_s`` seconds."""
    done, start = 0, time.perf_counter()
    for q in queries:
        function(q)
        done += 1
        if time.perf_counter() - start > limit_s:
            break
    return done / (time.perf_counter() - start), done


CASES = {
    "pdq-uniform": (lambda: uniform_codes(N, 32), 31),
    "pdq-realistic": (lambda: realistic_pdq_codes(N), 31),
    "imagehash64-uniform": (lambda: uniform_codes(N, 8), 8),
}


@pytest.mark.parametrize("case", list(CASES))
def test_range_search(benchmark, case):
    if SELECTED and case not in SELECTED:
        pytest.skip(f"not in MATCHER_BENCH_CASES={','.join(SELECTED)}")
    make, radius = CASES[case]
    codes = make()
    bits = codes.shape[1] * 8
    queries = planted_queries(codes, QUERIES, radius)
    ids = np.arange(1, codes.shape[0] + 1, dtype=np.int64)
    quality = np.full(codes.shape[0], -1, dtype=np.int16)
    table, build_s = timed(AlgorithmTable.build, "x", bits, None, ids, codes, quality)
    range_hits(table, queries[:10], radius)  # compile / warm up

    ours = benchmark.pedantic(range_hits, args=(table, queries, radius), rounds=1, iterations=1)
    ours_s = benchmark.stats.stats.total
    (mih_lims, mih_rows, _), mih_s = timed(table.mih.range_search, queries, radius, faiss.omp_get_max_threads())

    flat = faiss.IndexBinaryFlat(bits)
    flat.add(codes)
    (flims, _, fids), flat_s = timed(flat.range_search, queries, radius + 1)
    expected = as_sets(flims, fids + 1)
    assert [{r for r, _ in hits} for hits in ours] == expected  # exact: recall 1.0, nothing extra
    assert as_sets(mih_lims, mih_rows + 1) == expected

    row = {
        "n": N,
        "queries": QUERIES,
        "radius": radius,
        "matcher_build_s": round(build_s, 3),
        "matcher_chunks": [int(w) for w in table.mih.widths],
        "matcher_qps": round(QUERIES / ours_s, 1),
        "matcher_mih_kernel_qps": round(QUERIES / mih_s, 1),
        "faiss_flat_qps": round(QUERIES / flat_s, 1),
        "speedup_vs_faiss_flat": round(flat_s / ours_s, 2),
        "search_memory_ratio": round(table.mih.nbytes / codes.nbytes, 2),
        "matches": int(sum(len(h) for h in ours)),
    }
    if not PEERS:
        RESULTS[case] = row
        save(RESULT_NAME, RESULTS)
        print(case, row)
        return
    multi = faiss.IndexBinaryMultiHash(bits, bits // 16, 16)
    multi.nflip = radius // (bits // 16)  # the pigeonhole probe radius that makes it exact
    multi.add(codes)
    (mlims, _, mids), multi_s = timed(multi.range_search, queries, radius + 1)
    multi_found = as_sets(mlims, mids + 1)
    multi_recall = sum(len(a & b) for a, b in zip(multi_found, expected)) / max(1, sum(map(len, expected)))

    packed = codes.view(np.uint64)
    qwords = queries.view(np.uint64)
    numpy_qps, numpy_n = sample_rate(
        lambda q: np.flatnonzero(np.bitwise_count(packed ^ q).sum(axis=1) <= radius), qwords[: QUERIES // 2], 15
    )
    import pybktree

    def hamming(a, b):
        return (a ^ b).bit_count()

    sample = [int.from_bytes(c.tobytes(), "big") for c in codes[: min(N, 200_000)]]
    tree = pybktree.BKTree(hamming, sample)
    bk_qps, bk_n = sample_rate(lambda q: tree.find(int.from_bytes(q.tobytes(), "big"), radius), queries, 15)
    bk_qps *= len(sample) / N  # a BK-tree of N items costs at least N/len(sample) times as much

    row.update(
        {
            "faiss_multihash_qps": round(QUERIES / multi_s, 1),
            "faiss_multihash_recall": round(multi_recall, 4),
            "numpy_bitwise_count_qps": round(numpy_qps, 2),
            "numpy_sampled_queries": numpy_n,
            "pybktree_qps_upper_bound": round(bk_qps, 3),
            "pybktree_sampled_queries": bk_n,
        }
    )
    if bits == 64:
        import imagehash

        objects = [imagehash.ImageHash(np.unpackbits(c).astype(bool).reshape(8, 8)) for c in codes[: min(N, 100_000)]]
        queries_ih = [imagehash.ImageHash(np.unpackbits(q).astype(bool).reshape(8, 8)) for q in queries[:50]]
        loop_qps, loop_n = sample_rate(lambda q: [o for o in objects if o - q <= radius], queries_ih, 15)
        row["imagehash_loop_qps"] = round(loop_qps * len(objects) / N, 3)
        row["imagehash_loop_sampled_queries"] = loop_n
    RESULTS[case] = row
    save(RESULT_NAME, RESULTS)
    print(case, row)


BATCHES = (1, 8, 10, 106)


def per_batch_ms(function, queries, size, budget_s=6.0):
    """Mean milliseconds of ``function`` on batches of ``size`` consecutive queries (about ``budget_s``)."""
    function(queries[:size])  # warm up
    done, start, offset = 0, time.perf_counter(), 0
    while done < 3 or (time.perf_counter() - start < budget_s and done < 2000):
        if offset + size > queries.shape[0]:
            offset = 0
        function(queries[offset : offset + size])
        offset += size
        done += 1
    return round((time.perf_counter() - start) / done * 1000, 3)


@pytest.mark.parametrize("case", ["pdq-uniform", "imagehash64-uniform"])
def test_small_batches(case):
    if SELECTED and case not in SELECTED:
        pytest.skip(f"not in MATCHER_BENCH_CASES={','.join(SELECTED)}")
    make, radius = CASES[case]
    codes = make()
    bits = codes.shape[1] * 8
    queries = planted_queries(codes, 4000, radius, seed=2)
    ids = np.arange(1, codes.shape[0] + 1, dtype=np.int64)
    table = AlgorithmTable.build("x", bits, None, ids, codes, np.full(codes.shape[0], -1, dtype=np.int16))
    flat = faiss.IndexBinaryFlat(bits)
    flat.add(codes)
    threads = faiss.omp_get_max_threads()
    row: dict[str, object] = {
        "n": N,
        "radius": radius,
        "threads": threads,
        "matcher_chunks": [int(w) for w in table.mih.widths],
    }
    peers = {
        "matcher_ms": lambda q: range_search(table, q, radius),
        "mih_per_query_kernel_ms": lambda q: table.mih.range_search(q, radius, threads, batched=False),
        "faiss_flat_ms": lambda q: flat.range_search(q, radius + 1),
        "numba_flat_ms": lambda q: flat_range_search(codes, q, radius, threads),
    }
    for size in BATCHES:
        timings = {
            name: per_batch_ms(f, queries, size, 2.0 if "flat" in name and N > 2_000_000 else 6.0)
            for name, f in peers.items()
        }
        # the same answers from every path
        a = flat.range_search(queries[:size], radius + 1)
        b = flat_range_search(codes, queries[:size], radius)
        owners, record_ids, _ = range_search(table, queries[:size], radius)
        assert (
            [set(a[2][a[0][i] : a[0][i + 1]].tolist()) for i in range(size)]
            == [set(b[1][b[0][i] : b[0][i + 1]].tolist()) for i in range(size)]
            == [set((record_ids[owners == i] - 1).tolist()) for i in range(size)]
        )
        row[f"batch_{size}"] = timings
        print(case, N, size, timings)
    RESULTS[f"{case}-batches"] = row
    save(RESULT_NAME, RESULTS)
