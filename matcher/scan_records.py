"""The values a scan reports: one :class:`ScanRecord` per file (per frame), with its matches."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .algorithms import registry
from .digests import EMPTY_CONTENT_DIGESTS
from .file_facts import FILE_FIELDS, FileFacts, file_columns
from .hashes import Hash
from .views import describe_match

__all__ = ["ScanMatch", "ScanRecord", "STATUSES", "DIGEST_ALGORITHMS", "EMPTY_CONTENT_DIGESTS"]

#: What a scan record's ``status`` can be, in order of precedence when several apply.
STATUSES = ("match", "known_good", "error", "skipped", "no_match")
#: Digest "algorithms" of exact matches (distance 0, no variant).
DIGEST_ALGORITHMS = ("md5", "sha1", "sha256")


@dataclass(frozen=True, slots=True)
class ScanMatch:
    """One known record matched by a file or frame.

    ``algorithm`` is a perceptual algorithm (``pdq``, ``phash``, ...) or a digest (``md5``, ``sha1``,
    ``sha256``: exact, distance 0). ``variant`` names the query view of the evidence that matched,
    i.e. how the evidence is transformed relative to the known image: ``orig`` (as is),
    ``rot90``/``rot180``/``rot270`` (rotated counter-clockwise), ``flipx`` (top-bottom), ``flipy``
    (mirrored), ``flipp``/``flipm`` (transposed about the main or anti-diagonal); ``trim`` and
    ``trim+<variant>`` (the evidence with its uniform borders trimmed, then as that variant);
    ``top88``/``bottom88`` (the evidence's top / bottom 88 %); ``inset@L,T,R,B`` (a picture embedded
    in the evidence frame, a collage tile or a pasted picture, at that box in the frame's pixels:
    :mod:`matcher.insets`); ``None`` for digest matches.
    ``view`` names the known record's view the evidence matched (``crop10``, ``trim``, ``top88``,
    ... see :data:`matcher.views.KNOWN_VIEWS`); ``None`` for its main (full-frame) hash and for
    digest matches. ``record`` is the index record id. :attr:`explanation` says in words what the
    evidence differs by (:func:`matcher.views.describe_match` of ``variant`` and ``view``).
    ``video`` (matches of a video only, JSON-ready): ``timestamps`` (seconds) of the video's frames
    that matched the record, and for a known video (``algorithm`` ``vpdq``) ``query_percent`` and
    ``compared_percent`` (:mod:`matcher.video_hash`).

    A local-feature match (the known image found inside the frame: a crop, a turn, a screenshot, a
    collage tile; :mod:`matcher.local_features`) has ``algorithm`` ``"orb"``, ``variant``
    ``"local"``, ``distance`` 0 (no hash distance applies), and ``inliers`` (point matches that
    agree on one transform), ``transform`` (the 3 x 3 matrix, row-major, taking known-image pixels
    to frame pixels) and ``region`` (``(left, top, right, bottom)``: where the known image lies in
    the frame, in frame pixels); these three are ``None`` for every other match.
    """

    algorithm: str
    distance: int
    variant: str | None
    record: int
    list: str
    category: int | None = None
    series: str | None = None
    view: str | None = None
    video: Mapping[str, Any] | None = None
    inliers: int | None = None
    transform: tuple[float, ...] | None = None
    region: tuple[int, int, int, int] | None = None

    @property
    def explanation(self) -> str:
        """What the evidence differs by from the known image, in a reviewer's words ("as is",
        "mirrored", "cropped 10% centred", "caption band cut at top", "identical file" for a digest
        match; see :func:`matcher.views.describe_match`)."""
        return describe_match(self.variant, self.view, self.inliers, self.region)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the report's keys (``explanation``: :attr:`explanation`, derived from
        ``variant`` and ``view``, which keep the short codes); a local-feature match adds ``inliers``,
        ``transform`` and ``region``."""
        out: dict[str, Any] = {
            "algorithm": self.algorithm,
            "distance": self.distance,
            "variant": self.variant,
            "view": self.view,
            "explanation": self.explanation,
            "record": self.record,
            "list": self.list,
            "category": self.category,
            "series": self.series,
            **({"video": dict(self.video)} if self.video is not None else {}),
        }
        if self.inliers is not None:
            out["inliers"] = self.inliers
            out["transform"] = None if self.transform is None else [round(v, 6) for v in self.transform]
            out["region"] = None if self.region is None else list(self.region)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanMatch:
        """The inverse of :meth:`to_dict` (``explanation`` is derived, not read)."""
        return cls(
            algorithm=data["algorithm"],
            distance=int(data["distance"]),
            variant=data.get("variant"),
            record=int(data["record"]),
            list=data["list"],
            category=data.get("category"),
            series=data.get("series"),
            view=data.get("view"),
            video=data.get("video"),
            inliers=None if data.get("inliers") is None else int(data["inliers"]),
            transform=None if data.get("transform") is None else tuple(float(v) for v in data["transform"]),
            region=None if data.get("region") is None else tuple(int(v) for v in data["region"]),  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class ScanRecord(FileFacts):
    """What a scan found for one file, or one frame of a multi-frame image.

    The file fields of :class:`~matcher.file_facts.FileFacts` (as in :class:`~matcher.hashing.HashRecord`),
    plus ``status`` (one of :data:`STATUSES`),
    ``matches`` (nearest first: digest matches, then by distance) and ``notes`` (things the examiner
    should know that are not errors, e.g. "pdq not matched: quality 32 below 50").

    Quality scores: each algorithm with a quality has a report column named by its
    :attr:`~matcher.algorithms.base.Algorithm.quality_field` (``pdq_quality``), present in every
    record; :meth:`quality` gives a record's score. ``pdq_quality`` is also a field, kept for
    compatibility; the hashes carry their scores as well.

    ``video`` (a video's record only, JSON-ready; JSON Lines key ``video``): ``fps`` (sampling
    rate), ``frames_sampled``, and ``frames``, the frame-level detail: each sampled frame that
    matched something, with its ``frame`` number, ``timestamp``, ``pdq``, ``quality`` and
    ``matches`` (``record``, ``distance``, ``variant``, ``view``).
    """

    status: str
    hashes: dict[str, Hash] = field(default_factory=dict)
    pdq_quality: int | None = None
    matches: tuple[ScanMatch, ...] = ()
    notes: tuple[str, ...] = ()
    video: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown scan status {self.status!r}")

    def quality(self, algorithm: str) -> int | None:
        """The record's quality score for a registered algorithm with a quality (``None`` when it
        has none): the field named by its ``quality_field`` where this class has one
        (``pdq_quality``), else the score its hash carries."""
        if algorithm not in registry:
            return None
        field_name = registry.get(algorithm).quality_field
        if field_name is None:
            return None
        if field_name in _FIELD_NAMES:
            value: int | None = getattr(self, field_name)
            return value
        value_hash = self.hashes.get(algorithm)
        return None if value_hash is None else value_hash.quality

    def to_dict(self, algorithms: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        """JSON-ready dict with the report's keys, in a fixed order; ``algorithms`` names the hash
        columns to include even where this record has no such hash."""
        out = file_columns(self, algorithms)
        for algorithm in registry.with_quality():
            if algorithm.quality_field is not None:
                out[algorithm.quality_field] = self.quality(algorithm.name)
        out["status"] = self.status
        out["matches"] = [m.to_dict() for m in self.matches]
        out["error"] = self.error
        out["notes"] = list(self.notes)
        out["path_raw_hex"] = self.path_raw_hex
        if self.video is not None:
            out["video"] = dict(self.video)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], algorithms: list[str] | tuple[str, ...]) -> ScanRecord:
        """The inverse of :meth:`to_dict` (hash columns named by ``algorithms``)."""
        hashes = {}
        for name in algorithms:
            text = data.get(name)
            if text:
                field_name = registry.get(name).quality_field if name in registry else None
                quality = data.get(field_name) if field_name is not None else None
                hashes[name] = registry.hash_from_hex(name, text, quality)
        qualities = {key: data.get(key) for key in registry.quality_fields() if key in _FIELD_NAMES}
        return cls(
            **{name: data.get(name) for name in FILE_FIELDS},
            status=data["status"],
            hashes=hashes,
            matches=tuple(ScanMatch.from_dict(m) for m in data.get("matches") or ()),
            error=data.get("error"),
            notes=tuple(data.get("notes") or ()),
            path_raw_hex=data.get("path_raw_hex"),
            video=data.get("video"),
            **qualities,
        )


_FIELD_NAMES = frozenset(f.name for f in fields(ScanRecord))
