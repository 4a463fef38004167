"""The imagehash family's quality gate and strong distances, measured on the benchmark's images.

``python -m benchmarks.robustness.family_gate [ORIGINALS DISTRACTORS]`` (default 300 1000; about
half an hour on a busy 2-core machine) generates the robustness benchmark's originals and distractors
(:mod:`benchmarks.robustness.corpus`, the same seeds), hashes each with pHash, dHash, aHash and
wHash as matcher does (global hashes, with their detail quality) and each original's whole-image
edits, and prints, per algorithm, before and after the quality gate (both sides at least
``min_quality``): the pairs of different images within the match distance, the recall of the edits,
and for the strong distance the largest distance of an edit and the pairs of different images
within 1, 2 and 4 bits. The README's "Algorithms and thresholds" quotes a run at the default sizes.
"""

from __future__ import annotations

import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from matcher.algorithms import registry

from .corpus import ImageSpec, as_stored, generate, specs
from .run import DISTRACTOR_SEED, ORIGINAL_SEED
from .transforms import by_name

FAMILY = ("phash", "dhash", "ahash", "whash")
#: Whole-image edits (the strong distance is about these); crop5 and caption for comparison.
EDITS = ("jpeg75", "jpeg30", "resize0.5", "resize2", "blur2", "greyscale", "gamma0.7")
STRONG_EDITS = ("jpeg75", "jpeg30", "resize0.5", "resize2", "blur2", "greyscale")

Hashes = dict[str, tuple[np.ndarray, int]]  # algorithm -> (bits as 0/1, quality)


def _hashes(image: Any) -> Hashes:
    out: Hashes = {}
    for name in FAMILY:
        value = registry.get(name).hash_image(image)
        out[name] = (np.unpackbits(np.frombuffer(value.bits, np.uint8)), int(value.quality or 0))
    return out


def _work(job: tuple[bool, ImageSpec]) -> tuple[str, dict[str, Hashes]]:
    edited, spec = job
    image = as_stored(generate(spec))
    out = {"orig": _hashes(image)}
    if edited:
        out.update((edit, _hashes(as_stored(by_name(edit).apply(image)))) for edit in EDITS)
    return spec.kind, out


def measure(originals: int, distractors: int, workers: int = 2) -> list[str]:
    """The report's lines (see the module notes)."""
    jobs = [(True, s) for s in specs(originals, ORIGINAL_SEED)] + [
        (False, s) for s in specs(distractors, DISTRACTOR_SEED)
    ]
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_work, jobs, chunksize=8))
    kinds = np.array([kind for kind, _ in results])
    lines = [f"{len(results)} images ({originals} originals with {len(EDITS)} edits each, {distractors} distractors)"]
    for name in FAMILY:
        algorithm = registry.get(name)
        gate, limit = algorithm.min_quality or 0, algorithm.default_max_distance
        bits = np.array([r["orig"][name][0] for _, r in results])
        quality = np.array([r["orig"][name][1] for _, r in results])
        upper = np.triu_indices(len(results), 1)
        distance = (bits[:, None, :] != bits[None, :, :]).sum(-1)[upper]
        kept = (quality[:, None] >= gate)[upper[0], 0] & (quality >= gate)[upper[1]]
        after = (distance <= limit) & kept
        pairs = Counter(tuple(sorted(p)) for p in zip(kinds[upper[0]][after].tolist(), kinds[upper[1]][after].tolist()))
        low = Counter(kinds[quality < gate].tolist())
        lines.append(f"{name}: quality < {gate}: {dict(low)}")
        lines.append(
            f"  different pairs within {limit}: {int((distance <= limit).sum())} before, {int(after.sum())} after"
            f" {dict(pairs.most_common(4))}; after, within 1/2/4 bits: "
            + "/".join(str(int(((distance <= t) & kept).sum())) for t in (1, 2, 4))
            + f" of {int(kept.sum())}"
        )
        before_recall, after_recall, worst = [], [], 0
        for edit in EDITS:
            d = np.array([int((r["orig"][name][0] != r[edit][name][0]).sum()) for _, r in results[:originals]])
            q = np.array([min(r["orig"][name][1], r[edit][name][1]) for _, r in results[:originals]])
            before_recall.append(float((d <= limit).mean()))
            after_recall.append(float(((d <= limit) & (q >= gate)).mean()))
            if edit in STRONG_EDITS and (q >= gate).any():
                worst = max(worst, int(d[q >= gate].max()))
        lines.append(
            f"  mean recall of the edits {np.mean(before_recall):.3f} before, {np.mean(after_recall):.3f} after;"
            f" largest distance of a whole-image edit (quality >= {gate}): {worst}"
            f" (strong distance {algorithm.strong_max_distance})"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run at the sizes given (``ORIGINALS DISTRACTORS``) and print the report."""
    args = sys.argv[1:] if argv is None else argv
    originals, distractors = (int(args[0]), int(args[1])) if len(args) >= 2 else (300, 1000)
    print("\n".join(measure(originals, distractors)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
