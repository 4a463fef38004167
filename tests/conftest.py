"""Shared test helpers: where the shared reference vectors are, and a few generated images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PDQ_VECTORS = ROOT.parent / "shared" / "pdq-vectors"


@pytest.fixture(scope="session")
def pdq_vectors() -> Path:
    """The folder of shared PDQ reference vectors (skips where the shared folder is absent)."""
    if not (PDQ_VECTORS / "expected.jsonl").is_file():
        pytest.skip(f"shared PDQ vectors not found at {PDQ_VECTORS}")
    return PDQ_VECTORS


def smooth_rgb(seed: int, height: int, width: int) -> np.ndarray:
    """A photo-like smooth random RGB array (bicubic-upscaled noise), deterministic per seed."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC))
