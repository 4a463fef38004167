"""The Dask scan engine: the batch scan's entries hashed and matched by the workers of a Dask cluster.

:func:`dask_results` is the engine behind ``ScanOptions(engine="dask")`` (``matcher scan --engine
dask [--scheduler ADDRESS]``). It yields the same stream of per-entry results, in the same order, as
the local process pool, so the journal, ``--resume``, the report and the run manifest are the scan
driver's own, unchanged: a Dask scan's report equals a local scan's, record for record.

How it works
------------
* The calling process (the *client*) walks the evidence tree (directory listings and ``lstat`` only;
  it never opens an evidence file) and cuts the walk into chunks of ``chunk_size`` entries. Each chunk
  is one task, a pure function of (scan configuration, entries) to results, with a key of its own.
* At most ``TASKS_PER_THREAD`` tasks per worker thread are submitted and not yet written out (counted
  when the scan starts); results are gathered as soon as any task finishes, kept in a reorder buffer
  and yielded in submission order. Memory does not grow with the number of files.
* A worker opens the index once per worker process (a small per-process cache keyed by the scan
  configuration: index path, generation and options) and keeps it for the following tasks, and runs
  FAISS single-threaded. The index must be at the same path on every worker (shared storage), as must
  the evidence.
* Without a scheduler address a :class:`distributed.LocalCluster` is started: ``workers`` processes,
  one thread each, listening on ``127.0.0.1`` only, no dashboard (the scheduler's HTTP server, which
  Dask always starts, takes a free loopback port and serves no page); it is closed when the scan ends.
  While the engine runs, Dask's INFO chatter is held back (the ``distributed`` logger at WARNING);
  a worker's death and the scheduler's errors still come through ``logging``.

Sharded indexes
---------------
When the index is sharded (:mod:`matcher.index.shards`), no process opens the whole of it: the
client reads only ``shards.json`` and the shard manifests (a :class:`~matcher.index.shards.ShardCatalog`)
and places each shard on one worker (:func:`shard_placement`: shard *i* on worker *i* mod *n*, in
address order, among the workers present when the scan starts). Each chunk then becomes three steps:
a *hash* task on any worker reads and hashes the entries (no index); one *shard* task per shard,
restricted to the worker holding that shard, runs the scan's matching of every hashed entry against
that shard alone and records its answers (each index call's answer, global record ids); a *finish*
task merges the shards' answers to each call exactly as :class:`~matcher.index.shards.ShardedIndex`
merges live ones and builds the records. The local-feature stage too: the hash task extracts every
frame's features at once (they travel to every shard's task), each shard task searches the frames
that no digest and no global hash matched *in that shard* and records each frame's answer by a digest
of its features (:func:`frame_key`), and the finishing task asks for the frames the merged answers
left unmatched (all of them searched by every shard) and merges their hits most inliers first.
The report is the same as with the unsharded index. A
shard's tasks run only on its worker (they are never stolen by an idle one), so a worker opens only
the shards placed on it (once per process). When that worker leaves (it died, or was retired), the
client notices within :data:`POLL_SECONDS`, places its shards on the workers present (those holding
the fewest first) and submits the chunks that were waiting for them again, under new keys. So too
a chunk that had finished when its result left with the worker holding it: Dask computes a lost
result again, but a shard task restricted to a worker that is gone would wait for that worker
forever, so when the result has not come within :data:`POLL_SECONDS` and a worker the chunk's shard
tasks were restricted to is gone, the chunk is submitted again (placed anew).

Readiness
---------
Before any chunk is sent, every worker opens the index once (:func:`probe_workers`; for a sharded
index the shards placed on it), as the local pool's warm-up probes do: the tasks then find it open.
A worker that cannot open it, or that dies meanwhile (out of memory while mapping the index, say),
stops the scan with a :class:`~matcher.errors.MatcherError` (exit 2, the journal kept for
``--resume``) instead of turning the files of its chunks into per-file errors.

Worker death
------------
Tasks are pure and idempotent, so the scheduler runs the tasks of a worker that died again on another
worker; each task's result is taken exactly once (by its key), so no entry is lost or repeated. A task
that was on ``allowed-failures + 1`` workers that died (local clusters: ``allowed-failures`` is
:data:`LOCAL_ALLOWED_FAILURES`; a remote scheduler uses its own setting) is not given up. The scheduler
counts a death against every task queued on the dying worker, not only the one that crashed it, so
its entries are first *suspects*: new chunks wait, the tasks in flight finish, and then each suspect
entry is scanned alone, one task at a time with nothing else of this scan on the cluster. An entry
that still kills ``allowed-failures + 1`` workers on its own gets a record with status ``error`` ("the
scan worker process died each time it scanned this file ...") instead of being lost, and the examiner
sees it in the report; the others get their normal records. Any other failure of a task (an index that
cannot be opened on a worker, a lost scheduler) stops the scan with a
:class:`~matcher.errors.MatcherError`; a journaled scan can then be resumed with either engine. So
does a cluster left with no worker at all for :data:`WORKER_TIMEOUT` seconds (Dask alone would wait
for one forever).

Security: the local cluster listens on the loopback interface without TLS, like any local Dask
cluster: other accounts on the same machine could connect to it while the scan runs. Scan on a machine
whose accounts are trusted, or give the address of a cluster secured with TLS
(``--scheduler tls://...`` with the Dask configuration's TLS settings).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import importlib.util
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import allocator, batch, files
from ...errors import IndexStoreError, MatcherError, UsageError
from ...hashes import Hash
from ...index import KnownIndex
from ...index.local_table import LocalHit
from ...index.shards import (
    OpenShard,
    ShardCatalog,
    ShardedIndex,
    cached_shard,
    cached_shard_names,
    is_sharded,
    merge_digest_results,
    merge_local_results,
    merge_results,
    open_any,
)
from ...index.types import IndexedRecord, QueryResult
from ...local_features import DEFAULT_RULE, LocalFeatures, MatchRule
from ...pipeline import describe_error
from ...scan_records import ScanRecord
from ..options import FileResult, ScanConfig, ScanOptions
from ..scanner import HashedEntry, Scanner, open_scanner

__all__ = [
    "INSTALL_HINT",
    "LOCAL_ALLOWED_FAILURES",
    "OneLineCallbackErrors",
    "TASKS_PER_THREAD",
    "DaskEngine",
    "dask_results",
    "frame_key",
    "probe_workers",
    "public_address",
    "require_distributed",
    "shard_placement",
]

log = logging.getLogger(__name__)

#: How to install what the engine needs.
INSTALL_HINT = "pip install 'matcher[dask]' (or: pip install 'dask[distributed]')"
#: Tasks submitted and not yet written out, per worker thread of the cluster.
TASKS_PER_THREAD = 3
#: Worker deaths a task of a local cluster survives before its entries are suspects, each scanned alone.
LOCAL_ALLOWED_FAILURES = 2
#: Seconds to wait for a remote scheduler to answer.
CONNECT_TIMEOUT = 30
#: Seconds to wait for the first worker to join, and for a worker to come back when the cluster has
#: none left in the middle of a scan (then the scan stops with an error; its journal can be resumed).
WORKER_TIMEOUT = 120
#: Seconds between checks that the cluster still has a worker while the scan waits for a task.
POLL_SECONDS = 5


def require_distributed() -> None:
    """Raise :class:`~matcher.errors.UsageError` (saying how to install it) when ``dask.distributed``
    is not installed."""
    if importlib.util.find_spec("distributed") is None or importlib.util.find_spec("dask") is None:
        raise UsageError(f"the dask scan engine needs dask.distributed, which is not installed: {INSTALL_HINT}")


def public_address(address: str) -> str:
    """A scheduler address fit for a manifest: without user name, password, query or fragment
    (``tls://user:secret@host:8786?x=1`` -> ``tls://host:8786``)."""
    scheme, sep, rest = address.strip().partition("://")
    if not sep:
        scheme, rest = "", address.strip()
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    host = rest.rpartition("@")[2]
    return f"{scheme}://{host}" if sep else host


class DaskEngine:
    """The ``dask`` engine: tasks on a Dask cluster (a local loopback cluster, or ``options.scheduler``)."""

    name = "dask"

    def check(self, paths: Sequence[Any], options: ScanOptions) -> None:
        """``dask.distributed`` must be installed; with a remote scheduler, evidence paths must be
        absolute (its workers resolve them on their own machines)."""
        require_distributed()
        if options.scheduler is not None:
            for path in paths:
                if not os.path.isabs(os.fspath(path)):
                    raise UsageError(
                        f"evidence path {os.fsdecode(os.fspath(path))!r} is relative: with a Dask scheduler give "
                        "absolute paths (the workers resolve them on their own machines)"
                    )

    def open_index(
        self, index_path: str | os.PathLike[str], options: ScanOptions
    ) -> KnownIndex | ShardedIndex | ShardCatalog:
        """A single index, opened; a sharded one only described (:class:`ShardCatalog`): its shards are
        opened by the workers that hold them, never all in this process."""
        if is_sharded(index_path):
            return ShardCatalog.read(index_path)
        return open_any(index_path)

    def facts(self, options: ScanOptions) -> dict[str, Any]:
        """The engine as the run manifest names it (a scheduler address without credentials)."""
        if options.scheduler is None:
            return {"name": "dask", "scheduler": None, "local_cluster_workers": options.worker_count()}
        return {"name": "dask", "scheduler": public_address(options.scheduler)}

    def results(
        self,
        entries: Iterable[files.Entry],
        config: ScanConfig,
        index: KnownIndex | ShardedIndex | ShardCatalog | None,
        options: ScanOptions,
    ) -> Iterator[FileResult]:
        """Every entry's result, in order, from the cluster (``index`` is not used: the workers read
        every entry and open the index themselves)."""
        return dask_results(entries, config, options)


# --------------------------------------------------------------------------------------------------
# Worker side


_CACHE_SIZE = 2
_CACHE_LOCK = threading.Lock()
_SCANNERS: list[tuple[ScanConfig, Scanner]] = []  # most recently opened first
_OPENED = 0  # indexes this process has opened (tests check it is one per worker)


def _scanner_for(config: ScanConfig) -> Scanner:
    """This worker process's scanner for ``config``: opened at the first task, then reused.

    The last :data:`_CACHE_SIZE` configurations are kept, so a long-lived worker serving several scans
    does not hold every index it ever opened; an evicted scanner is dropped (a task still using it
    finishes).
    """

    def open_index(config: ScanConfig) -> Scanner:
        global _OPENED
        _OPENED += 1
        allocator.tune_allocator()  # a worker that hashes frames (see its documentation)
        return open_scanner(config)

    return _kept(_SCANNERS, config, open_index)


def _kept(
    cache: list[tuple[ScanConfig, Scanner]], config: ScanConfig, make: Callable[[ScanConfig], Scanner]
) -> Scanner:
    """The scanner ``cache`` holds for ``config``, else ``make(config)`` kept at its front (the last
    :data:`_CACHE_SIZE` configurations are kept; one lock for every cache of the process)."""
    with _CACHE_LOCK:
        for held, scanner in cache:
            if held == config:
                return scanner
        scanner = make(config)
        cache.insert(0, (config, scanner))
        del cache[_CACHE_SIZE:]
        return scanner


def _opened_indexes() -> int:
    """How many times this worker process opened an index (for tests, via ``Client.run``)."""
    return _OPENED


def _each(step: Callable[[files.Entry], Any], entries: list[files.Entry]) -> list[Any]:
    """``step`` of every entry of a chunk, in order."""
    return [step(entry) for entry in entries]


def _scan_task(config: ScanConfig, entries: list[files.Entry]) -> list[FileResult]:
    """A Dask task: the results of a chunk of entries, in order (pure: the same input, the same output)."""
    return _scanner_for(config).scan_entries(entries)


# -- sharded indexes: shards placed on workers ------------------------------------------------------

_HASHERS: list[tuple[ScanConfig, Scanner]] = []  # scanners without an index (hash only), most recent first


def _hasher_for(config: ScanConfig) -> Scanner:
    """This worker process's hash-only scanner for ``config`` (its sharded index described by a
    :class:`~matcher.index.shards.ShardCatalog`, no shard opened), made at the first task."""

    def hasher(config: ScanConfig) -> Scanner:
        allocator.tune_allocator()  # a worker that hashes frames (see its documentation)
        return Scanner(ShardCatalog.read(config.index_path), config)

    return _kept(_HASHERS, config, hasher)


def _catalog(scanner: Scanner) -> ShardCatalog:
    """The shard catalogue a hash-only scanner describes its index with."""
    if not isinstance(scanner.index, ShardCatalog):
        raise MatcherError("internal error: a hash-only scanner without its shard catalogue")
    return scanner.index


def _hash_task(config: ScanConfig, entries: list[files.Entry]) -> list[Any]:
    """A Dask task (sharded index): read and hash a chunk of entries; each is a finished result (not
    read, not an image...) or a hashed entry for the shards to answer."""
    return _each(_hasher_for(config).hash_entry, entries)


class _Recording:
    """One shard's answers to the index calls the scan's matching made for the hashed entries of one
    chunk (matched together), in call order, and the records it fetched (global ids). Filled on the
    shard's worker by :class:`_Recorder`."""

    __slots__ = ("calls", "records", "local")

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []  # ("digest", kind, values, answer) | ("search", view, radius, n, answer)
        self.records: dict[int, Any] = {}
        # each frame's local-feature answer, by the frame's content (frame_key): the shard searched the frames
        # that no digest and no global hash matched in it, a superset of those the merged answers leave
        self.local: dict[bytes, list[LocalHit]] = {}


def frame_key(features: LocalFeatures) -> bytes:
    """What names a frame's local features between a shard's task and the finishing task: a digest of
    the frame's size, keypoints and descriptors (the same hashed entry in both, extracted once)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.asarray([features.width, features.height], np.int64).tobytes())
    digest.update(np.ascontiguousarray(features.points).tobytes())
    digest.update(np.ascontiguousarray(features.descriptors).tobytes())
    return digest.digest()


class _Proxy:
    """What the index proxies below share: the sharded index's facts, from its catalogue, so that each
    is an :class:`~matcher.index.IndexReader` for the scan's matching (which makes range searches,
    digest look-ups and record fetches only)."""

    def __init__(self, catalog: ShardCatalog) -> None:
        self.catalog = catalog

    @property
    def algorithms(self) -> tuple[str, ...]:
        """The algorithms the sharded index holds."""
        return tuple(self.catalog.algorithms)

    @property
    def views(self) -> Mapping[str, tuple[str, ...]]:
        """The view tables the sharded index holds, per algorithm."""
        return self.catalog.views

    @property
    def generation(self) -> int:
        """The sharded index's generation."""
        return self.catalog.generation

    @property
    def local_records(self) -> int:
        """Records holding local features, all shards."""
        return self.catalog.local_records

    def nearest(self, queries: Sequence[Hash], k: int, *, view: str | None = None) -> list[QueryResult]:
        """Not served: the scan's matching makes no nearest-neighbour search."""
        raise UsageError("the Dask shard proxies answer the scan's range searches only")

    def close(self) -> None:
        """Nothing to close: the shards stay open in the worker's cache."""


