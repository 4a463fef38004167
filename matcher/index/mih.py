"""Exact multi-index hashing (MIH) for Hamming range search, with native (numba) kernels.

The codes are cut into ``m`` chunks of about ``log2(N)`` bits each (Norouzi, Punjani and Fleet's
rule, checked by measurement: see :func:`chunk_widths`). If a code is within distance ``r`` of a
query then, by the pigeonhole principle, at least one chunk differs from the query's chunk in at most
``s = r // m`` bits. So, per chunk, probing the bucket of the query's chunk value and of every value
within ``s`` bits of it finds every match; only those candidates get a full distance. A candidate is
reported by the first chunk that finds it only (a later chunk skips it when an earlier chunk was
within ``s`` bits), so no set is needed to drop duplicates.

With chunks of ``log2(N)`` bits a bucket holds about one code, so a query reads about as many
candidates as it probes buckets: for 256-bit PDQ at distance 31 over 10 million codes, 11 chunks of
23-24 bits, about 3,000 probes and 3,000 candidates a query (16-bit chunks read about 40,000).

Per chunk the structure holds the row order sorted by chunk value (int32, one per code) and the
bucket offsets (int32, ``2**width + 1``): about ``8 * m`` bytes per code, for PDQ at 10M about 2.7
times the codes themselves.

Memory of a search: each query is searched on its own (no per-probe arrays), and hits go to
fixed buffers of at most :data:`SEARCH_MEMORY` bytes per search call; when a buffer fills, the
kernel stops at a query boundary and the search resumes after the buffers are copied out. Only a
single query whose own answer exceeds the buffer makes it grow (the answer has to be held anyway).
"""

from __future__ import annotations

import functools
import itertools
import math
import mmap
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit

from .native import popcount64, prefetch1, prefetch2

__all__ = [
    "HIT_BYTES",
    "MAX_CHUNK_BITS",
    "MIN_CODES",
    "SEARCH_MEMORY",
    "MultiIndex",
    "batch_size",
    "beats_flat",
    "chunk_widths",
    "design_radius",
    "expected_cost",
    "flat_range_search",
    "worthwhile",
]

#: Below this many codes the flat (FAISS) scan is used: it is as fast and needs no structure.
MIN_CODES = 20_000
#: Widest chunk: its bucket offsets take ``4 * 2**width`` bytes (64 MiB at 24 bits).
MAX_CHUNK_BITS = 24
#: Narrowest chunk (small tables).
MIN_CHUNK_BITS = 8
#: Working memory of one search call beyond its queries and its answer: the hit buffers, shared
#: between the threads.
SEARCH_MEMORY = 32 << 20
#: Bytes per hit in a hit buffer (query int32, row int64, distance int16).
HIT_BYTES = 14
#: Largest expected cost of a query, in candidate reads per code, for MIH to be chosen over a flat
#: scan (a candidate read is a cache miss, the flat scan streams the codes; measured: MIH is faster from
#: 20,000 PDQ codes at r=31 at every batch size).
MAX_CANDIDATE_SHARE = 0.05
#: Widest chunk the batch kernel takes (its bucket counts are ``8 * 2**width`` bytes a thread).
BATCH_MAX_BITS = 20
#: Probes of a batch per bucket from which the batch kernel is used (measured: 1M PDQ codes).
BATCH_SHARING = 1.0
#: Expected search cost (in candidate reads) that makes starting one more thread worth it.
THREAD_WORK = 20_000
#: Cost of probing a bucket, in candidate reads (measured: a probe reads the offsets, then the order).
PROBE_COST = 3.0
#: Most probes per chunk a query may make: bounds the probe list (and the work) at large radii.
MAX_PROBES = 1 << 16


