"""The scan's journal: what makes a scan with an output file resumable.

Records are first appended to ``<output>.partial``, one JSON object a line:

* a header line: ``{"matcher_scan_journal": JOURNAL_VERSION, "matcher_version", "started_at",
  "runs": [the first run's start time], "parameters": {...}}``;
* one *entry line* per walked entry, written and flushed in one piece: ``{"seq": position in the
  walk, "path": the entry's path bytes in hex, "walk": the walk digest up to and including this
  entry (:class:`WalkDigest`), "noatime", "known_good": [ids of the known-good records among its
  matches], "records": [...]}``;
* one *run line* ``{"run": start time}`` for every run that resumed the journal, written before that
  run's first entry, so the run manifest lists every run's start time.

:func:`prepare_journal` creates it, or checks an existing one for a resume (same parameters, same
journal format), keeping its longest valid prefix (:func:`read_journal`: a torn last line is dropped);
:func:`skip_journaled` drops the walked entries it already holds after checking that the walk still
gives exactly those entries (the same walk digest); :func:`iter_journal` reads it back for the
report. A write that fails is a :func:`resumable_error`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .. import batch, files
from ..errors import MatcherError, UsageError
from ..scan_records import ScanRecord
from ..version import __version__
from .options import FileResult

__all__ = [
    "JOURNAL_VERSION",
    "JournalState",
    "WalkDigest",
    "group_line",
    "iter_journal",
    "prepare_journal",
    "read_journal",
    "resumable_error",
    "run_line",
    "skip_journaled",
    "write_all",
]

log = logging.getLogger(__name__)

#: The journal format's version (its header's ``matcher_scan_journal``). 2: entry lines carry the walk
#: digest and the known-good ids, and each resuming run appends a run line.
JOURNAL_VERSION = 2
#: How a journal's first line starts.
JOURNAL_MARK = b'{"matcher_scan_journal":'


class WalkDigest:
    """A running SHA-256 over the walked entries' paths, in walk order (each path length-prefixed).

    Its :meth:`add` after the N-th entry is stored in that entry's journal line; a resume recomputes it
    over the first N entries of the new walk and refuses to continue when it differs, so that a file
    added to (or removed from, or renamed in) the part of the tree already scanned is never silently
    left out.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, path: bytes) -> str:
        """Take one more walked entry's path; the digest of the walk so far, hex."""
        self._hash.update(len(path).to_bytes(8, "big"))
        self._hash.update(path)
        return self._hash.hexdigest()


