"""Helpers that the batch commands (scan, cluster) share: process pools, chunking, atomic outputs.

* :func:`pool_context` — the multiprocessing context for worker pools (``forkserver``; ``spawn``
  where there is none): FAISS's OpenMP runtime and ``fork`` do not mix.
* :func:`start_watching_driver` — run in a pool worker: the worker exits once the process that
  drives the batch is gone, even when it was killed with ``SIGKILL`` and could not shut its pool down.
* :func:`chunks` — cut an iterable into lists of a fixed size (the last one shorter).
* :func:`single_threaded_faiss` — FAISS single-threaded while an in-process batch runs.
* :func:`atomic_file` / :func:`atomic_text` — an output written to a temporary name beside its path,
  fsynced and renamed over it, so that a reader sees the old file or the new one, never part of one
  (reports, run manifests, the index's ``manifest.json`` and ``shards.json``);
  :func:`remove_stale_temporaries` removes the temporaries that killed runs left behind;
  :func:`fsync_dir` flushes a directory's entries.

Nothing here starts a process by itself: callers decide whether a pool is wanted.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import multiprocessing.context
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO, TextIO, TypeVar

from .errors import MatcherError

__all__ = [
    "pool_context",
    "interrupts_ignored",
    "start_watching_driver",
    "watch_driver",
    "chunks",
    "single_threaded_faiss",
    "temporary_name",
    "remove_stale_temporaries",
    "atomic_file",
    "atomic_text",
    "fsync_dir",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


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
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


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
