"""The scan's public values and its resolved configuration.

:class:`ScanOptions` (what the caller asks for), :class:`ScanProgress` and :class:`ScanSummary` (what
a run reports), the exit codes of ``matcher scan``, and :class:`ScanConfig`: the options resolved
against an index and validated, which is all that a worker needs (picklable). :class:`FileResult` is
one walked entry's records as the engines hand them back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .. import local_features
from ..algorithms import registry
from ..errors import UsageError
from ..hashing import HashOptions
from ..index.descriptors import DEFAULT_PROBES
from ..index.manifest import FileStamp
from ..scan_records import STATUSES, ScanRecord
from ..video_hash import VideoThresholds

__all__ = [
    "ENGINES",
    "EXIT_FATAL",
    "EXIT_MATCH",
    "EXIT_NO_MATCH",
    "JOURNAL_SUFFIX",
    "MANIFEST_SUFFIX",
    "FileResult",
    "ProgressCounter",
    "IndexFacts",
    "ScanConfig",
    "ScanOptions",
    "ScanProgress",
    "ScanSummary",
    "resolve_config",
]

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
#: The scan engines: in this process or a process pool on this machine, or tasks on a Dask cluster.
ENGINES = ("local", "dask")


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
    - ``insets``: also try the pictures embedded in every frame (collage tiles, a picture pasted into
      a screenshot: :func:`matcher.insets.find_insets`), each cut out and matched against the known
      images' own hashes (on by default; a frame without flat gutters or background costs well
      under a millisecond more).
    - ``workers``: processes hashing in parallel; ``1`` (the default): in this process, no process is
      started (a library call never starts processes unless asked); ``None``: ``os.cpu_count()``.
      With the dask engine: the size of the local cluster (a scheduler's cluster has the workers it
      has).
    - ``matches_only``: report only records with status ``match`` (the run's counts still cover
      every file).
    - ``hash_options``: decoding options (pixel and frame limits, EXIF orientation, ``fast`` draft
      decoding of JPEGs).
    - ``chunk_size``: entries sent to a worker at a time (one task of the Dask engine).
    - ``engine``: ``"local"`` (a process pool on this machine) or ``"dask"`` (tasks on a Dask cluster;
      needs ``pip install 'dask[distributed]'``, checked when the scan starts). Both give the same
      records in the same order.
    - ``video``: when a video matches a known video (:class:`matcher.video_hash.VideoThresholds`:
      frame distance and quality, query and compared match percentages; vPDQ's defaults). How
      videos are sampled is in ``hash_options.video``.
    - ``scheduler``: with ``engine="dask"``, the address of a running Dask scheduler (e.g.
      ``"tcp://10.0.0.5:8786"``); ``None`` starts a local cluster of ``workers`` processes listening
      on the loopback interface only. Its workers must read the evidence and the index at the same
      paths as this process (shared storage), so the evidence paths must then be absolute.
    - ``local``: the local-feature stage (:mod:`matcher.local_features`): frames that no digest or
      global hash matched are searched for known images inside them (crops, turns, screenshots,
      collage tiles); ``None`` (the default): on when the index holds local features and OpenCV
      is installed; ``False``: off; ``True``: on (nothing to find in an index without them; refused
      without OpenCV).
    """

    algorithms: tuple[str, ...] | str | None = None
    max_distances: Mapping[str, int] = field(default_factory=dict)
    rotations: bool = True
    trim_borders: bool = True
    regions: bool = True
    insets: bool = True
    workers: int | None = 1
    matches_only: bool = False
    hash_options: HashOptions = field(default_factory=HashOptions)
    chunk_size: int = 4
    engine: str = "local"
    scheduler: str | None = None
    video: VideoThresholds = field(default_factory=VideoThresholds)
    local: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.video, VideoThresholds):
            raise UsageError(f"video must be a VideoThresholds, not {self.video!r}")
        if self.engine not in ENGINES:
            raise UsageError(f"unknown scan engine {self.engine!r} (known: {', '.join(ENGINES)})")
        if self.scheduler is not None:
            if not isinstance(self.scheduler, str) or not self.scheduler.strip():
                raise UsageError(f"scheduler must be a Dask scheduler address, not {self.scheduler!r}")
            if self.engine != "dask":
                raise UsageError("a scheduler address needs the dask engine (--engine dask)")
        if self.workers is not None and (
            isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1
        ):
            raise UsageError(f"workers must be a positive integer or None, not {self.workers!r}")
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise UsageError(f"chunk_size must be a positive integer, not {self.chunk_size!r}")
        if self.local is not None and not isinstance(self.local, bool):
            raise UsageError(f"local must be True, False or None, not {self.local!r}")
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
    ``resumed`` of them taken from the journal, ``elapsed`` seconds of this run.

    ``bytes_done``: the sizes of the regular files done, the resumed ones included, of
    ``total_bytes`` (``None`` when not counted); ``resumed_bytes`` of them taken from the journal
    (known only when counted). ``matched`` / ``errors``: entries of this run with status ``match`` /
    ``error`` so far.
    """

    done: int
    total: int | None
    resumed: int
    elapsed: float
    bytes_done: int = 0
    total_bytes: int | None = None
    resumed_bytes: int = 0
    matched: int = 0
    errors: int = 0


class ProgressCounter:
    """Builds the :class:`ScanProgress` of a run as its entries come in.

    ``sizes``: the size of every entry of the walk in order (``0`` for what is not a regular file),
    when counted beforehand, else ``None``; ``clock``: the run's start (:func:`time.perf_counter`).
    """

    def __init__(self, sizes: Sequence[int] | None, clock: float) -> None:
        self.sizes = sizes
        self.total = None if sizes is None else len(sizes)
        self.total_bytes = None if sizes is None else sum(sizes)
        self.clock = clock
        self.bytes_done = 0
        self.matched = 0
        self.errors = 0
        self.resumed_bytes = 0

    def resume(self, entries: int) -> None:
        """The first ``entries`` of the walk were taken from the journal."""
        if self.sizes is not None:
            self.resumed_bytes = sum(self.sizes[:entries])
            self.bytes_done += self.resumed_bytes

    def add(self, result: FileResult) -> None:
        """Count one entry done in this run."""
        records = result.records
        status = min((r.status for r in records), key=STATUSES.index) if records else "error"
        self.bytes_done += max((r.size or 0 for r in records), default=0)
        self.matched += status == "match"
        self.errors += status == "error"

    def progress(self, done: int, resumed: int) -> ScanProgress:
        """The run's progress after ``done`` entries (``resumed`` of them from the journal)."""
        return ScanProgress(
            done,
            self.total,
            resumed,
            time.perf_counter() - self.clock,
            bytes_done=self.bytes_done,
            total_bytes=self.total_bytes,
            resumed_bytes=self.resumed_bytes,
            matched=self.matched,
            errors=self.errors,
        )


