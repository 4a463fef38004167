"""PDQ: exactly the reference hash and quality on the same pixels."""

from __future__ import annotations

import json

import numpy as np
import pdqhash
import pytest
from PIL import Image

from matcher.algorithms import pdq
from tests.conftest import smooth_rgb


def reference(array: np.ndarray) -> tuple[str, int]:
    bits, quality = pdqhash.compute(np.ascontiguousarray(array))
    return np.packbits(bits.astype(np.uint8)).tobytes().hex(), int(quality)


def reference_dihedral(array: np.ndarray) -> dict[str, str]:
    variants, _ = pdqhash.compute_dihedral(np.ascontiguousarray(array))
    return {n: np.packbits(v.astype(np.uint8)).tobytes().hex() for n, v in zip(pdq.DIHEDRAL_NAMES, variants)}


@pytest.fixture(params=["native", "numpy"], autouse=True)
def kernels(request, monkeypatch):
    """Run every test with the numba kernels and with the plain numpy code: both must be exact."""
    if request.param == "numpy":
        monkeypatch.setattr(pdq, "_native", None)
    else:
        assert pdq._native is not None, "numba kernels did not load"
    return request.param


def test_every_shared_vector_is_exact(pdq_vectors):
    cases = [json.loads(line) for line in (pdq_vectors / "expected.jsonl").read_text().splitlines() if line.strip()]
    assert len(cases) >= 18
    for case in cases:
        pixels = np.asarray(Image.open(pdq_vectors / case["file"]).convert("RGB"))
        h = pdq.hash_array(pixels)
        assert (h.hex(), h.quality) == (case["pdq"], case["quality"]), case["file"]
        variants = pdq.hash_and_dihedral(pixels)
        assert {k: v.hex() for k, v in variants.items()} == case["dihedral"], case["file"]


SIZES = [(5, 5), (6, 5), (9, 300), (64, 64), (63, 65), (128, 128), (129, 127), (257, 255), (480, 640), (513, 511), (700, 1100)]


@pytest.mark.parametrize("height, width", SIZES)
def test_equals_reference_on_generated_arrays(height, width):
    rng = np.random.default_rng(height * 10007 + width)
    arrays = {
        "smooth": smooth_rgb(height + width, height, width),
        "noise": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
        "flat": np.full((height, width, 3), 77, dtype=np.uint8),
        "two-level": (rng.integers(0, 2, (height, width, 3)) * 255).astype(np.uint8),
    }
    for kind, array in arrays.items():
        h = pdq.hash_array(array)
        assert (h.hex(), h.quality) == reference(array), kind
        assert {k: v.hex() for k, v in pdq.hash_and_dihedral(array).items()} == reference_dihedral(array), kind


@pytest.mark.parametrize("height, width", [(1, 1), (4, 9), (9, 4), (4, 4)])
def test_below_five_pixels_gives_the_zero_hash_and_quality_zero(height, width):
    h = pdq.hash_array(np.full((height, width, 3), 200, dtype=np.uint8))
    assert h.hex() == "0" * 64 and h.quality == 0
    assert (h.hex(), h.quality) == reference(np.full((height, width, 3), 200, dtype=np.uint8))


def test_greyscale_array_is_used_as_is():
    grey = smooth_rgb(5, 90, 70)[..., 1].copy()
    assert pdq.hash_array(grey) == pdq.hash_array(np.dstack([grey] * 3))


def test_bad_arrays_are_refused():
    from matcher import UsageError

    with pytest.raises(UsageError):
        pdq.hash_array(np.zeros((10, 10, 2), dtype=np.uint8))
    with pytest.raises(UsageError):
        pdq.hash_array(np.zeros((10, 10, 3), dtype=np.float32))
