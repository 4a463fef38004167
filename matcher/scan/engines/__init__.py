"""Scan engines: where the entries of a scan are read, hashed and matched.

Every engine implements :class:`Engine`, and the scan driver talks to engines only through it
(:func:`get_engine` looks one up by the name in :attr:`~matcher.scan.ScanOptions.engine`):

* ``local`` (:class:`~matcher.scan.engines.local.LocalEngine`): this process, or a process pool on
  this machine;
* ``dask`` (:class:`~matcher.scan.engines.dask_engine.DaskEngine`): tasks on a Dask cluster.

Both give the same records in the same order; the journal, the report and the run manifest are the
driver's own, whatever the engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from ... import files
from ...errors import UsageError
from ...index import KnownIndex
from ...index.shards import ShardCatalog, ShardedIndex
from ..options import FileResult, ScanConfig, ScanOptions
from .dask_engine import DaskEngine
from .local import LocalEngine

__all__ = ["ENGINE_REGISTRY", "Engine", "get_engine"]


class Engine(Protocol):
    """What a scan engine does."""

    #: The name ``ScanOptions.engine`` gives.
    name: str

    def check(self, paths: Sequence[Any], options: ScanOptions) -> None:
        """Refuse (:class:`~matcher.errors.UsageError`) what this engine cannot do, before any work."""
        ...

    def open_index(
        self, index_path: str | os.PathLike[str], options: ScanOptions
    ) -> KnownIndex | ShardedIndex | ShardCatalog:
        """The index as this process needs it (opened read-only, or only described)."""
        ...

    def facts(self, options: ScanOptions) -> dict[str, Any]:
        """The engine's facts for the run manifest."""
        ...

    def results(
        self,
        entries: Iterable[files.Entry],
        config: ScanConfig,
        index: KnownIndex | ShardedIndex | ShardCatalog | None,
        options: ScanOptions,
    ) -> Iterator[FileResult]:
        """Every entry's result, in the order of ``entries``. ``index`` is the index :meth:`open_index`
        returned, for work done in this process (``None``: none)."""
        ...


#: The engines by name.
ENGINE_REGISTRY: dict[str, Engine] = {engine.name: engine for engine in (LocalEngine(), DaskEngine())}


def get_engine(name: str) -> Engine:
    """The engine called ``name``; :class:`~matcher.errors.UsageError` for an unknown name."""
    try:
        return ENGINE_REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown scan engine {name!r} (known: {', '.join(ENGINE_REGISTRY)})") from None
