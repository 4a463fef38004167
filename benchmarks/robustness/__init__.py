"""Robustness benchmark: how often an edited copy still matches its original, and at what false-match cost.

Run from the repository root::

    python -m benchmarks.robustness                 # 300 originals, 2000 distractors (hours: see below)
    python -m benchmarks.robustness --quick         # 20 originals, 200 distractors (about 15 minutes)
    python -m benchmarks.robustness --originals 60 --distractors 600    # the README's run (about 45 minutes)
    python -m pytest benchmarks/robustness -s       # the same, as a pytest benchmark (sanity checks only)

Each edited copy costs about 0.3 s of CPU (global hash sets ~0.14 s, local features: extraction
~0.01 s and the vote and verification of 10 candidates ~0.04-0.15 s), and there are 133 edits per
original: the default sizes (42,000 queries) take about 4 CPU-hours, the quick run about 15
minutes on 2 loaded cores.

Sizes: ``--originals N`` / ``--distractors N`` / ``--workers N`` or the environment variables
``MATCHER_ROBUST_ORIGINALS``, ``MATCHER_ROBUST_DISTRACTORS``, ``MATCHER_ROBUST_WORKERS``,
``MATCHER_ROBUST_QUICK=1``. Results: ``benchmarks/results/robustness.{md,json}``,
``robustness_recall.png`` and ``robustness_distances.png`` at the default sizes
(``robustness_<originals>x<distractors>.*`` at any other, so a quick run never overwrites the
README's figures). All images are synthetic (:mod:`fixtures`); every seed is fixed.

What is measured
----------------
*Originals*: generated scenes (photo-like landscapes and plasma clouds, shapes, text cards and a
low-texture share of gradients and flat colours; 256-512 px on the long side, a third portrait),
stored as JPEG quality 95 files. Each original is edited by every transform of
:data:`benchmarks.robustness.transforms.TRANSFORMS` (the issue's list plus a few labelled
*off-grid* edits between the fixed fractions matcher's region views use), and each edited copy is
stored as a JPEG quality 95 file and decoded again. *Distractors*: unrelated generated images (other
seeds, same kind mix, same storage).

*Methods* (columns): for PDQ and pHash, each matching mode, ours and the reference libraries'
(see :mod:`benchmarks.robustness.methods`); and matcher's local features
(:mod:`matcher.local_features`: originals and distractors extracted with ``KNOWN_PARAMS``, queries
with ``QUERY_PARAMS``, candidates by a vote over a FAISS binary flat index of the known
descriptors, :func:`matcher.local_features.find` with the default rule), alone, with the spread
condition on top, and after PDQ with views (the scan's rule: global hashes first, local features
for what they miss; recall when either finds the original, false matches the union of both).
Edited copies are searched among the originals, distractors among the originals and the other
distractors. A method gives each image a set of hashes, keyed by view:
a query set for searched images (edited copies, distractors) and a known set for indexed images
(originals, distractors). The *distance* of a pair is the minimum Hamming distance over the allowed
(query view, known view) combinations; the pair *matches* when that is <= the algorithm's default
threshold (``matcher.registry.get(name).default_max_distance``: PDQ 31, pHash 8). Hashes with a
quality below their algorithm's ``min_quality`` (PDQ's quality and matcher's pHash detail quality:
50) are never matched, on either side (the "quality rule"; the reference ``imagehash.phash`` has no
quality); every figure is also computed without the rule, to show what it costs and what it
prevents.

Definitions
-----------
- *Recall* of a transform: the fraction of originals whose edited copy matches its own original.
- *False pairs*: every distractor against every original and against every other distractor
  (ordered pairs: either one may be the indexed one), and every edited copy against every original
  but its own. A *false match* is a false pair that matches.
- *Recall at a fixed false-match rate* (1e-4): per method, the threshold is lowered (or raised) to the
  largest distance at which the false matches over all false pairs are at most 1e-4 of them; the
  recall at that threshold. Recall at zero false matches is in the JSON too.
- *Low-texture cost*: edited copies that would match their original without the quality rule but do
  not with it (mostly originals whose PDQ quality is < 50).
- ``pdq or phash``: a pair matches when the PDQ or the pHash mode matches (no single threshold, so no
  fixed-rate figure).
"""

from __future__ import annotations

from .run import Config, run

__all__ = ["Config", "run", "main"]


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    from .__main__ import main as _main

    return _main(argv)
