"""One exact range search serves the index and ``matcher cluster``: arrays of hits, sorted, exact on
both of its paths (FAISS's flat scan and multi-index hashing)."""

from __future__ import annotations

import numpy as np
import pytest

from matcher import cluster
from matcher.index import search
from matcher.index.mih import MIN_CODES, MultiIndex
from matcher.index.search import AlgorithmTable, range_hits, range_search


def brute_force(codes, ids, queries, radius):
    """Sorted (query row, record id, distance) triples."""
    distances = np.unpackbits(codes[None, :, :] ^ queries[:, None, :], axis=2).sum(axis=2)
    return sorted((q, int(ids[r]), int(d[r])) for q, d in enumerate(distances) for r in np.flatnonzero(d <= radius))


def table_of(codes, min_quality=None, quality=None):
    rng = np.random.default_rng(0)
    ids = np.sort(rng.choice(10 * codes.shape[0], codes.shape[0], replace=False)).astype(np.int64) + 1
    quality = np.full(codes.shape[0], -1, dtype=np.int16) if quality is None else quality
    return AlgorithmTable.build("pdq", codes.shape[1] * 8, min_quality, ids, codes, quality), ids


def queries_near(rng, codes, count, flips):
    queries = codes[rng.integers(0, codes.shape[0], count)].copy()
    bits = np.unpackbits(queries, axis=1)
    for row in bits:
        row[rng.choice(bits.shape[1], rng.integers(0, flips + 1), replace=False)] ^= 1
    return np.vstack([np.packbits(bits, axis=1), rng.integers(0, 256, (10, codes.shape[1]), dtype=np.uint8)])


@pytest.mark.parametrize("use_mih", [False, True])
def test_range_search_is_exact_and_sorted_on_both_paths(monkeypatch, use_mih):
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (MIN_CODES + 100, 32), dtype=np.uint8)
    codes[50:60] = codes[7]  # ties at equal distance: ordered by record id
    table, ids = table_of(codes)
    assert table.mih is not None
    monkeypatch.setattr(MultiIndex, "beats_flat", lambda self, r: use_mih)
    calls = []
    original = MultiIndex.range_search
    monkeypatch.setattr(MultiIndex, "range_search", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    queries = np.vstack([queries_near(rng, codes, 80, 35), codes[7:8]])
    owners, record_ids, distances = range_search(table, queries, 31)
    assert bool(calls) == use_mih
    assert all(a.dtype == np.int64 for a in (owners, record_ids, distances))
    assert list(zip(owners.tolist(), record_ids.tolist(), distances.tolist())) == brute_force(codes, ids, queries, 31)
    # the per-query lists are the same hits
    lists = range_hits(table, queries, 31)
    assert [(q, r, d) for q, hits in enumerate(lists) for r, d in hits] == sorted(
        zip(owners.tolist(), record_ids.tolist(), distances.tolist()), key=lambda t: (t[0], t[2], t[1])
    )


def test_quality_gate_and_small_tables_and_empty_input():
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 256, (500, 32), dtype=np.uint8)
    quality = rng.integers(-1, 101, 500).astype(np.int16)
    table, ids = table_of(codes, min_quality=50, quality=quality)
    keep = (quality < 0) | (quality >= 50)
    queries = queries_near(rng, codes, 40, 20)
    owners, record_ids, distances = range_search(table, queries, 31)
    want = brute_force(codes[keep], ids[keep], queries, 31)
    assert list(zip(owners.tolist(), record_ids.tolist(), distances.tolist())) == want
    for result in (range_search(table, queries[:0], 31), range_search(table, queries, -1)):
        assert all(a.size == 0 for a in result)
    assert range_hits(table, queries[:0], 31) == []


def test_cluster_uses_the_index_range_search():
    """``matcher cluster`` keeps no copy of the search (issue 15): it calls this one."""
    assert cluster.range_search is search.range_search
    assert not hasattr(cluster, "_range_search")
