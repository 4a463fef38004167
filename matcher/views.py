"""Views: named regions of a frame, hashed on both sides so that edited copies still match.

PDQ and its kin survive re-encoding, resizing and colour changes, but not cropping, borders or
captions: a 5% centred crop moves PDQ ~44 bits, a 20% letterbox ~86, while unrelated images sit at 90
and more. The same pixels cut out on both sides hash alike, however, so matcher hashes a few fixed
regions of every *known* image as it is indexed, and a few regions of every *queried* frame, and
searches each query view against the known views it can meet (:func:`known_views_for`).

Known side (:func:`known_view_hashes`, one hash per view and algorithm, :data:`KNOWN_VIEWS`):

- ``trim``: the content inside uniform borders (:func:`matcher.borders.find_content_box`), only for
  an image that has them;
- ``top88``/``bottom88``: the top / bottom 88% of the height (what a caption banner over the other
  12% leaves);
- ``crop5``/``crop10``: centred crops removing 5% / 10% of the width and of the height (half of it on
  each side);
- ``crop5tl`` ... ``crop10br``: 5% / 10% of the width and of the height removed from the two named
  sides (``tl``: top and left, so the rest is the bottom-right part; likewise ``tr``, ``bl``, ``br``);
- ``rotl4``/``rotr4``: rotated 4 degrees counter-clockwise / clockwise about the centre, same size,
  black corners, bicubic.

Query side (:func:`query_view_hashes`): the eight dihedral variants of :mod:`matcher.variants`
(``orig``, ``rot90``, ...), the border-trimmed frame as ``trim`` and ``trim+rot90``, ``trim+flipy``,
... (only when a border is found), ``top88``/``bottom88`` of the frame as it is, and an *inset* view
``inset@L,T,R,B`` for each rectangle :func:`matcher.insets.find_insets` proposes (a collage tile, a
picture pasted into a screenshot; ``L,T,R,B`` its box in the frame's full-scale pixels), searched
against the known images' own hashes and ``trim`` views: PDQ hardly notices the resizing and the
changed aspect of a pasted picture, so the cut-out meets the known image's hash. Each query view
carries its own quality, and is searched only when that quality passes its algorithm's gate.

Views are *fixed fractions* of the frame. A crop of exactly 5% or 10% (rounded as :func:`region_box`
does, like the test fixtures' crop edits) gives the same pixels as the known view and so the same
hash. Any other crop matches only as far as PDQ tolerates the mismatch of regions, which is little: a
fraction of a percent to a few percent depending on the picture (sharp text and shapes the least).
Views catch the common edits, not every crop.

``full_size`` (width, height) is the full-scale size of a frame decoded at reduced scale (JPEG draft
mode). Regions are then cut in the decoded pixels and each region's full-scale size (scaled by
``full_size / image.size``) is passed on to the algorithm, so PDQ's scale-aware path stays right.
Regions smaller than :data:`MIN_VIEW_SIZE` pixels on a side are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from .algorithms import Algorithm
from .borders import find_content_box
from .errors import UsageError
from .hashes import Hash
from .insets import Box, find_insets
from .variants import VARIANT_NAMES, variant_hashes

__all__ = [
    "DIHEDRAL_WORDS",
    "INSET_VIEW",
    "KNOWN_VIEWS",
    "MIN_VIEW_SIZE",
    "REGION_VIEWS",
    "TRIM_VIEW",
    "describe_match",
    "full_scale_box",
    "inset_box",
    "inset_view",
    "known_view_hashes",
    "known_views_for",
    "query_view_hashes",
    "region_box",
]

#: The border-trimmed view; on the query side also ``"trim+<variant>"`` for each dihedral variant.
TRIM_VIEW = "trim"
#: Views of the frame as it is, searched against the known views of the same name.
REGION_VIEWS: tuple[str, ...] = ("top88", "bottom88")
# Cropped views: name -> (fraction removed from the width and the height, where it is removed:
# "centre" (half on each side) or the two sides named by the letters t/b and l/r).
_CROPS: dict[str, tuple[float, str]] = {
    "crop5": (0.05, "centre"),
    "crop10": (0.10, "centre"),
    "crop5tl": (0.05, "tl"),
    "crop5tr": (0.05, "tr"),
    "crop5bl": (0.05, "bl"),
    "crop5br": (0.05, "br"),
    "crop10tl": (0.10, "tl"),
    "crop10tr": (0.10, "tr"),
    "crop10bl": (0.10, "bl"),
    "crop10br": (0.10, "br"),
}
# Fraction of the height a caption banner covers (removed from the bottom for top88, the top for bottom88).
_BAND = 0.12
# Small rotations: name -> degrees counter-clockwise (Pillow's Image.rotate).
_ROTATIONS: dict[str, float] = {"rotl4": 4.0, "rotr4": -4.0}
#: Every known-side view, in the order they are preferred on equal distance.
KNOWN_VIEWS: tuple[str, ...] = (TRIM_VIEW, *REGION_VIEWS, *_CROPS, *_ROTATIONS)
#: Regions (and images, for the rotations) smaller than this on either side are not hashed as a view.
MIN_VIEW_SIZE = 8

#: The prefix of an inset query view's name: ``inset@L,T,R,B`` (:func:`inset_view`).
INSET_VIEW = "inset"

# The rule of which known views each query view is searched against (None: the records' main hashes).
_FOR_DIHEDRAL: tuple[str | None, ...] = (None, TRIM_VIEW, *_CROPS, *_ROTATIONS)
_FOR_TRIM: tuple[str | None, ...] = (None, TRIM_VIEW)


def inset_view(box: Box) -> str:
    """The query view name of an inset at ``box`` (``(left, top, right, bottom)`` in the frame's
    full-scale pixels): ``"inset@L,T,R,B"``, so a match's ``variant`` says where the known image lies."""
    return f"{INSET_VIEW}@{box[0]},{box[1]},{box[2]},{box[3]}"


