"""Local features: keypoints with binary descriptors, candidate voting and geometric verification.

Global hashes see an image as a whole; a crop, a turn, a screenshot or a collage tile changes that
whole. Local features find the known image *inside* the evidence frame: keypoints with 256-bit
binary descriptors (ORB, the shape matcher's binary index serves), a vote over known images, and a
geometric check that the matched points agree on one transform.

The steps
---------
1. **Extract** (:func:`extract`): the frame, in grey and scaled to at most
   :attr:`ExtractParams.max_side` pixels on its long side (an evidence frame under 256 pixels is
   scaled up to that), gives ORB keypoints (found again at lower FAST thresholds when a smooth
   picture gives few); they are spread over a grid (each cell keeps its strongest first) and
   capped at :attr:`ExtractParams.max_keypoints`.
   Known images keep few, found at a coarse scale (:data:`KNOWN_PARAMS`: 186 at 320 pixels, 8.0 KB
   a known image in the index); evidence frames, which are never stored, keep more (:data:`QUERY_PARAMS`). A
   flat image has no keypoints: an empty set, not an error.
2. **Vote** (:func:`vote`): each descriptor of the frame asks a :class:`DescriptorSearch` for its
   nearest known descriptors; each known image within :attr:`MatchRule.vote_distance` bits gets one
   vote per frame descriptor. :class:`BruteForceSearch` is the groundwork search; the index's binary
   search plugs in through the same protocol.
3. **Verify** (:func:`verify`): the candidate's descriptors are matched with the frame's (Hamming,
   a ratio test among the frame's descriptors, one known point per frame point); a robust
   estimator (MAGSAC++) fits one transform taking the known image into the frame.

The match rule (:class:`MatchRule`, defaults measured by ``benchmarks/local_features_probe.py``)
---------------------------------------------------------------------------------------------
A known image is found in a frame when the transform fitted to the matched points (by default an
affine transform fitted with OpenCV's MAGSAC++)

* has at least ``min_inliers`` inliers (15 by default), at least ``min_share`` of the tentative
  matches (55 % by default: two images sharing only a word, a logo or an interface match a few
  points of that region consistently and the rest not at all);
* is a sane view: its scale (frame pixels per known pixel) lies in ``[min_scale, max_scale]`` and,
  for an affine or homography model, its anisotropy (ratio of the two axis scales) is at most
  ``max_anisotropy``;
* puts the known image where the frame can show it (the projected known image overlaps the frame);
* is spread over the known image: of the cells of a 4 x 4 grid over the known image that hold
  known keypoints and fall inside the frame under the transform, at least ``min_coverage`` hold an
  inlier, and the inliers' convex hull covers at least ``min_spread`` of the part of the known image
  the frame shows (both off in :data:`DEFAULT_RULE`, on in :data:`EVIDENCE_PAIR_RULE`);
* below 40 inliers, leaves no part of the known image unexplained (no inlier-free rectangle of an
  8 x 8 grid over the known image holds over 30 % of the keypoints the frame shows) and is not a
  cluster (the inliers' hull covers at least 14 % of the part of the known image the frame
  shows); both excused for a view shown under 0.8 of the known image's size with an 80 % inlier
  share (a collage tile, whose fine texture did not survive the downscaling).

**Shared regions are not matches**: a region two unrelated images share (a logo, a watermark, a
caption band, an app's interface, the same word on two text cards) gives a few consistent matches
among many that disagree (the inlier share), leaves the known image's own content without an
inlier (the hole) or clusters its inliers on the shared word (the spread); between two frames
extracted alike a shared logo or caption band matches point for point, but its inliers form a
thin hull, which :data:`EVIDENCE_PAIR_RULE` refuses.

The result (:class:`LocalMatch`) says how many inliers, the 3 x 3 transform (known image pixels to
frame pixels) and the region of the frame where the known image lies.

OpenCV (``opencv-python-headless``, the optional extra ``local``) is imported on first use only.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol

import numpy as np
from PIL import Image

from .errors import MatcherError, UsageError

__all__ = [
    "DESCRIPTOR_BYTES",
    "POINT_STEPS",
    "KNOWN_PARAMS",
    "QUERY_PARAMS",
    "ORB_EDGE",
    "inset_params",
    "DEFAULT_RULE",
    "EVIDENCE_PAIR_RULE",
    "MODELS",
    "METHODS",
    "RATIO_TESTS",
    "ExtractParams",
    "LocalFeatures",
    "MatchRule",
    "LocalMatch",
    "DescriptorSearch",
    "BruteForceSearch",
    "LocalFeaturesUnavailableError",
    "available",
    "extract",
    "prepare",
    "PendingFeatures",
    "spread_keypoints",
    "voting_rows",
    "VOTE_GRID",
    "features_from_keypoints",
    "vote",
    "verify",
    "moved",
    "find",
    "match_settings",
]

#: Bytes of one binary descriptor (256 bits).
DESCRIPTOR_BYTES = 32
#: Transform models :func:`verify` can fit.
MODELS: tuple[str, ...] = ("similarity", "affine", "homography")
#: Robust estimators: OpenCV's RANSAC, or its USAC MAGSAC++ (affine and homography only).
METHODS: tuple[str, ...] = ("ransac", "magsac")
#: Sides Lowe's ratio test can look among (:attr:`MatchRule.ratio_test`).
RATIO_TESTS: tuple[str, ...] = ("known", "frame")
#: Fixed-point unit of stored keypoint coordinates: a coordinate is its fraction of the frame side.
_COORD_SCALE = 65535.0
#: Keypoint positions lie on a grid of ``POINT_STEPS + 1`` steps a side (12 bits: 0.16 pixels of a
#: 640-pixel frame), so an index stores a position in 3 bytes, losslessly.
POINT_STEPS = 4095
_MAGIC = b"LF01"  # the stored form's header: magic, then width, height, keypoints, descriptor bytes (uint32)
_GRID = 4  # coverage grid over the known image, cells per side


class LocalFeaturesUnavailableError(MatcherError, ImportError):
    """OpenCV is not installed: ``pip install 'perceptual-matcher[local]'``."""


def available() -> bool:
    """Whether OpenCV can be imported (local features can be extracted and verified)."""
    try:
        _cv2()
    except LocalFeaturesUnavailableError:
        return False
    return True


def _cv2() -> Any:
    """OpenCV, imported on first use (matcher's start-up does not pay for it; later calls find it
    in ``sys.modules``)."""
    try:
        import cv2
    except ImportError as exc:
        raise LocalFeaturesUnavailableError(
            "local features need OpenCV: pip install 'perceptual-matcher[local]' (opencv-python-headless)"
        ) from exc
    return cv2


# --------------------------------------------------------------------------------------------------
# Extraction


#: ORB's own border (``ExtractParams.edge_threshold``'s default), which known images keep.
ORB_EDGE = 31


@dataclass(frozen=True, slots=True)
class ExtractParams:
    """How keypoints are detected and described.

    - ``max_keypoints``: keypoints kept per frame (43 bytes each in an index).
    - ``max_side``: a larger frame is scaled down to this long side before detection.
    - ``min_side``: a smaller frame is scaled up (bicubic) to this long side before detection (0:
      never): ORB leaves a 31-pixel border of every pyramid level without keypoints, which takes
      most of a thumbnail, and a frame shown at half the known image's size then matches only
      the known image's two coarsest levels.
    - ``detect_factor``: ORB detects ``detect_factor * max_keypoints`` before the grid spreads them.
    - ``scale_factor``/``levels``: ORB's pyramid (ratio between levels, number of levels).
    - ``fast_threshold``: ORB's FAST corner threshold (lower finds corners in softer texture).
    - ``retry_thresholds``: when the detector finds fewer than half of ``max_keypoints``, it runs
      again at each of these lower FAST thresholds in turn, until one finds at least half (the
      largest set is kept): a smooth picture (soft gradients, a plasma) gets corners at all.
    - ``grid``: cells per side of the grid the kept keypoints are spread over.
    - ``response_floor``: keypoints weaker than this fraction of the ``max_keypoints``-th strongest
      response are dropped before spreading (the grid does not fill flat areas with grain).
    - ``edge_threshold``: ORB's border, in pixels of each pyramid level, where no keypoint is
      detected (31, ORB's default, matches its 31-pixel patch; lower detects nearer the edges, the
      part of a patch beyond the edge then read from the edge reflected).
    """

    max_keypoints: int = 200
    max_side: int = 320
    detect_factor: int = 4
    scale_factor: float = 1.2
    levels: int = 8
    fast_threshold: int = 8
    grid: int = 8
    response_floor: float = 0.0
    min_side: int = 0
    retry_thresholds: tuple[int, ...] = ()
    edge_threshold: int = ORB_EDGE

    def __post_init__(self) -> None:
        for name in (
            "max_keypoints",
            "max_side",
            "detect_factor",
            "levels",
            "fast_threshold",
            "grid",
            "edge_threshold",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{name} must be a positive integer, not {value!r}")
        if (
            not isinstance(self.min_side, int)
            or isinstance(self.min_side, bool)
            or not 0 <= self.min_side <= self.max_side
        ):
            raise UsageError(f"min_side must be an integer in [0, max_side], not {self.min_side!r}")
        for value in self.retry_thresholds:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"retry_thresholds must be positive integers, not {self.retry_thresholds!r}")
        if not 1.0 < self.scale_factor <= 2.0:
            raise UsageError(f"scale_factor must be in (1, 2], not {self.scale_factor!r}")
        if self.max_keypoints > 65535:
            raise UsageError(f"max_keypoints must be at most 65535, not {self.max_keypoints}")


#: What images added to an index keep: 186 keypoints found at 320 pixels on the long side (coarse
#: structure, which survives the downscaling of collages and screenshots) on 6 pyramid levels (down
#: to 128 pixels: the query's pyramid covers smaller views), 8,022 bytes a known image in the index.
#: Chosen by measurement (``docs/local-features.md``): 200 keypoints on 8 levels cost 8,929 bytes;
#: 6 levels put the keypoints the coarsest two took where they match, so 186 find as much. A
#: smooth picture that gives fewer than 93 keypoints is detected again at FAST thresholds 4, then 2.
KNOWN_PARAMS = ExtractParams(max_keypoints=186, max_side=320, levels=6, retry_thresholds=(4, 2))
#: What evidence frames keep (never stored): more keypoints at 640 pixels, so a known image shown
#: small (a collage tile, a screenshot) still has enough of its own; a frame under 256 pixels is
#: scaled up to 256 first, and a smooth one is detected again at FAST thresholds 4, then 2.
#: Keypoints are detected up to 24 pixels from the frame's edges (ORB's default keeps 31): a
#: crop's edges cut through the known image, whose keypoints there would otherwise have no
#: partner (a 30 % crop: 44 -> 53 of 54 textured originals found; 20 pixels found as many and
#: let two text cards sharing a word through, ``docs/local-features.md``). ORB detects three
#: times the cap before the grid spreads them (twice starved some pyramid levels of a 640-pixel
#: frame: a collage tile's own).
QUERY_PARAMS = ExtractParams(
    max_keypoints=1500, max_side=640, detect_factor=3, min_side=256, retry_thresholds=(4, 2), edge_threshold=24
)


def inset_params(params: ExtractParams = QUERY_PARAMS) -> ExtractParams:
    """The parameters an inset of a frame (a collage tile, a picture pasted into a screenshot, cut
    out: :mod:`matcher.insets`) is extracted with: the frame's, with ORB's own border. An inset is
    a whole picture, whose edges are the known image's edges too (where the known image has no
    keypoints), not a crop's cut through it; detecting nearer them only adds keypoints without a
    partner, and on a small block of text lines, matches of a word another card shares."""
    return replace(params, edge_threshold=ORB_EDGE)


@dataclass(frozen=True, slots=True, eq=False)
class LocalFeatures:
    """One frame's local features.

    ``width``/``height`` are the frame's size in pixels; ``points`` the keypoints' coordinates as
    ``uint16`` fractions of that size (``x / width * 65535``, on the 12-bit grid of
    :data:`POINT_STEPS` when extracted; :meth:`xy` gives pixels); ``descriptors`` the keypoints'
    binary descriptors, ``uint8`` of shape ``(n, 32)`` for ORB's 256-bit codes (other binary
    descriptors have other widths).
    Keypoint scale and angle are not kept: the verification needs only positions.
    Equal when size, points and descriptors are equal. Pickles; :meth:`to_bytes` is a compact
    self-describing form (20 bytes, then 36 bytes an ORB keypoint); an index stores 43 bytes a
    keypoint (:mod:`matcher.index.local_table`).
    """

    width: int
    height: int
    points: np.ndarray
    descriptors: np.ndarray

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise UsageError(f"local features need a positive frame size, not {self.width}x{self.height}")
        points = np.ascontiguousarray(self.points, dtype=np.uint16).reshape(-1, 2)
        descriptors = np.ascontiguousarray(self.descriptors, dtype=np.uint8)
        if descriptors.ndim != 2 or descriptors.shape[1] < 1:
            raise UsageError(f"descriptors must be a 2-D uint8 array (n, bytes), not of shape {descriptors.shape}")
        if len(points) != len(descriptors):
            raise UsageError(f"{len(points)} keypoints but {len(descriptors)} descriptors")
        points.flags.writeable = False
        descriptors.flags.writeable = False
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "descriptors", descriptors)

    def __len__(self) -> int:
        return len(self.descriptors)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LocalFeatures):
            return NotImplemented
        return (
            (self.width, self.height) == (other.width, other.height)
            and np.array_equal(self.points, other.points)
            and np.array_equal(self.descriptors, other.descriptors)
        )

    __hash__ = None  # type: ignore[assignment]

    def __setstate__(self, state: Any) -> None:  # pickled arrays come back writeable: make them read-only
        names = ("width", "height", "points", "descriptors")
        values = state if isinstance(state, (tuple, list)) else [state[name] for name in names]
        for name, value in zip(names, values):
            object.__setattr__(self, name, value)
        self.points.flags.writeable = False
        self.descriptors.flags.writeable = False

    def __getstate__(self) -> tuple[int, int, np.ndarray, np.ndarray]:
        return (self.width, self.height, self.points, self.descriptors)

    def xy(self) -> np.ndarray:
        """Keypoint coordinates in frame pixels, ``float32`` of shape ``(n, 2)``."""
        size = np.array([self.width, self.height], np.float32)
        return self.points.astype(np.float32) * (size / _COORD_SCALE)

    @property
    def nbytes(self) -> int:
        """Bytes of the keypoint arrays (what the features cost in an index, headers aside)."""
        return int(self.points.nbytes + self.descriptors.nbytes)

    def to_bytes(self) -> bytes:
        """The compact stored form: a 20-byte header, then the points and the descriptors."""
        header = _MAGIC + struct.pack("<IIII", self.width, self.height, len(self), self.descriptors.shape[1])
        return header + self.points.tobytes() + self.descriptors.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> LocalFeatures:
        """Read back :meth:`to_bytes`; :class:`UsageError` for bytes that are not that form."""
        if len(data) < 20 or data[:4] != _MAGIC:
            raise UsageError("not a local-feature record (bad header)")
        width, height, count, size = struct.unpack_from("<IIII", data, 4)
        if size < 1 or len(data) != 20 + count * (4 + size):
            raise UsageError(f"local-feature record of {len(data)} bytes does not hold {count} keypoints")
        points = np.frombuffer(data, np.uint16, count * 2, 20).reshape(count, 2)
        descriptors = np.frombuffer(data, np.uint8, count * size, 20 + count * 4)
        return cls(width, height, points, descriptors.reshape(count, size))


def _grey(image: Image.Image | np.ndarray) -> np.ndarray:
    """``image`` as a 2-D ``uint8`` array (RGB and other modes through Pillow's luma)."""
    if isinstance(image, Image.Image):
        return np.asarray(image if image.mode == "L" else image.convert("L"))
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.asarray(Image.fromarray(array[..., :3].astype(np.uint8)).convert("L"))
    if array.ndim != 2:
        raise UsageError(f"an image array must be (h, w) or (h, w, 3), not {array.shape}")
    return array.astype(np.uint8, copy=False)


def spread_keypoints(xy: np.ndarray, response: np.ndarray, size: tuple[int, int], cells: int, cap: int) -> np.ndarray:
    """Indices (ascending) of at most ``cap`` keypoints spread over a ``cells`` x ``cells`` grid
    on an image of ``size`` = (width, height): every cell's strongest (highest ``response``) first,
    then every cell's second strongest, and so on."""
    if len(xy) <= cap:
        return np.arange(len(xy))
    w, h = size
    col = np.minimum((xy[:, 0] * cells / w).astype(np.int64), cells - 1)
    row = np.minimum((xy[:, 1] * cells / h).astype(np.int64), cells - 1)
    cell = row * cells + col
    order = np.lexsort((-response, cell))  # by cell, strongest first within a cell
    sorted_cells = cell[order]
    starts = np.searchsorted(sorted_cells, sorted_cells, side="left")
    rank = np.arange(len(order)) - starts  # rank within its cell
    pick = np.lexsort((-response[order], rank))[:cap]
    return np.sort(order[pick])


#: Cells per side of the grid a frame's voters are spread over (:func:`voting_rows`).
VOTE_GRID = 8
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def voting_rows(features: LocalFeatures, count: int, cells: int = VOTE_GRID) -> np.ndarray:
    """Rows (ascending) of at most ``count`` of a frame's keypoints to vote with when it holds more:
    spread over a ``cells`` x ``cells`` grid (every cell's first, then every cell's second, ...), and
    within a cell taken in a low-discrepancy order of their place in the stored order (the golden
    ratio's multiples modulo 1), which runs through ORB's pyramid levels: whatever number a cell
    gets, they come from all its levels. A known image seen small (a collage tile, a screenshot's
    picture) then votes with its share of the frame's area (measured in ``docs/local-features.md``)."""
    if len(features) <= count:
        return np.arange(len(features))
    key = (np.arange(len(features)) * _GOLDEN) % 1.0
    return spread_keypoints(features.xy(), -key, (features.width, features.height), cells, count)


def extract(image: Image.Image | np.ndarray, params: ExtractParams = KNOWN_PARAMS) -> LocalFeatures:
    """The local features of one frame (a Pillow image or an ``(h, w)``/``(h, w, 3)`` array).

    Coordinates are in the frame's own pixels whatever the working scale. A frame without corners
    (flat, or smaller than ORB's border) gives an empty set.
    """
    return prepare(image, params).extract()


@dataclass(frozen=True, slots=True, eq=False)
class PendingFeatures:
    """A frame's local features before extraction: the frame's size (``width``, ``height``) and the
    grey working image ORB runs on (``work``: at most ``params.max_side`` pixels on its longer side),
    for a caller that extracts only the frames it needs (the scan: those no global hash matched).
    :meth:`extract` gives exactly what :func:`extract` gives of the frame."""

    width: int
    height: int
    work: np.ndarray
    params: ExtractParams

    def extract(self) -> LocalFeatures:
        """The frame's local features (see :func:`extract`)."""
        return _detect(self.work, (self.width, self.height), self.params)


def prepare(image: Image.Image | np.ndarray, params: ExtractParams = KNOWN_PARAMS) -> PendingFeatures:
    """``image`` made ready for :func:`extract` (grey, reduced to the working size) without running
    the detector: a few hundred kilobytes at most, a fraction of extraction's time."""
    grey = _grey(image)
    height, width = grey.shape
    if width < 1 or height < 1:
        raise UsageError(f"cannot extract local features from an empty {width}x{height} image")
    long_side = max(width, height)
    work = grey
    if long_side > params.max_side:
        factor = params.max_side / long_side
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        work = np.asarray(Image.fromarray(grey).resize(size, Image.Resampling.BILINEAR))
    elif long_side < params.min_side:
        factor = params.min_side / long_side
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        work = np.asarray(Image.fromarray(grey).resize(size, Image.Resampling.BICUBIC))
    return PendingFeatures(width, height, work, params)


def _detect(work: np.ndarray, frame: tuple[int, int], params: ExtractParams) -> LocalFeatures:
    """ORB on the working image ``work`` of a frame of size ``frame`` (width, height).

    ORB detects ``detect_factor`` times the cap; only the keypoints the grid keeps are described
    (ORB's descriptor of a keypoint depends on the keypoint and the image alone, so describing the
    kept ones gives the very descriptors describing all of them would: a third of the work at the
    evidence frames' factor of 3)."""
    cv2 = _cv2()
    enough = params.max_keypoints / 2
    best: tuple[Any, ...] = ()
    orb: Any = None
    for threshold in (params.fast_threshold, *params.retry_thresholds):
        detector = cv2.ORB_create(
            nfeatures=params.max_keypoints * params.detect_factor,
            scaleFactor=params.scale_factor,
            nlevels=params.levels,
            fastThreshold=threshold,
            edgeThreshold=params.edge_threshold,
        )
        keypoints = detector.detect(work, None)
        if len(keypoints) > len(best):
            best, orb = tuple(keypoints), detector
        if len(best) >= enough:
            break
    size = (work.shape[1], work.shape[0])
    if not best:
        return features_from_keypoints((), None, frame, size, params)
    # all kept within the cap (no ranking: reading the responses costs a Python loop)
    kept = (
        list(best) if len(best) <= params.max_keypoints else [best[i] for i in _kept(*_positions(best), size, params)]
    )
    described, descriptors = orb.compute(work, kept)
    return features_from_keypoints(described, descriptors, frame, size, params)


def _positions(keypoints: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV ``keypoints`` as ``(xy (n, 2), response (n,))``."""
    xy = np.asarray(_cv2().KeyPoint_convert(keypoints), np.float64).reshape(-1, 2)
    response = np.fromiter((kp.response for kp in keypoints), np.float64, len(keypoints))
    return xy, response


def _kept(xy: np.ndarray, response: np.ndarray, work: tuple[int, int], params: ExtractParams) -> np.ndarray:
    """Indices (ascending) of the keypoints a frame keeps when it has more than its cap (callers keep
    all of a smaller set without reading responses): those over ``params.response_floor``, spread
    over the grid and capped."""
    candidates = np.arange(len(xy))
    if params.response_floor > 0:
        reference = np.partition(response, len(response) - params.max_keypoints)[len(response) - params.max_keypoints]
        candidates = np.flatnonzero(response >= params.response_floor * reference)
    spread = spread_keypoints(xy[candidates], response[candidates], work, params.grid, params.max_keypoints)
    return np.asarray(candidates[spread])


def features_from_keypoints(
    keypoints: Sequence[Any],
    descriptors: np.ndarray | None,
    frame: tuple[int, int],
    work: tuple[int, int],
    params: ExtractParams,
) -> LocalFeatures:
    """Local features from any OpenCV detector's ``keypoints`` and binary ``descriptors`` found on
    a working image of size ``work`` standing for a frame of size ``frame`` (both (width, height)):
    spread over the grid and capped as ``params`` say."""
    width, height = frame
    if descriptors is None or not keypoints:
        return LocalFeatures(width, height, np.zeros((0, 2), np.uint16), np.zeros((0, DESCRIPTOR_BYTES), np.uint8))
    if len(keypoints) <= params.max_keypoints:  # all kept: no ranking needed (reading responses costs a Python loop)
        xy = np.asarray(_cv2().KeyPoint_convert(keypoints), np.float64).reshape(-1, 2)
        keep = np.arange(len(xy))
    else:
        xy, response = _positions(keypoints)
        keep = _kept(xy, response, work, params)
    scale = np.array([width / work[0], height / work[1]])
    fraction = (xy[keep] + 0.5) * scale / np.array([width, height])  # pixel centres, as fractions
    steps = np.clip(np.rint(fraction * POINT_STEPS), 0, POINT_STEPS)  # on the 12-bit grid
    points = np.rint(steps * (_COORD_SCALE / POINT_STEPS)).astype(np.uint16)
    return LocalFeatures(width, height, points, descriptors[keep])


# --------------------------------------------------------------------------------------------------
# Verification


@dataclass(frozen=True, slots=True)
class MatchRule:
    """When a known image counts as found in a frame (see the module's description).

    - ``ratio``/``ratio_test``: Lowe's ratio test, within ``max_distance`` bits. ``"known"``: a
      known descriptor matches its nearest frame descriptor when that is closer than ``ratio``
      times its second nearest among the frame's (one known point per frame point, the closest).
      ``"frame"``: a frame descriptor matches its nearest known descriptor when that is closer
      than ``ratio`` times its second nearest among the known image's (one frame point per known
      point). The frame holds 8 times as many keypoints as a known image, so the test among the
      frame's descriptors is the sharper one: a known point whose texture repeats in the frame
      gives no match rather than a wrong one, and a true view's tentative matches are mostly
      inliers (measured in ``docs/local-features.md``).
    - ``model``: ``"similarity"`` (scale, turn, shift), ``"affine"`` or ``"homography"``;
      ``method``: ``"ransac"`` or ``"magsac"`` (OpenCV's USAC MAGSAC++; not for similarity).
    - ``reprojection``/``reprojection_floor``: RANSAC's inlier distance in frame pixels, per 640
      pixels of the frame's long side, and at least ``reprojection_floor`` pixels: a keypoint
      found on a coarse pyramid level is placed no better than a few pixels, whatever the frame's
      size (a 256-pixel frame would otherwise allow 1.6).
    - ``min_inliers``, ``min_scale``/``max_scale``, ``max_anisotropy``, ``min_coverage``,
      ``min_spread``: the match rule proper.
    - ``vote_distance``/``min_votes``: a known image is a candidate when at least ``min_votes``
      frame descriptors have one of its descriptors within ``vote_distance`` bits among their
      nearest.
    - ``min_share``: at least this share of the tentative matches (those passing the ratio test)
      must be inliers. Two unrelated images that share only a small region (the same word in the
      same font on two text cards, a logo) give 15-36 inliers among 60-120 tentative matches (a
      share of 0.15-0.42 with the ratio test among the known image's descriptors, up to 0.83 among
      the frame's, where a true view has fewer disagreeing matches too): the rest of each image
      matches nothing consistently. Chosen with the spread and hole conditions on the measured
      sets (``docs/local-features.md``).
      It also bounds the estimator's iterations (:attr:`max_iterations`).
    - ``min_spread_few``: a match with fewer than ``hole_inliers`` inliers needs an inlier hull
      of at least this share of the part of the known image the frame shows (the ``spread``):
      two text cards sharing a word, or two pictures sharing a small logo, match on a cluster
      (excused as the hole is, below).
    - ``max_hole``/``hole_inliers``/``hole_share``/``hole_scale``: a match with fewer than
      ``hole_inliers`` inliers is refused when some rectangle of the known image (on an 8 x 8
      grid) holds more than ``max_hole`` of its keypoints the frame shows and not one inlier: the
      frame shares only part of the known image (an app's interface around a different picture, a
      logo, a caption band, a background with another foreground) and the rest, where its own
      content is, does not match. Excused: a view shown smaller than ``hole_scale`` whose
      tentative matches nearly all agree (share at least ``hole_share``; a collage tile: 27 of 32
      at scale 0.5), where the fine texture of the hole did not survive the downscaling.
    """

    ratio: float = 0.8
    ratio_test: str = "known"
    max_distance: int = 64
    model: str = "affine"
    method: str = "magsac"
    reprojection: float = 4.0
    reprojection_floor: float = 4.0
    min_inliers: int = 15
    min_scale: float = 0.1
    max_scale: float = 10.0
    max_anisotropy: float = 1.5
    min_coverage: float = 0.0
    min_spread: float = 0.0
    vote_distance: int = 64
    min_votes: int = 6
    max_hole: float = 0.3
    hole_inliers: int = 40
    hole_share: float = 0.8
    hole_scale: float = 0.8
    min_share: float = 0.55
    min_spread_few: float = 0.14

    def __post_init__(self) -> None:
        if self.method not in METHODS or (self.method == "magsac" and self.model == "similarity"):
            raise UsageError(
                f"method must be one of {', '.join(METHODS)} (magsac not with similarity), not {self.method!r}"
            )
        if self.model not in MODELS:
            raise UsageError(f"model must be one of {', '.join(MODELS)}, not {self.model!r}")
        if self.ratio_test not in RATIO_TESTS:
            raise UsageError(f"ratio_test must be one of {', '.join(RATIO_TESTS)}, not {self.ratio_test!r}")
        if not 0.0 < self.ratio <= 1.0:
            raise UsageError(f"ratio must be in (0, 1], not {self.ratio!r}")
        if self.min_inliers < 3:
            raise UsageError(f"min_inliers must be at least 3, not {self.min_inliers!r}")
        if not (self.reprojection > 0.0 and self.reprojection_floor >= 0.0):
            raise UsageError(
                f"need reprojection > 0 and reprojection_floor >= 0, "
                f"not {self.reprojection!r} and {self.reprojection_floor!r}"
            )
        if not 0.0 < self.min_scale < self.max_scale:
            raise UsageError(f"need 0 < min_scale < max_scale, not {self.min_scale!r}, {self.max_scale!r}")
        if self.max_anisotropy < 1.0:
            raise UsageError(f"max_anisotropy must be at least 1, not {self.max_anisotropy!r}")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise UsageError(f"min_coverage must be in [0, 1], not {self.min_coverage!r}")
        for name in ("min_spread", "min_spread_few"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"{name} must be in [0, 1], not {value!r}")
        if not 0.0 < self.max_hole <= 1.0:
            raise UsageError(f"max_hole must be in (0, 1], not {self.max_hole!r}")
        if self.hole_scale <= 0.0:
            raise UsageError(f"hole_scale must be positive, not {self.hole_scale!r}")
        for name in ("hole_share", "min_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"{name} must be in [0, 1], not {value!r}")

    @property
    def max_iterations(self) -> int:
        """The robust estimator's iteration cap: enough to draw, with 99.5 % confidence, one
        all-inlier sample of 3 matches when at least ``min_share`` of the matches are inliers (a
        fit that needs more cannot pass the rule); 2,000 when ``min_share`` is 0."""
        if self.min_share <= 0.0:
            return 2000
        needed = math.log(0.005) / math.log(1.0 - self.min_share**3)
        return int(min(2000, max(50, math.ceil(2 * needed))))


#: The match rule for an evidence frame against known images (extracted with :data:`QUERY_PARAMS`
#: and :data:`KNOWN_PARAMS`), chosen by measurement (``docs/local-features.md``): the ratio test
#: among the frame's descriptors, affine, MAGSAC++ (inliers within 4 px, or 4 px per 640 px of a
#: larger frame), 15 inliers that are at least 55 % of the
#: tentative matches, and below 40 inliers no inlier-free rectangle over 30 % of the shown keypoints
#: and an inlier hull of at least 14 % of the shown part (unless a view under 0.8 of the known
#: image's size has an 80 % share). The coverage condition and the spread condition at any inlier
#: count cost collage tiles and heavy crops recall and refuse nothing the rest does not: off here.
DEFAULT_RULE = MatchRule()
#: The match rule for two frames extracted alike (evidence against evidence, as clustering needs):
#: a shared logo or caption band then matches point for point, so the inliers' hull must cover
#: 10 % of the part of the image both show. The unmatched-rectangle test (``max_hole``) and the
#: inlier share are off: two photos of one place differ in their foreground by design, whose
#: keypoints give tentative matches that disagree (not measured on such pairs yet). Its ratio test
#: stays among the known side's descriptors (two frames extracted alike hold as many keypoints).
EVIDENCE_PAIR_RULE = MatchRule(
    min_spread=0.1, max_hole=1.0, min_share=0.0, ratio_test="frame", min_spread_few=0.0, reprojection_floor=0.0
)


@dataclass(frozen=True, slots=True)
class LocalMatch:
    """A known image found in a frame.

    - ``inliers``: matched points the transform explains; ``matches``: matched points tried.
    - ``transform``: the 3 x 3 matrix (row-major) taking known-image pixels to frame pixels.
    - ``corners``: the known image's corners (top-left, top-right, bottom-right, bottom-left) in the
      frame, unclipped; ``region``: their bounding box clipped to the frame, ``(left, top, right,
      bottom)`` in frame pixels: where the known image lies.
    - ``scale`` (frame pixels per known pixel), ``rotation`` (degrees, counter-clockwise as seen),
      ``anisotropy``, ``coverage`` and ``spread`` (see :class:`MatchRule`); ``hole``: the largest
      share of the shown known keypoints in one inlier-free rectangle (see ``MatchRule.max_hole``).
    """

    inliers: int
    matches: int
    transform: tuple[float, ...]
    corners: tuple[tuple[float, float], ...]
    region: tuple[int, int, int, int]
    scale: float
    rotation: float
    anisotropy: float
    coverage: float
    spread: float
    hole: float = 0.0


def _match_points(query: LocalFeatures, known: LocalFeatures, rule: MatchRule) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(query_rows, known_rows)`` of the tentative matches: ratio test on the side
    ``rule.ratio_test`` names, distance bound, each point of the other side matched once (the
    closest; the lowest row among equals)."""
    empty = np.zeros(0, np.int64)
    if len(query) < 2 or len(known) < 2:
        return empty, empty
    from_known = rule.ratio_test == "known"
    rows_of, among = (known, query) if from_known else (query, known)
    distances, nearest = _two_nearest(rows_of.descriptors, among.descriptors)
    first, second = distances[:, 0], distances[:, 1]
    ok = (first <= rule.max_distance) & (first < rule.ratio * second)
    rows = np.flatnonzero(ok)
    if not len(rows):
        return empty, empty
    partners = nearest[rows].astype(np.int64)
    order = np.lexsort((rows, first[rows], partners))  # by partner, then closest, then row
    partners_sorted = partners[order]
    keep = np.ones(len(order), bool)
    keep[1:] = partners_sorted[1:] != partners_sorted[:-1]
    kept_rows, kept_partners = rows[order][keep].astype(np.int64), partners_sorted[keep]
    if from_known:  # in the order of the frame rows (the estimator's sampling sees them so)
        listed = np.argsort(kept_partners, kind="stable")
        return kept_partners[listed], kept_rows[listed]
    # in the order of each known point's first matching frame row
    group_first = np.minimum.reduceat(rows[order], np.flatnonzero(keep))
    listed = np.argsort(group_first, kind="stable")
    return kept_rows[listed], kept_partners[listed]


def _two_nearest(rows: np.ndarray, among: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distances to the two nearest of ``among`` for each of ``rows`` and the nearest's row."""
    rows, among = np.asarray(rows), np.asarray(among)
    if rows.shape[1] == DESCRIPTOR_BYTES and among.shape[1] == DESCRIPTOR_BYTES:
        from .index.descriptors import two_nearest  # the index's Hamming kernel (numba)

        return two_nearest(rows, among)
    # other binary descriptor widths (the probe's AKAZE, BRISK): OpenCV's
    cv2 = _cv2()
    distances, nearest = cv2.batchDistance(rows, among, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=2)
    return distances, nearest[:, 0]


def _fit(src: np.ndarray, dst: np.ndarray, rule: MatchRule, threshold: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The model fitted robustly: ``(3 x 3 matrix, inlier mask)``, or ``None``."""
    cv2 = _cv2()
    method = cv2.USAC_MAGSAC if rule.method == "magsac" else cv2.RANSAC
    if rule.model == "homography":
        if len(src) < 4:
            return None
        matrix, mask = cv2.findHomography(src, dst, method, threshold, maxIters=rule.max_iterations, confidence=0.995)
    else:
        estimate = cv2.estimateAffinePartial2D if rule.model == "similarity" else cv2.estimateAffine2D
        matrix, mask = estimate(
            src, dst, method=method, ransacReprojThreshold=threshold, maxIters=rule.max_iterations, confidence=0.995
        )
        if matrix is not None:
            matrix = np.vstack([matrix, [0.0, 0.0, 1.0]])
    if matrix is None or mask is None or not np.all(np.isfinite(matrix)):
        return None
    return matrix.astype(np.float64), mask.ravel().astype(bool)


def _project(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Points ``xy`` (n, 2) through the 3 x 3 ``matrix``."""
    ones = np.ones((len(xy), 1))
    out = np.hstack([xy, ones]) @ matrix.T
    w = out[:, 2:3]
    w = np.where(np.abs(w) < 1e-12, 1e-12, w)
    return np.asarray(out[:, :2] / w)


def _coverage(known: LocalFeatures, inlier_xy: np.ndarray, matrix: np.ndarray, frame: tuple[int, int]) -> float:
    """Share of the known image's grid cells that hold keypoints and fall inside the frame which
    also hold an inlier (1.0 when no such cell: nothing to judge by)."""
    w, h = known.width, known.height
    xy = known.xy()

    def cells(points: np.ndarray) -> np.ndarray:
        col = np.clip((points[:, 0] * _GRID / w).astype(np.int64), 0, _GRID - 1)
        row = np.clip((points[:, 1] * _GRID / h).astype(np.int64), 0, _GRID - 1)
        return np.asarray(row * _GRID + col)

    populated = np.zeros(_GRID * _GRID, bool)
    populated[cells(xy)] = True
    centres = np.array([((c % _GRID + 0.5) * w / _GRID, (c // _GRID + 0.5) * h / _GRID) for c in range(_GRID**2)])
    seen = _project(matrix, centres)
    inside = (seen[:, 0] >= 0) & (seen[:, 0] < frame[0]) & (seen[:, 1] >= 0) & (seen[:, 1] < frame[1])
    judged = populated & inside
    if not judged.any():
        return 1.0
    covered = np.zeros(_GRID * _GRID, bool)
    covered[cells(inlier_xy)] = True
    return float((covered & judged).sum() / judged.sum())


def verify(query: LocalFeatures, known: LocalFeatures, rule: MatchRule = DEFAULT_RULE) -> LocalMatch | None:
    """Whether ``known`` is seen in the frame ``query``: the :class:`LocalMatch` when the match rule
    holds, else ``None``."""
    query_rows, known_rows = _match_points(query, known, rule)
    if len(query_rows) < rule.min_inliers:
        return None
    src = known.xy()[known_rows].astype(np.float32)
    dst = query.xy()[query_rows].astype(np.float32)
    threshold = max(rule.reprojection * max(query.width, query.height) / 640.0, rule.reprojection_floor)
    fitted = _fit(src, dst, rule, threshold)
    if fitted is None:
        return None
    matrix, mask = fitted
    inliers = int(mask.sum())
    if inliers < rule.min_inliers or inliers < rule.min_share * len(query_rows):
        return None
    linear = matrix[:2, :2] / (matrix[2, 2] if abs(matrix[2, 2]) > 1e-12 else 1.0)
    singular = np.linalg.svd(linear, compute_uv=False)
    if np.linalg.det(linear) <= 0 or singular[1] <= 0:
        return None  # a mirror or a collapse is not a view of the image
    scale = float(math.sqrt(singular[0] * singular[1]))
    anisotropy = float(singular[0] / singular[1])
    if not rule.min_scale <= scale <= rule.max_scale or anisotropy > rule.max_anisotropy:
        return None
    corners_known = np.array([[0, 0], [known.width, 0], [known.width, known.height], [0, known.height]], np.float64)
    corners = _project(matrix, corners_known)
    if rule.model == "homography" and not _convex(corners):
        return None
    left, top = np.floor(corners.min(axis=0))
    right, bottom = np.ceil(corners.max(axis=0))
    region = (
        int(max(0, left)),
        int(max(0, top)),
        int(min(query.width, right)),
        int(min(query.height, bottom)),
    )
    if region[0] >= region[2] or region[1] >= region[3]:
        return None
    coverage = _coverage(known, src[mask], matrix, (query.width, query.height))
    if coverage < rule.min_coverage:
        return None
    spread = _spread_of(known, src[mask], matrix, (query.width, query.height))
    if spread < rule.min_spread:
        return None
    hole = _hole(known, src[mask], matrix, (query.width, query.height))
    excused = inliers >= rule.hole_share * len(query_rows) and scale < rule.hole_scale  # a small view
    if inliers < rule.hole_inliers and not excused and (hole > rule.max_hole or spread < rule.min_spread_few):
        return None
    rotation = float(math.degrees(math.atan2(-linear[1, 0], linear[0, 0])))
    return LocalMatch(
        inliers=inliers,
        matches=len(query_rows),
        transform=tuple(float(v) for v in matrix.ravel()),
        corners=tuple((float(x), float(y)) for x, y in corners),
        region=region,
        scale=scale,
        rotation=rotation,
        anisotropy=anisotropy,
        coverage=coverage,
        spread=spread,
        hole=hole,
    )


def moved(match: LocalMatch, left: int, top: int) -> LocalMatch:
    """``match``, found in a part of a frame whose top-left corner is at ``(left, top)`` of the
    frame (an inset: a collage tile, a picture pasted into a screenshot), in the frame's own pixels:
    the transform followed by the shift, the corners and the region shifted (the region stays
    within the part, where the known image was seen)."""
    m = match.transform
    transform = (
        *(m[i] + left * m[6 + i] for i in range(3)),
        *(m[3 + i] + top * m[6 + i] for i in range(3)),
        *m[6:9],
    )
    x0, y0, x1, y1 = match.region
    return replace(
        match,
        transform=tuple(float(v) for v in transform),
        corners=tuple((x + left, y + top) for x, y in match.corners),
        region=(x0 + left, y0 + top, x1 + left, y1 + top),
    )


_HOLE_GRID = 8  # grid over the known image for the unmatched-rectangle test


def _hole(known: LocalFeatures, inlier_xy: np.ndarray, matrix: np.ndarray, frame: tuple[int, int]) -> float:
    """The largest share of the known keypoints the frame shows that lie in one rectangle of cells
    (of an 8 x 8 grid over the known image) holding no inlier."""
    xy = known.xy().astype(np.float64)
    seen = _project(matrix, xy)
    shown = (seen[:, 0] >= 0) & (seen[:, 0] < frame[0]) & (seen[:, 1] >= 0) & (seen[:, 1] < frame[1])
    if not shown.any():
        return 0.0
    g = _HOLE_GRID

    def counts(points: np.ndarray) -> np.ndarray:
        grid = np.zeros((g + 1, g + 1), np.int64)  # 2-D prefix sums, padded
        col = np.clip((points[:, 0] * g / known.width).astype(np.int64), 0, g - 1)
        row = np.clip((points[:, 1] * g / known.height).astype(np.int64), 0, g - 1)
        np.add.at(grid, (row + 1, col + 1), 1)
        return np.asarray(grid.cumsum(axis=0).cumsum(axis=1))

    keys, hits = counts(xy[shown]), counts(np.asarray(inlier_xy, np.float64))
    # every rectangle of cells [r0, r1) x [c0, c1): its keypoints and inliers from the prefix sums
    lo, hi = np.triu_indices(g + 1, 1)  # all (start, end) pairs with start < end

    def boxes(grid: np.ndarray) -> np.ndarray:
        rows_hi, rows_lo = grid[hi][:, None, :], grid[lo][:, None, :]
        return np.asarray(rows_hi[..., hi] - rows_lo[..., hi] - rows_hi[..., lo] + rows_lo[..., lo])

    empty = boxes(hits) == 0
    best = int(boxes(keys)[empty].max()) if empty.any() else 0
    return best / float(keys[g, g])


def _spread_of(known: LocalFeatures, inlier_xy: np.ndarray, matrix: np.ndarray, frame: tuple[int, int]) -> float:
    """Area of the inliers' convex hull over the area of the part of the known image the frame
    shows (both in known-image pixels): small for a logo, a caption band or any one small region."""
    cv2 = _cv2()
    try:
        inverse = np.linalg.inv(matrix)
    except np.linalg.LinAlgError:
        return 0.0
    w, h = frame
    seen = _project(inverse, np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)).astype(np.float32)
    image = np.array([[0, 0], [known.width, 0], [known.width, known.height], [0, known.height]], np.float32)
    if not _convex(seen.astype(np.float64)):
        return 0.0
    if cv2.contourArea(seen, oriented=True) < 0:
        seen = seen[::-1].copy()
    visible, _ = cv2.intersectConvexConvex(image, np.ascontiguousarray(seen))
    if visible <= 0 or len(inlier_xy) < 3:
        return 0.0
    hull = cv2.convexHull(np.ascontiguousarray(inlier_xy, np.float32))
    return float(min(1.0, cv2.contourArea(hull) / visible))


def _convex(corners: np.ndarray) -> bool:
    """Whether the quadrilateral keeps its corners' order and is convex (a sane view of a plane)."""
    turns = []
    for i in range(4):
        a, b, c = corners[i], corners[(i + 1) % 4], corners[(i + 2) % 4]
        turns.append((b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]))
    return all(t > 0 for t in turns) or all(t < 0 for t in turns)


# --------------------------------------------------------------------------------------------------
# Candidates


class DescriptorSearch(Protocol):
    """Finds the nearest known descriptors of a frame's descriptors.

    ``search(descriptors, k)`` takes ``uint8`` descriptors of shape ``(n, 32)`` and returns
    ``(distances, owners)``, both of shape ``(n, k)``: the Hamming distances of each descriptor's
    ``k`` nearest known descriptors and the known images (positions in the known set) they belong
    to; ``-1`` owners where fewer than ``k`` exist. The index's binary search implements this.
    """

    def search(self, descriptors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each descriptor's ``k`` nearest known descriptors: ``(distances, owners)``."""
        ...


class BruteForceSearch:
    """Exact nearest known descriptors by brute force (OpenCV's Hamming matcher) over the
    descriptors of ``known`` held in one array: fine for thousands of known images, not for the
    100,000s the index serves."""

    __slots__ = ("descriptors", "owners")

    def __init__(self, known: Sequence[LocalFeatures]) -> None:
        counts = [len(item) for item in known]
        self.descriptors: np.ndarray = (
            np.concatenate([np.asarray(item.descriptors) for item in known])
            if known
            else np.zeros((0, DESCRIPTOR_BYTES), np.uint8)
        )
        self.owners: np.ndarray = np.repeat(np.arange(len(known), dtype=np.int64), counts)

    def search(self, descriptors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each descriptor's ``k`` nearest known descriptors: ``(distances, owners)``."""
        cv2 = _cv2()
        n = len(descriptors)
        distances = np.full((n, k), np.iinfo(np.int32).max, np.int32)
        owners = np.full((n, k), -1, np.int64)
        if n == 0 or len(self.descriptors) == 0:
            return distances, owners
        matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        for row, found in enumerate(matcher.knnMatch(np.asarray(descriptors), self.descriptors, k=k)):
            for col, match in enumerate(found):
                distances[row, col] = int(match.distance)
                owners[row, col] = self.owners[match.trainIdx]
        return distances, owners


def vote(
    query: LocalFeatures, search: DescriptorSearch, rule: MatchRule = DEFAULT_RULE, k: int = 4
) -> list[tuple[int, int]]:
    """Candidate known images for the frame ``query``: ``(known position, votes)``, most votes
    first, those with at least ``rule.min_votes``. Each frame descriptor gives one vote to each
    known image among its ``k`` nearest known descriptors within ``rule.vote_distance`` bits."""
    if len(query) == 0:
        return []
    distances, owners = search.search(np.asarray(query.descriptors), k)
    ok = (owners >= 0) & (distances <= rule.vote_distance)
    rows, _ = np.nonzero(ok)
    # one vote per (frame descriptor, known image): the pairs as one int64 key, owner-major
    voters = np.int64(len(query))
    pairs = np.unique(owners[ok].astype(np.int64) * voters + rows)
    ids, counts = np.unique(pairs // voters, return_counts=True)
    chosen = counts >= rule.min_votes
    ids, counts = ids[chosen], counts[chosen]
    order = np.lexsort((ids, -counts))  # most votes first, then the lower position
    return [(int(ids[i]), int(counts[i])) for i in order]


def find(
    query: LocalFeatures,
    known: Sequence[LocalFeatures],
    search: DescriptorSearch | None = None,
    rule: MatchRule = DEFAULT_RULE,
    max_candidates: int = 10,
) -> list[tuple[int, LocalMatch]]:
    """The known images seen in the frame ``query``: ``(known position, match)``, most inliers
    first. ``search`` finds the candidates (a :class:`BruteForceSearch` over ``known`` when not
    given); the ``max_candidates`` with most votes are verified."""
    finder = BruteForceSearch(known) if search is None else search
    found = []
    for position, _ in vote(query, finder, rule)[:max_candidates]:
        match = verify(query, known[position], rule)
        if match is not None:
            found.append((position, match))
    found.sort(key=lambda item: (-item[1].inliers, item[0]))
    return found


def match_settings(params: ExtractParams = QUERY_PARAMS, rule: MatchRule = DEFAULT_RULE) -> dict[str, Any]:
    """The local-feature settings a scan runs with, as JSON values (lists for tuples): the evidence
    frames' extraction, their insets' (:func:`inset_params`) and the match rule, for a run manifest
    (what decided each ``local`` match) and a resume's parameter check. (The known images'
    features are the index's, extracted when they were added.)"""

    def plain(value: Any) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(value, f.name), tuple) else v for f in fields(value)}

    return {"frames": plain(params), "insets": plain(inset_params(params)), "rule": plain(rule)}
