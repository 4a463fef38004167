"""The :class:`KnownIndex`: an embedded, on-disk index of known-material hash records.

On-disk layout (one directory)::

    index/
      manifest.json          current generation, format version, algorithm parameters, counts,
                             size + SHA-256 of every file of the generation, SHA-256 of itself
      write.lock             advisory lock (fcntl.flock) serialising writers across processes
      gen-000007/            the current generation; never modified once committed
        records.sqlite       records, lists, hashes, digests, category label schemes
        pdq.ids.npy          int64 record ids, ascending
        pdq.codes.npy        uint8 codes, one row of bit_length/8 bytes per record
        pdq.quality.npy      int16 quality, -1 when unknown
        phash.ids.npy ...    the same three arrays for every indexed algorithm
        pdq@top88.ids.npy .. the same three arrays for each view table (format 2): hashes of a fixed
                             region of the known images (see :mod:`matcher.views`), only for records
                             that carry that view; listed under ``views`` in the manifest
        pdq.mih.order.npy    the saved multi-index structure of a large table (``mih.widths``,
        pdq.mih.offsets.npy  ``mih.order``, ``mih.offsets``; plus ``searchable.ids`` and
                             ``searchable.codes`` when the quality gate drops rows), listed with
                             checksums under ``structures`` in the manifest

View tables let a search find edited copies (crops, letterbox borders, caption banners) whose
full-frame hash is far from the original's: :meth:`KnownIndex.search` with ``view="top88"`` searches
that table instead of the main one. They are written, checksummed, hard-linked when unchanged and
pruned on removal exactly like the main tables. Their hashes live only in the arrays (the SQLite
records hold the main hashes), so hash-list exports carry none.

Atomic writes: every write (:meth:`KnownIndex.add`, removals, label changes) builds a complete new
generation in ``tmp-<gen>-<random>/`` (the SQLite file is copied from the current generation and
changed in one transaction, the arrays of changed algorithms are rewritten, unchanged ones are
hard-linked), fsyncs every file and the directory, renames it to ``gen-<gen>/``, fsyncs the index
directory, and only then replaces ``manifest.json`` (temp file + fsync + ``os.replace`` + directory
fsync). The manifest replacement is the commit point: a crash before it leaves the previous manifest
naming the previous, untouched generation; a crash after it leaves the new one complete. Old
generations, ``tmp-*`` directories and stray manifest temp files are removed after the switch, and
leftovers of a crash are removed by the next write. Readers never delete anything.

Cost: each write copies the SQLite file and rewrites the code arrays of the algorithms it changes,
so a write costs I/O in proportion to the index size. Add big batches in one call (one generation
per call, not per record).

Shared memory: every table of :data:`~matcher.index.search.MIH_MIN_CODES` searchable codes or more
gets a multi-index structure (:mod:`matcher.index.mih`). It is built at commit and saved beside the
arrays; opening maps it and every array of :data:`MMAP_MIN_BYTES` or more read-only
(``np.load(..., mmap_mode="r")``, after the checksum pass), so processes that open the same index
(scan workers, Dask workers, shards) share one copy of the codes and the structure through the page
cache instead of each loading and building its own. The FAISS flat index, a private copy of the
codes, is made only when a search needs it (small tables, ``nearest``). An index written before
structures were saved builds them on open, as before, and saves them at its next write.

Opening verifies the manifest's own checksum, the format version, the algorithm parameters against
the registry, every file's size and SHA-256, the arrays' dtypes, shapes and counts, and the SQLite
schema; anything wrong raises :class:`~matcher.errors.IndexStoreError` naming the problem. Hashing
runs at about 1 GB/s on the development machine (SHA-256 with CPU support): an index of a million
PDQ records (259 MB: 149 MB SQLite, 42 MB arrays, 68 MB saved search structure) opens in 0.18 s
with verification and 0.014 s without, numba imported beforehand (0.38 s and 0.25 s when the
structure was built on open). ``verify=False`` skips the hashing (sizes, shapes and counts are still
checked, and a saved structure's row numbers and bucket offsets are checked to stay inside its arrays).
``verified=`` (another open's :attr:`KnownIndex.verified_files`) skips the hashing of the files that
open verified and that are unchanged since (same device, inode, size and file times): a scan's
workers open the index its parent verified without hashing it again.

Threads: searches, look-ups and exports may run from many threads on one :class:`KnownIndex`. Each
committed generation is an immutable snapshot (code tables and search structures plus one read-only SQLite
connection shared under a lock); a write or :meth:`KnownIndex.reload` swaps in the new snapshot,
searches already running finish on the old one, and the old one's connection is closed when the last
of them ends (each read leases its snapshot). Writes are serialised by a thread lock and, across
processes, by ``write.lock``; :meth:`KnownIndex.create` checks under that lock that no other
creator got there first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..algorithms import registry
from ..errors import HashFormatError, IndexStoreError, UsageError
from ..hashes import Hash, code_matrix
from ..known import KnownRecord
from ..local_features import DEFAULT_RULE, LocalFeatures, MatchRule
from . import database as db
from .local_table import LOCAL_ARRAYS, LOCAL_PREFIX, LocalHit, LocalTable, local_file_names
from .local_table import MAX_CANDIDATES as MAX_LOCAL_CANDIDATES
from .manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    VIEW_SEPARATOR,
    FileEntry,
    FileStamp,
    Manifest,
    algorithm_params,
    fsync_dir,
    fsync_file,
    known_view_names,
    read_manifest,
    sha256_file,
    table_stem,
    write_manifest,
)
from .search import AlgorithmTable, empty_table, knn_hits, query_codes, range_hits, searchable_mask
from .types import AddResult, IndexedRecord, Match, QueryResult

if TYPE_CHECKING:  # imported where used: numba (MIH's kernels) is only needed for large tables
    from .mih import MultiIndex

try:  # POSIX advisory locks; elsewhere writers are serialised within the process only
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["KnownIndex", "LOCK_NAME", "SHARDS_NAME", "sharded_index_refusal", "unknown_list_message"]

log = logging.getLogger(__name__)

#: Name of the writers' lock file at the top of an index directory.
LOCK_NAME = "write.lock"
#: Name of the sharded index's manifest at the top of its directory (see :mod:`matcher.index.shards`).
SHARDS_NAME = "shards.json"
_GEN_PREFIX = "gen-"
_TMP_PREFIX = "tmp-"
_ADD_CHUNK = 5000
_ARRAY_SUFFIXES = ("ids", "codes", "quality")
_ARRAY_DTYPES: dict[str, np.dtype[Any]] = {
    "ids": np.dtype(np.int64),
    "codes": np.dtype(np.uint8),
    "quality": np.dtype(np.int16),
}
#: The saved multi-index structure of a large table (``<stem>.mih.order.npy`` ...), and the
#: searchable rows when the quality gate drops some (so that they need not be copied on open).
_MIH_SUFFIXES = ("mih.widths", "mih.order", "mih.offsets")
_SEARCHABLE_SUFFIXES = ("searchable.ids", "searchable.codes")
_STRUCTURE_DTYPES: dict[str, np.dtype[Any]] = {
    "mih.widths": np.dtype(np.int64),
    "mih.order": np.dtype(np.int32),
    "mih.offsets": np.dtype(np.int32),
    "searchable.ids": np.dtype(np.int64),
    "searchable.codes": np.dtype(np.uint8),
}
#: Arrays of at least this many bytes are opened as read-only memory maps (shared through the page
#: cache by every process that opens the index); smaller ones are read into memory, so that a memory
#: map's file descriptor is spent only where it saves memory.
MMAP_MIN_BYTES = 256 << 10


def _checkpoint(step: str) -> None:
    """Called between the steps of a write; does nothing (tests replace it to simulate crashes).

    Steps, in order: ``temp-created``, ``database-written``, ``arrays-written``,
    ``generation-synced``, ``generation-renamed``, ``manifest-temp-written``, ``manifest-replaced``.
    """


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _array_name(algorithm: str, suffix: str) -> str:
    return f"{algorithm}.{suffix}.npy"


def _structure_files(stem: str, count: int, searchable: int) -> list[str]:
    """The files of a table's saved search structure."""
    suffixes = _MIH_SUFFIXES + (_SEARCHABLE_SUFFIXES if searchable != count else ())
    return [_array_name(stem, suffix) for suffix in suffixes]


def _expected_structures(manifest: Manifest) -> list[str]:
    """The structure files a manifest must list: the whole set of each table it saves one for."""
    tables = [(name, counts) for name, counts in manifest.algorithms.items()]
    tables += [
        (table_stem(algorithm, view), counts)
        for algorithm, named in manifest.views.items()
        for view, counts in named.items()
    ]
    names = []
    for stem, counts in tables:
        if _array_name(stem, _MIH_SUFFIXES[1]) in manifest.structures:
            names.extend(_structure_files(stem, int(counts["count"]), int(counts["searchable"])))
    return names


def _expected_files(
    algorithms: Iterable[str], views: Mapping[str, Iterable[str]] | None = None, local: bool = False
) -> list[str]:
    names = [db.DB_NAME, *(local_file_names() if local else ())]
    for algorithm in algorithms:
        names.extend(_array_name(algorithm, suffix) for suffix in _ARRAY_SUFFIXES)
    for algorithm, view_names in (views or {}).items():
        for view in view_names:
            names.extend(_array_name(table_stem(algorithm, view), suffix) for suffix in _ARRAY_SUFFIXES)
    return names


