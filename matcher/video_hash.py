"""vPDQ: a video's hash is the PDQ of its sampled frames, each with its quality, frame number and
timestamp; two videos are compared as bags of frames.

The values and rules here are those of ThreatExchange's vPDQ (the reference ``vpdq`` package and
``python-threatexchange``'s vPDQ signal type), written anew:

* :class:`VpdqFeature`: one sampled frame (frame number, PDQ hash with its quality, timestamp);
* text forms: vpdq's hash files, one line per frame ``frame,quality,hex,timestamp`` (timestamp with
  3 decimals; :func:`vpdq_line`/:func:`parse_vpdq_line`), and ThreatExchange's compact feature
  ``hex,quality,timestamp`` (:func:`compact`/:func:`parse_compact`), a video being a JSON array of
  them;
* :func:`compare`: the share of the query's frames that have a frame of the other video within the
  distance (query match %), and the share of the other's frames with one in the query (compared
  match %), over the frames of at least the quality threshold, exact duplicate hashes counted once
  (ThreatExchange's brute-force matcher); :class:`VideoThresholds` decides a match.

A known video in an index is one record (:func:`known_video`): its main PDQ hash is its
representative frame (:func:`representative`: the highest quality, earliest on ties) and
``extra["vpdq"]`` holds every frame as a vpdq line.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import HashFormatError, UsageError
from .hashes import Hash, code_matrix
from .known import KnownFacts, KnownRecord

__all__ = [
    "VIDEO_EXTRA_KEY",
    "DISTANCE_THRESHOLD",
    "QUALITY_THRESHOLD",
    "QUERY_MATCH_PERCENT",
    "COMPARED_MATCH_PERCENT",
    "VpdqFeature",
    "VideoThresholds",
    "VideoComparison",
    "vpdq_line",
    "parse_vpdq_line",
    "compact",
    "parse_compact",
    "compare",
    "comparable_frames",
    "distances",
    "representative",
    "known_video",
    "video_features",
]

#: The key of a known video's frames in its record's ``extra``.
VIDEO_EXTRA_KEY = "vpdq"
#: vPDQ's defaults (python-threatexchange): frames within 31 bits match, frames under quality 50
#: are left out, and a video matches when 80 % of the query's frames match (0 % of the other's).
DISTANCE_THRESHOLD = 31
QUALITY_THRESHOLD = 50
QUERY_MATCH_PERCENT = 80.0
COMPARED_MATCH_PERCENT = 0.0


@dataclass(frozen=True, slots=True)
class VpdqFeature:
    """One sampled frame of a video: its ``frame`` number (from 0), PDQ ``hash`` (with its
    quality) and ``timestamp`` in seconds."""

    frame: int
    hash: Hash
    timestamp: float

    @property
    def quality(self) -> int:
        """The frame's PDQ quality (0 when the hash carries none)."""
        return int(self.hash.quality or 0)


