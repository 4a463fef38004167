"""In-memory side of one committed generation: per-algorithm code tables, FAISS indexes, and exact search.

For each algorithm a generation stores three ``.npy`` arrays (read with ``allow_pickle=False``):
``<alg>.ids.npy`` (int64 record ids, strictly ascending), ``<alg>.codes.npy`` (uint8, one row of
``bit_length / 8`` bytes per record: the :attr:`Hash.bits`) and ``<alg>.quality.npy`` (int16, ``-1``
when the record's hash has no known quality). The searchable rows go into a
``faiss.IndexBinaryFlat`` (exhaustive, exact) when a search first needs it; positions map back to
record ids through ``searchable_ids``. A view table (``<alg>@<view>.*.npy``: hashes of a fixed region of the known
images, see :mod:`matcher.views`) is the same kind of table, built and searched by the same code.

Large tables (:data:`~matcher.index.mih.MIN_CODES` codes or more, bit length a multiple of 64)
also get a multi-index hashing structure (:mod:`matcher.index.mih`, chunks of about ``log2(N)``
bits), used for range searches whenever its rule says it beats the flat scan (its arrays may be memory
maps of the saved structure, shared by every process that opens the index); FAISS is the path for
small tables, for radii where the flat scan wins, and for the ``nearest`` search. Both paths give identical,
exact answers. :func:`range_search` is the one range search (the index's and ``matcher cluster``'s);
:func:`range_hits` is it as per-query lists.

Exactness: FAISS ``range_search`` on binary indexes returns distances strictly below the radius, so
``max_distance + 1`` is passed. Results are sorted by (distance, record id). ``nearest`` first asks
FAISS for the k-th smallest distance, then range-searches up to it so ties at the k-th place are
resolved by record id rather than by FAISS's heap order.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import HashFormatError, UsageError
from ..hashes import Hash, code_matrix

if TYPE_CHECKING:  # imported where used: numba (MIH's kernels) is only needed for large tables, FAISS
    from .mih import MultiIndex  # for small ones, ``nearest`` and wide radii

#: Tables with this many searchable codes or more get the multi-index structure; equal to
#: :data:`matcher.index.mih.MIN_CODES` (a test checks), kept here so that opening a small index
#: (``matcher index info``) does not import numba.
MIH_MIN_CODES = 20_000

__all__ = [
    "AlgorithmTable",
    "empty_table",
    "knn_hits",
    "query_codes",
    "range_hits",
    "range_search",
    "search_threads",
    "searchable_mask",
]

#: Queries per FAISS call; bounds the memory of one range-search result.
QUERY_CHUNK = 4096
#: Queries per multi-index call (its working memory is bounded on its own, see
#: :data:`~matcher.index.mih.SEARCH_MEMORY`; this bounds the arrays of one batch's hits).
MIH_QUERY_CHUNK = 65536


def search_threads() -> int:
    """The threads one search may use: FAISS's OpenMP setting once FAISS is loaded (scan workers set it
    to 1, see :func:`matcher.batch.single_threaded_faiss`), else the number OpenMP starts with
    (``OMP_NUM_THREADS``, else the processors this process may run on), without loading FAISS: a
    search the multi-index answers need not pay for importing it."""
    faiss = sys.modules.get("faiss")
    if faiss is not None:
        return max(1, int(faiss.omp_get_max_threads()))
    setting = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def searchable_mask(quality: np.ndarray, min_quality: int | None) -> np.ndarray:
    """Rows a search may return: quality unknown (-1) or at least ``min_quality``."""
    if min_quality is None:
        return np.ones(quality.shape[0], dtype=bool)
    return (quality < 0) | (quality >= min_quality)


class _Flat:
    """The FAISS flat index over a table's searchable codes, made on first use (thread-safe).

    Large tables are range-searched by their multi-index structure, so most processes never need
    this private copy of the codes; small tables, ``nearest`` and radii where the flat scan wins do.
    """

    __slots__ = ("_bit_length", "_codes", "_index", "_lock")

    def __init__(self, bit_length: int, codes: np.ndarray) -> None:
        self._bit_length = bit_length
        self._codes = codes
        self._index: Any = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._index is not None

    def get(self) -> Any:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    import faiss

                    index = faiss.IndexBinaryFlat(self._bit_length)
                    index.add(np.ascontiguousarray(self._codes))
                    self._index = index
        return self._index


@dataclass(frozen=True, slots=True)
class AlgorithmTable:
    """The stored hashes of one algorithm in one generation, and the search structures over the searchable ones.

    ``ids``, ``codes`` and ``quality`` hold every record with a hash of this algorithm (sorted by id);
    ``searchable_ids`` and ``searchable_codes`` the rows a search may return (the same arrays when
    every row may be returned), in the position order of :attr:`index` and :attr:`mih`. Any of the
    arrays may be read-only memory maps of the generation's files (see :mod:`matcher.index.store`).
    """

    name: str
    bit_length: int
    min_quality: int | None
    ids: np.ndarray
    codes: np.ndarray
    quality: np.ndarray
    searchable_ids: np.ndarray
    searchable_codes: np.ndarray
    mih: MultiIndex | None = None  # multi-index hashing over the searchable codes, for large tables
    flat: _Flat | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        name: str,
        bit_length: int,
        min_quality: int | None,
        ids: np.ndarray,
        codes: np.ndarray,
        quality: np.ndarray,
        *,
        searchable: tuple[np.ndarray, np.ndarray] | None = None,
        mih: MultiIndex | None = None,
    ) -> AlgorithmTable:
        """Make the table from the three arrays, and its multi-index structure when it is large.

        ``searchable``: the ``(ids, codes)`` of the searchable rows when they were saved (else taken
        from the arrays through the quality gate: a copy when it drops rows). ``mih``: a structure
        loaded over those codes (:meth:`~matcher.index.mih.MultiIndex.from_arrays`) instead of
        building one. The FAISS flat index is made on first use (:attr:`index`).
        """
        if searchable is not None:
            searchable_ids, searchable_codes = searchable
        else:
            mask = searchable_mask(quality, min_quality)
            if mask.all():
                searchable_ids, searchable_codes = ids, codes
            else:
                searchable_ids, searchable_codes = ids[mask], np.ascontiguousarray(codes[mask])
        if mih is None and searchable_ids.shape[0] >= MIH_MIN_CODES and bit_length % 64 == 0:
            from .mih import MultiIndex

            mih = MultiIndex.build(searchable_codes)
        for array in (ids, codes, quality, searchable_ids, searchable_codes):
            array.flags.writeable = False
        flat = _Flat(bit_length, searchable_codes) if searchable_ids.shape[0] else None
        return cls(name, bit_length, min_quality, ids, codes, quality, searchable_ids, searchable_codes, mih, flat)

    @property
    def index(self) -> Any:
        """The ``faiss.IndexBinaryFlat`` over the searchable codes, made on first use (a private copy
        of them); ``None`` when nothing is searchable."""
        return None if self.flat is None else self.flat.get()

    @property
    def flat_built(self) -> bool:
        """Whether :attr:`index` has been made (range searches a large table's multi-index answers
        never make it)."""
        return self.flat is not None and self.flat.built

    @property
    def count(self) -> int:
        """Records with a hash of this algorithm."""
        return int(self.ids.shape[0])

    @property
    def searchable(self) -> int:
        """Records a search can return."""
        return int(self.searchable_ids.shape[0])


def empty_table(name: str, bit_length: int, min_quality: int | None) -> AlgorithmTable:
    """A table with no records."""
    return AlgorithmTable.build(
        name,
        bit_length,
        min_quality,
        np.zeros(0, dtype=np.int64),
        np.zeros((0, bit_length // 8), dtype=np.uint8),
        np.zeros(0, dtype=np.int16),
    )


def query_codes(table: AlgorithmTable, queries: Sequence[Hash]) -> np.ndarray:
    """The queries' bits as a uint8 matrix; :class:`HashFormatError` for a wrong length."""
    width = table.bit_length // 8
    for query in queries:
        if len(query.bits) != width:
            raise HashFormatError(
                f"{table.name} query hash has {len(query.bits) * 8} bits, the index holds {table.bit_length}-bit hashes"
            )
    return code_matrix((q.bits for q in queries), width)


