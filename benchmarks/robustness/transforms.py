"""The edits the robustness benchmark applies to every original, with the issue's recall targets.

Most come from :data:`fixtures.EDITS`; the few the fixtures lack (a 5% off-centre crop, a white
pillarbox, ...) and the "off-grid" edits are defined here. Off-grid edits test generalisation: they
use fractions and angles *between* the fixed ones matcher's region views are built for (a 3% or 7.5%
centred crop, 8% cut from one side only, a 3-degree rotation, a 15% grey letterbox), so the table
shows what happens in between. They have no target.

The *continuum* (issue 17) covers edits between and beyond that grid, each with the target 0.95:
centred crops of 1-30 % in 1 % steps, a 5-30 % cut from one side, off-centre windows (90-70 %) at
seeded places, aspect changes, turns of 1-15 degrees with and without the canvas expanded, caption
bands of 5-30 % at top and bottom, a watermark and a logo, screenshots (the image at 40-90 % of an
interface-like canvas's width), one tile of a 2x2 or 3x3 collage, combinations with JPEG and
resizing, and colour edits (hue, saturation, sepia, noise). Seeded choices (a side's fraction, a
window's place, a collage tile) are drawn from the image's own pixels and the transform's name, so
a run is reproducible and every original gets its own.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from fixtures import EDITS, scene
from fixtures.interface import chat_canvas

__all__ = ["Transform", "TRANSFORMS", "CONTINUUM_TARGET", "by_name", "family"]

Edit = Callable[[Image.Image], Image.Image]


@dataclass(frozen=True, slots=True)
class Transform:
    """One edit: its table name, the function, the recall target (``None``: none) and its group."""

    name: str
    apply: Edit
    target: float | None
    group: str  # "on-grid" (an edit the issue names), "off-grid" (between the view fractions) or "continuum"
    description: str


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def crop(fraction: float, *, left: float = 0.5, top: float = 0.5, vertical: bool = True) -> Edit:
    """Remove ``fraction`` of the width (and of the height when ``vertical``); ``left``/``top`` give the
    share of the removed strip taken from the left/top edge (0.5: centred, 1.0: all of it)."""

    def edit(image: Image.Image) -> Image.Image:
        w, h = image.size
        dw = round(w * fraction)
        dh = round(h * fraction) if vertical else 0
        x0, y0 = round(dw * left), round(dh * top)
        return image.crop((x0, y0, x0 + w - dw, y0 + h - dh))

    return edit


def pad(fraction: float, colour: tuple[int, int, int], *, vertical: bool) -> Edit:
    """Letterbox (``vertical``: bars top and bottom) or pillarbox (bars left and right) adding
    ``fraction`` of the height/width in total, half on each side, in ``colour``."""

    def edit(image: Image.Image) -> Image.Image:
        src = _rgb(image)
        w, h = src.size
        extra = round((h if vertical else w) * fraction)
        out = Image.new("RGB", (w, h + extra) if vertical else (w + extra, h), colour)
        out.paste(src, (0, extra // 2) if vertical else (extra // 2, 0))
        return out

    return edit


def rotate(degrees: float) -> Edit:
    """Rotate counter-clockwise about the centre, same size, black corners (like ``rotate4``)."""

    def edit(image: Image.Image) -> Image.Image:
        return _rgb(image).rotate(degrees, Image.Resampling.BICUBIC, expand=False, fillcolor=(0, 0, 0))

    return edit


_BLACK, _WHITE, _GREY = (0, 0, 0), (255, 255, 255), (128, 128, 128)
CONTINUUM_TARGET = 0.95


def _rng(image: Image.Image, salt: str) -> np.random.Generator:
    """A generator seeded by the image's pixels and ``salt``: each original gets its own draws."""
    small = image.convert("L").resize((16, 16), Image.Resampling.BOX).tobytes()
    return np.random.default_rng([zlib.crc32(small), zlib.crc32(salt.encode())])