@dataclass(frozen=True, slots=True)
class VideoThresholds:
    """When two videos match: frames within ``distance`` bits match, frames under ``quality`` are
    left out, and the query and compared match percentages must reach ``query_percent`` and
    ``compared_percent``. Defaults: vPDQ's."""

    distance: int = DISTANCE_THRESHOLD
    quality: int = QUALITY_THRESHOLD
    query_percent: float = QUERY_MATCH_PERCENT
    compared_percent: float = COMPARED_MATCH_PERCENT

    def __post_init__(self) -> None:
        if isinstance(self.distance, bool) or not isinstance(self.distance, int) or not 0 <= self.distance <= 256:
            raise UsageError(f"video match distance must be 0..256, not {self.distance!r}")
        if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not 0 <= self.quality <= 100:
            raise UsageError(f"video frame quality threshold must be 0..100, not {self.quality!r}")
        for name in ("query_percent", "compared_percent"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 100:
                raise UsageError(f"{name} must be a percentage 0..100, not {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """The thresholds for a run manifest."""
        return {
            "video_distance": self.distance,
            "video_quality": self.quality,
            "video_query_percent": self.query_percent,
            "video_compared_percent": self.compared_percent,
        }


@dataclass(frozen=True, slots=True)
class VideoComparison:
    """What comparing a query video with another gave: ``query_percent`` and ``compared_percent``;
    ``matched_frames`` the query's frames (numbers) that matched a frame of the other, and
    ``matched_timestamps`` their timestamps; ``best_distance`` the smallest frame distance seen
    (``None`` when no frames were compared); ``compared_frames`` and ``compared_timestamps`` the
    other video's frames that matched a frame of the query."""

    query_percent: float
    compared_percent: float
    matched_frames: tuple[int, ...]
    matched_timestamps: tuple[float, ...]
    best_distance: int | None
    compared_frames: tuple[int, ...] = ()
    compared_timestamps: tuple[float, ...] = ()

    def matches(self, thresholds: VideoThresholds) -> bool:
        """Whether both percentages reach ``thresholds`` (and some frame matched at all)."""
        return (
            bool(self.matched_frames)
            and self.query_percent >= thresholds.query_percent
            and self.compared_percent >= thresholds.compared_percent
        )


def vpdq_line(feature: VpdqFeature) -> str:
    """The frame as a line of vpdq's hash files: ``frame,quality,hex,timestamp`` (3 decimals)."""
    return f"{feature.frame},{feature.quality},{feature.hash.hex()},{feature.timestamp:.3f}"


def _pdq(text: str, quality: int) -> Hash:
    text = text.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise HashFormatError(f"not a PDQ hash (64 hex digits): {text[:80]!r}")
    if not 0 <= quality <= 100:
        raise HashFormatError(f"PDQ quality must be 0..100, not {quality}")
    return Hash("pdq", bytes.fromhex(text), quality)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise HashFormatError(f"{what} is not a number: {text[:40]!r}") from None
    if not math.isfinite(value) or value < 0:
        raise HashFormatError(f"{what} must be a non-negative number, not {text[:40]!r}")
    return value


def _integer(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise HashFormatError(f"{what} is not a whole number: {text[:40]!r}") from None


def parse_vpdq_line(text: str) -> VpdqFeature:
    """A line of a vpdq hash file, ``frame,quality,hex,timestamp`` (the order vpdq writes); the
    order ``frame,hex,quality,timestamp`` is read too. :class:`~matcher.errors.HashFormatError`
    for anything else."""
    parts = [part.strip() for part in text.strip().split(",")]
    if len(parts) != 4:
        raise HashFormatError(f"a vpdq line has 4 fields (frame,quality,hash,timestamp), not {len(parts)}")
    frame = _integer(parts[0], "frame number")
    if frame < 0:
        raise HashFormatError(f"frame number must not be negative: {frame}")
    if len(parts[1]) == 64:
        hex_text, quality_text = parts[1], parts[2]
    else:
        quality_text, hex_text = parts[1], parts[2]
    return VpdqFeature(frame, _pdq(hex_text, _integer(quality_text, "quality")), _number(parts[3], "timestamp"))


def compact(feature: VpdqFeature) -> str:
    """ThreatExchange's compact feature: ``hex,quality,timestamp`` (3 decimals)."""
    return f"{feature.hash.hex()},{feature.quality},{feature.timestamp:.3f}"


def parse_compact(text: str, frame: int) -> VpdqFeature:
    """A compact feature ``hex,quality,timestamp``; ``frame`` numbers it (the form has no frame
    number)."""
    parts = [part.strip() for part in text.strip().split(",")]
    if len(parts) != 3:
        raise HashFormatError(f"a vPDQ feature has 3 fields (hash,quality,timestamp), not {len(parts)}")
    return VpdqFeature(frame, _pdq(parts[0], _integer(parts[1], "quality")), _number(parts[2], "timestamp"))


def _codes(hashes: Sequence[Hash]) -> np.ndarray:
    return code_matrix((h.bits for h in hashes), 32)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)


def distances(left: Sequence[Hash], right: Sequence[Hash]) -> np.ndarray:
    """The matrix of Hamming distances between two lists of PDQ hashes (len(left) x len(right))."""
    a, b = _codes(left), _codes(right)
    out = np.zeros((len(a), len(b)), dtype=np.uint16)
    rows = max(1, (16 << 20) // max(1, 32 * len(b)))  # bounded memory: about 16 MiB of XORs at a time
    for start in range(0, len(a), rows):
        block = a[start : start + rows, None, :] ^ b[None, :, :]
        out[start : start + rows] = _POPCOUNT[block].sum(axis=2)
    return out


def comparable_frames(features: Iterable[VpdqFeature], quality: int) -> list[VpdqFeature]:
    """The frames :func:`compare` counts: those of at least ``quality``, each distinct hash once (the
    first frame holding it); the percentages' denominators are their numbers."""
    seen: set[bytes] = set()
    out = []
    for feature in features:
        if feature.quality < quality or feature.hash.bits in seen:
            continue
        seen.add(feature.hash.bits)
        out.append(feature)
    return out


def compare(
    query: Sequence[VpdqFeature],
    compared: Sequence[VpdqFeature],
    thresholds: VideoThresholds | None = None,
    query_views: Mapping[int, Sequence[Hash]] | None = None,
) -> VideoComparison:
    """Compare the ``query`` video with the ``compared`` one, as vPDQ does (module documentation).

    ``query_views`` (frame number -> further hashes of that query frame, e.g. with its borders
    trimmed): a query frame matches a compared frame when its own hash or any of these is within
    the distance; a letterboxed copy then matches its original.
    """
    thresholds = thresholds or VideoThresholds()
    q = comparable_frames(query, thresholds.quality)
    c = comparable_frames(compared, thresholds.quality)
    if not q or not c:
        return VideoComparison(0.0, 0.0, (), (), None)
    owners: list[int] = []
    hashes: list[Hash] = []
    for position, feature in enumerate(q):
        hashes.append(feature.hash)
        owners.append(position)
        for extra in (query_views or {}).get(feature.frame, ()):
            if extra.quality is None or extra.quality >= thresholds.quality:
                hashes.append(extra)
                owners.append(position)
    table = distances(hashes, [f.hash for f in c])
    near = table <= thresholds.distance
    query_hit = np.zeros(len(q), dtype=bool)
    np.logical_or.at(query_hit, np.asarray(owners), near.any(axis=1))
    compared_hit = near.any(axis=0)
    matched = [f for f, hit in zip(q, query_hit) if hit]
    hit = [f for f, found in zip(c, np.asarray(compared_hit).tolist()) if found]
    return VideoComparison(
        100.0 * int(query_hit.sum()) / len(q),
        100.0 * int(compared_hit.sum()) / len(c),
        tuple(f.frame for f in matched),
        tuple(f.timestamp for f in matched),
        int(table.min()),
        tuple(f.frame for f in hit),
        tuple(f.timestamp for f in hit),
    )


def representative(features: Sequence[VpdqFeature]) -> VpdqFeature | None:
    """The video's representative frame: the highest quality, the earliest of those."""
    best: VpdqFeature | None = None
    for feature in features:
        if best is None or feature.quality > best.quality:
            best = feature
    return best


def known_video(features: Sequence[VpdqFeature], **facts: Any) -> KnownRecord:
    """A known video as one index record: its representative frame as its PDQ hash, every frame in
    ``extra["vpdq"]`` (vpdq lines); ``facts`` are further :class:`~matcher.known.KnownRecord`
    fields (``name``, ``md5``, ``category``, ``source``...)."""
    if not features:
        raise UsageError("a known video needs at least one frame")
    best = representative(features)
    if best is None:  # pragma: no cover - features is not empty
        raise UsageError("a known video needs at least one frame")
    extra = dict(facts.pop("extra", None) or {})
    extra[VIDEO_EXTRA_KEY] = [vpdq_line(f) for f in features]
    return KnownRecord(hashes={"pdq": best.hash}, extra=extra, **facts)


def video_features(record: KnownFacts) -> tuple[VpdqFeature, ...] | None:
    """The frames of a known video record (``None`` for a record that is not a video).
    :class:`~matcher.errors.HashFormatError` when they are malformed."""
    lines = record.extra.get(VIDEO_EXTRA_KEY)
    if lines is None:
        return None
    if isinstance(lines, str):
        lines = json.loads(lines)
    if not isinstance(lines, list):
        raise HashFormatError(f"extra[{VIDEO_EXTRA_KEY!r}] must be a list of vpdq lines")
    return tuple(parse_vpdq_line(str(line)) for line in lines)
