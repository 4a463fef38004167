"""The batch scan: walk evidence, read each file once, hash, match against a known index, report.

Two entry points:

* :func:`scan` — the pipeline as a generator of :class:`~matcher.scan_records.ScanRecord` values, in
  a deterministic order (the walk's order: path bytes, then frame), whatever the worker count.
* :func:`run_scan` — the driver behind ``matcher scan``: the same pipeline written to a report
  (JSON Lines, CSV or VICS) through a resumable journal, with a run manifest, returning a
  :class:`ScanSummary`.

What a file gets
----------------
Every entry the walk meets gets at least one record (one per frame for animated and multi-page
images). Each regular file is opened read-only (``O_NOATIME`` where permitted) and read once: the
same bytes give MD5, SHA-1 and SHA-256 for every file and, for images (type from magic bytes), the
decoded frames and their perceptual hashes. Nothing under an evidence path is ever written.

* A file that is not an image is not an error: digests only, status ``no_match`` (or ``match`` /
  ``known_good`` on a digest match), with a note saying what it is.
* An image that cannot be decoded gets status ``error`` with the reason, unless its digest matched
  (then ``match``, the error kept).
* Symbolic links inside the tree (never followed), FIFOs, sockets and devices (never opened) get
  status ``skipped`` and a note saying what they are; directories that cannot be listed and paths
  that do not exist get status ``error``.
* A file whose size or modification time changed while it was read gets
  :data:`~matcher.hashing.CHANGED_WHILE_READ` in the ``error`` of each of its records (one per
  frame, as usual; never an extra record); one whose size differs from the walk's (rewritten or
  replaced between listing and reading) gets a note saying so: its values are those of the content
  read. A file that vanished or cannot be opened (permission denied) gets an ``error`` record.

Matching
--------
Digests are looked up exactly (``md5``/``sha1``/``sha256`` matches: distance 0, no variant). Each
frame's perceptual hashes are searched within each algorithm's maximum distance (default: the
algorithm's ``default_max_distance``). With rotations (the default) the eight dihedral variants are
tried: for PDQ the exact variant hashes of :func:`matcher.algorithms.pdq.variant_hashes`, for the
imagehash family the hash of the frame transposed back. A variant name says how the evidence is
transformed relative to the known image (``rot90``: the evidence is the known image rotated 90°
counter-clockwise). A hash whose quality is below its algorithm's minimum (PDQ: 50) is not searched,
and the record gets the note ``"pdq not matched: quality N below 50"``; the frame's quality decides
for all of its query views.

Edited copies (issue 6): a crop, a letterbox border or a caption banner moves the full-frame hash far
from the original's, but the same pixels of a fixed region hash the same. Each frame is therefore
hashed as a set of *query views* (:func:`matcher.views.query_view_hashes`): the eight dihedral
variants, the frame with its uniform borders trimmed (``trim``, ``trim+rot90``, ...; with
``trim_borders``, when a border is found) and its top and bottom 88 % (``top88``, ``bottom88``; with
``regions``, and only when the index holds such view tables). Each query view is searched against
the records' main hashes and against the view tables :func:`matcher.views.known_views_for` names
that the index holds (images added to an index get view hashes of crops, small rotations, the
trimmed content and the top/bottom 88 %; hash lists carry none). A match keeps the query view as
``variant`` and names the known record's view in ``view`` (``None``: its main hash). A pad-20 copy
of an image on a PDQ hash list thus matches as ``trim`` against the main hash; a 10 % crop of an
image added as a file matches as ``orig`` against its ``crop10`` view.

Each matched known record is reported once per record (frame): a digest match if there is one
(by the strongest digest: SHA-256, then SHA-1, then MD5), else the perceptual match with the smallest
distance as a fraction of the hash length (ties: the record's main hash before its views, the
scan's algorithm order, then ``orig`` before the other variants, the dihedral variants before
``trim*`` and the regions). Matches are listed digest matches first, then nearest first.

Known-good records (``extra["known_good"]`` true, e.g. NSRL) are not matches: a file whose digest
matches a known-good record and no other record gets status ``known_good``. Perceptual similarity to
a known-good record proves nothing and is only noted. Status precedence, highest first:
``match`` > ``known_good`` > ``error`` > ``skipped`` > ``no_match``.

Workers
-------
With ``workers > 1`` files are hashed and matched in a pool of worker processes made from a
``forkserver`` (``spawn`` where there is none) context — FAISS's OpenMP runtime and ``fork`` do not
mix — each of which opens the index once, read-only, and runs FAISS single-threaded. Work goes out in
chunks with a bounded number in flight and comes back in submission order, so memory does not grow
with the number of files and the output order never depends on the worker count. While the workers
start (about a second: interpreter, imports, index, compiled kernels) the calling process scans the
first entries itself, the pool taking over from the next entry once every worker is ready.
``workers=1`` runs in the calling process and starts no process. A worker exits by itself once the
calling process is gone (killed, even with SIGKILL), so a killed scan leaves no process behind. In-process scanning sets FAISS to one
thread for its duration (process-wide; restored afterwards).

Engines
-------
``engine="local"`` (the default) is the process pool above. ``engine="dask"`` (``matcher scan
--engine dask [--scheduler ADDRESS]``) runs the same per-entry code as tasks on a Dask cluster
(:mod:`matcher.dask_engine`): this process walks the tree (metadata only; it never reads an evidence
file) and sends chunks of entries out; workers read, hash and match them, opening the index once per
worker process, and the results come back in walk order to the same journal and report code. The
records, the report and the summary are identical to a local scan's. Without a scheduler a local
cluster of ``workers`` processes is started on the loopback interface and closed at the end. A worker
that dies mid-task loses nothing: the scheduler runs its tasks again elsewhere and each task's result
is taken once; a chunk that keeps killing workers is scanned file by file, and a file that still kills
its worker gets an ``error`` record saying so. The engine is not a parameter of the report: a journal
written by one engine can be resumed with the other. The run manifest names the engine (and the
scheduler address, without credentials).

Resuming (``run_scan`` with an output file)
-------------------------------------------
Records are first appended to a journal, ``<output>.partial``: a header line with the scan's
parameters, then one JSON line per walked entry holding all of that entry's records, written and
flushed in one piece. When the walk is done the report is rendered from the journal into a temporary
file beside ``<output>``, fsynced and renamed over ``<output>``; the run manifest is written the same
way and the journal is removed. A scan killed at any moment (even ``SIGKILL``) and started again with
``resume=True`` keeps the journal's longest valid prefix (a torn last line is dropped), checks that
the parameters are the same and that the walk still reaches the last journaled path at the same
position, and continues with the next entry: the final report equals an uninterrupted run's. An
existing journal without ``resume`` is refused, as is a resume with different parameters; a
journal holding only a torn header (killed while it was created) is started again by a resume. A
write that fails (disk full, I/O error) stops the scan with a clear error and keeps the journal's
valid prefix, so that the same command with ``resume`` finishes it once space is freed; the report
and the run manifest are written to temporary files and renamed, so a failure leaves no partial report.

Exit codes of ``matcher scan``: 0 the scan completed and nothing matched; 1 it completed and at
least one record has status ``match``; 2 bad usage or a fatal error (index unreadable, output not
writable or inside an evidence path, journal present without ``--resume``). Per-file errors are in
the report and do not change the code.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import platform
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TextIO

from PIL import Image

from . import __version__, files, imaging
from .algorithms import registry
from .algorithms import pdq as pdq_module
from .errors import IndexStoreError, MatcherError, NotAFileError, UsageError
from .hashes import Hash
from .hashing import (
    HashOptions,
    describe_error,
    draft_size,
    file_facts,
    keep_if_image,
    not_decoded,
    with_changed,
)
from .index import KnownIndex
from .index.manifest import MANIFEST_NAME, fsync_dir
from .index.shards import SHARDS_NAME, ShardCatalog, ShardedIndex, is_sharded, open_any
from .index.types import IndexedRecord
from .scan_records import DIGEST_ALGORITHMS, STATUSES, ScanMatch, ScanRecord
from .views import KNOWN_VIEWS, REGION_VIEWS, TRIM_VIEW, known_views_for, query_view_hashes

__all__ = [
    "ENGINES",
    "ScanOptions",
    "ScanProgress",
    "ScanSummary",
    "scan",
    "run_scan",
    "JOURNAL_SUFFIX",
    "MANIFEST_SUFFIX",
    "EXIT_NO_MATCH",
    "EXIT_MATCH",
    "EXIT_FATAL",
]

log = logging.getLogger(__name__)

#: Appended to the output path to name the resumable journal.
JOURNAL_SUFFIX = ".partial"
#: Appended to the output path to name the run manifest.
MANIFEST_SUFFIX = ".manifest.json"
#: Exit code: the scan completed and no record has status ``match``.
EXIT_NO_MATCH = 0
#: Exit code: the scan completed and at least one record has status ``match``.
EXIT_MATCH = 1
#: Exit code: bad usage or a fatal error.
EXIT_FATAL = 2
#: The scan engines: a process pool on this machine, or tasks on a Dask cluster.
ENGINES = ("local", "dask")

_JOURNAL_VERSION = 1
_VARIANT_ORDER = {name: rank for rank, name in enumerate(pdq_module.VARIANT_NAMES)}
# Digest matches of one record are reported once, by the strongest digest that matched.
_DIGEST_PREFERENCE = ("sha256", "sha1", "md5")
# Test hook: after this many entries are journaled in one run, the process sends itself SIGKILL, so
# that tests can interrupt a scan at a known point without timing guesses. Never set it otherwise.
_KILL_HOOK_ENV = "_MATCHER_TEST_SIGKILL_AFTER"
# Whether the calling process scans the first entries while the pool starts (tests turn it off to
# have the pool do everything).
_PARENT_SCANS_WHILE_STARTING = True


# --------------------------------------------------------------------------------------------------
# Public values


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """How a scan hashes and matches.

    - ``algorithms``: perceptual algorithms to hash and match with (names or one comma-separated
      string); ``None``: every algorithm the index holds. Each must be held by the index.
    - ``max_distances``: per-algorithm largest distance counted as a match (``<=``); algorithms not
      named use their ``default_max_distance``.
    - ``rotations``: also try the eight rotations/flips of every frame (on by default).
    - ``trim_borders``: also try every frame with its uniform borders (letterbox, pillarbox,
      padding) trimmed, when it has any (on by default).
    - ``regions``: also try the top and bottom 88 % of every frame (caption banners), against the
      index's view tables of those regions (on by default; costs nothing for an index without them).
    - ``workers``: processes hashing in parallel; ``None``: ``os.cpu_count()``; ``1``: in this
      process, no process is started. With the dask engine: the size of the local cluster (a
      scheduler's cluster has the workers it has).
    - ``matches_only``: report only records with status ``match`` (the run's counts still cover
      every file).
    - ``hash_options``: decoding options (pixel and frame limits, EXIF orientation, ``fast`` draft
      decoding of JPEGs).
    - ``chunk_size``: entries sent to a worker at a time (one task of the Dask engine).
    - ``engine``: ``"local"`` (a process pool on this machine) or ``"dask"`` (tasks on a Dask cluster;
      needs ``pip install 'dask[distributed]'``). Both give the same records in the same order.
    - ``scheduler``: with ``engine="dask"``, the address of a running Dask scheduler (e.g.
      ``"tcp://10.0.0.5:8786"``); ``None`` starts a local cluster of ``workers`` processes listening
      on the loopback interface only. Its workers must read the evidence and the index at the same
      paths as this process (shared storage), so the evidence paths must then be absolute.
    """

    algorithms: tuple[str, ...] | str | None = None
    max_distances: Mapping[str, int] = field(default_factory=dict)
    rotations: bool = True
    trim_borders: bool = True
    regions: bool = True
    workers: int | None = None
    matches_only: bool = False
    hash_options: HashOptions = field(default_factory=HashOptions)
    chunk_size: int = 4
    engine: str = "local"
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise UsageError(f"unknown scan engine {self.engine!r} (known: {', '.join(ENGINES)})")
        if self.scheduler is not None:
            if not isinstance(self.scheduler, str) or not self.scheduler.strip():
                raise UsageError(f"scheduler must be a Dask scheduler address, not {self.scheduler!r}")
            if self.engine != "dask":
                raise UsageError("a scheduler address needs the dask engine (--engine dask)")
        if self.engine == "dask":
            from .dask_engine import require_distributed

            require_distributed()
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise UsageError(f"workers must be a positive integer or None, not {self.workers!r}")
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise UsageError(f"chunk_size must be a positive integer, not {self.chunk_size!r}")
        if not isinstance(self.hash_options, HashOptions):
            raise UsageError(f"hash_options must be HashOptions, not {type(self.hash_options).__name__}")
        for name, value in dict(self.max_distances).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UsageError(f"max distance of {name} must be a non-negative integer, not {value!r}")

    def worker_count(self) -> int:
        """The number of worker processes this scan uses (1: in-process)."""
        return self.workers if self.workers is not None else (os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class ScanProgress:
    """Progress of :func:`run_scan`: ``done`` entries of ``total`` (``None`` when not counted),
    ``resumed`` of them taken from the journal, ``elapsed`` seconds of this run."""

    done: int
    total: int | None
    resumed: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class ScanSummary:
    """What a completed :func:`run_scan` did.

    ``files``: walked entries (every file, link, FIFO, ... met). ``records``: records written to the
    report (after ``matches_only``). ``files_by_status``: each entry counted once under its records'
    highest-precedence status; ``records_by_status``: every record (before ``matches_only``).
    ``images``: files whose content is an image type. ``matches_by_list`` / ``matches_by_category``:
    files with status ``match`` having at least one match in that list / category (``"none"`` for
    records without category); known-good records are not counted. ``noatime_files`` /
    ``atime_files``: regular files read with / without ``O_NOATIME``. ``resumed_files``: entries taken
    from an earlier, interrupted run's journal. ``output``/``manifest``: paths written (``None`` for
    standard output / no manifest).
    """

    files: int
    records: int
    images: int
    files_by_status: dict[str, int]
    records_by_status: dict[str, int]
    matches_by_list: dict[str, int]
    matches_by_category: dict[str, int]
    noatime_files: int
    atime_files: int
    resumed_files: int
    started_at: str
    finished_at: str
    elapsed_seconds: float
    output: str | None
    manifest: str | None

    @property
    def matched_files(self) -> int:
        """Entries with status ``match``."""
        return self.files_by_status.get("match", 0)

    @property
    def errors(self) -> int:
        """Entries with status ``error``."""
        return self.files_by_status.get("error", 0)

    @property
    def skipped(self) -> int:
        """Entries with status ``skipped``."""
        return self.files_by_status.get("skipped", 0)

    @property
    def exit_code(self) -> int:
        """:data:`EXIT_MATCH` when anything matched, else :data:`EXIT_NO_MATCH`."""
        return EXIT_MATCH if self.matched_files else EXIT_NO_MATCH

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready counts (as in the run manifest)."""
        return {
            "files": self.files,
            "records": self.records,
            "images": self.images,
            "files_by_status": dict(self.files_by_status),
            "records_by_status": dict(self.records_by_status),
            "matched_files": self.matched_files,
            "matches_by_list": dict(self.matches_by_list),
            "matches_by_category": dict(self.matches_by_category),
            "noatime_files": self.noatime_files,
            "atime_files": self.atime_files,
            "resumed_files": self.resumed_files,
        }