def side_crop(side: str) -> Edit:
    """Cut a seeded 5-30 % of the width (left/right) or height (top/bottom) from one side."""

    def edit(image: Image.Image) -> Image.Image:
        w, h = image.size
        p = float(_rng(image, "side" + side).uniform(0.05, 0.30))
        dw, dh = round(w * p), round(h * p)
        box = {"left": (dw, 0, w, h), "right": (0, 0, w - dw, h), "top": (0, dh, w, h), "bottom": (0, 0, w, h - dh)}
        return image.crop(box[side])

    return edit


def window(fraction: float, salt: str) -> Edit:
    """A window of ``fraction`` of each side at a seeded place."""

    def edit(image: Image.Image) -> Image.Image:
        w, h = image.size
        ww, wh = round(w * fraction), round(h * fraction)
        rng = _rng(image, salt)
        left, top = int(rng.integers(0, w - ww + 1)), int(rng.integers(0, h - wh + 1))
        return image.crop((left, top, left + ww, top + wh))

    return edit


def stretch(sx: float, sy: float) -> Edit:
    """Resize each axis by its own factor (an aspect change)."""

    def edit(image: Image.Image) -> Image.Image:
        w, h = image.size
        return _rgb(image).resize((max(1, round(w * sx)), max(1, round(h * sy))), Image.Resampling.BICUBIC)

    return edit