@dataclass(frozen=True, slots=True)
class ScanSummary:
    """What a completed :func:`run_scan` did.

    ``files``: walked entries (every file, link, FIFO, ... met). ``records``: records written to the
    report (after ``matches_only``). ``files_by_status``: each entry counted once under its records'
    highest-precedence status; ``records_by_status``: every record (before ``matches_only``).
    ``images``: files whose content is an image type. ``matches_by_list`` / ``matches_by_category``:
    files with status ``match`` having at least one match in that list / category (``"none"`` for
    records without category). Known-good records (``extra["known_good"]`` true, e.g. NSRL) are never
    counted there, even when the same file also matches another list: they only set files aside.
    ``known_good_by_list``: files whose digest matched a known-good record of that list (whatever
    the file's status: ``known_good``, or ``match`` when another list matched too). ``noatime_files`` /
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
    known_good_by_list: dict[str, int] = field(default_factory=dict)

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
            "known_good_by_list": dict(self.known_good_by_list),
            "noatime_files": self.noatime_files,
            "atime_files": self.atime_files,
            "resumed_files": self.resumed_files,
        }


class IndexFacts(Protocol):
    """What :func:`resolve_config` reads of an index (an open index or a shard catalogue)."""

    @property
    def algorithms(self) -> tuple[str, ...]: ...

    @property
    def generation(self) -> int: ...

    @property
    def verified_files(self) -> tuple[FileStamp, ...]: ...

    @property
    def local_records(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ScanConfig:
    """Everything a worker needs, resolved and validated in the parent (picklable)."""

    index_path: str
    index_generation: int
    algorithms: tuple[str, ...]
    max_distances: dict[str, int]
    rotations: bool
    hash_options: HashOptions
    trim_borders: bool = True
    regions: bool = True
    #: the stamps of the index files the parent verified: workers do not hash those again
    index_verified: tuple[FileStamp, ...] = ()
    #: when a video matches a known video
    video: VideoThresholds = field(default_factory=VideoThresholds)
    #: the local-feature stage runs (resolved: on by default when the index holds local features)
    local: bool = False
    #: the pictures embedded in each frame are tried too (ScanOptions.insets)
    insets: bool = True

    def parameters(self) -> dict[str, Any]:
        """The parameters that decide the report's content (journal header and run manifest)."""
        ho = self.hash_options
        return {
            "algorithms": list(self.algorithms),
            "max_distances": dict(self.max_distances),
            "rotations": self.rotations,
            "trim_borders": self.trim_borders,
            "regions": self.regions,
            "insets": self.insets,
            "local": self.local,
            "local_settings": _local_settings() if self.local else None,
            "fast": ho.fast,
            "max_pixels": ho.max_pixels,
            "max_frames": ho.max_frames,
            "exif_orientation": ho.apply_exif_orientation,
            "max_file_bytes": ho.max_file_bytes,
            "video_fps": ho.video.fps,
            "max_video_seconds": ho.video.max_seconds,
            "video_decode_seconds": ho.video.decode_seconds,
            "max_video_frames": ho.video.max_frames,
            **self.video.to_dict(),
        }


