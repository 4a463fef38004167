"""Tests of matcher.index: the on-disk known-material index, its exact search, atomicity and checks.

All data is synthetic: random hash codes, and PDQ hashes of generated fixture images.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fixtures
from matcher.algorithms import pdq as pdq_module
from matcher.algorithms import registry
from matcher.errors import HashFormatError, IndexStoreError, MatcherError, UsageError
from matcher.hashes import Hash
from matcher.index import FORMAT_VERSION, AddResult, IndexedRecord, KnownIndex, Match, QueryResult
from matcher.index import store as store_module
from matcher.index.manifest import body_digest
from matcher.known import KnownRecord

ROOT = Path(__file__).resolve().parent.parent


# -- helpers -------------------------------------------------------------------------------------


def random_codes(seed: int, n: int, nbytes: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, nbytes), dtype=np.uint8)


def flip_bits(code: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    out = code.copy()
    bits = np.unpackbits(out)
    where = rng.choice(bits.shape[0], size=count, replace=False)
    bits[where] ^= 1
    return np.packbits(bits)


def pdq_records(codes: np.ndarray, quality: int | None = 90, **fields: object) -> list[KnownRecord]:
    return [KnownRecord(hashes={"pdq": Hash("pdq", row.tobytes(), quality)}, **fields) for row in codes]


def brute(codes: np.ndarray, ids: np.ndarray, query: bytes, max_distance: int) -> list[tuple[int, int]]:
    """Every (id, distance <= max_distance), sorted by distance then id: the reference answer."""
    if codes.shape[0] == 0:
        return []
    q = np.frombuffer(query, dtype=np.uint8)
    d = np.bitwise_count(np.bitwise_xor(codes, q)).sum(axis=1).astype(np.int64)
    sel = np.flatnonzero(d <= max_distance)
    order = np.lexsort((ids[sel], d[sel]))
    return [(int(ids[sel][i]), int(d[sel][i])) for i in order]


def brute_knn(codes: np.ndarray, ids: np.ndarray, query: bytes, k: int) -> list[tuple[int, int]]:
    return brute(codes, ids, query, 10_000)[:k]


def pairs(result: QueryResult) -> list[tuple[int, int]]:
    return [(m.record_id, m.distance) for m in result]


def state_of(index: KnownIndex, queries: list[Hash]) -> tuple:
    """Everything a test compares to tell two index states apart."""
    return (
        index.info()["records"],
        index.lists(),
        [pairs(r) for r in index.search(queries, max_distance=40)],
        [(r.id, r.list_name, r.category) for r in index.iter_records()],
    )


@pytest.fixture()
def base(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """An index of 300 random PDQ records in list "base" (ids 1..300)."""
    codes = random_codes(1, 300)
    index = KnownIndex.create(tmp_path / "ix", ("pdq", "phash"))
    index.add(pdq_records(codes), "base")
    index.close()
    return tmp_path / "ix", codes


def base_queries(codes: np.ndarray) -> list[Hash]:
    rng = np.random.default_rng(7)
    return [Hash("pdq", flip_bits(codes[i], d, rng).tobytes()) for i, d in ((0, 0), (5, 10), (9, 31), (20, 35))]


# -- create / open / info ------------------------------------------------------------------------


def test_create_layout_and_info(tmp_path: Path) -> None:
    index = KnownIndex.create(tmp_path / "ix", ("pdq", "phash"))
    assert index.algorithms == ("pdq", "phash")
    assert len(index) == 0
    info = index.info()
    assert info["format_version"] == FORMAT_VERSION
    assert info["records"] == 0 and info["lists"] == {}
    assert info["algorithms"]["pdq"]["bit_length"] == 256
    assert info["algorithms"]["phash"]["count"] == 0
    names = sorted(p.name for p in (tmp_path / "ix").iterdir())
    assert names == ["gen-000001", "manifest.json", "write.lock"]
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["directory"] == "gen-000001"
    assert set(manifest["files"]) == {
        "records.sqlite",
        "pdq.ids.npy",
        "pdq.codes.npy",
        "pdq.quality.npy",
        "phash.ids.npy",
        "phash.codes.npy",
        "phash.quality.npy",
    }
    for entry in manifest["files"].values():
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])


def test_create_refuses_existing_index_and_foreign_directory(tmp_path: Path) -> None:
    KnownIndex.create(tmp_path / "ix").close()
    with pytest.raises(IndexStoreError, match="already holds an index"):
        KnownIndex.create(tmp_path / "ix")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(IndexStoreError, match="not empty"):
        KnownIndex.create(tmp_path / "other")
    with pytest.raises(MatcherError):
        KnownIndex.create(tmp_path / "bad", ("nosuchalgo",))


def test_open_missing_directory_or_manifest(tmp_path: Path) -> None:
    with pytest.raises(IndexStoreError, match="no such index"):
        KnownIndex.open(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexStoreError, match="no manifest.json"):
        KnownIndex.open(tmp_path / "empty")


def test_info_counts_per_algorithm_and_list(base: tuple[Path, np.ndarray]) -> None:
    path, _codes = base
    with KnownIndex.open(path, writable=True) as index:
        phash = Hash("phash", bytes(range(8)))
        index.add([KnownRecord(hashes={"phash": phash}, md5="a" * 32), KnownRecord(sha1="b" * 40)], "second")
        info = index.info()
    assert info["records"] == 302
    assert info["lists"]["base"] == {"records": 300, "algorithms": {"pdq": 300}}
    assert info["lists"]["second"] == {"records": 2, "algorithms": {"phash": 1}}
    assert info["algorithms"]["pdq"]["count"] == 300
    assert info["algorithms"]["phash"]["count"] == 1
    assert info["size_on_disk"] > 0 and info["directory_bytes"] >= info["size_on_disk"]
    assert KnownIndex.open(path).lists() == {"base": 300, "second": 2}


# -- exact search --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_search_equals_brute_force_random(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    codes = random_codes(seed, 2000)
    # near-duplicates and exact duplicates of stored codes
    for i in range(0, 200, 2):
        codes[1000 + i] = flip_bits(codes[i], int(rng.integers(0, 40)), rng)
    codes[1500:1510] = codes[3]
    index = KnownIndex.create(tmp_path / "ix")
    # distinct md5s: records with equal codes are different records, not duplicates
    index.add(
        [KnownRecord(hashes={"pdq": Hash("pdq", c.tobytes(), 80)}, md5=f"{i:032x}") for i, c in enumerate(codes)], "l"
    )
    ids = np.arange(1, codes.shape[0] + 1, dtype=np.int64)
    queries = [
        Hash("pdq", flip_bits(codes[int(rng.integers(0, 2000))], int(rng.integers(0, 45)), rng).tobytes())
        for _ in range(150)
    ]
    queries += [Hash("pdq", c.tobytes()) for c in random_codes(seed + 100, 20)]
    for max_distance in (None, 0, 12, 31, 45):
        expected_limit = 31 if max_distance is None else max_distance
        results = index.search(queries, max_distance=max_distance)
        assert len(results) == len(queries)
        for query, result in zip(queries, results):
            assert result.skipped_reason is None
            assert pairs(result) == brute(codes, ids, query.bits, expected_limit)
    reopened = KnownIndex.open(tmp_path / "ix")
    assert [pairs(r) for r in reopened.search(queries)] == [pairs(r) for r in index.search(queries)]


def test_search_threshold_inclusive(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    centre = random_codes(3, 1)[0]
    stored = np.stack([flip_bits(centre, d, rng) for d in (30, 31, 32, 8, 9)])
    index = KnownIndex.create(tmp_path / "ix")
    index.add(pdq_records(stored), "l")
    query = Hash("pdq", centre.tobytes(), 100)
    [result] = index.search([query])  # default 31: 30 and 31 in, 32 out
    assert pairs(result) == [(4, 8), (5, 9), (1, 30), (2, 31)]
    assert pairs(index.search([query], max_distance=8)[0]) == [(4, 8)]
    assert pairs(index.search([query], max_distance=32)[0])[-1] == (3, 32)
    assert pairs(index.search([query], max_distance=7)[0]) == []


def test_search_imagehash_family_default_threshold(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    centre = random_codes(4, 1, 8)[0]
    stored = np.stack([flip_bits(centre, d, rng) for d in (8, 9, 0)])
    index = KnownIndex.create(tmp_path / "ix", ("phash",))
    index.add([KnownRecord(hashes={"phash": Hash("phash", c.tobytes())}) for c in stored], "l")
    assert pairs(index.search([Hash("phash", centre.tobytes())])[0]) == [(3, 0), (1, 8)]


def test_search_real_pdq_of_fixture_images(tmp_path: Path) -> None:
    images = [
        fixtures.scene(seed, 160 + 8 * (seed % 5), 120, kind)
        for seed, kind in enumerate(["landscape", "plasma", "gradient", "shapes"] * 4)
    ]
    hashes = [pdq_module.hash_array(np.asarray(img)) for img in images]
    edited = [pdq_module.hash_array(np.asarray(fixtures.edit(img, "jpeg30").convert("RGB"))) for img in images]
    index = KnownIndex.create(tmp_path / "ix")
    index.add([KnownRecord(hashes={"pdq": h}, name=f"scene{i}") for i, h in enumerate(hashes)], "fixtures")
    codes = np.stack([np.frombuffer(h.bits, dtype=np.uint8) for h in hashes])
    quality = np.array([h.quality for h in hashes])
    searchable = quality >= 50
    ids = np.arange(1, len(hashes) + 1)
    queries = [h for h in edited + hashes]
    for max_distance in (31, 60, 128):
        for query, result in zip(queries, index.search(queries, max_distance=max_distance)):
            if query.quality is not None and query.quality < 50:
                assert result.skipped_reason == f"pdq quality {query.quality} below 50"
                continue
            assert pairs(result) == brute(codes[searchable], ids[searchable], query.bits, max_distance)
    # each good-quality original finds itself at distance 0
    for i, (h, result) in enumerate(zip(hashes, index.search(hashes))):
        if h.quality >= 50:
            assert (i + 1, 0) in pairs(result)


def test_empty_index_and_empty_query_list(tmp_path: Path) -> None:
    index = KnownIndex.create(tmp_path / "ix", ("pdq", "phash"))
    q = Hash("pdq", bytes(32))
    [result] = index.search([q])
    assert result.matches == () and result.skipped_reason is None and result.searched
    assert index.nearest([q], 5)[0].matches == ()
    assert index.search([]) == []
    assert index.nearest([], 3) == []
    reopened = KnownIndex.open(tmp_path / "ix")
    assert reopened.search([q, Hash("phash", bytes(8))])[1].matches == ()


def test_single_record_index(tmp_path: Path) -> None:
    code = random_codes(9, 1)
    index = KnownIndex.create(tmp_path / "ix")
    index.add(pdq_records(code, series="S1", category=0), "one")
    q = Hash("pdq", code[0].tobytes())
    [result] = index.search([q])
    assert result[0] == Match(1, 0, "pdq", "one", 0, "S1", None, None)
    assert pairs(index.nearest([q], 10)[0]) == [(1, 0)]
    far = Hash("pdq", bytes(b ^ 0xFF for b in code[0].tobytes()))
    assert index.search([far])[0].matches == ()
    assert pairs(index.nearest([far], 1)[0]) == [(1, 256)]


def test_nearest_equals_brute_force_with_ties(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    codes = random_codes(11, 500)
    codes[100:140] = codes[7]  # many exact ties
    for i in range(140, 200):  # ties at small distances
        codes[i] = flip_bits(codes[8], 1 + (i % 3), rng)
    index = KnownIndex.create(tmp_path / "ix")
    index.add(
        [KnownRecord(hashes={"pdq": Hash("pdq", c.tobytes())}, md5=f"{i:032x}") for i, c in enumerate(codes)], "l"
    )
    ids = np.arange(1, 501)
    queries = [Hash("pdq", codes[i].tobytes()) for i in (7, 8, 3, 250)]
    queries.append(Hash("pdq", flip_bits(codes[8], 2, rng).tobytes()))
    for k in (1, 5, 20, 41, 600):
        for query, result in zip(queries, index.nearest(queries, k)):
            assert pairs(result) == brute_knn(codes, ids, query.bits, k)
    with pytest.raises(UsageError):
        index.nearest(queries, 0)


def test_pdq_quality_rule(tmp_path: Path) -> None:
    codes = random_codes(12, 3)
    index = KnownIndex.create(tmp_path / "ix")
    index.add(
        [
            KnownRecord(hashes={"pdq": Hash("pdq", codes[0].tobytes(), 30)}),  # stored, never matched
            KnownRecord(hashes={"pdq": Hash("pdq", codes[1].tobytes(), None)}),  # unknown quality: matched
            KnownRecord(hashes={"pdq": Hash("pdq", codes[2].tobytes(), 50)}),  # at the minimum: matched
        ],
        "l",
    )
    results = index.search([Hash("pdq", c.tobytes(), 100) for c in codes])
    assert [pairs(r) for r in results] == [[], [(2, 0)], [(3, 0)]]
    assert index.info()["algorithms"]["pdq"]["count"] == 3
    assert index.info()["algorithms"]["pdq"]["searchable"] == 2
    assert index.records([1])[0].hashes["pdq"].quality == 30
    low = index.search([Hash("pdq", codes[1].tobytes(), 32)])[0]
    assert low.matches == () and low.skipped_reason == "pdq quality 32 below 50" and not low.searched
    assert pairs(index.nearest([Hash("pdq", codes[0].tobytes())], 3)[0])[0] != (1, 0)
    reopened = KnownIndex.open(tmp_path / "ix")
    assert [pairs(r) for r in reopened.search([Hash("pdq", c.tobytes()) for c in codes])] == [[], [(2, 0)], [(3, 0)]]


def test_mixed_algorithms_grouped_in_order(tmp_path: Path) -> None:
    p = random_codes(13, 4)
    h = random_codes(14, 4, 8)
    index = KnownIndex.create(tmp_path / "ix", ("pdq", "phash"))
    index.add(
        [
            KnownRecord(hashes={"pdq": Hash("pdq", p[i].tobytes()), "phash": Hash("phash", h[i].tobytes())})
            for i in range(4)
        ],
        "l",
    )
    queries = [Hash("phash", h[2].tobytes()), Hash("pdq", p[1].tobytes()), Hash("phash", h[0].tobytes())]
    results = index.search(queries)
    assert [(r[0].algorithm, r[0].record_id, r[0].distance) for r in results] == [
        ("phash", 3, 0),
        ("pdq", 2, 0),
        ("phash", 1, 0),
    ]
    with pytest.raises(UsageError, match="no dhash"):
        index.search([Hash("dhash", bytes(8))])
    with pytest.raises(HashFormatError):
        index.search([Hash("pdq", bytes(8))])
    with pytest.raises(UsageError):
        index.search(["00ff"])  # type: ignore[list-item]
    with pytest.raises(UsageError):
        index.search(queries, max_distance=-1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_search_property_small_codes(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 40))
    raw = data.draw(st.lists(st.binary(min_size=8, max_size=8), min_size=n, max_size=n))
    raw += raw[: data.draw(st.integers(0, len(raw)))]  # duplicate codes
    q = data.draw(st.binary(min_size=8, max_size=8))
    limit = data.draw(st.integers(0, 64))
    path = tmp_path_factory.mktemp("prop") / "ix"
    index = KnownIndex.create(path, ("phash",))
    index.add([KnownRecord(hashes={"phash": Hash("phash", b)}, md5=f"{i:032x}") for i, b in enumerate(raw)], "l")
    codes = np.frombuffer(b"".join(raw), dtype=np.uint8).reshape(-1, 8)
    ids = np.arange(1, len(raw) + 1)
    assert pairs(index.search([Hash("phash", q)], max_distance=limit)[0]) == brute(codes, ids, q, limit)
    k = data.draw(st.integers(1, 10))
    assert pairs(index.nearest([Hash("phash", q)], k)[0]) == brute_knn(codes, ids, q, k)
    index.close()


# -- adding, duplicates, removal -----------------------------------------------------------------


def test_add_duplicates_category_and_fields(tmp_path: Path) -> None:
    codes = random_codes(20, 5)
    index = KnownIndex.create(tmp_path / "ix")
    records = pdq_records(codes, md5="0" * 32)
    records[1] = dataclasses.replace(
        records[1],
        category=0,
        series="s",
        comment="c",
        name="n.jpg",
        size=12,
        sha256="A" * 64,
        photodna="pdna",
        source="list.csv:3",
        extra={"k": [1, 2]},
    )
    first = index.add(records + [records[0]], "a")  # one in-batch duplicate
    assert first == AddResult(5, 1, 0, 2)
    again = index.add(records, "a")
    assert (again.added, again.duplicates) == (0, 5)
    assert index.generation == 2  # nothing changed, no new generation
    other = index.add(records[:2], "b", category=3)
    assert (other.added, other.duplicates) == (2, 0)
    empty = index.add([KnownRecord(name="nothing")], "a")
    assert (empty.added, empty.empty) == (0, 1)
    [r2] = index.records([2])
    assert isinstance(r2, IndexedRecord)
    assert (r2.category, r2.series, r2.comment, r2.name, r2.size) == (0, "s", "c", "n.jpg", 12)
    assert (r2.sha256, r2.photodna, r2.source, r2.extra, r2.list_name) == (
        "a" * 64,
        "pdna",
        "list.csv:3",
        {"k": [1, 2]},
        "a",
    )
    assert r2.added_at.endswith("Z")
    assert index.records([1])[0].category is None  # None stays None, distinct from 0
    assert [r.category for r in index.records([6, 7])] == [3, 3]
    assert r2.to_known().hashes == records[1].hashes
    assert [r.id for r in index.records([7, 999, 1])] == [7, 1]


def test_add_is_all_or_nothing_on_bad_input(tmp_path: Path) -> None:
    index = KnownIndex.create(tmp_path / "ix")
    good = pdq_records(random_codes(21, 3))
    with pytest.raises(HashFormatError):
        index.add(good + [KnownRecord(hashes={"pdq": Hash("pdq", bytes(8))})], "l")
    with pytest.raises(HashFormatError):
        index.add(good + [KnownRecord(md5="xyz")], "l")

    def failing():
        yield from good
        raise RuntimeError("reader failed")

    with pytest.raises(RuntimeError):
        index.add(failing(), "l")
    assert len(index) == 0 and index.generation == 1
    assert sorted(p.name for p in (tmp_path / "ix").iterdir()) == ["gen-000001", "manifest.json", "write.lock"]
    with pytest.raises(UsageError):
        index.add(good, "")
    with pytest.raises(UsageError):
        index.add(good, "l", category="A")  # type: ignore[arg-type]


def test_progress_callback(tmp_path: Path) -> None:
    index = KnownIndex.create(tmp_path / "ix")
    seen: list[int] = []
    index.add(pdq_records(random_codes(22, 12_000)), "l", progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 12_000 and len(seen) >= 3


def test_remove_list_and_records(base: tuple[Path, np.ndarray]) -> None:
    path, codes = base
    index = KnownIndex.open(path, writable=True)
    extra = random_codes(23, 10)
    index.add(pdq_records(extra), "extra")
    q_base, q_extra = Hash("pdq", codes[4].tobytes()), Hash("pdq", extra[0].tobytes())
    assert pairs(index.search([q_extra])[0]) == [(301, 0)]
    assert index.remove_list("extra") == 10
    with pytest.raises(UsageError, match=r"no list 'extra' in the index \(its lists: 'base'\)"):
        index.remove_list("extra")
    assert index.search([q_extra])[0].matches == ()
    assert index.lists() == {"base": 300}
    generation = index.generation
    with pytest.raises(UsageError, match="no record with id 12345 "):  # all or nothing
        index.remove_records([5, 6, 12345])
    assert len(index) == 300 and index.generation == generation
    assert index.remove_records([5, 6]) == 2
    with pytest.raises(UsageError, match="no record with id 5 "):
        index.remove_records([5])
    assert index.search([q_base])[0].matches == ()
    assert len(index) == 298
    index.add(pdq_records(extra[:1]), "again")
    assert pairs(index.search([q_extra])[0]) == [(311, 0)]  # ids are never reused
    reopened = KnownIndex.open(path)
    assert len(reopened) == 299 and reopened.info()["algorithms"]["pdq"]["count"] == 299
    remaining = np.delete(codes, [4, 5], axis=0)
    ids = np.delete(np.arange(1, 301), [4, 5])
    q = Hash("pdq", flip_bits(codes[10], 3, np.random.default_rng(0)).tobytes())
    assert pairs(reopened.search([q])[0]) == brute(remaining, ids, q.bits, 31)


def test_records_export_and_digest_lookup(tmp_path: Path) -> None:
    index = KnownIndex.create(tmp_path / "ix")
    codes = random_codes(24, 2500)
    records = [
        KnownRecord(hashes={"pdq": Hash("pdq", c.tobytes(), 77)}, md5=f"{i:032x}", sha1=f"{i:040x}")
        for i, c in enumerate(codes)
    ]
    index.add(records, "l1")
    index.add(records[:3], "l2")
    exported = list(index.iter_records(batch_size=700))
    assert [r.id for r in exported] == list(range(1, 2504))
    assert [r.to_known().hashes["pdq"] for r in exported[:2500]] == [r.hashes["pdq"] for r in records]
    assert exported[0].hashes["pdq"].quality == 77
    assert [r.id for r in index.iter_records("l2")] == [2501, 2502, 2503]
    found = index.lookup_digest("md5", [f"{1:032X}", " " + f"{2:032x}", "f" * 32])
    assert [r.id for r in found[f"{1:032X}"]] == [2, 2502]
    assert [r.list_name for r in found[" " + f"{2:032x}"]] == ["l1", "l2"]
    assert found["f" * 32] == []
    assert [r.id for r in index.lookup_digest("sha1", [f"{2000:040x}"])[f"{2000:040x}"]] == [2001]
    with pytest.raises(UsageError):
        index.lookup_digest("crc32", ["00"])
    with pytest.raises(HashFormatError):
        index.lookup_digest("md5", ["abc"])
    # the digest look-up goes through an SQLite index, not a table scan
    plan = (
        index._snap()
        .conn.execute(  # noqa: SLF001
            "EXPLAIN QUERY PLAN SELECT id FROM records r WHERE r.md5 IN (?, ?)", ("a", "b")
        )
        .fetchall()
    )
    assert any("records_md5" in str(row) for row in plan)


def test_category_labels(tmp_path: Path) -> None:
    index = KnownIndex.create(tmp_path / "ix")
    assert index.category_label(1) is None
    index.set_category_labels("uk-iic", {0: "Uncategorised", 1: "Category A", 2: "Category B"})
    index.set_category_labels("us-example", {1: "Prepubescent", 2: "Pubescent"})
    assert index.default_category_scheme == "uk-iic"
    assert index.category_label(1) == "Category A"
    assert index.category_label(0) == "Uncategorised"
    assert index.category_label(None) is None
    assert index.category_label(9) is None
    assert index.category_label(1, "us-example") == "Prepubescent"
    index.set_default_category_scheme("us-example")
    assert index.category_label(2) == "Pubescent"
    with pytest.raises(UsageError):
        index.category_label(1, "nope")
    with pytest.raises(UsageError):
        index.set_default_category_scheme("nope")
    index.set_category_labels("uk-iic", {1: "A"})  # replaces the scheme
    reopened = KnownIndex.open(tmp_path / "ix")
    assert reopened.category_schemes() == {"uk-iic": {1: "A"}, "us-example": {1: "Prepubescent", 2: "Pubescent"}}
    assert reopened.default_category_scheme == "us-example"
    assert reopened.info()["category_schemes"] == ["uk-iic", "us-example"]


def test_read_only_refuses_writes(base: tuple[Path, np.ndarray]) -> None:
    path, codes = base
    index = KnownIndex.open(path)
    assert not index.writable
    for call in (
        lambda: index.add(pdq_records(codes[:1]), "x"),
        lambda: index.remove_list("base"),
        lambda: index.remove_records([1]),
        lambda: index.set_category_labels("s", {1: "a"}),
    ):
        with pytest.raises(UsageError, match="read-only"):
            call()
    index.close()
    with pytest.raises(UsageError, match="closed"):
        index.search([Hash("pdq", codes[0].tobytes())])


def test_second_writer_sees_first_writers_commit(base: tuple[Path, np.ndarray]) -> None:
    path, codes = base
    w1 = KnownIndex.open(path, writable=True)
    w2 = KnownIndex.open(path, writable=True)
    w1.add(pdq_records(random_codes(30, 5)), "w1")
    w2.add(pdq_records(random_codes(31, 5)), "w2")  # reloads generation before writing: nothing lost
    assert KnownIndex.open(path).lists() == {"base": 300, "w1": 5, "w2": 5}
    reader = KnownIndex.open(path)
    w1.add(pdq_records(random_codes(32, 1)), "w3")
    assert "w3" not in reader.lists()
    reader.reload()
    assert reader.lists()["w3"] == 1


# -- atomicity -----------------------------------------------------------------------------------

STEPS = [
    "temp-created",
    "database-written",
    "arrays-written",
    "generation-synced",
    "generation-renamed",
    "manifest-temp-written",
    "manifest-replaced",
]


class Crash(BaseException):
    """Stands for the process dying at a checkpoint (BaseException: nothing catches it on the way)."""


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("operation", ["add", "remove_list", "labels"])
def test_crash_at_each_step_leaves_a_readable_state(
    base: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch, step: str, operation: str
) -> None:
    path, codes = base
    queries = base_queries(codes)
    before = state_of(KnownIndex.open(path), queries)
    index = KnownIndex.open(path, writable=True)

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    monkeypatch.setattr(store_module, "_checkpoint", crash)
    new_codes = random_codes(40, 50)
    with pytest.raises(Crash):
        if operation == "add":
            index.add(pdq_records(np.concatenate([new_codes, codes[:1]])), "new")
        elif operation == "remove_list":
            index.remove_list("base")
        else:
            index.set_category_labels("s", {1: "x"})
    monkeypatch.undo()
    after = KnownIndex.open(path)
    if step == "manifest-replaced":  # the commit point has passed: the new state is complete
        assert after.generation == 3
        if operation == "add":
            assert after.lists() == {"base": 300, "new": 51}
        elif operation == "remove_list":
            assert after.lists() == {}
        else:
            assert after.category_label(1) == "x"
    else:
        assert after.generation == 2
        assert state_of(after, queries) == before
        assert after.category_schemes() == {}
    # the next write cleans any debris up and works
    writer = KnownIndex.open(path, writable=True)
    writer.add(pdq_records(random_codes(41, 2)), "later")
    names = sorted(p.name for p in path.iterdir())
    assert names == [f"gen-{writer.generation:06d}", "manifest.json", "write.lock"]


def test_failing_os_replace_keeps_old_state(base: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    path, codes = base
    queries = base_queries(codes)
    before = state_of(KnownIndex.open(path), queries)
    index = KnownIndex.open(path, writable=True)

    def broken_replace(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(IndexStoreError, match="index unchanged"):
        index.add(pdq_records(random_codes(42, 20)), "new")
    monkeypatch.undo()
    assert state_of(KnownIndex.open(path), queries) == before
    assert state_of(index, queries) == before  # the writer's own view did not move either
    assert sorted(p.name for p in path.iterdir()) == ["gen-000002", "manifest.json", "write.lock"]


_KILL_CHILD = textwrap.dedent("""
    import sys, numpy as np
    from matcher.index import KnownIndex
    from matcher.known import KnownRecord
    from matcher.hashes import Hash
    index = KnownIndex.open(sys.argv[1], writable=True)
    rng = np.random.default_rng(int(sys.argv[2]))
    for round in range(1000):
        codes = rng.integers(0, 256, (20000, 32), dtype=np.uint8)
        index.add((KnownRecord(hashes={"pdq": Hash("pdq", c.tobytes())}) for c in codes), f"a{sys.argv[2]}-{round}")
        if round % 2:
            index.remove_list(f"a{sys.argv[2]}-{round - 1}")
