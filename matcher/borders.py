"""Border trimming: find the content box inside letterbox, pillarbox or padding bars of any colour.

A copy of a known image is often re-published inside bars: black or white letterbox (top and bottom),
pillarbox (left and right), or padding of any colour on any sides. PDQ does not survive that (20%
letterbox moves it ~86 bits), but the content box, once cut out again, hashes like the original.
:func:`find_content_box` finds that box; :mod:`matcher.views` hashes it.

The rule (each side is judged on its own, so top and bottom bars may differ in colour):

1. The side's outermost line (row or column) must be *flat*: all but ``rule.flat_outliers`` of its
   pixels within ``rule.flat_tolerance`` (per channel) of the line's median colour, which becomes the
   side's border colour. Photographs and the generated test scenes have grain, so their edges fail
   this; a digitally added bar is exactly flat, and stays flat through JPEG (away from the content
   edge) and resizing.
2. The border then runs inward over every line that is flat in the same colour.
3. Where the flat lines end, up to ``rule.edge_lines`` further lines may still be border disturbed by
   JPEG ringing or by resampling: they are taken while each stays *near* the border colour (all but
   ``rule.edge_outliers`` of the pixels within ``rule.edge_tolerance``) and, as a last check, a line
   counts as content once its mean deviation from the border colour exceeds half that of the content
   lines just inside it. This places the box within a pixel or two of the true one on JPEG quality 30.
4. A side whose border is thinner than ``rule.min_border_pixels`` or ``rule.min_border_fraction`` of
   the dimension is not trimmed; if trimming would leave less than ``rule.min_content_fraction`` of
   the width or height, there is no content box (a mostly flat picture is not "bordered").

Borders with noise in them (an analogue capture's bars), with text or logos in the bars, or thinner
than the JPEG block size on a heavily compressed image are not found; the untrimmed frame is still
hashed and searched as usual, so a miss here only loses the extra chance a trimmed view gives.

Speed: an image without borders costs its four outermost lines (well under a millisecond, even at
4000x3000). Past a flat outer line a small image (up to 2 megapixels) is read into one array, and a
large one is read through crops of single lines: a wide bar is walked on about 64 evenly spaced
lines and the last gap is then bisected, so its cost hardly grows with the image size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import UsageError

__all__ = ["DEFAULT_BORDER_RULE", "BorderRule", "find_content_box"]

# Sides, as the names of the lines counted inward from each edge.
_SIDES = ("top", "bottom", "left", "right")
# At most this many pixels of a line are looked at (evenly spaced); enough for the outlier fractions.
_MAX_SAMPLES = 1024
# Lines read at a time while walking inward over a flat border (doubling as the walk goes on).
_FIRST_CHUNK = 4
# A long side's flat border is first walked on about this many evenly spaced lines.
_COARSE_LINES = 64
# Up to this many pixels, lines are read as one strip (one crop) rather than one crop per line.
_STRIP_PIXELS = 1 << 16
# Images up to this many pixels are read into one array once their borders are looked into.
_ARRAY_PIXELS = 1 << 21
# Content lines averaged for the content level of the half-level check.
_LEVEL_LINES = 4


@dataclass(frozen=True, slots=True)
class BorderRule:
    """The tolerances :func:`find_content_box` uses (see the module docstring for the rule).

    ``flat_tolerance``/``flat_outliers``: a flat line has all but that fraction of its pixels within that
    many levels (per channel, 0..255) of the border colour. ``edge_tolerance``/``edge_outliers``/
    ``edge_lines``: the same for the lines past the flat ones that may still be border disturbed by
    compression or resampling, and how many such lines there can be. ``min_border_pixels``/
    ``min_border_fraction``: the thinnest border trimmed, in pixels and as a fraction of the dimension
    (both must be met). ``min_content_fraction``: the smallest fraction of the width and of the height
    that must remain.
    """

    flat_tolerance: int = 3
    flat_outliers: float = 0.02
    edge_tolerance: int = 24
    edge_outliers: float = 0.25
    edge_lines: int = 16
    min_border_pixels: int = 2
    min_border_fraction: float = 0.01
    min_content_fraction: float = 1 / 3

    def __post_init__(self) -> None:
        for name in ("flat_tolerance", "edge_tolerance", "edge_lines", "min_border_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UsageError(f"BorderRule.{name} must be a non-negative integer, not {value!r}")
        for name in ("flat_outliers", "edge_outliers", "min_border_fraction", "min_content_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise UsageError(f"BorderRule.{name} must be a number in [0, 1), not {value!r}")


#: The rule used unless another is given.
DEFAULT_BORDER_RULE = BorderRule()


def _readable(image: Image.Image) -> Image.Image:
    """``image`` if its pixels can be read as they are (RGB, L), else an RGB copy."""
    if image.mode in ("RGB", "L"):
        return image
    # local import: imaging is heavier and not needed for RGB/L
    from .imaging import to_rgb

    return to_rgb(image)


class _Pixels:
    """Reads lines (rows or columns, counted inward from a side) of an RGB or L image.

    A small image is read into one array the first time more than its outermost lines are needed;
    a large one is read through crops of the lines asked for, so a border-free frame costs only its
    four outermost lines and a bordered large one its sampled bar lines.
    """

    __slots__ = ("_array", "image", "size")

    def __init__(self, image: Image.Image) -> None:
        self.image = image
        self.size = image.size
        self._array: np.ndarray | None = None

    def _whole(self, start: int) -> np.ndarray | None:
        """The whole image as an array (lines, samples, channels) once lines past the outermost are
        read from a small image, else ``None``."""
        if self._array is None and start > 0 and self.size[0] * self.size[1] <= _ARRAY_PIXELS:
            a = np.asarray(self.image)
            self._array = a if a.ndim == 3 else a[..., None]
        return self._array

    def lines(self, side: str, start: int, stop: int, lo: int, hi: int, step: int = 1) -> np.ndarray:
        """Every ``step``-th line from ``start`` to ``stop - 1`` counted inward from ``side``, each cut
        to ``lo``..``hi`` along its length, as an int16 array (lines, samples, channels)."""
        w, h = self.size
        samples = max(1, (hi - lo) // _MAX_SAMPLES)
        whole = self._whole(start)
        if whole is not None:
            if side == "top":
                a = whole[start:stop:step, lo:hi:samples]
            elif side == "bottom":
                end = h - 1 - stop if stop < h else None
                a = whole[h - 1 - start : end : -step, lo:hi:samples]
            elif side == "left":
                a = whole[lo:hi:samples, start:stop:step].transpose(1, 0, 2)
            else:
                end = w - 1 - stop if stop < w else None
                a = whole[lo:hi:samples, w - 1 - start : end : -step].transpose(1, 0, 2)
            return a.astype(np.int16)

        def box(first: int, last: int) -> tuple[int, int, int, int]:  # lines first..last-1
            if side == "top":
                return (lo, first, hi, last)
            if side == "bottom":
                return (lo, h - last, hi, h - first)
            if side == "left":
                return (first, lo, last, hi)
            return (w - last, lo, w - first, hi)

        if step == 1 or (stop - start) * (hi - lo) <= _STRIP_PIXELS:  # (crop, every how many lines)
            crops = [(np.asarray(self.image.crop(box(start, stop))), step)]
        else:  # one crop per line read: far less copying than a big strip when the lines are sparse
            crops = [(np.asarray(self.image.crop(box(line, line + 1))), 1) for line in range(start, stop, step)]
        parts = []
        for a, every in crops:
            a = a if a.ndim == 3 else a[..., None]
            if side in ("left", "right"):
                a = a.transpose(1, 0, 2)
            if side in ("bottom", "right"):
                a = a[::-1]
            parts.append(a[::every, ::samples])
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        return out.astype(np.int16)


def _deviation(lines: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Per pixel, the largest per-channel difference from ``colour``: (lines, samples)."""
    out: np.ndarray = np.abs(lines[..., 0] - colour[0])
    for channel in range(1, lines.shape[2]):  # a loop over channels beats a reduction over a short axis
        np.maximum(out, np.abs(lines[..., channel] - colour[channel]), out=out)
    return out


