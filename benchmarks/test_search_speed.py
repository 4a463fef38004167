"""Exact range search: matcher's search core against the peers, in one run.

Run (about 5-8 minutes at the default sizes on 2 cores)::

    python -m pytest benchmarks/test_search_speed.py -s
    MATCHER_BENCH_N=100000 python -m pytest benchmarks/test_search_speed.py -s   # quick
    MATCHER_BENCH_N=10000000 MATCHER_BENCH_QUERIES=2000 MATCHER_BENCH_CASES=pdq-uniform \
        python -m pytest benchmarks/test_search_speed.py -s   # the 10M runs (about 5 minutes each;
    # then MATCHER_BENCH_CASES=pdq-realistic: a run of some cases keeps the others' figures in the JSON)

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

import os
import time

import faiss
import numpy as np
import pytest

from benchmarks.speed_common import env_int, load_cases, planted_queries, realistic_pdq_codes, save, uniform_codes
from matcher.index.search import AlgorithmTable, range_hits

N = env_int("MATCHER_BENCH_N", 1_000_000)
QUERIES = env_int("MATCHER_BENCH_QUERIES", 10_000)
RESULTS: dict[str, dict] = {}
#: Results file: ``search_speed`` at the default size, ``search_speed_<N>`` otherwise.
RESULT_NAME = "search_speed" if N == 1_000_000 else f"search_speed_{N}"
#: Comma-separated subset of the cases to run (default: all).
SELECTED = [c for c in os.environ.get("MATCHER_BENCH_CASES", "").split(",") if c]
if SELECTED:  # a run of some cases keeps the other cases' figures from earlier runs in the file
    RESULTS.update(load_cases(RESULT_NAME))


def timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def as_sets(lims, ids):
    return [set(ids[a:b].tolist()) for a, b in zip(lims[:-1], lims[1:])]


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
    assert [set(r for r, _ in hits) for hits in ours] == expected  # exact: recall 1.0, nothing extra
    assert as_sets(mih_lims, mih_rows + 1) == expected

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

    row = {
        "n": N,
        "queries": QUERIES,
        "radius": radius,
        "matcher_build_s": round(build_s, 3),
        "matcher_qps": round(QUERIES / ours_s, 1),
        "matcher_mih_kernel_qps": round(QUERIES / mih_s, 1),
        "faiss_flat_qps": round(QUERIES / flat_s, 1),
        "faiss_multihash_qps": round(QUERIES / multi_s, 1),
        "faiss_multihash_recall": round(multi_recall, 4),
        "numpy_bitwise_count_qps": round(numpy_qps, 2),
        "numpy_sampled_queries": numpy_n,
        "pybktree_qps_upper_bound": round(bk_qps, 3),
        "pybktree_sampled_queries": bk_n,
        "speedup_vs_faiss_flat": round(flat_s / ours_s, 2),
        "search_memory_ratio": round(table.mih.nbytes / codes.nbytes, 2),
        "matches": int(sum(len(h) for h in ours)),
    }
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