def inset_box(view: str | None) -> Box | None:
    """The box of an inset query view's name (:func:`inset_view`), or ``None`` for any other name."""
    if not isinstance(view, str) or not view.startswith(INSET_VIEW + "@"):
        return None
    parts = view[len(INSET_VIEW) + 1 :].split(",")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    left, top, right, bottom = (int(p) for p in parts)
    return (left, top, right, bottom) if left < right and top < bottom else None


def known_views_for(query_view: str) -> tuple[str | None, ...]:
    """The known views a query view is searched against; ``None`` stands for the records' main
    (full-frame) hashes.

    A dihedral variant (``orig``, ``rot90``, ...) meets the main hashes, ``trim``, the crops and the
    small rotations (the frame may be a crop or a rotation of a known image, or the uncropped
    original of a known bordered one); ``trim`` and ``trim+<variant>`` meet the main hashes and
    ``trim``; ``top88``/``bottom88`` meet only the known view of the same name; an inset
    (``inset@L,T,R,B``: a picture embedded in the frame) meets the main hashes and ``trim``. Raises
    :class:`~matcher.errors.UsageError` for a name :func:`query_view_hashes` never gives.
    """
    if query_view in VARIANT_NAMES:
        return _FOR_DIHEDRAL
    if query_view == TRIM_VIEW or (
        isinstance(query_view, str)
        and query_view.startswith(TRIM_VIEW + "+")
        and query_view[len(TRIM_VIEW) + 1 :] in VARIANT_NAMES
    ):
        return _FOR_TRIM
    if query_view in REGION_VIEWS:
        return (query_view,)
    if inset_box(query_view) is not None:
        return _FOR_TRIM
    raise UsageError(f"no query view {query_view!r}")


#: How the evidence differs from the known image for each dihedral query view, in a reviewer's words
#: (the transform that makes the evidence from the known image; see :mod:`matcher.variants`).
DIHEDRAL_WORDS: dict[str, str] = {
    "orig": "as is",
    "rot90": "rotated 90° counter-clockwise",
    "rot180": "rotated 180°",
    "rot270": "rotated 90° clockwise",
    "flipx": "flipped upside down",
    "flipy": "mirrored",
    "flipp": "rotated 90° clockwise and mirrored",
    "flipm": "rotated 90° counter-clockwise and mirrored",
}
_SIDES = {
    "centre": "centred",
    "tl": "at top and left",
    "tr": "at top and right",
    "bl": "at bottom and left",
    "br": "at bottom and right",
}
# A region query view meets the known view of the same name: the band outside it differs (a caption).
_REGION_WORDS = {"top88": "caption band cut at bottom", "bottom88": "caption band cut at top"}


