"""The imagehash family (pHash, dHash, aHash, wHash), computed by the imagehash library itself.

matcher calls imagehash with its default sizes (64-bit hashes) on the RGB image matcher decoded, so
the hashes are bit-identical to ``imagehash.phash(image)`` and friends on the same image, and the hex
is imagehash's own: ``str(imagehash_hash) == str(matcher_hash)``.

Default match distance 8 of 64 bits (12.5%): the usual threshold for these hashes; re-encodes and
resizes of the same picture stay well under it, while unrelated images sit near 32 (see the README).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

from ..hashes import Hash

__all__ = ["ImagehashAlgorithm", "PHASH", "DHASH", "AHASH", "WHASH", "from_imagehash"]


def from_imagehash(name: str, value: imagehash.ImageHash) -> Hash:
    """Wrap an ``imagehash.ImageHash`` as a matcher :class:`Hash` (same bits, same hex)."""
    bits = np.packbits(np.asarray(value.hash, dtype=bool).flatten()).tobytes()
    return Hash(name, bits)


@dataclass(frozen=True, slots=True)
class ImagehashAlgorithm:
    """One imagehash function, as a registry entry."""

    name: str
    function: Callable[[Image.Image], imagehash.ImageHash]
    draft_size: tuple[int, int] | None
    bit_length: int = 64
    default_max_distance: int = 8
    has_quality: bool = False
    min_quality: int | None = None

    def hash_image(self, image: Image.Image, full_size: tuple[int, int] | None = None) -> Hash:
        """The imagehash function's hash of a Pillow image (``full_size`` makes no difference)."""
        return from_imagehash(self.name, self.function(image))


# Draft sizes: pHash, dHash and aHash shrink the image to 32x32, 9x8 and 8x8 with a Lanczos filter,
# so a decode at reduced scale that stays at least this large changes very little. wHash picks its
# working scale from the image size, so it needs the full decode.
PHASH = ImagehashAlgorithm("phash", imagehash.phash, (256, 256))
DHASH = ImagehashAlgorithm("dhash", imagehash.dhash, (128, 128))
AHASH = ImagehashAlgorithm("ahash", imagehash.average_hash, (128, 128))
WHASH = ImagehashAlgorithm("whash", imagehash.whash, None)

from . import registry  # noqa: E402

for _algorithm in (PHASH, DHASH, AHASH, WHASH):
    registry.register(_algorithm)
