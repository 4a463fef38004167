"""The generated images: originals and distractors, their kinds and sizes, stored like files on disk."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fixtures import encode, scene

__all__ = ["KIND_SHARES", "LOW_TEXTURE_KINDS", "SIDES", "STORE_QUALITY", "ImageSpec", "specs", "generate", "as_stored"]

#: The mix of scene kinds (shares of the originals and, separately, of the distractors): mostly
#: photo-like scenes, then shapes and text cards, and a low-texture share (smooth gradients and
#: almost flat colours, whose PDQ quality is usually below 50).
KIND_SHARES: dict[str, float] = {
    "landscape": 0.30,
    "plasma": 0.25,
    "shapes": 0.20,
    "text": 0.15,
    "gradient": 0.05,
    "lowtexture": 0.05,
}
LOW_TEXTURE_KINDS = ("gradient", "lowtexture")
_ASPECTS = ((4, 3), (3, 2), (16, 9), (1, 1), (5, 4))
STORE_QUALITY = 95  # every image is a JPEG file at this quality
#: Long side of the generated images, uniform in this range (hashes work on 64x64 / 32x32 reductions,
#: so modest sizes keep the run short).
SIDES = (256, 512)


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """A generated image: ``fixtures.scene(seed, width, height, kind)``."""

    seed: int
    kind: str
    width: int
    height: int


def _counts(n: int) -> dict[str, int]:
    """Split ``n`` by :data:`KIND_SHARES` (largest remainders, so the counts add up to ``n``)."""
    raw = {k: n * s for k, s in KIND_SHARES.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: counts[k] - raw[k])[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def specs(n: int, base_seed: int, min_side: int = SIDES[0], max_side: int = SIDES[1]) -> list[ImageSpec]:
    """``n`` image specs in the :data:`KIND_SHARES` mix, in a shuffled (deterministic) order: the long
    side uniform in [min_side, max_side], one of five aspect ratios, about a third portrait."""
    rng = np.random.default_rng(base_seed)
    kinds = [k for k, c in _counts(n).items() for _ in range(c)]
    rng.shuffle(kinds)
    out = []
    for i, kind in enumerate(kinds):
        long = int(rng.integers(min_side, max_side + 1))
        a, b = _ASPECTS[int(rng.integers(len(_ASPECTS)))]
        short = max(16, round(long * b / a))
        w, h = (short, long) if rng.random() < 1 / 3 else (long, short)
        out.append(ImageSpec(base_seed + i, kind, w, h))
    return out


def generate(spec: ImageSpec) -> Image.Image:
    """The RGB pixels of a spec."""
    return scene(spec.seed, spec.width, spec.height, spec.kind)


def as_stored(image: Image.Image) -> Image.Image:
    """``image`` written as a JPEG file (quality 95) and decoded again, as RGB."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    with Image.open(io.BytesIO(encode(rgb, "JPEG", quality=STORE_QUALITY))) as decoded:
        return decoded.convert("RGB")