def group_line(seq: int, result: FileResult, algorithms: Sequence[str], walk: str) -> str:
    """The journal line of the ``seq``-th walked entry (``walk``: the walk digest up to it)."""
    payload = {
        "seq": seq,
        "path": result.path.hex(),
        "walk": walk,
        "noatime": result.noatime,
        "known_good": sorted(result.known_good),
        "records": [record.to_dict(list(algorithms)) for record in result.records],
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n"


def run_line(started_at: str) -> str:
    """The journal line saying that a run started at ``started_at`` resumed the journal here."""
    return json.dumps({"run": started_at}, separators=(",", ":")) + "\n"


@dataclass(frozen=True, slots=True)
class JournalState:
    """What a journal on disk holds: its header, complete entries, the last one's path and walk
    digest, the start times of the runs that wrote it (the header's and the run lines'), valid bytes."""

    header: dict[str, Any]
    entries: int
    last_path: bytes | None
    valid_bytes: int
    walk: str | None = None
    runs: tuple[str, ...] = ()


def read_journal(path: str) -> JournalState | None:
    """Parse a journal, keeping its longest valid prefix of complete, consecutive lines.

    ``None`` when the journal holds only a torn header (a run killed while creating it): no entry
    was written yet. A journal of another format version, or anything that is not a journal, raises
    :class:`UsageError`."""
    entries = 0
    last_path: bytes | None = None
    walk: str | None = None
    valid = 0
    with open(path, "rb") as handle:
        first = handle.readline()
        if not first.endswith(b"\n") and (JOURNAL_MARK.startswith(first) or first.startswith(JOURNAL_MARK)):
            return None
        try:
            header = json.loads(first) if first.endswith(b"\n") else None
        except ValueError:
            header = None
        if not isinstance(header, dict) or "matcher_scan_journal" not in header:
            raise UsageError(f"{path} is not a matcher scan journal; remove it to start again")
        version = header.get("matcher_scan_journal")
        if version != JOURNAL_VERSION:
            raise UsageError(
                f"{path} is a scan journal of format {version!r} (written by matcher "
                f"{header.get('matcher_version', 'of another version')}); this matcher resumes only format "
                f"{JOURNAL_VERSION}: finish the scan with the matcher that started it, or remove the journal "
                "to start again"
            )
        stored_runs = header.get("runs")
        runs = [str(r) for r in stored_runs] if isinstance(stored_runs, list) else []
        valid = len(first)
        for line in handle:
            if not line.endswith(b"\n"):
                break  # torn last write
            try:
                group = json.loads(line)
                if isinstance(group, dict) and set(group) == {"run"} and isinstance(group["run"], str):
                    runs.append(group["run"])
                    valid += len(line)
                    continue
                seq, group_path, group_walk = group["seq"], bytes.fromhex(group["path"]), group["walk"]
                complete = (
                    isinstance(group["records"], list)
                    and "noatime" in group
                    and isinstance(group["known_good"], list)
                    and isinstance(group_walk, str)
                )
            except (ValueError, KeyError, TypeError):
                break
            if not complete:
                break
            if seq != entries:
                break
            entries += 1
            last_path = group_path
            walk = group_walk
            valid += len(line)
    return JournalState(header, entries, last_path, valid, walk, tuple(runs))


def iter_journal(path: str, algorithms: Sequence[str]) -> Iterator[FileResult]:
    """Every journaled entry's result, in walk order (run lines skipped)."""
    with open(path, "rb") as handle:
        handle.readline()
        for line in handle:
            group = json.loads(line)
            if "seq" not in group:
                continue  # a run line
            records = tuple(ScanRecord.from_dict(data, list(algorithms)) for data in group["records"])
            yield FileResult(
                bytes.fromhex(group["path"]), records, group["noatime"], frozenset(int(i) for i in group["known_good"])
            )


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
    return MatcherError(
        f"{what}: {reason}; the scan's journal is kept: free space (or fix the cause) and run the "
        "same command again with --resume to finish it"
    )


def prepare_journal(
    journal: str, parameters: dict[str, Any], resume: bool, started_at: str
) -> tuple[JournalState, list[str], str]:
    """Open an existing journal for resuming (checked) or create a new one (with ``resume``, after a
    warning that there was none); returns its state, the start times of the runs that wrote it, and
    the first run's start time."""
    if os.path.lexists(journal):
        if not resume:
            raise UsageError(
                f"an interrupted scan's journal {journal!r} exists: pass --resume to continue it, "
                "or remove it to start again"
            )
        state = read_journal(journal)
        if state is None:  # killed while the header was being written: the journal holds no entry yet
            log.info("%s holds only a torn header; starting it again", journal)
            try:
                os.unlink(journal)
            except OSError as exc:
                raise MatcherError(f"cannot replace journal {journal!r}: {exc.strerror or exc}") from None
            return prepare_journal(journal, parameters, False, started_at)
        stored = state.header.get("parameters") or {}
        if stored != parameters:
            unknown = sorted(set(parameters) - set(stored))
            if unknown:  # a newer matcher: these choices did not exist when the journal was written
                raise UsageError(
                    f"cannot resume {journal!r}: it was written by an earlier matcher (which called itself "
                    f"{state.header.get('matcher_version', 'no version')}) whose scans had no "
                    f"{', '.join(unknown)}; finish it with that matcher, or remove the journal to start again"
                )
            changed = sorted(k for k in set(stored) | set(parameters) if stored.get(k) != parameters.get(k))
            raise UsageError(
                f"cannot resume {journal!r}: it was written with different parameters ({', '.join(changed)}); "
                "run with the original parameters, or remove the journal to start again"
            )
        runs = [*state.runs, started_at]
        log.info("resuming %s after %d entries", journal, state.entries)
        return state, runs, str(state.header.get("started_at", started_at))
    if resume:  # nothing to resume: say so (a warning: the command line prints it), and start afresh
        log.warning("no journal at %s; starting a new scan", journal)
    header = {
        "matcher_scan_journal": JOURNAL_VERSION,
        "matcher_version": __version__,
        "started_at": started_at,
        "runs": [started_at],
        "parameters": parameters,
    }
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
    batch.fsync_dir(os.path.dirname(os.path.abspath(journal)))
    return JournalState(header, 0, None, len(line), None, (started_at,)), [started_at], started_at


def skip_journaled(
    entries: Iterator[files.Entry], state: JournalState, journal: str
) -> tuple[Iterator[files.Entry], WalkDigest]:
    """Drop the entries the journal holds, checking that the walk gives exactly those entries (the
    same walk digest: no entry added, removed or renamed among them); returns the rest of the walk
    and the walk digest so far, to go on with."""
    digest = WalkDigest()
    walk = None
    last = None
    for _ in range(state.entries):
        last = next(entries, None)
        if last is None:
            break
        walk = digest.add(last.path)
    if last is None or walk != state.walk:
        raise UsageError(
            f"cannot resume {journal!r}: the evidence tree no longer walks the same way (its first "
            f"{state.entries} entries are not the ones the journal holds: an entry was added, removed or "
            "renamed in the part already scanned); remove the journal to start again"
        )
    return entries, digest
