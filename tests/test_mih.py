"""Multi-index hashing: exactly the brute-force answer, for every radius, layout and code skew."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from matcher.hashes import Hash
from matcher.index import KnownIndex
from matcher.index.mih import (
    BATCH_MAX_BITS,
    MIN_CODES,
    MultiIndex,
    batch_size,
    beats_flat,
    chunk_widths,
    flat_range_search,
    worthwhile,
)
from matcher.known import KnownRecord


def brute_force(codes: np.ndarray, queries: np.ndarray, radius: int) -> list[dict[int, int]]:
    distances = np.unpackbits(codes[None, :, :] ^ queries[:, None, :], axis=2).sum(axis=2)
    return [{int(r): int(d[r]) for r in np.flatnonzero(d <= radius)} for d in distances]


def as_dicts(lims, rows, dists) -> list[dict[int, int]]:
    return [dict(zip(rows[a:b].tolist(), dists[a:b].tolist())) for a, b in itertools.pairwise(lims)]


def planted(rng, codes, count, max_flips):
    """Queries near random rows (0..max_flips bits flipped) plus a few random ones."""
    bits = codes.shape[1] * 8
    queries = codes[rng.integers(0, codes.shape[0], count)].copy()
    for q in queries:
        for p in rng.choice(bits, rng.integers(0, max_flips + 1), replace=False):
            q[p // 8] ^= 1 << (p % 8)
    return np.vstack([queries, rng.integers(0, 256, (5, codes.shape[1]), dtype=np.uint8)])


@pytest.mark.parametrize(
    "bits, radius", [(256, 31), (256, 0), (256, 15), (256, 16), (256, 47), (64, 8), (64, 3), (128, 20)]
)
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
        for batched in (False, True):  # one query at a time, or the batch's probes sorted by bucket
            got = as_dicts(*index.range_search(queries, radius, threads=threads, batched=batched))
            assert got == expected, (threads, batched)


def even(bits, chunks):
    base, extra = divmod(bits, chunks)
    return tuple(base + 1 if c < extra else base for c in range(chunks))


@pytest.mark.parametrize(
    "bits, chunks, radius",
    [
        (256, 13, 31),
        (256, 13, 40),
        (256, 16, 31),
        (256, 32, 31),
        (64, 3, 8),
        (64, 5, 19),
        (128, 7, 20),
    ],
)
def test_every_chunking_equals_brute_force(bits, chunks, radius):
    """Chunks of any width (crossing 64-bit word boundaries, of two widths) give the exact answer."""
    rng = np.random.default_rng(bits + chunks * 7 + radius)
    codes = rng.integers(0, 256, (2000, bits // 8), dtype=np.uint8)
    codes[::2, : bits // 16] &= 0xF0  # skew: many codes share chunk values
    queries = planted(rng, codes, 50, radius + 3)
    expected = brute_force(codes, queries, radius)
    index = MultiIndex.build(codes, even(bits, chunks))
    assert index.widths.tolist() == list(even(bits, chunks))
    kernels = (False, True) if max(index.widths) <= BATCH_MAX_BITS else (False,)  # batch kernel: narrow chunks
    for threads in (1, 2):
        for batched in kernels:
            assert as_dicts(*index.range_search(queries, radius, threads=threads, batched=batched)) == expected


@pytest.mark.parametrize("count", [2_000, 30_000])
@pytest.mark.parametrize("bits, radius", [(256, 31), (64, 8)])
def test_default_chunking_equals_brute_force(count, bits, radius):
    rng = np.random.default_rng(count + bits)
    codes = rng.integers(0, 256, (count, bits // 8), dtype=np.uint8)
    queries = planted(rng, codes, 40, radius + 2)
    index = MultiIndex.build(codes)
    assert tuple(index.widths.tolist()) == chunk_widths(count, bits)
    assert as_dicts(*index.range_search(queries, radius)) == brute_force(codes, queries, radius)


def test_chunking_follows_the_table_size():
    """About log2(N) bits a chunk (Norouzi et al.), chosen by expected cost: 16-bit chunks at 1M PDQ
    codes, 11 chunks of 23-24 bits at 10M (a tenth of the candidates 16-bit chunks read there)."""
    assert chunk_widths(1_000_000, 256) == (16,) * 16
    assert chunk_widths(10_000_000, 256) == (24, 24, 24) + (23,) * 8
    assert chunk_widths(10_000_000, 64) == (22, 21, 21)
    for count in (1_000, 100_000, 10_000_000, 1 << 30):
        for bits in (64, 128, 256):
            widths = chunk_widths(count, bits)
            assert sum(widths) == bits and max(widths) <= 24 and max(widths) - min(widths) <= 1


def test_flat_scan_equals_brute_force_on_a_memory_map(tmp_path):
    """The numba flat scan (all queries, e.g. 8 dihedral variants, in one pass) reads a read-only map."""
    rng = np.random.default_rng(9)
    codes = rng.integers(0, 256, (5000, 32), dtype=np.uint8)
    np.save(tmp_path / "codes.npy", codes)
    mapped = np.load(tmp_path / "codes.npy", mmap_mode="r")
    queries = planted(rng, codes, 8, 40)  # 13 rows
    for radius, count in ((0, 13), (31, 13), (47, 13), (31, 3), (47, 1)):  # 8 and more: queries as vector lanes
        lims, rows, dists = flat_range_search(mapped, queries[:count], radius, threads=2)
        assert as_dicts(lims, rows, dists) == brute_force(codes, queries[:count], radius)
        assert all(np.all(np.diff(rows[a:b]) > 0) for a, b in itertools.pairwise(lims))
    # a tiny memory budget: many passes, the same answer
    for count in (2, 13):
        got = flat_range_search(mapped, queries[:count], 40, memory=100)
        assert as_dicts(*got) == brute_force(codes, queries[:count], 40)


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
    assert not worthwhile(1_000_000, 72, 8)  # not whole 64-bit words
    assert beats_flat(1_000_000, chunk_widths(1_000_000, 256), 31)
    assert beats_flat(5_000, chunk_widths(5_000, 256), 31)  # a small table given MIH (cluster) keeps it
    assert not beats_flat(5_000, chunk_widths(5_000, 256), 60)  # most codes would be candidates
    assert not beats_flat(10_000_000, chunk_widths(10_000_000, 256), 100)  # probing would cost more


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


def test_structure_saved_and_memory_mapped_gives_the_same_answers(tmp_path):
    """Workers can share one saved structure through read-only maps instead of each building it."""
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 256, (4000, 32), dtype=np.uint8)
    built = MultiIndex.build(codes)
    for name in ("codes", "order", "offsets"):
        np.save(tmp_path / f"{name}.npy", getattr(built, name))
    mapped = MultiIndex.from_arrays(
        *(np.load(tmp_path / f"{n}.npy", mmap_mode="r") for n in ("codes",)),
        built.widths.tolist(),
        np.load(tmp_path / "order.npy", mmap_mode="r"),
        np.load(tmp_path / "offsets.npy", mmap_mode="r"),
    )
    queries = planted(rng, codes, 30, 34)
    for batched in (False, True):
        assert as_dicts(*mapped.range_search(queries, 31, batched=batched)) == brute_force(codes, queries, 31)
    with pytest.raises(ValueError):
        MultiIndex.from_arrays(codes, built.widths.tolist()[:-1], built.order, built.offsets)


def _search_in_child(queue, index, queries, expected):  # a forked child: its parent's threads are gone
    got = as_dicts(*index.range_search(queries, 31, threads=3, batched=False))
    queue.put(got == expected)


def test_search_threads_are_kept_between_searches_and_work_after_a_fork(monkeypatch):
    import multiprocessing
    import threading

    import matcher.index.mih as mih

    monkeypatch.setattr(mih, "THREAD_WORK", 1)  # so that even this small search shares out its queries
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (3000, 32), dtype=np.uint8)
    queries = planted(rng, codes, 30, 34)
    expected = brute_force(codes, queries, 31)
    index = MultiIndex.build(codes)

    def search_threads() -> set[int]:
        return {t.ident or 0 for t in threading.enumerate() if t.name.startswith("matcher-search")}

    assert as_dicts(*index.range_search(queries, 31, threads=3, batched=False)) == expected
    first = search_threads()
    assert first  # the other jobs ran on the shared threads...
    for _ in range(3):
        assert as_dicts(*index.range_search(queries, 31, threads=3, batched=False)) == expected
    assert search_threads() == first  # ...kept, not started again for every search
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_search_in_child, args=(queue, index, queries, expected))
    child.start()
    child.join(30)
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == 0, "a forked child's threaded search hung or failed"
    assert queue.get(timeout=5) is True


def test_batch_size_leaves_room_for_bucket_counts():
    # a thread's half share holds its bucket counts (8 bytes each) and 4 bytes per probe of its batch
    assert batch_size(32 << 20, 1, 16, 17) == ((32 << 20) // 2 - 8 * 65537) // (4 * 17)
    assert batch_size(32 << 20, 2, 20, 21) == 0  # 8 MiB of counts fill the 8 MiB half share
    assert batch_size(32 << 20, 2, 16, 17) > 100_000


@pytest.mark.timeout(60)
def test_large_batch_on_wide_chunks_with_threads_is_not_split_query_by_query():
    """Regression: a batch search at 20-bit chunks on two threads in the default 32 MiB shrank its
    batches to one query each, re-counting a million buckets per query and chunk (10,000 queries took
    minutes); the default now searches query by query there, in well under a second."""
    rng = np.random.default_rng(20)
    codes = rng.integers(0, 256, (30_000, 32), dtype=np.uint8)
    index = MultiIndex.build(codes, (20,) * 9 + (19,) * 4)
    queries = planted(rng, codes, 10_000, 12)
    got = index.range_search(queries, 31, threads=2)
    lims, rows, dists = flat_range_search(codes, queries, 31)
    assert as_dicts(*got) == as_dicts(lims, rows, dists)
