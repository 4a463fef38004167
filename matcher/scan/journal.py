"""The scan's journal: what makes a scan with an output file resumable.

Records are first appended to ``<output>.partial``: a header line with the scan's parameters, then one
JSON line per walked entry holding all of that entry's records, written and flushed in one piece.
:func:`prepare_journal` creates it, or checks an existing one for a resume (same parameters), keeping
its longest valid prefix (:func:`read_journal`: a torn last line is dropped);
:func:`skip_journaled` drops the walked entries it already holds; :func:`iter_journal` reads it back
for the report. A write that fails is a :func:`resumable_error`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .. import files
from ..errors import MatcherError, UsageError
from ..index.manifest import fsync_dir
from ..scan_records import ScanRecord
from ..version import __version__
from .options import FileResult

__all__ = ["JOURNAL_VERSION", "JournalState", "group_line", "read_journal", "iter_journal", "write_all",
           "resumable_error", "prepare_journal", "skip_journaled"]

log = logging.getLogger(__name__)

#: The journal format's version (its header's ``matcher_scan_journal``).
JOURNAL_VERSION = 1
#: How a journal's first line starts.
JOURNAL_MARK = b'{"matcher_scan_journal":'


def group_line(seq: int, result: FileResult, algorithms: Sequence[str]) -> str:
    payload = {
        "seq": seq,
        "path": result.path.hex(),
        "noatime": result.noatime,
        "records": [record.to_dict(list(algorithms)) for record in result.records],
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n"


@dataclass(frozen=True, slots=True)
class JournalState:
    """What a journal on disk holds: its header, complete entries, the last one's path, valid bytes."""

    header: dict[str, Any]
    entries: int
    last_path: bytes | None
    valid_bytes: int



def read_journal(path: str) -> JournalState | None:
    """Parse a journal, keeping its longest valid prefix of complete, consecutive entry lines.

    ``None`` when the journal holds only a torn header (a run killed while creating it): no entry
    was written yet. Anything else that is not a journal raises :class:`UsageError`."""
    entries = 0
    last_path: bytes | None = None
    valid = 0
    with open(path, "rb") as handle:
        first = handle.readline()
        if not first.endswith(b"\n") and (JOURNAL_MARK.startswith(first) or first.startswith(JOURNAL_MARK)):
            return None
        try:
            header = json.loads(first) if first.endswith(b"\n") else None
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("matcher_scan_journal") != JOURNAL_VERSION:
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
    return JournalState(header, entries, last_path, valid)


def iter_journal(path: str, algorithms: Sequence[str]) -> Iterator[tuple[list[ScanRecord], bool | None]]:
    with open(path, "rb") as handle:
        handle.readline()
        for line in handle:
            group = json.loads(line)
            records = [ScanRecord.from_dict(data, list(algorithms)) for data in group["records"]]
            yield records, group["noatime"]



def write_all(handle: Any, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file (a raw write may take only part of it)."""
    view = memoryview(data)
    while view:
        count = handle.write(view)
        if not count:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[count:]


def resumable_error(what: str, exc: OSError) -> MatcherError:
    """A failed write of a journaled scan (disk full, I/O error): a clear message saying the journal is
    kept and the scan can be resumed once the cause is fixed."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return MatcherError(f"{what}: {reason}; the scan's journal is kept: free space (or fix the cause) and run the "
                        "same command again with --resume to finish it")


def prepare_journal(journal: str, parameters: dict[str, Any], resume: bool,
                     started_at: str) -> tuple[JournalState, list[str], str]:
    """Open an existing journal for resuming (checked) or create a new one; returns its state,
    the start times of the runs that wrote it, and the first run's start time."""
    if os.path.lexists(journal):
        if not resume:
            raise UsageError(
                f"an interrupted scan's journal {journal!r} exists: pass --resume to continue it, "
                "or remove it to start again")
        state = read_journal(journal)
        if state is None:  # killed while the header was being written: the journal holds no entry yet
            log.info("%s holds only a torn header; starting it again", journal)
            try:
                os.unlink(journal)
            except OSError as exc:
                raise MatcherError(f"cannot replace journal {journal!r}: {exc.strerror or exc}") from None
            return prepare_journal(journal, parameters, False, started_at)
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
    header = {"matcher_scan_journal": JOURNAL_VERSION, "matcher_version": __version__, "started_at": started_at,
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
    return JournalState(header, 0, None, len(line)), [started_at], started_at


def skip_journaled(entries: Iterator[files.Entry], state: JournalState, journal: str) -> Iterator[files.Entry]:
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

