"""What the service does with a request, without HTTP: look hashes up, match and hash uploads.

Nothing here computes anything of its own: hashes are searched with the index's
:meth:`~matcher.index.IndexReader.search` and :meth:`~matcher.index.IndexReader.lookup_digest`,
uploads are read and hashed by the pipeline (:func:`matcher.pipeline.read_source` on the bytes in
memory, nothing written to disk) and matched by the scan's :class:`~matcher.scan.scanner.Scanner`
(the scan's query views, distance rules, ranking and statuses), and records are the scan's
:class:`~matcher.scan_records.ScanRecord` and ``matcher hash``'s
:class:`~matcher.hashing.HashRecord`.

Batching: the search core is built for batches (at 10M codes one query alone costs several
milliseconds; in batches far less each), while a service gets one hash at a time from many clients.
:class:`Batcher` gathers them without waiting: the first request starts a search at once, requests
that arrive while it runs are searched together in the next one (up to ``max_batch`` hashes), so
that under load the searches grow and the cost per hash falls, and when idle a request waits for
nobody. Image matches are gathered the same way into :meth:`Scanner.finish_many` (one search per
algorithm and table for every image of the batch), as the scan batches its entries.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from .. import files
from ..algorithms import registry
from ..errors import HashFormatError, MatcherError, UnknownAlgorithmError
from ..hashes import Hash
from ..hashing import HashRecord, records_of
from ..index.types import IndexedRecord, Match
from ..pipeline import EntryFeatures, FeatureRequest, HashOptions, read_source
from ..scan.matching import is_known_good
from ..scan.options import FileResult
from ..scan.scanner import HashedEntry
from ..scan_records import DIGEST_ALGORITHMS, ScanRecord
from .live import Snapshot

__all__ = [
    "Batcher",
    "Busy",
    "LookupAnswer",
    "LookupQuery",
    "lookup_batch",
    "parse_query",
    "read_upload",
    "hash_upload",
    "upload_status",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Busy(MatcherError):
    """Too many requests are waiting for the matcher (the service answers 503)."""


@dataclass(frozen=True, slots=True)
class LookupQuery:
    """One hash to look up: a perceptual ``hash`` searched within ``max_distance``, or a digest
    (``digest_kind`` ``md5``/``sha1``/``sha256``, ``digest`` its lower-case hex)."""

    algorithm: str
    hex: str
    hash: Hash | None = None
    max_distance: int = 0
    digest_kind: str | None = None
    digest: str | None = None
    #: whether the answer needs the known-good flags of its matches (HMA's raw lookup does not)
    flags: bool = True


@dataclass(frozen=True, slots=True)
class LookupAnswer:
    """The answer for one :class:`LookupQuery`: its matches nearest first (record ids of the index),
    the ids among them on a known-good list, and ``skipped`` (why it was not searched)."""

    query: LookupQuery
    matches: tuple[Match, ...] = ()
    known_good: frozenset[int] = frozenset()
    skipped: str | None = None

    @property
    def status(self) -> str:
        """``match`` (a record not on a known-good list), ``known_good`` (only a known-good record by
        digest: perceptual similarity to one proves nothing, as in the scan), ``skipped`` or ``no_match``."""
        if self.skipped is not None:
            return "skipped"
        if any(m.record_id not in self.known_good for m in self.matches):
            return "match"
        if self.matches and self.query.digest_kind is not None:
            return "known_good"
        return "no_match"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready answer: ``algorithm``, ``hex``, ``status``, ``max_distance``, ``matches`` (each
        :meth:`Match.to_dict` with ``known_good``) and ``skipped``."""
        return {
            "algorithm": self.query.algorithm,
            "hex": self.query.hex,
            "status": self.status,
            "max_distance": None if self.query.digest_kind else self.query.max_distance,
            "matches": [{**m.to_dict(), "known_good": m.record_id in self.known_good} for m in self.matches],
            "skipped": self.skipped,
        }