# --------------------------------------------------------------------------------------------------
# Configuration shared with the workers


@dataclass(frozen=True, slots=True)
class _Config:
    """Everything a worker needs, resolved and validated in the parent (picklable)."""

    index_path: str
    index_generation: int
    algorithms: tuple[str, ...]
    max_distances: dict[str, int]
    rotations: bool
    hash_options: HashOptions
    trim_borders: bool = True
    regions: bool = True

    def parameters(self) -> dict[str, Any]:
        """The parameters that decide the report's content (journal header and run manifest)."""
        ho = self.hash_options
        return {
            "algorithms": list(self.algorithms),
            "max_distances": dict(self.max_distances),
            "rotations": self.rotations,
            "trim_borders": self.trim_borders,
            "regions": self.regions,
            "fast": ho.fast,
            "max_pixels": ho.max_pixels,
            "max_frames": ho.max_frames,
            "exif_orientation": ho.apply_exif_orientation,
            "max_file_bytes": ho.max_file_bytes,
        }


@dataclass(frozen=True, slots=True)
class _FileResult:
    """One walked entry's records, and whether O_NOATIME applied to its read (``None``: not read)."""

    path: bytes
    records: tuple[ScanRecord, ...]
    noatime: bool | None


def _resolve(index: KnownIndex | ShardedIndex | ShardCatalog, index_path: str, options: ScanOptions) -> _Config:
    if options.algorithms is None:
        chosen = tuple(index.algorithms)
    else:
        chosen = tuple(a.name for a in registry.resolve(options.algorithms))
    if not chosen:
        raise UsageError("no algorithm to scan with")
    missing = [name for name in chosen if name not in index.algorithms]
    if missing:
        raise UsageError(
            f"the index {index_path} holds no {', '.join(missing)} hashes (it indexes {', '.join(index.algorithms)})"
        )
    distances: dict[str, int] = {}
    for name, value in dict(options.max_distances).items():
        algorithm = registry.get(name)
        if name not in chosen:
            raise UsageError(f"--max-distance names {name}, which this scan does not use ({', '.join(chosen)})")
        if value > algorithm.bit_length:
            raise UsageError(f"max distance of {name} ({value}) exceeds its {algorithm.bit_length} bits")
        distances[name] = value
    for name in chosen:
        distances.setdefault(name, int(registry.get(name).default_max_distance))
    return _Config(
        index_path=os.path.abspath(index_path),
        index_generation=index.generation,
        algorithms=chosen,
        max_distances={name: distances[name] for name in chosen},
        rotations=bool(options.rotations),
        hash_options=options.hash_options,
        trim_borders=bool(options.trim_borders),
        regions=bool(options.regions),
    )


