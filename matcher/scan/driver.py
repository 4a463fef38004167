"""The scan driver: :func:`scan` (records as a generator) and :func:`run_scan` (the report, journaled).

It walks the evidence, hands the entries to the engine the options name
(:func:`matcher.scan.engines.get_engine`), appends each entry's records to the journal, renders the
report from it atomically, counts (:class:`Tally`) and writes the run manifest.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import socket
import sys
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from .. import batch, files
from ..errors import IndexStoreError, MatcherError, UsageError
from ..index import KnownIndex
from ..index.manifest import MANIFEST_NAME
from ..index.shards import SHARDS_NAME, ShardCatalog, ShardedIndex, is_sharded
from ..scan_records import STATUSES, ScanRecord
from ..version import __version__
from .engines import Engine, get_engine
from .journal import (
    WalkDigest,
    group_line,
    iter_journal,
    prepare_journal,
    read_journal,
    resumable_error,
    run_line,
    skip_journaled,
    write_all,
)
from .options import (
    JOURNAL_SUFFIX,
    MANIFEST_SUFFIX,
    FileResult,
    ProgressCounter,
    ScanConfig,
    ScanOptions,
    ScanProgress,
    ScanSummary,
    resolve_config,
)

__all__ = [
    "ScanInterrupted",
    "Tally",
    "run_scan",
    "scan",
    "sha256_of",
    "utc_now",
    "versions",
    "write_manifest",
    "writer_class",
]

log = logging.getLogger(__name__)


class ScanInterrupted(KeyboardInterrupt):
    """:func:`run_scan` was interrupted (SIGINT, Ctrl-C): how far it got, and its journal.

    A :class:`KeyboardInterrupt`, so that code that stops on Ctrl-C still does. ``files_done``:
    walked entries whose records are in the journal (for a scan to a stream: written to it);
    ``journal``: the journal that keeps them, valid up to its last complete line, to continue with
    ``resume`` (``None`` when the scan keeps none, or had not created it yet).
    """

    def __init__(self, files_done: int, journal: str | None) -> None:
        super().__init__(files_done, journal)
        self.files_done = files_done
        self.journal = journal


class Tally:
    """Counts for the summary and the manifest, fed one entry's records at a time."""

    def __init__(self) -> None:
        self.files = 0
        self.records = 0
        self.images = 0
        self.files_by_status = {status: 0 for status in STATUSES}
        self.records_by_status = {status: 0 for status in STATUSES}
        self.by_list: dict[str, int] = {}
        self.by_category: dict[str, int] = {}
        self.known_good_by_list: dict[str, int] = {}
        self.noatime = 0
        self.atime = 0

    def add(self, result: FileResult, reported: int) -> None:
        """Count one walked entry (``reported``: how many of its records the report shows).

        Matches of known-good records (``result.known_good``) never count in ``by_list`` /
        ``by_category``, even in a file that another list matched: they go to ``known_good_by_list``.
        """
        records, noatime, good = result.records, result.noatime, result.known_good
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
            counted = [m for r in records if r.status == "match" for m in r.matches if m.record not in good]
            for name in {m.list for m in counted}:
                self.by_list[name] = self.by_list.get(name, 0) + 1
            for name in {"none" if m.category is None else str(m.category) for m in counted}:
                self.by_category[name] = self.by_category.get(name, 0) + 1
        for name in {m.list for r in records for m in r.matches if m.record in good}:
            self.known_good_by_list[name] = self.known_good_by_list.get(name, 0) + 1

    def summary(
        self, resumed: int, started_at: str, finished_at: str, elapsed: float, output: str | None, manifest: str | None
    ) -> ScanSummary:
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
            known_good_by_list=dict(sorted(self.known_good_by_list.items())),
        )


# --------------------------------------------------------------------------------------------------
# Journal


def utc_now() -> str:
    """The time now in UTC, as the manifest and journal write it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sha256_of(path: str) -> str:
    """The SHA-256 of a file's content, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    engine = get_engine(options.engine)
    engine.check(paths, options)
    index = engine.open_index(index_path, options)
    try:
        config = resolve_config(index, os.fspath(index_path), options)
    except BaseException:
        index.close()
        raise

    def generate() -> Iterator[ScanRecord]:
        try:
            for result in engine.results(_walk(paths), config, index, options):
                for record in result.records:
                    if not options.matches_only or record.status == "match":
                        yield record
        finally:
            index.close()

    return generate()