ViewTables = dict[str, dict[str, AlgorithmTable]]


class _FileLock:
    """Exclusive advisory lock on ``write.lock`` for the duration of a write."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def __enter__(self) -> _FileLock:
        if fcntl is not None:
            try:
                fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise IndexStoreError(f"{self._path}: cannot open the write lock ({exc})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException as exc:  # interrupted while waiting: the descriptor is not kept
                os.close(fd)
                if isinstance(exc, OSError):
                    raise IndexStoreError(f"{self._path}: cannot take the write lock ({exc})") from None
                raise
            self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None


class _Lease:
    """Who reads one snapshot's database: its connection is closed once the snapshot is retired
    (replaced by a newer generation, or the index closed) and no operation reads it any more.

    An operation :meth:`acquire` s the lease before it uses the snapshot and :meth:`release` s it
    after, so a reload never closes a connection under a query that is still running; a retired
    snapshot no one reads is closed at once, so reloads in a long-running service leak nothing.
    """

    __slots__ = ("_conn", "_query_lock", "_guard", "_users", "_retired", "_closed")

    def __init__(self, conn: sqlite3.Connection, query_lock: threading.Lock) -> None:
        self._conn = conn
        self._query_lock = query_lock
        # re-entrant: an unfinished record iterator dropped in a garbage collection releases its lease
        # from whatever the collecting thread was doing, possibly inside this lease's own methods
        self._guard = threading.RLock()
        self._users = 0
        self._retired = False
        self._closed = False

    def acquire(self) -> bool:
        """Count one more reader; ``False`` (nothing counted) when the connection is already closed."""
        with self._guard:
            if self._closed:
                return False
            self._users += 1
            return True

    def release(self) -> None:
        """Count one reader less; closes the connection when it was the last of a retired snapshot."""
        with self._guard:
            self._users -= 1
            if self._retired and self._users == 0:
                self._close()

    def retire(self) -> None:
        """Mark the snapshot replaced (or its index closed): close now if unused, else at the last release."""
        with self._guard:
            self._retired = True
            if self._users == 0:
                self._close()

    @property
    def closed(self) -> bool:
        """Whether the connection has been closed."""
        return self._closed

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            with self._query_lock:
                self._conn.close()


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One committed generation, loaded: immutable once built.

    ``tables``: the main table of each algorithm; ``views``: algorithm -> view -> view table.
    ``lease`` counts the operations reading ``conn`` and closes it once the snapshot is retired.
    """

    root: Path
    manifest: Manifest
    gen_dir: Path
    tables: dict[str, AlgorithmTable]
    views: ViewTables
    conn: sqlite3.Connection
    lock: threading.Lock
    labels: dict[str, dict[int, str]]
    default_scheme: str | None
    lease: _Lease
    stamps: tuple[FileStamp, ...] = ()
    local: LocalTable | None = None

    @classmethod
    def build(
        cls,
        root: Path,
        manifest: Manifest,
        gen_dir: Path,
        tables: dict[str, AlgorithmTable],
        views: ViewTables,
        conn: sqlite3.Connection,
        labels: dict[str, dict[int, str]],
        default_scheme: str | None,
        stamps: tuple[FileStamp, ...] = (),
        local: LocalTable | None = None,
    ) -> _Snapshot:
        """A snapshot owning ``conn`` (closed when the snapshot is retired and unused); ``stamps``: the
        settled stamps of its verified files (see :attr:`KnownIndex.verified_files`)."""
        lock = threading.Lock()
        return cls(
            root,
            manifest,
            gen_dir,
            tables,
            views,
            conn,
            lock,
            labels,
            default_scheme,
            _Lease(conn, lock),
            stamps,
            local,
        )

    def query(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a database helper on the shared read-only connection under its lock.

        Callers hold the snapshot's :attr:`lease` (:meth:`KnownIndex._reading`), so that the connection
        is not closed under them when a newer generation replaces this one.
        """
        with self.lock:
            try:
                return fn(self.conn, *args)
            except sqlite3.Error as exc:  # includes use after close()
                raise IndexStoreError(f"{self.gen_dir / db.DB_NAME}: database error ({exc})") from None


class _Vanished(Exception):
    """A file named by the manifest disappeared (possibly replaced by a concurrent writer)."""


def _load_array(path: Path) -> np.ndarray:
    """One ``.npy`` array of a generation: a read-only memory map from :data:`MMAP_MIN_BYTES`, else read
    into memory (its size and checksum are checked by :func:`_load_generation`)."""
    try:
        if path.stat().st_size >= MMAP_MIN_BYTES:
            mapped: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
            return mapped
        array: np.ndarray = np.load(path, allow_pickle=False)
        return array
    except FileNotFoundError:
        raise _Vanished(str(path)) from None
    except Exception as exc:  # noqa: BLE001 - numpy lets a broken header's tokenizer errors out, not only ValueError
        raise IndexStoreError(f"{path}: cannot read array ({type(exc).__name__}: {exc})") from None


def _hash_files(gen_dir: Path, names: Sequence[str], entries: Mapping[str, FileEntry]) -> str | None:
    """Hash the files ``names`` of ``gen_dir`` in turn; the first that differs from its manifest
    ``entries`` (its error message), or ``None``. Raises :class:`_Vanished` for a missing file."""
    for name in names:
        path = gen_dir / name
        try:
            actual = sha256_file(path)  # streamed: the pages stay in the shared page cache
        except FileNotFoundError:
            raise _Vanished(str(path)) from None
        if actual.size != entries[name].size:
            return f"{path}: {actual.size} bytes, the manifest says {entries[name].size} (truncated or altered)"
        if actual.sha256 != entries[name].sha256:
            return f"{path}: SHA-256 checksum mismatch (file corrupt or altered)"
    return None


def _load_generation(root: Path, manifest: Manifest, verify: bool, verified: frozenset[FileStamp]) -> _Snapshot:
    gen_dir = root / manifest.directory
    if not gen_dir.is_dir():
        raise _Vanished(str(gen_dir))
    expected = _expected_files(manifest.algorithms, manifest.views, bool(manifest.local))
    listed = set(manifest.files)
    if set(expected) != listed:
        raise IndexStoreError(
            f"{root / MANIFEST_NAME}: manifest lists files {sorted(listed)}, expected {sorted(expected)}"
        )
    structures = _expected_structures(manifest)
    if set(structures) != set(manifest.structures):
        raise IndexStoreError(
            f"{root / MANIFEST_NAME}: manifest lists search structures {sorted(manifest.structures)}, "
            f"expected {sorted(structures)}"
        )
    entries = {**manifest.files, **manifest.structures}
    now = time.time_ns()
    stamps: dict[str, FileStamp] = {}
    for name in expected + structures:
        path = gen_dir / name
        try:
            status = path.stat()  # stamped before it is hashed: a change while hashing changes the stamp
        except FileNotFoundError:
            raise _Vanished(str(path)) from None
        if status.st_size != entries[name].size:
            raise IndexStoreError(
                f"{path}: {status.st_size} bytes, the manifest says {entries[name].size} (truncated or altered)"
            )
        if verify:
            stamps[name] = FileStamp.of(path, status)
    # hashed here: every file, unless verification is off or another process verified it unchanged since;
    # in a thread, while this one loads and checks the arrays and the database (numpy, SHA-256 and SQLite
    # release the interpreter lock), so that the hashing costs little more than the loading. Nothing of
    # the generation is returned before every checksum has matched; a mismatch is reported in
    # preference to whatever a damaged file made the loading fail with.
    to_hash = [name for name in stamps if stamps[name] not in verified]
    hashing = _HashingThread(gen_dir, to_hash, entries)
    try:
        loaded = _load_checked(root, manifest, gen_dir, verify)
    except BaseException:
        hashing.raise_mismatch()
        raise
    try:
        hashing.raise_mismatch()
    except BaseException:
        loaded[4].close()
        raise
    tables, views, labels, default_scheme, conn, local = loaded
    handed = tuple(stamp for stamp in stamps.values() if stamp.settled(now))
    return _Snapshot.build(root, manifest, gen_dir, tables, views, conn, labels, default_scheme, handed, local)


class _HashingThread:
    """:func:`_hash_files` run in a daemon thread from construction; :meth:`raise_mismatch` waits."""

    def __init__(self, gen_dir: Path, names: Sequence[str], entries: Mapping[str, FileEntry]) -> None:
        self._outcome: list[str | None | BaseException] = []
        self._thread: threading.Thread | None = None
        if names:
            self._thread = threading.Thread(
                target=self._run, args=(gen_dir, names, entries), name="matcher-index-verify", daemon=True
            )
            self._thread.start()

    def _run(self, gen_dir: Path, names: Sequence[str], entries: Mapping[str, FileEntry]) -> None:
        try:
            self._outcome.append(_hash_files(gen_dir, names, entries))
        except BaseException as exc:  # noqa: BLE001 - handed to the opening thread
            self._outcome.append(exc)

    def raise_mismatch(self) -> None:
        """Wait for the hashing; raise :class:`IndexStoreError` for a file that differs from the
        manifest (:class:`_Vanished` for one that disappeared)."""
        if self._thread is None:
            return
        self._thread.join()
        outcome = self._outcome[0]
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is not None:
            raise IndexStoreError(outcome)


def _load_checked(
    root: Path, manifest: Manifest, gen_dir: Path, verify: bool
) -> tuple[
    dict[str, AlgorithmTable], ViewTables, dict[str, dict[int, str]], str | None, sqlite3.Connection, LocalTable | None
]:
    """The tables, views, labels, default scheme, open database and local features of a generation, checked for
    everything but the checksums (``verify``: the checksums are checked meanwhile, else a saved
    structure's bounds are checked here)."""
    db_path = gen_dir / db.DB_NAME
    tables: dict[str, AlgorithmTable] = {}
    for algorithm, params in manifest.algorithms.items():
        tables[algorithm] = _load_table(gen_dir, manifest, algorithm, None, params, params, verify)
    views: ViewTables = {}
    for algorithm, view_counts in manifest.views.items():
        for view, counts in sorted(view_counts.items()):
            views.setdefault(algorithm, {})[view] = _load_table(
                gen_dir, manifest, algorithm, view, manifest.algorithms[algorithm], counts, verify
            )
    local = _load_local(gen_dir, manifest)
    if not db_path.exists():
        raise _Vanished(str(db_path))
    with db.closed_on_failure(db.open_readonly(db_path), str(db_path)) as conn:
        db.check_integrity_light(conn, str(db_path))
        labels = db.category_labels(conn)
        default_scheme = db.get_meta(conn, "default_category_scheme")
        total = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    if int(total) != manifest.records:
        conn.close()
        raise IndexStoreError(f"{db_path}: holds {total} records, the manifest says {manifest.records}")
    return tables, views, labels, default_scheme, conn, local


def _load_local(gen_dir: Path, manifest: Manifest) -> LocalTable | None:
    """The generation's local-feature table (``None`` when it holds none), checked against the manifest."""
    if not manifest.local:
        return None
    arrays = {name: _load_array(gen_dir / f"{LOCAL_PREFIX}.{name}.npy") for name in LOCAL_ARRAYS}
    return LocalTable.from_arrays(arrays, manifest.local, str(gen_dir))


def _load_table(
    gen_dir: Path,
    manifest: Manifest,
    algorithm: str,
    view: str | None,
    params: Mapping[str, Any],
    counts: Mapping[str, Any],
    verify: bool,
) -> AlgorithmTable:
    """Load and check the three arrays of one table (``view`` ``None``: the algorithm's main table).

    ``verify``: whether every file's SHA-256 is checked (by the open, or, unchanged since, by another
    process), else a saved structure's bounds are checked here."""
    stem = table_stem(algorithm, view)
    arrays = {}
    for suffix in _ARRAY_SUFFIXES:
        name = _array_name(stem, suffix)
        array = _load_array(gen_dir / name)
        if array.dtype != _ARRAY_DTYPES[suffix]:
            raise IndexStoreError(f"{gen_dir / name}: dtype {array.dtype}, expected {_ARRAY_DTYPES[suffix]}")
        arrays[suffix] = array
    ids, codes, quality = arrays["ids"], arrays["codes"], arrays["quality"]
    n = int(counts.get("count", -1))
    width = int(params["code_bytes"])
    if ids.shape != (n,) or codes.shape != (n, width) or quality.shape != (n,):
        raise IndexStoreError(
            f"{gen_dir}: {stem} arrays have shapes {ids.shape}, {codes.shape}, {quality.shape}; "
            f"the manifest says {n} records of {width} bytes"
        )
    if n > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        raise IndexStoreError(f"{gen_dir / _array_name(stem, 'ids')}: record ids are not ascending")
    bit_length, min_quality = int(params["bit_length"]), params["min_quality"]
    searchable = int(counts.get("searchable", -1))
    mask = searchable_mask(quality, min_quality)
    if int(np.count_nonzero(mask)) != searchable:
        raise IndexStoreError(f"{gen_dir}: {stem} searchable count differs from the manifest")
    if _array_name(stem, _MIH_SUFFIXES[1]) not in manifest.structures:  # none saved: built here, as before
        return AlgorithmTable.build(algorithm, bit_length, min_quality, ids, codes, quality)
    saved = {}
    for suffix in _MIH_SUFFIXES + (_SEARCHABLE_SUFFIXES if searchable != n else ()):
        name = _array_name(stem, suffix)
        array = _load_array(gen_dir / name)
        if array.dtype != _STRUCTURE_DTYPES[suffix]:
            raise IndexStoreError(f"{gen_dir / name}: dtype {array.dtype}, expected {_STRUCTURE_DTYPES[suffix]}")
        saved[suffix] = array
    if searchable == n:
        searchable_ids, searchable_codes = ids, codes
    else:
        searchable_ids, searchable_codes = saved["searchable.ids"], saved["searchable.codes"]
        if searchable_ids.shape != (searchable,) or searchable_codes.shape != (searchable, width):
            raise IndexStoreError(
                f"{gen_dir}: {stem} searchable rows have shapes {searchable_ids.shape}, {searchable_codes.shape}; "
                f"the manifest says {searchable} of {width} bytes"
            )
        if not np.array_equal(searchable_ids, ids[mask]):
            raise IndexStoreError(f"{gen_dir / _array_name(stem, 'searchable.ids')}: not the searchable record ids")
    from .mih import MultiIndex  # numba: only for tables large enough to have a saved structure

    widths, order, offsets = saved["mih.widths"], saved["mih.order"], saved["mih.offsets"]
    try:
        if widths.ndim != 1:
            raise ValueError(f"chunk widths of shape {widths.shape}")
        mih = MultiIndex.from_arrays(searchable_codes, widths.tolist(), order, offsets)
    except ValueError as exc:
        raise IndexStoreError(f"{gen_dir}: {stem} saved search structure does not fit its codes ({exc})") from None
    if not verify:  # unverified arrays must at least keep the search inside them
        _check_mih_bounds(gen_dir, stem, mih)
    return AlgorithmTable.build(
        algorithm, bit_length, min_quality, ids, codes, quality, searchable=(searchable_ids, searchable_codes), mih=mih
    )


def _check_mih_bounds(gen_dir: Path, stem: str, mih: MultiIndex) -> None:
    """Refuse a saved structure whose rows or bucket offsets point outside its arrays (its kernels
    do not check bounds); checksums make this unnecessary when they are verified."""
    from .mih import MAX_CHUNK_BITS

    rows = mih.count
    widths = [int(w) for w in mih.widths]
    bad = ""
    if (
        not all(1 <= w <= MAX_CHUNK_BITS for w in widths)
        or max(widths) - min(widths) > 1
        or widths != sorted(widths, reverse=True)
    ):
        bad = "chunk widths out of range"
    elif mih.order.size and (int(mih.order.min()) < 0 or int(mih.order.max()) >= rows):
        bad = "row numbers out of range"
    else:
        for chunk in range(mih.chunks):
            base, size = int(mih.bases[chunk]), (1 << int(mih.widths[chunk])) + 1
            offsets = mih.offsets[base : base + size]
            if int(offsets[0]) != 0 or int(offsets[-1]) != rows or bool(np.any(offsets[1:] < offsets[:-1])):
                bad = f"bucket offsets of chunk {chunk} out of order"
                break
    if bad:
        raise IndexStoreError(f"{gen_dir / _array_name(stem, 'mih.order')}: saved search structure damaged ({bad})")


def _load_snapshot(root: Path, verify: bool, verified: Iterable[FileStamp] = ()) -> _Snapshot:
    last: str = ""
    trusted = frozenset(verified)
    for _attempt in range(5):
        manifest = read_manifest(root)
        try:
            return _load_generation(root, manifest, verify, trusted)
        except _Vanished as exc:
            last = str(exc)
            again = read_manifest(root)
            if again.generation == manifest.generation:
                raise IndexStoreError(f"{last}: file missing from the index") from None
            log.debug("generation %s replaced while opening; retrying", manifest.directory)
    raise IndexStoreError(f"{last}: index kept changing while it was being opened")


def _save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())


def _save_structure(tmp: Path, stem: str, table: AlgorithmTable, previous: _Snapshot | None) -> list[str]:
    """Write (or, for a table unchanged since ``previous``, link) the saved search structure of a
    table that has one into the staging directory ``tmp``; the names of its files.

    A table of an index written before structures were saved gets them at its next write."""
    if table.mih is None:
        return []
    names = _structure_files(stem, table.count, table.searchable)
    if previous is not None and all(name in previous.manifest.structures for name in names):
        for name in names:
            _link_or_copy(previous.gen_dir / name, tmp / name)
        return names
    arrays = {
        "mih.widths": table.mih.widths,
        "mih.order": table.mih.order,
        "mih.offsets": table.mih.offsets,
        "searchable.ids": table.searchable_ids,
        "searchable.codes": table.mih.codes,
    }
    for name, suffix in zip(names, _MIH_SUFFIXES + _SEARCHABLE_SUFFIXES):
        _save_array(tmp / name, arrays[suffix].astype(_STRUCTURE_DTYPES[suffix], copy=False))
    return names


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
        fsync_file(dst)


@dataclass(frozen=True, slots=True)
class _Staged:
    """What a write function produced in the staging database.

    ``arrays``: the new (ids, codes, quality) of every table that changed, by table stem (``pdq``,
    ``pdq@top88``); a view stem not in the previous generation makes a new view table.
    """

    changed: bool
    arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    local_changed: bool = False
    local: LocalTable | None = None


class KnownIndex:
    """An on-disk index of known-material (CSAM or known-good) hash records, searched exactly.

    Make one with :meth:`create`, open one with :meth:`open`. See the module documentation for the
    layout, the atomic write design and the cost of checksums. Usable as a context manager.
    Implements :class:`~matcher.index.IndexReader`.
    """

    def __init__(self, root: Path, snapshot: _Snapshot, writable: bool) -> None:
        """Internal: use :meth:`create` or :meth:`open`."""
        self._root = root
        self._snapshot: _Snapshot | None = snapshot
        self._writable = writable
        self._write_lock = threading.Lock()
        self._swap_lock = threading.Lock()  # replacing or dropping the current snapshot

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], algorithms: Sequence[str] | str = ("pdq",)) -> KnownIndex:
        """Create an empty index in ``path`` (absent or empty directory) and open it for writing.

        ``algorithms``: names (or a comma-separated string) of registered algorithms to index.
        Records may carry hashes of other algorithms too; those are stored but not searched.
        Raises :class:`IndexStoreError` when ``path`` already holds an index or other files. The
        check is made again under the writers' lock, so of several processes or threads creating an
        index in the same place at once exactly one succeeds; the others raise and change nothing.
        """
        root = Path(path)
        names = [
            algorithm.name
            for algorithm in registry.resolve(algorithms if isinstance(algorithms, str) else tuple(algorithms))
        ]
        params = {name: algorithm_params(name) for name in names}
        if root.exists():
            _check_creatable(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexStoreError(f"{root}: cannot create the index directory ({exc})") from None
        created_at = _now()

        def fill(tmp: Path) -> tuple[None, _Staged, dict[str, dict[str, Any]], int]:
            conn = db.open_writable(tmp / db.DB_NAME)
            try:
                db.create_schema(conn, names, created_at)
            finally:
                conn.close()
            empty = {
                name: (np.zeros(0, np.int64), np.zeros((0, p["code_bytes"]), np.uint8), np.zeros(0, np.int16))
                for name, p in params.items()
            }
            return None, _Staged(True, empty), {}, 0

        with _FileLock(root / LOCK_NAME):
            _check_creatable(root)  # again: another creator may have committed since the check above
            _cleanup(root, keep=None)  # leftovers of a create that crashed before its commit
            manifest, loaded = _write_generation(root, 1, created_at, params, None, fill)[1:]
            snapshot = _snapshot_after_write(root, manifest, loaded)  # before any writer can replace it
        log.info("created index %s with algorithms %s", root, ", ".join(names))
        return cls(root, snapshot, writable=True)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        writable: bool = False,
        verify: bool = True,
        verified: Iterable[FileStamp] = (),
    ) -> KnownIndex:
        """Open an existing index; :class:`IndexStoreError` when it is missing, damaged or incompatible.

        ``writable``: allow :meth:`add` and the other writes (read-only indexes raise
        :class:`UsageError` on them). ``verify``: check every file's SHA-256 (default; see the module
        documentation for the cost). Sizes, shapes, counts and algorithm parameters are always checked.
        ``verified``: :attr:`verified_files` of another open of this index (the scan's parent process,
        say); a file found with the same stamp was verified there and is unchanged since, and is not
        hashed again (any other file is). This is how a scan verifies its index once, not per worker.
        """
        root = Path(path)
        if not root.is_dir():
            raise IndexStoreError(f"{root}: no such index directory")
        if (root / SHARDS_NAME).is_file() and not (root / MANIFEST_NAME).exists():
            if writable:
                raise IndexStoreError(sharded_index_refusal(root, "changed"))
            raise IndexStoreError(
                f"{root}: a sharded index (made by 'matcher index split'), not a single index: "
                "open it with matcher.index.ShardedIndex.open or matcher.index.open_any"
            )
        started = time.perf_counter()
        snapshot = _load_snapshot(root, verify, verified)
        log.info(
            "opened index %s generation %d (%d records) in %.2fs",
            root,
            snapshot.manifest.generation,
            snapshot.manifest.records,
            time.perf_counter() - started,
        )
        return cls(root, snapshot, writable)

    def close(self) -> None:
        """Release the database connection; the object cannot be used afterwards.

        A search or look-up already running in another thread finishes first (the connection is
        closed when it ends); calls made after :meth:`close` raise :class:`UsageError`.
        """
        with self._swap_lock:
            snapshot, self._snapshot = self._snapshot, None
        if snapshot is not None:
            snapshot.lease.retire()

    def __enter__(self) -> KnownIndex:
        """Use as a context manager; :meth:`close` on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the index."""
        self.close()

    def reload(self) -> None:
        """Switch to the latest committed generation on disk (another process may have written).

        The replaced generation's database connection is closed as soon as no search or look-up
        still reads it (those already running finish on the generation they started with).
        """
        snapshot = self._snap()
        manifest = read_manifest(self._root)
        if manifest.generation != snapshot.manifest.generation:
            self._install(_load_snapshot(self._root, verify=True))

    def _install(self, snapshot: _Snapshot) -> None:
        """Make ``snapshot`` the current one and retire the one it replaces.

        A snapshot older than the current one (a slower concurrent reload) is retired instead; on a
        closed index the new snapshot is retired and :class:`UsageError` raised.
        """
        with self._swap_lock:
            current = self._snapshot
            if current is None:
                retired: _Snapshot | None = snapshot
            elif snapshot.manifest.generation < current.manifest.generation:
                retired = snapshot
            else:
                retired, self._snapshot = current, snapshot
        if retired is not None:
            retired.lease.retire()
        if current is None:
            raise UsageError(f"{self._root}: the index has been closed")

    @contextlib.contextmanager
    def _reading(self) -> Iterator[_Snapshot]:
        """The current snapshot, leased for the duration of a read (its connection stays open)."""
        while True:
            snapshot = self._snap()
            if snapshot.lease.acquire():
                break
            # retired and closed between the two lines: a newer snapshot is current (or the index closed)
        try:
            yield snapshot
        finally:
            snapshot.lease.release()

    # -- properties ----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The index directory."""
        return self._root

    @property
    def verified_files(self) -> tuple[FileStamp, ...]:
        """The stamps of the current generation's files as this object verified them when it opened
        (hashed, or found unchanged since another process did), for :meth:`open`'s ``verified`` in
        another process; empty when opened without verification or after this object's own write.
        Files changed within :data:`~matcher.index.manifest.STAMP_SETTLED_NS` of the open are left
        out (their times cannot show a change made in the same clock tick): other processes hash them."""
        return self._snap().stamps

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Names of the indexed (searchable) algorithms."""
        return tuple(self._snap().tables)

    @property
    def views(self) -> dict[str, tuple[str, ...]]:
        """The view tables a search can return something from: ``{algorithm: (view, ...)}``.

        Only views with at least one searchable code are named (an index made from hash lists has
        none); :meth:`info` gives every view table's counts.
        """
        return {
            algorithm: named
            for algorithm, named in (
                (algorithm, tuple(view for view, table in views.items() if table.searchable))
                for algorithm, views in self._snap().views.items()
            )
            if named
        }

    @property
    def generation(self) -> int:
        """Number of the committed generation this object reads."""
        return self._snap().manifest.generation

    @property
    def writable(self) -> bool:
        """Whether writes are allowed on this object."""
        return self._writable

    def __len__(self) -> int:
        """Number of stored records (all lists)."""
        return self._snap().manifest.records

    def _snap(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is None:
            raise UsageError(f"{self._root}: the index has been closed")
        return snapshot

    # -- reading -------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Format version, generation, counts per algorithm and per list, category schemes, sizes.

        ``views`` holds the view tables' counts: ``{algorithm: {view: {"count": n, "searchable": m}}}``
        (``{}`` for an index without views). ``files`` and ``structures`` give the sizes of the
        generation's files and of its saved search structures (``{}`` when none are saved).
        """
        snapshot = self._snap()
        manifest = snapshot.manifest
        directory_bytes = 0
        for dirpath, _dirs, files in os.walk(self._root):
            for name in files:
                try:
                    directory_bytes += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
        try:
            manifest_bytes = (self._root / MANIFEST_NAME).stat().st_size
        except OSError:
            manifest_bytes = 0
        return {
            "path": str(self._root),
            "format_version": manifest.format_version,
            "generation": manifest.generation,
            "created_at": manifest.created_at,
            "updated_at": manifest.updated_at,
            "records": manifest.records,
            "algorithms": {name: dict(values) for name, values in manifest.algorithms.items()},
            "views": {
                name: {view: dict(counts) for view, counts in views.items()} for name, views in manifest.views.items()
            },
            "lists": {
                name: {"records": v["records"], "algorithms": dict(v["algorithms"])}
                for name, v in manifest.lists.items()
            },
            "category_schemes": sorted(snapshot.labels),
            "default_category_scheme": snapshot.default_scheme,
            "files": {name: entry.size for name, entry in manifest.files.items()},
            "structures": {name: entry.size for name, entry in manifest.structures.items()},
            "local": {
                "records": int(manifest.local.get("records", 0)),
                "keypoints": int(manifest.local.get("keypoints", 0)),
                "bytes": sum(manifest.files[name].size for name in local_file_names() if name in manifest.files),
            },
            "size_on_disk": sum(entry.size for entry in [*manifest.files.values(), *manifest.structures.values()])
            + manifest_bytes,
            "directory_bytes": directory_bytes,
        }

    def lists(self) -> dict[str, int]:
        """``{list name: number of records}``."""
        return {name: int(v["records"]) for name, v in self._snap().manifest.lists.items()}

    def records(self, ids: Iterable[int]) -> list[IndexedRecord]:
        """The stored records with these ids, in the order asked (ids not stored are left out)."""
        wanted = [int(i) for i in ids]
        with self._reading() as snapshot:
            found = snapshot.query(db.fetch_records, list(dict.fromkeys(wanted)))
        return [found[i] for i in wanted if i in found]

    def iter_records(self, list_name: str | None = None, batch_size: int = 1000) -> Iterator[IndexedRecord]:
        """Every record (or every record of one list) in id order, read in batches (for export).

        A ``list_name`` the index does not hold raises :class:`UsageError` (naming the lists it has).

        The iteration reads the generation current when it was called, even if a write commits or
        :meth:`reload` switches generations meanwhile: that generation's database stays open until
        the iteration ends (exhausted, closed, or the iterator dropped).
        """
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, not {batch_size}")
        with self._reading() as snapshot:
            if list_name is not None and list_name not in snapshot.manifest.lists:
                raise UsageError(unknown_list_message(self._root, list_name, snapshot.manifest.lists))
            snapshot.lease.acquire()  # one more reader, held by the iterator (cannot fail: leased here)

        def generate() -> Iterator[IndexedRecord]:
            try:
                after = 0
                while True:
                    page = snapshot.query(db.page_records, after, batch_size, list_name)
                    if not page:
                        return
                    yield from page
                    after = page[-1].id
            finally:
                done()

        iterator = generate()
        # released once: when the iteration ends, or when an iterator never started is dropped
        done = weakref.finalize(iterator, snapshot.lease.release)
        return iterator

    def record_views(self, ids: Iterable[int]) -> dict[int, dict[str, dict[str, Hash]]]:
        """The view hashes of these records: ``{record id: {algorithm: {view: Hash}}}``.

        View hashes live only in the view tables, not in the records database, so :meth:`records`
        does not carry them; this is how a copy of a record with its views is made (index sharding,
        :mod:`matcher.index.shards`). Records without view hashes, and ids not stored, are left out.
        A hash's quality is ``None`` when it was stored without one.
        """
        snapshot = self._snap()
        wanted = np.unique(np.fromiter((int(i) for i in ids), dtype=np.int64))
        out: dict[int, dict[str, dict[str, Hash]]] = {}
        if not wanted.size:
            return out
        for algorithm, named in snapshot.views.items():
            for view, table in sorted(named.items()):
                if not table.ids.shape[0]:
                    continue
                positions = np.minimum(np.searchsorted(table.ids, wanted), table.ids.shape[0] - 1)
                for position in positions[table.ids[positions] == wanted]:
                    quality = int(table.quality[position])
                    out.setdefault(int(table.ids[position]), {}).setdefault(algorithm, {})[view] = Hash(
                        algorithm, table.codes[position].tobytes(), None if quality < 0 else quality
                    )
        return out

    def lookup_digest(self, kind: str, hex_values: Iterable[str]) -> dict[str, list[IndexedRecord]]:
        """Records whose ``kind`` digest (``"md5"``, ``"sha1"`` or ``"sha256"``) is one of ``hex_values``.

        Keys are the values as given; each maps to its records in id order (an empty list when none).
        Case and surrounding white space of the values do not matter; malformed hex raises
        :class:`~matcher.errors.HashFormatError`.
        """
        if kind not in db.DIGEST_LENGTHS:
            raise UsageError(f"digest kind must be one of {', '.join(db.DIGEST_LENGTHS)}, not {kind!r}")
        values = list(hex_values)
        normalised = {}
        for value in values:
            if not isinstance(value, str):
                raise HashFormatError(f"{kind} digest must be text, not {type(value).__name__}")
            normalised[value] = db.normalise_digest(kind, value, f"{kind} look-up") or ""
        with self._reading() as snapshot:
            found = snapshot.query(db.lookup_digests, kind, [v for v in normalised.values() if v])
        return {value: list(found.get(norm, [])) for value, norm in normalised.items()}

    def video_records(self) -> list[IndexedRecord]:
        """The known videos (records with vPDQ frames in ``extra["vpdq"]``), in id order."""
        with self._reading() as snapshot:
            found: list[IndexedRecord] = snapshot.query(db.video_records)
        return found

    # -- category labels -----------------------------------------------------------------------

    def category_schemes(self) -> dict[str, dict[int, str]]:
        """Every label scheme: ``{scheme: {category: label}}`` (copies)."""
        return {scheme: dict(labels) for scheme, labels in self._snap().labels.items()}

    @property
    def default_category_scheme(self) -> str | None:
        """The scheme :meth:`category_label` uses when none is named (``None`` until one is set)."""
        return self._snap().default_scheme

    def category_label(self, category: int | None, scheme: str | None = None) -> str | None:
        """The label of a raw category in ``scheme`` (default scheme when ``None``), or ``None``.

        ``None`` is returned for a ``None`` category, a category the scheme does not label, or when
        no scheme is set. An unknown scheme name raises :class:`UsageError`.
        """
        snapshot = self._snap()
        name = snapshot.default_scheme if scheme is None else scheme
        if name is None or category is None:
            return None
        if name not in snapshot.labels:
            raise UsageError(
                f"no category label scheme {name!r} (known: {', '.join(sorted(snapshot.labels)) or 'none'})"
            )
        return snapshot.labels[name].get(int(category))

    def set_category_labels(self, scheme: str, labels: Mapping[int, str], *, default: bool | None = None) -> None:
        """Store (replacing) the labels of a category scheme, e.g. a jurisdiction's categories.

        ``default``: make it the default scheme; ``None`` (the default) makes it the default only when
        no default is set yet. Commits a new generation.
        """
        if not isinstance(scheme, str) or not scheme.strip():
            raise UsageError("category scheme name must be non-empty text")
        rows = []
        for category, label in labels.items():
            if isinstance(category, bool) or not isinstance(category, int):
                raise UsageError(f"category must be an integer, not {category!r}")
            if not isinstance(label, str):
                raise UsageError(f"label of category {category} must be text, not {label!r}")
            rows.append((scheme, int(category), label))

        def mutate(conn: sqlite3.Connection, snapshot: _Snapshot) -> tuple[None, _Staged]:
            conn.execute("DELETE FROM category_labels WHERE scheme = ?", (scheme,))
            conn.executemany("INSERT INTO category_labels (scheme, category, label) VALUES (?, ?, ?)", rows)
            if default or (default is None and snapshot.default_scheme is None):
                db.set_meta(conn, "default_category_scheme", scheme)
            return None, _Staged(True, {})

        self._commit(mutate)

    def set_default_category_scheme(self, scheme: str) -> None:
        """Make an existing scheme the default of :meth:`category_label`. Commits a new generation."""
        if scheme not in self._snap().labels:
            raise UsageError(f"no category label scheme {scheme!r}")

        def mutate(conn: sqlite3.Connection, snapshot: _Snapshot) -> tuple[None, _Staged]:
            db.set_meta(conn, "default_category_scheme", scheme)
            return None, _Staged(True, {})

        self._commit(mutate)

    # -- searching -------------------------------------------------------------------------------

    def search(
        self, queries: Sequence[Hash], max_distance: int | None = None, *, view: str | None = None
    ) -> list[QueryResult]:
        """Every searchable record within Hamming distance ``<= max_distance`` of each query (exact).

        ``view`` ``None`` searches the records' main hashes; a view name (one of
        :data:`matcher.views.KNOWN_VIEWS`, e.g. ``"top88"``) searches the records' hashes of that
        view instead, and each match's ``view`` names it. An index without such a view table finds
        nothing there; a name that is not a known view raises :class:`UsageError`.

        ``max_distance`` defaults to each algorithm's ``default_max_distance`` (PDQ 31, the imagehash
        family 8). Queries may mix algorithms; each is searched in its algorithm's index, and results
        come back in query order, each a :class:`QueryResult` with matches nearest first (ties by record
        id). A query whose algorithm has a minimum quality (PDQ: 50) and whose known quality is below it
        is not searched: its result has no matches and ``skipped_reason`` says why. Stored PDQ hashes of
        known quality below 50 are never returned. A query algorithm the index does not hold raises
        :class:`UsageError`; a query of the wrong length raises :class:`HashFormatError`.
        """
        if max_distance is not None and (
            isinstance(max_distance, bool) or not isinstance(max_distance, int) or max_distance < 0
        ):
            raise UsageError(f"max_distance must be a non-negative integer, not {max_distance!r}")
        return self._run(
            queries,
            lambda table, codes: range_hits(
                table, codes, min(table.bit_length, self._default(table) if max_distance is None else max_distance)
            ),
            view,
        )

    def nearest(self, queries: Sequence[Hash], k: int, *, view: str | None = None) -> list[QueryResult]:
        """The ``k`` nearest searchable records of each query, nearest first, ties by record id (exact).

        No distance limit applies. ``view``, quality rules and errors as in :meth:`search`.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise UsageError(f"k must be a positive integer, not {k!r}")
        return self._run(queries, lambda table, codes: knn_hits(table, codes, k), view)

    # -- local features --------------------------------------------------------------------------

    @property
    def local_records(self) -> int:
        """Records holding local features (images added since format 3, without ``--no-local``)."""
        local = self._snap().local
        return 0 if local is None else len(local)

    def find_local(
        self,
        frames: Sequence[LocalFeatures],
        rule: MatchRule = DEFAULT_RULE,
        max_candidates: int | None = None,
    ) -> list[list[LocalHit]]:
        """The known records seen in each frame by their local features (:mod:`matcher.local_features`):
        per frame, :class:`~matcher.index.local_table.LocalHit` s, most inliers first. Each frame's
        descriptors vote through the index's descriptor tree; the ``max_candidates`` most voted
        (default :data:`~matcher.index.local_table.MAX_CANDIDATES`) are verified geometrically under
        ``rule``. An index without local features finds nothing."""
        snapshot = self._snap()
        local = snapshot.local
        if local is None:
            return [[] for _ in frames]
        limit = MAX_LOCAL_CANDIDATES if max_candidates is None else max_candidates
        return [local.find(frame, rule, limit) for frame in frames]

    def record_local(self, ids: Iterable[int]) -> dict[int, LocalFeatures]:
        """The stored local features of these records: ``{record id: LocalFeatures}`` (records
        without, and ids not stored, left out). How a copy of a record keeps them (sharding)."""
        local = self._snap().local
        if local is None:
            return {}
        return local.features_of([int(i) for i in ids])

    @staticmethod
    def _default(table: AlgorithmTable) -> int:
        return int(registry.get(table.name).default_max_distance)

    def _run(
        self,
        queries: Sequence[Hash],
        find: Callable[[AlgorithmTable, np.ndarray], list[list[tuple[int, int]]]],
        view: str | None = None,
    ) -> list[QueryResult]:
        with self._reading() as snapshot:
            return self._run_on(snapshot, queries, find, view)

    def _run_on(
        self,
        snapshot: _Snapshot,
        queries: Sequence[Hash],
        find: Callable[[AlgorithmTable, np.ndarray], list[list[tuple[int, int]]]],
        view: str | None,
    ) -> list[QueryResult]:
        if view is not None and view not in known_view_names():
            raise UsageError(f"no view {view!r} (known views: {', '.join(known_view_names())})")
        queries = list(queries)
        groups: dict[str, list[int]] = {}
        for position, query in enumerate(queries):
            if not isinstance(query, Hash):
                raise UsageError(f"query {position} is not a Hash ({type(query).__name__})")
            if query.algorithm not in snapshot.tables:
                raise UsageError(
                    f"the index holds no {query.algorithm} hashes (it indexes {', '.join(snapshot.tables)})"
                )
            groups.setdefault(query.algorithm, []).append(position)
        found: list[list[tuple[int, int]] | None] = [None] * len(queries)
        skipped: dict[int, str] = {}
        for algorithm, positions in groups.items():
            table = snapshot.tables[algorithm]
            if view is not None:
                table = snapshot.views.get(algorithm, {}).get(view) or empty_table(
                    algorithm, table.bit_length, table.min_quality
                )
            searched = []
            for position in positions:
                quality = queries[position].quality
                if table.min_quality is not None and quality is not None and quality < table.min_quality:
                    skipped[position] = f"{algorithm} quality {quality} below {table.min_quality}"
                else:
                    searched.append(position)
            codes = query_codes(table, [queries[p] for p in searched])
            for position, hits in zip(searched, find(table, codes)):
                found[position] = hits
        wanted = sorted({record_id for hits in found if hits for record_id, _d in hits})
        fields: dict[int, tuple[Any, ...]] = snapshot.query(db.match_fields, wanted) if wanted else {}
        if len(fields) != len(wanted):
            raise IndexStoreError(f"{snapshot.gen_dir}: code arrays name records the database lacks")
        results = []
        for position, query in enumerate(queries):
            if position in skipped:
                results.append(QueryResult(query, (), skipped[position]))
                continue
            matches = []
            for record_id, distance in found[position] or ():
                list_name, category, series, name, comment = fields[record_id]
                matches.append(
                    Match(record_id, distance, query.algorithm, list_name, category, series, name, comment, view=view)
                )
            results.append(QueryResult(query, tuple(matches)))
        return results

    # -- writing -------------------------------------------------------------------------------

    def add(
        self,
        records: Iterable[KnownRecord],
        list_name: str,
        category: int | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        record_lists: bool = False,
    ) -> AddResult:
        """Add records under ``list_name`` in one atomic write (one new generation).

        ``record_lists``: a record that names its own list (:attr:`KnownRecord.list_name`, as
        matcher's exports carry it) goes to that list, and ``list_name`` is the list of the records
        that name none; without it (the default) every record goes to ``list_name``.
        ``category``, when given, replaces every record's own category. A record with the same
        hashes and digests as one already in its list (or earlier in the batch) is counted as a
        duplicate and not stored again; records with nothing to match on are counted as ``empty``.
        Digests of zero-length content (:data:`~matcher.known.EMPTY_CONTENT_DIGESTS`) are never
        stored: every empty or unreadable file has them (a record left with nothing is ``empty``).
        ``progress(n)`` is called with the number of records read so far, every few thousand.
        If ``records`` raises, or a record is malformed (:class:`HashFormatError`,
        :class:`UsageError`), nothing is stored.
        """
        if not isinstance(list_name, str) or not list_name.strip():
            raise UsageError("list name must be non-empty text")
        if category is not None and (isinstance(category, bool) or not isinstance(category, int)):
            raise UsageError(f"category must be an integer or None, not {category!r}")

        def mutate(conn: sqlite3.Connection, snapshot: _Snapshot) -> tuple[AddResult, _Staged]:
            return self._add_rows(conn, snapshot, records, list_name, category, progress, record_lists)

        result: AddResult = self._commit(mutate)
        return result

    def _add_rows(
        self,
        conn: sqlite3.Connection,
        snapshot: _Snapshot,
        records: Iterable[KnownRecord],
        list_name: str,
        category: int | None,
        progress: Callable[[int], None] | None,
        record_lists: bool = False,
    ) -> tuple[AddResult, _Staged]:
        tables = snapshot.tables
        widths = {name: table.bit_length // 8 for name, table in tables.items()}
        added_at = _now()
        list_ids: dict[str, int] = {}  # the lists records went to, in the order first met
        new_lists: list[str] = []

        def list_id_of(name: str, where: str) -> int:
            if name in list_ids:
                return list_ids[name]
            if not isinstance(name, str) or not name.strip():
                raise UsageError(f"{where}: list name must be non-empty text, not {name!r}")
            row = conn.execute("SELECT id FROM lists WHERE name = ?", (name,)).fetchone()
            if row is None:
                row = (conn.execute("INSERT INTO lists (name, created_at) VALUES (?, ?)", (name, added_at)).lastrowid,)
                new_lists.append(name)
            list_ids[name] = int(row[0] or 0)
            return list_ids[name]

        next_id = int(db.get_meta(conn, "next_record_id") or "1")
        new: dict[str, tuple[list[int], list[bytes], list[int]]] = {name: ([], [], []) for name in tables}
        new_views: dict[tuple[str, str], tuple[list[int], list[bytes], list[int]]] = {}
        new_local: list[tuple[int, LocalFeatures]] = []
        added = duplicates = empty = processed = 0

        def flush(batch: list[KnownRecord]) -> None:
            nonlocal added, duplicates, empty, next_id
            pending: list[tuple[bytes, KnownRecord, str, int]] = []
            for index, record in enumerate(batch):
                where = (
                    record.source
                    if isinstance(record, KnownRecord) and record.source
                    else (f"record {processed - len(batch) + index + 1}")
                )
                if not isinstance(record, KnownRecord):
                    raise UsageError(f"{where}: expected a KnownRecord, got {type(record).__name__}")
                if kinds := record.empty_content_digests():
                    log.warning("%s: %s of zero-length content not stored", where, ", ".join(kinds))
                    record = record.without_empty_content_digests()
                if record.is_empty():
                    empty += 1
                    continue
                own_list = list_name
                if record_lists and record.list_name and record.list_name.strip():
                    own_list = record.list_name
                list_id = list_id_of(own_list, where)
                for name, value in record.hashes.items():
                    _check_hash(name, value, widths.get(name), where)
                if record.views:
                    _check_views(record, widths, where)
                if record.local is not None and not isinstance(record.local, LocalFeatures):
                    raise UsageError(
                        f"{where}: record local features must be LocalFeatures, not {type(record.local).__name__}"
                    )
                pending.append((db.fingerprint(record), record, where, list_id))
            groups: dict[int, list[bytes]] = {}
            for fp, _record, _where, list_id in pending:
                groups.setdefault(list_id, []).append(fp)
            existing = {list_id: db.existing_fingerprints(conn, list_id, fps) for list_id, fps in groups.items()}
            record_rows, hash_rows = [], []
            for fp, record, where, list_id in pending:
                if fp in existing[list_id]:
                    duplicates += 1
                    continue
                existing[list_id].add(fp)
                own = record.category if category is None else category
                if own is not None and (isinstance(own, bool) or not isinstance(own, int)):
                    raise UsageError(f"{where}: category must be an integer or None, not {own!r}")
                record_id = next_id
                next_id += 1
                record_rows.append(db.record_row(record_id, list_id, fp, record, own, added_at, where))
                for name, value in record.hashes.items():
                    hash_rows.append((record_id, name, value.bits, value.quality))
                    if name in new:
                        ids, bits, quality = new[name]
                        ids.append(record_id)
                        bits.append(value.bits)
                        quality.append(-1 if value.quality is None else int(value.quality))
                for name, views in record.views.items():
                    if name not in tables:
                        continue  # views of an algorithm the index does not search are not kept
                    for view, value in views.items():
                        ids, bits, quality = new_views.setdefault((name, view), ([], [], []))
                        ids.append(record_id)
                        bits.append(value.bits)
                        quality.append(-1 if value.quality is None else int(value.quality))
                if record.local is not None and len(record.local):
                    new_local.append((record_id, record.local))
                added += 1
            conn.executemany(db.INSERT_RECORD, record_rows)
            conn.executemany(db.INSERT_HASH, hash_rows)

        batch: list[KnownRecord] = []
        for record in records:
            batch.append(record)
            processed += 1
            if len(batch) >= _ADD_CHUNK:
                flush(batch)
                batch = []
                if progress is not None:
                    progress(processed)
        if batch:
            flush(batch)
        if progress is not None:
            progress(processed)
        result = AddResult(added, duplicates, empty, snapshot.manifest.generation)
        if added == 0:
            return result, _Staged(False, {})
        db.set_meta(conn, "next_record_id", str(next_id))
        arrays = {}
        staged: list[tuple[str, AlgorithmTable, tuple[list[int], list[bytes], list[int]]]] = [
            (name, tables[name], rows) for name, rows in new.items()
        ]
        for (name, view), rows in sorted(new_views.items()):
            table = snapshot.views.get(name, {}).get(view) or empty_table(
                name, tables[name].bit_length, tables[name].min_quality
            )
            staged.append((table_stem(name, view), table, rows))
        for stem, table, (ids, bits, quality) in staged:
            if not ids:
                continue
            arrays[stem] = (
                np.concatenate([table.ids, np.asarray(ids, dtype=np.int64)]),
                np.concatenate([table.codes, code_matrix(bits, table.bit_length // 8)]),
                np.concatenate([table.quality, np.asarray(quality, dtype=np.int16)]),
            )
        log.debug(
            "add to %s lists %s (new: %s): %d added, %d duplicates, %d empty",
            self._root,
            list(list_ids),
            new_lists,
            added,
            duplicates,
            empty,
        )
        staged_arrays = _Staged(True, arrays)
        if new_local:
            staged_arrays = _Staged(True, arrays, True, LocalTable.build(new_local, snapshot.local))
        return replace(result, generation=snapshot.manifest.generation + 1), staged_arrays

    def remove_records(self, ids: Iterable[int]) -> int:
        """Remove the records with these ids, all or none; returns how many were removed.

        Every id must name a stored record: an id that does not (never stored, or removed already)
        raises :class:`UsageError` naming it, and nothing is removed. Commits a new generation.
        """
        wanted = sorted({int(i) for i in ids})

        def mutate(conn: sqlite3.Connection, snapshot: _Snapshot) -> tuple[int, _Staged]:
            present: list[int] = []
            for part in db.chunks(wanted):
                marks = ",".join("?" * len(part))
                present.extend(
                    int(r[0]) for r in conn.execute(f"SELECT id FROM records WHERE id IN ({marks})", tuple(part))
                )
            missing = sorted(set(wanted) - set(present))
            if missing:
                shown = ", ".join(map(str, missing[:20])) + (
                    f" and {len(missing) - 20} more" if len(missing) > 20 else ""
                )
                raise UsageError(
                    f"{self._root}: no record with id {shown} (nothing removed; record ids are those "
                    "that 'matcher index query' and scan reports give)"
                )
            if not present:
                return 0, _Staged(False, {})
            for part in db.chunks(present):
                marks = ",".join("?" * len(part))
                conn.execute(f"DELETE FROM record_hashes WHERE record_id IN ({marks})", tuple(part))
                conn.execute(f"DELETE FROM records WHERE id IN ({marks})", tuple(part))
            gone = np.asarray(present, dtype=np.int64)
            return len(present), _staged_without(snapshot, gone)

        removed: int = self._commit(mutate)
        return removed

    def remove_list(self, name: str) -> int:
        """Remove a list and all its records; returns the number of records removed.

        A list the index does not hold raises :class:`UsageError` naming the lists it has.
        """

        def mutate(conn: sqlite3.Connection, snapshot: _Snapshot) -> tuple[int, _Staged]:
            row = conn.execute("SELECT id FROM lists WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise UsageError(unknown_list_message(self._root, name, snapshot.manifest.lists))
            list_id = int(row[0])
            gone = np.fromiter(
                (r[0] for r in conn.execute("SELECT id FROM records WHERE list_id = ?", (list_id,))), dtype=np.int64
            )
            conn.execute(
                "DELETE FROM record_hashes WHERE record_id IN (SELECT id FROM records WHERE list_id = ?)", (list_id,)
            )
            conn.execute("DELETE FROM records WHERE list_id = ?", (list_id,))
            conn.execute("DELETE FROM lists WHERE id = ?", (list_id,))
            return int(gone.shape[0]), _staged_without(snapshot, gone)

        removed: int = self._commit(mutate)
        return removed

    def _commit(self, mutate: Callable[[sqlite3.Connection, _Snapshot], tuple[Any, _Staged]]) -> Any:
        if not self._writable:
            raise UsageError(f"{self._root}: index was opened read-only")
        with self._write_lock, _FileLock(self._root / LOCK_NAME):
            snapshot = self._snap()
            if read_manifest(self._root).generation != snapshot.manifest.generation:
                log.info("%s: another writer committed; reloading before writing", self._root)
                snapshot = _load_snapshot(self._root, verify=True)
                self._install(snapshot)
            _cleanup(self._root, keep=snapshot.manifest.directory)

            def fill(tmp: Path) -> tuple[Any, _Staged, dict[str, dict[str, Any]], int]:
                path = tmp / db.DB_NAME
                shutil.copyfile(snapshot.gen_dir / db.DB_NAME, path)
                conn = db.open_writable(path)
                try:
                    conn.execute("BEGIN")
                    result, staged = mutate(conn, snapshot)
                    if not staged.changed:
                        conn.execute("ROLLBACK")
                        return result, staged, {}, 0
                    lists = db.list_counts(conn)
                    total = int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
                    conn.execute("COMMIT")
                except sqlite3.DatabaseError as exc:
                    raise IndexStoreError(f"{path}: database error while writing ({exc})") from None
                finally:
                    conn.close()
                return result, staged, lists, total

            started = time.perf_counter()
            result, manifest, loaded = _write_generation(
                self._root,
                snapshot.manifest.generation + 1,
                snapshot.manifest.created_at,
                {name: algorithm_params(name) for name in snapshot.tables},
                snapshot,
                fill,
            )
            if manifest is None:
                return result
            self._install(_snapshot_after_write(self._root, manifest, loaded))
            log.info(
                "%s: committed generation %d (%d records) in %.2fs",
                self._root,
                manifest.generation,
                manifest.records,
                time.perf_counter() - started,
            )
            _cleanup(self._root, keep=manifest.directory)
            return result


def unknown_list_message(root: Path, name: str, lists: Iterable[str]) -> str:
    """The message for a list name that the index at ``root`` does not hold, naming those it holds."""
    held = sorted(lists)
    known = ", ".join(repr(n) for n in held) if held else "none: the index is empty"
    return f"{root}: no list {name!r} in the index (its lists: {known})"


def sharded_index_refusal(root: Path, action: str) -> str:
    """Why the sharded index at ``root`` cannot be ``action`` (``"changed"``, ``"split"``) and what to do.

    A sharded index is written once by :func:`matcher.index.split_index` from a single index; its
    shards hold contiguous ranges of that index's record ids, so records are added to or removed
    from the source index, which is then split again.
    """
    return (
        f"{root}: a sharded index (made by 'matcher index split') is read-only and cannot be {action}: "
        "add to, remove from or split the single index it was split from, then split that again "
        "('matcher index info' on the sharded index names it)"
    )


def _check_hash(name: str, value: Hash, width: int | None, where: str) -> None:
    if not isinstance(value, Hash):
        raise HashFormatError(f"{where}: {name} hash is not a Hash ({type(value).__name__})")
    if value.algorithm != name:
        raise HashFormatError(f"{where}: hash stored under {name!r} is a {value.algorithm} hash")
    bits = registry.bit_length_of(name)
    expected = width if width is not None else (None if bits is None else bits // 8)
    if expected is not None and len(value.bits) != expected:
        raise HashFormatError(f"{where}: {name} hash has {len(value.bits) * 8} bits, expected {expected * 8}")
    quality = value.quality
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 32767):
        raise HashFormatError(f"{where}: {name} quality must be an integer 0..32767, not {quality!r}")


def _check_views(record: KnownRecord, widths: Mapping[str, int], where: str) -> None:
    """Check a record's view hashes: known view names, and for indexed algorithms well-formed hashes."""
    known_views = frozenset(known_view_names())
    views = record.views
    if not isinstance(views, Mapping):
        raise UsageError(
            f"{where}: record views must be a dict of algorithm -> view -> Hash, not {type(views).__name__}"
        )
    for name, named in views.items():
        if not isinstance(named, Mapping):
            raise UsageError(f"{where}: {name} views must be a dict of view -> Hash, not {type(named).__name__}")
        if name not in widths:
            continue
        for view, value in named.items():
            if view not in known_views:
                raise UsageError(f"{where}: unknown view {view!r} (known views: {', '.join(sorted(known_views))})")
            _check_hash(name, value, widths[name], f"{where} view {view}")


def _without(snapshot: _Snapshot, gone: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The arrays of every table (main or view, by stem) that loses rows when the ids ``gone`` are removed."""
    every = [(name, table) for name, table in snapshot.tables.items()]
    every += [
        (table_stem(algorithm, view), table)
        for algorithm, views in snapshot.views.items()
        for view, table in views.items()
    ]
    out = {}
    for stem, table in every:
        keep = ~np.isin(table.ids, gone)
        if not keep.all():
            out[stem] = (table.ids[keep], table.codes[keep], table.quality[keep])
    return out


def _staged_without(snapshot: _Snapshot, gone: np.ndarray) -> _Staged:
    """The staged arrays of a removal of the record ids ``gone``: every table that loses rows, and the
    local features when they held some of those records."""
    arrays = _without(snapshot, gone)
    if snapshot.local is None:
        return _Staged(True, arrays)
    local = snapshot.local.without(gone)
    if local is snapshot.local:
        return _Staged(True, arrays)
    return _Staged(True, arrays, True, local)


def _write_generation(
    root: Path,
    generation: int,
    created_at: str,
    params: Mapping[str, Mapping[str, Any]],
    previous: _Snapshot | None,
    fill: Callable[[Path], tuple[Any, _Staged, dict[str, dict[str, Any]], int]],
) -> tuple[Any, Manifest | None, tuple[dict[str, AlgorithmTable], ViewTables, LocalTable | None] | None]:
    """Stage a generation in a temp directory, publish it, and switch the manifest to it.

    Tables the staged write did not change (main or view) are hard-linked from ``previous``; view
    tables it names for the first time are added. Returns the write's result, the new manifest and
    the new generation's tables and view tables (``None, None`` when nothing changed).
    """
    tmp = root / f"{_TMP_PREFIX}{generation:06d}-{secrets.token_hex(4)}"
    final = root / f"{_GEN_PREFIX}{generation:06d}"
    committed = False
    try:
        tmp.mkdir()
        _checkpoint("temp-created")
        result, staged, lists, total = fill(tmp)
        if not staged.changed:
            return result, None, None
        _checkpoint("database-written")
        tables: dict[str, AlgorithmTable] = {}
        structures: list[str] = []
        for name, p in params.items():
            if name in staged.arrays:
                ids, codes, quality = staged.arrays[name]
                for suffix, array in zip(_ARRAY_SUFFIXES, (ids, codes, quality)):
                    _save_array(tmp / _array_name(name, suffix), array.astype(_ARRAY_DTYPES[suffix], copy=False))
                tables[name] = AlgorithmTable.build(name, p["bit_length"], p["min_quality"], ids, codes, quality)
                structures += _save_structure(tmp, name, tables[name], None)
            else:
                if previous is None:
                    raise IndexStoreError(f"{root}: internal error: no arrays staged for {name}")
                for suffix in _ARRAY_SUFFIXES:
                    _link_or_copy(previous.gen_dir / _array_name(name, suffix), tmp / _array_name(name, suffix))
                tables[name] = previous.tables[name]
                structures += _save_structure(tmp, name, tables[name], previous)
        views: ViewTables = {}
        view_keys = {
            (algorithm, view) for algorithm, named in (previous.views if previous else {}).items() for view in named
        }
        view_keys.update(
            (algorithm, view)
            for algorithm, view in (stem.split(VIEW_SEPARATOR, 1) for stem in staged.arrays if VIEW_SEPARATOR in stem)
        )
        for algorithm, view in sorted(view_keys):
            stem, p = table_stem(algorithm, view), params[algorithm]
            if stem in staged.arrays:
                ids, codes, quality = staged.arrays[stem]
                for suffix, array in zip(_ARRAY_SUFFIXES, (ids, codes, quality)):
                    _save_array(tmp / _array_name(stem, suffix), array.astype(_ARRAY_DTYPES[suffix], copy=False))
                table = AlgorithmTable.build(algorithm, p["bit_length"], p["min_quality"], ids, codes, quality)
                structures += _save_structure(tmp, stem, table, None)
            else:
                if previous is None:  # pragma: no cover - the key came from previous
                    raise IndexStoreError(f"{root}: internal error: no arrays staged for {stem}")
                for suffix in _ARRAY_SUFFIXES:
                    _link_or_copy(previous.gen_dir / _array_name(stem, suffix), tmp / _array_name(stem, suffix))
                table = previous.views[algorithm][view]
                structures += _save_structure(tmp, stem, table, previous)
            views.setdefault(algorithm, {})[view] = table
        local = _stage_local(tmp, staged, previous)
        _checkpoint("arrays-written")
        fsync_file(tmp / db.DB_NAME)
        files = {name: sha256_file(tmp / name) for name in _expected_files(params, views, local is not None)}
        saved = {name: sha256_file(tmp / name) for name in structures}
        fsync_dir(tmp)
        _checkpoint("generation-synced")
        if final.exists():  # debris of a crash between rename and manifest switch
            shutil.rmtree(final)
        os.rename(tmp, final)
        fsync_dir(root)
        _checkpoint("generation-renamed")
        algorithms = {}
        for name, p in params.items():
            algorithms[name] = dict(p, count=tables[name].count, searchable=tables[name].searchable)
        view_counts = {
            algorithm: {view: {"count": table.count, "searchable": table.searchable} for view, table in named.items()}
            for algorithm, named in views.items()
        }
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            generation=generation,
            directory=final.name,
            created_at=created_at,
            updated_at=_now(),
            records=total,
            algorithms=algorithms,
            lists=lists,
            files=files,
            views=view_counts,
            structures=saved,
            local={} if local is None else local.counts(),
        )
        try:
            write_manifest(root, manifest, _checkpoint)
        except OSError as exc:
            if _current_directory(root) != final.name:
                raise
            # the manifest was replaced (the commit point) and only the directory sync after it failed
            committed = True
            raise IndexStoreError(
                f"{root}: generation {generation} was committed, but syncing the index "
                f"directory afterwards failed ({exc}); it may not survive a power loss"
            ) from exc
        committed = True
        _checkpoint("manifest-replaced")
        return result, manifest, (tables, views, local)
    except OSError as exc:
        if committed:
            raise
        raise IndexStoreError(f"{root}: write failed, index unchanged ({exc})") from exc
    finally:
        if not committed:
            _discard(root, tmp, final)


def _stage_local(tmp: Path, staged: _Staged, previous: _Snapshot | None) -> LocalTable | None:
    """Write (or link from ``previous``, when the write left them unchanged) the local-feature arrays
    into the staging directory ``tmp``; the generation's local table (``None``: it holds none)."""
    if staged.local_changed:
        if staged.local is not None:
            for name, array in staged.local.arrays().items():
                _save_array(tmp / f"{LOCAL_PREFIX}.{name}.npy", array.astype(LOCAL_ARRAYS[name], copy=False))
        return staged.local
    if previous is None or previous.local is None:
        return None
    for name in local_file_names():
        _link_or_copy(previous.gen_dir / name, tmp / name)
    return previous.local


def _current_directory(root: Path) -> str | None:
    """The generation directory the manifest on disk names (``None`` when it cannot be read)."""
    try:
        return read_manifest(root).directory
    except IndexStoreError:
        return None


def _discard(root: Path, tmp: Path, final: Path) -> None:
    """Remove the staging and new generation directories of a write that did not commit."""
    shutil.rmtree(tmp, ignore_errors=True)
    if final.exists():
        try:
            current = read_manifest(root).directory
        except IndexStoreError:
            current = None
        if current != final.name:  # the manifest switch may have happened just before an interrupt
            shutil.rmtree(final, ignore_errors=True)


def _snapshot_after_write(
    root: Path,
    manifest: Manifest | None,
    loaded: tuple[dict[str, AlgorithmTable], ViewTables, LocalTable | None] | None,
) -> _Snapshot:
    if manifest is None or loaded is None:
        raise IndexStoreError(f"{root}: internal error: no generation was written")
    tables, views, local = loaded
    gen_dir = root / manifest.directory
    with db.closed_on_failure(db.open_readonly(gen_dir / db.DB_NAME), str(gen_dir / db.DB_NAME)) as conn:
        labels = db.category_labels(conn)
        default_scheme = db.get_meta(conn, "default_category_scheme")
    return _Snapshot.build(root, manifest, gen_dir, tables, views, conn, labels, default_scheme, local=local)


def _check_creatable(root: Path) -> None:
    """Raise :class:`IndexStoreError` unless an index may be created in the existing path ``root``: a
    directory holding no index and nothing but debris of a create that did not commit."""
    if not root.is_dir():
        raise IndexStoreError(f"{root}: exists and is not a directory")
    if (root / MANIFEST_NAME).exists():
        raise IndexStoreError(f"{root}: already holds an index")
    try:
        foreign = [
            p.name
            for p in root.iterdir()
            if not (p.name.startswith((_GEN_PREFIX, _TMP_PREFIX, f".{MANIFEST_NAME}.tmp")) or p.name == LOCK_NAME)
        ]
    except OSError as exc:
        raise IndexStoreError(f"{root}: cannot list the directory ({exc})") from None
    if foreign:
        raise IndexStoreError(f"{root}: directory is not empty ({', '.join(sorted(foreign)[:5])})")


def _cleanup(root: Path, keep: str | None) -> None:
    """Remove generations other than ``keep``, staging directories and stray manifest temp files."""
    try:
        entries = list(root.iterdir())
    except OSError as exc:
        log.warning("%s: cannot list the index directory for clean-up (%s)", root, exc)
        return
    for entry in entries:
        name = entry.name
        if name == keep:
            continue
        try:
            if name.startswith((_GEN_PREFIX, _TMP_PREFIX)) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
                log.debug("removed %s", entry)
            elif name.startswith(f".{MANIFEST_NAME}.tmp-"):
                entry.unlink()
        except OSError as exc:
            log.warning("%s: could not remove %s (%s)", root, entry, exc)
