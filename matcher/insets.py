"""Insets: rectangles of a frame that look like embedded pictures (a collage tile, a picture pasted
into a screenshot), proposed so that each can be hashed as a query view on its own.

PDQ and its kin box-filter a picture down to 64 x 64 before hashing, so they hardly notice resizing
or a changed aspect ratio; what they cannot survive is surrounding content. Cut the exact rectangle
where a known picture was pasted back out of a contact sheet or a chat screenshot, and its hash meets
the known image's own hash at the normal threshold. :func:`find_insets` proposes those rectangles;
:mod:`matcher.views` hashes them (``inset`` query views).

The rule: a recursive XY-cut on *flat lines*, on a copy of the frame's luma reduced by an integer
factor to at most :data:`WORK_SIDE` pixels a side (block means, which also average JPEG noise away).
A row (column) of a region is flat when its levels span at most :data:`FLAT_TOLERANCE` over the
region's whole width (height).

1. *Trim.* Flat lines at a region's edges are trimmed while they keep the outermost one's level.
   Inside the frame, where the background around a region is known (the level of the gutters it
   was cut out along), only lines of that level, or lines whose level continues past the region
   (a header bar a pasted picture touches), are trimmed: a picture's own flat margin stays. Then,
   around a part cut out of a flat background, the lines at its ends that are mostly background
   (over half their pixels within a few levels of it, or clearly more than the part's least
   background line) are trimmed too: the avatars and message lines beside a pasted picture.
2. *Cut.* A region is split at every run of flat lines of the background's level (at the top: of
   the commonest flat level) that spans it from edge to edge, rows first (the bands of a contact
   sheet), else columns (the tiles of a band); the parts are regions again, down to
   :data:`MAX_DEPTH` levels; parts too small to be proposed are not followed.
3. *Propose.* Every region below the frame (the frame trimmed of its borders is the ``trim``
   view's) of at least :data:`MIN_FRACTION` of the frame's width and height and :data:`MIN_SIDE`
   pixels, under 90% of the frame's area and not mostly flat both ways, is a candidate. Its edges
   are placed on the full-scale frame (each within the reduction factor of its reduced place, on
   the outermost line that is picture rather than background). Regions that were not split
   further come first (a tile, a pasted picture), then the split ones (a band of tiles), each
   largest first, ties by position; at most :data:`MAX_INSETS` are kept. Deterministic.

Why flat lines rather than edge detection (Canny, contours, straight segments): contact sheets,
chat and social-media interfaces and document pages put pictures on flat backgrounds or separate
them by flat gutters, and flat lines are found by vectorised min/max over a few regions: 0.5-1.5 ms
for a photograph with none, a few ms for a contact sheet (``python -m
benchmarks.robustness.inset_cost``), where Canny + contours cost about as much and propose every
closed textured blob of a photograph, and miss a picture whose edge meets the frame's edge or a bar
of its own colour. A picture pasted over another photograph is left to local features
(:mod:`matcher.local_features`). A plain photograph has no flat line spanning it, so it gets no
proposal and costs nothing more to hash; a text card (a document) may get its blocks of lines.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import UsageError

__all__ = [
    "FLAT_TOLERANCE",
    "MAX_DEPTH",
    "MAX_INSETS",
    "MIN_FRACTION",
    "MIN_SIDE",
    "WORK_SIDE",
    "Box",
    "find_insets",
]

#: ``(left, top, right, bottom)`` in pixels (Pillow's crop convention).
Box = tuple[int, int, int, int]

#: The reduced copy the regions are looked for on is at most this many pixels a side.
WORK_SIDE = 512
#: A line is flat when its grey levels span at most this much (on the reduced copy).
FLAT_TOLERANCE = 12
#: Regions are split at most this many levels deep.
MAX_DEPTH = 4
#: At most this many insets are proposed per frame.
MAX_INSETS = 10
#: An inset is at least this fraction of the frame's width and of its height.
MIN_FRACTION = 0.10
#: An inset is at least this many pixels a side (and at least :data:`matcher.views.MIN_VIEW_SIZE`).
MIN_SIDE = 32
# An inset whose area is at least this fraction of the frame's is the frame (or its trimmed self).
_WHOLE = 0.9
# A candidate with more than this fraction of flat rows and of flat columns is mostly background.
_MAX_FLAT_SHARE = 0.5
# Around a part cut out of a flat background, an end line with more than this share of pixels within
# _BACKGROUND_TOLERANCE of the background's level is trimmed (a caption or an avatar beside a picture).
_BACKGROUND_SHARE = 0.5
_BACKGROUND_TOLERANCE = 6
_BACKGROUND_MARGIN = 0.25
# Regions looked at per frame, at most (a hostile frame of many tiny gutters stays cheap).
_MAX_REGIONS = 256


def _grey(image: Image.Image) -> Image.Image:
    """The frame's luma as an L image."""
    if image.mode == "L":
        return image
    return (image if image.mode == "RGB" else image.convert("RGB")).convert("L")


