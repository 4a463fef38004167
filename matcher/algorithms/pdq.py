"""PDQ, the 256-bit perceptual hash the industry shares, in numpy.

This follows ``shared/PDQ_SPEC.md`` and reproduces the reference C++ implementation's float32
arithmetic step by step (running box-filter sums, sequential DCT sums, the lower median), so that the
same RGB pixel array gives exactly the reference hash and quality, bit for bit.

The steps: luma; two passes of row then column box filters (a tent filter) with windows of
``ceil(dim / 128)``; decimation to 64x64; the quality score from the 64x64 gradients; a 16x16 DCT
(frequencies 1..16); bits set where a coefficient is strictly above the median.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib.util import find_spec
from types import ModuleType

import numpy as np
from PIL import Image

from ..errors import UsageError
from ..hashes import Hash
from ..lazy import lazy_module
from .dihedral import INVERSE, VARIANT_NAMES

# Native kernels, compiled by numba, imported on the first hash (not with this module: numba is slow to
# import, and commands that only read facts or indexes never need it); the numpy code below gives
# the same bits, only slower, and serves when numba is not installed.
_native: ModuleType | None = lazy_module(f"{__package__}._pdq_numba") if find_spec("numba") is not None else None

__all__ = [
    "PDQ",
    "PDQ_ALGORITHM",
    "pdq",
    "hash_array",
    "hash_and_dihedral",
    "variant_hashes",
    "DIHEDRAL_NAMES",
    "REFERENCE_DIHEDRAL_NAMES",
    "VARIANT_NAMES",
    "MIN_QUALITY",
    "STRONG_MAX_DISTANCE",
]

_F32 = np.float32
MIN_DIMENSION = 5
#: The quality gate: hashes scored below it are not matched on (the reference authors' advice).
MIN_QUALITY = 50
#: Distances a different decode of the same file stays within at quality >= 80 (the conformance
#: bound of ``shared/PDQ_SPEC.md``): a strong match.
STRONG_MAX_DISTANCE = 10
#: The keys of :func:`hash_and_dihedral`: matcher's variant names (:mod:`matcher.algorithms.dihedral`).
DIHEDRAL_NAMES: tuple[str, ...] = VARIANT_NAMES
#: matcher's variant name of each of the reference's dihedral hashes, in the reference's order
#: (original, rotate90, rotate180, rotate270, flipX, flipY, flipPlus, flipMinus, as
#: ``pdqhash.compute_dihedral`` returns them). The reference's ``rotate90`` is the hash of the image
#: rotated 90 degrees counter-clockwise, which matches a known image of which this one is the
#: clockwise rotation: matcher's ``rot270``; likewise its ``rotate270`` is matcher's ``rot90``.
REFERENCE_DIHEDRAL_NAMES: tuple[str, ...] = tuple(INVERSE.get(name, name) for name in VARIANT_NAMES)


def _dct_matrix() -> np.ndarray:
    """The 16x64 DCT matrix as the reference builds it: a float scale times a double cosine, stored as float."""
    scale = float(_F32(math.sqrt(2.0 / 64)))
    i = np.arange(1, 17, dtype=np.float64)[:, None]
    j = np.arange(64, dtype=np.float64)[None, :]
    return (scale * np.cos((math.pi / 2.0 / 64) * i * (2 * j + 1))).astype(_F32)


_DCT = _dct_matrix()
_DCT_COLUMNS = [np.ascontiguousarray(_DCT[:, k : k + 1]) for k in range(64)]  # 16x1 each


def _box_filter(src: np.ndarray, window: int) -> np.ndarray:
    """One 1-D box filter along axis 0 of ``src`` (float32), vectorised over axis 1.

    The reference keeps one running float32 sum per line: it adds the sample entering the window and
    subtracts the one leaving it, dividing by the number of samples in the window. The rounding of
    that running sum is part of the reference output, so it is reproduced step by step here.
    """
    length = src.shape[0]
    half = (window + 2) // 2
    out = np.empty_like(src)
    total = np.zeros(src.shape[1], dtype=_F32)
    right = 0
    for _ in range(half - 1):  # phase 1: accumulate, no output
        total += src[right]
        right += 1
    count = half - 1
    out_index = 0
    for _ in range(window - half + 1):  # phase 2: growing window
        total += src[right]
        right += 1
        count += 1
        np.divide(total, _F32(count), out=out[out_index])
        out_index += 1
    left = 0
    divisor = _F32(count)
    for _ in range(length - window):  # phase 3: full window
        total += src[right]
        total -= src[left]
        right += 1
        left += 1
        np.divide(total, divisor, out=out[out_index])
        out_index += 1
    for _ in range(half - 1):  # phase 4: shrinking window
        total -= src[left]
        left += 1
        count -= 1
        np.divide(total, _F32(count), out=out[out_index])
        out_index += 1
    return out


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Luma as the reference Python bindings compute it: in double, then stored as float32."""
    if rgb.ndim == 2:
        return rgb.astype(_F32)
    if _native is not None:
        luma: np.ndarray = _native.luma(rgb)
        return luma
    r = rgb[..., 0].astype(np.float64)
    g = rgb[..., 1].astype(np.float64)
    b = rgb[..., 2].astype(np.float64)
    return (r * 0.299 + g * 0.587 + b * 0.114).astype(_F32)


