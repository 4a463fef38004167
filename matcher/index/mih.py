"""Exact multi-index hashing (MIH) for Hamming range search, with native (numba) kernels.

The codes are cut into ``m`` chunks of 16 bits. If a code is within distance ``r`` of a query, then by
the pigeonhole principle at least one chunk differs from the query's chunk in at most ``s = r // m``
bits. So, per chunk, probing the bucket of the query's chunk value and of every value within ``s``
bits of it finds every match; only those candidates get a full distance. A candidate is counted in
the first chunk that finds it only (it is skipped in a later chunk when an earlier one was within
``s`` bits), so no set is needed to drop duplicates.

Per chunk the structure holds the row order sorted by chunk value (int32, one per code) and the
bucket offsets (65,537 int64): for 256-bit PDQ (16 chunks) 64 bytes per code, twice the codes
themselves; for 64-bit hashes (4 chunks) 16 bytes per code, also twice.

When it pays (see :func:`worthwhile`): the expected candidates per query, ``m * P(s) * N / 65536``
with ``P(s)`` the number of 16-bit values within ``s`` bits, must be well under ``N`` (a quarter), and
``N`` large enough (:data:`MIN_CODES`) that a flat scan is not already as fast. PDQ at distance 31
probes 16 x 17 buckets: about 0.4% of the codes are candidates when bits are uniform.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["MultiIndex", "worthwhile", "MIN_CODES", "CHUNK_BITS"]

CHUNK_BITS = 16
_BUCKETS = 1 << CHUNK_BITS
#: Below this many codes the flat (FAISS) scan is used: it is as fast and needs no structure.
MIN_CODES = 20_000
#: Largest share of the codes that may be candidates for MIH to be chosen.
MAX_CANDIDATE_SHARE = 0.25


def _probes(bits: int, within: int) -> int:
    return sum(math.comb(bits, i) for i in range(within + 1))


def worthwhile(count: int, bit_length: int, max_distance: int) -> bool:
    """Whether MIH beats a flat scan for ``count`` codes of ``bit_length`` bits at ``max_distance``."""
    if count < MIN_CODES or bit_length % CHUNK_BITS or max_distance < 0:
        return False
    chunks = bit_length // CHUNK_BITS
    within = max_distance // chunks
    expected = chunks * _probes(CHUNK_BITS, within) * count / _BUCKETS
    return expected <= MAX_CANDIDATE_SHARE * count


def _masks(within: int) -> np.ndarray:
    """Every 16-bit value with at most ``within`` bits set, fewest bits first."""
    values = np.arange(_BUCKETS, dtype=np.uint32)
    weights = np.bitwise_count(values) if hasattr(np, "bitwise_count") else np.array([bin(v).count("1") for v in values])
    keep = values[weights <= within]
    return keep[np.argsort(weights[keep], kind="stable")].astype(np.int64)


@njit(cache=True, nogil=True)
def _build(codes: np.ndarray, chunks: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Counting sort of the rows by each chunk value: (order[chunk, n] int32, offsets[chunk, 65537] int64)."""
    n = codes.shape[0]
    order = np.empty((chunks, n), dtype=np.int32)
    offsets = np.zeros((chunks, _BUCKETS + 1), dtype=np.int64)
    for c in range(chunks):
        for row in range(n):
            value = (np.int64(codes[row, 2 * c]) << 8) | np.int64(codes[row, 2 * c + 1])
            offsets[c, value + 1] += 1
        for v in range(_BUCKETS):
            offsets[c, v + 1] += offsets[c, v]
        fill = offsets[c, :_BUCKETS].copy()
        for row in range(n):
            value = (np.int64(codes[row, 2 * c]) << 8) | np.int64(codes[row, 2 * c + 1])
            order[c, fill[value]] = row
            fill[value] += 1
    return order, offsets


@intrinsic
def _ctpop(typingctx, x):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """LLVM's population count (one POPCNT instruction where the CPU has it)."""
    signature = types.uint64(types.uint64)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.ctpop(args[0])

    return signature, codegen


@njit(cache=True, nogil=True, inline="always")
def _popcount64(x: np.uint64) -> np.int64:  # pragma: no cover - compiled
    return np.int64(_ctpop(np.uint64(x)))


