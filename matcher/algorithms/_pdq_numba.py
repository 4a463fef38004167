"""Native (numba-compiled) kernels of PDQ's hot loops, with the reference's exact float32 arithmetic.

The same computations as the numpy code in :mod:`matcher.algorithms.pdq`, operation for operation:
a running float32 sum per line for the box filters, sequential float32 sums for the DCT, and luma in
double rounded to float32. numba compiles them on first use (and caches the machine code beside this
file when it can write there); :mod:`~matcher.algorithms.pdq` falls back to numpy without numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["luma", "box_along_rows", "box_along_columns", "dct_16"]


@njit(cache=True, nogil=True)
def luma(rgb: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Luma of an HxWx3 uint8 array: 0.299 R + 0.587 G + 0.114 B in double, stored as float32."""
    rows, cols = rgb.shape[0], rgb.shape[1]
    out = np.empty((rows, cols), dtype=np.float32)
    for i in range(rows):
        for j in range(cols):
            out[i, j] = np.float32(
                np.float64(rgb[i, j, 0]) * 0.299 + np.float64(rgb[i, j, 1]) * 0.587 + np.float64(rgb[i, j, 2]) * 0.114
            )
    return out


@njit(cache=True, nogil=True)
def box_along_rows(src: np.ndarray, window: int) -> np.ndarray:  # pragma: no cover - compiled
    """The reference's 1-D box filter along every row of a float32 matrix."""
    rows, length = src.shape
    half = (window + 2) // 2
    out = np.empty_like(src)
    for i in range(rows):
        total = np.float32(0.0)
        right = 0
        for _ in range(half - 1):
            total += src[i, right]
            right += 1
        count = half - 1
        o = 0
        for _ in range(window - half + 1):
            total += src[i, right]
            right += 1
            count += 1
            out[i, o] = total / np.float32(count)
            o += 1
        left = 0
        divisor = np.float32(count)
        for _ in range(length - window):
            total += src[i, right]
            total -= src[i, left]
            right += 1
            left += 1
            out[i, o] = total / divisor
            o += 1
        for _ in range(half - 1):
            total -= src[i, left]
            left += 1
            count -= 1
            out[i, o] = total / np.float32(count)
            o += 1
    return out


@njit(cache=True, nogil=True)
def box_along_columns(src: np.ndarray, window: int) -> np.ndarray:  # pragma: no cover - compiled
    """The reference's 1-D box filter down every column, row by row so memory is read in order."""
    length, cols = src.shape
    half = (window + 2) // 2
    out = np.empty_like(src)
    total = np.zeros(cols, dtype=np.float32)
    right = 0
    for _ in range(half - 1):
        for j in range(cols):
            total[j] += src[right, j]
        right += 1
    count = half - 1
    o = 0
    for _ in range(window - half + 1):
        count += 1
        divisor = np.float32(count)
        for j in range(cols):
            total[j] += src[right, j]
            out[o, j] = total[j] / divisor
        right += 1
        o += 1
    left = 0
    divisor = np.float32(count)
    for _ in range(length - window):
        for j in range(cols):
            total[j] += src[right, j]
            total[j] -= src[left, j]
            out[o, j] = total[j] / divisor
        right += 1
        left += 1
        o += 1
    for _ in range(half - 1):
        count -= 1
        divisor = np.float32(count)
        for j in range(cols):
            total[j] -= src[left, j]
            out[o, j] = total[j] / divisor
        left += 1
        o += 1
    return out


@njit(cache=True, nogil=True)
def dct_16(a: np.ndarray, d: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """B = D A D^T with sequential float32 sums over k = 0..63, as the reference."""
    t = np.zeros((16, 64), dtype=np.float32)
    for i in range(16):
        for j in range(64):
            s = np.float32(0.0)
            for k in range(64):
                s += d[i, k] * a[k, j]
            t[i, j] = s
    b = np.zeros((16, 16), dtype=np.float32)
    for i in range(16):
        for j in range(16):
            s = np.float32(0.0)
            for k in range(64):
                s += t[i, k] * d[j, k]
            b[i, j] = s
    return b
