"""The memory allocator's settings for processes that hash frames (pool workers, the command line).

Its own module, with nothing but ``os`` and ``ctypes`` behind it, so that the command line can call
:func:`tune_allocator` for every command without paying for the pool machinery at start-up.
"""

from __future__ import annotations

import os

__all__ = ["ALLOCATOR_MMAP_THRESHOLD", "ALLOCATOR_TRIM_THRESHOLD", "tune_allocator", "allocator_tuned"]

#: glibc's ``mallopt`` parameters (``<malloc.h>``): the size from which blocks are mapped
#: (``M_MMAP_THRESHOLD``) and the free memory kept before it is returned (``M_TRIM_THRESHOLD``).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap and are reused; larger ones (a big frame) are mapped.
ALLOCATOR_MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free heap memory kept for reuse before it is returned to the system.
ALLOCATOR_TRIM_THRESHOLD = 64 * 1024 * 1024

_tuned = False  # whether tune_allocator set the thresholds in this process


def allocator_tuned() -> bool:
    """Whether :func:`tune_allocator` has set this process's allocator thresholds."""
    return _tuned


def tune_allocator() -> bool:
    """Fix glibc's allocator thresholds for this process (a hashing worker, or the command line);
    ``True`` if set (glibc only; elsewhere nothing happens).

    Hashing a frame allocates and frees arrays of a few MB many times. glibc adjusts its mapping
    threshold from what was freed before, so after some allocation patterns (opening an index is one)
    every such array became a fresh mapping, zero-filled page by page: measured 9.7 -> 13.4 ms of
    CPU per 640x480 entry in a scan worker, which made two workers no faster than one process. Fixed
    thresholds keep those arrays on the reused heap. Process-wide, so only the command line, the
    pool workers matcher starts and a Dask worker at its first scan task call it; the library never
    does on import.
    """
    if os.name != "posix":
        return False
    try:  # a tuning, never a failure: anything unexpected leaves the allocator as it is
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
        done = bool(mallopt(_M_MMAP_THRESHOLD, ALLOCATOR_MMAP_THRESHOLD)) and bool(
            mallopt(_M_TRIM_THRESHOLD, ALLOCATOR_TRIM_THRESHOLD)
        )
    except Exception:  # noqa: BLE001 - not glibc (musl, macOS), or ctypes unavailable
        return False
    global _tuned
    _tuned = _tuned or done
    return done