""")


def test_sigkill_during_writes_never_breaks_the_index(base: tuple[Path, np.ndarray]) -> None:
    path, codes = base
    queries = base_queries(codes)
    expected = [pairs(r) for r in KnownIndex.open(path).search(queries, max_distance=40)]
    rng = random.Random(5)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for attempt in range(4):
        child = subprocess.Popen(
            [sys.executable, "-c", _KILL_CHILD, str(path), str(1000 + attempt)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(0.8, 2.0))
        child.send_signal(signal.SIGKILL)
        _out, err = child.communicate()
        assert child.returncode == -signal.SIGKILL, err.decode()
        index = KnownIndex.open(path)  # verifies every checksum
        lists = index.lists()
        assert lists["base"] == 300
        assert all(n == 20000 for name, n in lists.items() if name != "base")
        assert len(index) == sum(lists.values())
        assert [pairs(r) for r in index.search(queries, max_distance=40)] == expected
        index.close()
    writer = KnownIndex.open(path, writable=True)
    writer.remove_records([1])
    assert len([p for p in path.iterdir() if p.name.startswith(("gen-", "tmp-"))]) == 1


# -- corruption ----------------------------------------------------------------------------------


def generation_files(path: Path) -> list[Path]:
    manifest = json.loads((path / "manifest.json").read_text())
    return [path / manifest["directory"] / name for name in sorted(manifest["files"])]


def test_flipped_byte_in_each_file_is_detected(base: tuple[Path, np.ndarray]) -> None:
    path, _codes = base
    for file in generation_files(path):
        original = file.read_bytes()
        for offset in (0, len(original) // 2, len(original) - 1):
            damaged = bytearray(original)
            damaged[offset] ^= 0x10
            file.write_bytes(bytes(damaged))
            with pytest.raises(IndexStoreError, match=re.escape(file.name)):
                KnownIndex.open(path)
        file.write_bytes(original)
    KnownIndex.open(path).close()


def test_truncated_or_missing_file_is_detected(base: tuple[Path, np.ndarray]) -> None:
    path, _codes = base
    for file in generation_files(path):
        original = file.read_bytes()
        file.write_bytes(original[: len(original) // 2])
        with pytest.raises(IndexStoreError, match="truncated"):
            KnownIndex.open(path, verify=False)  # sizes are checked even without hashing
        file.unlink()
        with pytest.raises(IndexStoreError, match="missing"):
            KnownIndex.open(path)
        file.write_bytes(original)
    gen = generation_files(path)[0].parent
    gen.rename(path / "elsewhere")
    with pytest.raises(IndexStoreError, match="missing"):
        KnownIndex.open(path)
    (path / "elsewhere").rename(gen)
    KnownIndex.open(path).close()


def rewrite_manifest(path: Path, change, recompute: bool = True) -> None:
    document = json.loads((path / "manifest.json").read_text())
    change(document)
    if recompute:
        document.pop("manifest_sha256")
        document["manifest_sha256"] = body_digest(document)
    (path / "manifest.json").write_text(json.dumps(document))


def test_manifest_damage_version_and_params(base: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    path, _codes = base
    original = (path / "manifest.json").read_bytes()

    def restore() -> None:
        (path / "manifest.json").write_bytes(original)

    # a flipped digit in a value (still valid JSON) is caught by the manifest's own checksum
    text = original.decode()
    position = text.index('"records": ') + len('"records": ')
    (path / "manifest.json").write_text(text[:position] + "9" + text[position + 1 :])
    with pytest.raises(IndexStoreError, match="checksum"):
        KnownIndex.open(path)
    (path / "manifest.json").write_bytes(original[:40])
    with pytest.raises(IndexStoreError, match="not valid JSON"):
        KnownIndex.open(path)
    restore()

    for recompute in (True, False):
        rewrite_manifest(path, lambda d: d.update(format_version=FORMAT_VERSION + 1), recompute)
        with pytest.raises(IndexStoreError, match="newer than this matcher supports"):
            KnownIndex.open(path)
        restore()

    rewrite_manifest(path, lambda d: d["algorithms"]["pdq"].update(bit_length=128))
    with pytest.raises(IndexStoreError, match="bit_length"):
        KnownIndex.open(path)
    restore()
    rewrite_manifest(path, lambda d: d["algorithms"]["phash"].update(default_max_distance=10))
    with pytest.raises(IndexStoreError, match="default_max_distance"):
        KnownIndex.open(path)
    restore()
    rewrite_manifest(path, lambda d: d["algorithms"].update(newalgo=dict(d["algorithms"]["pdq"])))
    with pytest.raises(IndexStoreError, match="newalgo"):
        KnownIndex.open(path)
    restore()
    rewrite_manifest(path, lambda d: d["algorithms"]["pdq"].update(count=299))
    with pytest.raises(IndexStoreError, match="shapes"):
        KnownIndex.open(path)
    restore()
    rewrite_manifest(path, lambda d: d.update(records=301))
    with pytest.raises(IndexStoreError, match="records"):
        KnownIndex.open(path)
    restore()

    # the running matcher's algorithm parameters differ from the ones the index was built with
    pdq_algorithm = registry.get("pdq")
    monkeypatch.setitem(registry._algorithms, "pdq", dataclasses.replace(pdq_algorithm, min_quality=60))  # noqa: SLF001
    with pytest.raises(IndexStoreError, match="min_quality=50"):
        KnownIndex.open(path)
    monkeypatch.undo()
    KnownIndex.open(path).close()


# -- threads -------------------------------------------------------------------------------------


def test_many_reader_threads_with_a_concurrent_writer(base: tuple[Path, np.ndarray]) -> None:
    path, codes = base
    rng = np.random.default_rng(50)
    queries = [
        Hash("pdq", flip_bits(codes[int(rng.integers(0, 300))], int(rng.integers(0, 31)), rng).tobytes())
        for _ in range(60)
    ]
    ids = np.arange(1, 301)
    expected = [brute(codes, ids, q.bits, 31) for q in queries]
    index = KnownIndex.open(path, writable=True)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(seed: int) -> None:
        local = random.Random(seed)
        try:
            while not stop.is_set():
                chosen = local.sample(range(len(queries)), 10)
                results = index.search([queries[i] for i in chosen])
                for i, result in zip(chosen, results):
                    assert pairs(result) == expected[i]
                assert index.lookup_digest("md5", ["0" * 32])["0" * 32] == []
                assert index.records([1])[0].id == 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for round_ in range(5):  # random far codes: never within 31 of the queries, results stay the same
        index.add(pdq_records(random_codes(60 + round_, 200)), f"w{round_}")
    time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors[0]
    assert len(index) == 1300


# -- guards --------------------------------------------------------------------------------------


def test_no_pickle_in_the_index_package() -> None:
    sources = sorted((ROOT / "matcher" / "index").glob("*.py"))
    assert sources
    for source in sources:
        # the only mention allowed is numpy's allow_pickle=False
        assert "pickle" not in source.read_text().replace("allow_pickle=False", ""), source