class _Recorder(_Proxy):
    """Stands in for the index while a shard's worker runs the scan's matching of a chunk: answers
    from the shard alone and keeps every answer in a :class:`_Recording`."""

    def __init__(self, catalog: ShardCatalog, shard: OpenShard) -> None:
        super().__init__(catalog)
        self.shard = shard
        self.recording = _Recording()

    def lookup_digest(self, kind: str, hex_values: Iterable[str]) -> dict[str, list[IndexedRecord]]:
        """The shard's answer (global ids), recorded."""
        values = tuple(hex_values)
        answer = self.shard.lookup_digest(kind, list(values))
        self.recording.calls.append(("digest", kind, values, answer))
        return answer

    def search(
        self, queries: Sequence[Hash], max_distance: int | None = None, *, view: str | None = None
    ) -> list[QueryResult]:
        """The shard's answer (global ids), recorded."""
        answer = self.shard.query(list(queries), max_distance, view, None)
        self.recording.calls.append(("search", view, max_distance, len(queries), answer))
        return answer

    def find_local(
        self, frames: Sequence[LocalFeatures], rule: MatchRule = DEFAULT_RULE, max_candidates: int | None = None
    ) -> list[list[LocalHit]]:
        """The shard's local-feature answer for each frame (global ids), recorded by the frame's content."""
        frames = list(frames)
        answer = self.shard.find_local(frames, rule, max_candidates)
        for features, hits in zip(frames, answer):
            self.recording.local[frame_key(features)] = hits
        return answer

    def records(self, ids: Iterable[int]) -> list[IndexedRecord]:
        """The shard's records of ``ids`` (those it holds), recorded."""
        found = self.shard.records([int(i) for i in ids])
        for record in found:
            self.recording.records[record.id] = record
        return found


