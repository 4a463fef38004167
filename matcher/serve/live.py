"""The live index: the service follows the index's generations without a restart.

:class:`LiveIndex` holds the current :class:`Snapshot`: one read-only open of the index (single or
sharded, :func:`matcher.index.open_any`) with the scan's :class:`~matcher.scan.scanner.Scanner`
built for it. A request *leases* the snapshot it starts with (:meth:`LiveIndex.lease`) and uses it
to the end, every search and record look-up of that request on the same generation.

:meth:`LiveIndex.check` (called every ``reload_interval`` seconds by the service, in a thread)
compares the index's commit file (``manifest.json``, or ``shards.json`` for a sharded index) with
the one the current snapshot was opened from. When it changed (an ``index add`` or ``remove`` by
another process committed a generation), the index is opened again, verified, in the checking
thread, while requests go on being answered from the current snapshot; then the new snapshot
replaces it in one assignment (atomic: a request gets the old or the new one, never a mixture).
The replaced snapshot is closed when its last lease ends: requests in flight finish on it.

A new generation that cannot be opened (a checksum that does not match, a truncated file, a manifest
that is not valid) leaves the service on the last good snapshot: :attr:`LiveIndex.problem` says
what is wrong (``/healthz`` shows it, with status ``degraded``), it is logged once, and the same
commit file is not tried again until it changes once more.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..index.manifest import MANIFEST_NAME
from ..index.shards import ShardedIndex, is_sharded, open_any
from ..index.store import SHARDS_NAME, KnownIndex
from ..pipeline import describe_error
from ..scan.options import ScanConfig, ScanOptions, resolve_config
from ..scan.scanner import Scanner

__all__ = ["IndexProblem", "LiveIndex", "Snapshot", "commit_stamp"]

log = logging.getLogger(__name__)


def commit_stamp(path: str | os.PathLike[str]) -> tuple[int, int, int, int] | None:
    """What identifies the committed state of the index at ``path``: the commit file's device,
    inode, size and modification time (``None`` when it cannot be read). Every commit replaces
    that file, so a new generation always changes it."""
    name = SHARDS_NAME if is_sharded(path) else MANIFEST_NAME
    try:
        status = os.stat(Path(path) / name)
    except OSError:
        return None
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)


class Snapshot:
    """One open generation of the index and the scanner built for it, with its leases.

    ``reader``: the open index; ``scanner``: the scan's scanner on it (its ``matcher`` and
    ``request`` are the scan's); ``config``: the scan configuration resolved against it;
    ``info``: the index's facts (:meth:`KnownIndex.info`) as opened.
    """

    def __init__(self, reader: KnownIndex | ShardedIndex, config: ScanConfig, stamp: Any) -> None:
        self.reader = reader
        self.config = config
        self.scanner = Scanner(reader, config)
        self.generation = reader.generation
        self.info: dict[str, Any] = reader.info()
        self.stamp = stamp
        self.opened_at = time.time()
        self._lock = threading.Lock()
        self._leases = 0
        self._retired = False
        self.closed = False

    def acquire(self) -> None:
        """Take a lease (the snapshot stays open until it is released)."""
        with self._lock:
            self._leases += 1

    def release(self) -> None:
        """Give a lease back; the last one of a retired snapshot closes it."""
        with self._lock:
            self._leases -= 1
            close = self._retired and self._leases == 0 and not self.closed
            if close:
                self.closed = True
        if close:
            self._close()

    def retire(self) -> None:
        """No new lease will be taken: close now if none is held, else when the last is released."""
        with self._lock:
            self._retired = True
            close = self._leases == 0 and not self.closed
            if close:
                self.closed = True
        if close:
            self._close()

    def _close(self) -> None:
        self.reader.close()
        log.info("closed index generation %d", self.generation)


@dataclass(frozen=True, slots=True)
class IndexProblem:
    """Why the last attempt to switch to a new generation failed, and when (UTC seconds)."""

    message: str
    at: float


class LiveIndex:
    """The current snapshot of the index at ``path``, switched to each new generation (see the module
    documentation). ``options`` are the scan options every snapshot's scanner is built with."""

    def __init__(self, path: str | os.PathLike[str], options: ScanOptions) -> None:
        self.path = os.fspath(path)
        self.options = options
        self._swap = threading.Lock()
        self._checking = threading.Lock()
        self._failed_stamp: Any = None
        self.problem: IndexProblem | None = None
        self.reloads = 0
        self.failed_reloads = 0
        self._current = self._open()

    def _open(self) -> Snapshot:
        stamp = commit_stamp(self.path)
        reader = open_any(self.path)
        try:
            config = resolve_config(reader, self.path, self.options)
            return Snapshot(reader, config, stamp)
        except BaseException:
            reader.close()
            raise

    @property
    def current(self) -> Snapshot:
        """The snapshot new requests get."""
        return self._current

    @contextmanager
    def lease(self) -> Iterator[Snapshot]:
        """The current snapshot, held open for the ``with`` block."""
        while True:
            snapshot = self._current
            snapshot.acquire()
            if not snapshot.closed:
                break
            snapshot.release()  # retired and closed between the two lines: take the new one
        try:
            yield snapshot
        finally:
            snapshot.release()

    def check(self) -> bool:
        """Switch to a new committed generation if there is one; ``True`` when it switched. Never
        raises for a generation that cannot be opened: that is :attr:`problem` (see the module)."""
        with self._checking:
            stamp = commit_stamp(self.path)
            current = self._current
            if stamp is None or stamp == current.stamp or stamp == self._failed_stamp:
                return False
            try:
                fresh = self._open()
            except Exception as exc:  # noqa: BLE001 - whatever is wrong, keep serving the last good one
                self._failed_stamp = stamp
                self.failed_reloads += 1
                message = (
                    f"{self.path}: the index's new state cannot be opened ({describe_error(exc)}); still serving "
                    f"generation {current.generation}"
                )
                self.problem = IndexProblem(message, time.time())
                log.error("%s", message)
                return False
            self._failed_stamp = None
            self.problem = None
            if fresh.generation == current.generation:  # the commit file was rewritten, not a new generation
                fresh.retire()
                current.stamp = stamp
                return False
            with self._swap:
                self._current = fresh
            current.retire()
            self.reloads += 1
            log.info("switched from index generation %d to %d", current.generation, fresh.generation)
            return True

    def close(self) -> None:
        """Retire the current snapshot (closed once the requests holding it finish)."""
        self._current.retire()
