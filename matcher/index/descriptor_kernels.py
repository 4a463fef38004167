"""The numba kernels of :mod:`matcher.index.descriptors` (imported on first use: numba is heavy)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .native import popcount64, prefetch2

__all__ = ["assign", "search", "two_nearest"]


#: Search: how many (voter, cell) probes ahead the next cells' first rows are prefetched, and how
#: many cache lines of each (measured at 100,000 known images: 20 % off the search's time).
PREFETCH_AHEAD = 2
PREFETCH_LINES = 32


@njit(cache=True, nogil=True, inline="always")
def _dist(a: np.ndarray, i: int, b: np.ndarray, j: int) -> np.int64:  # pragma: no cover - compiled
    return (
        popcount64(a[i, 0] ^ b[j, 0])
        + popcount64(a[i, 1] ^ b[j, 1])
        + popcount64(a[i, 2] ^ b[j, 2])
        + popcount64(a[i, 3] ^ b[j, 3])
    )


@njit(cache=True, nogil=True)
def _nearest_centres(
    words: np.ndarray,
    row: int,
    centres: np.ndarray,
    start: int,
    count: int,
    take: int,
    out: np.ndarray,
    best_d: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """The ``take`` nearest of ``count`` centres from ``start`` (indices relative to ``start``) into ``out``,
    nearest first (the lower index among equals); ``best_d`` is scratch of at least ``take``."""
    n = 0
    for c in range(count):
        d = _dist(words, row, centres, start + c)
        if n < take:
            pos = n
            n += 1
        elif d < best_d[take - 1]:
            pos = take - 1
        else:
            continue
        while pos > 0 and best_d[pos - 1] > d:
            best_d[pos] = best_d[pos - 1]
            out[pos] = out[pos - 1]
            pos -= 1
        best_d[pos] = d
        out[pos] = c
    return n


@njit(cache=True, nogil=True, parallel=True)
def assign(words: np.ndarray, centres: np.ndarray, branch: int) -> np.ndarray:  # pragma: no cover - compiled
    """The leaf cell of each row of ``words`` (uint64 ``(n, 4)``) under ``centres`` (uint64 words)."""
    cells = np.empty(words.shape[0], np.int64)
    for row in prange(words.shape[0]):
        one = np.zeros(1, np.int64)
        scratch = np.zeros(1, np.int64)
        _nearest_centres(words, row, centres, 0, branch, 1, one, scratch)
        top = one[0]
        _nearest_centres(words, row, centres, branch + top * branch, branch, 1, one, scratch)
        cells[row] = top * branch + one[0]
    return cells


@njit(cache=True, nogil=True)
def search(
    queries: np.ndarray,
    centres: np.ndarray,
    branch: int,
    offsets: np.ndarray,
    words: np.ndarray,
    owners: np.ndarray,
    probe1: int,
    probe2: int,
    k: int,
    max_distance: int,
    out_d: np.ndarray,
    out_o: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Each query's ``k`` nearest rows within ``max_distance`` among the probed cells, into ``out_d``/``out_o``
    (nearest first; among equal distances, the row met first: cells in probe order, rows in order).

    Two passes: every query's cells first (the centres), then the cells' rows, the next cells' first
    rows prefetched while a cell is scanned (the rows are a memory-bound, random read of the table),
    each cell's distances computed in one tight loop before the few that qualify are ranked."""
    n = queries.shape[0]
    probes = probe1 * probe2
    tops = np.zeros(probe1, np.int64)
    subs = np.zeros(probe2, np.int64)
    scratch = np.zeros(max(probe1, probe2), np.int64)
    cells = np.full(n * probes, -1, np.int64)
    for q in range(n):
        n_top = _nearest_centres(queries, q, centres, 0, branch, probe1, tops, scratch)
        for t in range(n_top):
            n_sub = _nearest_centres(queries, q, centres, branch + tops[t] * branch, branch, probe2, subs, scratch)
            for s in range(n_sub):
                cells[q * probes + t * probe2 + s] = tops[t] * branch + subs[s]
    largest = 0
    for c in range(offsets.shape[0] - 1):
        largest = max(largest, offsets[c + 1] - offsets[c])
    distances = np.empty(largest, np.int64)
    total = n * probes
    for i in range(-PREFETCH_AHEAD, total):
        ahead = i + PREFETCH_AHEAD
        if ahead < total and cells[ahead] >= 0:
            first = offsets[cells[ahead]]
            for row in range(first, min(offsets[cells[ahead] + 1], first + 2 * PREFETCH_LINES), 2):
                prefetch2(words, row, 0)  # type: ignore[call-arg]
        if i < 0:
            continue
        q = i // probes
        if i % probes == 0:  # a new query
            held = 0
            limit = max_distance
        if cells[i] < 0:  # fewer centres than probes
            continue
        lo = offsets[cells[i]]
        hi = offsets[cells[i] + 1]
        q0, q1, q2, q3 = queries[q, 0], queries[q, 1], queries[q, 2], queries[q, 3]
        for row in range(lo, hi):
            distances[row - lo] = (
                popcount64(q0 ^ words[row, 0])
                + popcount64(q1 ^ words[row, 1])
                + popcount64(q2 ^ words[row, 2])
                + popcount64(q3 ^ words[row, 3])
            )
        for row in range(lo, hi):
            d = distances[row - lo]
            if d > limit:
                continue
            if held < k:
                pos = held
                held += 1
            elif d < out_d[q, k - 1]:
                pos = k - 1
            else:
                continue
            while pos > 0 and out_d[q, pos - 1] > d:
                out_d[q, pos] = out_d[q, pos - 1]
                out_o[q, pos] = out_o[q, pos - 1]
                pos -= 1
            out_d[q, pos] = d
            out_o[q, pos] = owners[row]
            if held == k and out_d[q, k - 1] < limit:
                limit = out_d[q, k - 1]


@njit(cache=True, nogil=True)
def two_nearest(
    queries: np.ndarray, columns: np.ndarray, out_d: np.ndarray, out_i: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Each query's nearest and second nearest distance among the train descriptors, given as
    ``columns`` (``uint64`` ``(4, n)``: word ``w`` of every train descriptor in row ``w``, so the
    distances to all of them are one loop the compiler vectorises), into ``out_d`` ``(q, 2)``, and
    the nearest's row (the first among equals) into ``out_i``."""
    n = columns.shape[1]
    c0, c1, c2, c3 = columns[0], columns[1], columns[2], columns[3]
    distances = np.empty(n, np.int64)
    for q in range(queries.shape[0]):
        q0, q1, q2, q3 = queries[q, 0], queries[q, 1], queries[q, 2], queries[q, 3]
        for row in range(n):
            distances[row] = (
                popcount64(q0 ^ c0[row])
                + popcount64(q1 ^ c1[row])
                + popcount64(q2 ^ c2[row])
                + popcount64(q3 ^ c3[row])
            )
        first = np.int64(1 << 30)
        for row in range(n):
            first = min(first, distances[row])
        best = 0
        while distances[best] != first:
            best += 1
        second = np.int64(1 << 30)
        for row in range(n):
            if row != best:
                second = min(second, distances[row])
        out_d[q, 0] = first
        out_d[q, 1] = second
        out_i[q] = best
