"""Rotations and flips: the eight dihedral variants under which known images are looked for.

A variant names how an evidence image is transformed relative to a known one: ``orig`` (as is),
``rot90``/``rot180``/``rot270`` (rotated that far counter-clockwise, Pillow's ``ROTATE_90`` etc.),
``flipx`` (top-bottom), ``flipy`` (mirrored left-right), ``flipp``/``flipm`` (transposed about the
main or the anti-diagonal). To match, the evidence is transformed back by the variant's inverse and
hashed; :func:`variant_hashes` does that for any registered algorithm.
"""

from __future__ import annotations

from PIL import Image

from .algorithms import Algorithm
from .algorithms.pdq import VARIANT_NAMES
from .hashes import Hash

__all__ = ["VARIANT_NAMES", "UNDO_TRANSPOSE", "INVERSE", "variant_hashes"]

#: The Pillow transpose that undoes each variant (applied to the evidence).
UNDO_TRANSPOSE: dict[str, Image.Transpose | None] = {
    "orig": None,
    "rot90": Image.Transpose.ROTATE_270,
    "rot180": Image.Transpose.ROTATE_180,
    "rot270": Image.Transpose.ROTATE_90,
    "flipx": Image.Transpose.FLIP_TOP_BOTTOM,
    "flipy": Image.Transpose.FLIP_LEFT_RIGHT,
    "flipp": Image.Transpose.TRANSPOSE,
    "flipm": Image.Transpose.TRANSVERSE,
}
#: The inverse of each variant that is not its own inverse.
INVERSE = {"rot90": "rot270", "rot270": "rot90"}


def variant_hashes(
    algorithm: Algorithm, image: Image.Image, full_size: tuple[int, int] | None = None, *, rotations: bool = True
) -> dict[str, Hash]:
    """``{variant: hash}`` of an RGB image transformed back by each variant (``orig`` only without
    rotations). ``full_size`` is the full-scale size when ``image`` was decoded at reduced scale.

    An algorithm with a ``variant_hashes(image, full_size)`` method of its own (PDQ: one luma and one
    blur set for all eight, bit-exact with hashing the transformed pixels) supplies them; the others
    are hashed on the transposed image.
    """
    if not rotations:
        return {"orig": algorithm.hash_image(image, full_size=full_size)}
    own = getattr(algorithm, "variant_hashes", None)
    if own is not None:
        return own(image, full_size)
    return {
        name: algorithm.hash_image(image if undo is None else image.transpose(undo))
        for name, undo in UNDO_TRANSPOSE.items()
    }