class _Replay(_Proxy):
    """Stands in for the whole sharded index while the scan's matching of a chunk runs again on the
    merged answers: each call is answered by merging every shard's recorded answer to the same call,
    exactly as :class:`~matcher.index.shards.ShardedIndex` merges live answers."""

    def __init__(self, catalog: ShardCatalog, recordings: list[_Recording]) -> None:
        super().__init__(catalog)
        self.recordings = recordings
        self.position = 0

    def _next(self, what: tuple[Any, ...]) -> list[Any]:
        answers = []
        for recording in self.recordings:
            if self.position >= len(recording.calls) or recording.calls[self.position][:-1] != what:
                raise MatcherError("internal error: a shard answered other index calls than the scan made")
            answers.append(recording.calls[self.position][-1])
        self.position += 1
        return answers

    def lookup_digest(self, kind: str, hex_values: Iterable[str]) -> dict[str, list[IndexedRecord]]:
        """Every shard's recorded answer to this look-up, merged."""
        return merge_digest_results(self._next(("digest", kind, tuple(hex_values))))

    def search(
        self, queries: Sequence[Hash], max_distance: int | None = None, *, view: str | None = None
    ) -> list[QueryResult]:
        """Every shard's recorded answer to this search, merged."""
        return merge_results(self._next(("search", view, max_distance, len(queries))))

    def find_local(
        self, frames: Sequence[LocalFeatures], rule: MatchRule = DEFAULT_RULE, max_candidates: int | None = None
    ) -> list[list[LocalHit]]:
        """Every shard's recorded local-feature answer for each frame, merged. A frame that no merged
        answer matched was unmatched in every shard, so every shard searched it."""
        keys = [frame_key(features) for features in frames]
        per_shard = []
        for recording in self.recordings:
            if any(key not in recording.local for key in keys):
                raise MatcherError("internal error: a shard did not search a frame's local features")
            per_shard.append([recording.local[key] for key in keys])
        return merge_local_results(per_shard, len(keys))

    def records(self, ids: Iterable[int]) -> list[IndexedRecord]:
        """The records of ``ids``, as the shards that hold them fetched them."""
        held: dict[int, Any] = {}
        for recording in self.recordings:
            held.update(recording.records)
        wanted = [int(i) for i in ids]
        if any(i not in held for i in wanted):  # a matched record is fetched by the shard that holds it
            raise MatcherError("internal error: a matched record was not fetched by its shard")
        return [held[i] for i in wanted]