# --------------------------------------------------------------------------------------------------
# One entry: read, hash, match


@dataclass(slots=True)
class _Frame:
    """A decoded frame's facts and hashes (mutable working value)."""

    index: int | None
    width: int
    height: int
    variants: dict[str, dict[str, Hash]]  # algorithm -> query view (orig, rot90, trim, top88, ...) -> hash


@dataclass(frozen=True, slots=True)
class _Hashed:
    """A read and hashed entry waiting to be matched (picklable: the Dask engine sends it to shards)."""

    path: bytes
    base: ScanRecord
    frames: list[_Frame]
    error: str | None
    failed_frame: int | None
    note: str | None
    noatime: bool | None
    # the file changed while it was read and has decoded frames: each frame's record says so (a file
    # without frames carries it in ``error``); notes about the file beyond ``note``
    changed: bool = False
    notes: tuple[str, ...] = ()


class _Scanner:
    """Reads, hashes and matches entries against one open index (one per worker process).

    ``index`` may also be a :class:`~matcher.index.shards.ShardCatalog` (only its ``views`` are read
    here) when the matching is done elsewhere with :meth:`finish`.
    """

    def __init__(self, index: KnownIndex | ShardedIndex | ShardCatalog, config: _Config) -> None:
        self.index = index
        self.config = config
        self.algorithms = tuple(registry.get(name) for name in config.algorithms)
        self._algorithm_rank = {name: rank for rank, name in enumerate(config.algorithms)}
        # the view tables a search can find something in, per algorithm
        self._views = {name: frozenset(index.views.get(name, ())) for name in config.algorithms}
        # region query views only where the index has a view table they are searched against
        self._regions = {
            name: config.regions and any(view in self._views[name]
                                         for query in REGION_VIEWS for view in known_views_for(query))
            for name in config.algorithms
        }

    def warm_up(self) -> None:
        """Hash a tiny blank image with every algorithm, so that compiled kernels are loaded."""
        blank = Image.new("RGB", (32, 32))
        for algorithm in self.algorithms:
            self._query_views(algorithm, blank, None)

    def _query_views(self, algorithm: Any, image: Image.Image, size: tuple[int, int] | None) -> dict[str, Hash]:
        """The frame's query views for one algorithm, as the options and the index's view tables ask."""
        return query_view_hashes(algorithm, image, size, rotations=self.config.rotations,
                                 trim_borders=self.config.trim_borders, regions=self._regions[algorithm.name])

    # -- entries ---------------------------------------------------------------------------------

    def scan_entry(self, entry: files.Entry) -> _FileResult:
        """Every record of one walked entry; never raises for a problem of the entry itself."""
        hashed = self.hash_entry(entry)
        return hashed if isinstance(hashed, _FileResult) else self.finish(hashed, self.index)

    def hash_entry(self, entry: files.Entry) -> _FileResult | _Hashed:
        """The first half of :meth:`scan_entry`: read and hash, no index. A :class:`_FileResult` when the
        entry is done without matching (not a file, unreadable), else the :class:`_Hashed` value that
        :meth:`finish` matches. Never raises for a problem of the entry itself."""
        name, raw_hex = files.display_path(entry.path)
        if entry.kind != "file":
            return _FileResult(entry.path, (self._not_read(entry, name, raw_hex),), None)
        try:
            return self._hash_file(entry, name, raw_hex)
        except MatcherError:
            raise  # index failures are fatal; per-file problems are handled below
        except Exception as exc:  # noqa: BLE001 - nothing about one file may stop the scan
            return self._failed(entry.path, name, raw_hex, entry.size, exc)

    def finish(self, hashed: _Hashed, index: Any) -> _FileResult:
        """The second half of :meth:`scan_entry`: match a hashed entry against ``index`` (anything with
        ``lookup_digest``, ``search`` and ``records`` as :class:`KnownIndex` has them)."""
        try:
            records = self._match(index, hashed.base, hashed.frames, hashed.error, hashed.failed_frame, hashed.note,
                                  hashed.changed, hashed.notes)
        except MatcherError:
            raise
        except Exception as exc:  # noqa: BLE001
            return self._failed(hashed.path, hashed.base.path, hashed.base.path_raw_hex, hashed.base.size, exc)
        return _FileResult(hashed.path, tuple(records), hashed.noatime)

    @staticmethod
    def _failed(path: bytes, name: str, raw_hex: str | None, size: int | None, exc: Exception) -> _FileResult:
        log.debug("%s: %s", name, exc, exc_info=True)
        record = ScanRecord(path=name, status="error", size=size, error=describe_error(exc), path_raw_hex=raw_hex)
        return _FileResult(path, (record,), None)

    @staticmethod
    def _not_read(entry: files.Entry, name: str, raw_hex: str | None) -> ScanRecord:
        skipped, message = entry.not_read()
        if skipped:
            return ScanRecord(path=name, status="skipped", size=entry.size, notes=(message,), path_raw_hex=raw_hex)
        return ScanRecord(path=name, status="error", size=entry.size, error=message, path_raw_hex=raw_hex)

    def _hash_file(self, entry: files.Entry, name: str, raw_hex: str | None) -> _FileResult | _Hashed:
        options = self.config.hash_options
        try:
            result = files.read_file(entry.path, keep=keep_if_image, max_keep_bytes=options.max_file_bytes)
        except NotAFileError as exc:  # swapped for a FIFO or device after the walk: never read
            record = ScanRecord(path=name, status="skipped", size=entry.size, notes=(str(exc),), path_raw_hex=raw_hex)
            return _FileResult(entry.path, (record,), None)
        except MatcherError as exc:
            record = ScanRecord(path=name, status="error", size=entry.size, error=str(exc), path_raw_hex=raw_hex)
            return _FileResult(entry.path, (record,), None)
        media = imaging.sniff(result.head)
        base = ScanRecord(status="no_match", **file_facts(name, raw_hex, result.size, result.digests, media))
        frames: list[_Frame] = []
        failed_frame: int | None = None
        error, note = not_decoded(result, media, options.max_file_bytes)
        if error is None and note is None:
            base, frames, error, failed_frame = self._decode(base, result.data)
        changed = result.changed
        if not frames:  # the file's one record says it changed
            error, changed = with_changed(error, changed), False
        notes: tuple[str, ...] = ()
        if entry.size is not None and result.size != entry.size:  # rewritten or replaced since the walk
            notes = (f"size changed between listing ({entry.size} bytes) and reading ({result.size} bytes); "
                     "the values are those of the content read",)
        return _Hashed(entry.path, base, frames, error, failed_frame, note, result.noatime, changed, notes)

    def _decode(self, base: ScanRecord, data: bytes) -> tuple[ScanRecord, list[_Frame], str | None, int | None]:
        """Decode and hash every frame; returns the base with image facts, frames, error, failed frame."""
        options = self.config.hash_options
        decode = options.decode_options()
        draft = draft_size(self.algorithms, options)
        try:
            info, image = imaging.open_image(data, decode)
            image.close()
            base = replace(base, width=info.width, height=info.height, frame_count=info.frame_count)
            frames_iter = imaging.iter_frames(data, decode, draft_size=draft)
        except Exception as exc:  # noqa: BLE001 - becomes the record's error
            return base, [], describe_error(exc), None
        frames: list[_Frame] = []
        current: int | None = None
        try:
            for frame in frames_iter:
                current = frame.index
                full = (frame.width, frame.height)
                size = None if frame.image.size == full else full
                variants = {a.name: self._query_views(a, frame.image, size) for a in self.algorithms}
                frames.append(_Frame(frame.index, frame.width, frame.height, variants))
        except Exception as exc:  # noqa: BLE001
            multi = base.frame_count not in (None, 1)
            failed = (0 if current is None else current + 1) if multi else None
            return base, frames, describe_error(exc), failed
        if not frames:
            return base, frames, "no frame could be decoded", None
        return base, frames, None, None

    # -- matching ------------------------------------------------------------------------------

    def _match(self, index: Any, base: ScanRecord, frames: list[_Frame], error: str | None, failed_frame: int | None,
               note: str | None, changed: bool = False, file_notes: tuple[str, ...] = ()) -> list[ScanRecord]:
        digest_matches, known_good = self._digest_matches(index, base)
        per_frame, frame_notes = self._perceptual_matches(index, frames)
        perceptual_ids = {m.record for found in per_frame for m in found.values()}
        known_good |= self._known_good(index, perceptual_ids - known_good)
        shells: list[tuple[ScanRecord, dict[int, ScanMatch], list[str]]] = []
        for frame, found, notes in zip(frames, per_frame, frame_notes):
            orig = {name: v["orig"] for name, v in frame.variants.items()}
            pdq = orig.get(pdq_module.pdq.name)
            record = replace(base, frame=frame.index, width=frame.width, height=frame.height, hashes=orig,
                             pdq_quality=pdq.quality if pdq is not None else None, error=with_changed(None, changed))
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
                              for m in sorted(near_good, key=self._order))
            notes = [*notes, f"perceptually similar to known-good record(s) {names}; not counted as known-good"]
        kept.sort(key=self._order)
        if any(m.record not in known_good for m in kept):
            status = "match"
        elif kept:
            status = "known_good"
        elif record.error is not None:
            status = "error"
        else:
            status = "no_match"
        return replace(record, status=status, matches=tuple(kept), notes=tuple(notes))

    def _order(self, match: ScanMatch) -> tuple[Any, ...]:
        """Sort key: digest matches first, then by distance as a fraction of the hash length, then
        main hashes before views, the scan's algorithm order, and the query view's rank."""
        if match.algorithm in DIGEST_ALGORITHMS:
            return (0, 0.0, 0, _DIGEST_PREFERENCE.index(match.algorithm), 0, match.record)
        bits = registry.get(match.algorithm).bit_length
        return (1, match.distance / bits, _view_rank(match.view), self._algorithm_rank.get(match.algorithm, 99),
                _variant_rank(match.variant), match.record)

    def _digest_matches(self, index: Any, base: ScanRecord) -> tuple[dict[int, ScanMatch], set[int]]:
        found: dict[int, ScanMatch] = {}
        known_good: set[int] = set()
        for kind in _DIGEST_PREFERENCE:
            value = getattr(base, kind)
            if not value:
                continue
            for rec in index.lookup_digest(kind, [value]).get(value, []):
                if rec.id not in found:
                    found[rec.id] = ScanMatch(kind, 0, None, rec.id, rec.list_name, rec.category, rec.series)
                if _is_known_good(rec):
                    known_good.add(rec.id)
        return found, known_good

    def _known_good(self, index: Any, ids: set[int]) -> set[int]:
        if not ids:
            return set()
        return {rec.id for rec in index.records(sorted(ids)) if _is_known_good(rec)}

    def _perceptual_matches(self, index: Any, frames: list[_Frame]) -> tuple[list[dict[int, ScanMatch]], list[list[str]]]:
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
                        if held is None or self._order(candidate) < self._order(held):
                            found[position][m.record_id] = candidate
        return found, notes


