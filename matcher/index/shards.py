"""Sharded indexes: one known-material index split by record into several normal index directories.

A set too large for one machine's memory is split into *shards*, each a complete
:class:`~matcher.index.KnownIndex` holding a part of the records (with their hashes, digests,
metadata, lists, category labels and view hashes). A query goes to every shard and the answers are
merged exactly: a :class:`ShardedIndex` answers every search, nearest-neighbour search, digest
look-up and record fetch exactly as the unsharded index would, with the same record ids.

On-disk layout (one directory)::

    sharded/
      shards.json            format and version, the source index (path, generation, records), the
                             algorithms, and per shard: name, record count, first and last global
                             id, SHA-256 of the shard's manifest.json and of its global-ids.npy;
                             plus the SHA-256 of its own canonical JSON body
      shard-000/             a normal index directory (manifest.json, gen-NNNNNN/, write.lock)
        global-ids.npy       int64, the global id of each shard record: row i for shard record i + 1
      shard-001/ ...

Record ids: a record's *global id* is its id in the source index, and every answer a
:class:`ShardedIndex` gives names records by global id, so they equal the unsharded index's answers.
:func:`split_index` gives each shard a contiguous range of global ids (equal record counts, in id
order) and adds the records to the fresh shard in ascending global id order, so a shard's own ids
are ``1..n`` in the same order as the global ids: ``global-ids.npy`` maps one to the other, and
ties broken by shard id are broken by global id too. That is what makes the merged ``nearest``
exact: each shard's ``k`` nearest (ties by id) contain every record of the global ``k`` nearest
that the shard holds. Contiguous ranges also keep ``iter_records`` in global id order and let a
later shard take newly added records. Everything about a record is copied except ``added_at``,
which in a shard is the time of the split (when the record was written into the shard).

A sharded index is written once and read only: ``shards.json`` pins each shard's manifest by
checksum, and the shard's manifest pins its files, so a shard that is missing, damaged, replaced or
written to since the split is refused with an :class:`~matcher.errors.IndexStoreError` naming it.

Distributed use: :func:`search_shard` is a pure function of (shard, queries, parameters) that
returns a shard's answers with global ids, opening each shard once per process
(:func:`cached_shard`); :func:`merge_results` merges the per-shard answers. A Dask engine can run
``search_shard`` on the workers that hold the shards and merge on the client; :class:`ShardedIndex`
does the same one shard after another in this process. Nothing here starts processes.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import os
import shutil
import threading
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexStoreError, UsageError
from ..hashes import Hash
from ..known import KnownRecord
from ..local_features import DEFAULT_RULE, LocalFeatures, MatchRule
from .local_table import LocalHit
from .manifest import (
    MANIFEST_NAME,
    FileStamp,
    Manifest,
    body_digest,
    count_field,
    fsync_dir,
    index_file_errors,
    mapping_field,
    text_field,
    write_atomically,
)
from .store import SHARDS_NAME, KnownIndex, sharded_index_refusal, unknown_list_message
from .types import IndexedRecord, Match, QueryResult

__all__ = [
    "SHARDS_NAME",
    "SHARDS_FORMAT",
    "SHARDS_FORMAT_VERSION",
    "GLOBAL_IDS_NAME",
    "ShardInfo",
    "ShardedIndex",
    "ShardCatalog",
    "OpenShard",
    "split_index",
    "cached_shard",
    "cached_shard_names",
    "search_shard",
    "lookup_digest_shard",
    "merge_results",
    "merge_digest_results",
    "merge_local_results",
    "clear_shard_cache",
    "is_sharded",
    "open_any",
]

log = logging.getLogger(__name__)

#: Identifies a sharded index manifest.
SHARDS_FORMAT = "matcher-sharded-index"
#: Version of the ``shards.json`` format this code writes and reads.
SHARDS_FORMAT_VERSION = 1
#: Name of the file in each shard directory mapping the shard's record ids to global ids.
GLOBAL_IDS_NAME = "global-ids.npy"

_SHARD_PREFIX = "shard-"


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """One shard as ``shards.json`` names it (picklable: hand it to :func:`search_shard` on a worker).

    ``first_id`` and ``last_id`` are the smallest and largest global id in the shard (``None`` for
    an empty shard). The checksums pin the shard's ``manifest.json`` and ``global-ids.npy``.
    """

    name: str
    path: Path
    records: int
    first_id: int | None
    last_id: int | None
    manifest_sha256: str
    global_ids_sha256: str

    def to_dict(self) -> dict[str, Any]:
        """The shard's entry in ``shards.json`` (the path is the shard's name under the sharded index)."""
        return {
            "name": self.name,
            "records": self.records,
            "first_id": self.first_id,
            "last_id": self.last_id,
            "manifest_sha256": self.manifest_sha256,
            "global_ids_sha256": self.global_ids_sha256,
        }


@dataclass(frozen=True, slots=True)
class _Document:
    """A parsed, checked ``shards.json``."""

    root: Path
    checksum: str
    created_at: str
    source: dict[str, Any]
    records: int
    algorithms: tuple[str, ...]
    shards: tuple[ShardInfo, ...]


@dataclass(frozen=True, slots=True, eq=False)
class OpenShard:
    """One shard, open: its index and the global id of each of its records (row i: shard id i + 1).

    Its :meth:`query`, :meth:`records` and :meth:`lookup_digest` answer from this shard alone, naming
    records by global id, so that :func:`merge_results` and :func:`merge_digest_results` over every
    shard's answers give the unsharded index's. Get one with :func:`cached_shard` (distributed
    engines) or through a :class:`ShardedIndex`; the shard's index is closed by whoever opened it.
    """

    info: ShardInfo
    index: KnownIndex
    global_ids: np.ndarray

    def to_global(self, local_ids: Sequence[int]) -> list[int]:
        """Global ids of shard record ids."""
        if not local_ids:
            return []
        local = np.asarray(local_ids, dtype=np.int64)
        if int(local.min()) < 1 or int(local.max()) > self.global_ids.shape[0]:
            raise IndexStoreError(f"{self.info.path}: shard {self.info.name} names records {GLOBAL_IDS_NAME} lacks")
        return [int(g) for g in self.global_ids[local - 1]]

    def to_local(self, global_ids: Sequence[int]) -> dict[int, int]:
        """``{global id: shard id}`` for the global ids this shard holds."""
        if not global_ids or not self.global_ids.shape[0]:
            return {}
        wanted = np.asarray(global_ids, dtype=np.int64)
        positions = np.minimum(np.searchsorted(self.global_ids, wanted), self.global_ids.shape[0] - 1)
        hit = self.global_ids[positions] == wanted
        return {int(g): int(p) + 1 for g, p in zip(wanted[hit], positions[hit])}

    def globalise(self, results: list[QueryResult]) -> list[QueryResult]:
        """The shard's query results with global record ids."""
        mapped = iter(self.to_global([m.record_id for result in results for m in result.matches]))
        return [
            replace(result, matches=tuple(replace(m, record_id=next(mapped)) for m in result.matches))
            if result.matches
            else result
            for result in results
        ]

    def globalise_records(self, records: list[IndexedRecord]) -> list[IndexedRecord]:
        """Shard records with their global ids."""
        return [replace(record, id=g) for record, g in zip(records, self.to_global([r.id for r in records]))]

    def query(
        self, queries: Sequence[Hash], max_distance: int | None, view: str | None, k: int | None
    ) -> list[QueryResult]:
        """Range search (``k`` ``None``) or ``k`` nearest search of this shard, with global ids."""
        if k is None:
            return self.globalise(self.index.search(queries, max_distance, view=view))
        return self.globalise(self.index.nearest(queries, k, view=view))

    def records(self, global_ids: Sequence[int]) -> list[IndexedRecord]:
        """The records of these global ids that this shard holds, with their global ids."""
        local = self.to_local(global_ids)
        return self.globalise_records(self.index.records(local.values())) if local else []

    def find_local(
        self, frames: Sequence[LocalFeatures], rule: MatchRule = DEFAULT_RULE, max_candidates: int | None = None
    ) -> list[list[LocalHit]]:
        """This shard's local-feature answer for each frame (its own vote and verification), with
        global ids: :func:`merge_local_results` over every shard's answers gives the sharded index's."""
        answers = self.index.find_local(frames, rule, max_candidates)
        ids = iter(self.to_global([hit.record for hits in answers for hit in hits]))
        return [[replace(hit, record=next(ids)) for hit in hits] for hits in answers]

    def lookup_digest(self, kind: str, hex_values: Sequence[str]) -> dict[str, list[IndexedRecord]]:
        """The shard's digest look-up with global ids."""
        return {
            value: self.globalise_records(found) for value, found in self.index.lookup_digest(kind, hex_values).items()
        }

    def video_records(self) -> list[IndexedRecord]:
        """The shard's known videos with global ids."""
        return self.globalise_records(self.index.video_records())