def _shard_task(config: ScanConfig, shard: Any, hashed: list[Any]) -> _Recording | None:
    """A Dask task, run on the worker that holds ``shard``: that shard's answers for the hashed entries
    of a chunk, matched together (``None`` when every entry is finished already). The shard is opened
    once per process."""
    waiting = [item for item in hashed if isinstance(item, HashedEntry)]
    if not waiting:
        return None
    scanner = _hasher_for(config)
    recorder = _Recorder(_catalog(scanner), _open_shard(shard))
    scanner.finish_many(waiting, recorder)
    return recorder.recording


def _open_shard(shard: Any) -> Any:
    """``shard`` opened (checked) once per worker process, then reused."""
    return cached_shard(shard, verify=True)


# -- readiness: every worker opens the index before any chunk is sent --------------------------------


def _open_for_scan(config: ScanConfig, shards: Sequence[Any] | None) -> None:
    """Open what this worker's tasks will use, into the process caches the tasks read: the index
    (``shards`` ``None``), or the hash-only scanner and the shards placed on this worker."""
    if shards is None:
        _scanner_for(config)
        return
    _hasher_for(config)
    for shard in shards:
        try:
            _open_shard(shard)
        except MatcherError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to open a shard is the same to the scan
            raise IndexStoreError(f"{shard.path}: worker could not open the shard: {describe_error(exc)}") from None