def _is_known_good(record: IndexedRecord) -> bool:
    return bool(record.extra.get("known_good"))


def _view_rank(view: str | None) -> int:
    """Known-side preference on equal distance: the main hash, then the views in their documented order."""
    if view is None:
        return 0
    return 1 + (KNOWN_VIEWS.index(view) if view in KNOWN_VIEWS else len(KNOWN_VIEWS))


def _variant_rank(variant: str | None) -> int:
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
# Workers


_WORKER: _Scanner | None = None
_WORKER_ERROR: MatcherError | None = None


def _init_worker(config: _Config, driver: int | None = None) -> None:
    """Pool initializer: open the index once, read-only; FAISS single-threaded.

    Never raises (a failing initializer would make some pools restart workers forever); a failure is
    kept and raised by the first task instead. ``driver``: the scanning process's id, watched so that
    this worker exits when the driver is killed (see :func:`_watch_driver`).
    """
    global _WORKER, _WORKER_ERROR
    _start_watching_driver(driver)
    try:
        _WORKER = _worker_scanner(config)
    except MatcherError as exc:
        _WORKER_ERROR = exc


def _start_watching_driver(driver: int | None) -> None:
    """In a pool worker: exit once the process ``driver`` is gone (a daemon thread; POSIX only)."""
    if driver is not None and os.name == "posix":
        threading.Thread(target=_watch_driver, args=(driver,), name="matcher-watch-driver", daemon=True).start()