def design_radius(bit_length: int) -> int:
    """The radius the chunking is chosen for: 31/256 of the bits (PDQ's 31, 8 for 64-bit hashes)."""
    return -(-bit_length * 31 // 256)


def _even(bit_length: int, chunks: int) -> tuple[int, ...]:
    base, extra = divmod(bit_length, chunks)
    return tuple(base + 1 if c < extra else base for c in range(chunks))


@functools.cache  # a pure function of two small ints, asked ~100 times per search when planning it
def _probes(bits: int, within: int) -> int:
    return sum(math.comb(bits, i) for i in range(within + 1))


def expected_cost(count: int, widths: tuple[int, ...], max_distance: int) -> tuple[int, float]:
    """``(probes, candidates)`` of one query over ``count`` uniform codes cut in ``widths``."""
    within = max_distance // len(widths)
    probes = sum(_probes(w, within) for w in widths)
    candidates = sum(_probes(w, within) * count / (1 << w) for w in widths)
    return probes, candidates


def _cost(count: int, widths: tuple[int, ...], max_distance: int) -> float:
    probes, candidates = expected_cost(count, widths, max_distance)
    return PROBE_COST * probes + candidates


def chunk_widths(count: int, bit_length: int, max_distance: int | None = None) -> tuple[int, ...]:
    """The chunking for ``count`` codes of ``bit_length`` bits searched at about ``max_distance``
    (default :func:`design_radius`): the number of chunks with the least expected cost per query
    (:data:`PROBE_COST` per probe, 1 per candidate), chunks no wider than ``log2(count) + 1`` bits
    (so the bucket offsets stay within about twice the order arrays) nor :data:`MAX_CHUNK_BITS`.

    Norouzi et al. put the best width near ``log2(count)``; the pigeonhole radius ``r // m`` moves in
    steps, so the cost is compared for every ``m``. Measured (PDQ, r=31): 11 chunks of 23-24 bits at
    10M codes, 16 of 16 bits at 1M.
    """
    if bit_length <= 0:
        raise ValueError(f"bit length must be positive, not {bit_length}")
    radius = design_radius(bit_length) if max_distance is None else max(0, int(max_distance))
    widest = max(MIN_CHUNK_BITS, min(MAX_CHUNK_BITS, math.ceil(math.log2(max(count, 2))) + 1))
    best: tuple[float, tuple[int, ...]] | None = None
    for chunks in range(math.ceil(bit_length / widest), bit_length // MIN_CHUNK_BITS + 1):
        widths = _even(bit_length, chunks)
        if _probes(widths[0], radius // chunks) > MAX_PROBES:
            continue
        cost = _cost(count, widths, radius)
        if best is None or cost < best[0]:
            best = (cost, widths)
    return best[1] if best is not None else _even(bit_length, max(1, bit_length // MIN_CHUNK_BITS))


def worthwhile(count: int, bit_length: int, max_distance: int) -> bool:
    """Whether a table of ``count`` codes of ``bit_length`` bits should get MIH for ``max_distance``."""
    if count < MIN_CODES or bit_length % 64 or max_distance < 0:
        return False
    return beats_flat(count, chunk_widths(count, bit_length, max_distance), max_distance)


def beats_flat(count: int, widths: tuple[int, ...], max_distance: int) -> bool:
    """Whether MIH with ``widths`` beats a flat scan of ``count`` codes at ``max_distance``: a probe or
    a candidate costs a cache miss while a flat scan streams the codes, so MIH is chosen when its
    expected cost is under :data:`MAX_CANDIDATE_SHARE` of the codes. Below :data:`MIN_CODES` codes a
    flat call costs about as much as at :data:`MIN_CODES` (its fixed costs dominate), so a small table
    whose owner built MIH for it (``matcher cluster``: eight queries per code) is judged as that size."""
    if max_distance < 0 or _probes(max(widths), max_distance // len(widths)) > MAX_PROBES:
        return False
    return _cost(count, widths, max_distance) <= MAX_CANDIDATE_SHARE * max(count, MIN_CODES)


@functools.lru_cache(maxsize=64)
def _masks(width: int, narrow: int, within: int) -> tuple[np.ndarray, int]:
    """Every ``width``-bit value with at most ``within`` bits set, those below ``2**narrow`` first
    (fewest bits first in each part), and how many are below ``2**narrow``."""
    low: list[int] = []
    high: list[int] = []
    for k in range(within + 1):
        for bits in itertools.combinations(range(width), k):
            value = sum(1 << b for b in bits)
            (low if value < (1 << narrow) else high).append(value)
    masks = np.array(low + high, dtype=np.int64)
    masks.flags.writeable = False
    return masks, len(low)


@njit(cache=True, nogil=True, inline="always")
def _chunk(words: np.ndarray, row: int, start: int, width: int) -> np.int64:  # pragma: no cover - compiled
    """Bits ``start .. start + width - 1`` of a row (bit ``i`` is bit ``i % 64`` of word ``i // 64``)."""
    word = start >> 6
    shift = start & 63
    value = words[row, word] >> np.uint64(shift)
    if shift + width > 64:
        value |= words[row, word + 1] << np.uint64(64 - shift)
    return np.int64(value & ((np.uint64(1) << np.uint64(width)) - np.uint64(1)))


@njit(cache=True, nogil=True, inline="always")
def _probes_of(widths: np.ndarray, c: int, narrow: int, narrow_masks: int, n_masks: int) -> int:  # pragma: no cover
    """The buckets probed in chunk ``c``: the first ``narrow_masks`` masks in a narrow chunk, else all."""
    return narrow_masks if widths[c] == narrow else n_masks


@njit(cache=True, nogil=True, inline="always")
def _row_distance(words: np.ndarray, row: int, query_words: np.ndarray, q: int) -> np.int64:  # pragma: no cover
    """The Hamming distance between row ``row`` of ``words`` and row ``q`` of ``query_words``."""
    distance = np.int64(0)
    for w in range(words.shape[1]):
        distance += popcount64(words[row, w] ^ query_words[q, w])
    return distance


@njit(cache=True, nogil=True, inline="always")
def _seen_before(
    words: np.ndarray,
    row: int,
    starts: np.ndarray,
    widths: np.ndarray,
    qvalue: np.ndarray,
    i: int,
    chunk: int,
    within: int,
) -> bool:  # pragma: no cover - compiled
    """Whether a chunk before ``chunk`` finds ``row`` for the query whose chunk values are
    ``qvalue[i]`` (then that chunk reported it already)."""
    for e in range(chunk):
        if popcount64(np.uint64(_chunk(words, row, starts[e], widths[e]) ^ qvalue[i, e])) <= within:
            return True
    return False


@njit(cache=True, nogil=True)
def _build(
    words: np.ndarray,
    starts: np.ndarray,
    widths: np.ndarray,
    bases: np.ndarray,
    order: np.ndarray,
    offsets: np.ndarray,
    chunk_start: int,
    chunk_step: int,
) -> None:  # pragma: no cover - compiled
    """Counting sort of the rows by the value of chunks ``chunk_start, chunk_start + chunk_step, ...``
    into ``order[chunk, n]`` and ``offsets`` (zeroed on entry), the offsets of chunk ``c`` at
    ``bases[c] .. bases[c] + 2**widths[c]``."""
    n = words.shape[0]
    chunks = widths.shape[0]
    for c in range(chunk_start, chunks, chunk_step):
        base = bases[c]
        size = np.int64(1) << widths[c]
        for row in range(n):
            offsets[base + _chunk(words, row, starts[c], widths[c]) + 1] += 1
        for v in range(size):
            offsets[base + v + 1] += offsets[base + v]
        fill = offsets[base : base + size].copy()
        for row in range(n):
            value = _chunk(words, row, starts[c], widths[c])
            order[c, fill[value]] = row
            fill[value] += 1


def _large_array(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A zeroed array in anonymous memory the kernel is asked to back with huge pages (the search reads
    it at random: 2 MiB pages spare most of the address-translation misses)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if size < (4 << 20) or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.zeros(shape, dtype=dtype)
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buffer.madvise(mmap.MADV_HUGEPAGE)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


#: Candidates gathered before their distances are computed (scratch of the search kernel).
_BLOCK = 4096


@njit(cache=True, nogil=True)
def _search_kernel(
    words: np.ndarray,
    starts: np.ndarray,
    widths: np.ndarray,
    bases: np.ndarray,
    order: np.ndarray,
    offsets: np.ndarray,
    query_words: np.ndarray,
    masks: np.ndarray,
    narrow_masks: int,
    narrow: int,
    within: int,
    radius: int,
    first: int,
    last: int,
    chunk_start: int,
    chunk_step: int,
    hit_query: np.ndarray,
    hit_row: np.ndarray,
    hit_dist: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """Search queries ``first .. last - 1`` on chunks ``chunk_start, chunk_start + chunk_step, ...``,
    writing hits into the buffers; stops early, at a query boundary, when the buffers fill.

    Per query the work runs in three passes of independent memory reads, so the processor overlaps
    their cache misses: every probed bucket's bounds, then (in blocks of ``_BLOCK``) the candidate
    rows, then their distances. Returns ``(next query, hits written)``: hits of queries
    ``first .. next - 1``, grouped by query.
    """
    chunks = widths.shape[0]
    n_masks = masks.shape[0]
    capacity = hit_row.shape[0]
    qvalue = np.empty((1, chunks), dtype=np.int64)
    low = np.empty(chunks * n_masks, dtype=np.int64)
    high = np.empty(chunks * n_masks, dtype=np.int64)
    cand_row = np.empty(_BLOCK, dtype=np.int64)
    cand_chunk = np.empty(_BLOCK, dtype=np.int64)
    found = 0
    for q in range(first, last):
        mark = found
        for c in range(chunks):
            qvalue[0, c] = _chunk(query_words, q, starts[c], widths[c])
        # pass 1: the bounds of every probed bucket (their reads started first, then made)
        probes = 0
        for c in range(chunk_start, chunks, chunk_step):
            base = bases[c]
            for p in range(_probes_of(widths, c, narrow, narrow_masks, n_masks)):
                bucket = base + (qvalue[0, c] ^ masks[p])
                prefetch1(offsets, bucket)  # type: ignore[call-arg]
                low[probes] = bucket
                probes += 1
        probes = 0
        for c in range(chunk_start, chunks, chunk_step):
            for _ in range(_probes_of(widths, c, narrow, narrow_masks, n_masks)):
                bucket = low[probes]
                low[probes] = offsets[bucket]
                high[probes] = offsets[bucket + 1]
                if high[probes] > low[probes]:
                    prefetch2(order, c, low[probes])  # type: ignore[call-arg]
                probes += 1
        # pass 2 and 3, block by block: candidate rows, then their distances
        probe, k = 0, np.int64(0)
        c = chunk_start
        per_chunk = _probes_of(widths, c, narrow, narrow_masks, n_masks)
        in_chunk = 0
        if probes > 0:
            k = low[0]
        while probe < probes:
            n_cand = 0
            while probe < probes and n_cand < _BLOCK:
                if k < high[probe]:
                    cand_row[n_cand] = order[c, k]
                    prefetch2(words, cand_row[n_cand], 0)  # type: ignore[call-arg]
                    cand_chunk[n_cand] = c
                    n_cand += 1
                    k += 1
                    continue
                probe += 1
                in_chunk += 1
                if in_chunk == per_chunk:
                    in_chunk = 0
                    c += chunk_step
                    if c < chunks:
                        per_chunk = _probes_of(widths, c, narrow, narrow_masks, n_masks)
                if probe < probes:
                    k = low[probe]
            for i in range(n_cand):
                row = cand_row[i]
                distance = _row_distance(words, row, query_words, q)
                if distance > radius or _seen_before(words, row, starts, widths, qvalue, 0, cand_chunk[i], within):
                    continue
                if found == capacity:  # full: drop this query's hits, resume from it
                    return q, mark
                hit_query[found] = q
                hit_row[found] = row
                hit_dist[found] = distance
                found += 1
    return last, found


@njit(cache=True, nogil=True)
def _batch_kernel(
    words: np.ndarray,
    starts: np.ndarray,
    widths: np.ndarray,
    bases: np.ndarray,
    order: np.ndarray,
    offsets: np.ndarray,
    query_words: np.ndarray,
    masks: np.ndarray,
    narrow_masks: int,
    narrow: int,
    within: int,
    radius: int,
    first: int,
    last: int,
    chunk_start: int,
    chunk_step: int,
    probe_query: np.ndarray,
    counts: np.ndarray,
    hit_query: np.ndarray,
    hit_row: np.ndarray,
    hit_dist: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """Search queries ``first .. last - 1`` together: per chunk, all their probes are sorted by bucket
    (a counting sort into ``probe_query``, ``counts`` of ``2**width + 1``), so each bucket's rows are
    read once for every query of the batch that probes it. Pays when buckets are probed by several
    queries (large batches, chunks of up to 20 bits). Returns the hits written, ``-1`` if the buffers
    filled (the caller retries with fewer queries); hits are not grouped by query."""
    chunks = widths.shape[0]
    n_masks = masks.shape[0]
    capacity = hit_row.shape[0]
    n = last - first
    qvalue = np.empty((n, chunks), dtype=np.int64)
    for i in range(n):
        for c in range(chunks):
            qvalue[i, c] = _chunk(query_words, first + i, starts[c], widths[c])
    found = 0
    for c in range(chunk_start, chunks, chunk_step):
        size = np.int64(1) << widths[c]
        base = bases[c]
        count = _probes_of(widths, c, narrow, narrow_masks, n_masks)
        counts[: size + 1] = 0
        for i in range(n):
            for p in range(count):
                counts[(qvalue[i, c] ^ masks[p]) + 1] += 1
        for b in range(size):
            counts[b + 1] += counts[b]
        for i in range(n):  # counts[b] runs ahead as slots fill; shifted back below
            for p in range(count):
                bucket = qvalue[i, c] ^ masks[p]
                probe_query[counts[bucket]] = i
                counts[bucket] += 1
        for b in range(size - 1, 0, -1):
            counts[b] = counts[b - 1]
        counts[0] = 0
        for bucket in range(size):
            lo, hi = counts[bucket], counts[bucket + 1]
            if lo == hi:
                continue
            start, stop = offsets[base + bucket], offsets[base + bucket + 1]
            for j in range(lo, hi):
                i = probe_query[j]
                q = first + i
                for k in range(start, stop):
                    row = order[c, k]
                    distance = _row_distance(words, row, query_words, q)
                    if distance > radius or _seen_before(words, row, starts, widths, qvalue, i, c, within):
                        continue
                    if found == capacity:
                        return -1
                    hit_query[found] = q
                    hit_row[found] = row
                    hit_dist[found] = distance
                    found += 1
    return found


@njit(cache=True, nogil=True)
def _flat_kernel(
    words: np.ndarray,
    query_columns: np.ndarray,
    radius: int,
    first_row: int,
    last_row: int,
    hit_query: np.ndarray,
    hit_row: np.ndarray,
    hit_dist: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """Flat scan of rows ``first_row .. last_row - 1`` against every query in one pass over the codes:
    each row is read once and compared with all the queries (e.g. a hash's 8 dihedral variants) in
    loops over the queries that the compiler turns into vector instructions (``query_columns`` holds
    the queries' words transposed, ``[word, query]``). Returns ``(next row, hits written)``; stops
    early, at a row boundary, when the buffers could fill."""
    n_words = words.shape[1]
    n_queries = query_columns.shape[1]
    capacity = hit_row.shape[0]
    distance = np.zeros(n_queries, dtype=np.int64)
    found = 0
    for row in range(first_row, last_row):
        if found + n_queries > capacity:
            return row, found
        distance[:] = 0
        for w in range(n_words):
            word = words[row, w]
            for q in range(n_queries):
                distance[q] += popcount64(word ^ query_columns[w, q])
        hit = False
        for q in range(n_queries):
            hit |= distance[q] <= radius
        if not hit:
            continue
        for q in range(n_queries):
            if distance[q] <= radius:
                hit_query[found] = q
                hit_row[found] = row
                hit_dist[found] = distance[q]
                found += 1
    return last_row, found


#: Rows of the flat scan compared with every query while they sit in the processor's cache.
_FLAT_BLOCK = 1024


@njit(cache=True, nogil=True)
def _flat_rows_kernel(
    words: np.ndarray,
    query_words: np.ndarray,
    radius: int,
    first_row: int,
    last_row: int,
    hit_query: np.ndarray,
    hit_row: np.ndarray,
    hit_dist: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """Flat scan for a few queries (fewer than :data:`FLAT_LANES`): the rows are read a block at a
    time and each query is compared with the whole block in a loop over the rows. Returns ``(next row,
    hits written)``; stops early, at a block boundary, when the buffers could fill."""
    n_words = words.shape[1]
    n_queries = query_words.shape[0]
    capacity = hit_row.shape[0]
    distance = np.empty(_FLAT_BLOCK, dtype=np.int64)
    found = 0
    for block in range(first_row, last_row, _FLAT_BLOCK):
        stop = min(block + _FLAT_BLOCK, last_row)
        size = stop - block
        if found + size * n_queries > capacity and found > 0:
            return block, found
        for q in range(n_queries):
            distance[:size] = 0
            for w in range(n_words):
                word = query_words[q, w]
                for i in range(size):
                    distance[i] += popcount64(words[block + i, w] ^ word)
            for i in range(size):
                if distance[i] <= radius:
                    if found == capacity:
                        raise RuntimeError("flat scan: hit buffer smaller than one block of rows")
                    hit_query[found] = q
                    hit_row[found] = block + i
                    hit_dist[found] = distance[i]
                    found += 1
    return last_row, found


#: From this many queries the flat scan compares each row with all of them (vectorised over the
#: queries); below, each query with a block of rows (measured: faster for 1 query, slower for 8).
FLAT_LANES = 8


Result = tuple[np.ndarray, np.ndarray, np.ndarray]


def batch_size(memory: int, jobs: int, width: int, probes: int) -> int:
    """Queries per batch of the batch kernel when ``jobs`` threads share ``memory`` bytes: half of a
    thread's share holds its bucket counts (``8 * (2**width + 1)`` bytes) and the probe list of its
    batch (4 bytes per probe, ``probes`` per query and chunk); 0 when the counts alone do not fit.

    A batch too small to probe each bucket about once saves no reads and pays a pass over every
    bucket count per chunk: the default choice of :meth:`MultiIndex.range_search` leaves batch mode
    alone then (at 20-bit chunks and two threads in 32 MiB a batch had shrunk to one query, and a
    search of 2,000 queries took 38 s instead of 0.3 s).
    """
    counts_bytes = 8 * ((1 << int(width)) + 1)
    room = max(1, int(memory) // max(1, int(jobs))) // 2 - counts_bytes
    return max(0, room // (4 * max(1, int(probes))))


def _buffers(hits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.empty(hits, dtype=np.int32), np.empty(hits, dtype=np.int64), np.empty(hits, dtype=np.int16)


def _grouped(parts: list[Result], n: int) -> Result:
    """``(lims, rows, distances)`` from hit-buffer copies ``(query, row, distance)``, grouped by query
    (stable: each query's hits keep the order they were found in)."""
    if parts:
        owners = np.concatenate([p[0] for p in parts])
        rows = np.concatenate([p[1] for p in parts])
        dists = np.concatenate([p[2] for p in parts]).astype(np.int32)
    else:
        owners, rows, dists = np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int32)
    if owners.size and np.any(owners[1:] < owners[:-1]):
        order = np.argsort(owners, kind="stable")
        owners, rows, dists = owners[order], rows[order], dists[order]
    lims = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owners, minlength=n), out=lims[1:])
    return lims, rows, dists


_POOL: dict[int, ThreadPoolExecutor] = {}  # the search threads by count, started once: starting threads
_POOL_LOCK = threading.Lock()  # for every search cost more than a small batch's search itself
_FORK_HOOK: list[bool] = []  # set once the pool forgets itself in forked children


def _forget_pool() -> None:  # a forked child has none of its parent's threads
    _POOL.clear()


def _pool(size: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        pool = _POOL.get(size)
        if pool is None:
            if not _FORK_HOOK:
                os.register_at_fork(after_in_child=_forget_pool)
                _FORK_HOOK.append(True)
            pool = _POOL[size] = ThreadPoolExecutor(size, thread_name_prefix="matcher-search")
        return pool


def _run_threads(jobs: Sequence[tuple[int, ...]], run: Callable[..., list[Result]]) -> list[list[Result]]:
    """``run(*job)`` of every job, the first in the calling thread and the others on the shared search
    threads (kept between searches)."""
    if len(jobs) == 1:
        return [run(*jobs[0])]
    others = [_pool(len(jobs) - 1).submit(run, *job) for job in jobs[1:]]
    first = run(*jobs[0])
    return [first, *(future.result() for future in others)]


@dataclass(frozen=True, slots=True)
class MultiIndex:
    """The MIH structure over a fixed matrix of codes (uint8 rows, bit length a multiple of 64).

    ``starts`` and ``widths`` give each chunk's first bit and width, ``order[c]`` the rows sorted by
    chunk ``c``'s value, and ``offsets[bases[c] + v]`` where the rows of value ``v`` start in it.
    """

    codes: np.ndarray
    words: np.ndarray
    starts: np.ndarray
    widths: np.ndarray
    bases: np.ndarray
    order: np.ndarray
    offsets: np.ndarray

    @classmethod
    def build(cls, codes: np.ndarray, widths: tuple[int, ...] | None = None, threads: int | None = None) -> MultiIndex:
        """Sort the rows of ``codes`` by each chunk (a counting sort per chunk, chunks shared out over
        up to ``threads`` threads for large tables); ``widths`` default to :func:`chunk_widths` for the
        number of codes."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or codes.shape[1] % 8 or codes.shape[1] == 0:
            raise ValueError(f"MIH needs rows of a multiple of 64 bits, got shape {codes.shape}")
        if codes.shape[0] >= 2**31 - 1:
            raise ValueError(f"MIH holds fewer than 2**31 codes, not {codes.shape[0]}")
        bit_length = codes.shape[1] * 8
        widths = tuple(widths) if widths is not None else chunk_widths(codes.shape[0], bit_length)
        if (
            sum(widths) != bit_length
            or not all(1 <= w <= MAX_CHUNK_BITS for w in widths)
            or max(widths) - min(widths) > 1
            or list(widths) != sorted(widths, reverse=True)
        ):
            raise ValueError(f"chunk widths {widths} do not cut {bit_length} bits in near-equal parts, wider first")
        width_array = np.array(widths, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(width_array)[:-1]]).astype(np.int64)
        sizes = (np.int64(1) << width_array) + 1
        bases = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        words = codes.view(np.uint64)
        order = _large_array((len(widths), codes.shape[0]), np.int32)
        offsets = _large_array((int(sizes.sum()),), np.int32)
        threads = max(1, min(threads or os.cpu_count() or 1, len(widths), codes.shape[0] // 100_000))

        def run(chunk_start: int) -> list[Result]:
            _build(words, starts, width_array, bases, order, offsets, chunk_start, threads)
            return []

        _run_threads([(t,) for t in range(threads)], run)
        order.flags.writeable = False
        offsets.flags.writeable = False
        return cls(codes, words, starts, width_array, bases, order, offsets)

    @classmethod
    def from_arrays(
        cls, codes: np.ndarray, widths: Sequence[int], order: np.ndarray, offsets: np.ndarray
    ) -> MultiIndex:
        """The structure from arrays a previous :meth:`build` made (``widths``, ``order``, ``offsets``),
        e.g. saved beside the codes and loaded with ``np.load(..., mmap_mode="r")`` so that worker
        processes share one copy through the page cache instead of each building its own."""
        codes = np.asarray(codes)
        width_array = np.array([int(w) for w in widths], dtype=np.int64)
        if codes.ndim != 2 or codes.dtype != np.uint8 or codes.shape[1] % 8 or not codes.flags.c_contiguous:
            raise ValueError(f"codes must be C-contiguous uint8 rows of a multiple of 64 bits, got {codes.shape}")
        sizes = (np.int64(1) << width_array) + 1
        if (
            int(width_array.sum()) != codes.shape[1] * 8
            or order.shape != (width_array.shape[0], codes.shape[0])
            or order.dtype != np.int32
            or offsets.dtype != np.int32
            or offsets.shape != (int(sizes.sum()),)
        ):
            raise ValueError("MIH arrays do not match the codes and chunk widths")
        starts = np.concatenate([[0], np.cumsum(width_array)[:-1]]).astype(np.int64)
        bases = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        return cls(codes, codes.view(np.uint64), starts, width_array, bases, order, offsets)

    @property
    def chunks(self) -> int:
        """Number of chunks."""
        return int(self.widths.shape[0])

    @property
    def count(self) -> int:
        """Number of codes."""
        return int(self.codes.shape[0])

    def beats_flat(self, max_distance: int) -> bool:
        """Whether this structure answers ``max_distance`` faster than a flat scan (:func:`beats_flat`)."""
        return beats_flat(self.count, tuple(int(w) for w in self.widths), int(max_distance))

    @property
    def nbytes(self) -> int:
        """Memory of the structure beyond the codes themselves."""
        return int(self.order.nbytes + self.offsets.nbytes)

    def range_search(
        self,
        queries: np.ndarray,
        max_distance: int,
        threads: int | None = None,
        memory: int = SEARCH_MEMORY,
        batched: bool | None = None,
    ) -> Result:
        """Every row within ``max_distance`` (``<=``) of each query row: ``(lims, rows, distances)``,
        in the layout of FAISS's ``range_search`` (rows of query ``i`` are ``rows[lims[i]:lims[i+1]]``).

        Two kernels give the same answer: one query at a time (three passes of prefetched reads), or
        ``batched``, the whole batch per chunk with its probes sorted by bucket so a bucket is read once
        for all the queries probing it; by default the batch kernel when each bucket is probed about
        :data:`BATCH_SHARING` times or more by the batch (large batches over small tables).
        Up to ``threads`` threads (default: the CPU count, fewer for little work) share out the
        queries or the chunks; the kernels release the GIL. Working memory beyond the queries and
        the answer is at most ``memory`` bytes (see the module's notes).
        """
        queries = np.ascontiguousarray(queries, dtype=np.uint8)
        if queries.ndim != 2 or queries.shape[1] != self.codes.shape[1]:
            raise ValueError(f"queries must have {self.codes.shape[1]} bytes per row, got shape {queries.shape}")
        n = queries.shape[0]
        radius = int(max_distance)
        if n == 0 or radius < 0:
            return np.zeros(n + 1, dtype=np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32)
        within = radius // self.chunks
        wide, narrow = int(self.widths.max()), int(self.widths.min())
        if _probes(wide, within) > MAX_PROBES:  # so wide a radius that probing would cost more than a scan
            return flat_range_search(self.codes, queries, radius, threads, memory)
        masks, narrow_masks = _masks(wide, narrow, min(within, wide))
        query_words = queries.view(np.uint64)
        # threads only for work worth more than starting them (about a millisecond a thread)
        widths = tuple(int(w) for w in self.widths)
        work = n * _cost(self.count, widths, radius)
        threads = max(1, min(threads or os.cpu_count() or 1, int(work // THREAD_WORK)))
        step = min(threads, self.chunks)
        if batched is None:  # batch mode when a bucket is probed by about one query of a batch or more
            buckets = sum(1 << w for w in widths)
            per_batch = min(n, batch_size(memory, step, wide, masks.shape[0]))
            batched = (
                wide <= BATCH_MAX_BITS
                and per_batch * expected_cost(self.count, widths, radius)[0] >= BATCH_SHARING * buckets
            )
        elif batched and wide > BATCH_MAX_BITS:
            raise ValueError(f"batch mode needs chunks of at most {BATCH_MAX_BITS} bits, these have {wide}")
        if batched:
            jobs = [(0, n, t, step) for t in range(step)]  # threads share out the chunks
        elif n >= threads:  # share out the queries: each thread's hits come out grouped by query
            bounds = np.linspace(0, n, threads + 1).astype(int)
            jobs = [(int(a), int(b), 0, 1) for a, b in itertools.pairwise(bounds)]
        else:  # few queries: share out the chunks
            jobs = [(0, n, t, min(threads, self.chunks)) for t in range(min(threads, self.chunks))]
        share = max(1, int(memory) // len(jobs))
        if batched:  # half the share for the probe lists and bucket counts, half for hits
            per_batch = max(1, batch_size(memory, len(jobs), wide, masks.shape[0]))
            per_thread = max(1, share // 2 // HIT_BYTES)
        else:
            per_thread = max(1, share // HIT_BYTES)

        def run(first: int, last: int, chunk_start: int, chunk_step: int) -> list[Result]:
            capacity = per_thread
            hit_query, hit_row, hit_dist = _buffers(capacity)
            out: list[Result] = []
            if batched:
                size = per_batch
                probe_query = np.empty(min(n, size) * masks.shape[0], dtype=np.int32)
                counts = np.empty((1 << wide) + 1, dtype=np.int64)
            while first < last:
                if batched:
                    stop = min(last, first + size)
                    found = _batch_kernel(
                        self.words,
                        self.starts,
                        self.widths,
                        self.bases,
                        self.order,
                        self.offsets,
                        query_words,
                        masks,
                        narrow_masks,
                        narrow,
                        within,
                        radius,
                        first,
                        stop,
                        chunk_start,
                        chunk_step,
                        probe_query,
                        counts,
                        hit_query,
                        hit_row,
                        hit_dist,
                    )
                    if found < 0:  # too many hits for the buffers: fewer queries, or (one query) more room
                        if stop - first > 1:
                            size = max(1, (stop - first) // 2)
                        else:
                            capacity *= 2
                            hit_query, hit_row, hit_dist = _buffers(capacity)
                        continue
                    nxt = stop
                else:
                    nxt, found = _search_kernel(
                        self.words,
                        self.starts,
                        self.widths,
                        self.bases,
                        self.order,
                        self.offsets,
                        query_words,
                        masks,
                        narrow_masks,
                        narrow,
                        within,
                        radius,
                        first,
                        last,
                        chunk_start,
                        chunk_step,
                        hit_query,
                        hit_row,
                        hit_dist,
                    )
                    if nxt == first:  # one query's answer alone is larger than the buffers: grow them
                        capacity *= 2
                        hit_query, hit_row, hit_dist = _buffers(capacity)
                        continue
                out.append((hit_query[:found].copy(), hit_row[:found].copy(), hit_dist[:found].copy()))
                first = nxt
            return out

        parts = [p for thread_parts in _run_threads(jobs, run) for p in thread_parts]
        return _grouped(parts, n)


def flat_range_search(
    codes: np.ndarray, queries: np.ndarray, max_distance: int, threads: int | None = None, memory: int = SEARCH_MEMORY
) -> Result:
    """Every row of ``codes`` within ``max_distance`` of each query, by one pass over the codes that
    compares each row with all the queries (a numba kernel; ``codes`` may be a read-only memory map).
    Same layout as :meth:`MultiIndex.range_search`; rows of a query in ascending order."""
    codes = np.asarray(codes)
    queries = np.ascontiguousarray(queries, dtype=np.uint8)
    if (
        codes.ndim != 2
        or codes.dtype != np.uint8
        or codes.shape[1] % 8
        or queries.ndim != 2
        or queries.shape[1] != codes.shape[1]
    ):
        raise ValueError(
            f"codes {codes.shape} and queries {queries.shape} must be uint8 rows of one multiple of 64 bits"
        )
    n = queries.shape[0]
    radius = int(max_distance)
    if n == 0 or radius < 0 or codes.shape[0] == 0:
        return np.zeros(n + 1, dtype=np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32)
    words = codes.view(np.uint64) if codes.flags.c_contiguous else np.ascontiguousarray(codes).view(np.uint64)
    threads = max(1, min(threads or os.cpu_count() or 1, max(1, codes.shape[0] // 65536)))
    bounds = np.linspace(0, codes.shape[0], threads + 1).astype(np.int64)
    if n < FLAT_LANES:
        per_thread = max(n * _FLAT_BLOCK, int(memory) // HIT_BYTES // threads)
        group = n
    else:
        per_thread = max(n, int(memory) // HIT_BYTES // threads)
        group = max(1, min(n, per_thread // 64))  # queries per pass over the codes

    def run(first: int, last: int) -> list[Result]:
        hit_query, hit_row, hit_dist = _buffers(per_thread)
        out: list[Result] = []
        for q0 in range(0, n, group):
            part = queries[q0 : q0 + group]
            columns = np.ascontiguousarray(part.view(np.uint64).T)
            row = first
            while row < last:
                if n < FLAT_LANES:
                    row, found = _flat_rows_kernel(
                        words, part.view(np.uint64), radius, row, last, hit_query, hit_row, hit_dist
                    )
                else:
                    row, found = _flat_kernel(words, columns, radius, row, last, hit_query, hit_row, hit_dist)
                out.append(((hit_query[:found] + q0).astype(np.int32), hit_row[:found].copy(), hit_dist[:found].copy()))
        return out

    jobs = [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    parts = [p for thread_parts in _run_threads(jobs, run) for p in thread_parts]
    return _grouped(parts, n)
