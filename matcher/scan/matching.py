"""Matching one hashed entry against an index, and ranking what matched.

:class:`Matcher` takes an entry's digests and its frames' query views (from the scanner), asks the
index (anything implementing :class:`~matcher.index.IndexReader`) for digest and perceptual matches,
and builds the entry's records: each matched known record once per frame, by the plainest
explanation within the maximum distance (:meth:`Matcher.preference`: the image as it is, then
rotated or mirrored, then with borders trimmed, then a view or region; distance second), the
matches nearest first (:meth:`Matcher.order`), known-good records apart, and the record's status by
precedence. The rules are the ones :mod:`matcher.scan` documents. :meth:`Matcher.match_many` matches
a batch of entries with one index call per digest kind and per algorithm and table; the digests of
zero-length content (:data:`~matcher.scan_records.EMPTY_CONTENT_DIGESTS`) are never looked up.

A failure of the index itself (an exception from its ``lookup_digest``, ``search`` or ``records``:
a FAISS error, out of memory in a search, an I/O error on its files) is not a problem of the entry
being matched and must never pass for one: it is raised as an
:class:`~matcher.errors.IndexStoreError`, which stops the scan (a journaled scan can be resumed once
the cause is fixed) instead of becoming a per-file ``error`` record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from ..algorithms import Algorithm, registry
from ..errors import IndexStoreError, MatcherError
from ..hashes import Hash
from ..index.local_table import LocalHit
from ..index.reader import IndexReader, LocalReader
from ..index.types import IndexedRecord
from ..insets import Box
from ..local_features import LocalFeatures, moved
from ..pipeline import EntryFeatures, FrameFeatures, with_changed
from ..scan_records import DIGEST_ALGORITHMS, EMPTY_CONTENT_DIGESTS, ScanMatch, ScanRecord
from ..variants import VARIANT_NAMES
from ..views import KNOWN_VIEWS, LOCAL_VARIANT, REGION_VIEWS, TRIM_VIEW, inset_box, known_views_for
from .options import ScanConfig
from .video_matching import VIDEO_ALGORITHM, VideoCatalog, add_known_video_frames, is_video, video_shells

__all__ = [
    "DIGEST_PREFERENCE",
    "LOCAL_ALGORITHM",
    "Matcher",
    "explanation_rank",
    "gate_note",
    "index_failure",
    "is_known_good",
    "passes_gate",
    "variant_rank",
    "view_rank",
]

T = TypeVar("T")

_VARIANT_ORDER = {name: rank for rank, name in enumerate(VARIANT_NAMES)}
#: Digest matches of one record are reported once, by the strongest digest that matched.
DIGEST_PREFERENCE = ("sha256", "sha1", "md5")
#: The ``algorithm`` of a local-feature match (ORB keypoints; :mod:`matcher.local_features`).
LOCAL_ALGORITHM = "orb"


class Matcher:
    """Matches hashed entries against an index under one scan's configuration.

    ``views`` maps each algorithm to the view tables the index holds for it (a search can only find
    something in those).
    """

    def __init__(self, config: ScanConfig, views: dict[str, frozenset[str]]) -> None:
        self.config = config
        self.algorithms = tuple(registry.get(name) for name in config.algorithms)
        self._algorithm_rank = {name: rank for rank, name in enumerate(config.algorithms)}
        self._views = views
        self._catalogs: dict[int, tuple[IndexReader, VideoCatalog]] = {}

    def match(
        self, index: IndexReader, base: ScanRecord, entry: EntryFeatures
    ) -> tuple[list[ScanRecord], frozenset[int]]:
        """The records of one read entry (``base``: its record before matching; ``entry``: what the
        pipeline read, each frame's query views in ``variants``), matched against ``index``, and the
        ids of the known-good records among their matches (kept apart in the counts).

        The same as :meth:`match_many` of that one entry."""
        return self.match_many(index, [(base, entry)])[0]

    def match_many(
        self, index: IndexReader, entries: Sequence[tuple[ScanRecord, EntryFeatures]]
    ) -> list[tuple[list[ScanRecord], frozenset[int]]]:
        """:meth:`match` of each ``(base, entry)`` pair, in order, with the index asked once for all of
        them: one digest look-up per digest kind, one search per algorithm and known-side table (every
        frame's query views of every entry together) and one record fetch. Each entry's records are
        exactly those :meth:`match` gives it alone."""
        digest_matches, known_good = self._digest_matches(index, [base for base, _entry in entries])
        per_entry = self._perceptual_matches(index, [entry.frames for _base, entry in entries])
        if self.config.local:
            self._local_matches(index, [entry.frames for _base, entry in entries], digest_matches, per_entry)
        perceptual_ids = {m.record for found, _notes in per_entry for per_frame in found for m in per_frame.values()}
        known_good |= self._known_good(index, perceptual_ids - known_good)
        videos = any(is_video(entry) for _base, entry in entries)
        # known videos: read when a video is met, or at once from an index that keeps them apart
        catalog = self._video_catalog(index) if videos or hasattr(index, "video_records") else None
        if catalog is not None and len(catalog) and "pdq" in self.config.max_distances:
            for (_base, entry), (found, _notes) in zip(entries, per_entry):
                if not is_video(entry):  # an image may be a still of a known video
                    add_known_video_frames(
                        entry.frames,
                        found,
                        catalog,
                        self.config.max_distances["pdq"],
                        registry.get("pdq").min_quality,
                        self.preference,
                    )
        return [
            self._records(base, entry, digests, found, notes, known_good, catalog)
            for (base, entry), digests, (found, notes) in zip(entries, digest_matches, per_entry)
        ]

    def _video_catalog(self, index: IndexReader) -> VideoCatalog:
        """The known videos of ``index``, read on the first video met (then kept)."""
        held = self._catalogs.get(id(index))
        if held is None or held[0] is not index:
            # an index that keeps its known videos apart answers at once; any other is read through
            records = getattr(index, "video_records", None) or getattr(index, "iter_records", None)
            catalog = (
                VideoCatalog([])
                if records is None
                else self._ask("video records", lambda: VideoCatalog.from_records(records()))
            )
            held = (index, catalog)
            self._catalogs[id(index)] = held
        return held[1]

    def _records(
        self,
        base: ScanRecord,
        entry: EntryFeatures,
        digest_matches: dict[int, ScanMatch],
        per_frame: list[dict[int, ScanMatch]],
        frame_notes: list[list[str]],
        known_good: set[int],
        catalog: VideoCatalog | None = None,
    ) -> tuple[list[ScanRecord], frozenset[int]]:
        frames, error, failed_frame = entry.frames, entry.error, entry.failed_frame
        note, changed, file_notes = entry.note, entry.changed, entry.notes
        shells: list[tuple[ScanRecord, dict[int, ScanMatch], list[str]]] = []
        if is_video(entry) and frames:  # one record for the video (matching.video_matching)
            video, found_video, video_notes = video_shells(
                base,
                entry,
                per_frame,
                frame_notes,
                catalog,
                self.config.video,
                self.config.hash_options.video.fps,
                self.preference,
            )
            shells.append((replace(video, error=with_changed(None, changed)), found_video, video_notes))
            frames, per_frame, frame_notes = (), [], []
        for frame, found, notes in zip(frames, per_frame, frame_notes):
            record = replace(
                base,
                frame=frame.index,
                width=frame.width,
                height=frame.height,
                hashes=dict(frame.hashes),
                pdq_quality=frame.quality("pdq"),
                error=with_changed(None, changed),
            )
            shells.append((record, found, notes))
        if error is not None or not shells:
            shells.append((replace(base, frame=failed_frame, error=with_changed(error, changed)), {}, []))
        out = []
        for record, found, notes in shells:
            if note is not None or file_notes:
                notes = [*([note] if note is not None else []), *file_notes, *notes]
            out.append(self._finish(record, digest_matches, found, known_good, notes))
        matched_good = frozenset(m.record for record in out for m in record.matches if m.record in known_good)
        return out, matched_good

    def _finish(
        self,
        record: ScanRecord,
        digest_matches: dict[int, ScanMatch],
        found: dict[int, ScanMatch],
        known_good: set[int],
        notes: list[str],
    ) -> ScanRecord:
        best = dict(found)
        for record_id, match in digest_matches.items():  # a digest match beats any perceptual one
            best[record_id] = match
        kept = []
        near_good = []
        for record_id, match in best.items():
            if record_id in known_good and match.algorithm not in DIGEST_ALGORITHMS:
                near_good.append(match)
            else:
                kept.append(match)
        if near_good:
            names = ", ".join(
                f"{m.record} ({m.list}, {m.algorithm} distance {m.distance})" for m in sorted(near_good, key=self.order)
            )
            notes = [*notes, f"perceptually similar to known-good record(s) {names}; not counted as known-good"]
        kept.sort(key=self.order)
        if any(m.record not in known_good for m in kept):
            status = "match"
        elif kept:
            status = "known_good"
        elif record.error is not None:
            status = "error"
        else:
            status = "no_match"
        return replace(record, status=status, matches=tuple(kept), notes=tuple(notes))

    def order(self, match: ScanMatch) -> tuple[Any, ...]:
        """Sort key of a record's matches (one per known record): digest matches first, then by
        distance as a fraction of the hash length, then main hashes before views, the scan's algorithm
        order, and the query view's rank."""
        if match.algorithm in DIGEST_ALGORITHMS:
            return (0, 0.0, 0, DIGEST_PREFERENCE.index(match.algorithm), 0, match.record)
        if match.variant == LOCAL_VARIANT:  # below every global match; most inliers first
            return (2, -float(match.inliers or 0), 0, 0, 0, match.record)
        # a known video's match (vPDQ) counts the bits of its frames' PDQ
        bits = registry.get("pdq" if match.algorithm == VIDEO_ALGORITHM else match.algorithm).bit_length
        return (
            1,
            match.distance / bits,
            view_rank(match.view),
            self._algorithm_rank.get(match.algorithm, 99),
            variant_rank(match.variant),
            match.record,
        )

    def preference(self, match: ScanMatch) -> tuple[Any, ...]:
        """Which of one known record's perceptual matches within the maximum distance explains the
        evidence (the smallest key wins): the plainest explanation first (:func:`explanation_rank`:
        the image as it is, then rotated or mirrored, then with borders trimmed, then a view or
        region), and only then the smaller distance (then :meth:`order`'s ties). A blurred copy that
        is 2 bits from the known image is reported as it is, not as a region matched at distance 0."""
        return (explanation_rank(match.variant, match.view), *self.order(match))

    def _digest_matches(
        self, index: IndexReader, bases: Sequence[ScanRecord]
    ) -> tuple[list[dict[int, ScanMatch]], set[int]]:
        found: list[dict[int, ScanMatch]] = [{} for _ in bases]
        known_good: set[int] = set()
        for kind in DIGEST_PREFERENCE:
            # the digest of zero-length content is never a match, whatever a list holds
            values = [
                value if value and value.strip().lower() != EMPTY_CONTENT_DIGESTS[kind] else None
                for value in (getattr(base, kind) for base in bases)
            ]
            wanted = list(dict.fromkeys(value for value in values if value is not None))
            if not wanted:
                continue
            answer = self._ask("digest lookup", index.lookup_digest, kind, wanted)
            for held, value in zip(found, values):
                if value is None:
                    continue
                for rec in answer.get(value, []):
                    if rec.id not in held:
                        held[rec.id] = ScanMatch(kind, 0, None, rec.id, rec.list_name, rec.category, rec.series)
                    if is_known_good(rec):
                        known_good.add(rec.id)
        return found, known_good

    def _known_good(self, index: IndexReader, ids: set[int]) -> set[int]:
        if not ids:
            return set()
        found = self._ask("record lookup", index.records, sorted(ids))
        return {rec.id for rec in found if is_known_good(rec)}

    def _perceptual_matches(
        self, index: IndexReader, entries: Sequence[Sequence[FrameFeatures]]
    ) -> list[tuple[list[dict[int, ScanMatch]], list[list[str]]]]:
        """Per entry (its frames), each frame's best match per known record and its notes."""
        out: list[tuple[list[dict[int, ScanMatch]], list[list[str]]]] = [
            ([{} for _ in frames], [[] for _ in frames]) for frames in entries
        ]
        for algorithm in self.algorithms:
            available = self._views[algorithm.name]
            # known-side table (None: the main hashes) -> the queries searched there and their owners
            # (entry, frame, query view)
            targets: dict[str | None, tuple[list[Hash], list[tuple[int, int, str]]]] = {}
            for number, frames in enumerate(entries):
                notes = out[number][1]
                for position, frame in enumerate(frames):
                    variants = frame.variants.get(algorithm.name)
                    if not variants:
                        continue
                    searched = []
                    for variant, value in variants.items():
                        # each query view is gated on its own quality (a flat region of a good frame is not searched)
                        if not passes_gate(algorithm, value):
                            continue
                        wanted = [t for t in known_views_for(variant) if t is None or t in available]
                        if wanted:
                            searched.append(variant)
                        for target in wanted:
                            queries, owners = targets.setdefault(target, ([], []))
                            queries.append(value)
                            owners.append((number, position, variant))
                    frame_note = gate_note(algorithm, variants, searched)
                    if frame_note is not None:
                        notes[position].append(frame_note)
            radius = self.config.max_distances[algorithm.name]
            through_view = view_radius(algorithm, radius)
            for target, (queries, owners) in targets.items():
                results = self._ask(f"{algorithm.name} search", index.search, queries, radius, view=target)
                for (number, position, variant), result in zip(owners, results):
                    found = out[number][0][position]
                    for m in result.matches:
                        if m.distance > through_view and is_view_match(variant, target):
                            continue
                        candidate = ScanMatch(
                            algorithm.name,
                            m.distance,
                            variant,
                            m.record_id,
                            m.list_name,
                            m.category,
                            m.series,
                            view=target,
                        )
                        held = found.get(m.record_id)
                        if held is None or self.preference(candidate) < self.preference(held):
                            found[m.record_id] = candidate
        return out

    def _local_matches(
        self,
        index: IndexReader,
        entries: Sequence[Sequence[FrameFeatures]],
        digest_matches: Sequence[dict[int, ScanMatch]],
        per_entry: list[tuple[list[dict[int, ScanMatch]], list[list[str]]]],
    ) -> None:
        """The local-feature stage: each frame of an entry that no digest matched and that no global
        hash matched is searched by its local features (one :meth:`LocalReader.find_local` call for
        the batch); then the insets of the frames still unmatched (``FrameFeatures.local_insets``: a
        collage tile, a picture pasted into a screenshot, cut out; one more call), their hits moved
        into the frame's pixels. Verified known images are added to the frame's matches (variant
        ``local``)."""
        if not isinstance(index, LocalReader):
            return
        owners: list[tuple[int, int]] = []
        frames: list[LocalFeatures] = []
        for number, frame_list in enumerate(entries):
            if digest_matches[number]:
                continue
            for position, frame in enumerate(frame_list):
                if per_entry[number][0][position]:  # matched by a global hash: not extracted (if deferred)
                    continue
                features = frame.local_set()
                if features is None or not len(features):
                    continue
                if (features.width, features.height) != (frame.width, frame.height):  # decoded at reduced scale
                    features = LocalFeatures(frame.width, frame.height, features.points, features.descriptors)
                owners.append((number, position))
                frames.append(features)
        found = self._ask("local-feature search", index.find_local, frames) if frames else []
        hits_of: dict[tuple[int, int], list[LocalHit]] = {}
        for owner, hits in zip(owners, found):
            if hits:
                hits_of[owner] = list(hits)
        inset_owners: list[tuple[int, int, Box]] = []
        inset_frames: list[LocalFeatures] = []
        for number, position in owners:
            if (number, position) in hits_of:
                continue
            for box, features in entries[number][position].inset_sets():
                if len(features):
                    inset_owners.append((number, position, box))
                    inset_frames.append(features)
        if inset_frames:
            for (number, position, box), hits in zip(
                inset_owners, self._ask("local-feature search of insets", index.find_local, inset_frames)
            ):
                for hit in hits:
                    moved_hit = LocalHit(hit.record, hit.votes, moved(hit.match, box[0], box[1]))
                    hits_of.setdefault((number, position), []).append(moved_hit)
        wanted = sorted({hit.record for hits in hits_of.values() for hit in hits})
        if not wanted:
            return
        records = {rec.id: rec for rec in self._ask("record lookup", index.records, wanted)}
        for (number, position), hits in hits_of.items():
            held = per_entry[number][0][position]
            for hit in sorted(hits, key=lambda h: (-h.match.inliers, h.record)):  # a record's best view first
                rec = records.get(hit.record)
                if rec is None or hit.record in held:
                    continue
                held[hit.record] = ScanMatch(
                    LOCAL_ALGORITHM,
                    0,
                    LOCAL_VARIANT,
                    hit.record,
                    rec.list_name,
                    rec.category,
                    rec.series,
                    inliers=hit.match.inliers,
                    transform=hit.match.transform,
                    region=hit.match.region,
                )

    def _ask(self, what: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``call(*args, **kwargs)``: one call of the index; any failure but a :class:`MatcherError`
        raised as an :class:`IndexStoreError` (see the module documentation)."""
        try:
            return call(*args, **kwargs)
        except MatcherError:
            raise
        except Exception as exc:  # whatever the index raised, it is the index's failure
            raise index_failure(self.config.index_path, what, exc) from exc


def index_failure(index_path: str, what: str, exc: BaseException) -> IndexStoreError:
    """The error that stops a scan when a call of its index fails (``what``: which call)."""
    reason = "out of memory" if isinstance(exc, MemoryError) else f"{type(exc).__name__}: {exc}"
    return IndexStoreError(
        f"{index_path}: the index {what} failed ({reason}); this is not a problem of the file being matched, so the "
        "scan stopped: a journaled scan keeps its journal and can be finished with --resume once the cause is fixed"
    )


def passes_gate(algorithm: Algorithm, value: Hash) -> bool:
    """Whether a query view's hash is searched: its own quality (if its algorithm has one) is at
    least the algorithm's minimum."""
    return algorithm.min_quality is None or value.quality is None or value.quality >= algorithm.min_quality


def gate_note(algorithm: Algorithm, variants: Mapping[str, Hash], searched: Sequence[str]) -> str | None:
    """The record's note when the frame as it is (``orig``) fails the quality gate: nothing searched
    (``"pdq not matched: quality N below 50"``), or only the views named in ``searched`` (those of
    sufficient quality of their own, e.g. the content inside a flat border)."""
    orig = variants.get("orig")
    if orig is None or passes_gate(algorithm, orig):
        return None
    if not searched:
        return f"{algorithm.name} not matched: quality {orig.quality} below {algorithm.min_quality}"
    return (
        f"{algorithm.name}: quality {orig.quality} below {algorithm.min_quality}; searched only its views of "
        f"sufficient quality of their own ({', '.join(searched)})"
    )


def is_known_good(record: IndexedRecord) -> bool:
    """Whether an index record is on a known-good list (``extra["known_good"]`` true, e.g. NSRL)."""
    return bool(record.extra.get("known_good"))


def explanation_rank(variant: str | None, view: str | None) -> tuple[int, int, int]:
    """How plain an explanation of the evidence a perceptual match is (smaller: plainer), as
    ``(changed region, borders trimmed, rotated or mirrored)``, each 0 or 1: the evidence as it is
    against the known image's main hash ``(0, 0, 0)``; rotated or mirrored (a dihedral
    ``variant`` other than ``orig``) ``(0, 0, 1)``; with borders trimmed on either side (a ``trim``
    query view, or the known image's ``trim`` view) ``(0, 1, 0)``, and also turned ``(0, 1, 1)``; a
    region, crop or small rotation (``top88``/``bottom88``, an inset ``inset@L,T,R,B``, ``crop10``,
    ``rotl4``... on either side) ``(1, ..)``. :meth:`Matcher.preference` ranks one known record's
    matches by this first, by distance second."""
    query = variant or "orig"
    trimmed = query == TRIM_VIEW or query.startswith(TRIM_VIEW + "+") or view == TRIM_VIEW
    turned = query.split("+", 1)[-1] if query.startswith(TRIM_VIEW + "+") else query
    region = query in REGION_VIEWS or inset_box(query) is not None or (view is not None and view != TRIM_VIEW)
    return (int(region), int(trimmed), int(turned in _VARIANT_ORDER and turned != "orig"))


def view_radius(algorithm: Algorithm, radius: int) -> int:
    """The largest distance of a match through a view when plain matches reach ``radius``: the
    algorithm's :attr:`~matcher.algorithms.base.Algorithm.view_max_distance` margin below it."""
    return radius - (int(algorithm.default_max_distance) - int(algorithm.view_max_distance))


def is_view_match(variant: str | None, view: str | None) -> bool:
    """Whether a match of query ``variant`` against known table ``view`` goes through a view (a
    trimmed border, a region, a crop or a small turn on either side), not the image itself or one
    of its exact rotations and flips."""
    changed_region, trimmed, _ = explanation_rank(variant, view)
    return bool(changed_region or trimmed)


def view_rank(view: str | None) -> int:
    """Known-side preference on equal distance: the main hash, then the views in their documented order."""
    if view is None:
        return 0
    return 1 + (KNOWN_VIEWS.index(view) if view in KNOWN_VIEWS else len(KNOWN_VIEWS))


def variant_rank(variant: str | None) -> int:
    """Query-side preference on equal distance: ``orig``, the other dihedral variants, ``trim`` and
    ``trim+<variant>``, then the regions (``top88``, ``bottom88``), then the insets, then anything else."""
    if variant is None:
        return 99
    if variant in _VARIANT_ORDER:
        return _VARIANT_ORDER[variant]
    dihedral = len(_VARIANT_ORDER)
    if variant == TRIM_VIEW:
        return dihedral
    if variant.startswith(TRIM_VIEW + "+") and variant[len(TRIM_VIEW) + 1 :] in _VARIANT_ORDER:
        return dihedral + _VARIANT_ORDER[variant[len(TRIM_VIEW) + 1 :]]
    if variant in REGION_VIEWS:
        return 2 * dihedral + REGION_VIEWS.index(variant)
    if inset_box(variant) is not None:
        return 2 * dihedral + len(REGION_VIEWS)
    return 99


# --------------------------------------------------------------------------------------------------