def _watch_driver(driver: int, interval: float = 0.5) -> None:
    """Exit this worker process once the driver ``driver`` is gone.

    A driver killed with SIGKILL cannot shut its pool down, and its workers (children of the
    forkserver, holding both ends of their task queue) would otherwise wait for work forever, each
    holding the index in memory, along with the forkserver and the resource tracker.
    """
    while True:
        time.sleep(interval)
        try:
            os.kill(driver, 0)
        except ProcessLookupError:
            os._exit(1)
        except OSError:
            pass  # exists (signalling it is not permitted): keep watching


def _worker_scanner(config: _Config) -> _Scanner:
    """A worker process's scanner: the index opened read-only (the generation the scan started
    with), FAISS single-threaded for the process. Raises only :class:`MatcherError`."""
    try:
        import faiss

        faiss.omp_set_num_threads(1)
        index = open_any(config.index_path)
        if index.generation != config.index_generation:
            generation = index.generation
            index.close()
            raise IndexStoreError(
                f"{config.index_path}: the index changed while the scan started (generation "
                f"{generation}, expected {config.index_generation}); run the scan again")
        return _Scanner(index, config)
    except MatcherError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise IndexStoreError(f"{config.index_path}: worker could not open the index: {describe_error(exc)}") from None


def _scan_chunk(entries: list[files.Entry]) -> list[_FileResult]:
    """Pool task: the results of a chunk of entries, in order."""
    if _WORKER is None:
        raise _WORKER_ERROR or IndexStoreError("scan worker was not initialised")
    return [_WORKER.scan_entry(entry) for entry in entries]


def _warm_up() -> bool:
    """Pool task: returns once this worker is ready (index open, hashing kernels loaded)."""
    if _WORKER is None:
        raise _WORKER_ERROR or IndexStoreError("scan worker was not initialised")
    _WORKER.warm_up()
    return True


def _pool_context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["matcher.scan"])
        return ctx
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def _single_threaded_faiss() -> Iterator[None]:
    """FAISS single-threaded while an in-process scan runs (restored after).

    Each file's search is tiny; FAISS's OpenMP threads would only spin beside the hashing thread.
    This is process-wide: FAISS searches run by other threads meanwhile are single-threaded too.
    """
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _chunks(entries: Iterable[files.Entry], size: int) -> Iterator[list[files.Entry]]:
    chunk: list[files.Entry] = []
    for entry in entries:
        chunk.append(entry)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _results(entries: Iterable[files.Entry], config: _Config, index: KnownIndex | ShardedIndex | ShardCatalog | None,
             options: ScanOptions) -> Iterator[_FileResult]:
    """Every entry's result, in the order of ``entries``; parallel when ``options`` asks for it.

    ``index`` is an open index for the in-process scanning: everything with one worker, else the
    entries met while the pool starts (``None``: the pool does all of it). The Dask engine does not
    use it: its workers read every entry.
    """
    if options.engine == "dask":
        from .dask_engine import dask_results

        yield from dask_results(entries, config, options)
        return
    workers = options.worker_count()
    if workers == 1:
        scanner = _Scanner(index if index is not None else open_any(config.index_path), config)
        with _single_threaded_faiss():
            for entry in entries:
                yield scanner.scan_entry(entry)
        return
    window = max(2, 2 * workers)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_init_worker,
                               initargs=(config, os.getpid()))
    pending: collections.deque[Future[list[_FileResult]]] = collections.deque()
    probes: list[Future[Any]] = []
    failures: list[BaseException] = []

    def start_workers() -> None:  # starting a process blocks until it runs; let that happen aside
        try:
            for _ in range(workers):
                probes.append(pool.submit(_warm_up))
        except BaseException as exc:  # noqa: BLE001 - re-raised by the generator
            failures.append(exc)

    starter = threading.Thread(target=start_workers, name="matcher-scan-start-workers", daemon=True)
    starter.start()
    try:
        entries = iter(entries)
        if index is not None and _PARENT_SCANS_WHILE_STARTING:
            # While the workers start (interpreter, imports, index, compiled kernels), this process
            # scans the first entries itself; the rest go to the pool, in order, after them.
            scanner = _Scanner(index, config)
            with _single_threaded_faiss():
                while starter.is_alive() or not all(probe.done() for probe in probes):
                    entry = next(entries, None)
                    if entry is None:
                        break
                    yield scanner.scan_entry(entry)
        starter.join()
        if failures:
            raise MatcherError(f"scan workers could not be started: {describe_error(failures[0])}")
        for probe in probes:
            _collect(probe)  # a worker that could not open the index raises here
        chunks = _chunks(entries, options.chunk_size)
        for chunk in chunks:
            pending.append(pool.submit(_scan_chunk, chunk))
            if len(pending) >= window:
                yield from _collect(pending.popleft())
        while pending:
            yield from _collect(pending.popleft())
    finally:
        starter.join()
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _collect(future: Future[Any]) -> Any:
    try:
        return future.result()
    except BrokenProcessPool as exc:
        raise MatcherError(f"a scan worker process died unexpectedly ({exc}); a journaled scan can be resumed") from None


