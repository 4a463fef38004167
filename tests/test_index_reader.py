"""The one read interface of an index (:class:`matcher.index.IndexReader`): a single index and a
sharded one both implement it, and code written against it gets the same answers from either.

All data is synthetic: random PDQ codes and made-up digests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from matcher.errors import UsageError
from matcher.hashes import Hash
from matcher.index import IndexReader, KnownIndex, ShardedIndex, split_index
from matcher.known import KnownRecord


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("reader")
    codes = np.random.default_rng(7).integers(0, 256, (60, 32), dtype=np.uint8)
    records = [
        KnownRecord(hashes={"pdq": Hash("pdq", row.tobytes(), 90)}, md5=f"{i:032x}", name=f"n{i}")
        for i, row in enumerate(codes)
    ]
    with KnownIndex.create(root / "single", ("pdq",)) as index:
        index.add(records[:40], "agency")
        index.add(records[40:], "other", category=2)
    split_index(root / "single", root / "sharded", 3)
    return root / "single", root / "sharded"


def summary(index: IndexReader, queries: list[Hash]) -> dict[str, Any]:
    """Everything the scan reads from an index, through the protocol only (typed against it)."""
    found = index.search(queries, 40)
    near = index.nearest(queries, 3)
    ids = sorted({m.record_id for result in [*found, *near] for m in result.matches})
    return {
        "algorithms": index.algorithms,
        "views": dict(index.views),
        "generation_is_int": isinstance(index.generation, int),
        "search": [[(m.record_id, m.distance, m.list_name) for m in r.matches] for r in found],
        "nearest": [[(m.record_id, m.distance) for m in r.matches] for r in near],
        "view_search": [len(r.matches) for r in index.search(queries, 40, view="top88")],
        "digests": {
            value: [r.id for r in records]
            for value, records in index.lookup_digest("md5", [f"{3:032x}", f"{45:032x}", "f" * 32]).items()
        },
        "records": [(r.id, r.name, r.list_name, r.category) for r in index.records(ids)],
    }


def test_known_and_sharded_index_implement_the_reader(paths: tuple[Path, Path]) -> None:
    single_path, sharded_path = paths
    with KnownIndex.open(single_path) as single, ShardedIndex.open(sharded_path) as sharded:
        assert isinstance(single, IndexReader)
        assert isinstance(sharded, IndexReader)
        queries = [Hash("pdq", r.hashes["pdq"].bits, 90) for r in single.records([1, 17, 41, 60])]
        mine, theirs = summary(single, queries), summary(sharded, queries)
        assert mine == theirs  # the same answers through the one interface
        assert mine["algorithms"] == ("pdq",)
        assert [hits[0] for hits in mine["nearest"]] == [(1, 0), (17, 0), (41, 0), (60, 0)]
        assert mine["digests"] == {f"{3:032x}": [4], f"{45:032x}": [46], "f" * 32: []}
        assert mine["records"][0][1:] == ("n0", "agency", None)


def test_reader_close_ends_use(paths: tuple[Path, Path]) -> None:
    single_path, sharded_path = paths
    for reader in (KnownIndex.open(single_path), ShardedIndex.open(sharded_path)):
        assert isinstance(reader, IndexReader)
        reader.close()
        with pytest.raises(UsageError, match="closed"):
            reader.records([1])


def test_an_object_without_the_read_api_is_not_a_reader() -> None:
    assert not isinstance(object(), IndexReader)

    class FactsOnly:  # facts but no searches (as a catalog describing a sharded index)
        algorithms = ("pdq",)
        views: ClassVar[dict[str, tuple[str, ...]]] = {}
        generation = 1

        def close(self) -> None:
            pass

    assert not isinstance(FactsOnly(), IndexReader)