def parse_query(item: Any, snapshot: Snapshot) -> LookupQuery:
    """One lookup item (``{"algorithm": "pdq", "hex": "...", "quality": 90, "max_distance": 31}``;
    quality and max_distance optional; ``algorithm`` may be a digest: md5, sha1, sha256) checked
    against the snapshot's index and limits. Raises :class:`~matcher.errors.UsageError`,
    :class:`HashFormatError` or :class:`UnknownAlgorithmError` with a message for the client."""
    from ..errors import UsageError

    if not isinstance(item, dict):
        raise UsageError(f"each hash is an object with algorithm and hex, not {type(item).__name__}")
    unknown = sorted(set(item) - {"algorithm", "hex", "quality", "max_distance"})
    if unknown:
        raise UsageError(f"unknown field(s) {', '.join(unknown)} (known: algorithm, hex, quality, max_distance)")
    algorithm, text = item.get("algorithm"), item.get("hex")
    if not isinstance(algorithm, str) or not algorithm:
        raise UsageError("algorithm is required (e.g. pdq, or a digest: md5, sha1, sha256)")
    if not isinstance(text, str) or not text:
        raise UsageError("hex is required")
    algorithm = algorithm.strip().lower()
    text = text.strip().lower()
    if algorithm in DIGEST_ALGORITHMS:
        if item.get("quality") is not None or item.get("max_distance") is not None:
            raise UsageError(f"{algorithm} is a digest, matched exactly: it takes no quality or max_distance")
        width = {"md5": 32, "sha1": 40, "sha256": 64}[algorithm]
        if len(text) != width or any(c not in "0123456789abcdef" for c in text):
            raise HashFormatError(f"a {algorithm} digest is {width} hex digits, not {text[:80]!r}")
        return LookupQuery(algorithm, text, digest_kind=algorithm, digest=text)
    facts = registry.get(algorithm)  # UnknownAlgorithmError names the known ones
    held = snapshot.config.algorithms
    if algorithm not in held:
        raise UsageError(f"this service matches no {algorithm} hashes (it matches {', '.join(held)})")
    quality = item.get("quality")
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100):
        raise UsageError(f"quality must be an integer from 0 to 100, not {quality!r}")
    ceiling = snapshot.config.max_distances[algorithm]
    distance = item.get("max_distance")
    if distance is None:
        distance = ceiling
    elif isinstance(distance, bool) or not isinstance(distance, int) or distance < 0:
        raise UsageError(f"max_distance must be a non-negative integer, not {distance!r}")
    elif distance > ceiling:
        raise UsageError(f"max_distance {distance} is above this service's limit for {algorithm} ({ceiling})")
    value = registry.hash_from_hex(facts.name, text, quality)
    return LookupQuery(algorithm, str(value), hash=value, max_distance=distance)


def lookup_batch(snapshot: Snapshot, batches: Sequence[Sequence[LookupQuery]]) -> list[list[LookupAnswer]]:
    """Every query of every batch answered against the snapshot's index, with one search per
    algorithm (at the largest distance asked, each answer then kept within its own), one look-up per
    digest kind and one record fetch for the known-good flags."""
    reader = snapshot.reader
    flat = [query for batch in batches for query in batch]
    found: list[tuple[tuple[Match, ...], str | None]] = [((), None)] * len(flat)
    by_algorithm: dict[str, list[int]] = {}
    by_digest: dict[str, list[int]] = {}
    for position, query in enumerate(flat):
        if query.digest_kind is not None:
            by_digest.setdefault(query.digest_kind, []).append(position)
        else:
            by_algorithm.setdefault(query.algorithm, []).append(position)
    for positions in by_algorithm.values():
        radius = max(flat[p].max_distance for p in positions)
        results = reader.search([h for h in (flat[p].hash for p in positions) if h is not None], radius)
        for position, result in zip(positions, results):
            limit = flat[position].max_distance
            found[position] = (tuple(m for m in result.matches if m.distance <= limit), result.skipped_reason)
    digest_records: dict[int, IndexedRecord] = {}
    for kind, positions in by_digest.items():
        answer = reader.lookup_digest(kind, list(dict.fromkeys(flat[p].digest or "" for p in positions)))
        for position in positions:
            records = answer.get(flat[position].digest or "", [])
            digest_records.update((rec.id, rec) for rec in records)
            found[position] = (
                tuple(
                    Match(rec.id, 0, kind, rec.list_name, rec.category, rec.series, rec.name, rec.comment)
                    for rec in records
                ),
                None,
            )
    matched = {m.record_id for query, (matches, _skip) in zip(flat, found) if query.flags for m in matches} - set(
        digest_records
    )
    fetched = reader.records(sorted(matched)) if matched else []
    good = frozenset(rec.id for rec in [*digest_records.values(), *fetched] if is_known_good(rec))
    answers = iter(
        LookupAnswer(query, matches, good & {m.record_id for m in matches}, skipped)
        for query, (matches, skipped) in zip(flat, found)
    )
    return [[next(answers) for _ in batch] for batch in batches]


@dataclass(frozen=True, slots=True)
class _Waiting(Generic[T, R]):
    snapshot: Snapshot
    item: T
    future: asyncio.Future[R]
    size: int = 1