# --------------------------------------------------------------------------------------------------
# The library pipeline


def _open_index(index_path: str | os.PathLike[str], options: ScanOptions) -> KnownIndex | ShardedIndex | ShardCatalog:
    """The index at ``index_path``, read-only: a single index or a sharded one (answers are the same).

    A sharded index scanned with the Dask engine is only described here (a :class:`ShardCatalog`):
    its shards are opened by the workers that hold them, never all in this process.
    """
    if options.engine == "dask" and is_sharded(index_path):
        return ShardCatalog.read(index_path)
    return open_any(index_path)


def _check_engine_paths(paths: Sequence[Any], options: ScanOptions) -> None:
    """Workers of a remote Dask cluster resolve paths on their own: relative ones are refused there."""
    if options.engine == "dask" and options.scheduler is not None:
        for path in paths:
            if not os.path.isabs(os.fspath(path)):
                raise UsageError(
                    f"evidence path {os.fsdecode(os.fspath(path))!r} is relative: with a Dask scheduler give "
                    "absolute paths (the workers resolve them on their own machines)")


def _engine_facts(options: ScanOptions) -> dict[str, Any]:
    """The engine of a run, for its manifest (a scheduler address without credentials)."""
    if options.engine == "dask":
        from .dask_engine import public_address

        if options.scheduler is None:
            return {"name": "dask", "scheduler": None, "local_cluster_workers": options.worker_count()}
        return {"name": "dask", "scheduler": public_address(options.scheduler)}
    return {"name": "local", "workers": options.worker_count()}


def _walk(paths: Sequence[str | bytes | os.PathLike[str] | os.PathLike[bytes]]) -> Iterator[files.Entry]:
    return files.walk(list(paths))


def scan(
    paths: Sequence[str | bytes | os.PathLike[str] | os.PathLike[bytes]],
    index_path: str | os.PathLike[str],
    options: ScanOptions | None = None,
) -> Iterator[ScanRecord]:
    """Scan files and directories against the index at ``index_path``; yield every record.

    Records come in the walk's order (path bytes, then frame) whatever ``options.workers``. The index
    is opened (and its parameters checked) before this function returns, so an unreadable index
    raises :class:`~matcher.errors.IndexStoreError` here; a bad option raises
    :class:`~matcher.errors.UsageError`. With ``workers > 1`` the generator owns a process pool,
    shut down when it is exhausted or closed; with the dask engine, a Dask client (and a local
    cluster when no scheduler is given), closed the same way.
    """
    options = options or ScanOptions()
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise UsageError("scan() takes a sequence of paths; wrap a single path in a list")
    _check_engine_paths(paths, options)
    index = _open_index(index_path, options)
    try:
        config = _resolve(index, os.fspath(index_path), options)
    except BaseException:
        index.close()
        raise

    def generate() -> Iterator[ScanRecord]:
        try:
            for result in _results(_walk(paths), config, index, options):
                for record in result.records:
                    if not options.matches_only or record.status == "match":
                        yield record
        finally:
            index.close()

    return generate()


# --------------------------------------------------------------------------------------------------
# Counting


class _Tally:
    """Counts for the summary and the manifest, fed one entry's records at a time."""

    def __init__(self) -> None:
        self.files = 0
        self.records = 0
        self.images = 0
        self.files_by_status = {status: 0 for status in STATUSES}
        self.records_by_status = {status: 0 for status in STATUSES}
        self.by_list: dict[str, int] = {}
        self.by_category: dict[str, int] = {}
        self.noatime = 0
        self.atime = 0

    def add(self, records: Sequence[ScanRecord], noatime: bool | None, reported: int) -> None:
        self.files += 1
        self.records += reported
        for record in records:
            self.records_by_status[record.status] += 1
        status = min((r.status for r in records), key=STATUSES.index) if records else "error"
        self.files_by_status[status] += 1
        if any(r.mime and r.mime.startswith("image/") for r in records):
            self.images += 1
        if noatime is True:
            self.noatime += 1
        elif noatime is False:
            self.atime += 1
        if status == "match":
            lists = {m.list for r in records if r.status == "match" for m in r.matches}
            categories = {"none" if m.category is None else str(m.category)
                          for r in records if r.status == "match" for m in r.matches}
            for name in lists:
                self.by_list[name] = self.by_list.get(name, 0) + 1
            for name in categories:
                self.by_category[name] = self.by_category.get(name, 0) + 1

    def summary(self, resumed: int, started_at: str, finished_at: str, elapsed: float, output: str | None,
                manifest: str | None) -> ScanSummary:
        return ScanSummary(
            files=self.files,
            records=self.records,
            images=self.images,
            files_by_status=dict(self.files_by_status),
            records_by_status=dict(self.records_by_status),
            matches_by_list=dict(sorted(self.by_list.items())),
            matches_by_category=dict(sorted(self.by_category.items())),
            noatime_files=self.noatime,
            atime_files=self.atime,
            resumed_files=resumed,
            started_at=started_at,
            finished_at=finished_at,
            elapsed_seconds=round(elapsed, 3),
            output=output,
            manifest=manifest,
        )


# --------------------------------------------------------------------------------------------------
# Journal


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _group_line(seq: int, result: _FileResult, algorithms: Sequence[str]) -> str:
    payload = {
        "seq": seq,
        "path": result.path.hex(),
        "noatime": result.noatime,
        "records": [record.to_dict(list(algorithms)) for record in result.records],
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n"


@dataclass(frozen=True, slots=True)
class _JournalState:
    """What a journal on disk holds: its header, complete entries, the last one's path, valid bytes."""

    header: dict[str, Any]
    entries: int
    last_path: bytes | None
    valid_bytes: int


_JOURNAL_MARK = b'{"matcher_scan_journal":'


def _read_journal(path: str) -> _JournalState | None:
    """Parse a journal, keeping its longest valid prefix of complete, consecutive entry lines.

    ``None`` when the journal holds only a torn header (a run killed while creating it): no entry
    was written yet. Anything else that is not a journal raises :class:`UsageError`."""
    entries = 0
    last_path: bytes | None = None
    valid = 0
    with open(path, "rb") as handle:
        first = handle.readline()
        if not first.endswith(b"\n") and (_JOURNAL_MARK.startswith(first) or first.startswith(_JOURNAL_MARK)):
            return None
        try:
            header = json.loads(first) if first.endswith(b"\n") else None
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("matcher_scan_journal") != _JOURNAL_VERSION:
            raise UsageError(f"{path} is not a matcher scan journal this version can resume; remove it to start again")
        valid = len(first)
        for line in handle:
            if not line.endswith(b"\n"):
                break  # torn last write
            try:
                group = json.loads(line)
                seq, group_path = group["seq"], bytes.fromhex(group["path"])
                complete = isinstance(group["records"], list) and "noatime" in group
            except (ValueError, KeyError, TypeError):
                break
            if not complete:
                break
            if seq != entries:
                break
            entries += 1
            last_path = group_path
            valid += len(line)
    return _JournalState(header, entries, last_path, valid)


def _iter_journal(path: str, algorithms: Sequence[str]) -> Iterator[tuple[list[ScanRecord], bool | None]]:
    with open(path, "rb") as handle:
        handle.readline()
        for line in handle:
            group = json.loads(line)
            records = [ScanRecord.from_dict(data, list(algorithms)) for data in group["records"]]
            yield records, group["noatime"]


def _temporary_name(path: str, pid: int) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp-{pid}")


def _remove_stale_temporaries(path: str) -> None:
    """Remove the temporary files :func:`_atomic_text` left beside ``path`` in runs that were killed
    while writing it (named with the process id of a process that no longer exists)."""
    directory = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)}.tmp-"
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):]
        if not name.startswith(prefix) or not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # that process is alive (a run writing it now): leave it
        except ProcessLookupError:
            pass
        except OSError:
            continue
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, name))
            log.info("removed %s, left by a killed run", name)


