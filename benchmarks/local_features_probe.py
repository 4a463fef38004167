"""Probe for local features (issue 17): which detector, descriptor, cap, model and match rule.

Run (about 17 minutes on 2 shared cores, 12 originals; ``--final-only`` redoes the end-to-end run
and the timing, about 2 minutes)::

    python -m benchmarks.local_features_probe
    python -m benchmarks.local_features_probe --originals 8 --quick        # a smoke run
    python -m benchmarks.local_features_probe --opencv4 /tmp/cv4           # also AKAZE and BRISK

Everything is synthetic and seeded: ``--originals`` textured scenes (``fixtures.scene`` kinds
landscape, shapes, text and plasma, 640x480) are the known images; each is edited by the continuum
of issue 17 (centred crops 1-30 %, one-side crops, off-centre 85 % windows, aspect changes,
rotations 1-15 degrees with and without canvas expansion, caption bands at top and bottom,
screenshot embeddings at 40-90 % in an interface-like canvas, 2x2 and 3x3 collage tiles, JPEG and
resizing combinations, colour edits), with the true transform (known pixels to edited pixels) known.
A query is *found* when :func:`matcher.local_features.verify` passes and the known image's projected
corners lie within 2 % of the query's diagonal of the true ones.

Distractors (must not verify): unrelated scenes against every known image, and pairs of unrelated
scenes sharing only a region: the same logo, the same watermark, the same caption band (text
included), or the same chat-app interface around different pictures.

For each detector configuration the verification is run with a permissive rule and the rule's
thresholds (inliers, coverage) are applied afterwards, so one run measures the whole grid; the
chosen configuration is then run end to end (vote over the known set, then verification) and
timed: extraction of a 640x480 frame and a brute-force vote against 1,000 known images (the
known set padded with other scenes' descriptors). Bytes per known image are the stored form's.
OpenCV 5's headless build has ORB and SIFT only (AKAZE, BRISK and the xfeatures2d descriptors
such as BEBLID moved to contrib); ``--opencv4`` names an OpenCV 4 install (``pip install --target
DIR "opencv-python-headless<5"``) to measure AKAZE and BRISK as well.

Results go to ``benchmarks/results/local_features_probe.json``; the summary table is in
``docs/local-features.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from fixtures.generate import scene
from fixtures.interface import ROWS, chat_canvas
from matcher import local_features as lf

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = (640, 480)
KINDS = ("landscape", "shapes", "text", "plasma")
PERMISSIVE = lf.MatchRule(
    min_spread=0.0,
    min_spread_few=0.0,  # the spread is one of the grids below
    min_inliers=4,
    min_coverage=0.0,
    min_votes=1,
    max_anisotropy=3.0,
    min_scale=0.05,
    max_scale=20,
)
INLIER_GRID = (10, 12, 15)
COVERAGE_GRID = (0.0, 0.3, 0.4)
SPREAD_GRID = (0.0, 0.1, 0.2)

Transform = tuple[Image.Image, np.ndarray]  # edited image, 3x3 known -> edited


# ------------------------------------------------------------------------------------------ edits


def shift(dx: float, dy: float) -> np.ndarray:
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float64)


def scaling(sx: float, sy: float) -> np.ndarray:
    return np.diag([sx, sy, 1.0])


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    out = BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=quality)
    return Image.open(BytesIO(out.getvalue())).convert("RGB")


def resized(img: Image.Image, factor: float) -> Transform:
    w, h = img.size
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return img.resize(size, Image.Resampling.BICUBIC), scaling(size[0] / w, size[1] / h)


def crop_box(img: Image.Image, box: tuple[int, int, int, int]) -> Transform:
    return img.crop(box), shift(-box[0], -box[1])


def centred_crop(img: Image.Image, percent: float) -> Transform:
    """Remove ``percent`` % of each dimension, half on each side."""
    w, h = img.size
    dw, dh = round(w * percent / 100), round(h * percent / 100)
    return crop_box(img, (dw // 2, dh // 2, dw // 2 + w - dw, dh // 2 + h - dh))


def side_crop(img: Image.Image, side: str, percent: float) -> Transform:
    w, h = img.size
    dw, dh = round(w * percent / 100), round(h * percent / 100)
    box = {"left": (dw, 0, w, h), "right": (0, 0, w - dw, h), "top": (0, dh, w, h), "bottom": (0, 0, w, h - dh)}[side]
    return crop_box(img, box)


def window(img: Image.Image, fraction: float, rng: np.random.Generator) -> Transform:
    w, h = img.size
    ww, wh = round(w * fraction), round(h * fraction)
    left, top = int(rng.integers(0, w - ww + 1)), int(rng.integers(0, h - wh + 1))
    return crop_box(img, (left, top, left + ww, top + wh))


def rotation(img: Image.Image, degrees: float, expand: bool) -> Transform:
    """PIL's counter-clockwise turn about the centre; the matrix maps pixel centres."""
    w, h = img.size
    out = img.rotate(degrees, Image.Resampling.BICUBIC, expand=expand, fillcolor=(0, 0, 0))
    a = math.radians(degrees)
    turn = np.array([[math.cos(a), math.sin(a), 0], [-math.sin(a), math.cos(a), 0], [0, 0, 1]])
    return out, shift(out.size[0] / 2, out.size[1] / 2) @ turn @ shift(-w / 2, -h / 2)