def writer_class(format: str) -> type:
    """The report writer class of ``format``; :class:`UsageError` for an unknown format."""
    try:
        from ..formats.scan_report import SCAN_WRITERS
    except ImportError as exc:
        raise UsageError(f"scan report writers are not available ({exc})") from None
    if format not in SCAN_WRITERS:
        raise UsageError(f"unknown scan report format {format!r} (known: {', '.join(sorted(SCAN_WRITERS))})")
    return SCAN_WRITERS[format]


def versions() -> dict[str, str | None]:
    """The versions of matcher, Python and the libraries that decide the results."""
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
    format: str = "jsonl",
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
    :class:`ScanProgress`; ``count_first`` walks the tree once beforehand so that it has totals (files and bytes).
    Raises :class:`~matcher.errors.UsageError` for bad arguments, an output inside an evidence path,
    an existing journal without ``resume`` or a resume with different parameters;
    :class:`~matcher.errors.IndexStoreError` for an unusable index; :class:`~matcher.errors.MatcherError`
    when the output cannot be written. Interrupted (``KeyboardInterrupt``) once the index is open, it
    raises :class:`ScanInterrupted`; the journal is then complete up to its last line.
    """
    options = options or ScanOptions()
    clock = time.perf_counter()
    started_at = utc_now()
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise UsageError("run_scan() takes a sequence of paths; wrap a single path in a list")
    if not paths:
        raise UsageError("give at least one path to scan")
    engine = get_engine(options.engine)
    engine.check(paths, options)
    make_writer: Callable[..., Any] = writer_class(format)
    if case:
        if format != "vics":
            raise UsageError("case fields go into VICS reports only (--format vics)")
        make_writer = functools.partial(make_writer, case=dict(case))
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
    index = engine.open_index(index_path, options)
    try:
        config = resolve_config(index, os.fspath(index_path), options)
        try:
            index_checksum = sha256_of(manifest_file)
        except OSError as exc:
            raise IndexStoreError(f"{manifest_file}: cannot be read: {exc.strerror or exc}") from None
        parameters = {
            **config.parameters(),
            "matches_only": options.matches_only,
            "paths": [os.fsencode(p).hex() for p in paths],
            "index_manifest_sha256": index_checksum,
        }
        done = [0]  # entries done, as last reported

        def counted(p: ScanProgress) -> None:
            done[0] = p.done
            if progress is not None:
                progress(p)

        try:
            return _drive(
                paths,
                config,
                index,
                engine,
                options,
                parameters,
                output_path,
                journal,
                manifest_path,
                format,
                make_writer,
                resume,
                stream,
                counted,
                count_first,
                clock,
                started_at,
            )
        except KeyboardInterrupt:
            raise _interrupted(journal, done[0]) from None
    finally:
        index.close()


def _interrupted(journal: str | None, reported: int) -> ScanInterrupted:
    """The :class:`ScanInterrupted` of a scan stopped after ``reported`` entries: for a journaled
    scan, the entries its journal holds on disk (every line was written whole; a torn one is not
    counted, and is dropped on resume)."""
    if journal is None or not os.path.lexists(journal):
        return ScanInterrupted(reported, None)
    try:
        state = read_journal(journal)
    except (OSError, MatcherError):
        return ScanInterrupted(reported, journal)
    return ScanInterrupted(0 if state is None else state.entries, journal)


def _drive(
    paths: Sequence[Any],
    config: ScanConfig,
    index: KnownIndex | ShardedIndex | ShardCatalog,
    engine: Engine,
    options: ScanOptions,
    parameters: dict[str, Any],
    output_path: str | None,
    journal: str | None,
    manifest_path: str | None,
    format: str,
    make_writer: Callable[..., Any],
    resume: bool,
    stream: TextIO | None,
    progress: Callable[[ScanProgress], None] | None,
    count_first: bool,
    clock: float,
    started_at: str,
) -> ScanSummary:
    counter = ProgressCounter(array("q", (e.size or 0 for e in _walk(paths))) if count_first else None, clock)
    algorithms = list(config.algorithms)
    in_process = index  # scans everything with one worker, else the first entries while the pool starts

    def report(done: int, resumed: int) -> None:
        if progress is not None:
            progress(counter.progress(done, resumed))

    if journal is None:  # standard output: stream straight through the writer
        out = stream if stream is not None else sys.stdout
        tally = Tally()
        writer = make_writer(out, algorithms)
        report(0, 0)
        for result in engine.results(_walk(paths), config, in_process, options):
            shown = [r for r in result.records if not options.matches_only or r.status == "match"]
            for record in shown:
                writer.write(record)
            tally.add(result, len(shown))
            counter.add(result)
            report(tally.files, 0)
        writer.close()
        summary = tally.summary(0, started_at, utc_now(), time.perf_counter() - clock, None, manifest_path)
        if manifest_path is not None:
            write_manifest(manifest_path, config, parameters, summary, [], None, format, engine.facts(options))
        return summary

    resumed, resumed_runs, first_started = prepare_journal(journal, parameters, resume, started_at)
    entries = _walk(paths)
    walk = WalkDigest()
    if resumed.entries:
        entries, walk = skip_journaled(entries, resumed, journal)
    counter.resume(resumed.entries)
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
            if len(resumed_runs) > 1:  # this run resumes the journal: say so, so the manifest lists it
                write_all(handle, run_line(started_at).encode("utf-8"))
        except OSError as exc:
            raise resumable_error(f"cannot write journal {journal!r}", exc) from None
        for result in engine.results(entries, config, in_process, options):
            try:
                line = group_line(seq, result, algorithms, walk.add(result.path))
                write_all(handle, line.encode("utf-8", "backslashreplace"))
            except OSError as exc:
                raise resumable_error(f"cannot write journal {journal!r}", exc) from None
            seq += 1
            counter.add(result)
            report(seq, resumed.entries)
        try:
            os.fsync(handle.fileno())
        except OSError as exc:
            raise resumable_error(f"cannot write journal {journal!r}", exc) from None

    # Render the report from the journal (atomically), then the manifest, then drop the journal.
    tally = Tally()
    if output_path is None:  # pragma: no cover - a journal always has an output
        raise UsageError("a journaled scan needs an output path")
    for target in (output_path, manifest_path):
        if target is not None:
            batch.remove_stale_temporaries(target)
    try:
        with batch.atomic_text(output_path) as out:
            writer = make_writer(out, algorithms)
            for result in iter_journal(journal, algorithms):
                shown = [r for r in result.records if not options.matches_only or r.status == "match"]
                for record in shown:
                    writer.write(record)
                tally.add(result, len(shown))
            writer.close()
        summary = tally.summary(
            resumed.entries, first_started, utc_now(), time.perf_counter() - clock, output_path, manifest_path
        )
        if manifest_path is not None:
            write_manifest(
                manifest_path, config, parameters, summary, resumed_runs, output_path, format, engine.facts(options)
            )
    except OSError as exc:  # e.g. disk full: the complete journal stays, so --resume renders it again
        raise resumable_error(f"cannot write the report {output_path!r} or its manifest", exc) from None
    os.unlink(journal)
    batch.fsync_dir(os.path.dirname(os.path.abspath(journal)))
    return summary


def write_manifest(
    path: str,
    config: ScanConfig,
    parameters: dict[str, Any],
    summary: ScanSummary,
    runs: list[str],
    output_path: str | None,
    format: str,
    engine: dict[str, Any] | None = None,
) -> None:
    """Write the run manifest (tool and versions, host, times, evidence paths, index, parameters,
    output, engine, counts) to ``path``, atomically."""
    manifest = {
        "tool": "matcher scan",
        "versions": versions(),
        "host": socket.gethostname(),
        "started_at": summary.started_at,
        "finished_at": summary.finished_at,
        "runs_started_at": runs or [summary.started_at],
        "elapsed_seconds_last_run": summary.elapsed_seconds,
        "evidence_paths": [os.fsdecode(bytes.fromhex(p)) for p in parameters["paths"]],
        "index": {
            "path": config.index_path,
            "generation": config.index_generation,
            "manifest_sha256": parameters["index_manifest_sha256"],
        },
        "parameters": {k: v for k, v in parameters.items() if k not in ("paths", "index_manifest_sha256")},
        "output": {"path": None if output_path is None else os.path.abspath(output_path), "format": format},
        "engine": engine,
        "counts": summary.to_dict(),
        "o_noatime": {"files_read_with": summary.noatime_files, "files_read_without": summary.atime_files},
    }
    with batch.atomic_text(path) as out:
        json.dump(manifest, out, indent=2, ensure_ascii=False)
        out.write("\n")