@contextlib.contextmanager
def _atomic_text(path: str) -> Iterator[TextIO]:
    """A text file written to a temporary name beside ``path`` and renamed over it once complete."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = _temporary_name(path, os.getpid())
    try:
        stream = open(tmp, "w", encoding="utf-8", errors="backslashreplace", newline="")
    except OSError as exc:
        raise MatcherError(f"cannot write {path!r}: {exc.strerror or exc}") from None
    try:
        with stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
        fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------------------------
# Driver


def _writer_class(format: str) -> type:  # noqa: A002
    try:
        from .formats.scan_report import SCAN_WRITERS
    except ImportError as exc:
        raise UsageError(f"scan report writers are not available ({exc})") from None
    if format not in SCAN_WRITERS:
        raise UsageError(f"unknown scan report format {format!r} (known: {', '.join(sorted(SCAN_WRITERS))})")
    return SCAN_WRITERS[format]


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"matcher": __version__, "python": platform.python_version()}
    for name, dist in (("numpy", "numpy"), ("Pillow", "pillow"), ("imagehash", "ImageHash"), ("faiss", "faiss-cpu")):
        try:
            out[name] = version(dist)
        except PackageNotFoundError:
            out[name] = None
    return out


def run_scan(
    paths: Sequence[str | bytes | os.PathLike[str] | os.PathLike[bytes]],
    index_path: str | os.PathLike[str],
    options: ScanOptions | None = None,
    output_path: str | None = None,
    format: str = "jsonl",  # noqa: A002 - the CLI's word
    resume: bool = False,
    *,
    manifest_path: str | None = None,
    stream: TextIO | None = None,
    progress: Callable[[ScanProgress], None] | None = None,
    count_first: bool = False,
    case: Mapping[str, Any] | None = None,
) -> ScanSummary:
    """Scan ``paths`` against the index and write the report; the driver behind ``matcher scan``.

    ``case`` (VICS reports only) adds case-level fields (e.g. ``{"CaseNumber": "2026-17"}``) to the
    VICS ``#Cases`` object; a resumed scan takes those of the run that finishes it.

    ``output_path`` ``None`` writes the report to ``stream`` (default ``sys.stdout``) as it goes, with
    no journal and no resume; the run manifest is then written only to ``manifest_path``. With an
    ``output_path`` the run is journaled in ``<output>.partial`` and can be resumed (see the module
    documentation); the manifest goes to ``manifest_path`` or ``<output>.manifest.json``.

    ``progress`` is called after every entry (and once before the first) with a
    :class:`ScanProgress`; ``count_first`` walks the tree once beforehand so that it has a total.
    Raises :class:`~matcher.errors.UsageError` for bad arguments, an output inside an evidence path,
    an existing journal without ``resume`` or a resume with different parameters;
    :class:`~matcher.errors.IndexStoreError` for an unusable index; :class:`~matcher.errors.MatcherError`
    when the output cannot be written.
    """
    options = options or ScanOptions()
    clock = time.perf_counter()
    started_at = _utc_now()
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise UsageError("run_scan() takes a sequence of paths; wrap a single path in a list")
    if not paths:
        raise UsageError("give at least one path to scan")
    _check_engine_paths(paths, options)
    writer_class = _writer_class(format)
    if case:
        if format != "vics":
            raise UsageError("case fields go into VICS reports only (--format vics)")
        writer_class = functools.partial(writer_class, case=dict(case))
    if output_path == "-":
        output_path = None
    if output_path is None and resume:
        raise UsageError("--resume needs --output FILE (a scan to standard output keeps no journal)")
    journal = None if output_path is None else output_path + JOURNAL_SUFFIX
    if output_path is not None and manifest_path is None:
        manifest_path = output_path + MANIFEST_SUFFIX
    for what, target in (("output", output_path), ("journal", journal), ("manifest", manifest_path)):
        if target is None:
            continue
        root = files.path_inside(target, paths)
        if root is not None:
            raise UsageError(f"{what} {target!r} is inside the evidence path {root!r}; matcher never writes there")
    if output_path is not None and os.path.isdir(output_path):
        raise UsageError(f"output {output_path!r} is a directory")

    manifest_file = os.path.join(os.fspath(index_path), SHARDS_NAME if is_sharded(index_path) else MANIFEST_NAME)
    index = _open_index(index_path, options)
    try:
        config = _resolve(index, os.fspath(index_path), options)
        try:
            index_checksum = _sha256_of(manifest_file)
        except OSError as exc:
            raise IndexStoreError(f"{manifest_file}: cannot be read: {exc.strerror or exc}") from None
        parameters = {
            **config.parameters(),
            "matches_only": options.matches_only,
            "paths": [os.fsencode(p).hex() for p in paths],
            "index_manifest_sha256": index_checksum,
        }
        return _drive(paths, config, index, options, parameters, output_path, journal, manifest_path, format,
                      writer_class, resume, stream, progress, count_first, clock, started_at)
    finally:
        index.close()


def _drive(paths: Sequence[Any], config: _Config, index: KnownIndex | ShardedIndex | ShardCatalog, options: ScanOptions,
           parameters: dict[str, Any], output_path: str | None, journal: str | None, manifest_path: str | None,
           format: str, writer_class: type, resume: bool, stream: TextIO | None,  # noqa: A002
           progress: Callable[[ScanProgress], None] | None, count_first: bool, clock: float,
           started_at: str) -> ScanSummary:
    total = sum(1 for _ in _walk(paths)) if count_first else None
    algorithms = list(config.algorithms)
    in_process = index  # scans everything with one worker, else the first entries while the pool starts

    def report(done: int, resumed: int) -> None:
        if progress is not None:
            progress(ScanProgress(done, total, resumed, time.perf_counter() - clock))

    if journal is None:  # standard output: stream straight through the writer
        out = stream if stream is not None else sys.stdout
        tally = _Tally()
        writer = writer_class(out, algorithms)
        report(0, 0)
        for result in _results(_walk(paths), config, in_process, options):
            shown = [r for r in result.records if not options.matches_only or r.status == "match"]
            for record in shown:
                writer.write(record)
            tally.add(result.records, result.noatime, len(shown))
            report(tally.files, 0)
        writer.close()
        summary = tally.summary(0, started_at, _utc_now(), time.perf_counter() - clock, None, manifest_path)
        if manifest_path is not None:
            _write_manifest(manifest_path, config, parameters, summary, [], None, format, _engine_facts(options))
        return summary

    resumed, resumed_runs, first_started = _prepare_journal(journal, parameters, resume, started_at)
    kill_after = int(os.environ.get(_KILL_HOOK_ENV, "0") or 0)
    entries = _walk(paths)
    if resumed.entries:
        entries = _skip(entries, resumed, journal)
    report(resumed.entries, resumed.entries)
    seq = resumed.entries
    try:
        # Unbuffered: each entry's line goes to the file in one write, and a failed write (disk full)
        # is not retried by a buffer flushed on close; the journal keeps its valid prefix either way.
        handle = open(journal, "r+b", buffering=0)
    except OSError as exc:
        raise MatcherError(f"cannot write journal {journal!r}: {exc.strerror or exc}") from None
    with handle:
        try:
            handle.truncate(resumed.valid_bytes)
            handle.seek(resumed.valid_bytes)
        except OSError as exc:
            raise _resumable_error(f"cannot write journal {journal!r}", exc) from None
        written = 0
        for result in _results(entries, config, in_process, options):
            try:
                _write_all(handle, _group_line(seq, result, algorithms).encode("utf-8", "backslashreplace"))
            except OSError as exc:
                raise _resumable_error(f"cannot write journal {journal!r}", exc) from None
            seq += 1
            written += 1
            if kill_after and written >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            report(seq, resumed.entries)
        try:
            os.fsync(handle.fileno())
        except OSError as exc:
            raise _resumable_error(f"cannot write journal {journal!r}", exc) from None

    # Render the report from the journal (atomically), then the manifest, then drop the journal.
    tally = _Tally()
    if output_path is None:  # pragma: no cover - a journal always has an output
        raise UsageError("a journaled scan needs an output path")
    for target in (output_path, manifest_path):
        if target is not None:
            _remove_stale_temporaries(target)
    try:
        with _atomic_text(output_path) as out:
            writer = writer_class(out, algorithms)
            for records, noatime in _iter_journal(journal, algorithms):
                shown = [r for r in records if not options.matches_only or r.status == "match"]
                for record in shown:
                    writer.write(record)
                tally.add(records, noatime, len(shown))
            writer.close()
        summary = tally.summary(resumed.entries, first_started, _utc_now(), time.perf_counter() - clock,
                                output_path, manifest_path)
        if manifest_path is not None:
            _write_manifest(manifest_path, config, parameters, summary, resumed_runs, output_path, format,
                            _engine_facts(options))
    except OSError as exc:  # e.g. disk full: the complete journal stays, so --resume renders it again
        raise _resumable_error(f"cannot write the report {output_path!r} or its manifest", exc) from None
    os.unlink(journal)
    fsync_dir(os.path.dirname(os.path.abspath(journal)))
    return summary


def _write_all(handle: Any, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file (a raw write may take only part of it)."""
    view = memoryview(data)
    while view:
        count = handle.write(view)
        if not count:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[count:]