@njit(cache=True, nogil=True)
def _range_search_kernel(
    codes: np.ndarray,
    words: np.ndarray,
    order: np.ndarray,
    offsets: np.ndarray,
    queries: np.ndarray,
    query_words: np.ndarray,
    masks: np.ndarray,
    within: int,
    radius: int,
    chunk_start: int,
    chunk_step: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Range search: per query every row within ``radius``, as (lims, rows, distances).

    All (bucket, query) probes of a chunk are sorted by bucket first, so the rows of a bucket are
    read from memory once for every query that probes it instead of once per query. Only chunks
    ``chunk_start, chunk_start + chunk_step, ...`` are probed (threads share the chunks out, each
    with the whole batch); a row is still reported by the first chunk that finds it only.
    """
    chunks = order.shape[0]
    n_words = words.shape[1]
    n_queries = queries.shape[0]
    n_masks = masks.shape[0]
    qchunk = np.empty((n_queries, chunks), dtype=np.int64)
    for q in range(n_queries):
        for c in range(chunks):
            qchunk[q, c] = (np.int64(queries[q, 2 * c]) << 8) | np.int64(queries[q, 2 * c + 1])
    capacity = 1024
    hit_query = np.empty(capacity, dtype=np.int64)
    hit_row = np.empty(capacity, dtype=np.int64)
    hit_dist = np.empty(capacity, dtype=np.int32)
    found = 0
    counts = np.zeros(_BUCKETS + 1, dtype=np.int64)
    probe_query = np.empty(n_queries * n_masks, dtype=np.int64)
    for c in range(chunk_start, chunks, chunk_step):
        counts[:] = 0
        for q in range(n_queries):
            for p in range(n_masks):
                counts[(qchunk[q, c] ^ masks[p]) + 1] += 1
        for b in range(_BUCKETS):
            counts[b + 1] += counts[b]
        fill = counts[:_BUCKETS].copy()
        for q in range(n_queries):
            for p in range(n_masks):
                bucket = qchunk[q, c] ^ masks[p]
                probe_query[fill[bucket]] = q
                fill[bucket] += 1
        for bucket in range(_BUCKETS):
            start, stop = offsets[c, bucket], offsets[c, bucket + 1]
            if start == stop:
                continue
            for i in range(counts[bucket], counts[bucket + 1]):
                q = probe_query[i]
                for k in range(start, stop):
                    row = order[c, k]
                    distance = 0
                    for w in range(n_words):
                        distance += _popcount64(words[row, w] ^ query_words[q, w])
                    if distance > radius:
                        continue
                    seen = False
                    for e in range(c):  # found by an earlier chunk already?
                        value = (np.int64(codes[row, 2 * e]) << 8) | np.int64(codes[row, 2 * e + 1])
                        if _popcount64(np.uint64(value ^ qchunk[q, e])) <= within:
                            seen = True
                            break
                    if seen:
                        continue
                    if found == capacity:
                        capacity *= 2
                        grown_q = np.empty(capacity, dtype=np.int64)
                        grown_r = np.empty(capacity, dtype=np.int64)
                        grown_d = np.empty(capacity, dtype=np.int32)
                        grown_q[:found] = hit_query[:found]
                        grown_r[:found] = hit_row[:found]
                        grown_d[:found] = hit_dist[:found]
                        hit_query, hit_row, hit_dist = grown_q, grown_r, grown_d
                    hit_query[found] = q
                    hit_row[found] = row
                    hit_dist[found] = distance
                    found += 1
    lims = np.zeros(n_queries + 1, dtype=np.int64)
    for i in range(found):
        lims[hit_query[i] + 1] += 1
    for q in range(n_queries):
        lims[q + 1] += lims[q]
    place = lims[:n_queries].copy()
    rows = np.empty(found, dtype=np.int64)
    dists = np.empty(found, dtype=np.int32)
    for i in range(found):
        q = hit_query[i]
        rows[place[q]] = hit_row[i]
        dists[place[q]] = hit_dist[i]
        place[q] += 1
    return lims, rows, dists


@dataclass(frozen=True, slots=True)
class MultiIndex:
    """The MIH structure over a fixed matrix of codes (uint8 rows, bit length a multiple of 16)."""

    codes: np.ndarray
    words: np.ndarray
    order: np.ndarray
    offsets: np.ndarray

    @classmethod
    def build(cls, codes: np.ndarray) -> MultiIndex:
        """Sort the rows of ``codes`` by each 16-bit chunk (a counting sort per chunk)."""
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or (codes.shape[1] * 8) % CHUNK_BITS or codes.shape[1] % 8:
            raise ValueError(f"MIH needs rows of a multiple of 64 bits, got shape {codes.shape}")
        order, offsets = _build(codes, codes.shape[1] * 8 // CHUNK_BITS)
        return cls(codes, codes.view(np.uint64), order, offsets)

    @property
    def chunks(self) -> int:
        """Number of 16-bit chunks."""
        return int(self.order.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory of the structure beyond the codes themselves."""
        return int(self.order.nbytes + self.offsets.nbytes)

    def range_search(self, queries: np.ndarray, max_distance: int, threads: int | None = None):
        """Every row within ``max_distance`` (``<=``) of each query row: ``(lims, rows, distances)``,
        in the layout of FAISS's ``range_search`` (rows of query ``i`` are ``rows[lims[i]:lims[i+1]]``).

        The chunks are shared out across ``threads`` threads (default: the CPU count), each probing
        its chunks for the whole batch; the kernel releases the GIL.
        """
        queries = np.ascontiguousarray(queries, dtype=np.uint8)
        if queries.ndim != 2 or queries.shape[1] != self.codes.shape[1]:
            raise ValueError(f"queries must have {self.codes.shape[1]} bytes per row, got shape {queries.shape}")
        within = int(max_distance) // self.chunks
        masks = _masks(within)
        query_words = queries.view(np.uint64)
        n = queries.shape[0]
        threads = max(1, threads or os.cpu_count() or 1)

        # Threads share out the chunks; each probes its chunks for the whole batch, so a bucket's rows
        # are read once for every query of the batch that probes it.
        threads = max(1, min(threads, self.chunks))

        def run(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return _range_search_kernel(self.codes, self.words, self.order, self.offsets, queries, query_words,
                                   masks, within, int(max_distance), start, threads)

        if threads == 1:
            return run(0)
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(run, range(threads)))
        return _merge(parts, n)


def _merge(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge per-thread results (each grouped by query) into one result grouped by query."""
    owners = np.concatenate([np.repeat(np.arange(n), np.diff(lims)) for lims, _, _ in parts])
    rows = np.concatenate([p[1] for p in parts])
    dists = np.concatenate([p[2] for p in parts])
    order = np.argsort(owners, kind="stable")
    lims = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owners, minlength=n), out=lims[1:])
    return lims, rows[order], dists[order]
