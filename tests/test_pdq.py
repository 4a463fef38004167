"""PDQ: exactly the reference hash and quality on the same pixels; one naming of its variants."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fixtures import generate as fixtures
from matcher.algorithms import pdq
from matcher.variants import APPLY_TRANSPOSE, VARIANT_NAMES
from tests.conftest import in_ci, oracle, smooth_rgb
from tests.data import regenerate_pdq_vectors as vectors


def reference(array: np.ndarray) -> tuple[str, int]:
    bits, quality = oracle("pdqhash").compute(np.ascontiguousarray(array))
    return np.packbits(bits.astype(np.uint8)).tobytes().hex(), int(quality)


def reference_dihedral(array: np.ndarray) -> dict[str, str]:
    """The reference's dihedral hashes, under matcher's variant names."""
    variants, _ = oracle("pdqhash").compute_dihedral(np.ascontiguousarray(array))
    return {n: np.packbits(v.astype(np.uint8)).tobytes().hex() for n, v in zip(pdq.REFERENCE_DIHEDRAL_NAMES, variants)}


@pytest.fixture(params=["native", "numpy"], autouse=True)
def kernels(request, monkeypatch):
    """Run every test with the numba kernels and with the plain numpy code: both must be exact."""
    if request.param == "numpy":
        monkeypatch.setattr(pdq, "_native", None)
    else:
        assert pdq._native is not None, "numba kernels did not load"
    return request.param


def test_every_reference_vector_is_exact(pdq_vectors):
    """The project's own vectors (tests/data/pdq-vectors), so this runs in any clone, oracle or not."""
    cases = [json.loads(line) for line in (pdq_vectors / "expected.jsonl").read_text().splitlines() if line.strip()]
    assert [case["file"] for case in cases] == vectors.file_names()
    for case in cases:
        pixels = np.asarray(Image.open(pdq_vectors / case["file"]).convert("RGB"))
        assert pixels.shape[:2] == (case["height"], case["width"]), case["file"]
        h = pdq.hash_array(pixels)
        assert (h.hex(), h.quality) == (case["pdq"], case["quality"]), case["file"]
        names = zip(vectors.REFERENCE_NAMES, pdq.REFERENCE_DIHEDRAL_NAMES)
        expected = {ours: case["dihedral"][theirs] for theirs, ours in names}
        assert {k: v.hex() for k, v in pdq.hash_and_dihedral(pixels).items()} == expected, case["file"]


def test_reference_vectors_cover_the_edge_cases(pdq_vectors):
    cases = [json.loads(line) for line in (pdq_vectors / "expected.jsonl").read_text().splitlines() if line.strip()]
    sizes = [(c["width"], c["height"]) for c in cases]
    assert any(min(size) < pdq.MIN_DIMENSION for size in sizes) and (5, 5) in sizes
    assert any(max(size) > 512 for size in sizes) and (64, 64) in sizes
    assert {c["quality"] for c in cases} >= {0, 100} and any(0 < c["quality"] < pdq.MIN_QUALITY for c in cases)
    assert sum(p.stat().st_size for p in pdq_vectors.iterdir()) < 2_000_000


def test_variant_names_mean_the_same_rotation_everywhere():
    """Regression: hash_and_dihedral(x)["rot90"] meant the opposite rotation of variant_hashes(x)["rot90"]
    (128 bits apart). Each variant is made from a generated known image by really rotating or
    flipping its pixels; both functions, under that variant's name, must give back the known image's
    hash: variant_hashes exactly; the reference's DCT approximations (tens of bits off on sharp
    images) nearer than any other of the eight, while unrelated variants sit about 128 bits away."""
    for kind, width, height in (("landscape", 160, 120), ("text", 256, 192)):  # not square: no axis mix-up
        known = fixtures.scene(7, width, height, kind)
        known_hash = pdq.hash_array(np.asarray(known))
        assert known_hash.quality == 100
        for name in VARIANT_NAMES:
            transpose = APPLY_TRANSPOSE[name]
            evidence = np.asarray(known if transpose is None else known.transpose(transpose))
            assert pdq.variant_hashes(evidence)[name] == known_hash, (kind, name)
            approximations = pdq.hash_and_dihedral(evidence)
            distances = {variant: approximations[variant] - known_hash for variant in VARIANT_NAMES}
            assert distances[name] < 64 and min(distances, key=distances.__getitem__) == name, (kind, name, distances)
            assert approximations[name] - pdq.variant_hashes(evidence, exact=False)[name] < 64, (kind, name)
    assert APPLY_TRANSPOSE["rot90"] == Image.Transpose.ROTATE_90  # counter-clockwise, as documented


SIZES = [
    (5, 5),
    (6, 5),
    (9, 300),
    (64, 64),
    (63, 65),
    (128, 128),
    (129, 127),
    (257, 255),
    (480, 640),
    (513, 511),
    (700, 1100),
]


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


def test_a_missing_oracle_skips_only_outside_ci(monkeypatch):
    """Oracle tests (pdqhash, imagehash comparisons) may skip where the oracle is missing, but in CI
    (CI=true) a missing oracle fails the test."""
    monkeypatch.setenv("CI", "true")
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match="not installed"):
        oracle("matcher_no_such_oracle")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        oracle("matcher_no_such_oracle")