def _resumable_error(what: str, exc: OSError) -> MatcherError:
    """A failed write of a journaled scan (disk full, I/O error): a clear message saying the journal is
    kept and the scan can be resumed once the cause is fixed."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return MatcherError(f"{what}: {reason}; the scan's journal is kept: free space (or fix the cause) and run the "
                        "same command again with --resume to finish it")


def _prepare_journal(journal: str, parameters: dict[str, Any], resume: bool,
                     started_at: str) -> tuple[_JournalState, list[str], str]:
    """Open an existing journal for resuming (checked) or create a new one; returns its state,
    the start times of the runs that wrote it, and the first run's start time."""
    if os.path.lexists(journal):
        if not resume:
            raise UsageError(
                f"an interrupted scan's journal {journal!r} exists: pass --resume to continue it, "
                "or remove it to start again")
        state = _read_journal(journal)
        if state is None:  # killed while the header was being written: the journal holds no entry yet
            log.info("%s holds only a torn header; starting it again", journal)
            try:
                os.unlink(journal)
            except OSError as exc:
                raise MatcherError(f"cannot replace journal {journal!r}: {exc.strerror or exc}") from None
            return _prepare_journal(journal, parameters, False, started_at)
        stored = state.header.get("parameters")
        if stored != parameters:
            changed = sorted(k for k in set(stored or {}) | set(parameters)
                             if (stored or {}).get(k) != parameters.get(k))
            raise UsageError(
                f"cannot resume {journal!r}: it was written with different parameters ({', '.join(changed)}); "
                "run with the original parameters, or remove the journal to start again")
        runs = [*state.header.get("runs", []), started_at]
        log.info("resuming %s after %d entries", journal, state.entries)
        return state, runs, str(state.header.get("started_at", started_at))
    header = {"matcher_scan_journal": _JOURNAL_VERSION, "matcher_version": __version__, "started_at": started_at,
              "runs": [started_at], "parameters": parameters}
    line = (json.dumps(header, separators=(",", ":")) + "\n").encode("utf-8")
    try:
        handle = open(journal, "xb")
    except OSError as exc:
        raise MatcherError(f"cannot write journal {journal!r}: {exc.strerror or exc}") from None
    try:
        with handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:  # e.g. disk full: remove the journal this run created, it holds nothing
        with contextlib.suppress(OSError):
            os.unlink(journal)
        raise MatcherError(f"cannot write journal {journal!r}: {exc.strerror or exc}") from None
    fsync_dir(os.path.dirname(os.path.abspath(journal)))
    return _JournalState(header, 0, None, len(line)), [started_at], started_at


def _skip(entries: Iterator[files.Entry], state: _JournalState, journal: str) -> Iterator[files.Entry]:
    """Drop the entries the journal holds, checking the walk still reaches its last path there."""
    last = None
    for _ in range(state.entries):
        last = next(entries, None)
        if last is None:
            break
    if last is None or last.path != state.last_path:
        raise UsageError(
            f"cannot resume {journal!r}: the evidence tree no longer walks the same way (entry {state.entries} "
            "differs from the journal's); remove the journal to start again")
    return entries


def _write_manifest(path: str, config: _Config, parameters: dict[str, Any], summary: ScanSummary,
                    runs: list[str], output_path: str | None, format: str,  # noqa: A002
                    engine: dict[str, Any] | None = None) -> None:
    manifest = {
        "tool": "matcher scan",
        "versions": _versions(),
        "host": socket.gethostname(),
        "started_at": summary.started_at,
        "finished_at": summary.finished_at,
        "runs_started_at": runs or [summary.started_at],
        "elapsed_seconds_last_run": summary.elapsed_seconds,
        "evidence_paths": [os.fsdecode(bytes.fromhex(p)) for p in parameters["paths"]],
        "index": {"path": config.index_path, "generation": config.index_generation,
                  "manifest_sha256": parameters["index_manifest_sha256"]},
        "parameters": {k: v for k, v in parameters.items() if k not in ("paths", "index_manifest_sha256")},
        "output": {"path": None if output_path is None else os.path.abspath(output_path), "format": format},
        "engine": engine,
        "counts": summary.to_dict(),
        "o_noatime": {"files_read_with": summary.noatime_files, "files_read_without": summary.atime_files},
    }
    with _atomic_text(path) as out:
        json.dump(manifest, out, indent=2, ensure_ascii=False)
        out.write("\n")
