"""Regenerate the project's PDQ reference vectors in ``tests/data/pdq-vectors/``.

    python tests/data/regenerate_pdq_vectors.py          # needs the dev extra (pdqhash)

Each case is a synthetic image made by :mod:`fixtures.generate` (value noise, shapes, text cards,
gradients, a greyscale image; sizes below PDQ's 5-pixel minimum, thin strips, odd sizes and sides
over 512 pixels), saved as lossless PNG. ``expected.jsonl`` holds, for each PNG, what the reference
PDQ implementation (the ``pdqhash`` bindings of ThreatExchange's C++ code: the oracle) computes on
the PNG's RGB pixel array, ``numpy.asarray(PIL.Image.open(f).convert("RGB"))``:

- ``pdq``: the 256-bit hash, 64 lowercase hex digits in the reference layout;
- ``quality``: the reference quality score, 0..100;
- ``dihedral``: the reference's eight DCT-derived dihedral hashes under the reference's own names
  (:data:`REFERENCE_NAMES`, ``pdqhash.compute_dihedral``'s order); matcher's name for each is
  :data:`matcher.algorithms.pdq.REFERENCE_DIHEDRAL_NAMES`.

The expected values always come from the stored PNGs, so the vectors stay valid whatever Pillow
version drew the images; regenerating on another Pillow may draw slightly different PNGs (fonts,
resampling), with new expected values to match. Commit both together. The tests
(``tests/test_pdq.py``) only read these files; they never need the oracle to have the vectors.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
OUT = HERE / "pdq-vectors"

#: The reference's names of its eight dihedral hashes, in ``pdqhash.compute_dihedral``'s order.
REFERENCE_NAMES: tuple[str, ...] = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flipX",
    "flipY",
    "flipPlus",
    "flipMinus",
)


def _cases() -> dict[str, Callable[[], Image.Image]]:
    """File name -> a function drawing the image (imports fixtures only when run)."""
    sys.path.insert(0, str(HERE.parent.parent))
    from fixtures import generate as g

    def scene(seed: int, width: int, height: int, kind: str) -> Callable[[], Image.Image]:
        return lambda: g.scene(seed, width, height, kind)

    cases: dict[str, Callable[[], Image.Image]] = {}
    for seed, (width, height, kind) in enumerate(CASES):
        cases[f"{kind}_{width}x{height}.png"] = scene(seed, width, height, kind)
    cases["grey_landscape_240x180.png"] = lambda: g.image(90, 240, 180, "landscape", mode="L")
    return cases


#: (width, height, kind) of the scene cases; the seed is the position in this list.
CASES: tuple[tuple[int, int, str], ...] = (
    (4, 9, "plasma"),  # below the 5-pixel minimum: all-zero hash, quality 0
    (9, 4, "shapes"),
    (5, 5, "plasma"),  # the smallest hashed size
    (7, 300, "plasma"),  # thin strips
    (300, 6, "landscape"),
    (64, 64, "plasma"),  # exactly the 64x64 buffer: no blur
    (63, 47, "shapes"),
    (128, 128, "shapes"),
    (129, 127, "text"),  # box windows change at 128
    (200, 150, "landscape"),
    (257, 255, "plasma"),
    (233, 517, "landscape"),
    (420, 300, "text"),
    (256, 128, "gradient"),  # low quality
    (97, 361, "lowtexture"),
    (600, 260, "shapes"),
    (700, 513, "text"),  # sides over 512: the array path does not pre-resize
    (1100, 150, "gradient"),
)


def file_names() -> list[str]:
    """The file names of every case, in order (what ``expected.jsonl`` lists)."""
    return [*(f"{kind}_{w}x{h}.png" for w, h, kind in CASES), "grey_landscape_240x180.png"]


def _hex(bits: np.ndarray) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def main() -> int:
    """Draw every case, save it, and write ``expected.jsonl`` from the oracle."""
    import pdqhash

    OUT.mkdir(parents=True, exist_ok=True)
    lines = []
    cases = _cases()
    for name in file_names():
        path = OUT / name
        cases[name]().save(path, optimize=True)
        pixels = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))
        bits, quality = pdqhash.compute(pixels)
        variants, _ = pdqhash.compute_dihedral(pixels)
        lines.append(
            json.dumps(
                {
                    "file": name,
                    "width": int(pixels.shape[1]),
                    "height": int(pixels.shape[0]),
                    "pdq": _hex(bits),
                    "quality": int(quality),
                    "dihedral": {ref: _hex(v) for ref, v in zip(REFERENCE_NAMES, variants)},
                }
            )
        )
    (OUT / "expected.jsonl").write_text("\n".join(lines) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"{len(lines)} vectors, {total / 1e6:.2f} MB in {OUT}")  # a script, not library code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
