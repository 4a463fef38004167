"""An embedded, on-disk index of known-material hash records with exact Hamming-distance search.

:class:`KnownIndex` stores records read from hash lists of child sexual abuse material (CSAM) or of
known-good material (see :class:`~matcher.known.KnownRecord`) under named lists, in one directory:
a SQLite database of the records and, per algorithm, the hash codes that an exhaustive FAISS binary
index searches in memory. Every write commits a new generation atomically; opening checks every
file's checksum. See :mod:`matcher.index.store` for the layout and the atomicity design.
Records added from images also carry *view* hashes (crops, borders trimmed, top/bottom 88 %, small
rotations; :mod:`matcher.views`) in extra per-(algorithm, view) tables, searched with
``index.search(queries, view="crop10")``; that is how a scan finds edited copies.
A set too large for one machine is split by record into shards (:func:`split_index`) and read as
one :class:`ShardedIndex` whose answers equal the unsharded index's (:mod:`matcher.index.shards`).
Both implement :class:`IndexReader`, the read interface that code matching against an index is typed
against (:mod:`matcher.index.reader`).

Typical use::

    index = KnownIndex.create("known", algorithms=("pdq", "phash"))
    index.add(records, list_name="agency-2024", category=None)
    for result in index.search([query_hash]):
        for match in result:
            print(match.record_id, match.distance, match.list_name, match.category)
"""

from .local_table import LocalHit, LocalTable
from .manifest import FORMAT_VERSION
from .reader import IndexReader, LocalReader
from .shards import ShardedIndex, open_any, split_index
from .store import KnownIndex
from .types import AddResult, IndexedRecord, Match, QueryResult

__all__ = [
    "IndexReader",
    "LocalReader",
    "LocalHit",
    "LocalTable",
    "KnownIndex",
    "ShardedIndex",
    "split_index",
    "open_any",
    "AddResult",
    "IndexedRecord",
    "Match",
    "QueryResult",
    "FORMAT_VERSION",
]