def band(img: Image.Image, percent: float, top: bool, text: str = "caption text shared 2024") -> Image.Image:
    out = img.copy()
    w, h = out.size
    height = max(1, round(h * percent / 100))
    y0 = 0 if top else h - height
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, y0, w, y0 + height), fill=(24, 24, 32))
    draw.text((w * 0.04, y0 + height * 0.2), text, fill=(250, 250, 250), font_size=max(8, round(height * 0.55)))
    return out


def interface(seed: int, size: tuple[int, int]) -> Image.Image:
    """A chat-app-like canvas (:func:`fixtures.interface.chat_canvas`), its avatars' colours and
    message numbers seeded."""
    rng = np.random.default_rng([seed, 77])
    colours, numbers = [], []
    for _ in range(ROWS):  # drawn in the order the rows were drawn
        colours.append(tuple(int(v) for v in rng.integers(60, 200, 3)))
        numbers.append(int(rng.integers(1000)))
    return chat_canvas(size, colours, numbers)


def screenshot(img: Image.Image, fraction: float, rng: np.random.Generator, ui_seed: int = 0) -> Transform:
    """``img`` scaled to ``fraction`` of a larger interface canvas's width, pasted at a seeded place."""
    cw, ch = (720, 1280) if rng.random() < 0.5 else (1280, 900)
    canvas = interface(ui_seed, (cw, ch))
    w, h = img.size
    s = fraction * cw / w
    if h * s > 0.8 * ch:
        s = 0.8 * ch / h
    pw, ph = round(w * s), round(h * s)
    left = int(rng.integers(0, cw - pw + 1))
    top = int(rng.integers(round(0.07 * ch), max(round(0.07 * ch) + 1, round(0.92 * ch) - ph + 1)))
    canvas.paste(img.resize((pw, ph), Image.Resampling.BICUBIC), (left, top))
    return canvas, shift(left, top) @ scaling(pw / w, ph / h)