def _known_view_words(view: str) -> str | None:
    if view in _CROPS:
        fraction, where = _CROPS[view]
        return f"cropped {round(fraction * 100)}% {_SIDES[where]}"
    if view in _ROTATIONS:
        degrees = _ROTATIONS[view]
        return f"rotated {abs(degrees):g}° {'counter-clockwise' if degrees > 0 else 'clockwise'}"
    return None


#: The ``variant`` of a match found by local features (:mod:`matcher.local_features`): the known
#: image found inside the evidence frame (a crop, a turn, a screenshot, a collage tile).
LOCAL_VARIANT = "local"


def describe_match(
    variant: str | None,
    view: str | None,
    inliers: int | None = None,
    region: tuple[int, int, int, int] | None = None,
) -> str:
    """What the evidence differs by from the known image, in words a reviewer reads, for a match's
    short codes: ``variant`` (the evidence's query view, ``None`` for a digest match) and ``view``
    (the known image's view, ``None`` for its own hash).

    The parts, joined by ``", "`` in the order the edits were made to the known image: the known
    view (``crop10`` "cropped 10% centred", ``crop5tl`` "cropped 5% at top and left", ``rotl4``
    "rotated 4° counter-clockwise"), the rotation or flip (``rot270`` "rotated 90° clockwise",
    ``flipy`` "mirrored", :data:`DIHEDRAL_WORDS`), then borders (a ``trim`` query view: "borders
    added"; the known image's ``trim`` view: "borders trimmed"; both: "borders changed") or a caption
    band (``top88`` "caption band cut at bottom", ``bottom88`` "caption band cut at top": the
    evidence's top / bottom 88% matched, the band outside it differs). An inset (``inset@L,T,R,B``)
    is "known image found inside a region of the frame (a collage tile or a pasted picture) at x
    L-R, y T-B" (", borders trimmed" against the known ``trim`` view). The evidence as it is against
    the known image's own hash is ``"as is"``, a digest match ``"identical file"``. Codes this
    version does not know are shown as they are (``"variant X, view Y"``), never an error, so old
    reports stay readable. A local-feature match (``variant`` :data:`LOCAL_VARIANT`) is "known image
    found inside the frame at x 10-330, y 20-260 (N inliers)" (``region``: where it lies in the frame, in
    frame pixels; ``inliers``: its verified point matches).
    """
    if variant == LOCAL_VARIANT and view is None:
        where = "" if region is None else f" at x {region[0]}-{region[2]}, y {region[1]}-{region[3]}"
        return "known image found inside the frame" + where + ("" if inliers is None else f" ({inliers} inliers)")
    if variant is None and view is None:
        return "identical file"
    box = inset_box(variant)
    if box is not None and view in (None, TRIM_VIEW):
        return (
            "known image found inside a region of the frame (a collage tile or a pasted picture) "
            f"at x {box[0]}-{box[2]}, y {box[1]}-{box[3]}" + (", borders trimmed" if view == TRIM_VIEW else "")
        )
    query = variant or "orig"
    trimmed_query = query == TRIM_VIEW or query.startswith(TRIM_VIEW + "+")
    turned = query[len(TRIM_VIEW) + 1 :] if query.startswith(TRIM_VIEW + "+") else "orig" if trimmed_query else query
    parts: list[str] = []
    if query in REGION_VIEWS:
        if view != query:
            return _unknown(variant, view)
        return _REGION_WORDS[query]
    if turned not in DIHEDRAL_WORDS:
        return _unknown(variant, view)
    if view is not None and view != TRIM_VIEW:
        words = _known_view_words(view)
        if words is None or trimmed_query:
            return _unknown(variant, view)
        parts.append(words)
    if turned != "orig":
        parts.append(DIHEDRAL_WORDS[turned])
    if trimmed_query or view == TRIM_VIEW:
        parts.append(
            "borders changed"
            if trimmed_query and view == TRIM_VIEW
            else "borders added"
            if trimmed_query
            else "borders trimmed"
        )
    return ", ".join(parts) or DIHEDRAL_WORDS["orig"]


