"""The numba kernels of :mod:`matcher.index.descriptors` (imported on first use: numba is heavy)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["assign", "search", "two_nearest"]


@njit(cache=True, nogil=True, inline="always")
def _pop(x: np.uint64) -> np.int64:  # pragma: no cover - compiled
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True, nogil=True, inline="always")
def _dist(a: np.ndarray, i: int, b: np.ndarray, j: int) -> np.int64:  # pragma: no cover - compiled
    d = np.int64(0)
    for w in range(4):
        d += _pop(a[i, w] ^ b[j, w])
    return d


@njit(cache=True, nogil=True)
def _nearest_centres(
    words: np.ndarray, row: int, centres: np.ndarray, start: int, count: int, take: int, out: np.ndarray
) -> int:  # pragma: no cover - compiled
    """The ``take`` nearest of ``count`` centres from ``start`` (indices relative to ``start``) into ``out``."""
    best_d = np.full(take, 1 << 30, np.int64)
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
        _nearest_centres(words, row, centres, 0, branch, 1, one)
        top = one[0]
        _nearest_centres(words, row, centres, branch + top * branch, branch, 1, one)
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
    """Each query's ``k`` nearest rows within ``max_distance`` among the probed cells, into ``out_d``/``out_o``."""
    tops = np.zeros(probe1, np.int64)
    subs = np.zeros(probe2, np.int64)
    for q in range(queries.shape[0]):
        n_top = _nearest_centres(queries, q, centres, 0, branch, probe1, tops)
        held = 0
        for t in range(n_top):
            n_sub = _nearest_centres(queries, q, centres, branch + tops[t] * branch, branch, probe2, subs)
            for s in range(n_sub):
                cell = tops[t] * branch + subs[s]
                for row in range(offsets[cell], offsets[cell + 1]):
                    d = _dist(queries, q, words, row)
                    if d > max_distance:
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


@njit(cache=True, nogil=True)
def two_nearest(
    queries: np.ndarray, train: np.ndarray, out_d: np.ndarray, out_i: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Each query's nearest and second nearest distance among ``train`` (uint64 words) into ``out_d``
    ``(n, 2)``, and the nearest's row (the first among equals) into ``out_i``."""
    for q in range(queries.shape[0]):
        first = np.int64(1 << 30)
        second = np.int64(1 << 30)
        best = -1
        for row in range(train.shape[0]):
            d = _dist(queries, q, train, row)
            if d < first:
                second = first
                first = d
                best = row
            elif d < second:
                second = d
        out_d[q, 0] = first
        out_d[q, 1] = second
        out_i[q] = best