def _window(dimension: int) -> int:
    """The reference's box window for a dimension: ceil(dimension / 128)."""
    return (dimension + 127) // 128


def _blur(luma: np.ndarray, window_along_rows: int, window_along_cols: int) -> np.ndarray:
    """Two passes of a row box filter then a column box filter (a tent filter), as the reference."""
    # Work column-major for the row filter so both filters run along axis 0 of a contiguous array.
    buf = np.ascontiguousarray(luma.T, dtype=_F32)  # cols x rows
    for _ in range(2):
        buf = _box_filter(buf, window_along_rows)  # along each row of the image
        buf = np.ascontiguousarray(buf.T)  # rows x cols
        buf = _box_filter(buf, window_along_cols)  # along each column of the image
        buf = np.ascontiguousarray(buf.T)  # cols x rows
    return buf.T  # rows x cols


def _blur_and_sample(
    luma: np.ndarray, window_along_rows: int, window_along_cols: int, row_index: list[int], col_index: list[int]
) -> np.ndarray:
    """The blurred plane sampled at ``row_index`` x ``col_index`` (64x64).

    With the native kernels the last column pass runs only on the sampled columns (columns are
    independent), which gives the same values as blurring everything.
    """
    if _native is None:
        return np.ascontiguousarray(_blur(luma, window_along_rows, window_along_cols)[np.ix_(row_index, col_index)])
    buf = _native.box_along_rows(np.ascontiguousarray(luma, dtype=_F32), window_along_rows)
    buf = _native.box_along_columns(buf, window_along_cols)
    buf = _native.box_along_rows(buf, window_along_rows)
    buf = _native.box_along_columns(np.ascontiguousarray(buf[:, col_index]), window_along_cols)
    return np.ascontiguousarray(buf[row_index, :])


def _downsample_64(luma: np.ndarray) -> np.ndarray:
    """Blur (two tent passes) and decimate a float32 luma plane to 64x64, as the reference."""
    rows, cols = luma.shape
    if rows == 64 and cols == 64:
        return luma.astype(_F32, copy=True)
    row_index = [int(((r + 0.5) * rows) / 64) for r in range(64)]
    col_index = [int(((c + 0.5) * cols) / 64) for c in range(64)]
    return _blur_and_sample(luma, _window(cols), _window(rows), row_index, col_index)


