"""The per-entry scanner: read one walked entry, hash its frames into query views, match them.

:meth:`Scanner.scan_entry` is :meth:`Scanner.hash_entry` (read and hash, no index) followed by
:meth:`Scanner.finish` (match against an index with :class:`~matcher.scan.matching.Matcher`); the
Dask engine runs the two halves on different workers for sharded indexes. :meth:`Scanner.scan_entries`
does the same for a batch of entries, matched together (one search per algorithm and table for the
whole batch, far cheaper per query than one search per entry on a large index). Nothing about one entry
makes these raise: a problem of the entry becomes its record's ``error``. Only a failure of the index
itself (a :class:`~matcher.errors.MatcherError`) propagates, and stops the scan.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from .. import files, local_features
from ..errors import IndexStoreError, MatcherError
from ..index.reader import IndexReader
from ..index.shards import ShardCatalog, open_any
from ..pipeline import (
    EntryFeatures,
    FeatureRequest,
    QueryViews,
    describe_error,
    frame_features,
    read_entry,
    region_views_searchable,
)
from ..scan_records import ScanRecord
from .matching import Matcher
from .options import FileResult, ScanConfig

__all__ = ["HashedEntry", "Scanner", "open_scanner"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HashedEntry:
    """A read and hashed entry waiting to be matched (picklable: the Dask engine sends it to shards).

    ``base`` is the entry's record before matching (file facts, status ``no_match``); ``entry`` what
    the pipeline read, with each frame's query views in :attr:`FrameFeatures.variants`.
    """

    path: bytes
    base: ScanRecord
    entry: EntryFeatures

    @property
    def noatime(self) -> bool | None:
        """Whether ``O_NOATIME`` applied to the read."""
        return self.entry.noatime


class Scanner:
    """Reads, hashes and matches entries against one open index (one per worker process).

    ``index`` may also be a :class:`~matcher.index.shards.ShardCatalog` (only its ``views`` are read
    here) when the matching is done elsewhere with :meth:`finish`.
    """

    def __init__(self, index: IndexReader | ShardCatalog, config: ScanConfig) -> None:
        self.index = index
        self.config = config
        # the view tables a search can find something in, per algorithm
        views = {name: frozenset(index.views.get(name, ())) for name in config.algorithms}
        self.matcher = Matcher(config, views)
        # region query views only where the index has a view table they are searched against
        regions = frozenset(
            name for name in config.algorithms if config.regions and region_views_searchable(name, index.views)
        )
        self.request = FeatureRequest(
            config.algorithms,
            query_views=QueryViews(
                rotations=config.rotations, trim_borders=config.trim_borders, regions=regions, insets=config.insets
            ),
            local=local_features.QUERY_PARAMS if config.local else None,
            # extracted only for frames no digest and no global hash matched; a hash-only scanner (Dask, sharded)
            # extracts at once: its hashed entries travel to every shard's task, which all search the same features
            defer_local=not isinstance(index, ShardCatalog),
        )

    def warm_up(self) -> None:
        """Hash a tiny blank image with every algorithm, so that compiled kernels are loaded."""
        frame_features(Image.new("RGB", (32, 32)), self.request, (32, 32))

    # -- entries ---------------------------------------------------------------------------------

    def scan_entry(self, entry: files.Entry) -> FileResult:
        """Every record of one walked entry; never raises for a problem of the entry itself."""
        hashed = self.hash_entry(entry)
        if isinstance(hashed, FileResult):
            return hashed
        if isinstance(self.index, ShardCatalog):
            raise MatcherError("internal error: a hash-only scanner (shard catalogue) cannot match entries")
        return self.finish(hashed, self.index)

    def scan_entries(self, entries: Sequence[files.Entry]) -> list[FileResult]:
        """:meth:`scan_entry` of each entry, in order, every entry read and hashed first and then all of
        them matched together (:meth:`finish_many`: one search per algorithm and table for the whole
        batch). The records are the same as :meth:`scan_entry` gives; never raises for a problem of an
        entry itself."""
        hashed = [self.hash_entry(entry) for entry in entries]
        waiting = [item for item in hashed if isinstance(item, HashedEntry)]
        if not waiting:
            return [item for item in hashed if isinstance(item, FileResult)]
        if isinstance(self.index, ShardCatalog):
            raise MatcherError("internal error: a hash-only scanner (shard catalogue) cannot match entries")
        finished = iter(self.finish_many(waiting, self.index))
        return [next(finished) if isinstance(item, HashedEntry) else item for item in hashed]

    def hash_entry(self, entry: files.Entry) -> FileResult | HashedEntry:
        """The first half of :meth:`scan_entry`: read and hash, no index. A :class:`FileResult` when the
        entry is done without matching (never read, unreadable), else the :class:`HashedEntry` that
        :meth:`finish` matches. Never raises for a problem of the entry itself."""
        read = read_entry(entry, self.request, self.config.hash_options)
        if read.skipped:
            record = ScanRecord(
                path=read.name, status="skipped", size=read.size, notes=(read.note or "",), path_raw_hex=read.raw_hex
            )
            return FileResult(entry.path, (record,), None)
        if not read.read:  # could not be read: nothing to match
            record = ScanRecord(
                path=read.name, status="error", size=read.size, error=read.error, path_raw_hex=read.raw_hex
            )
            return FileResult(entry.path, (record,), None)
        return HashedEntry(entry.path, ScanRecord(status="no_match", **read.file_facts()), read)

    def finish(self, hashed: HashedEntry, index: IndexReader) -> FileResult:
        """The second half of :meth:`scan_entry`: match a hashed entry against ``index`` (anything with
        ``lookup_digest``, ``search`` and ``records`` as :class:`KnownIndex` has them).

        A problem of the entry gives it an ``error`` record; a failure of the index itself (any
        exception from one of those calls) raises :class:`~matcher.errors.IndexStoreError` and stops
        the scan (see :mod:`matcher.scan.matching`)."""
        try:
            records, known_good = self.matcher.match(index, hashed.base, hashed.entry)
        except MatcherError:
            raise
        except Exception as exc:
            log.debug("%s: %s", hashed.base.path, exc, exc_info=True)
            record = ScanRecord(
                path=hashed.base.path,
                status="error",
                size=hashed.base.size,
                error=describe_error(exc),
                path_raw_hex=hashed.base.path_raw_hex,
            )
            return FileResult(hashed.path, (record,), None)
        return FileResult(hashed.path, tuple(records), hashed.noatime, known_good)

    def finish_many(self, hashed: Sequence[HashedEntry], index: IndexReader) -> list[FileResult]:
        """:meth:`finish` of each hashed entry, in order, the index asked once for all of them
        (:meth:`~matcher.scan.matching.Matcher.match_many`). Should matching the batch fail for a
        reason other than the index, each entry is finished on its own, so that only the entry at
        fault gets an ``error`` record; a failure of the index raises as in :meth:`finish`."""
        if len(hashed) == 1:
            return [self.finish(hashed[0], index)]
        try:
            matched = self.matcher.match_many(index, [(item.base, item.entry) for item in hashed])
        except MatcherError:
            raise
        except Exception as exc:  # noqa: BLE001 - one entry's problem: find it entry by entry
            log.debug("matching a batch of %d entries failed (%s); matching them one by one", len(hashed), exc)
            return [self.finish(item, index) for item in hashed]
        return [
            FileResult(item.path, tuple(records), item.noatime, known_good)
            for item, (records, known_good) in zip(hashed, matched)
        ]


def open_scanner(config: ScanConfig) -> Scanner:
    """A worker process's scanner: the index opened read-only (the generation the scan started
    with), FAISS single-threaded for the process. Raises only :class:`MatcherError`.

    The index is verified once per scan, by the parent's open: the files it verified and that are
    unchanged since (``config.index_verified``, compared by ``stat``) are not hashed again here;
    any other file (changed since, or another machine's copy) is. Sizes, shapes and counts are
    checked as always, and the generation must be the one the parent opened."""
    try:
        import faiss

        faiss.omp_set_num_threads(1)
        index = open_any(config.index_path, verified=config.index_verified)
        if index.generation != config.index_generation:
            generation = index.generation
            index.close()
            raise IndexStoreError(
                f"{config.index_path}: the index changed while the scan started (generation "
                f"{generation}, expected {config.index_generation}); run the scan again"
            )
        return Scanner(index, config)
    except MatcherError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise IndexStoreError(f"{config.index_path}: worker could not open the index: {describe_error(exc)}") from None