def _local_settings() -> dict[str, Any]:
    """The local-feature stage's settings for the manifest: extraction and rule
    (:func:`matcher.local_features.match_settings`) and how the index's tree is searched (its
    probes, the frame's voters and the grid they are spread over)."""
    return {
        **local_features.match_settings(),
        "search": {**asdict(DEFAULT_PROBES), "voter_grid": local_features.VOTE_GRID},
    }


@dataclass(frozen=True, slots=True)
class FileResult:
    """One walked entry's records, and whether O_NOATIME applied to its read (``None``: not read).

    ``known_good``: the ids of the known-good records (``extra["known_good"]`` true) among the
    records' matches, so that counts can keep them apart from the other lists' matches.
    """

    path: bytes
    records: tuple[ScanRecord, ...]
    noatime: bool | None
    known_good: frozenset[int] = frozenset()


def resolve_config(index: IndexFacts, index_path: str, options: ScanOptions) -> ScanConfig:
    """The scan's configuration: ``options`` resolved against the index (its algorithms, generation)
    and checked; :class:`~matcher.errors.UsageError` for an option the index cannot serve."""
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
    local = bool(index.local_records) if options.local is None else options.local
    if local and not local_features.available():
        if options.local:
            raise local_features.LocalFeaturesUnavailableError(
                "--local needs OpenCV: pip install 'perceptual-matcher[local]' (opencv-python-headless)"
            )
        local = False  # the index holds local features, but they cannot be searched here
    return ScanConfig(
        index_path=os.path.abspath(index_path),
        index_generation=index.generation,
        algorithms=chosen,
        max_distances={name: distances[name] for name in chosen},
        rotations=bool(options.rotations),
        hash_options=options.hash_options,
        trim_borders=bool(options.trim_borders),
        regions=bool(options.regions),
        insets=bool(options.insets),
        index_verified=index.verified_files,
        video=options.video,
        local=local,
    )
