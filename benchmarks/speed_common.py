"""Shared pieces of the speed benchmarks: code sets, planted queries, results files, machine facts."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def env_int(name: str, default: int) -> int:
    """An integer setting from the environment (benchmarks can be run small)."""
    return int(os.environ.get(name, default))


def uniform_codes(n: int, nbytes: int, seed: int = 0) -> np.ndarray:
    """``n`` uniformly random codes."""
    return np.random.default_rng(seed).integers(0, 256, (n, nbytes), dtype=np.uint8)


def realistic_pdq_codes(n: int, seed: int = 0, bases: int = 3000) -> np.ndarray:
    """``n`` PDQ codes with the bit statistics of real hashes of generated images.

    Hashing a million generated images takes too long for a benchmark, so ``bases`` real PDQ hashes
    are computed from generated scenes (every fixture kind, many sizes and seeds), and each code is
    one of them with 20 to 60 random bits flipped: the codes keep the non-uniform bit frequencies and
    the clustering of real sets (the hard case for bucket-based search), while staying distinct.
    """
    from fixtures import KINDS, scene
    from matcher.algorithms import pdq

    rng = np.random.default_rng(seed)
    real = []
    kinds = [k for k in KINDS if k not in ("lowtexture", "gradient")]
    for i in range(bases):
        image = scene(seed * 100_000 + i, 96, 64 + (i % 5) * 16, kinds[i % len(kinds)])
        real.append(np.frombuffer(pdq.hash_array(np.asarray(image)).bits, dtype=np.uint8))
    base = np.stack(real)
    codes = np.empty((n, 32), dtype=np.uint8)
    chunk = 100_000  # bounded memory at 10M codes: one (chunk, 256) block of random keys at a time
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        bits = np.unpackbits(base[rng.integers(0, bases, m)], axis=1)
        flips = rng.integers(20, 61, m)
        keys = rng.random((m, 256), dtype=np.float32)
        cut = np.sort(keys, axis=1)[np.arange(m), flips - 1]
        bits ^= (keys <= cut[:, None]).astype(np.uint8)  # exactly flips[row] distinct bits per row
        codes[start : start + m] = np.packbits(bits, axis=1)
    return codes


def planted_queries(codes: np.ndarray, count: int, radius: int, seed: int = 1) -> np.ndarray:
    """``count`` queries: half near-duplicates of indexed codes at distances spread over 0..radius,
    half random codes."""
    rng = np.random.default_rng(seed)
    nbits = codes.shape[1] * 8
    half = count // 2
    near = codes[rng.integers(0, codes.shape[0], half)].copy()
    bits = np.unpackbits(near, axis=1)
    for row, flips in enumerate(rng.integers(0, radius + 1, half)):
        bits[row, rng.choice(nbits, flips, replace=False)] ^= 1
    random = rng.integers(0, 256, (count - half, codes.shape[1]), dtype=np.uint8)
    return np.vstack([np.packbits(bits, axis=1), random])


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import faiss
    import numba

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "numba": numba.__version__,
        "faiss_threads": faiss.omp_get_max_threads(),
    }


def load_cases(name: str) -> dict[str, Any]:
    """The per-case figures of ``benchmarks/results/<name>.json`` (empty if there is none)."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    data.pop("machine", None)
    return data


def save(name: str, data: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json``."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2, sort_keys=True) + "\n")
    return path
