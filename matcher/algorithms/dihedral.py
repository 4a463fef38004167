"""The eight dihedral variants (rotations and flips) and the one naming matcher uses for them.

A variant names how an evidence image is transformed relative to a known one:

==========  ===============================================================  ==========================
name        the evidence is the known image ...                               Pillow transpose (apply)
==========  ===============================================================  ==========================
``orig``    as is                                                             none
``rot90``   rotated 90 degrees counter-clockwise                              ``ROTATE_90``
``rot180``  rotated 180 degrees                                               ``ROTATE_180``
``rot270``  rotated 270 degrees counter-clockwise (90 clockwise)              ``ROTATE_270``
``flipx``   flipped top to bottom                                             ``FLIP_TOP_BOTTOM``
``flipy``   mirrored left to right                                            ``FLIP_LEFT_RIGHT``
``flipp``   transposed about the main diagonal                                ``TRANSPOSE``
``flipm``   transposed about the anti-diagonal                                ``TRANSVERSE``
==========  ===============================================================  ==========================

Every "variant hash" in matcher, keyed by one of these names, is the hash of the evidence with that
variant *undone* (:data:`UNDO_TRANSPOSE`), so it equals (or, for approximations, is near) the hash
of the known image the evidence was made from. This module is a leaf: it imports nothing of
matcher, so the algorithms and :mod:`matcher.variants` can both build on it.
"""

from __future__ import annotations

from PIL import Image

__all__ = ["VARIANT_NAMES", "APPLY_TRANSPOSE", "UNDO_TRANSPOSE", "INVERSE", "undone_images"]

#: The variant names, in the order reports and indexes use.
VARIANT_NAMES: tuple[str, ...] = ("orig", "rot90", "rot180", "rot270", "flipx", "flipy", "flipp", "flipm")

#: The Pillow transpose that makes each variant from the known image (``None``: unchanged).
APPLY_TRANSPOSE: dict[str, Image.Transpose | None] = {
    "orig": None,
    "rot90": Image.Transpose.ROTATE_90,
    "rot180": Image.Transpose.ROTATE_180,
    "rot270": Image.Transpose.ROTATE_270,
    "flipx": Image.Transpose.FLIP_TOP_BOTTOM,
    "flipy": Image.Transpose.FLIP_LEFT_RIGHT,
    "flipp": Image.Transpose.TRANSPOSE,
    "flipm": Image.Transpose.TRANSVERSE,
}

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
INVERSE: dict[str, str] = {"rot90": "rot270", "rot270": "rot90"}


def undone_images(image: Image.Image) -> dict[str, Image.Image]:
    """``{variant: image with that variant undone}`` for the eight variants (``orig`` is ``image``)."""
    return {name: image if undo is None else image.transpose(undo) for name, undo in UNDO_TRANSPOSE.items()}
