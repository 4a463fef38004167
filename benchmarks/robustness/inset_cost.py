"""What inset views cost a scan: ``python -m benchmarks.robustness.inset_cost [--repeat N]``.

Per frame kind and size (plain photographs, 2x2 and 3x3 contact sheets, chat screenshots; 640 x 480
and 1280 x 900), the median time of :func:`matcher.insets.find_insets` alone, of OpenCV's
Canny + contours + approxPolyDP (the edge-based alternative, for comparison), and of
:func:`matcher.views.query_view_hashes` for PDQ with every view feature, insets off and on (what
the scan computes per frame), with the number of insets proposed. One thread; the machine may be
shared, so compare the columns of one run rather than runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from fixtures import scene
from matcher.algorithms import registry
from matcher.insets import find_insets
from matcher.views import query_view_hashes

from .transforms import collage, screenshot


def _frames() -> dict[str, Image.Image]:
    """The frames timed: each kind at 640 x 480 and 1280 x 900 (collages are 640 x 480 by design,
    so the larger one is the same sheet resized; screenshots are 720 x 1280 or 1280 x 900 by
    design, so the smaller one is resized)."""
    picture = scene(77, 480, 360, "landscape")
    out: dict[str, Image.Image] = {}
    for label, size in (("640x480", (640, 480)), ("1280x900", (1280, 900))):
        out[f"photo {label}"] = scene(78, *size, "landscape")
        out[f"text card {label}"] = scene(79, *size, "text")
        for name, edit in (("collage 2x2", collage(2)), ("collage 3x3", collage(3)), ("screenshot", screenshot(0.5))):
            out[f"{name} {label}"] = edit(picture).resize(size, Image.Resampling.BICUBIC)
    return out


def _median_ms(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _canny_rectangles(image: Image.Image) -> int:
    """Canny + external contours + approxPolyDP, keeping 4-point convex polygons (the alternative)."""
    import cv2

    grey = np.asarray(image.convert("L"))
    factor = max(1, -(-max(image.size) // 512))
    if factor > 1:
        grey = cv2.resize(grey, (grey.shape[1] // factor, grey.shape[0] // factor), interpolation=cv2.INTER_AREA)
    edges = cv2.Canny(grey, 50, 150)
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    found = 0
    for contour in contours:
        if cv2.contourArea(contour) < 0.01 * grey.size:
            continue
        polygon = cv2.approxPolyDP(contour, 0.02 * cv2.arcLength(contour, True), True)
        found += int(len(polygon) == 4 and cv2.isContourConvex(polygon))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    pdq = registry.get("pdq")
    print("| frame | insets | find_insets ms | Canny+contours ms | PDQ views, no insets ms | PDQ views + insets ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, frame in _frames().items():
        boxes = find_insets(frame)
        found = _median_ms(lambda: find_insets(frame), args.repeat)
        canny = _median_ms(lambda: _canny_rectangles(frame), args.repeat)
        off = _median_ms(lambda: query_view_hashes(pdq, frame, insets=False), args.repeat)
        on = _median_ms(lambda: query_view_hashes(pdq, frame), args.repeat)
        print(f"| {name} | {len(boxes)} | {found:.2f} | {canny:.2f} | {off:.1f} | {on:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
