"""The one read interface of a known-material index: :class:`IndexReader`.

Everything that matches files against known material (the scan, and the commands and services
built on it) reads an index through this protocol only, so that a single on-disk index, a sharded
one, or a stand-in that answers from one shard or merges every shard's answers are interchangeable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..hashes import Hash
from ..local_features import DEFAULT_RULE, LocalFeatures, MatchRule
from .local_table import LocalHit
from .types import IndexedRecord, QueryResult

__all__ = ["IndexReader", "LocalReader"]


@runtime_checkable
class IndexReader(Protocol):
    """What a reader of a known-material index uses: its facts, its searches and its record look-ups.

    Implemented by :class:`~matcher.index.KnownIndex` (one index directory) and
    :class:`~matcher.index.ShardedIndex` (shards read as one index, answers identical to the unsharded
    index's), and by the Dask engine's shard proxies in :mod:`matcher.dask_engine`: the stand-in that
    answers from one shard on the worker holding it (and records the answers), and the one that replays
    every shard's recorded answers merged, exactly as :class:`~matcher.index.ShardedIndex` merges live
    ones. Code that matches against an index is typed against this protocol, never against one of them.

    Every answer names records by the ids of the (unsharded) index, so ids from :meth:`search`,
    :meth:`nearest` and :meth:`lookup_digest` can be handed to :meth:`records`. Implementations are
    safe to call from several threads at once. ``isinstance(x, IndexReader)`` checks only that the
    names exist (on Python 3.11 it reads the properties, so it raises on a closed index).
    """

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Names of the indexed (searchable) algorithms, in the index's order."""
        ...

    @property
    def views(self) -> Mapping[str, tuple[str, ...]]:
        """The view tables a search can return something from: ``{algorithm: (view, ...)}``."""
        ...

    @property
    def generation(self) -> int:
        """The committed generation being read (a scan checks its workers read the same one)."""
        ...

    def search(
        self, queries: Sequence[Hash], max_distance: int | None = None, *, view: str | None = None
    ) -> list[QueryResult]:
        """Every searchable record within Hamming distance ``<= max_distance`` of each query, in query
        order, matches nearest first (ties by record id); ``max_distance`` ``None``: each algorithm's
        default; ``view``: search that view table instead of the main hashes
        (see :meth:`matcher.index.KnownIndex.search`)."""
        ...

    def nearest(self, queries: Sequence[Hash], k: int, *, view: str | None = None) -> list[QueryResult]:
        """The ``k`` nearest searchable records of each query, nearest first, ties by record id."""
        ...

    def lookup_digest(self, kind: str, hex_values: Iterable[str]) -> dict[str, list[IndexedRecord]]:
        """Records whose ``kind`` digest (``"md5"``, ``"sha1"``, ``"sha256"``) is one of ``hex_values``:
        each value as given maps to its records in id order (an empty list when none)."""
        ...

    def records(self, ids: Iterable[int]) -> list[IndexedRecord]:
        """The stored records with these ids, in the order asked (ids not stored are left out)."""
        ...

    def close(self) -> None:
        """Release what the reader holds open; it cannot be used afterwards."""
        ...


@runtime_checkable
class LocalReader(Protocol):
    """An index that also finds known images by their local features (:mod:`matcher.local_features`):
    :class:`~matcher.index.KnownIndex`, :class:`~matcher.index.ShardedIndex` and the Dask engine's
    shard stand-ins. Apart from :class:`IndexReader` so that a reader without local features stays a
    reader; a scan runs its local stage only against an index that is one of these."""

    @property
    def local_records(self) -> int:
        """Records holding local features."""
        ...

    def find_local(
        self, frames: Sequence[LocalFeatures], rule: MatchRule = DEFAULT_RULE, max_candidates: int | None = None
    ) -> list[list[LocalHit]]:
        """The known records seen in each frame (see :meth:`matcher.index.KnownIndex.find_local`)."""
        ...