async def _ready(config: ScanConfig, shards_by_worker: dict[str, list[Any]] | None, dask_worker: Any = None) -> bool:
    """Run on every worker (``Client.run``) before any chunk is sent: opens the index (or the shards
    placed on this worker) in a thread, so the worker's event loop keeps answering meanwhile."""
    import asyncio

    shards = None if shards_by_worker is None else shards_by_worker.get(dask_worker.address, [])
    await asyncio.get_running_loop().run_in_executor(None, _open_for_scan, config, shards)
    return True


def probe_workers(client: Any, config: ScanConfig, shards_by_worker: dict[str, list[Any]] | None = None) -> None:
    """Every worker of ``client``'s cluster opens the index once (for a sharded index: the shards
    ``shards_by_worker`` places on it) before any chunk of the scan is sent, as the local pool's
    warm-up probes do. A worker that cannot (the index unreadable there) or that dies meanwhile (out of
    memory, say) stops the scan with a :class:`~matcher.errors.MatcherError` instead of turning the
    files of its chunks into per-file errors."""
    try:
        client.run(_ready, config, shards_by_worker)
    except MatcherError:
        raise
    except Exception as exc:  # noqa: BLE001 - a worker that died mid-call: the connection closed
        raise MatcherError(
            f"a Dask worker died (or failed) while opening the index {config.index_path} before the scan started "
            f"({describe_error(exc)}; e.g. out of memory): no file was sent to it; fix the cause (a journaled scan "
            "keeps its journal) and run the same command again with --resume"
        ) from None


def _finish_task(config: ScanConfig, hashed: list[Any], per_shard: list[_Recording | None]) -> list[FileResult]:
    """A Dask task: every entry's result from its hashes and all shards' answers, merged exactly."""
    waiting = [item for item in hashed if isinstance(item, HashedEntry)]
    if not waiting:
        return list(hashed)
    scanner = _hasher_for(config)
    replay = _Replay(_catalog(scanner), [r for r in per_shard if r is not None])
    finished = iter(scanner.finish_many(waiting, replay))
    return [next(finished) if isinstance(item, HashedEntry) else item for item in hashed]


def _held_shards() -> list[str]:
    """Names of the shards this worker process has open (for tests, via ``Client.run``)."""
    return cached_shard_names()


def shard_placement(shards: Sequence[Any], workers: Iterable[str]) -> dict[str, str]:
    """Which worker holds which shard: ``{shard name: worker address}``, round robin over the workers
    in address order (shard i on worker i mod n). A worker holds only the shards placed on it, so a
    worker's memory is its shards', not the whole index's."""
    addresses = sorted(workers)
    if not addresses:
        raise MatcherError("no Dask worker to place the index shards on")
    return {info.name: addresses[i % len(addresses)] for i, info in enumerate(shards)}


# --------------------------------------------------------------------------------------------------
# Client side


@dataclass(frozen=True, slots=True)
class _Session:
    """A connected client and the worker threads it counted."""

    client: Any
    threads: int


