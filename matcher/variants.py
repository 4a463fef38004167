"""Rotations and flips: the eight dihedral variants under which known images are looked for.

A variant names how an evidence image is transformed relative to a known one: ``orig`` (as is),
``rot90``/``rot180``/``rot270`` (rotated that far counter-clockwise, Pillow's ``ROTATE_90`` etc.),
``flipx`` (top-bottom), ``flipy`` (mirrored left-right), ``flipp``/``flipm`` (transposed about the
main or the anti-diagonal). To match, the evidence is transformed back by the variant's inverse and
hashed; :func:`variant_hashes` does that for any registered algorithm. The naming itself lives in
:mod:`matcher.algorithms.dihedral` (re-exported here), which the algorithms share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image

from .algorithms.dihedral import APPLY_TRANSPOSE, INVERSE, UNDO_TRANSPOSE, VARIANT_NAMES, undone_images

if TYPE_CHECKING:
    from .algorithms import Algorithm
    from .hashes import Hash

__all__ = ["VARIANT_NAMES", "UNDO_TRANSPOSE", "APPLY_TRANSPOSE", "INVERSE", "variant_hashes"]


def variant_hashes(
    algorithm: Algorithm, image: Image.Image, full_size: tuple[int, int] | None = None, *, rotations: bool = True
) -> dict[str, Hash]:
    """``{variant: hash}`` of an RGB image transformed back by each variant (``orig`` only without
    rotations). ``full_size`` is the full-scale size when ``image`` was decoded at reduced scale.

    The algorithm's own :meth:`~matcher.algorithms.base.Algorithm.variant_hashes` supplies them (PDQ:
    one luma plane for all eight, bit-exact with hashing the transformed pixels); an algorithm
    registered without that method gets its :meth:`hash_image` of the transposed pixels.
    """
    if not rotations:
        return {"orig": algorithm.hash_image(image, full_size=full_size)}
    own = getattr(algorithm, "variant_hashes", None)
    if own is not None:
        return dict(own(image, full_size))
    return {name: algorithm.hash_image(undone) for name, undone in undone_images(image).items()}
