"""Multi-index hashing: exactly the brute-force answer, for every radius, layout and code skew."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.hashes import Hash
from matcher.index import KnownIndex
from matcher.index.mih import MIN_CODES, MultiIndex, worthwhile
from matcher.known import KnownRecord


def brute_force(codes: np.ndarray, queries: np.ndarray, radius: int) -> list[dict[int, int]]:
    distances = np.unpackbits(codes[None, :, :] ^ queries[:, None, :], axis=2).sum(axis=2)
    return [{int(r): int(d[r]) for r in np.flatnonzero(d <= radius)} for d in distances]


def as_dicts(lims, rows, dists) -> list[dict[int, int]]:
    return [dict(zip(rows[a:b].tolist(), dists[a:b].tolist())) for a, b in zip(lims[:-1], lims[1:])]


def planted(rng, codes, count, max_flips):
    """Queries near random rows (0..max_flips bits flipped) plus a few random ones."""
    bits = codes.shape[1] * 8
    queries = codes[rng.integers(0, codes.shape[0], count)].copy()
    for q in queries:
        for p in rng.choice(bits, rng.integers(0, max_flips + 1), replace=False):
            q[p // 8] ^= 1 << (p % 8)
    return np.vstack([queries, rng.integers(0, 256, (5, codes.shape[1]), dtype=np.uint8)])


@pytest.mark.parametrize("bits, radius", [(256, 31), (256, 0), (256, 15), (256, 16), (256, 47), (64, 8), (64, 3), (128, 20)])
@pytest.mark.parametrize("skewed", [False, True])
def test_equals_brute_force(bits, radius, skewed):
    rng = np.random.default_rng(bits * 100 + radius + skewed)
    codes = rng.integers(0, 256, (3000, bits // 8), dtype=np.uint8)
    if skewed:  # real hashes are not uniform: make half the bits nearly constant
        codes[:, ::2] &= rng.integers(0, 256, bits // 16, dtype=np.uint8) | 0x0F
    codes[10:20] = codes[0]  # exact duplicates
    queries = planted(rng, codes, 60, radius + 3)
    expected = brute_force(codes, queries, radius)
    index = MultiIndex.build(codes)
    for threads in (1, 2, 3):
        got = as_dicts(*index.range_search(queries, radius, threads=threads))
        assert got == expected, threads


def test_single_code_and_empty_queries():
    codes = np.zeros((1, 32), dtype=np.uint8)
    index = MultiIndex.build(codes)
    lims, rows, dists = index.range_search(np.zeros((1, 32), dtype=np.uint8), 31)
    assert lims.tolist() == [0, 1] and rows.tolist() == [0] and dists.tolist() == [0]
    lims, rows, _ = index.range_search(np.zeros((0, 32), dtype=np.uint8), 31)
    assert lims.tolist() == [0] and rows.size == 0


def test_rule_picks_mih_only_where_it_pays():
    assert worthwhile(1_000_000, 256, 31) and worthwhile(1_000_000, 64, 8)
    assert not worthwhile(MIN_CODES - 1, 256, 31)  # small: the flat scan
    assert not worthwhile(1_000_000, 256, 160)  # huge radius: candidates would be most codes
    assert not worthwhile(1_000_000, 72, 8)  # not whole 16-bit chunks


def test_index_search_uses_mih_and_stays_exact(tmp_path):
    rng = np.random.default_rng(5)
    n = MIN_CODES + 500
    codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    records = [KnownRecord(hashes={"pdq": Hash("pdq", c.tobytes())}) for c in codes]
    with KnownIndex.create(tmp_path / "idx", ["pdq"]) as index:
        index.add(records, "random")
    with KnownIndex.open(tmp_path / "idx") as index:
        table = index._snap().tables["pdq"]
        assert table.mih is not None
        queries = planted(rng, codes, 200, 35)
        results = index.search([Hash("pdq", q.tobytes()) for q in queries], 31)
        expected = brute_force(codes, queries, 31)
        # record ids are 1-based in insertion order
        for result, want in zip(results, expected):
            got = [(m.record_id - 1, m.distance) for m in result]
            assert got == sorted(want.items(), key=lambda kv: (kv[1], kv[0]))
