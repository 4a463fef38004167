"""The local scan engine: in this process, or in a pool of worker processes on this machine.

With one worker everything runs in the calling process and no process is started. With more, files
are scanned in a pool made from a ``forkserver`` context (:func:`matcher.batch.pool_context`), each
worker opening the index once, read-only, and running FAISS single-threaded. Work goes out in chunks
with a bounded number in flight and comes back in submission order. While the workers start, the
calling process scans the first entries itself.
"""

from __future__ import annotations

import collections
import os
import signal
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ... import allocator, batch, files
from ...errors import IndexStoreError, MatcherError
from ...index import KnownIndex
from ...index.shards import ShardCatalog, ShardedIndex, open_any
from ...pipeline import describe_error
from ..options import FileResult, ScanConfig, ScanOptions
from ..scanner import Scanner, open_scanner

__all__ = ["IN_PROCESS_BATCH", "PARENT_SCANS_WHILE_STARTING", "LocalEngine", "local_results"]

#: Entries read and hashed before they are matched together in the calling process (one search per
#: algorithm and table for all of them), when the scan runs in process; a pool's workers match each
#: chunk of ``ScanOptions.chunk_size`` entries together.
IN_PROCESS_BATCH = 16

#: Whether the calling process scans the first entries while the pool starts (tests turn it off to
#: have the pool do everything).
PARENT_SCANS_WHILE_STARTING = True


class LocalEngine:
    """The ``local`` engine: this process (``workers=1``) or a process pool on this machine."""

    name = "local"

    def check(self, paths: Sequence[Any], options: ScanOptions) -> None:
        """Nothing to check: every path this process can read, its workers can."""

    def open_index(self, index_path: str | os.PathLike[str], options: ScanOptions) -> KnownIndex | ShardedIndex:
        """The index, opened read-only in this process (single or sharded)."""
        return open_any(index_path)

    def facts(self, options: ScanOptions) -> dict[str, Any]:
        """The engine as the run manifest names it."""
        return {"name": "local", "workers": options.worker_count()}

    def results(
        self,
        entries: Iterable[files.Entry],
        config: ScanConfig,
        index: KnownIndex | ShardedIndex | ShardCatalog | None,
        options: ScanOptions,
    ) -> Iterator[FileResult]:
        """Every entry's result, in order (see :func:`local_results`)."""
        return local_results(entries, config, index, options)


_WORKER: Scanner | None = None
_WORKER_ERROR: MatcherError | None = None


def _init_worker(config: ScanConfig, driver: int | None = None) -> None:
    """Pool initializer: open the index once, read-only; FAISS single-threaded.

    Never raises (a failing initializer would make some pools restart workers forever); a failure is
    kept and raised by the first task instead. ``driver``: the scanning process's id, watched so that
    this worker exits when the driver is killed (see :func:`matcher.batch.watch_driver`). SIGINT is
    ignored: Ctrl-C reaches the whole process group, and the driver alone handles it (it shuts the
    pool down; no worker prints a traceback).
    """
    global _WORKER, _WORKER_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    allocator.tune_allocator()
    batch.start_watching_driver(driver)
    try:
        _WORKER = open_scanner(config)
    except MatcherError as exc:
        _WORKER_ERROR = exc


def _scan_chunk(entries: list[files.Entry]) -> list[FileResult]:
    """Pool task: the results of a chunk of entries, in order."""
    if _WORKER is None:
        raise _WORKER_ERROR or IndexStoreError("scan worker was not initialised")
    return _WORKER.scan_entries(entries)


def _warm_up() -> bool:
    """Pool task: returns once this worker is ready (index open, hashing kernels loaded)."""
    if _WORKER is None:
        raise _WORKER_ERROR or IndexStoreError("scan worker was not initialised")
    _WORKER.warm_up()
    return True


def local_results(
    entries: Iterable[files.Entry],
    config: ScanConfig,
    index: KnownIndex | ShardedIndex | ShardCatalog | None,
    options: ScanOptions,
) -> Iterator[FileResult]:
    """Every entry's result, in the order of ``entries``; parallel when ``options`` asks for it.

    ``index`` is an open index for the in-process scanning: everything with one worker, else the
    entries met while the pool starts (``None``: the pool does all of it).
    """
    workers = options.worker_count()
    if workers == 1:
        scanner = Scanner(index if index is not None else open_any(config.index_path), config)
        with batch.single_threaded_faiss():
            for chunk in batch.chunks(entries, max(options.chunk_size, IN_PROCESS_BATCH)):
                yield from scanner.scan_entries(chunk)
        return
    window = max(2, 2 * workers)
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=batch.pool_context(["matcher.scan.engines.local"]),
        initializer=_init_worker,
        initargs=(config, os.getpid()),
    )
    pending: collections.deque[Future[list[FileResult]]] = collections.deque()
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
        if index is not None and PARENT_SCANS_WHILE_STARTING:
            # While the workers start (interpreter, imports, index, compiled kernels), this process
            # scans the first entries itself; the rest go to the pool, in order, after them.
            scanner = Scanner(index, config)
            with batch.single_threaded_faiss():
                while starter.is_alive() or not all(probe.done() for probe in probes):
                    first = next(entries, None)
                    if first is None:
                        break
                    yield scanner.scan_entry(first)
        starter.join()
        if failures:
            raise MatcherError(f"scan workers could not be started: {describe_error(failures[0])}")
        for probe in probes:
            _collect(probe)  # a worker that could not open the index raises here
        chunks = batch.chunks(entries, options.chunk_size)
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
        raise MatcherError(
            f"a scan worker process died unexpectedly ({exc}); a journaled scan can be resumed"
        ) from None


# --------------------------------------------------------------------------------------------------
# The library pipeline
