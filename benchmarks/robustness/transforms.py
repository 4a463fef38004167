"""The edits the robustness benchmark applies to every original, with the issue's recall targets.

Most come from :data:`fixtures.EDITS`; the few the fixtures lack (a 5% off-centre crop, a white
pillarbox, ...) and the "off-grid" edits are defined here. Off-grid edits test generalisation: they
use fractions and angles *between* the fixed ones matcher's region views are built for (a 3% or 7.5%
centred crop, 8% cut from one side only, a 3-degree rotation, a 15% grey letterbox), so the table
shows what happens in between. They have no target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from fixtures import EDITS

__all__ = ["Transform", "TRANSFORMS", "by_name"]

Edit = Callable[[Image.Image], Image.Image]


@dataclass(frozen=True, slots=True)
class Transform:
    """One edit: its table name, the function, the recall target (``None``: none) and its group."""

    name: str
    apply: Edit
    target: float | None
    group: str  # "on-grid" (an edit the issue names) or "off-grid" (between the view fractions)
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
)
"""Every transform, in table order."""


def by_name(name: str) -> Transform:
    """The transform called ``name``."""
    for transform in TRANSFORMS:
        if transform.name == name:
            return transform
    raise KeyError(name)