def _scaled_axis(full: int, reduced: int) -> tuple[int, list[int]]:
    """Window and sample indices on a reduced axis that mimic the reference's on the full axis.

    The reference blurs with windows of ceil(full / 128) and samples at int((i + 0.5) * full / 64);
    an even window shifts the blurred sample by half a pixel per pass. On an axis reduced by a
    factor k, the window is scaled by 1/k and each sample is the reduced pixel whose blurred centre
    lies nearest the reference's blurred centre, in full-scale coordinates.
    """
    k = full / reduced
    full_window = _window(full)
    window = max(1, round(full_window / k))
    full_shift = 1.0 if full_window % 2 == 0 else 0.0  # two passes of half a pixel
    shift = 1.0 if window % 2 == 0 else 0.0
    indices = []
    for i in range(64):
        centre = int(((i + 0.5) * full) / 64) + full_shift
        j = round((centre + 0.5) / k - 0.5 - shift)
        indices.append(min(max(j, 0), reduced - 1))
    return window, indices


def _downsample_64_scaled(luma: np.ndarray, full_rows: int, full_cols: int) -> np.ndarray:
    """The 64x64 buffer of a full-size image approximated from a reduced-scale decode of it."""
    rows, cols = luma.shape
    window_along_rows, col_index = _scaled_axis(full_cols, cols)
    window_along_cols, row_index = _scaled_axis(full_rows, rows)
    return _blur_and_sample(luma, window_along_rows, window_along_cols, row_index, col_index)