def _flat(lines: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per line of a 2-D array along ``axis`` (1: rows, 0: columns): whether it is flat, and its level
    (the middle of its range)."""
    low, high = lines.min(axis=axis), lines.max(axis=axis)
    return (high - low) <= FLAT_TOLERANCE, (low + high) // 2


def _hard_trim(
    flat: np.ndarray, level: np.ndarray, background: int | None, continues: np.ndarray
) -> tuple[int, int, int | None]:
    """``(start, stop, colour)`` of a region's lines once the flat lines at each end, of the colour of
    the outermost one, are trimmed (``start == stop``: nothing left). When the ``background`` level
    around the region is known, only lines of that level or whose colour ``continues`` past the
    region's span (a header bar a pasted picture touches) are trimmed: a picture's own flat margin
    stays. ``colour``: the level of the trimmed lines (``None``: none trimmed)."""
    n = len(flat)
    trimmable = flat if background is None else flat & ((np.abs(level - background) <= FLAT_TOLERANCE) | continues)
    start, stop, colour = 0, n, None
    if trimmable[0]:
        colour = int(level[0])
        while start < n and trimmable[start] and abs(int(level[start]) - colour) <= FLAT_TOLERANCE:
            start += 1
    if start < n and trimmable[n - 1]:
        end = int(level[n - 1])
        colour = end if colour is None else colour
        while stop > start and trimmable[stop - 1] and abs(int(level[stop - 1]) - end) <= FLAT_TOLERANCE:
            stop -= 1
    return start, max(start, stop), colour


def _continues(work: np.ndarray, box: Box, level: np.ndarray, axis: int) -> np.ndarray:
    """Per line of the region ``box`` of ``work`` (rows for ``axis`` 1, columns for 0): whether the
    pixel just outside the region on either end of the line has the line's level."""
    left, top, right, bottom = box
    out = np.zeros(len(level), bool)
    if axis == 1:
        outside = [work[top:bottom, x] for x in (left - 1, right) if 0 <= x < work.shape[1]]
    else:
        outside = [work[y, left:right] for y in (top - 1, bottom) if 0 <= y < work.shape[0]]
    for pixels in outside:
        out |= np.abs(pixels - level) <= FLAT_TOLERANCE
    return out


def _extent(box: Box, axis: int) -> int:
    """How many lines ``box`` spans: rows for ``axis`` 1, columns for 0."""
    return box[3] - box[1] if axis == 1 else box[2] - box[0]


def _trim_axis(work: np.ndarray, box: Box, axis: int, background: int | None) -> tuple[Box, int | None]:
    """``box`` with the flat lines at its ends along ``axis`` (rows for 1, columns for 0) trimmed by
    :func:`_hard_trim`, and the trimmed lines' colour (``None``: none trimmed)."""
    left, top, right, bottom = box
    flat, level = _flat(work[top:bottom, left:right], axis)
    start, stop, colour = _hard_trim(flat, level, background, _continues(work, box, level, axis))
    if axis == 1:
        return (left, top + start, right, top + stop), colour
    return (left + start, top, left + stop, bottom), colour


def _soft_trim(share: np.ndarray) -> tuple[int, int]:
    """``(start, stop)`` once the lines at each end that are mostly background are trimmed: more than
    :data:`_BACKGROUND_SHARE` of their pixels, or clearly more than the least of any line (a
    picture's lines are all alike there: only the rows of the part beside it are background)."""
    mostly = share > min(_BACKGROUND_SHARE, float(share.min()) + _BACKGROUND_MARGIN)
    n = len(mostly)
    start = int(np.argmin(mostly)) if not mostly.all() else n
    stop = n - int(np.argmin(mostly[::-1])) if not mostly.all() else n
    return start, max(start, stop)


def _parts(flat: np.ndarray) -> list[tuple[int, int]]:
    """The runs of lines that are not flat, as ``(start, stop)``."""
    edges = np.flatnonzero(np.diff(np.concatenate(([1], flat.astype(np.int8), [1]))))
    return [(int(edges[i]), int(edges[i + 1])) for i in range(0, len(edges), 2)]


def _regions(work: np.ndarray, min_w: int, min_h: int) -> list[tuple[Box, bool, int | None]]:
    """Every region of at least ``min_w`` x ``min_h`` of the recursive XY-cut of the reduced frame
    (the frame itself excluded), as ``(box on the reduced frame, whether it was split further, the
    background level around it if known)``."""
    out: list[tuple[Box, bool, int | None]] = []
    # (box, depth, background colour around it, axis of the cut that made it: 1 rows, 0 columns)
    todo: list[tuple[Box, int, int | None, int]] = [((0, 0, work.shape[1], work.shape[0]), 0, None, 1)]
    seen = 0
    while todo and seen < _MAX_REGIONS:
        (left, top, right, bottom), depth, background, made_by = todo.pop()
        seen += 1
        # trim: flat lines of the outer colour (rows, then columns, twice: corners belong to both), then,
        # around a part cut out of a flat background, the lines at the ends that are mostly that background
        known = background if depth > 0 else None
        box = (left, top, right, bottom)
        for axis in (1, 0, 1, 0):
            box, colour = _trim_axis(work, box, axis, known)
            background = colour if background is None else background
            if _extent(box, axis) < 2:
                break
        left, top, right, bottom = box
        if bottom - top < min_h or right - left < min_w:
            continue
        if background is not None and depth > 0:
            near = np.abs(work[top:bottom, left:right] - background) <= _BACKGROUND_TOLERANCE
            for axis in (1 - made_by, made_by):  # first the lines along the cut that made the part
                if bottom - top < 2 or right - left < 2:
                    break
                share = near.mean(axis=axis)
                s0, s1 = _soft_trim(share)
                if axis == 1:
                    near = near[s0:s1]
                    top, bottom = top + s0, top + s1
                else:
                    near = near[:, s0:s1]
                    left, right = left + s0, left + s1
            if bottom - top < min_h or right - left < min_w:
                continue
        box = (left, top, right, bottom)
        split = False
        if depth < MAX_DEPTH:
            region = work[top:bottom, left:right]
            for axis in (1, 0):  # rows first: bands of a contact sheet, then the tiles of each band
                flat, level = _flat(region, axis)
                if not flat.any():
                    continue
                # gutters are flat lines of the background's colour (else of the commonest flat level):
                # a picture's own flat margin in another colour is no gutter
                cut_colour = int(np.median(level[flat])) if background is None or depth == 0 else background
                flat &= np.abs(level - cut_colour) <= FLAT_TOLERANCE
                parts = _parts(flat)
                if len(parts) < 2:
                    continue
                kept = [(start, stop) for start, stop in parts if stop - start >= (min_h if axis == 1 else min_w)]
                for start, stop in kept:
                    if axis == 1:
                        child = (left, top + start, right, top + stop)
                    else:
                        child = (left + start, top, left + stop, bottom)
                    todo.append((child, depth + 1, cut_colour, axis))
                split = len(kept) > 1
                break
        if depth > 0:  # (the frame trimmed of its borders is the trim view's)
            out.append((box, split, background))
    return out


def _content(lines: np.ndarray, axis: int, background: int | None) -> np.ndarray:
    """Per line of a 2-D array along ``axis``: whether it is picture rather than background (not flat;
    with a known ``background`` level, not mostly of that level)."""
    if background is None:
        return ~_flat(lines, axis)[0]
    near: np.ndarray = np.abs(lines - background) <= _BACKGROUND_TOLERANCE
    content: np.ndarray = near.mean(axis=axis) <= _BACKGROUND_SHARE
    return content


def _edge(
    grey: np.ndarray, start: int, stop: int, span: tuple[int, int], axis: int, background: int | None
) -> list[int]:
    """The lines ``start..stop`` (rows for ``axis`` 1, columns for 0, clipped to the frame) over
    ``span`` of the other axis that are picture rather than background (:func:`_content`)."""
    start, stop = max(0, start), min(grey.shape[0 if axis == 1 else 1], stop)
    if stop <= start:
        return []
    strip = grey[start:stop, span[0] : span[1]] if axis == 1 else grey[span[0] : span[1], start:stop]
    strip = strip.astype(np.int16)
    return [start + int(i) for i in np.flatnonzero(_content(strip, axis, background))]


def _refine(grey: np.ndarray, box: Box, factor: int, background: int | None) -> Box:
    """``box`` (full-scale pixels, from the reduced frame) with each edge moved, within ``factor``
    pixels, to the outermost full-scale line that is picture rather than background (:func:`_content`)
    over the box's span."""
    if factor == 1:
        return box
    left, top, right, bottom = box
    near_top = _edge(grey, top - factor, top + factor, (left, right), 1, background)
    near_bottom = _edge(grey, bottom - factor, bottom + factor, (left, right), 1, background)
    top = near_top[0] if near_top else top
    bottom = near_bottom[-1] + 1 if near_bottom else bottom
    near_left = _edge(grey, left - factor, left + factor, (top, bottom), 0, background)
    near_right = _edge(grey, right - factor, right + factor, (top, bottom), 0, background)
    left = near_left[0] if near_left else left
    right = near_right[-1] + 1 if near_right else right
    if right - left < 2 or bottom - top < 2:
        return box
    return (left, top, right, bottom)


def find_insets(image: Image.Image, limit: int = MAX_INSETS) -> tuple[Box, ...]:
    """The rectangles of ``image`` that look like embedded pictures (see the module documentation),
    as ``(left, top, right, bottom)`` boxes in ``image``'s pixels, largest first, at most ``limit``.

    ``image`` is a Pillow image (RGB and L as they are, other modes through RGB). Deterministic; a
    plain photograph usually gets none. Raises :class:`~matcher.errors.UsageError` for anything
    but a Pillow image or a negative ``limit``.
    """
    if not isinstance(image, Image.Image):
        raise UsageError(f"insets need a Pillow image, not {type(image).__name__}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise UsageError(f"limit must be a non-negative int, not {limit!r}")
    w, h = image.size
    min_w, min_h = max(MIN_SIDE, MIN_FRACTION * w), max(MIN_SIDE, MIN_FRACTION * h)
    if limit == 0 or min(w, h) < 2 * MIN_SIDE:  # no room for a picture inside
        return ()
    grey_image = _grey(image)
    factor = max(1, -(-max(w, h) // WORK_SIDE))
    grey = np.asarray(grey_image)  # uint8; strips are widened where edges are placed
    work = np.asarray(grey_image if factor == 1 else grey_image.reduce(factor), dtype=np.int16)
    found: dict[Box, bool] = {}
    for (left, top, right, bottom), split, background in _regions(work, int(min_w // factor), int(min_h // factor)):
        box = (left * factor, top * factor, min(w, right * factor), min(h, bottom * factor))
        if box[2] - box[0] < min_w - factor or box[3] - box[1] < min_h - factor:
            continue
        box = _refine(grey, box, factor, background)
        bw, bh = box[2] - box[0], box[3] - box[1]
        if bw < min_w or bh < min_h or bw * bh >= _WHOLE * w * h:
            continue
        region = work[box[1] // factor : box[3] // factor, box[0] // factor : box[2] // factor]
        if _flat(region, 1)[0].mean() > _MAX_FLAT_SHARE and _flat(region, 0)[0].mean() > _MAX_FLAT_SHARE:
            continue
        found[box] = found.get(box, True) and split
    # unsplit regions first (a tile, a pasted picture), then those split further (a band of tiles)
    ranked = sorted(found, key=lambda b: (found[b], -(b[2] - b[0]) * (b[3] - b[1]), b[1], b[0]))
    return tuple(ranked[:limit])