def _first_not_flat(
    image: _Pixels,
    side: str,
    start: int,
    stop: int,
    step: int,
    lo: int,
    hi: int,
    colour: np.ndarray,
    rule: BorderRule,
) -> int | None:
    """The first of every ``step``-th line from ``start`` before ``stop`` that is not flat in ``colour``
    (``None``: all are)."""
    dev = _deviation(image.lines(side, start, stop, lo, hi, step), colour)
    not_flat = np.flatnonzero((dev > rule.flat_tolerance).mean(axis=1) > rule.flat_outliers)
    return None if not not_flat.size else start + step * int(not_flat[0])


def _flat_end(
    image: _Pixels, side: str, lo: int, hi: int, limit: int, colour: np.ndarray, rule: BorderRule
) -> int | None:
    """The first line (from ``side`` inward, after the outermost) not flat in ``colour``, or ``None``
    when lines up to ``limit`` all are. A long side is walked on every ``step``-th line first and the
    last gap then bisected, so even a wide bar costs only a few dozen lines."""
    dimension = image.size[1] if side in ("top", "bottom") else image.size[0]
    step = max(1, dimension // _COARSE_LINES)
    position, chunk = 1, _FIRST_CHUNK * step
    while position < limit:
        stop = min(limit, position + chunk)
        found = _first_not_flat(image, side, position, stop, step, lo, hi, colour, rule)
        if found is not None:
            if step == 1:
                return found
            # the flat border ends after the last flat sample: read the gap, or bisect a big one
            flat, not_flat = max(0, found - step), found
            if (not_flat - flat) * (hi - lo) <= _STRIP_PIXELS:
                exact = _first_not_flat(image, side, flat + 1, not_flat, 1, lo, hi, colour, rule)
                return not_flat if exact is None else exact
            while not_flat - flat > 1:
                middle = (flat + not_flat) // 2
                if _first_not_flat(image, side, middle, middle + 1, 1, lo, hi, colour, rule) is None:
                    flat = middle
                else:
                    not_flat = middle
            return not_flat
        position, chunk = position + ((stop - position + step - 1) // step) * step, chunk * 2
    return None


def _border_depth(image: _Pixels, side: str, lo: int, hi: int, limit: int, rule: BorderRule) -> int | None:
    """How many lines from ``side`` inward are border (0: none), or ``None`` when the border reaches
    ``limit`` lines (the picture is mostly flat, not bordered)."""
    w, h = image.size
    dimension = h if side in ("top", "bottom") else w
    if limit < 1 or hi - lo < 1:
        return 0
    outer = image.lines(side, 0, 1, lo, hi)[0]
    colour = np.median(outer, axis=0).round().astype(np.int16)
    if (_deviation(outer[None], colour)[0] > rule.flat_tolerance).mean() > rule.flat_outliers:
        return 0
    flat_end = _flat_end(image, side, lo, hi, limit, colour, rule)
    if flat_end is None:
        return None
    # Past the flat lines: border disturbed by ringing or resampling, then content.
    stop = min(dimension, flat_end + rule.edge_lines + _LEVEL_LINES)
    dev = _deviation(image.lines(side, flat_end, stop, lo, hi), colour)
    near = (dev > rule.edge_tolerance).mean(axis=1) <= rule.edge_outliers
    mean = dev.mean(axis=1)
    end = 0  # index into the window of the first content line
    while end < min(rule.edge_lines, len(near)) and near[end]:
        end += 1
    if flat_end + end >= limit:
        return None
    # Half-level check: a line that differs from the border more than half as much as the content
    # just inside does is content; a line after that looks more like the border is border.
    level = float(np.median(mean[end : end + _LEVEL_LINES])) if end < len(mean) else 0.0
    while end > 0 and mean[end - 1] > level / 2:
        end -= 1
    if end < len(mean) - 1 and mean[end] <= level / 2 and level > rule.edge_tolerance:
        end += 1
    return flat_end + end


def find_content_box(image: Image.Image, rule: BorderRule = DEFAULT_BORDER_RULE) -> tuple[int, int, int, int] | None:
    """The ``(left, top, right, bottom)`` box (Pillow's crop convention) left when uniform bars of any
    colour are trimmed from any of the four sides, or ``None`` when there is no border worth trimming
    or trimming would leave too little (see the module docstring for the rule).

    ``image`` is any Pillow image (RGB and L are read as they are, other modes through an RGB copy).
    Raises :class:`~matcher.errors.UsageError` for a ``rule`` that is not a :class:`BorderRule`.
    """
    if not isinstance(rule, BorderRule):
        raise UsageError(f"rule must be a BorderRule, not {type(rule).__name__}")
    w, h = image.size
    if w < 3 or h < 3:
        return None
    pixels = _Pixels(_readable(image))
    keep_w = math.ceil(w * rule.min_content_fraction)
    keep_h = math.ceil(h * rule.min_content_fraction)
    min_w = max(rule.min_border_pixels, math.ceil(w * rule.min_border_fraction), 1)
    min_h = max(rule.min_border_pixels, math.ceil(h * rule.min_border_fraction), 1)
    depth = dict.fromkeys(_SIDES, 0)
    seen: dict[tuple[str, int, int, int], int | None] = {}
    # Rows are judged over the columns left by the left/right trim and vice versa; two rounds settle
    # a frame bordered on all four sides (corners belong to both bars).
    for _ in range(3):
        before = dict(depth)
        for side in _SIDES:
            vertical = side in ("top", "bottom")
            if vertical:
                lo, hi = depth["left"], w - depth["right"]
                other = depth["bottom" if side == "top" else "top"]
                limit, minimum = h - keep_h - other, min_h
            else:
                lo, hi = depth["top"], h - depth["bottom"]
                other = depth["right" if side == "left" else "left"]
                limit, minimum = w - keep_w - other, min_w
            key = (side, lo, hi, limit)
            if key not in seen:  # a side whose span and limit did not change keeps its depth
                seen[key] = _border_depth(pixels, side, lo, hi, limit, rule)
            found = seen[key]
            if found is None:
                return None
            depth[side] = found if found >= minimum else 0
        if depth == before:
            break
    if not any(depth.values()):
        return None
    return (depth["left"], depth["top"], w - depth["right"], h - depth["bottom"])