def collage(img: Image.Image, others: list[Image.Image], n: int, tile: int) -> Transform:
    """An n x n contact sheet of 640x480 tiles scaled by 1/n, ``img`` at position ``tile``."""
    w, h = SIZE
    tw, th = w // n, h // n
    canvas = Image.new("RGB", (tw * n, th * n), (255, 255, 255))
    pictures = others[: n * n - 1]
    pictures.insert(tile, img)
    for k, picture in enumerate(pictures):
        canvas.paste(picture.resize((tw, th), Image.Resampling.BICUBIC), ((k % n) * tw, (k // n) * th))
    return canvas, shift((tile % n) * tw, (tile // n) * th) @ scaling(tw / img.size[0], th / img.size[1])


def sepia(img: Image.Image) -> Image.Image:
    grey = np.asarray(img.convert("L"), np.float32)
    return Image.fromarray(np.clip(np.stack([grey * 1.07, grey * 0.74, grey * 0.43], -1) + 20, 0, 255).astype(np.uint8))


def noisy(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(img, np.float32) + rng.normal(0, 8, (img.size[1], img.size[0], 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def continuum(
    img: Image.Image, others: list[Image.Image], rng: np.random.Generator, quick: bool
) -> dict[str, Transform]:
    """Every continuum edit of ``img``: ``{name: (edited, true 3x3)}``; random positions from ``rng``."""
    eye = np.eye(3)
    out: dict[str, Transform] = {}
    for p in range(1, 31, 6 if quick else 1):
        out[f"crop_centre_{p:02d}"] = centred_crop(img, p)
    for side in ("left", "right", "top", "bottom"):
        p = int(rng.integers(5, 31))
        out[f"crop_side_{side}"] = side_crop(img, side, p)
    for k in range(2 if quick else 4):
        out[f"window85_{k}"] = window(img, 0.85, rng)
    out["aspect_stretch_x0.8"] = (img.resize((512, 480), Image.Resampling.BICUBIC), scaling(0.8, 1.0))
    out["aspect_crop_16x9"] = crop_box(img, (0, 60, 640, 420))
    for d in (1, 3, 6, 10, 15) if quick else range(1, 16, 2):
        out[f"rotate_{d:02d}"] = rotation(img, d, False)
        out[f"rotate_{d:02d}_expand"] = rotation(img, d, True)
    for p in (8, 20):
        out[f"caption_bottom_{p}"] = (band(img, p, top=False), eye)
        out[f"caption_top_{p}"] = (band(img, p, top=True), eye)
    for f in (0.4, 0.6, 0.9) if quick else (0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        out[f"screenshot_{round(f * 100)}"] = screenshot(img, f, rng)
    for t in range(4) if not quick else (0, 3):
        out[f"collage2x2_tile{t}"] = collage(img, list(others), 2, t)
    out["collage3x3_tile4"] = collage(img, list(others), 3, 4)
    out["resize_0.5"] = resized(img, 0.5)
    out["jpeg_q50"] = (jpeg(img, 50), eye)
    edited, m = centred_crop(img, 15)
    small, s = resized(edited, 0.5)
    out["crop15_resize0.5_jpeg70"] = (jpeg(small, 70), s @ m)
    edited, m = rotation(img, 7, False)
    out["rotate7_jpeg60"] = (jpeg(edited, 60), m)
    edited, m = screenshot(img, 0.6, rng)
    out["screenshot60_jpeg50"] = (jpeg(edited, 50), m)
    out["gamma_0.7"] = (img.point(lambda v: round(255 * (v / 255) ** 0.7)), eye)
    out["blur_r2"] = (img.filter(ImageFilter.GaussianBlur(2)), eye)
    out["greyscale"] = (img.convert("L").convert("RGB"), eye)
    out["saturation_0.3"] = (ImageEnhance.Color(img).enhance(0.3), eye)
    out["sepia"] = (sepia(img), eye)
    out["noise_8"] = (noisy(img, rng), eye)
    return out


def family(name: str) -> str:
    """The transform family a name belongs to, for the summary table."""
    for prefix in (
        "crop_centre",
        "crop_side",
        "window85",
        "aspect",
        "caption",
        "screenshot",
        "collage2x2",
        "collage3x3",
    ):
        if name.startswith(prefix):
            return prefix
    if name.startswith("rotate_"):
        return "rotate_expand" if name.endswith("expand") else "rotate"
    if "_" in name and name.split("_")[0] in ("crop15", "rotate7", "screenshot60"):
        return "combo_jpeg_resize"
    return "photometric"


# ----------------------------------------------------------------------------------- distractors


def logo(img: Image.Image) -> Image.Image:
    """A fixed emblem (shapes and a word) in the bottom-right corner."""
    out = img.copy()
    mark = scene(4242, 120, 60, "shapes")
    ImageDraw.Draw(mark).text((8, 20), "BRAND", fill=(255, 255, 255), font_size=22)
    out.paste(mark, (out.size[0] - 130, out.size[1] - 70))
    return out


def watermark(img: Image.Image) -> Image.Image:
    """The same semi-transparent text across the middle."""
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for k in range(3):
        draw.text((40, 120 + 100 * k), "example-watermark.com  (c) 2024", fill=(255, 255, 255, 110), font_size=34)
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


def shared_pairs(seeds: list[int]) -> dict[str, list[tuple[Image.Image, Image.Image]]]:
    """Pairs (known, query) of unrelated scenes that share only one region, per kind of region."""
    pairs: dict[str, list[tuple[Image.Image, Image.Image]]] = defaultdict(list)
    rng = np.random.default_rng(99)
    for a, b in zip(seeds[0::2], seeds[1::2]):
        ka, kb = KINDS[a % len(KINDS)], KINDS[b % len(KINDS)]
        ia, ib = scene(a, *SIZE, ka), scene(b, *SIZE, kb)
        pairs["logo"].append((logo(ia), jpeg(logo(ib), 80)))
        pairs["watermark"].append((watermark(ia), jpeg(watermark(ib), 80)))
        pairs["caption"].append((band(ia, 15, top=False), jpeg(band(ib, 15, top=False), 80)))
        state = rng.bit_generator.state
        shot_a, _ = screenshot(ia, 0.7, rng)
        rng.bit_generator.state = state  # same canvas and place for both
        shot_b, _ = screenshot(ib, 0.7, rng)
        pairs["interface"].append((shot_a, jpeg(shot_b, 80)))
    return pairs


# ------------------------------------------------------------------------------------ detectors


@dataclass(frozen=True)
class Config:
    name: str
    detector: str  # orb, akaze, brisk
    known: lf.ExtractParams
    query: lf.ExtractParams


def configs(cv4: bool) -> list[Config]:
    """The default first, then one change each (the cap, the working scale, FAST threshold...)."""
    k, q = lf.KNOWN_PARAMS, lf.QUERY_PARAMS
    if cv4:
        return [Config("akaze_200@320_1500@640", "akaze", k, q), Config("brisk_200@320_1500@640", "brisk", k, q)]
    return [
        Config("orb_200@320_1500@640", "orb", k, q),
        Config("orb_known100", "orb", replace(k, max_keypoints=100), q),
        Config("orb_known150", "orb", replace(k, max_keypoints=150), q),
        Config("orb_query1000", "orb", k, replace(q, max_keypoints=1000)),
        Config("orb_known@640", "orb", replace(k, max_side=640), q),
        Config("orb_known@400", "orb", replace(k, max_side=400), q),
        Config("orb_fast12", "orb", replace(k, fast_threshold=12), replace(q, fast_threshold=12)),
        Config("orb_nogrid", "orb", replace(k, grid=1), replace(q, grid=1)),
    ]


def extractor(config: Config, query: bool) -> Callable[[Image.Image], lf.LocalFeatures]:
    params = config.query if query else config.known
    if config.detector == "orb":
        return lambda img: lf.extract(img, params)
    import cv2

    def run(img: Image.Image) -> lf.LocalFeatures:
        grey = np.asarray(img.convert("L"))
        h, w = grey.shape
        factor = min(1.0, params.max_side / max(w, h))
        work = grey if factor >= 1 else np.asarray(Image.fromarray(grey).resize((round(w * factor), round(h * factor))))
        det = cv2.AKAZE_create(threshold=0.0005) if config.detector == "akaze" else cv2.BRISK_create(thresh=20)
        kps, desc = det.detectAndCompute(work, None)
        return lf.features_from_keypoints(kps, desc, (w, h), (work.shape[1], work.shape[0]), params)

    return run


def corner_error(match: lf.LocalMatch, truth: np.ndarray, known: lf.LocalFeatures) -> float:
    corners = np.array([[0, 0, 1], [known.width, 0, 1], [known.width, known.height, 1], [0, known.height, 1]], float)
    true = corners @ truth.T
    true = true[:, :2] / true[:, 2:3]
    return float(np.abs(np.array(match.corners) - true).max())


def verdict(match: lf.LocalMatch | None) -> dict[str, Any] | None:
    if match is None:
        return None
    return {
        "inliers": match.inliers,
        "coverage": round(match.coverage, 3),
        "spread": round(match.spread, 3),
        "scale": round(match.scale, 3),
        "aniso": round(match.anisotropy, 3),
    }


def passes(
    v: dict[str, Any] | None, inliers: int, coverage: float, spread: float, rule: lf.MatchRule = lf.DEFAULT_RULE
) -> bool:
    return (
        v is not None
        and v["inliers"] >= inliers
        and v["coverage"] >= coverage
        and v["spread"] >= spread
        and rule.min_scale <= v["scale"] <= rule.max_scale
        and v["aniso"] <= rule.max_anisotropy
    )


# ------------------------------------------------------------------------------------------ runs


def build_sets(
    originals: int, quick: bool
) -> tuple[list[Image.Image], list[tuple[int, str, Image.Image, np.ndarray]], list[Image.Image]]:
    """Known images, queries ``(known position, transform, image, truth)`` and unrelated scenes."""
    known = [scene(1000 + i, *SIZE, KINDS[i % len(KINDS)]) for i in range(originals)]
    fillers = [scene(5000 + i, *SIZE, KINDS[i % 3]) for i in range(8)]  # collage neighbours, never known
    rng = np.random.default_rng(17)
    queries = []
    for position, img in enumerate(known):
        others = [fillers[(position + j) % len(fillers)] for j in range(8)]
        for name, (edited, truth) in continuum(img, others, rng, quick).items():
            queries.append((position, name, edited, truth))
    unrelated = [jpeg(scene(9000 + i, *SIZE, KINDS[i % len(KINDS)]), 85) for i in range(max(4, originals // 2))]
    return known, queries, unrelated


def probe_config(
    config: Config,
    known_images: list[Image.Image],
    queries: list[Any],
    unrelated: list[Image.Image],
    shared: dict[str, list[Any]],
    rule: lf.MatchRule,
) -> dict[str, Any]:
    """Permissive verification of every positive and distractor pair, with the figures to grid over."""
    kx, qx = extractor(config, False), extractor(config, True)
    known = [kx(img) for img in known_images]
    positives = []
    t0 = time.perf_counter()
    for position, name, img, truth in queries:
        match = lf.verify(qx(img), known[position], rule)
        v = verdict(match)
        if v is not None and match is not None:
            v["corner_error"] = round(corner_error(match, truth, known[position]), 1)
            v["corner_ok"] = v["corner_error"] <= 0.02 * math.hypot(*img.size)
        positives.append({"known": position, "transform": name, "result": v})
    seconds = time.perf_counter() - t0
    negatives = []
    for j, img in enumerate(unrelated):
        q = qx(img)
        for position, k in enumerate(known):
            negatives.append({"kind": "unrelated", "pair": [j, position], "result": verdict(lf.verify(q, k, rule))})
    for kind, pairs in shared.items():
        for j, (a, b) in enumerate(pairs):
            negatives.append({"kind": kind, "pair": [j], "result": verdict(lf.verify(qx(b), kx(a), rule))})
    sizes = [len(k.to_bytes()) for k in known]
    return {
        "config": {
            "name": config.name,
            "detector": config.detector,
            "known": asdict(config.known),
            "query": asdict(config.query),
        },
        "bytes_per_known": {"mean": float(np.mean(sizes)), "max": int(max(sizes))},
        "keypoints_per_known_mean": float(np.mean([len(k) for k in known])),
        "seconds_extract_and_verify_positives": round(seconds, 2),
        "positives": positives,
        "negatives": negatives,
    }


def summarise(
    raw: dict[str, Any], inliers: int, coverage: float, spread: float, rule: lf.MatchRule = lf.DEFAULT_RULE
) -> dict[str, Any]:
    """Recall per transform family and false verifications per distractor kind under one rule."""
    found: dict[str, list[bool]] = defaultdict(list)
    for p in raw["positives"]:
        ok = passes(p["result"], inliers, coverage, spread, rule) and bool(p["result"].get("corner_ok"))
        found[family(p["transform"])].append(ok)
        found["all"].append(ok)
        found["all_textured" if KINDS[p["known"] % len(KINDS)] != "plasma" else "all_smooth_plasma"].append(ok)
    false: dict[str, int] = defaultdict(int)
    pairs: dict[str, int] = defaultdict(int)
    for n in raw["negatives"]:
        pairs[n["kind"]] += 1
        false[n["kind"]] += passes(n["result"], inliers, coverage, spread, rule)
    return {
        "min_inliers": inliers,
        "min_coverage": coverage,
        "min_spread": spread,
        "recall": {k: round(sum(v) / len(v), 3) for k, v in sorted(found.items())},
        "false": {k: f"{false[k]}/{pairs[k]}" for k in sorted(pairs)},
        "false_total": sum(false.values()),
    }


def timing(
    config: Config, known_images: list[Image.Image], rule: lf.MatchRule, total: int = 1000, repeats: int = 5
) -> dict[str, Any]:
    """ms per 640x480 frame: extraction, brute-force vote against ``total`` known images, verification
    of the top candidates."""
    import cv2

    cv2.setNumThreads(1)  # the target is per core
    kx, qx = extractor(config, False), extractor(config, True)
    known = [kx(img) for img in known_images]
    rng = np.random.default_rng(5)
    pad = [
        lf.LocalFeatures(640, 480, rng.integers(0, 65535, (200, 2)), rng.integers(0, 256, (200, 32), dtype=np.uint8))
        for _ in range(total - len(known))
    ]
    everything = known + pad
    search = lf.BruteForceSearch(everything)
    frame = jpeg(known_images[0], 85)  # a 640x480 frame holding a known image
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        t0 = time.perf_counter()
        q = qx(frame)
        t1 = time.perf_counter()
        candidates = lf.vote(q, search, rule)
        t2 = time.perf_counter()
        [lf.verify(q, everything[i], rule) for i, _ in candidates[:10]]
        t3 = time.perf_counter()
        times["extract_ms"].append((t1 - t0) * 1000)
        times["vote_bruteforce_ms"].append((t2 - t1) * 1000)
        times["verify_top10_ms"].append((t3 - t2) * 1000)
    try:
        import faiss

        faiss.omp_set_num_threads(1)
        index = faiss.IndexBinaryFlat(256)
        index.add(search.descriptors)
        t0 = time.perf_counter()
        for _ in range(repeats):
            index.search(np.asarray(q.descriptors), 4)
        times["vote_faiss_flat_ms"] = [(time.perf_counter() - t0) * 1000 / repeats]
    except ImportError:
        pass
    return {
        "known_images": total,
        "descriptors": int(len(search.descriptors)),
        **{k: round(min(v), 2) for k, v in times.items()},
    }


def end_to_end(
    config: Config,
    known_images: list[Image.Image],
    queries: list[Any],
    unrelated: list[Image.Image],
    rule: lf.MatchRule,
) -> dict[str, Any]:
    """The whole path (vote over the known set, verify the top candidates) under ``rule``."""
    kx, qx = extractor(config, False), extractor(config, True)
    known = [kx(img) for img in known_images]
    search = lf.BruteForceSearch(known)
    found: dict[str, list[bool]] = defaultdict(list)
    wrong = 0
    for position, name, img, truth in queries:
        hits = lf.find(qx(img), known, search, rule)
        right = [
            m
            for p, m in hits
            if p == position and corner_error(m, truth, known[position]) <= 0.02 * math.hypot(*img.size)
        ]
        wrong += sum(1 for p, _ in hits if p != position)
        found[family(name)].append(bool(right))
        found["all"].append(bool(right))
    false_unrelated = sum(len(lf.find(qx(img), known, search, rule)) for img in unrelated)
    return {
        "recall": {k: round(sum(v) / len(v), 3) for k, v in sorted(found.items())},
        "wrong_known_found_for_queries": wrong,
        "false_for_unrelated_frames": f"{false_unrelated}/{len(unrelated)}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=12)
    parser.add_argument("--quick", action="store_true", help="fewer steps of each continuum")
    parser.add_argument("--opencv4", help="directory holding an OpenCV 4 install, to measure AKAZE and BRISK")
    parser.add_argument("--cv4-part", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--final-only",
        action="store_true",
        help="redo only the end-to-end run and the timing in an existing results file",
    )
    parser.add_argument("--output", default=str(RESULTS / "local_features_probe.json"))
    args = parser.parse_args(argv)

    import cv2

    known, queries, unrelated = build_sets(args.originals, args.quick)
    if args.final_only:
        out = json.loads(Path(args.output).read_text())
        out["default_rule"] = asdict(lf.DEFAULT_RULE)
        out["end_to_end_default"] = end_to_end(configs(False)[0], known, queries, unrelated, lf.DEFAULT_RULE)
        out["timing_640x480"] = timing(configs(False)[0], known, lf.DEFAULT_RULE)
        Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
        print(json.dumps(out["timing_640x480"], indent=1))
        return 0
    shared = shared_pairs(list(range(7000, 7000 + 2 * max(4, args.originals // 2))))
    models = [
        ("similarity", "ransac"),
        ("affine", "ransac"),
        ("affine", "magsac"),
        ("homography", "ransac"),
        ("homography", "magsac"),
    ]
    out: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "opencv": cv2.__version__, "cpus": os.cpu_count()},
        "originals": args.originals,
        "queries": len(queries),
        "unrelated": len(unrelated),
        "shared_pairs": {k: len(v) for k, v in shared.items()},
        "opencv_features": sorted(
            n for n in ("ORB_create", "SIFT_create", "AKAZE_create", "BRISK_create", "xfeatures2d") if hasattr(cv2, n)
        ),
        "detectors": {},
        "models": {},
    }
    for config in configs(args.cv4_part):
        print(f"detector {config.name} ...", file=sys.stderr, flush=True)
        raw = probe_config(config, known, queries, unrelated, shared, PERMISSIVE)
        grid = [summarise(raw, i, c, f) for i in INLIER_GRID for c in COVERAGE_GRID for f in SPREAD_GRID]
        out["detectors"][config.name] = {k: v for k, v in raw.items() if k not in ("positives", "negatives")} | {
            "grid": grid
        }
        if config == configs(False)[0]:
            out["raw_default"] = raw
    if args.cv4_part:
        json.dump(out, sys.stdout)
        return 0
    if args.opencv4:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([args.opencv4, str(Path(__file__).resolve().parents[1])])}
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.local_features_probe",
                "--cv4-part",
                "--originals",
                str(args.originals),
                *(["--quick"] if args.quick else []),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        cv4 = json.loads(done.stdout)
        out["detectors_opencv4"] = {
            "opencv": cv4["machine"]["opencv"],
            "opencv_features": cv4["opencv_features"],
            **cv4["detectors"],
        }
    chosen = configs(False)[0]
    for model, method in models:
        print(f"model {model}/{method} ...", file=sys.stderr, flush=True)
        rule = replace(PERMISSIVE, model=model, method=method)
        raw = probe_config(chosen, known, queries, unrelated, shared, rule)
        out["models"][f"{model}_{method}"] = {
            "seconds_extract_and_verify_positives": raw["seconds_extract_and_verify_positives"],
            "grid": [summarise(raw, i, c, f) for i in INLIER_GRID for c in COVERAGE_GRID for f in SPREAD_GRID],
        }
    print("end to end and timing ...", file=sys.stderr, flush=True)
    out["default_rule"] = asdict(lf.DEFAULT_RULE)
    out["end_to_end_default"] = end_to_end(chosen, known, queries, unrelated, lf.DEFAULT_RULE)
    out["timing_640x480"] = timing(chosen, known, lf.DEFAULT_RULE)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("end_to_end_default", "timing_640x480")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