class Batcher(Generic[T, R]):
    """Gathers concurrent calls of ``run(snapshot, items) -> results`` (one result per item) into
    batches, run one at a time in a worker thread (see the module documentation). ``size`` gives
    an item's weight against ``max_batch``; at most ``max_pending`` items wait (then :class:`Busy`);
    ``thread_setup`` runs first in the worker thread (e.g. its search threads)."""

    def __init__(
        self,
        run: Callable[[Snapshot, list[T]], list[R]],
        max_batch: int,
        max_pending: int,
        size: Callable[[T], int] | None = None,
        thread_setup: Callable[[], None] | None = None,
    ) -> None:
        self.run = run
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.size = size or (lambda item: 1)
        self._waiting: list[_Waiting[T, R]] = []
        self._running = False
        # its own thread: one batch at a time, and a hop cheaper than anyio's worker threads
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="matcher-batch", initializer=thread_setup)

    @property
    def pending(self) -> int:
        """Items waiting for a batch."""
        return len(self._waiting)

    async def submit(self, snapshot: Snapshot, item: T) -> R:
        """``item``'s result, computed in a batch with whatever else is waiting on the same snapshot."""
        if len(self._waiting) >= self.max_pending:
            raise Busy(f"{len(self._waiting)} requests are waiting for the matcher; try again shortly")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(snapshot, item, future, self.size(item)))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def close(self) -> None:
        """Stop the batch thread once the batch it runs (if any) ends."""
        self._thread.shutdown(wait=False)

    async def _drain(self) -> None:
        try:
            while self._waiting:
                first = self._waiting[0].snapshot
                taken: list[_Waiting[T, R]] = []
                weight = 0
                rest: list[_Waiting[T, R]] = []
                for waiting in self._waiting:
                    if waiting.future.done():  # cancelled (timed out) before its turn
                        continue
                    if waiting.snapshot is first and (not taken or weight + waiting.size <= self.max_batch):
                        taken.append(waiting)
                        weight += waiting.size
                    else:
                        rest.append(waiting)
                self._waiting = rest
                if not taken:
                    continue
                try:
                    results = await asyncio.get_running_loop().run_in_executor(
                        self._thread, self.run, first, [w.item for w in taken]
                    )
                except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the failure
                    for waiting in taken:
                        if not waiting.future.done():
                            waiting.future.set_exception(exc)
                    continue
                for waiting, result in zip(taken, results):
                    if not waiting.future.done():
                        waiting.future.set_result(result)
        finally:
            self._running = False


def read_upload(data: bytes, name: str, snapshot: Snapshot) -> HashedEntry:
    """The upload ``data`` read and hashed as the scan reads a file (in memory; nothing is written),
    with the snapshot's scanner's query views, ready for :meth:`Scanner.finish_many`."""
    scanner = snapshot.scanner
    # local features extracted here, in the hashing threads, not later in the one batch thread
    request = replace(scanner.request, defer_local=False)
    entry = read_source(files.read_stream, io.BytesIO(data), name, None, request, snapshot.config.hash_options)
    return HashedEntry(
        name.encode("utf-8", "surrogateescape"), ScanRecord(status="no_match", **entry.file_facts()), entry
    )


def finish_uploads(snapshot: Snapshot, hashed: list[HashedEntry]) -> list[FileResult]:
    """The scan's records of hashed uploads, matched together against the snapshot's index."""
    return snapshot.scanner.finish_many(hashed, snapshot.reader)


def upload_status(entry: EntryFeatures, records: Sequence[ScanRecord]) -> tuple[int, str, str | None]:
    """The HTTP status, the answer's status and the error message of a matched upload: 200 with
    ``match`` whenever anything matched (a match is never hidden by an error); else 422 when the
    upload is not an image (``not_an_image``) or could not be decoded (``undecodable``: never a
    clean answer for an image that was not seen in full); else 200 with ``known_good`` or
    ``no_match``."""
    statuses = {record.status for record in records}
    if "match" in statuses:
        return 200, "match", None
    if entry.error is not None or any(record.error for record in records):
        message = entry.error or next(record.error for record in records if record.error)
        return 422, "undecodable", f"the upload could not be decoded as an image: {message}"
    if not entry.frames:
        kind = entry.media.mime if entry.media is not None else "unrecognised data"
        return 422, "not_an_image", f"the upload is not an image ({kind}); send an image file"
    if "known_good" in statuses:
        return 200, "known_good", None
    return 200, "no_match", None


def hash_upload(data: bytes, name: str, algorithms: Sequence[str], options: HashOptions) -> list[HashRecord]:
    """``matcher hash``'s records of the upload (one per frame, and one for a failure)."""
    request = FeatureRequest(tuple(algorithms))
    entry = read_source(files.read_stream, io.BytesIO(data), name, None, request, options)
    return records_of(entry)


def unknown_algorithm_message(exc: UnknownAlgorithmError) -> str:
    """The message of an unknown algorithm (KeyError's ``str`` quotes it)."""
    return exc.args[0] if exc.args else str(exc)
