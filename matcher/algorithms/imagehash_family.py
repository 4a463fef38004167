"""The imagehash family (pHash, dHash, aHash, wHash), computed by the imagehash library itself.

matcher calls imagehash with its default sizes (64-bit hashes) on the RGB image matcher decoded, so
the hashes are bit-identical to ``imagehash.phash(image)`` and friends on the same image, and the hex
is imagehash's own: ``str(imagehash_hash) == str(matcher_hash)``.

Default match distance 8 of 64 bits (12.5%): the usual threshold for these hashes; re-encodes and
resizes of the same picture stay well under it, while unrelated images sit near 32 (see the README).

Strong distances (see :class:`~matcher.algorithms.base.Algorithm`; only a strong match precategorizes
in a VICS report), measured on the robustness benchmark's generated images (``benchmarks/robustness``:
300 originals and 1,000 distractors, landscape, plasma, shapes, text cards, gradients and flat
colours, 256-512 px, stored as JPEG 95), the 1,030 of detail quality >= 50: the largest distance
of a JPEG 75 or 30, half or double size, radius-2 blur or greyscale copy from its original, and
how many of the 529,935 pairs of different images lie within 1 / 2 / 4 bits: pHash 4, 0 / 0 / 0
(none within 8); dHash 7, 0 / 0 / 0 (nearest 6); aHash 2, 0 / 1 / 19; wHash 4, 0 / 4 / 41. The
strong distances keep clear of unrelated pairs: pHash 4, dHash 4, aHash 1 and wHash 1 (aHash and
wHash put different landscapes within a few bits of each other whatever their detail: their
matches are mostly for review).

**Quality gate.** An image with little detail at the scale these hashes see has hash bits set by
noise and by what such images share, so unrelated ones match: nearly flat images and gradients
matched one another at pHash distance <= 8 by the thousand on the robustness benchmark, and text
cards with other words in the same place come within 2-6 bits (their glyphs average out to the
same grey block), while PDQ keeps them 40 bits or more apart. Every hash of the family therefore
carries a quality score (0-100, :func:`detail_quality`: how many of pHash's bits are settled
beyond edit noise, scaled down when the 32 x 32 reduction keeps less than :data:`SEEN_SHARE` of
the image's detail). One score for the family, since it measures the image, not the hash. Hashes
scored below :data:`MIN_QUALITY` (50, as PDQ's) are not matched on (the scan's and the index's
quality gate). Measured figures are in the README's "Algorithms and thresholds".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..hashes import Hash
from ..lazy import lazy_function
from .dihedral import undone_images

if TYPE_CHECKING:
    import imagehash

__all__ = [
    "ImagehashAlgorithm",
    "PHASH",
    "DHASH",
    "AHASH",
    "WHASH",
    "from_imagehash",
    "detail_quality",
    "DETAIL_MARGIN",
    "SEEN_SHARE",
    "MIN_QUALITY",
]

#: How far (in pHash's DCT units: imagehash's unnormalised DCT-II of 32 x 32 grey pixels) a
#: coefficient must stand from pHash's median for its bit to count as settled: about the 95th
#: percentile of how far JPEG 75, halving and a radius-2 blur move a coefficient (measured on the
#: benchmark's originals: median 26, 90th percentile 72).
DETAIL_MARGIN = 128.0
#: The share of an image's detail (the variance of its 128 x 128 grey reduction) that the 32 x 32
#: reduction the family hashes must keep for the image to count as fully seen. Measured on the
#: benchmark's generated images: photo-like scenes and shapes keep 0.8-1, text cards 0.34-0.45 (their
#: glyphs average out to a grey block, the same for any words in the same place), flat colours 0.
SEEN_SHARE = 0.8
#: The family's quality gate: hashes scored below it are not matched on (as PDQ's 50).
MIN_QUALITY = 50

_SIDE = 32  # pHash's working size (hash size 8 x high-frequency factor 4)
_FINE = 128  # the finer reduction the seen share is measured against
_LOW = 8  # the low-frequency block pHash keeps


def _dct_rows() -> np.ndarray:
    """The first 8 rows of the unnormalised DCT-II of length 32 (scipy's ``dct`` type 2)."""
    k = np.arange(_LOW)[:, None]
    n = np.arange(_SIDE)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * _SIDE))


_DCT = _dct_rows()


