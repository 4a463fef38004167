"""Places: linking evidence images that show one place (the same room, the same background).

Two photos of one room taken from different spots share keypoints on the background (walls,
furniture, a window, a poster) even when the people or objects in front differ. This module links
such images with the local features of :mod:`matcher.local_features`, extracted alike on both sides
(:data:`~matcher.local_features.QUERY_PARAMS`), and finds the pairs worth verifying without
verifying all pairs. It is what ``matcher cluster --local`` runs, and what ``matcher compare``
calls to explain a link.

The link rule (:func:`link_places`, :data:`PLACE_RULE`)
------------------------------------------------------
Two images are *linked* when

* each is verified in the other (:func:`matcher.local_features.verify`, both directions) under
  :data:`PLACE_RULE`: an affine transform fitted with MAGSAC++ with at least 15 inliers, a sane
  scale and shear, and inliers whose convex hull covers at least 10 % of the part of the image both
  show (:data:`~matcher.local_features.EVIDENCE_PAIR_RULE`: a shared logo, caption band or any
  one small region matches point for point but with a thin hull);
* and the transform is not a *frame-anchored placement*: scale 1, no turn, and the two frames'
  corners, edges' middles or centres on each other (within 1 % of the diagonal). That is what an overlay shared by
  unrelated images gives (a watermark across the middle, an app's interface around different
  pictures, a logo or caption at the same place of same-sized frames), whose inliers can be
  spread wide; two photos of one place taken from different spots are never placed so. The cost:
  a frame-anchored crop of one picture (the top-left part of it, same scale) is not linked here;
  near-duplicates are the global hashes' job.

Known limits: a watermark repeated line after line can link two unrelated images by a shift of
one line, and unrelated text cards with the same words in one font can link (8 of 1,770 pairs of
generated text cards): their glyphs match at one scale over a spread-out area.

Measured on :mod:`fixtures.rooms` (a room photographed twice, overlapping windows, one 0.8 times
the other's size and tilted in perspective, with different objects in front): an affine model
gives the same inliers as a homography up to a tilt of 15 % (66-166 inliers), and the homography
once spread a shared caption band's inliers over 41 % of the image, so the affine model is kept.

Finding the pairs (:func:`place_candidates`)
---------------------------------------------
Each image's :data:`VOTE_KEYPOINTS` descriptors spread over an 8 x 8 grid of the frame are put in
one FAISS binary index over the whole set (:class:`FaissBinarySearch`: exact flat
search up to :data:`FLAT_UP_TO` descriptors, an inverted file above) and each of them asks for its
nearest descriptors of *other* images; a descriptor votes for the image of its nearest neighbour
when that match is distinct (Lowe's ratio test against the nearest third image), both ways round.
Pairs with at least :data:`MIN_VOTES` votes are candidates, each image's :data:`MAX_CANDIDATES`
best; only those are verified. On 50 generated rooms photographed twice among 100 other generated
pictures (200 images; the rooms all of one style) every photo's partner got the most distinct
votes (at least 4); counting every neighbour within 64 bits instead ranked it up to 12th, and
taking the first 300 descriptors in stored order (ORB's, not spread) missed 3 partners.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import local_features
from .errors import UsageError
from .local_features import DESCRIPTOR_BYTES, EVIDENCE_PAIR_RULE, LocalFeatures, LocalMatch, MatchRule

__all__ = [
    "PLACE_RULE",
    "VOTE_KEYPOINTS",
    "MAX_CANDIDATES",
    "MIN_VOTES",
    "FLAT_UP_TO",
    "ANCHOR_TOLERANCE",
    "ANCHOR_LINEAR",
    "PlaceLink",
    "FaissBinarySearch",
    "link_places",
    "frame_anchored",
    "place_candidates",
    "place_links",
]

#: The verification rule of a place link, each direction: affine, MAGSAC++, 15 inliers, spread 0.1.
PLACE_RULE: MatchRule = EVIDENCE_PAIR_RULE
#: Descriptors per image that vote for candidate pairs, spread over an 8 x 8 grid of the frame.
VOTE_KEYPOINTS = 400
_VOTE_GRID = 8
#: Candidate partners verified per image at most (those with most votes).
MAX_CANDIDATES = 5
#: Distinct votes (both ways round) a pair needs to be verified.
MIN_VOTES = 2
#: Up to this many indexed descriptors the candidate search is exact (FAISS flat); above, an
#: inverted file (FAISS binary IVF) searched with :data:`IVF_PROBES` lists.
FLAT_UP_TO = 400_000
#: Lists the inverted file probes per query.
IVF_PROBES = 16
#: Share of the frame diagonal within which a transform counts as frame-anchored.
ANCHOR_TOLERANCE = 0.01
#: How far from the identity the linear part of a frame-anchored transform may be (each entry).
ANCHOR_LINEAR = 0.05


@dataclass(frozen=True, slots=True)
class PlaceLink:
    """Two images showing one place.

    ``in_a``: where ``b`` is seen in ``a`` (:class:`~matcher.local_features.LocalMatch` of ``b`` in
    the frame ``a``: its inliers, the transform from ``b``'s pixels to ``a``'s, and ``region``, the
    part of ``a`` that ``b`` shows); ``in_b`` the same the other way round.
    """

    in_a: LocalMatch
    in_b: LocalMatch

    @property
    def inliers(self) -> int:
        """The smaller inlier count of the two directions."""
        return min(self.in_a.inliers, self.in_b.inliers)

    @property
    def region_a(self) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` in ``a``'s pixels: the part of ``a`` that ``b`` shows too."""
        return self.in_a.region

    @property
    def region_b(self) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` in ``b``'s pixels: the part of ``b`` that ``a`` shows too."""
        return self.in_b.region

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``inliers``, both directions' inliers, the regions, scale and rotation of ``b`` in ``a``."""
        return {
            "inliers": self.inliers,
            "inliers_a": self.in_a.inliers,
            "inliers_b": self.in_b.inliers,
            "region_a": list(self.region_a),
            "region_b": list(self.region_b),
            "scale": round(self.in_a.scale, 4),
            "rotation": round(self.in_a.rotation, 2),
        }


def frame_anchored(match: LocalMatch, frame: tuple[int, int], other: tuple[int, int]) -> bool:
    """Whether ``match`` (the image of size ``other`` seen in the frame of size ``frame``, both
    ``(width, height)``) is a plain placement at scale 1, unturned (each entry of the linear part
    within :data:`ANCHOR_LINEAR` of the identity's), with a corner, an edge's middle
    or the centre of one frame on the same point of the other (within :data:`ANCHOR_TOLERANCE` of
    the frame's diagonal): what a shared overlay gives."""
    tolerance = ANCHOR_TOLERANCE * math.hypot(*frame)
    m = match.transform
    if abs(m[6]) > 1e-6 or abs(m[7]) > 1e-6:
        return False
    if max(abs(m[0] - 1), abs(m[4] - 1), abs(m[1]), abs(m[3])) > ANCHOR_LINEAR:
        return False
    for fx in (0.0, 0.5, 1.0):
        for fy in (0.0, 0.5, 1.0):
            x, y = other[0] * fx, other[1] * fy
            px, py = m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]
            if math.hypot(px - frame[0] * fx, py - frame[1] * fy) <= tolerance:
                return True
    return False


def link_places(a: LocalFeatures, b: LocalFeatures, rule: MatchRule = PLACE_RULE) -> PlaceLink | None:
    """The :class:`PlaceLink` of two images' local features (extracted alike, e.g. with
    :data:`~matcher.local_features.QUERY_PARAMS`) when they show one place under the link rule
    (see the module documentation), else ``None``."""
    in_a = local_features.verify(a, b, rule)
    if in_a is None or frame_anchored(in_a, (a.width, a.height), (b.width, b.height)):
        return None
    in_b = local_features.verify(b, a, rule)
    if in_b is None or frame_anchored(in_b, (b.width, b.height), (a.width, a.height)):
        return None
    return PlaceLink(in_a, in_b)


class FaissBinarySearch:
    """A :class:`~matcher.local_features.DescriptorSearch` over the descriptors of a set of images
    in a FAISS binary index: exact (``IndexBinaryFlat``) up to :data:`FLAT_UP_TO` descriptors, an
    inverted file (``IndexBinaryIVF``, about ``4 * sqrt(n)`` lists, :data:`IVF_PROBES` probed)
    above. ``per_image`` keeps only each image's first descriptors (``None``: all). FAISS is
    imported on first use."""

    __slots__ = ("index", "owners", "quantizer")

    def __init__(self, features: Sequence[LocalFeatures], per_image: int | None = None) -> None:
        import faiss

        parts = [np.asarray(f.descriptors)[:per_image] for f in features]
        for part in parts:
            if len(part) and part.shape[1] != DESCRIPTOR_BYTES:
                raise UsageError(f"descriptors of {part.shape[1]} bytes; this search takes {DESCRIPTOR_BYTES}")
        codes = np.ascontiguousarray(np.concatenate(parts)) if parts else np.zeros((0, DESCRIPTOR_BYTES), np.uint8)
        self.owners: np.ndarray = np.repeat(np.arange(len(parts), dtype=np.int64), [len(p) for p in parts])
        bits = DESCRIPTOR_BYTES * 8
        self.quantizer: Any = None  # the inverted file's coarse index, kept alive beside it
        if len(codes) <= FLAT_UP_TO:
            self.index: Any = faiss.IndexBinaryFlat(bits)
        else:
            lists = int(4 * math.sqrt(len(codes)))
            self.quantizer = faiss.IndexBinaryFlat(bits)
            ivf = faiss.IndexBinaryIVF(self.quantizer, bits, lists)
            rng = np.random.default_rng(0)
            ivf.train(codes[rng.choice(len(codes), min(len(codes), lists * 64), replace=False)])
            ivf.nprobe = IVF_PROBES
            self.index = ivf
        if len(codes):
            self.index.add(codes)

    def search(self, descriptors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each descriptor's ``k`` nearest indexed descriptors: ``(distances, owners)``."""
        n = len(descriptors)
        if n == 0 or self.index.ntotal == 0:
            return np.full((n, k), np.iinfo(np.int32).max, np.int32), np.full((n, k), -1, np.int64)
        distances, rows = self.index.search(np.ascontiguousarray(descriptors, dtype=np.uint8), k)
        owners = np.where(rows >= 0, self.owners[np.clip(rows, 0, None)], -1)
        return distances.astype(np.int32), owners.astype(np.int64)


def place_candidates(
    features: Sequence[LocalFeatures | None],
    rule: MatchRule = PLACE_RULE,
    *,
    vote_keypoints: int = VOTE_KEYPOINTS,
    max_candidates: int = MAX_CANDIDATES,
    min_votes: int | None = None,
    k: int = 8,
) -> list[tuple[int, int, int]]:
    """Pairs worth verifying: ``(i, j, votes)`` with ``i < j`` (positions in ``features``; ``None``
    or empty entries take no part), most votes first. Each image's ``vote_keypoints`` descriptors
    spread over the frame ask the set's FAISS binary index (of the same descriptors of every
    image) for their ``k`` nearest. A descriptor votes for the
    other image of its nearest neighbour when that is within ``rule.vote_distance`` bits and
    *distinct*: nearer than ``rule.ratio`` times the nearest descriptor of any third image (Lowe's
    ratio test between images: scenes of one style share many loose matches, and only distinct
    ones rank the right partner first). Votes count both ways round; pairs with at least
    ``min_votes`` (default :data:`MIN_VOTES`) votes are kept, each image's ``max_candidates`` best."""
    min_votes = MIN_VOTES if min_votes is None else min_votes
    present = [i for i, f in enumerate(features) if f is not None and len(f) > 0]
    if len(present) < 2:
        return []
    chosen = [_voters(f, vote_keypoints) for f in features if f is not None and len(f) > 0]
    search = FaissBinarySearch(chosen)
    position = np.asarray(present, dtype=np.int64)
    rows: list[np.ndarray] = []
    for local, item in enumerate(chosen):
        queries = np.asarray(item.descriptors)
        distances, owners = search.search(queries, k)
        valid = (owners >= 0) & (owners != local)
        rows_ = np.arange(len(queries))
        first = np.argmax(valid, axis=1)  # neighbours come nearest first: the best other image
        best, near = owners[rows_, first], distances[rows_, first]
        other = valid & (owners != best[:, None])
        runner_up = distances[rows_, np.argmax(other, axis=1)]
        distinct = ~other.any(axis=1) | (near < rule.ratio * runner_up)
        voted = valid.any(axis=1) & (near <= rule.vote_distance) & distinct
        if voted.any():
            rows.append(np.stack([np.full(int(voted.sum()), local), best[voted]], axis=1))
    if not rows:
        return []
    votes = np.concatenate(rows)
    lo, hi = np.minimum(votes[:, 0], votes[:, 1]), np.maximum(votes[:, 0], votes[:, 1])
    keys, counts = np.unique(lo * len(chosen) + hi, return_counts=True)
    firsts, seconds = keys // len(chosen), keys % len(chosen)
    keep = counts >= min_votes
    firsts, seconds, counts = firsts[keep], seconds[keep], counts[keep]
    order = np.lexsort((seconds, firsts, -counts))
    taken = np.zeros(len(chosen), dtype=np.int64)
    out = []
    for r in order.tolist():
        i, j = int(firsts[r]), int(seconds[r])
        if taken[i] >= max_candidates and taken[j] >= max_candidates:
            continue
        taken[i] += 1
        taken[j] += 1
        out.append((int(position[i]), int(position[j]), int(counts[r])))
    return out


def _voters(features: LocalFeatures, count: int) -> LocalFeatures:
    """At most ``count`` of the keypoints, spread over the frame (each grid cell's first in stored
    order, then each cell's second, ...): a part of the frame another photo shares always votes."""
    if len(features) <= count:
        return features
    order = -np.arange(len(features), dtype=np.float64)  # earlier keypoints first within a cell
    rows = local_features.spread_keypoints(features.xy(), order, (features.width, features.height), _VOTE_GRID, count)
    return LocalFeatures(features.width, features.height, features.points[rows], features.descriptors[rows])


def place_links(
    features: Sequence[LocalFeatures | None], rule: MatchRule = PLACE_RULE
) -> list[tuple[int, int, PlaceLink]]:
    """Every place link of a set of images found through :func:`place_candidates`:
    ``(i, j, link)`` with ``i < j``, ``link.in_a`` being image ``j`` seen in image ``i``; in
    candidate order (most votes first)."""
    out = []
    for i, j, _ in place_candidates(features, rule):
        a, b = features[i], features[j]
        if a is None or b is None:  # pragma: no cover - candidates have features
            continue
        link = link_places(a, b, rule)
        if link is not None:
            out.append((i, j, link))
    return out