@contextlib.contextmanager
def _session(options: ScanOptions) -> Iterator[_Session]:
    """A client of the scheduler at ``options.scheduler``, or of a local cluster started (and closed) here."""
    require_distributed()
    import dask
    from distributed import Client, LocalCluster

    if options.scheduler is None:
        workers = options.worker_count()
        local = {
            "distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES,
            "distributed.scheduler.http.routes": [],  # no dashboard, no info pages
        }
        try:
            # the scheduler's HTTP server cannot be turned off: a free loopback port, serving nothing;
            # its worker processes ignore Ctrl-C (the scan stops and closes them)
            with dask.config.set(local), batch.interrupts_ignored():
                cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                )
        except Exception as exc:  # noqa: BLE001 - any failure to start is the same to the user
            raise MatcherError(f"could not start a local Dask cluster: {describe_error(exc)}") from None
        try:
            try:
                client = Client(cluster, set_as_default=False)
            except Exception as exc:  # noqa: BLE001
                raise MatcherError(f"could not connect to the local Dask cluster: {describe_error(exc)}") from None
            try:
                yield _Session(client, workers)
            finally:
                client.close()
        finally:
            cluster.close()
        return

    shown = public_address(options.scheduler)
    try:
        client = Client(options.scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except Exception as exc:  # noqa: BLE001
        raise MatcherError(f"cannot reach the Dask scheduler at {shown}: {exc}") from None
    try:
        try:
            client.wait_for_workers(1, timeout=WORKER_TIMEOUT)
        except Exception:  # noqa: BLE001 - a timeout, whatever its class in this Dask version
            raise MatcherError(f"no worker joined the Dask scheduler at {shown} within {WORKER_TIMEOUT} s") from None
        threads = sum(client.nthreads().values())
        yield _Session(client, max(1, threads))
    finally:
        client.close()


class _Slot:
    """One submitted chunk: its entries and their results as they come in."""

    __slots__ = ("entries", "missing", "results")

    def __init__(self, entries: list[files.Entry]) -> None:
        self.entries = entries
        self.results: list[FileResult | None] = [None] * len(entries)
        self.missing = len(entries)


def dask_results(entries: Iterable[files.Entry], config: ScanConfig, options: ScanOptions) -> Iterator[FileResult]:
    """Every entry's result, in the order of ``entries``, computed on a Dask cluster.

    The cluster (local, or ``options.scheduler``) is connected to on the first ``next()`` and released
    when the generator is exhausted or closed; tasks still running are then cancelled. Raises
    :class:`~matcher.errors.MatcherError` when the cluster cannot be started or reached, or a task
    fails for a reason other than its worker dying. Meanwhile Dask's own INFO logging (cluster start
    and stop chatter) is held back; its warnings and errors (a worker that died) still come through.
    """
    catalog = ShardCatalog.read(config.index_path) if is_sharded(config.index_path) else None
    with _distributed_logs_at(logging.WARNING), _session(options) as session:
        sharded: tuple[ShardCatalog, dict[str, str]] | None = None
        if catalog is None:
            probe_workers(session.client, config)
        else:
            placement = shard_placement(catalog.shards, session.client.scheduler_info()["workers"])
            log.info("shards placed on workers: %s", placement)
            held: dict[str, list[Any]] = {address: [] for address in placement.values()}
            for info in catalog.shards:
                held[placement[info.name]].append(info)
            probe_workers(session.client, config, held)
            sharded = (catalog, placement)
        yield from _ordered(session, entries, config, options.chunk_size, sharded)


@contextlib.contextmanager
def _distributed_logs_at(level: int) -> Iterator[None]:
    """The ``distributed`` logger at ``level`` at least, restored afterwards; meanwhile an error that
    Dask's event loop logs from one of its callbacks (through ``tornado.application``) is one line,
    without its traceback (:class:`OneLineCallbackErrors`)."""
    require_distributed()
    import distributed  # its first import sets its loggers' levels

    logger = logging.getLogger(distributed.__name__)
    before = logger.level
    if logger.getEffectiveLevel() < level:
        logger.setLevel(level)
    callbacks = logging.getLogger("tornado.application")
    one_line = OneLineCallbackErrors()
    callbacks.addFilter(one_line)
    try:
        yield
    finally:
        callbacks.removeFilter(one_line)
        logger.setLevel(before)


class OneLineCallbackErrors(logging.Filter):
    """Makes an error logged from a callback of Dask's event loop one line: what was raised, no
    traceback. Such an error is Dask's own, never a file's result (every result is taken from its
    task); seen when Ctrl-C lands while the client waits on the loop, where ``distributed``'s
    ``sync`` cancels a future it has not made yet (``NameError: ... 'future'``), and a traceback on
    an interrupted scan's terminal would look like matcher's crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record, its exception folded into its message."""
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"Dask's event loop: {record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _ordered(
    session: _Session,
    entries: Iterable[files.Entry],
    config: ScanConfig,
    chunk_size: int,
    sharded: tuple[Any, dict[str, str]] | None = None,
) -> Iterator[FileResult]:
    from distributed import KilledWorker, as_completed

    client = session.client
    window = max(2, TASKS_PER_THREAD * session.threads)
    token = uuid.uuid4().hex
    chunks = enumerate(batch.chunks(entries, chunk_size))
    slots: dict[int, _Slot] = {}  # submitted and not yet yielded, by position in the walk
    owners: dict[str, tuple[int, int | None]] = {}  # task key -> (slot, suspect entry within it; None: all)
    running: dict[str, Any] = {}  # task key -> future
    feeding: dict[str, list[Any]] = {}  # task key -> the futures of its hashing and shard tasks
    pinned: dict[str, set[str]] = {}  # task key -> the workers its shard tasks are restricted to
    suspects: collections.deque[tuple[int, int]] = collections.deque()  # (slot, entry): to be scanned alone
    finished = as_completed(loop=client.loop)
    walked = False
    next_slot = 0
    submissions = 0

    def submit(batch: list[files.Entry], slot: int, position: int | None) -> None:
        nonlocal submissions
        submissions += 1  # a chunk submitted again (its shard's worker gone) gets a new key
        key = f"matcher-scan-{token}-{slot}" + ("" if position is None else f"-{position}") + f"-{submissions}"
        if sharded is None:
            future = client.submit(_scan_task, config, batch, key=key, pure=False)
        else:
            # hash anywhere; each shard answers on the worker it is placed on, and only there (its tasks
            # are not stolen by idle workers, which would then open the shard too); merge anywhere
            catalog, placement = sharded
            hashed = client.submit(_hash_task, config, batch, key=f"{key}-hash", pure=False)
            answers = [
                client.submit(
                    _shard_task,
                    config,
                    info,
                    hashed,
                    key=f"{key}-{info.name}",
                    pure=False,
                    workers=[placement[info.name]],
                    allow_other_workers=False,
                )
                for info in catalog.shards
            ]
            future = client.submit(_finish_task, config, hashed, answers, key=key, pure=False)
            feeding[key] = [hashed, *answers]
            pinned[key] = {placement[info.name] for info in catalog.shards}
        owners[key] = (slot, position)
        running[key] = future
        finished.add(future)

    def replace_lost_holders(alive: set[str]) -> None:
        """Shards whose worker left are placed on the workers present (fewest shards first), and the
        chunks waiting for them are submitted again (a task restricted to a gone worker waits forever)."""
        if sharded is None or not alive:
            return
        catalog, placement = sharded
        lost = sorted(name for name, worker in placement.items() if worker not in alive)
        if not lost:
            return
        for name in lost:
            load = collections.Counter({worker: 0 for worker in alive})
            load.update(worker for worker in placement.values() if worker in alive)
            placement[name] = min(sorted(alive), key=lambda worker: load[worker])
        log.warning(
            "the worker(s) holding shard(s) %s left; now placed on %s",
            ", ".join(lost),
            ", ".join(f"{name} -> {placement[name]}" for name in lost),
        )
        names = [info.name for info in catalog.shards]
        for key in [k for k, feeds in feeding.items() if any(names[i] in lost for i in range(len(feeds) - 1))]:
            slot_number, position = owners.pop(key)
            stale = [running.pop(key), *feeding.pop(key)]
            with contextlib.suppress(Exception):
                client.cancel(stale)
            slot = slots[slot_number]
            submit(slot.entries if position is None else [slot.entries[position]], slot_number, position)

    def top_up() -> None:
        nonlocal walked
        while not walked and not suspects and len(slots) < window:
            item = next(chunks, None)
            if item is None:
                walked = True
                break
            slot, batch = item
            slots[slot] = _Slot(batch)
            submit(batch, slot, None)

    def stranded(workers: set[str], alive: set[str]) -> bool:
        """Whether a finished chunk whose result is not there (it left with its worker) may never be
        computed again: a shard task of the chunk is restricted to one of ``workers`` that is gone
        (its shards are placed anew first)."""
        replace_lost_holders(alive)
        return not workers <= alive

    def settle(future: Any) -> None:
        owner = owners.pop(future.key, None)
        running.pop(future.key, None)
        workers = pinned.pop(future.key, set())
        for fed in feeding.pop(future.key, ()):
            fed.release()
        if owner is None:  # a result already taken: never twice
            return
        slot_number, position = owner
        slot = slots[slot_number]
        batch = slot.entries if position is None else [slot.entries[position]]
        if future.status == "cancelled":  # the scheduler went away or dropped the task
            raise MatcherError("the Dask scheduler dropped a scan task; a journaled scan can be resumed")
        try:
            # data lost with its worker is computed again (submitted again when that cannot be done)
            results = _result(client, future, lambda alive: stranded(workers, alive))
        except _Stranded:
            log.warning("a finished chunk's result left with its worker and its shards' worker; submitted again")
            with contextlib.suppress(Exception):
                client.cancel([future])
            submit(batch, slot_number, position)
            return
        except KilledWorker as exc:
            attempts = exc.allowed_failures + 1
            where = files.display_path(batch[0].path)[0]
            if position is None:
                log.warning(
                    "workers died %d time(s) with %d entries from %s on them; scanning each of them alone",
                    attempts,
                    len(batch),
                    where,
                )
                suspects.extend((slot_number, index) for index in range(len(batch)))
            else:
                log.warning(
                    "%s killed its worker %d time(s) when scanned alone; it gets an error record", where, attempts
                )
                slot.results[position] = _killed_result(batch[0], attempts)
                slot.missing -= 1
        except MatcherError:
            raise  # e.g. a worker could not open the index: fatal, as with the local engine
        except Exception as exc:  # noqa: BLE001
            raise MatcherError(f"a Dask scan task failed: {describe_error(exc)}") from None
        else:
            _check(results, batch)
            if position is None:
                slot.results = list(results)
                slot.missing = 0
            else:
                slot.results[position] = results[0]
                slot.missing -= 1
        future.release()

    try:
        while True:
            while next_slot in slots and slots[next_slot].missing == 0:
                done = slots.pop(next_slot)
                next_slot += 1
                for result in done.results:
                    if result is None:  # pragma: no cover - missing == 0 means every result is in
                        raise MatcherError("internal error: a Dask scan result went missing")
                    yield result
            top_up()
            if not slots:
                return
            if suspects and not running:  # alone on the cluster: a death is this entry's own
                slot_number, position = suspects.popleft()
                submit([slots[slot_number].entries[position]], slot_number, position)
            try:
                future = _next_finished(client, finished, running, replace_lost_holders)
            except StopIteration:  # pragma: no cover - a slot is waiting, so a task is running
                raise MatcherError("internal error: Dask scan tasks went missing") from None
            settle(future)
    finally:
        pending = list(running.values()) + [fed for feeds in feeding.values() for fed in feeds]
        if pending:
            with contextlib.suppress(Exception):
                client.cancel(pending)