def detail_quality(image: Image.Image) -> int:
    """The family's quality score (0-100) of an image: ``100 * settled * min(1, seen / SEEN_SHARE)``.

    Both come from the image's grey reductions (Lanczos, as imagehash) to 128 x 128 and from that to
    32 x 32 (pHash's working size). *settled* is the share of the 63 low-frequency AC coefficients of
    the 32 x 32 reduction's DCT that stand more than :data:`DETAIL_MARGIN` from the median of the 64
    (the bits of pHash that JPEG and resizing noise cannot flip: 0 for a flat image). *seen* is the
    share of the 128 x 128 reduction's variance that the 32 x 32 one keeps (low for text, whose
    detail is finer than the hashes see). 0 for a flat image.
    """
    fine = image.convert("L").resize((_FINE, _FINE), Image.Resampling.LANCZOS)
    coarse = fine.resize((_SIDE, _SIDE), Image.Resampling.LANCZOS)
    grey = np.asarray(coarse, dtype=np.float64)
    coefficients = _DCT @ grey @ _DCT.T
    margins = np.abs(coefficients - np.median(coefficients)).flatten()[1:]  # the DC term is not detail
    settled = np.count_nonzero(margins > DETAIL_MARGIN) / margins.size
    back = np.asarray(coarse.resize((_FINE, _FINE), Image.Resampling.BILINEAR), dtype=np.float64)
    hidden = float(np.mean((np.asarray(fine, dtype=np.float64) - back) ** 2))
    kept = float(np.var(grey))
    seen = kept / (kept + hidden) if kept + hidden > 0 else 0.0
    return int(round(100 * settled * min(1.0, seen / SEEN_SHARE)))


def from_imagehash(name: str, value: imagehash.ImageHash, quality: int | None = None) -> Hash:
    """Wrap an ``imagehash.ImageHash`` as a matcher :class:`Hash` (same bits, same hex), carrying
    ``quality`` (see :func:`detail_quality`)."""
    bits = np.packbits(np.asarray(value.hash, dtype=bool).flatten()).tobytes()
    return Hash(name, bits, quality)


@dataclass(frozen=True, slots=True)
class ImagehashAlgorithm:
    """One imagehash function, as a registry entry: its hashes carry the family's quality score
    (:func:`detail_quality`) in the column ``<name>_quality``, gated at :data:`MIN_QUALITY`."""

    name: str
    display_name: str
    function: Callable[[Image.Image], imagehash.ImageHash]
    draft_size: tuple[int, int] | None
    strong_max_distance: int
    bit_length: int = 64
    default_max_distance: int = 8
    #: a view match at 8 bits joined unrelated text cards and landscapes (10 pairs of 7.1 million on
    #: the robustness benchmark, none at 7): views are held one bit tighter
    view_max_distance: int = 7
    has_quality: bool = True
    min_quality: int | None = MIN_QUALITY
    draft_check_distance: int | None = None

    @property
    def quality_field(self) -> str | None:
        """Report column (and hash-list field) of the quality score: ``phash_quality``, ..."""
        return f"{self.name}_quality"

    @property
    def vics_name(self) -> str:
        """VICS ``HashName``: the display name (``pHash``), as PDQ's is ``PDQ``."""
        return self.display_name

    def hash_image(self, image: Image.Image, full_size: tuple[int, int] | None = None) -> Hash:
        """The imagehash function's hash of a Pillow image, with its quality (:func:`detail_quality`;
        ``full_size`` makes no difference)."""
        return from_imagehash(self.name, self.function(image), detail_quality(image))

    def hash_array(self, array: np.ndarray) -> Hash:
        """The hash of an HxWx3 (RGB) or HxW (grey) uint8 array, as an RGB image."""
        return self.hash_image(Image.fromarray(np.asarray(array)).convert("RGB"))

    def variant_hashes(self, image: Image.Image, full_size: tuple[int, int] | None = None) -> dict[str, Hash]:
        """The hash of ``image`` with each variant undone (the transposed pixels, hashed)."""
        return {name: self.hash_image(undone) for name, undone in undone_images(image).items()}


# Draft sizes: pHash, dHash and aHash shrink the image to 32x32, 9x8 and 8x8 with a Lanczos filter,
# so a decode at reduced scale that stays at least this large changes very little. wHash picks its
# working scale from the image size, so it needs the full decode.
PHASH = ImagehashAlgorithm("phash", "pHash", lazy_function("imagehash", "phash"), (256, 256), strong_max_distance=4)
DHASH = ImagehashAlgorithm("dhash", "dHash", lazy_function("imagehash", "dhash"), (128, 128), strong_max_distance=4)
AHASH = ImagehashAlgorithm(
    "ahash", "aHash", lazy_function("imagehash", "average_hash"), (128, 128), strong_max_distance=1
)
WHASH = ImagehashAlgorithm("whash", "wHash", lazy_function("imagehash", "whash"), None, strong_max_distance=1)
