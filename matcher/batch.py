"""Helpers that the batch commands (scan, cluster) share: process pools, chunking, atomic outputs.

* :func:`pool_context` — the multiprocessing context for worker pools (``forkserver``; ``spawn``
  where there is none): FAISS's OpenMP runtime and ``fork`` do not mix.
* :func:`start_watching_driver` — run in a pool worker: the worker exits once the process that
  drives the batch is gone, even when it was killed with ``SIGKILL`` and could not shut its pool down.
* :func:`chunks` — cut an iterable into lists of a fixed size (the last one shorter).
* :func:`pool_map` — a chunked task over a pool of worker processes, results in order.
* :func:`single_threaded_faiss` — FAISS single-threaded while an in-process batch runs.
* :func:`set_search_threads` — the threads of the searches made from the calling thread (the service).
* :func:`atomic_file` / :func:`atomic_text` — an output written to a temporary name beside its path,
  fsynced and renamed over it, so that a reader sees the old file or the new one, never part of one
  (reports, run manifests, the index's ``manifest.json`` and ``shards.json``);
  :func:`remove_stale_temporaries` removes the temporaries that killed runs left behind;
  :func:`fsync_dir` flushes a directory's entries.

Nothing here starts a process by itself: callers decide whether a pool is wanted.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import multiprocessing
import multiprocessing.context
import os
import secrets
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, BinaryIO, TextIO, TypeVar

from . import allocator
from .errors import MatcherError

__all__ = [
    "pool_context",
    "interrupts_ignored",
    "start_watching_driver",
    "watch_driver",
    "chunks",
    "pool_map",
    "set_search_threads",
    "single_threaded_faiss",
    "temporary_name",
    "remove_stale_temporaries",
    "atomic_file",
    "atomic_text",
    "fsync_dir",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def pool_context(preload: Sequence[str] = ()) -> multiprocessing.context.BaseContext:
    """The context worker pools are made from: ``forkserver`` (with ``preload`` modules imported once
    in the server, so that each worker starts warm), else ``spawn``.

    It starts the forkserver with SIGINT ignored (:func:`interrupts_ignored`), which its workers
    inherit: Ctrl-C stops the driver (which shuts its pool down), and no worker prints a traceback."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        if preload:
            ctx.set_forkserver_preload(list(preload))
        from multiprocessing import forkserver

        with interrupts_ignored():
            forkserver.ensure_running()
        return ctx
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """SIGINT ignored meanwhile (in the main thread; elsewhere nothing changes): the processes started
    then (a forkserver, Dask's nannies) keep ignoring it from their first instruction, so that a Ctrl-C
    reaches the driver alone, which stops them in order; none prints a traceback. A Ctrl-C meanwhile
    is lost: keep it short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    import signal

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def start_watching_driver(driver: int | None) -> None:
    """In a pool worker: exit once the process ``driver`` is gone (a daemon thread; POSIX only)."""
    if driver is not None and os.name == "posix":
        threading.Thread(target=watch_driver, args=(driver,), name="matcher-watch-driver", daemon=True).start()


def watch_driver(driver: int, interval: float = 0.5) -> None:
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


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), in order."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@contextlib.contextmanager
def single_threaded_faiss() -> Iterator[None]:
    """FAISS single-threaded while an in-process batch runs (restored after).

    Each file's search is tiny; FAISS's OpenMP threads would only spin beside the hashing thread.
    This is process-wide: FAISS searches run by other threads meanwhile are single-threaded too.
    """
    import faiss

    before = faiss.omp_get_max_threads()
    set_search_threads(1)
    try:
        yield
    finally:
        set_search_threads(before)


def set_search_threads(count: int) -> None:
    """FAISS's OpenMP threads, and so the threads of every index search
    (:func:`matcher.index.search.search_threads`), set to ``count`` for searches made from the calling
    thread: OpenMP keeps this setting per thread, and a thread starts with the process's default (for
    a worker thread's searches, call this in that thread, e.g. as its executor's initializer)."""
    import faiss

    faiss.omp_set_num_threads(count)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (renames, new files) to stable storage, where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        log.debug("fsync of directory %s not supported", path)
    finally:
        os.close(fd)


def temporary_name(path: str, pid: int) -> str:
    """A temporary file :func:`atomic_file` writes ``path`` to, in process ``pid``: beside it, hidden,
    named with the process id (so that :func:`remove_stale_temporaries` knows whose it is) and a random
    part (so that two writers in one process never share one)."""
    name = f".{os.path.basename(path)}.tmp-{pid}-{secrets.token_hex(4)}"
    return os.path.join(os.path.dirname(os.path.abspath(path)), name)


def remove_stale_temporaries(path: str) -> None:
    """Remove the temporary files :func:`atomic_text` left beside ``path`` in runs that were killed
    while writing it (named with the process id of a process that no longer exists)."""
    directory = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)}.tmp-"
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        pid = name[len(prefix) :]
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
def atomic_file(path: str | os.PathLike[str], before_replace: Callable[[], None] | None = None) -> Iterator[BinaryIO]:
    """A binary file written to a temporary name beside ``path`` and renamed over it once complete.

    The file is fsynced before the rename and the directory after it; ``before_replace`` (when given)
    runs between the two (crash tests use it). On any failure the temporary is removed and ``path``
    is left as it was. :class:`~matcher.errors.MatcherError` when the temporary cannot be created.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    tmp = temporary_name(target, os.getpid())
    try:
        stream = open(tmp, "xb")  # noqa: SIM115 - closed below, before the rename
    except OSError as exc:
        raise MatcherError(f"cannot write {target!r}: {exc.strerror or exc}") from None
    try:
        with stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


