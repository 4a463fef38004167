"""A video's scan record: its sampled frames matched against known images, and the video against
known videos (vPDQ).

A video is one record (plus one for its error, if any). Its matches:

* **known images**: every known record a sampled frame matched (each frame searched as an image is,
  with its query views: borders trimmed, regions), once per record, by the best explanation over
  the frames (:meth:`~matcher.scan.matching.Matcher.preference`); the match's ``video`` says at
  which ``timestamps`` frames matched it;
* **known videos** (records with vPDQ frames, :func:`matcher.video_hash.known_video`): those whose
  comparison with the video (:func:`matcher.video_hash.compare`, each query frame as it is or with
  its borders trimmed) reaches the scan's :class:`~matcher.video_hash.VideoThresholds`, as a match of
  algorithm ``vpdq`` whose distance is the nearest frame pair's and whose ``video`` gives
  ``query_percent``, ``compared_percent`` and the ``timestamps`` of the query's matching frames.

The record's ``video`` holds the frame-level detail (the frames that matched something). An image
(or an image's frame) matches a known video when one of its PDQ query views is within the PDQ
distance of one of the known video's frames (:func:`add_known_video_frames`: a still of the video).
Known videos are read from the index once per scanner (:class:`VideoCatalog`): at once from an
index that keeps them apart (``video_records``), else the first time a video is met.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import HashFormatError
from ..hashes import Hash, code_matrix
from ..index.types import IndexedRecord
from ..pipeline import EntryFeatures, FrameFeatures
from ..scan_records import ScanMatch, ScanRecord
from ..video_hash import VideoThresholds, VpdqFeature, compare, video_features
from ..views import TRIM_VIEW

__all__ = [
    "VIDEO_ALGORITHM",
    "KnownVideo",
    "VideoCatalog",
    "add_known_video_frames",
    "is_video",
    "video_shells",
    "query_features",
]

log = logging.getLogger(__name__)

#: The ``algorithm`` of a match of a video with a known video.
VIDEO_ALGORITHM = "vpdq"


@dataclass(frozen=True, slots=True)
class KnownVideo:
    """A known video of the index: its record and its frames."""

    record: IndexedRecord
    features: tuple[VpdqFeature, ...]


class VideoCatalog:
    """The known videos of one index, with all their frames in one table for a first cut (which known
    videos have a frame near any of the query's)."""

    def __init__(self, videos: Sequence[KnownVideo]) -> None:
        self.videos = {video.record.id: video for video in videos}
        hashes: list[Hash] = []
        owners: list[int] = []
        self._features: list[VpdqFeature] = []
        for video in videos:
            for feature in video.features:
                hashes.append(feature.hash)
                owners.append(video.record.id)
                self._features.append(feature)
        self._owners = np.asarray(owners, dtype=np.int64)
        self._codes = code_matrix((h.bits for h in hashes), 32)
        self._search: Any = None  # FAISS's exact binary index over every frame, made on first use

    @classmethod
    def from_records(cls, records: Iterable[IndexedRecord]) -> VideoCatalog:
        """The catalogue of the video records among ``records`` (a malformed one is logged and left out)."""
        videos = []
        for record in records:
            try:
                features = video_features(record)
            except (HashFormatError, ValueError) as exc:
                log.warning(
                    "known record %d: its vPDQ frames cannot be read (%s); not matched as a video", record.id, exc
                )
                continue
            if features:
                videos.append(KnownVideo(record, features))
        return cls(videos)

    def __len__(self) -> int:
        return len(self.videos)

    def candidates(self, hashes: Sequence[Hash], distance: int) -> list[int]:
        """The known videos with a frame within ``distance`` of any of ``hashes``, by record id (an
        exact range search of FAISS's flat binary index over every known frame)."""
        if not self.videos or not hashes:
            return []
        _limits, _distances, rows = self._range(hashes, distance)
        return sorted({int(owner) for owner in np.unique(self._owners[rows])})

    def _range(self, hashes: Sequence[Hash], distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._search is None:
            import faiss

            self._search = faiss.IndexBinaryFlat(256)
            self._search.add(self._codes)
        queries = code_matrix((h.bits for h in hashes), 32)
        limits, found, rows = self._search.range_search(queries, distance + 1)  # FAISS: strictly below
        return limits, found, rows

    def frame_matches(self, hashes: Sequence[Hash], distance: int) -> list[list[tuple[int, int, VpdqFeature]]]:
        """For each of ``hashes``: every known-video frame within ``distance``, as ``(record id,
        distance, frame)``."""
        if not self.videos or not hashes:
            return [[] for _ in hashes]
        limits, found, rows = self._range(hashes, distance)
        return [
            [
                (int(self._owners[row]), int(found[k]), self._features[int(row)])
                for k, row in zip(range(limits[i], limits[i + 1]), rows[limits[i] : limits[i + 1]])
            ]
            for i in range(len(hashes))
        ]


def add_known_video_frames(
    frames: Sequence[FrameFeatures],
    per_frame: Sequence[dict[int, ScanMatch]],
    catalog: VideoCatalog,
    distance: int,
    min_quality: int | None,
    preference: Callable[[ScanMatch], Any],
) -> None:
    """Add to each image frame's matches (``per_frame``, known record id -> match) the known videos
    one of whose frames its PDQ query views are within ``distance`` of (a still of a known video):
    a ``pdq`` match whose ``video`` names the known frame and its timestamp."""
    for frame, found in zip(frames, per_frame):
        views = frame.variants.get("pdq") or ({"orig": frame.hashes["pdq"]} if "pdq" in frame.hashes else {})
        kept = [
            (name, value) for name, value in views.items() if min_quality is None or (value.quality or 0) >= min_quality
        ]
        if not kept:
            continue
        for (variant, _value), near in zip(kept, catalog.frame_matches([v for _n, v in kept], distance)):
            for record_id, gap, feature in near:
                rec = catalog.videos[record_id].record
                candidate = ScanMatch(
                    "pdq",
                    gap,
                    variant,
                    rec.id,
                    rec.list_name,
                    rec.category,
                    rec.series,
                    video={"known_frame": feature.frame, "known_timestamp": round(feature.timestamp, 3)},
                )
                held = found.get(record_id)
                if held is None or preference(candidate) < preference(held):
                    found[record_id] = candidate


def is_video(entry: EntryFeatures) -> bool:
    """Whether the entry is a video (its frames are samples in time)."""
    return entry.media is not None and entry.media.is_video


def query_features(frames: Sequence[FrameFeatures]) -> tuple[list[VpdqFeature], dict[int, list[Hash]]]:
    """A scanned video's vPDQ frames, and each frame's further query hashes (borders trimmed)."""
    features: list[VpdqFeature] = []
    views: dict[int, list[Hash]] = {}
    for frame in frames:
        value = frame.hashes.get("pdq")
        if value is None:
            continue
        number = frame.index or 0
        features.append(VpdqFeature(number, value, frame.timestamp or 0.0))
        trimmed = frame.variants.get("pdq", {}).get(TRIM_VIEW)
        if trimmed is not None and trimmed.bits != value.bits:
            views[number] = [trimmed]
    return features, views


def _frame_detail(frame: FrameFeatures, found: dict[int, ScanMatch]) -> dict[str, Any]:
    value = frame.hashes.get("pdq")
    return {
        "frame": frame.index,
        "timestamp": None if frame.timestamp is None else round(frame.timestamp, 3),
        "pdq": None if value is None else value.hex(),
        "quality": None if value is None else value.quality,
        "matches": [
            {"record": m.record, "distance": m.distance, "variant": m.variant, "view": m.view}
            for m in sorted(found.values(), key=lambda m: (m.distance, m.record))
        ],
    }


def video_shells(
    base: ScanRecord,
    entry: EntryFeatures,
    per_frame: Sequence[dict[int, ScanMatch]],
    frame_notes: Sequence[Sequence[str]],
    catalog: VideoCatalog | None,
    thresholds: VideoThresholds,
    fps: float,
    preference: Callable[[ScanMatch], Any],
) -> tuple[ScanRecord, dict[int, ScanMatch], list[str]]:
    """The video's record before its status is set (the caller finishes it as any record), the
    matches found (known record id -> match) and its notes."""
    frames = entry.frames
    found: dict[int, ScanMatch] = {}
    stamps: dict[int, list[float]] = {}
    for frame, matches in zip(frames, per_frame):
        for record_id, match in matches.items():
            stamps.setdefault(record_id, []).append(round(frame.timestamp or 0.0, 3))
            held = found.get(record_id)
            if held is None or preference(match) < preference(held):
                found[record_id] = match
    for record_id, match in found.items():
        found[record_id] = replace(match, video={"timestamps": stamps[record_id]})
    features, views = query_features(frames)
    if catalog is not None and len(catalog) and features:
        searched = [f.hash for f in features if f.quality >= thresholds.quality] + [
            h for hs in views.values() for h in hs
        ]
        for record_id in catalog.candidates(searched, thresholds.distance):
            known = catalog.videos[record_id]
            result = compare(features, known.features, thresholds, views)
            if not result.matches(thresholds):
                continue
            rec = known.record
            found[record_id] = ScanMatch(
                VIDEO_ALGORITHM,
                int(result.best_distance or 0),
                "orig",
                rec.id,
                rec.list_name,
                rec.category,
                rec.series,
                video={
                    "query_percent": round(result.query_percent, 2),
                    "compared_percent": round(result.compared_percent, 2),
                    "timestamps": [round(t, 3) for t in result.matched_timestamps],
                },
            )
    best = max(frames, key=lambda f: (f.quality("pdq") or 0, -(f.index or 0)), default=None)
    detail = [_frame_detail(frame, matches) for frame, matches in zip(frames, per_frame) if matches]
    notes = sorted({note for notes in frame_notes for note in notes})
    record = replace(
        base,
        frame=None,
        hashes=dict(best.hashes) if best is not None else {},
        pdq_quality=best.quality("pdq") if best is not None else None,
        video={"fps": fps, "frames_sampled": len(frames), "frames": detail},
    )
    low = sum(1 for notes in frame_notes if notes)
    if low:
        notes = [f"{low} of {len(frames)} sampled frames below the PDQ quality gate (not searched as they are)"]
    return record, found, notes