def _next_finished(
    client: Any, finished: Any, running: dict[str, Any], on_poll: Callable[[set[str]], None] | None = None
) -> Any:
    """The next finished task from ``finished``; :class:`MatcherError` when the cluster has had no
    worker at all for :data:`WORKER_TIMEOUT` seconds while tasks wait (Dask itself would wait forever).

    Waits by looking every 10 ms (``as_completed`` itself looks every 100 ms) and asks the scheduler
    for its workers every :data:`POLL_SECONDS`, handing their addresses to ``on_poll``.
    """
    watch = _WorkerWatch()
    check_at = time.monotonic() + POLL_SECONDS
    while running and not finished.has_ready():
        time.sleep(0.01)
        now = time.monotonic()
        if now < check_at:
            continue
        check_at = now + POLL_SECONDS
        alive = set(client.nthreads())
        if on_poll is not None:
            on_poll(alive)
        watch.check(alive)
    return next(finished)


class _WorkerWatch:
    """How long the cluster has had no worker at all: :meth:`check` raises :class:`MatcherError` once
    that lasts :data:`WORKER_TIMEOUT` seconds (Dask itself would wait for one forever)."""

    def __init__(self) -> None:
        self.alone_since: float | None = None

    def check(self, alive: set[str]) -> None:
        """Note the workers present now; raise when there has been none for too long."""
        now = time.monotonic()
        if alive:
            self.alone_since = None
        elif self.alone_since is None:
            self.alone_since = now
            log.warning("the Dask cluster has no worker left; waiting up to %d s for one", WORKER_TIMEOUT)
        elif now - self.alone_since >= WORKER_TIMEOUT:
            raise MatcherError(
                f"the Dask cluster has had no worker for {WORKER_TIMEOUT} s; the scan stopped "
                "(a journaled scan can be resumed)"
            )