@contextlib.contextmanager
def atomic_text(path: str) -> Iterator[TextIO]:
    """:func:`atomic_file` as UTF-8 text (undecodable characters as ``\\x`` escapes, newlines as written)."""
    with atomic_file(path) as raw:
        stream = io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", newline="")
        try:
            yield stream
            stream.flush()
        finally:
            stream.detach()


def pool_map(
    task: Callable[[list[T]], list[R]],
    items: Iterable[T],
    workers: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
    preload: Sequence[str] = (),
    chunk_size: int = 4,
    window_per_worker: int = 2,
    warm_up: Callable[[], Any] | None = None,
    in_parent: Callable[[T], R] | None = None,
    what: str = "worker",
) -> Generator[R, None, None]:
    """``task`` run on ``items`` in a pool of ``workers`` processes, its results in the order of ``items``.

    ``items`` go out in :func:`chunks` of ``chunk_size`` (``task`` takes a chunk and returns one
    result per item), with at most ``window_per_worker * workers`` chunks in flight. The pool is made
    from :func:`pool_context` (``preload`` imported once in the server); each worker runs
    ``initializer(*initargs)`` (a module-level function) and exits once this process is gone
    (:func:`start_watching_driver`). With ``in_parent``, this process handles the first items itself
    (``in_parent(item)``) while the workers start, each until it has run ``warm_up`` (a module-level
    function, e.g. one that loads compiled kernels), so that a small batch never waits for a pool.
    The pool is shut down when the iterator is exhausted or closed; a worker that dies or cannot start
    raises :class:`~matcher.errors.MatcherError` (``what`` names the workers).
    """
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=pool_context(preload),
        initializer=_start_pool_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
    pending: collections.deque[Future[list[R]]] = collections.deque()
    probes: list[Future[Any]] = []
    failures: list[BaseException] = []

    def start_workers() -> None:  # starting a process blocks until it runs: let that happen aside
        try:
            for _ in range(workers):
                probes.append(pool.submit(warm_up if warm_up is not None else _ready))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            failures.append(exc)

    starter = threading.Thread(target=start_workers, name=f"matcher-start-{what}s".replace(" ", "-"), daemon=True)
    starter.start()
    try:
        items = iter(items)
        if in_parent is not None:
            while starter.is_alive() or not all(probe.done() for probe in probes):
                first = next(items, _END)
                if first is _END:
                    break
                yield in_parent(first)  # type: ignore[arg-type]
        starter.join()
        if failures:
            raise MatcherError(f"{what} processes could not be started: {failures[0]}")
        for probe in probes:
            _pool_result(probe, what)
        for chunk in chunks(items, chunk_size):
            pending.append(pool.submit(task, chunk))
            if len(pending) >= max(1, window_per_worker * workers):
                yield from _pool_result(pending.popleft(), what)
        while pending:
            yield from _pool_result(pending.popleft(), what)
    finally:
        starter.join()
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()


def _ready() -> bool:
    return True


def _start_pool_worker(driver: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    allocator.tune_allocator()
    start_watching_driver(driver)
    if initializer is not None:
        initializer(*initargs)


def _pool_result(future: Future[Any], what: str) -> Any:
    try:
        return future.result()
    except BrokenProcessPool as exc:
        raise MatcherError(f"a {what} process died unexpectedly ({exc})") from None