# -- shards.json ---------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not an integer: {value!r}")
    return value


def _read_document(root: Path) -> _Document:
    """Read and check ``root/shards.json``; :class:`IndexStoreError` when absent, damaged or edited."""
    path = root / SHARDS_NAME
    with index_file_errors(f"{root}: not a sharded index (no {SHARDS_NAME})", f"{path}: cannot read"):
        text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise IndexStoreError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != SHARDS_FORMAT:
        raise IndexStoreError(f"{path}: not a matcher sharded index manifest")
    version = document.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise IndexStoreError(f"{path}: format_version missing or invalid")
    if version > SHARDS_FORMAT_VERSION:
        raise IndexStoreError(
            f"{path}: sharded index format version {version} is newer than this matcher "
            f"supports ({SHARDS_FORMAT_VERSION}); upgrade matcher to read it"
        )
    claimed = document.pop("shards_sha256", None)
    checksum = body_digest(document)
    if claimed != checksum:
        raise IndexStoreError(f"{path}: checksum mismatch ({SHARDS_NAME} damaged or edited)")
    try:
        shards = []
        for entry in document["shards"]:  # the manifest's field checks: no value silently coerced
            name = text_field(entry["name"], "shard name")
            if not name or "/" in name or "\\" in name or name in (".", ".."):
                raise ValueError(f"invalid shard name {name!r}")
            shards.append(
                ShardInfo(
                    name,
                    root / name,
                    count_field(entry["records"], f"records of shard {name}"),
                    _optional_int(entry["first_id"]),
                    _optional_int(entry["last_id"]),
                    text_field(entry["manifest_sha256"], f"manifest_sha256 of shard {name}"),
                    text_field(entry["global_ids_sha256"], f"global_ids_sha256 of shard {name}"),
                )
            )
        result = _Document(
            root,
            checksum,
            text_field(document["created_at"], "created_at"),
            dict(mapping_field(document["source"], "source")),
            count_field(document["records"], "records"),
            tuple(text_field(a, "algorithm") for a in document["algorithms"]),
            tuple(shards),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise IndexStoreError(f"{path}: missing or malformed field ({exc})") from None
    if not result.shards:
        raise IndexStoreError(f"{path}: names no shards")
    if len({s.name for s in result.shards}) != len(result.shards):
        raise IndexStoreError(f"{path}: names a shard twice")
    if sum(s.records for s in result.shards) != result.records:
        raise IndexStoreError(f"{path}: shard record counts do not add up to {result.records}")
    previous: int | None = None
    for shard in result.shards:
        if (shard.records == 0) != (shard.first_id is None) or (shard.first_id is None) != (shard.last_id is None):
            raise IndexStoreError(f"{path}: shard {shard.name} has an inconsistent id range")
        if shard.first_id is None or shard.last_id is None:
            continue
        if shard.last_id < shard.first_id or (previous is not None and shard.first_id <= previous):
            raise IndexStoreError(f"{path}: shard {shard.name} id range overlaps or is out of order")
        previous = shard.last_id
    return result


def _write_document(root: Path, body: dict[str, Any]) -> None:
    """Write ``shards.json`` atomically (temp file, fsync, rename, directory fsync)."""
    document = dict(body)
    document["shards_sha256"] = body_digest(body)
    data = (json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    write_atomically(root, SHARDS_NAME, data)


# -- opening one shard ----------------------------------------------------------------------------


def _load_global_ids(info: ShardInfo, count: int) -> np.ndarray:
    path = info.path / GLOBAL_IDS_NAME
    with index_file_errors(
        f"{path}: shard {info.name} has no {GLOBAL_IDS_NAME}", f"{path}: shard {info.name}: cannot read"
    ):
        data = path.read_bytes()
    if _sha256(data) != info.global_ids_sha256:
        raise IndexStoreError(f"{path}: shard {info.name}: SHA-256 checksum mismatch (file corrupt or altered)")
    try:
        ids: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy lets a broken header's tokenizer errors out, not only ValueError
        raise IndexStoreError(f"{path}: shard {info.name}: cannot read array ({type(exc).__name__}: {exc})") from None
    if ids.dtype != np.dtype(np.int64) or ids.shape != (count,) or count != info.records:
        raise IndexStoreError(
            f"{path}: shard {info.name}: {ids.dtype} array of shape {ids.shape}, expected "
            f"{info.records} int64 ids for an index of {count} records"
        )
    if count and (int(ids[0]) != info.first_id or int(ids[-1]) != info.last_id or not bool(np.all(ids[1:] > ids[:-1]))):
        raise IndexStoreError(
            f"{path}: shard {info.name}: global ids not ascending or not the range {SHARDS_NAME} names"
        )
    ids.setflags(write=False)
    return ids


def _shard_manifest(info: ShardInfo) -> Manifest:
    """The shard's manifest, checked against its ``shards.json`` entry (the shard's index is not opened)."""
    if not info.path.is_dir():
        raise IndexStoreError(f"{info.path}: shard {info.name} is missing")
    manifest_path = info.path / MANIFEST_NAME
    with index_file_errors(
        f"{info.path}: shard {info.name} is not an index (no {MANIFEST_NAME})",
        f"{manifest_path}: shard {info.name}: cannot read",
    ):
        data = manifest_path.read_bytes()
    if _sha256(data) != info.manifest_sha256:
        raise IndexStoreError(
            f"{manifest_path}: shard {info.name} differs from {SHARDS_NAME} "
            "(replaced, damaged or written to since the split)"
        )
    try:
        return Manifest.from_json(data.decode("utf-8"), str(manifest_path))
    except UnicodeDecodeError as exc:
        raise IndexStoreError(f"{manifest_path}: shard {info.name}: manifest unreadable ({exc})") from None


def _open_shard(info: ShardInfo, verify: bool, verified: Iterable[FileStamp] = ()) -> OpenShard:
    """Open one shard and check it against its ``shards.json`` entry (``verified``: as
    :meth:`KnownIndex.open`)."""
    generation = _shard_manifest(info).generation
    try:
        index = KnownIndex.open(info.path, verify=verify, verified=verified)
    except IndexStoreError as exc:
        raise IndexStoreError(f"shard {info.name}: {exc}") from None
    try:
        if index.generation != generation:
            raise IndexStoreError(f"{info.path}: shard {info.name} changed while it was being opened")
        return OpenShard(info, index, _load_global_ids(info, len(index)))
    except BaseException:
        index.close()
        raise


def merge_local_results(per_shard: Sequence[Sequence[Sequence[LocalHit]]], frames: int) -> list[list[LocalHit]]:
    """The sharded index's local-feature answer for ``frames`` frames from every shard's answer to
    the same frames (global ids, :meth:`OpenShard.find_local`): each frame's hits of all shards, most
    inliers first (ties by record id)."""
    merged: list[list[LocalHit]] = [[] for _ in range(frames)]
    for answers in per_shard:
        if len(answers) != frames:
            raise IndexStoreError(f"a shard answered {len(answers)} frames' local features, not {frames}")
        for held, hits in zip(merged, answers):
            held.extend(hits)
    for held in merged:
        held.sort(key=lambda hit: (-hit.match.inliers, hit.record))
    return merged


# -- the catalog: what a sharded index holds, without opening a shard -----------------------------


@dataclass(frozen=True, slots=True)
class ShardCatalog:
    """A sharded index's description, read from ``shards.json`` and the shards' manifests only.

    What a coordinator needs to plan a distributed search without loading any shard's hashes: the
    shards (to hand to :func:`search_shard` on the machines that hold them), the algorithms, the
    searchable view tables, the record count and the checksum. Every shard manifest is checked
    against ``shards.json``. It holds nothing open; :meth:`close` is there so that it can stand in
    for an index where only these facts are read.
    """

    path: Path
    checksum: str
    records: int
    algorithms: tuple[str, ...]
    shards: tuple[ShardInfo, ...]
    views: dict[str, tuple[str, ...]]
    generation: int = 1
    #: records holding local features, all shards (from the shards' manifests)
    local_records: int = 0

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ShardCatalog:
        """Read and check ``path/shards.json`` and every shard's manifest; :class:`IndexStoreError` when
        one is missing, damaged or edited, or a shard indexes other algorithms."""
        document = _read_document(Path(path))
        views: dict[str, set[str]] = {}
        local_records = 0
        for info in document.shards:
            manifest = _shard_manifest(info)
            local_records += int((manifest.local or {}).get("records", 0))
            if tuple(manifest.algorithms) != document.algorithms:
                raise IndexStoreError(
                    f"{info.path}: shard {info.name} indexes {', '.join(manifest.algorithms)}, "
                    f"{SHARDS_NAME} says {', '.join(document.algorithms)}"
                )
            for algorithm, named in manifest.views.items():
                searchable = {view for view, counts in named.items() if int(counts.get("searchable", 0)) > 0}
                if searchable:
                    views.setdefault(algorithm, set()).update(searchable)
        return cls(
            document.root,
            document.checksum,
            document.records,
            document.algorithms,
            document.shards,
            {algorithm: tuple(sorted(named)) for algorithm, named in sorted(views.items())},
            local_records=local_records,
        )

    def __len__(self) -> int:
        """Number of stored records (all shards)."""
        return self.records

    def close(self) -> None:
        """Nothing to release (the catalog holds no open file)."""

    @property
    def verified_files(self) -> tuple[FileStamp, ...]:
        """Always empty: nothing is verified until the workers holding the shards open them."""
        return ()


# -- per-shard functions for distributed engines --------------------------------------------------

_CACHE: dict[tuple[str, str, str], OpenShard] = {}
_CACHE_LOCK = threading.Lock()


def _shard_info(shard: ShardInfo | str | os.PathLike[str]) -> ShardInfo:
    if isinstance(shard, ShardInfo):
        return shard
    path = Path(shard)
    document = _read_document(path.parent)
    for info in document.shards:
        if info.name == path.name:
            return info
    raise IndexStoreError(f"{path}: not a shard named by {path.parent / SHARDS_NAME}")


def cached_shard(shard: ShardInfo | str | os.PathLike[str], *, verify: bool = True) -> OpenShard:
    """This process's open copy of ``shard``, opened (and checked) at the first call, then reused.

    ``shard``: a :class:`ShardInfo` (from :attr:`ShardedIndex.shards` or a :class:`ShardCatalog`;
    checked against its checksums) or a shard directory's path (checked against its parent's
    ``shards.json``). One open per process and shard, even with many threads asking at once: the
    shard stays open, keyed by its path and checksums, until :func:`clear_shard_cache`. This is how a
    distributed engine's worker opens only the shards placed on it, once; :func:`search_shard` and
    :func:`lookup_digest_shard` use it. Raises :class:`IndexStoreError` for a missing, damaged or
    changed shard (nothing is cached then).
    """
    info = _shard_info(shard)
    key = (os.path.abspath(info.path), info.manifest_sha256, info.global_ids_sha256)
    with _CACHE_LOCK:  # one open per process and shard, even with many threads asking at once
        opened = _CACHE.get(key)
        if opened is None:
            opened = _open_shard(info, verify)
            _CACHE[key] = opened
            log.debug("opened shard %s for this process", info.path)
        return opened


def cached_shard_names() -> list[str]:
    """Names of the shards :func:`cached_shard` holds open in this process, sorted (a worker reports
    them so that tests and operators can see which shards it holds)."""
    with _CACHE_LOCK:
        return sorted(opened.info.name for opened in _CACHE.values())


def search_shard(
    shard: ShardInfo | str | os.PathLike[str],
    queries: Sequence[Hash],
    max_distance: int | None = None,
    *,
    view: str | None = None,
    k: int | None = None,
    verify: bool = True,
) -> list[QueryResult]:
    """One shard's answers to ``queries``, with global record ids (for :func:`merge_results`).

    ``shard``: a :class:`ShardInfo` (from :attr:`ShardedIndex.shards`; checked against its
    checksums) or a shard directory's path (checked against its parent's ``shards.json``). With
    ``k`` ``None`` a range search (``max_distance`` and ``view`` as in :meth:`KnownIndex.search`),
    else the ``k`` nearest (as in :meth:`KnownIndex.nearest`). A pure function of its arguments and
    the files: the shard is opened once per process and kept (:func:`cached_shard`; see
    :func:`clear_shard_cache`), so a Dask worker opens each of its shards once.
    """
    return cached_shard(shard, verify=verify).query(queries, max_distance, view, k)


def lookup_digest_shard(
    shard: ShardInfo | str | os.PathLike[str], kind: str, hex_values: Sequence[str], *, verify: bool = True
) -> dict[str, list[IndexedRecord]]:
    """One shard's :meth:`KnownIndex.lookup_digest` answer with global ids (for :func:`merge_digest_results`)."""
    return cached_shard(shard, verify=verify).lookup_digest(kind, list(hex_values))


def clear_shard_cache() -> None:
    """Close the shards :func:`search_shard` and :func:`lookup_digest_shard` opened in this process."""
    with _CACHE_LOCK:
        opened = list(_CACHE.values())
        _CACHE.clear()
    for shard in opened:
        shard.index.close()


def merge_results(per_shard: Sequence[Sequence[QueryResult]], k: int | None = None) -> list[QueryResult]:
    """Merge every shard's answers to the same queries into the unsharded index's answers.

    ``per_shard`` holds one list of results per shard, each in query order and with global ids
    (as :func:`search_shard` returns them). Each query's matches are ordered by (distance, record
    id); with ``k`` only the first ``k`` are kept (merging ``nearest`` answers). A query skipped
    for its quality is skipped by every shard and stays skipped.
    """
    if not per_shard:
        raise UsageError("no shard results to merge")
    lengths = {len(results) for results in per_shard}
    if len(lengths) != 1:
        raise UsageError(f"shards answered different numbers of queries ({sorted(lengths)})")
    merged = []
    for answers in zip(*per_shard):
        first = answers[0]
        reason = next((a.skipped_reason for a in answers if a.skipped_reason is not None), None)
        if reason is not None:
            merged.append(QueryResult(first.query, (), reason))
            continue
        matches: list[Match] = sorted((m for a in answers for m in a.matches), key=lambda m: (m.distance, m.record_id))
        merged.append(QueryResult(first.query, tuple(matches if k is None else matches[:k])))
    return merged


def merge_digest_results(per_shard: Sequence[dict[str, list[IndexedRecord]]]) -> dict[str, list[IndexedRecord]]:
    """Merge every shard's digest look-up answers: each value's records from all shards, in id order."""
    merged: dict[str, list[IndexedRecord]] = {}
    for answer in per_shard:
        for value, found in answer.items():
            merged.setdefault(value, []).extend(found)
    return {value: sorted(found, key=lambda r: r.id) for value, found in merged.items()}


# -- the sharded index ----------------------------------------------------------------------------


class ShardedIndex:
    """A known-material index split into shards (see the module documentation), read like a :class:`KnownIndex`.

    Open one with :meth:`open` (or :func:`open_any`). It offers the reading side of
    :class:`KnownIndex` (``algorithms``, ``views``, ``search``, ``nearest``, ``lookup_digest``,
    ``records``, ``iter_records``, ``lists``, ``info``, category labels), answering each exactly as
    the unsharded index would, with the same record ids. It is read-only. Usable as a context manager.
    Implements :class:`~matcher.index.IndexReader`.
    """

    def __init__(self, document: _Document, shards: list[OpenShard]) -> None:
        """Internal: use :meth:`open`."""
        self._document = document
        self._shards: tuple[OpenShard, ...] | None = tuple(shards)
        first = shards[0].index
        self._algorithms = first.algorithms
        views: dict[str, set[str]] = {}
        for shard in shards:
            for algorithm, named in shard.index.views.items():
                views.setdefault(algorithm, set()).update(named)
        self._views = {algorithm: tuple(sorted(named)) for algorithm, named in views.items()}

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, verify: bool = True, verified: Iterable[FileStamp] = ()
    ) -> ShardedIndex:
        """Open a sharded index; :class:`IndexStoreError` when it or any shard is missing, damaged or edited.

        ``verify``: check every shard file's SHA-256 (as :meth:`KnownIndex.open`); ``shards.json``,
        the shards' manifests and their ``global-ids.npy`` are always checked. ``verified``: another
        open's :attr:`verified_files`, as :meth:`KnownIndex.open` takes them.
        """
        verified = tuple(verified)
        root = Path(path)
        if not root.is_dir():
            raise IndexStoreError(f"{root}: no such sharded index directory")
        document = _read_document(root)
        opened: list[OpenShard] = []
        try:
            for info in document.shards:
                shard = _open_shard(info, verify, verified)
                opened.append(shard)
                if shard.index.algorithms != document.algorithms:
                    raise IndexStoreError(
                        f"{info.path}: shard {info.name} indexes {', '.join(shard.index.algorithms)}, "
                        f"{SHARDS_NAME} says {', '.join(document.algorithms)}"
                    )
                if shard.index.category_schemes() != opened[0].index.category_schemes() or (
                    shard.index.default_category_scheme != opened[0].index.default_category_scheme
                ):
                    raise IndexStoreError(
                        f"{info.path}: shard {info.name} has other category labels than shard {opened[0].info.name}"
                    )
        except BaseException:
            for shard in opened:
                shard.index.close()
            raise
        log.info("opened sharded index %s (%d shards, %d records)", root, len(opened), document.records)
        return cls(document, opened)

    def close(self) -> None:
        """Close every shard; the object cannot be used afterwards."""
        shards, self._shards = self._shards, None
        for shard in shards or ():
            shard.index.close()

    def __enter__(self) -> ShardedIndex:
        """Use as a context manager; :meth:`close` on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the index."""
        self.close()

    def _open(self) -> tuple[OpenShard, ...]:
        shards = self._shards
        if shards is None:
            raise UsageError(f"{self._document.root}: the sharded index has been closed")
        return shards

    # -- properties ------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The sharded index directory (the one holding ``shards.json``)."""
        return self._document.root

    @property
    def verified_files(self) -> tuple[FileStamp, ...]:
        """Every shard's :attr:`KnownIndex.verified_files`, for another process's :meth:`open`."""
        return tuple(stamp for shard in self._open() for stamp in shard.index.verified_files)

    @property
    def shards(self) -> tuple[ShardInfo, ...]:
        """The shards, in global id order (hand one to :func:`search_shard`)."""
        return self._document.shards

    @property
    def checksum(self) -> str:
        """The SHA-256 of ``shards.json``'s body: identifies this sharded index and all its contents."""
        return self._document.checksum

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Names of the indexed (searchable) algorithms (every shard indexes the same)."""
        return self._algorithms

    @property
    def views(self) -> dict[str, tuple[str, ...]]:
        """The view tables a search can return something from in any shard: ``{algorithm: (view, ...)}``."""
        return {algorithm: named for algorithm, named in self._views.items()}

    @property
    def generation(self) -> int:
        """Always 1: a sharded index is written once and never changed (use :attr:`checksum` to tell two apart)."""
        return 1

    @property
    def writable(self) -> bool:
        """Always ``False``: a sharded index is read-only."""
        return False

    def __len__(self) -> int:
        """Number of stored records (all shards)."""
        return self._document.records

    # -- searching -------------------------------------------------------------------------------

    def search(
        self, queries: Sequence[Hash], max_distance: int | None = None, *, view: str | None = None
    ) -> list[QueryResult]:
        """Every searchable record within ``max_distance`` of each query, as :meth:`KnownIndex.search`."""
        queries = list(queries)
        return merge_results([shard.query(queries, max_distance, view, None) for shard in self._open()])

    def nearest(self, queries: Sequence[Hash], k: int, *, view: str | None = None) -> list[QueryResult]:
        """The ``k`` nearest searchable records of each query, as :meth:`KnownIndex.nearest`.

        Each shard gives its ``k`` nearest (ties by id); the merged first ``k`` are the global answer.
        """
        queries = list(queries)
        return merge_results([shard.query(queries, None, view, k) for shard in self._open()], k)

    @property
    def local_records(self) -> int:
        """Records holding local features (all shards), as :attr:`KnownIndex.local_records`."""
        return sum(shard.index.local_records for shard in self._open())

    def find_local(
        self, frames: Sequence[LocalFeatures], rule: MatchRule = DEFAULT_RULE, max_candidates: int | None = None
    ) -> list[list[LocalHit]]:
        """The known records seen in each frame by their local features, as :meth:`KnownIndex.find_local`:
        each shard votes and verifies its own candidates (its own descriptor tree); the hits, with
        global ids, are merged most inliers first."""
        frames = list(frames)
        return merge_local_results(
            [shard.find_local(frames, rule, max_candidates) for shard in self._open()], len(frames)
        )

    def record_local(self, ids: Iterable[int]) -> dict[int, LocalFeatures]:
        """The stored local features of these global record ids, as :meth:`KnownIndex.record_local`."""
        wanted = [int(i) for i in ids]
        out: dict[int, LocalFeatures] = {}
        for shard in self._open():
            local_ids = shard.to_local(wanted)
            found = shard.index.record_local(local_ids.values())
            out.update({g: found[s] for g, s in local_ids.items() if s in found})
        return out

    # -- reading ---------------------------------------------------------------------------------

    def video_records(self) -> list[IndexedRecord]:
        """The known videos of every shard (global ids, in id order), as :meth:`KnownIndex.video_records`."""
        return [record for shard in self._open() for record in shard.video_records()]

    def lookup_digest(self, kind: str, hex_values: Iterable[str]) -> dict[str, list[IndexedRecord]]:
        """Records whose ``kind`` digest is one of ``hex_values``, as :meth:`KnownIndex.lookup_digest`."""
        values = list(hex_values)
        return merge_digest_results([shard.lookup_digest(kind, values) for shard in self._open()])

    def records(self, ids: Iterable[int]) -> list[IndexedRecord]:
        """The stored records with these global ids, in the order asked (ids not stored are left out)."""
        wanted = [int(i) for i in ids]
        unique = list(dict.fromkeys(wanted))
        found: dict[int, IndexedRecord] = {}
        for shard in self._open():
            for record in shard.records(unique):
                found[record.id] = record
        return [found[i] for i in wanted if i in found]

    def iter_records(self, list_name: str | None = None, batch_size: int = 1000) -> Iterator[IndexedRecord]:
        """Every record (or every record of one list) in global id order, read in batches.

        A ``list_name`` no shard holds raises :class:`UsageError` (naming the lists the index has).
        """
        shards = self._open()
        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, not {batch_size}")
        if list_name is not None:
            lists = self.lists()
            if list_name not in lists:
                raise UsageError(unknown_list_message(self.path, list_name, lists))
            shards = tuple(shard for shard in shards if list_name in shard.index.lists())

        def generate() -> Iterator[IndexedRecord]:
            for shard in shards:
                records = shard.index.iter_records(list_name, batch_size)
                while batch := list(itertools.islice(records, batch_size)):
                    yield from shard.globalise_records(batch)

        return generate()

    def lists(self) -> dict[str, int]:
        """``{list name: number of records}`` over all shards."""
        out: dict[str, int] = {}
        for shard in self._open():
            for name, count in shard.index.lists().items():
                out[name] = out.get(name, 0) + count
        return dict(sorted(out.items()))

    def category_schemes(self) -> dict[str, dict[int, str]]:
        """Every label scheme: ``{scheme: {category: label}}`` (every shard holds the same)."""
        return self._open()[0].index.category_schemes()

    @property
    def default_category_scheme(self) -> str | None:
        """The scheme :meth:`category_label` uses when none is named."""
        return self._open()[0].index.default_category_scheme

    def category_label(self, category: int | None, scheme: str | None = None) -> str | None:
        """The label of a raw category, as :meth:`KnownIndex.category_label`."""
        return self._open()[0].index.category_label(category, scheme)

    def info(self) -> dict[str, Any]:
        """Counts as :meth:`KnownIndex.info` gives them, summed over the shards, plus each shard's.

        ``sharded`` is ``True``; ``shards`` lists each shard's name, path, records, id range and size.
        """
        shards = self._open()
        infos = [shard.index.info() for shard in shards]
        algorithms: dict[str, dict[str, Any]] = {}
        for name in self._algorithms:
            values = dict(infos[0]["algorithms"][name])
            for key in ("count", "searchable"):
                values[key] = sum(int(i["algorithms"][name][key]) for i in infos)
            algorithms[name] = values
        views: dict[str, dict[str, dict[str, int]]] = {}
        lists: dict[str, dict[str, Any]] = {}
        for one in infos:
            for algorithm, named in one["views"].items():
                for view, counts in named.items():
                    total = views.setdefault(algorithm, {}).setdefault(view, {"count": 0, "searchable": 0})
                    total["count"] += int(counts["count"])
                    total["searchable"] += int(counts["searchable"])
            for name, values in one["lists"].items():
                total_list = lists.setdefault(name, {"records": 0, "algorithms": {}})
                total_list["records"] += int(values["records"])
                for algorithm, count in values["algorithms"].items():
                    total_list["algorithms"][algorithm] = total_list["algorithms"].get(algorithm, 0) + int(count)
        try:
            own_bytes = (self.path / SHARDS_NAME).stat().st_size
        except OSError:
            own_bytes = 0
        return {
            "path": str(self.path),
            "sharded": True,
            "format": SHARDS_FORMAT,
            "format_version": SHARDS_FORMAT_VERSION,
            "generation": self.generation,
            "checksum": self.checksum,
            "created_at": self._document.created_at,
            "source": dict(self._document.source),
            "records": sum(int(i["records"]) for i in infos),
            "algorithms": algorithms,
            "views": {algorithm: dict(sorted(named.items())) for algorithm, named in sorted(views.items())},
            "lists": dict(sorted(lists.items())),
            "local": {
                key: sum(int((i.get("local") or {}).get(key, 0)) for i in infos)
                for key in ("records", "keypoints", "bytes")
            },
            "category_schemes": infos[0]["category_schemes"],
            "default_category_scheme": infos[0]["default_category_scheme"],
            "shards": [
                {
                    "name": shard.info.name,
                    "path": str(shard.info.path),
                    "records": int(i["records"]),
                    "first_id": shard.info.first_id,
                    "last_id": shard.info.last_id,
                    "size_on_disk": int(i["size_on_disk"]),
                }
                for shard, i in zip(shards, infos)
            ],
            "size_on_disk": sum(int(i["size_on_disk"]) for i in infos) + own_bytes,
            "directory_bytes": sum(int(i["directory_bytes"]) for i in infos) + own_bytes,
        }


# -- splitting -------------------------------------------------------------------------------------


def _copies(
    source: KnownIndex, records: Iterable[IndexedRecord], batch_size: int, taken: array[int]
) -> Iterator[KnownRecord]:
    """The records as :class:`KnownRecord` values with their view hashes; appends each id to ``taken``."""
    records = iter(records)
    while batch := list(itertools.islice(records, batch_size)):
        views = source.record_views(r.id for r in batch)
        local = source.record_local(r.id for r in batch)
        for record in batch:
            taken.append(record.id)
            yield replace(record.to_known(), views=views.get(record.id, {}), local=local.get(record.id))


def _write_shard(
    source: KnownIndex, path: Path, records: Iterator[IndexedRecord], count: int, batch_size: int
) -> array[int]:
    """Create the shard at ``path`` and fill it with ``count`` records in id order; returns their global ids."""
    taken: array[int] = array("q")
    with KnownIndex.create(path, source.algorithms) as shard:
        default = source.default_category_scheme
        for scheme, labels in sorted(source.category_schemes().items()):
            shard.set_category_labels(scheme, labels, default=scheme == default)
        portion = itertools.islice(records, count)
        # one add per run of records of the same list, so shard ids follow global id order
        for list_name, run in itertools.groupby(portion, key=lambda r: r.list_name):
            before = len(taken)
            result = shard.add(_copies(source, run, batch_size, taken), list_name)
            if result.added != len(taken) - before:
                raise IndexStoreError(
                    f"{path}: {len(taken) - before - result.added} records of list {list_name!r} were not "
                    f"stored in the shard (duplicates or empty records in the source index?)"
                )
        if len(taken) != count or len(shard) != count or (count and not shard.records([count])):
            raise IndexStoreError(f"{path}: shard holds {len(shard)} records, expected {count} with ids 1..{count}")
    return taken


def split_index(
    source_path: str | os.PathLike[str],
    target_dir: str | os.PathLike[str],
    shards: int,
    *,
    verify: bool = True,
    batch_size: int = 2000,
) -> list[Path]:
    """Split the index at ``source_path`` into ``shards`` normal index directories under ``target_dir``.

    Writes ``shard-000`` ... (contiguous ranges of record ids, equal record counts; a shard may be
    empty when there are fewer records than shards), each shard's ``global-ids.npy`` and, last, the
    ``shards.json`` that makes ``target_dir`` one sharded index (open it with
    :meth:`ShardedIndex.open`). ``target_dir`` must be absent or empty; the source is only read.
    Returns the shard directories. On failure everything written is removed again. The source
    must be a single index: a sharded one raises :class:`UsageError` (split its source instead).
    """
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise UsageError(f"shards must be a positive integer, not {shards!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, not {batch_size!r}")
    if is_sharded(source_path):
        raise UsageError(sharded_index_refusal(Path(source_path), "split"))
    target = Path(target_dir)
    made_target = not target.exists()
    if not made_target:
        if not target.is_dir():
            raise IndexStoreError(f"{target}: exists and is not a directory")
        if any(target.iterdir()):
            raise IndexStoreError(f"{target}: directory is not empty")
    created: list[Path] = []
    try:
        with KnownIndex.open(source_path, verify=verify) as source:
            target.mkdir(parents=True, exist_ok=True)
            total = len(source)
            bounds = [total * s // shards for s in range(shards + 1)]
            records = source.iter_records(batch_size=batch_size)
            entries = []
            for number in range(shards):
                name = f"{_SHARD_PREFIX}{number:03d}"
                path = target / name
                created.append(path)
                taken = _write_shard(source, path, records, bounds[number + 1] - bounds[number], batch_size)
                ids = np.frombuffer(taken, dtype=np.int64) if len(taken) else np.zeros(0, np.int64)
                buffer = io.BytesIO()
                np.save(buffer, np.ascontiguousarray(ids), allow_pickle=False)
                with open(path / GLOBAL_IDS_NAME, "wb") as handle:
                    handle.write(buffer.getvalue())
                    handle.flush()
                    os.fsync(handle.fileno())
                fsync_dir(path)
                entries.append(
                    ShardInfo(
                        name,
                        path,
                        int(ids.shape[0]),
                        int(ids[0]) if ids.shape[0] else None,
                        int(ids[-1]) if ids.shape[0] else None,
                        _sha256((path / MANIFEST_NAME).read_bytes()),
                        _sha256(buffer.getvalue()),
                    ).to_dict()
                )
                log.info("wrote shard %s (%d records)", path, ids.shape[0])
            body = {
                "format": SHARDS_FORMAT,
                "format_version": SHARDS_FORMAT_VERSION,
                "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "source": {"path": str(source.path), "generation": source.generation, "records": total},
                "records": total,
                "algorithms": list(source.algorithms),
                "shards": entries,
            }
            _write_document(target, body)
    except BaseException:
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
        if made_target:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return created


# -- detection -------------------------------------------------------------------------------------


def is_sharded(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a sharded index (a ``shards.json``) rather than a single index."""
    return (Path(path) / SHARDS_NAME).is_file()


def open_any(
    path: str | os.PathLike[str], *, verify: bool = True, verified: Iterable[FileStamp] = ()
) -> KnownIndex | ShardedIndex:
    """Open, read-only, whatever index is at ``path``: a :class:`ShardedIndex` or a :class:`KnownIndex`
    (``verify``, ``verified``: as :meth:`KnownIndex.open`)."""
    if is_sharded(path):
        return ShardedIndex.open(path, verify=verify, verified=verified)
    return KnownIndex.open(path, verify=verify, verified=verified)