def _unknown(variant: str | None, view: str | None) -> str:
    return f"variant {variant}, view {view}"


def region_box(view: str, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The ``(left, top, right, bottom)`` box of a fixed-region view (``top88``, ``bottom88`` or a
    crop view) in an image of ``size`` (width, height).

    Rounding follows the usual crop edit: ``dw = round(w * fraction)`` (at most ``w - 1``) pixels
    removed, ``dw // 2`` of them on the left for a centred crop; likewise for the height. The caption
    band is ``round(h * 0.12)`` pixels (at least 1). Raises :class:`~matcher.errors.UsageError` for
    another view name.
    """
    w, h = size
    if view in REGION_VIEWS:
        band = min(h - 1, max(1, round(h * _BAND))) if h > 1 else 0
        return (0, 0, w, h - band) if view == "top88" else (0, band, w, h)
    if view not in _CROPS:
        raise UsageError(f"no region view {view!r} (region views: {', '.join((*REGION_VIEWS, *_CROPS))})")
    fraction, where = _CROPS[view]
    dw, dh = max(0, min(w - 1, round(w * fraction))), max(0, min(h - 1, round(h * fraction)))
    if where == "centre":
        left, top = dw // 2, dh // 2
        return (left, top, left + w - dw, top + h - dh)
    left = dw if "l" in where else 0
    top = dh if "t" in where else 0
    return (left, top, left + w - dw, top + h - dh)


def _rgb(image: Image.Image) -> Image.Image:
    """``image`` as RGB, converted once for all views (an RGB image is used as it is)."""
    if not isinstance(image, Image.Image):
        raise UsageError(f"views need a Pillow image, not {type(image).__name__}")
    if image.mode == "RGB":
        return image
    if image.mode == "L":
        return image.convert("RGB")
    from .imaging import (
        to_rgb,  # local import: the decoding module is only needed for other modes
    )

    return to_rgb(image)


def _scaled_size(
    size: tuple[int, int], image_size: tuple[int, int], full_size: tuple[int, int] | None
) -> tuple[int, int] | None:
    """The full-scale size of a region of ``size`` pixels of a reduced decode (``None``: not reduced)."""
    if full_size is None or full_size == image_size:
        return None
    return (
        max(1, round(size[0] * full_size[0] / image_size[0])),
        max(1, round(size[1] * full_size[1] / image_size[1])),
    )


def _region(
    image: Image.Image, box: tuple[int, int, int, int], full_size: tuple[int, int] | None
) -> tuple[Image.Image, tuple[int, int] | None] | None:
    """The cropped region and its full-scale size, or ``None`` when it is too small to hash."""
    left, top, right, bottom = box
    if min(right - left, bottom - top) < MIN_VIEW_SIZE:
        return None
    region = image.crop(box)
    return region, _scaled_size(region.size, image.size, full_size)


def _check_full_size(full_size: tuple[int, int] | None) -> None:
    if full_size is None:
        return
    if not (
        isinstance(full_size, tuple)
        and len(full_size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in full_size)
    ):
        raise UsageError(f"full_size must be a (width, height) tuple of positive ints or None, not {full_size!r}")


def _with_quality(value: Hash, quality: int | None) -> Hash:
    """``value`` carrying ``quality`` (unchanged for algorithms without one)."""
    if quality is None or value.quality is None or value.quality == quality:
        return value
    return Hash(value.algorithm, value.bits, quality)


def known_view_hashes(
    algorithm: Algorithm, image: Image.Image, full_size: tuple[int, int] | None = None, *, main: Hash | None = None
) -> dict[str, Hash]:
    """``{view: hash}`` of a known image's views (:data:`KNOWN_VIEWS`; ``trim`` only when the image has
    borders, and no view whose region is under :data:`MIN_VIEW_SIZE` pixels on a side).

    ``image`` is an RGB or L Pillow image (other modes are converted as the decoder does);
    ``full_size`` is its full-scale size when it was decoded at reduced scale. ``main`` is the
    image's own hash when the caller has it (computed otherwise): a view's quality is capped at the
    image's, so the views of a flat image stay as unsearchable as its main hash (the black corners of
    a small rotation would otherwise lend it detail, and flat images would match each other).
    """
    _check_full_size(full_size)
    rgb = _rgb(image)
    if main is None:
        main = algorithm.hash_image(rgb, full_size=full_size)
    out: dict[str, Hash] = {}
    box = find_content_box(rgb)
    if box is not None:
        trimmed = _region(rgb, box, full_size)
        if trimmed is not None:
            out[TRIM_VIEW] = algorithm.hash_image(*trimmed)
    for view in (*REGION_VIEWS, *_CROPS):
        region = _region(rgb, region_box(view, rgb.size), full_size)
        if region is not None:
            out[view] = algorithm.hash_image(*region)
    if min(rgb.size) >= MIN_VIEW_SIZE:
        for view, degrees in _ROTATIONS.items():
            turned = rgb.rotate(degrees, Image.Resampling.BICUBIC, expand=False, fillcolor=(0, 0, 0))
            out[view] = algorithm.hash_image(turned, full_size)
    if main.quality is None:
        return out
    return {
        view: _with_quality(value, min(main.quality, value.quality if value.quality is not None else 100))
        for view, value in out.items()
    }


def query_view_hashes(
    algorithm: Algorithm,
    image: Image.Image,
    full_size: tuple[int, int] | None = None,
    *,
    rotations: bool = True,
    trim_borders: bool = True,
    regions: bool = True,
    insets: bool | Sequence[Box] = True,
) -> dict[str, Hash]:
    """``{query view: hash}`` of a queried frame: always ``orig``; with ``rotations`` the other seven
    dihedral variants; with ``trim_borders``, when the frame has borders, ``trim`` (and with
    ``rotations`` ``trim+rot90``, ``trim+flipy``, ...); with ``regions``, ``top88`` and ``bottom88``;
    with ``insets``, ``inset@L,T,R,B`` for each rectangle :func:`matcher.insets.find_insets`
    proposes (``insets`` may instead be those boxes, in ``image``'s pixels, when the caller has
    found them already: one search per frame serves every algorithm).

    Every query view carries its own quality (as its algorithm measures it on the view's pixels): a
    region or a trimmed view can be flat where the frame is not (a flat caption band, a flat border
    region), and the other way round, so a scan gates each view on its own quality, never on the
    frame's. Search each one against :func:`known_views_for` of its name. ``image`` is an RGB or L Pillow image
    (other modes are converted as the decoder does); ``full_size`` is its full-scale size when it was
    decoded at reduced scale.
    """
    _check_full_size(full_size)
    rgb = _rgb(image)
    out = dict(variant_hashes(algorithm, rgb, full_size, rotations=rotations))
    if trim_borders:
        box = find_content_box(rgb)
        trimmed = None if box is None else _region(rgb, box, full_size)
        if trimmed is not None:
            for variant, value in variant_hashes(algorithm, *trimmed, rotations=rotations).items():
                out[TRIM_VIEW if variant == "orig" else f"{TRIM_VIEW}+{variant}"] = value
    if regions:
        for view in REGION_VIEWS:
            region = _region(rgb, region_box(view, rgb.size), full_size)
            if region is not None:
                out[view] = algorithm.hash_image(*region)
    boxes = (find_insets(rgb) if insets else ()) if isinstance(insets, bool) else tuple(insets)
    for box in boxes:
        region = _region(rgb, box, full_size)
        if region is not None:
            out[inset_view(full_scale_box(box, rgb.size, full_size))] = algorithm.hash_image(*region)
    return out


def full_scale_box(box: Box, image_size: tuple[int, int], full_size: tuple[int, int] | None) -> Box:
    """``box`` in a reduced decode's pixels (``image_size``) as full-scale pixels (unchanged when not
    reduced): the inset views' names and the insets' local features (:mod:`matcher.pipeline`)."""
    if full_size is None or full_size == image_size:
        return box
    sx, sy = full_size[0] / image_size[0], full_size[1] / image_size[1]
    return (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))
