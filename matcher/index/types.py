"""Values the known-material index hands back: add results, stored records, matches, query results."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..hashes import Hash
from ..known import KnownFacts, KnownRecord

__all__ = ["AddResult", "IndexedRecord", "Match", "QueryResult"]


@dataclass(frozen=True, slots=True)
class AddResult:
    """What one :meth:`KnownIndex.add` call did.

    ``added``: records stored. ``duplicates``: records not stored because the same list already held
    a record with the same hashes and digests (or the batch itself repeated it). ``empty``: records
    with neither a hash nor a digest, which carry nothing to match on and are not stored.
    ``generation``: the index generation the call committed (unchanged when nothing was added).
    """

    added: int
    duplicates: int
    empty: int = 0
    generation: int = 0


@dataclass(frozen=True, slots=True)
class IndexedRecord(KnownFacts):
    """One record as stored in the index, with its record id and the list it belongs to: the fields of
    :class:`~matcher.known.KnownFacts` (keyword-only), plus ``id``, ``list_name`` and ``added_at``.

    ``category`` is the raw integer the list gave (``None`` when none was given; ``0`` is a category
    like any other). ``added_at`` is the UTC time of the :meth:`KnownIndex.add` call that stored it,
    ISO 8601 with a ``Z`` suffix. ``hashes`` holds every hash the record arrived with, including
    algorithms the index does not search.
    """

    id: int
    list_name: str
    added_at: str = ""

    def to_known(self) -> KnownRecord:
        """The record as a :class:`~matcher.known.KnownRecord` (for export to a hash list), with its list."""
        return KnownRecord(
            hashes=dict(self.hashes), **self.scalar_facts(), extra=dict(self.extra), list_name=self.list_name
        )


@dataclass(frozen=True, slots=True)
class Match:
    """One indexed record within the distance asked for of a query hash.

    ``distance`` is the Hamming distance between the query and the record's ``algorithm`` hash, or,
    when ``view`` is set, the record's hash of that view (a fixed region of the known image, e.g.
    ``"top88"``; see :mod:`matcher.views`). ``view`` is ``None`` for the record's main hash.
    The other fields are copied from the record so that a report needs no second look-up; the full
    record is available through :meth:`KnownIndex.records`.
    """

    record_id: int
    distance: int
    algorithm: str
    list_name: str
    category: int | None = None
    series: str | None = None
    name: str | None = None
    comment: str | None = None
    view: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``record`` is the record id; ``view`` ``None`` for the main hash)."""
        return {
            "record": self.record_id,
            "distance": self.distance,
            "algorithm": self.algorithm,
            "list": self.list_name,
            "category": self.category,
            "series": self.series,
            "name": self.name,
            "comment": self.comment,
            "view": self.view,
        }


@dataclass(frozen=True, slots=True)
class QueryResult:
    """The answer for one query hash: its matches, nearest first (ties by record id).

    ``skipped_reason`` is set, and ``matches`` empty, when the query was not searched at all — for
    example ``"pdq quality 32 below 50"`` for a PDQ hash whose quality is under the algorithm's
    minimum. An empty ``matches`` with ``skipped_reason`` ``None`` means "searched, nothing found".

    A result behaves like the sequence of its matches: ``len(result)``, ``result[0]``, iteration.
    """

    query: Hash
    matches: tuple[Match, ...] = ()
    skipped_reason: str | None = None

    @property
    def searched(self) -> bool:
        """True when the query was searched (it was not skipped)."""
        return self.skipped_reason is None

    def __len__(self) -> int:
        return len(self.matches)

    def __iter__(self) -> Iterator[Match]:
        return iter(self.matches)

    def __getitem__(self, item: int) -> Match:
        return self.matches[item]  # slices work too and give a tuple

    def __bool__(self) -> bool:
        return bool(self.matches)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the query hex and algorithm, ``matches`` nearest first, ``skipped``."""
        return {
            "query": str(self.query),
            "algorithm": self.query.algorithm,
            "matches": [m.to_dict() for m in self.matches],
            "skipped": self.skipped_reason,
        }
