"""Matching one hashed entry against an index, and ranking what matched.

:class:`Matcher` takes an entry's digests and its frames' query views (from the scanner), asks the
index (anything implementing :class:`~matcher.index.IndexReader`) for digest and perceptual matches,
and builds the entry's records: each matched known record once per frame, the best explanation kept
(:meth:`Matcher.order`), known-good records apart, and the record's status by precedence. The rules
are the ones :mod:`matcher.scan` documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..algorithms import registry
from ..hashes import Hash
from ..index.types import IndexedRecord
from ..pipeline import EntryFeatures, FrameFeatures, with_changed
from ..scan_records import DIGEST_ALGORITHMS, ScanMatch, ScanRecord
from ..variants import VARIANT_NAMES
from ..views import KNOWN_VIEWS, REGION_VIEWS, TRIM_VIEW, known_views_for
from .options import ScanConfig

__all__ = ["Matcher", "is_known_good", "view_rank", "variant_rank", "DIGEST_PREFERENCE"]

_VARIANT_ORDER = {name: rank for rank, name in enumerate(VARIANT_NAMES)}
#: Digest matches of one record are reported once, by the strongest digest that matched.
DIGEST_PREFERENCE = ("sha256", "sha1", "md5")


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

    def match(self, index: Any, base: ScanRecord, entry: EntryFeatures) -> list[ScanRecord]:
        """The records of one read entry (``base``: its record before matching; ``entry``: what the
        pipeline read, each frame's query views in ``variants``), matched against ``index``."""
        frames, error, failed_frame = entry.frames, entry.error, entry.failed_frame
        note, changed, file_notes = entry.note, entry.changed, entry.notes
        digest_matches, known_good = self._digest_matches(index, base)
        per_frame, frame_notes = self._perceptual_matches(index, frames)
        perceptual_ids = {m.record for found in per_frame for m in found.values()}
        known_good |= self._known_good(index, perceptual_ids - known_good)
        shells: list[tuple[ScanRecord, dict[int, ScanMatch], list[str]]] = []
        for frame, found, notes in zip(frames, per_frame, frame_notes):
            record = replace(base, frame=frame.index, width=frame.width, height=frame.height, hashes=dict(frame.hashes),
                             pdq_quality=frame.quality("pdq"), error=with_changed(None, changed))
            shells.append((record, found, notes))
        if error is not None or not frames:
            shells.append((replace(base, frame=failed_frame, error=with_changed(error, changed)), {}, []))
        out = []
        for record, found, notes in shells:
            if note is not None or file_notes:
                notes = [*([note] if note is not None else []), *file_notes, *notes]
            out.append(self._finish(record, digest_matches, found, known_good, notes))
        return out

    def _finish(self, record: ScanRecord, digest_matches: dict[int, ScanMatch], found: dict[int, ScanMatch],
                known_good: set[int], notes: list[str]) -> ScanRecord:
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
            names = ", ".join(f"{m.record} ({m.list}, {m.algorithm} distance {m.distance})"
                              for m in sorted(near_good, key=self.order))
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
        """Sort key: digest matches first, then by distance as a fraction of the hash length, then
        main hashes before views, the scan's algorithm order, and the query view's rank."""
        if match.algorithm in DIGEST_ALGORITHMS:
            return (0, 0.0, 0, DIGEST_PREFERENCE.index(match.algorithm), 0, match.record)
        bits = registry.get(match.algorithm).bit_length
        return (1, match.distance / bits, view_rank(match.view), self._algorithm_rank.get(match.algorithm, 99),
                variant_rank(match.variant), match.record)

    def _digest_matches(self, index: Any, base: ScanRecord) -> tuple[dict[int, ScanMatch], set[int]]:
        found: dict[int, ScanMatch] = {}
        known_good: set[int] = set()
        for kind in DIGEST_PREFERENCE:
            value = getattr(base, kind)
            if not value:
                continue
            for rec in index.lookup_digest(kind, [value]).get(value, []):
                if rec.id not in found:
                    found[rec.id] = ScanMatch(kind, 0, None, rec.id, rec.list_name, rec.category, rec.series)
                if is_known_good(rec):
                    known_good.add(rec.id)
        return found, known_good

    def _known_good(self, index: Any, ids: set[int]) -> set[int]:
        if not ids:
            return set()
        return {rec.id for rec in index.records(sorted(ids)) if is_known_good(rec)}

    def _perceptual_matches(self, index: Any, frames: Sequence[FrameFeatures]) -> tuple[list[dict[int, ScanMatch]], list[list[str]]]:
        found: list[dict[int, ScanMatch]] = [{} for _ in frames]
        notes: list[list[str]] = [[] for _ in frames]
        for algorithm in self.algorithms:
            available = self._views[algorithm.name]
            # known-side table (None: the main hashes) -> the queries searched there and their owners
            targets: dict[str | None, tuple[list[Hash], list[tuple[int, str]]]] = {}
            for position, frame in enumerate(frames):
                variants = frame.variants.get(algorithm.name)
                if not variants:
                    continue
                quality = variants["orig"].quality
                if algorithm.min_quality is not None and quality is not None and quality < algorithm.min_quality:
                    notes[position].append(f"{algorithm.name} not matched: quality {quality} below {algorithm.min_quality}")
                    continue
                for variant, value in variants.items():
                    # the frame's quality decides for all its query views, so they are searched or not together
                    query = value if quality is None else Hash(value.algorithm, value.bits, quality)
                    for target in known_views_for(variant):
                        if target is not None and target not in available:
                            continue
                        queries, owners = targets.setdefault(target, ([], []))
                        queries.append(query)
                        owners.append((position, variant))
            for target, (queries, owners) in targets.items():
                results = index.search(queries, self.config.max_distances[algorithm.name], view=target)
                for (position, variant), result in zip(owners, results):
                    for m in result.matches:
                        candidate = ScanMatch(algorithm.name, m.distance, variant, m.record_id, m.list_name,
                                              m.category, m.series, view=target)
                        held = found[position].get(m.record_id)
                        if held is None or self.order(candidate) < self.order(held):
                            found[position][m.record_id] = candidate
        return found, notes


def is_known_good(record: IndexedRecord) -> bool:
    return bool(record.extra.get("known_good"))


def view_rank(view: str | None) -> int:
    """Known-side preference on equal distance: the main hash, then the views in their documented order."""
    if view is None:
        return 0
    return 1 + (KNOWN_VIEWS.index(view) if view in KNOWN_VIEWS else len(KNOWN_VIEWS))


def variant_rank(variant: str | None) -> int:
    """Query-side preference on equal distance: ``orig``, the other dihedral variants, ``trim`` and
    ``trim+<variant>``, then the regions (``top88``, ``bottom88``), then anything else."""
    if variant is None:
        return 99
    if variant in _VARIANT_ORDER:
        return _VARIANT_ORDER[variant]
    dihedral = len(_VARIANT_ORDER)
    if variant == TRIM_VIEW:
        return dihedral
    if variant.startswith(TRIM_VIEW + "+") and variant[len(TRIM_VIEW) + 1:] in _VARIANT_ORDER:
        return dihedral + _VARIANT_ORDER[variant[len(TRIM_VIEW) + 1:]]
    if variant in REGION_VIEWS:
        return 2 * dihedral + REGION_VIEWS.index(variant)
    return 99


# --------------------------------------------------------------------------------------------------