class _Stranded(Exception):
    """A finished task's result left with its worker and cannot be computed again (see :func:`_result`)."""


def _result(client: Any, future: Any, stranded: Callable[[set[str]], bool] | None = None) -> Any:
    """A finished task's result. Its data may have left with its worker, and is then computed again;
    :class:`MatcherError` when the cluster has no worker to do it for :data:`WORKER_TIMEOUT` seconds,
    :class:`_Stranded` when ``stranded`` (given the workers present, every :data:`POLL_SECONDS`) says
    it never will be."""
    watch = _WorkerWatch()
    while True:
        try:
            return future.result(timeout=POLL_SECONDS)
        except TimeoutError:
            alive = set(client.nthreads())
            watch.check(alive)
            if stranded is not None and stranded(alive):
                raise _Stranded from None


def _check(results: Any, batch: list[files.Entry]) -> None:
    """A task's results are one per entry, for those entries, in order."""
    if not isinstance(results, list) or [r.path for r in results] != [e.path for e in batch]:
        raise MatcherError(f"a Dask scan task returned results that do not match its {len(batch)} entries")


def _killed_result(entry: files.Entry, attempts: int) -> FileResult:
    """The record of an entry whose scan killed its worker process each time."""

    name, raw_hex = files.display_path(entry.path)
    message = (
        f"the scan worker process died each time it scanned this file ({attempts} attempts; "
        "e.g. a decoder crash): not scanned"
    )
    record = ScanRecord(path=name, status="error", size=entry.size, error=message, path_raw_hex=raw_hex)
    return FileResult(entry.path, (record,), None)