def _quality(a: np.ndarray) -> int:
    """Reference quality: truncated scaled gradients summed over the 64x64 buffer, // 90, capped at 100."""
    vertical = ((a[:-1, :] - a[1:, :]) * _F32(100)) / _F32(255)
    horizontal = ((a[:, :-1] - a[:, 1:]) * _F32(100)) / _F32(255)
    total = int(np.abs(np.trunc(vertical)).sum()) + int(np.abs(np.trunc(horizontal)).sum())
    return min(total // 90, 100)


def _dct_16(a: np.ndarray) -> np.ndarray:
    """B = D A D^T with the reference's sequential float32 sums (k from 0 to 63)."""
    if _native is not None:
        dct: np.ndarray = _native.dct_16(np.ascontiguousarray(a, dtype=_F32), _DCT)
        return dct
    t = np.zeros((16, 64), dtype=_F32)
    for k in range(64):
        t += _DCT_COLUMNS[k] * a[k : k + 1, :]
    b = np.zeros((16, 16), dtype=_F32)
    dct_t = _DCT.T  # 64x16: row k holds D[:, k]
    for k in range(64):
        b += t[:, k : k + 1] * dct_t[k : k + 1, :]
    return b


def _bits_from_dct(b: np.ndarray) -> bytes:
    """Hash bytes in the reference layout: bit 16i+j set when B[i][j] > the lower median."""
    median = np.sort(b, axis=None)[127]
    bits = (b > median).astype(np.uint32)
    words = (bits << np.arange(16, dtype=np.uint32)).sum(axis=1).astype(">u2")
    return bytes(words[::-1].tobytes())


def _dct_variants(b: np.ndarray) -> dict[str, np.ndarray]:
    """The reference's DCT-domain dihedral variants (cheap approximations of rotated/flipped pixels),
    keyed by matcher's variant names: each approximates the DCT of the pixels with that variant
    undone. The reference's rotate90 (``np.where(odd_j, b, -b).T``, the pixels turned 90 degrees
    counter-clockwise) undoes ``rot270``, and its rotate270 undoes ``rot90``."""
    i = np.arange(16)[:, None]
    j = np.arange(16)[None, :]
    odd_i = (i & 1).astype(bool)
    odd_j = (j & 1).astype(bool)
    odd_ij = ((i + j) & 1).astype(bool)
    return {
        "orig": b,
        "rot90": np.where(odd_i, b, -b).T,
        "rot180": np.where(odd_ij, -b, b),
        "rot270": np.where(odd_j, b, -b).T,
        "flipx": np.where(odd_i, b, -b),
        "flipy": np.where(odd_j, b, -b),
        "flipp": b.T,
        "flipm": np.where(odd_ij, -b, b).T,
    }


def _as_pixels(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise UsageError(f"PDQ needs an HxWx3 RGB or HxW grey array, got shape {array.shape}")
    if array.dtype != np.uint8:
        raise UsageError(f"PDQ needs uint8 pixels, got {array.dtype}")
    return array


def _dct_of(array: np.ndarray, full_size: tuple[int, int] | None = None) -> tuple[np.ndarray, int] | None:
    pixels = _as_pixels(array)
    rows, cols = pixels.shape[:2]
    full_cols, full_rows = full_size if full_size is not None else (cols, rows)
    if min(rows, cols, full_rows, full_cols) < MIN_DIMENSION:
        return None
    if (full_rows, full_cols) == (rows, cols):
        a = _downsample_64(_luma(pixels))
    else:
        a = _downsample_64_scaled(_luma(pixels), full_rows, full_cols)
    return _dct_16(a), _quality(a)


_ZERO = bytes(32)


def hash_array(array: np.ndarray, full_size: tuple[int, int] | None = None) -> Hash:
    """PDQ of an HxWx3 uint8 RGB array (or HxW grey); the hash carries its quality.

    Exactly the reference hash and quality of these pixels. Images under 5 pixels on a side give the
    all-zero hash with quality 0, as the reference does.

    ``full_size`` (width, height): the array is a reduced-scale decode (JPEG draft mode) of an image
    of that size; the result then approximates the full-size image's hash (within a few bits at
    quality >= 80) rather than being the reference hash of the reduced pixels.
    """
    result = _dct_of(array, full_size)
    if result is None:
        return Hash("pdq", _ZERO, 0)
    b, quality = result
    return Hash("pdq", _bits_from_dct(b), quality)


def hash_and_dihedral(array: np.ndarray) -> dict[str, Hash]:
    """The hash and the reference's seven DCT-derived dihedral variants, keyed by ``DIHEDRAL_NAMES``.

    Named as :func:`variant_hashes` names them: ``hash_and_dihedral(x)["rot90"]`` approximates the
    hash of ``x`` rotated back by 90 degrees (clockwise), so it matches a known image of which ``x``
    is a counter-clockwise rotation. (The reference calls that variant rotate270: see
    :data:`REFERENCE_DIHEDRAL_NAMES`.) These variants are the reference's cheap approximations: the
    hash of the really rotated or flipped pixels can differ from them by tens of bits (up to 60 of
    256 measured on generated 160x120 to 300x200 scenes, the other variants staying about 100 or
    more away); :func:`variant_hashes` gives the exact ones.
    """
    result = _dct_of(array)
    if result is None:
        return {name: Hash("pdq", _ZERO, 0) for name in DIHEDRAL_NAMES}
    b, quality = result
    variants = _dct_variants(b)
    return {name: Hash("pdq", _bits_from_dct(variants[name]), quality) for name in DIHEDRAL_NAMES}


# How the evidence image may be transformed relative to a known one (matcher.algorithms.dihedral),
# and the numpy operation on the evidence's luma plane or 64x64 buffer that undoes it (rows are y,
# columns x). "rot90" is a 90-degree counter-clockwise rotation (Pillow's ROTATE_90), "flipx" a
# top-bottom flip, "flipy" a mirror, "flipp" a transpose about the main diagonal and "flipm" one
# about the anti-diagonal.
_UNDO: dict[str, object] = {
    "orig": lambda a: a,
    "rot90": lambda a: np.rot90(a, -1),
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 1),
    "flipx": lambda a: a[::-1, :],
    "flipy": lambda a: a[:, ::-1],
    "flipp": lambda a: np.swapaxes(a, 0, 1),
    "flipm": lambda a: np.swapaxes(np.rot90(a, 2), 0, 1),
}


def variant_hashes(
    array: np.ndarray, full_size: tuple[int, int] | None = None, *, exact: bool = True
) -> dict[str, Hash]:
    """Hashes that undo each rotation or flip the image may have undergone, keyed by that transform.

    ``variant_hashes(x)["rot90"]`` is the PDQ hash of ``x`` rotated back by 90 degrees, so it matches
    a known image of which ``x`` is a counter-clockwise rotation; ``"orig"`` is :func:`hash_array`.

    ``exact=True`` hashes the really transformed pixels (eight full hashes: the reference hash of
    each transformed array). ``exact=False`` blurs once and transforms the 64x64 buffer before the
    DCT: about eight times cheaper, and nearer to the true variants than the DCT-sign variants of
    :func:`hash_and_dihedral`, but still a few bits off on sharp-edged images (the blur windows and
    sample positions are not symmetric).
    """
    pixels = _as_pixels(array)
    rows, cols = pixels.shape[:2]
    full_cols, full_rows = full_size if full_size is not None else (cols, rows)
    if min(rows, cols, full_rows, full_cols) < MIN_DIMENSION:
        return {name: Hash("pdq", _ZERO, 0) for name in _UNDO}
    luma = _luma(pixels)  # per pixel, so the luma of transformed pixels is the transformed luma
    if exact:
        out = {}
        for name, undo in _UNDO.items():
            plane = np.ascontiguousarray(undo(luma))  # type: ignore[operator]
            size = _undo_size(name, full_size)
            a = (
                _downsample_64(plane)
                if size is None or size == plane.shape[::-1]
                else _downsample_64_scaled(plane, size[1], size[0])
            )
            out[name] = Hash("pdq", _bits_from_dct(_dct_16(a)), _quality(a))
        return out
    if (full_rows, full_cols) == (rows, cols):
        a = _downsample_64(luma)
    else:
        a = _downsample_64_scaled(luma, full_rows, full_cols)
    quality = _quality(a)
    return {
        name: Hash("pdq", _bits_from_dct(_dct_16(np.ascontiguousarray(undo(a)))), quality)  # type: ignore[operator]
        for name, undo in _UNDO.items()
    }


def _undo_size(name: str, full_size: tuple[int, int] | None) -> tuple[int, int] | None:
    """The full size after undoing a transform: width and height swap for quarter turns and transposes."""
    if full_size is None or name in ("orig", "rot180", "flipx", "flipy"):
        return full_size
    return (full_size[1], full_size[0])


@dataclass(frozen=True, slots=True)
class PDQ:
    """The PDQ algorithm as a registry entry: its facts (see :class:`~matcher.algorithms.base.Algorithm`)
    and its hashing. Match distance 31 of 256 bits (the reference authors' threshold), strong
    :data:`STRONG_MAX_DISTANCE`, quality gate :data:`MIN_QUALITY`, quality column ``pdq_quality``."""

    name: str = "pdq"
    display_name: str = "PDQ"
    vics_name: str = "PDQ"
    bit_length: int = 256
    default_max_distance: int = 31
    strong_max_distance: int = STRONG_MAX_DISTANCE
    #: no pair of different images comes within 69 bits, views included: views match at 31 as well
    view_max_distance: int = 31
    has_quality: bool = True
    quality_field: str | None = "pdq_quality"
    min_quality: int | None = MIN_QUALITY
    draft_size: tuple[int, int] | None = (512, 512)
    # measured on generated q90 JPEGs of textures, noise, stripes and scenes (tests/test_fast_bound.py):
    # a 2-bit check keeps PDQ within 4 bits of the full decode (no check: up to 18)
    draft_check_distance: int | None = 2

    def hash_image(self, image: Image.Image, full_size: tuple[int, int] | None = None) -> Hash:
        """PDQ of an RGB Pillow image (``full_size``: see :func:`hash_array`)."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        return hash_array(np.asarray(image), full_size)

    def hash_array(self, array: np.ndarray) -> Hash:
        """PDQ of an HxWx3 uint8 RGB (or HxW grey) array: exactly the reference on these pixels."""
        return hash_array(array)

    def variant_hashes(self, image: Image.Image, full_size: tuple[int, int] | None = None) -> dict[str, Hash]:
        """The exact hashes of ``image`` transformed back by each rotation/flip (see :func:`variant_hashes`)."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        return variant_hashes(np.asarray(image), full_size, exact=True)

    def dihedral(self, image: Image.Image) -> dict[str, Hash]:
        """The eight DCT-derived dihedral hashes of an RGB image (see :func:`hash_and_dihedral`)."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        return hash_and_dihedral(np.asarray(image))


#: The PDQ registry entry (also as :data:`pdq`, its older name).
PDQ_ALGORITHM = PDQ()
pdq = PDQ_ALGORITHM