def range_search(
    table: AlgorithmTable, codes: np.ndarray, max_distance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every hit with distance ``<= max_distance`` of the query rows ``codes``, as three int64 arrays
    ``(query row, record id, distance)`` sorted by query row, then distance, then record id.

    The one exact range search of the index and of ``matcher cluster``: multi-index hashing when
    the table has it and its rule (:meth:`~matcher.index.mih.MultiIndex.beats_flat`) says it beats the flat
    scan, FAISS's flat scan otherwise. Queries go in batches (:data:`QUERY_CHUNK` to FAISS,
    :data:`MIH_QUERY_CHUNK` to MIH, whose working memory is bounded by
    :data:`~matcher.index.mih.SEARCH_MEMORY`).
    """
    n = codes.shape[0]
    empty = np.zeros(0, dtype=np.int64)
    if table.searchable == 0 or n == 0 or max_distance < 0:
        return empty, empty, empty
    use_mih = table.mih is not None and table.mih.beats_flat(int(max_distance))
    step = MIH_QUERY_CHUNK if use_mih else QUERY_CHUNK
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, n, step):
        part = np.ascontiguousarray(codes[start : start + step])
        if table.mih is not None and use_mih:
            lims, positions, distances = table.mih.range_search(part, int(max_distance), threads=search_threads())
        else:
            lims, distances, positions = table.index.range_search(part, int(max_distance) + 1)
        counts = np.diff(np.asarray(lims, dtype=np.int64)).astype(np.int64)
        owners = np.repeat(np.arange(start, start + part.shape[0], dtype=np.int64), counts)
        record_ids = table.searchable_ids[positions].astype(np.int64)
        dist = distances.astype(np.int64)
        order = np.lexsort((record_ids, dist, owners))
        parts.append((owners[order], record_ids[order], dist[order]))
    if len(parts) == 1:
        return parts[0]
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def range_hits(table: AlgorithmTable, codes: np.ndarray, max_distance: int) -> list[list[tuple[int, int]]]:
    """For each query row, every ``(record_id, distance)`` with distance ``<= max_distance``, sorted
    by distance then record id (:func:`range_search`, as one list per query)."""
    n = codes.shape[0]
    out: list[list[tuple[int, int]]] = []
    for start in range(0, n, MIH_QUERY_CHUNK):  # bounds the arrays held besides the lists
        part = codes[start : start + MIH_QUERY_CHUNK]
        owners, record_ids, dist = range_search(table, part, max_distance)
        bounds = np.searchsorted(owners, np.arange(part.shape[0] + 1)).tolist()
        ids_list, dist_list = record_ids.tolist(), dist.tolist()
        out.extend(list(zip(ids_list[a:b], dist_list[a:b])) for a, b in itertools.pairwise(bounds))
    return out


def knn_hits(table: AlgorithmTable, codes: np.ndarray, k: int) -> list[list[tuple[int, int]]]:
    """For each query row, the ``k`` nearest ``(record_id, distance)``, ties broken by record id."""
    n = codes.shape[0]
    if k < 1:
        raise UsageError(f"k must be at least 1, not {k}")
    if table.searchable == 0 or n == 0:
        return [[] for _ in range(n)]
    kk = min(int(k), table.searchable)
    out: list[list[tuple[int, int]]] = []
    for start in range(0, n, QUERY_CHUNK):
        part = np.ascontiguousarray(codes[start : start + QUERY_CHUNK])
        distances, _ = table.index.search(part, kk)
        kth = distances[:, kk - 1].astype(np.int64)
        chunk_out: list[list[tuple[int, int]]] = [[] for _ in range(part.shape[0])]
        for value in np.unique(kth):
            rows = np.flatnonzero(kth == value)
            hits = range_hits(table, part[rows], int(value))
            for row, found in zip(rows.tolist(), hits):
                chunk_out[row] = found[:kk]
        out.extend(chunk_out)
    return out
