"""The imagehash family (pHash, dHash, aHash, wHash), computed by the imagehash library itself.

matcher calls imagehash with its default sizes (64-bit hashes) on the RGB image matcher decoded, so
the hashes are bit-identical to ``imagehash.phash(image)`` and friends on the same image, and the hex
is imagehash's own: ``str(imagehash_hash) == str(matcher_hash)``.

Default match distance 8 of 64 bits (12.5%): the usual threshold for these hashes; re-encodes and
resizes of the same picture stay well under it, while unrelated images sit near 32 (see the README).

Strong distances (see :class:`~matcher.algorithms.base.Algorithm`), measured on 80 generated scenes
(landscape, plasma, shapes, text; 320-400 x 240) against JPEG quality 75 and 30, half and double
size and a radius-2 blur of each, and the 3,160 pairs of different scenes: the largest distance of
an edit and the smallest between different scenes were pHash 4 / 10, dHash 6 / 15, aHash 3 / 7 and
wHash 8 / 8. The strong distances keep clear of the second figure: pHash 4, dHash 4, aHash 2 and
wHash 2.
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

__all__ = ["ImagehashAlgorithm", "PHASH", "DHASH", "AHASH", "WHASH", "from_imagehash"]


def from_imagehash(name: str, value: imagehash.ImageHash) -> Hash:
    """Wrap an ``imagehash.ImageHash`` as a matcher :class:`Hash` (same bits, same hex)."""
    bits = np.packbits(np.asarray(value.hash, dtype=bool).flatten()).tobytes()
    return Hash(name, bits)


@dataclass(frozen=True, slots=True)
class ImagehashAlgorithm:
    """One imagehash function, as a registry entry."""

    name: str
    display_name: str
    function: Callable[[Image.Image], imagehash.ImageHash]
    draft_size: tuple[int, int] | None
    strong_max_distance: int
    bit_length: int = 64
    default_max_distance: int = 8
    has_quality: bool = False
    quality_field: str | None = None
    min_quality: int | None = None
    draft_check_distance: int | None = None

    @property
    def vics_name(self) -> str:
        """VICS ``HashName``: the display name (``pHash``), as PDQ's is ``PDQ``."""
        return self.display_name

    def hash_image(self, image: Image.Image, full_size: tuple[int, int] | None = None) -> Hash:
        """The imagehash function's hash of a Pillow image (``full_size`` makes no difference)."""
        return from_imagehash(self.name, self.function(image))

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
    "ahash", "aHash", lazy_function("imagehash", "average_hash"), (128, 128), strong_max_distance=2
)
WHASH = ImagehashAlgorithm("whash", "wHash", lazy_function("imagehash", "whash"), None, strong_max_distance=2)