def aspect_crop(image: Image.Image) -> Image.Image:
    """A centred crop to another aspect ratio: 16:9 from a narrower image, 4:3 from a wider one."""
    w, h = image.size
    target = 16 / 9 if w / h < 1.5 else 4 / 3
    if w / h > target:
        nw = round(h * target)
        return image.crop(((w - nw) // 2, 0, (w - nw) // 2 + nw, h))
    nh = round(w / target)
    return image.crop((0, (h - nh) // 2, w, (h - nh) // 2 + nh))


def turn(degrees: float, expand: bool) -> Edit:
    """Turn counter-clockwise about the centre, black corners; ``expand``: the canvas grows to hold it all."""

    def edit(image: Image.Image) -> Image.Image:
        return _rgb(image).rotate(degrees, Image.Resampling.BICUBIC, expand=expand, fillcolor=_BLACK)

    return edit


def _font_size(height: float) -> int:
    return max(6, round(height))


def band(fraction: float, top: bool) -> Edit:
    """A dark caption band with white text over ``fraction`` of the height, at the top or bottom."""

    def edit(image: Image.Image) -> Image.Image:
        out = _rgb(image).copy()
        w, h = out.size
        height = max(1, round(h * fraction))
        y0 = 0 if top else h - height
        draw = ImageDraw.Draw(out)
        draw.rectangle((0, y0, w, y0 + height), fill=(24, 24, 32))
        size = _font_size(min(height * 0.5, w / 14))
        draw.text(
            (w * 0.04, y0 + (height - size) / 2), "shared caption text 2024", fill=(250, 250, 250), font_size=size
        )
        return out

    return edit


def watermark(image: Image.Image) -> Image.Image:
    """A semi-transparent text watermark across the middle."""
    base = _rgb(image).convert("RGBA")
    w, h = base.size
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).text(
        (w * 0.08, h * 0.45), "example-watermark.com", fill=(255, 255, 255, 120), font_size=_font_size(w / 14)
    )
    return Image.alpha_composite(base, layer).convert("RGB")


def logo(image: Image.Image) -> Image.Image:
    """An opaque emblem (shapes and a word) in the bottom-right corner, a fifth of the width."""
    out = _rgb(image).copy()
    w, h = out.size
    mw, mh = max(8, w // 5), max(4, w // 10)
    mark = scene(4242, mw, mh, "shapes")
    ImageDraw.Draw(mark).text((mw * 0.08, mh * 0.3), "BRAND", fill=(255, 255, 255), font_size=_font_size(mh * 0.4))
    out.paste(mark, (w - mw - w // 40, h - mh - h // 40))
    return out


def screenshot(fraction: float) -> Edit:
    """The image scaled to ``fraction`` of an interface canvas's width (720 x 1280 portrait or
    1280 x 900 landscape, seeded), at a seeded place between its header and input bars."""

    def edit(image: Image.Image) -> Image.Image:
        rng = _rng(image, f"screen{fraction}")
        cw, ch = (720, 1280) if rng.random() < 0.5 else (1280, 900)
        canvas = chat_canvas((cw, ch))
        w, h = image.size
        s = fraction * cw / w
        if h * s > 0.8 * ch:
            s = 0.8 * ch / h
        pw, ph = max(1, round(w * s)), max(1, round(h * s))
        left = int(rng.integers(0, cw - pw + 1))
        top = int(rng.integers(round(0.07 * ch), max(round(0.07 * ch) + 1, round(0.92 * ch) - ph + 1)))
        canvas.paste(_rgb(image).resize((pw, ph), Image.Resampling.BICUBIC), (left, top))
        return canvas

    return edit


#: Seed of the pictures around a collage tile (never an original or a distractor).
FILLER_SEED = 3_000_000


def collage(n: int) -> Edit:
    """An ``n`` x ``n`` contact sheet (tiles of 640 / n x 480 / n px, white gaps of 4 px) with the
    image at a seeded tile and unrelated generated pictures in the others."""

    def edit(image: Image.Image) -> Image.Image:
        rng = _rng(image, f"collage{n}")
        tw, th, gap = 640 // n, 480 // n, 4
        canvas = Image.new("RGB", (n * tw + (n + 1) * gap, n * th + (n + 1) * gap), _WHITE)
        tile = int(rng.integers(n * n))
        kinds = ("landscape", "shapes", "text", "plasma")
        for k in range(n * n):
            if k == tile:
                picture = _rgb(image).resize((tw, th), Image.Resampling.BICUBIC)
            else:
                picture = scene(FILLER_SEED + int(rng.integers(10_000)), tw, th, kinds[int(rng.integers(4))])
            canvas.paste(picture, (gap + (k % n) * (tw + gap), gap + (k // n) * (th + gap)))
        return canvas

    return edit


def jpeg(quality: int) -> Edit:
    """Stored as a JPEG of ``quality`` and decoded again."""

    def edit(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        _rgb(image).save(buffer, "JPEG", quality=quality)
        with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
            return decoded.convert("RGB")

    return edit


def resize(factor: float) -> Edit:
    """Resized by ``factor`` (bicubic)."""
    return stretch(factor, factor)


def then(*edits: Edit) -> Edit:
    """The edits one after the other."""

    def edit(image: Image.Image) -> Image.Image:
        for step in edits:
            image = step(image)
        return image

    return edit


def hue(degrees: float) -> Edit:
    """Every pixel's hue turned by ``degrees`` (HSV)."""

    def edit(image: Image.Image) -> Image.Image:
        h, s, v = _rgb(image).convert("HSV").split()
        shift = round(degrees / 360 * 256)
        h = h.point(lambda x: (x + shift) % 256)
        return Image.merge("HSV", (h, s, v)).convert("RGB")

    return edit


def saturation(factor: float) -> Edit:
    """Colour saturation scaled by ``factor``."""

    def edit(image: Image.Image) -> Image.Image:
        return ImageEnhance.Color(_rgb(image)).enhance(factor)

    return edit


def sepia(image: Image.Image) -> Image.Image:
    """A sepia tone from the grey levels."""
    grey = np.asarray(image.convert("L"), np.float32)
    toned = np.stack([grey * 1.07, grey * 0.74, grey * 0.43], -1) + 20
    return Image.fromarray(np.clip(toned, 0, 255).astype(np.uint8))


def noise(sigma: float) -> Edit:
    """Gaussian noise of ``sigma`` grey levels, seeded by the image."""

    def edit(image: Image.Image) -> Image.Image:
        arr = np.asarray(_rgb(image), np.float32)
        arr = arr + _rng(image, "noise").normal(0, sigma, arr.shape)
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))

    return edit


def _continuum() -> tuple[Transform, ...]:
    """The issue 17 continuum, with the family of each transform in its description's first word."""
    t = CONTINUUM_TARGET
    out = [
        Transform(f"ccrop{p:02d}", crop(p / 100), t, "continuum", f"crop: centred, {p}% of each side length")
        for p in range(1, 31)
    ]
    out += [
        Transform(f"side_{s}", side_crop(s), t, "continuum", f"side: 5-30% (seeded) cut from the {s}")
        for s in ("left", "right", "top", "bottom")
    ]
    out += [
        Transform(
            f"window{round(f * 100)}{tag}",
            window(f, f"w{f}{tag}"),
            t,
            "continuum",
            f"window: {round(f * 100)}% of each side at a seeded place",
        )
        for f, tag in ((0.9, ""), (0.85, "a"), (0.85, "b"), (0.8, ""), (0.7, ""))
    ]
    out += [
        Transform("stretch_x0.8", stretch(0.8, 1.0), t, "continuum", "aspect: width scaled by 0.8"),
        Transform("stretch_y0.8", stretch(1.0, 0.8), t, "continuum", "aspect: height scaled by 0.8"),
        Transform("aspect_crop", aspect_crop, t, "continuum", "aspect: centred crop to 16:9 (4:3 from wider images)"),
    ]
    out += [
        Transform(f"rot{d:02d}", turn(d, False), t, "continuum", f"rotation: {d} degrees, same canvas, black corners")
        for d in range(1, 16)
    ]
    out += [
        Transform(f"rot{d:02d}_expand", turn(d, True), t, "continuum", f"rotation+expand: {d} degrees, canvas expanded")
        for d in range(1, 16)
    ]
    out += [
        Transform(
            f"band_{where}{p:02d}",
            band(p / 100, where == "top"),
            t,
            "continuum",
            f"caption: band of {p}% at the {where}",
        )
        for where in ("top", "bottom")
        for p in (5, 10, 15, 20, 25, 30)
    ]
    out += [
        Transform("watermark", watermark, t, "continuum", "overlay: semi-transparent text watermark across the middle"),
        Transform("logo", logo, t, "continuum", "overlay: opaque logo in the bottom-right corner"),
    ]
    out += [
        Transform(
            f"screenshot{p}",
            screenshot(p / 100),
            t,
            "continuum",
            f"screenshot: image at {p}% of an interface canvas's width",
        )
        for p in (40, 50, 60, 70, 80, 90)
    ]
    out += [
        Transform("collage2x2", collage(2), t, "continuum", "collage: one tile of a 2x2 contact sheet"),
        Transform("collage3x3", collage(3), t, "continuum", "collage: one tile of a 3x3 contact sheet"),
    ]
    out += [
        Transform(
            "ccrop15_resize0.5_jpeg70",
            then(crop(0.15), resize(0.5), jpeg(70)),
            t,
            "continuum",
            "combination: 15% crop, half size, JPEG 70",
        ),
        Transform(
            "rot07_jpeg60", then(turn(7, False), jpeg(60)), t, "continuum", "combination: 7-degree turn, JPEG 60"
        ),
        Transform(
            "window85_resize0.7",
            then(window(0.85, "combo"), resize(0.7)),
            t,
            "continuum",
            "combination: 85% window, 0.7x",
        ),
        Transform(
            "band_bottom15_jpeg50",
            then(band(0.15, False), jpeg(50)),
            t,
            "continuum",
            "combination: 15% caption band, JPEG 50",
        ),
        Transform(
            "screenshot60_jpeg50",
            then(screenshot(0.6), jpeg(50)),
            t,
            "continuum",
            "combination: screenshot at 60%, JPEG 50",
        ),
    ]
    out += [
        Transform("hue30", hue(30), t, "continuum", "colour: hue turned 30 degrees"),
        Transform("hue90", hue(90), t, "continuum", "colour: hue turned 90 degrees"),
        Transform("saturation0.3", saturation(0.3), t, "continuum", "colour: saturation x0.3"),
        Transform("saturation1.6", saturation(1.6), t, "continuum", "colour: saturation x1.6"),
        Transform("sepia", sepia, t, "continuum", "colour: sepia"),
        Transform("noise8", noise(8), t, "continuum", "colour: Gaussian noise, sigma 8"),
    ]
    return tuple(out)


def family(transform: Transform) -> str:
    """A transform's family: its group for the fixed grid, the description's first word for the continuum."""
    return transform.description.split(":")[0] if transform.group == "continuum" else transform.group


TRANSFORMS: tuple[Transform, ...] = (
    Transform("jpeg75", EDITS["jpeg75"], 0.99, "on-grid", "JPEG quality 75"),
    Transform("jpeg30", EDITS["jpeg30"], 0.99, "on-grid", "JPEG quality 30"),
    Transform("resize0.5", EDITS["resize0.5"], 0.99, "on-grid", "bicubic resize to 0.5x"),
    Transform("resize2", EDITS["resize2"], 0.99, "on-grid", "bicubic resize to 2x"),
    Transform("greyscale", EDITS["greyscale"], 0.99, "on-grid", "greyscale"),
    Transform("blur2", EDITS["blur2"], 0.99, "on-grid", "Gaussian blur, radius 2"),
    Transform("gamma0.7", EDITS["gamma0.7"], 0.99, "on-grid", "gamma 0.7"),
    Transform("mirror", EDITS["mirror"], 0.99, "on-grid", "mirror (left-right)"),
    Transform("flip", EDITS["flip"], 0.99, "on-grid", "vertical flip (top-bottom)"),
    Transform("rotate90", EDITS["rotate90"], 0.99, "on-grid", "rotate 90 degrees"),
    Transform("rotate180", EDITS["rotate180"], 0.99, "on-grid", "rotate 180 degrees"),
    Transform("crop5", EDITS["crop5"], 0.90, "on-grid", "centred crop, 5% of each side length"),
    Transform(
        "crop5_offcentre",
        crop(0.05, left=1.0, top=1.0),
        0.90,
        "on-grid",
        "crop 5% of each side length, all from the top and left",
    ),
    Transform("crop10", EDITS["crop10"], 0.80, "on-grid", "centred crop, 10% of each side length"),
    Transform(
        "crop10_offcentre",
        EDITS["crop10_offcentre"],
        0.80,
        "on-grid",
        "crop 10% of each side length, all from the top and left",
    ),
    Transform("pad20_black", EDITS["pad20_black"], 0.99, "on-grid", "letterbox +20% height, black"),
    Transform("pad20_white", EDITS["pad20_white"], 0.99, "on-grid", "letterbox +20% height, white"),
    Transform("pillarbox20_black", EDITS["pillarbox20_black"], 0.99, "on-grid", "pillarbox +20% width, black"),
    Transform("pillarbox20_white", pad(0.2, _WHITE, vertical=False), 0.99, "on-grid", "pillarbox +20% width, white"),
    Transform("caption", EDITS["caption"], 0.90, "on-grid", "dark caption banner over the bottom 12%"),
    Transform("rotate4", EDITS["rotate4"], 0.50, "on-grid", "rotate 4 degrees, black corners"),
    Transform("crop5_jpeg75", EDITS["crop5_jpeg75"], None, "on-grid", "centred 5% crop, then JPEG 75"),
    Transform("pad20_resize0.5", EDITS["pad20_resize0.5"], None, "on-grid", "black letterbox 20%, then 0.5x"),
    Transform("crop3", crop(0.03), None, "off-grid", "centred crop, 3% of each side length"),
    Transform("crop7.5", crop(0.075), None, "off-grid", "centred crop, 7.5% of each side length"),
    Transform(
        "crop8_left", crop(0.08, left=1.0, vertical=False), None, "off-grid", "8% of the width cut from the left only"
    ),
    Transform("pad15_grey", pad(0.15, _GREY, vertical=True), None, "off-grid", "letterbox +15% height, grey"),
    Transform("rotate3", rotate(3), None, "off-grid", "rotate 3 degrees, black corners"),
    *_continuum(),
)
"""Every transform, in table order: the fixed grid, then the continuum."""


def by_name(name: str) -> Transform:
    """The transform called ``name``."""
    for transform in TRANSFORMS:
        if transform.name == name:
            return transform
    raise KeyError(name)
