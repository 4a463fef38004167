"""Index sharding (issue 7): an index split by record into shards answers exactly like the single index.

A few thousand synthetic records (random PDQ codes, planted near-duplicates and exact copies that
tie, real PDQ and pHash hashes of generated images, digests, several interleaved lists, removed
records) are split into 3 shards; every range search, k-nearest search, digest look-up and record
fetch of the sharded index must equal the single index's, record ids included. An index made from
generated images (with view tables) is split too and searched per view. Damaged, missing, replaced
or edited shards and a tampered ``shards.json`` are refused, naming what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import fixtures
from matcher import hash_image
from matcher.errors import IndexStoreError, UsageError
from matcher.hashes import Hash
from matcher.index import KnownIndex, ShardedIndex, open_any, split_index
from matcher.index.importing import import_sources
from matcher.index.manifest import body_digest, known_view_names
from matcher.index.shards import (
    GLOBAL_IDS_NAME,
    SHARDS_NAME,
    cached_shard,
    cached_shard_names,
    clear_shard_cache,
    lookup_digest_shard,
    merge_digest_results,
    merge_results,
    search_shard,
)
from matcher.known import KnownRecord

RADII = (0, 1, 4, 8, 16, 24, 31, 48, 120, None)


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread():
    """Many tiny searches: FAISS's OpenMP threads only add overhead on a small shared machine."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


PHASH_RADII = (0, 2, 6, 10, None)


def random_bits(rng: np.random.Generator, size: int) -> bytes:
    return rng.integers(0, 256, size, dtype=np.uint8).tobytes()


def flipped(bits: bytes, rng: np.random.Generator, count: int) -> bytes:
    """``bits`` with ``count`` distinct bits flipped."""
    out = bytearray(bits)
    for position in rng.choice(len(bits) * 8, size=count, replace=False):
        out[position // 8] ^= 0x80 >> (position % 8)
    return bytes(out)


def hex_digest(rng: np.random.Generator, length: int) -> str:
    return random_bits(rng, length // 2).hex()


def plain(records: list) -> list:
    """Records without ``added_at`` (a shard's records were written at the split)."""
    return [replace(r, added_at="") for r in records]


def synthetic_records(
    rng: np.random.Generator,
    count: int,
    centres: list[bytes],
    phash_centres: list[bytes],
    md5_pool: list[str],
    **fields: object,
) -> list[KnownRecord]:
    """Random PDQ records, many near a centre (some exact copies, which tie), some with pHash and digests.

    Every record has its own SHA-1, so exact copies of a hash are distinct records of one list.
    """
    out = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.45:
            bits = random_bits(rng, 32)
        elif roll < 0.85:
            bits = flipped(centres[rng.integers(len(centres))], rng, int(rng.integers(0, 24)))
        else:
            bits = centres[rng.integers(len(centres))]
        quality = int(rng.integers(20, 101)) if rng.random() < 0.9 else None
        hashes = {"pdq": Hash("pdq", bits, quality)}
        if rng.random() < 0.35:
            centre = phash_centres[rng.integers(len(phash_centres))]
            hashes["phash"] = Hash("phash", flipped(centre, rng, int(rng.integers(0, 8))))
        out.append(
            KnownRecord(
                hashes=hashes,
                sha1=hex_digest(rng, 40),
                md5=md5_pool[rng.integers(len(md5_pool))] if rng.random() < 0.2 else None,
                sha256=hex_digest(rng, 64) if rng.random() < 0.1 else None,
                name=f"file-{rng.integers(1 << 30)}.jpg",
                extra={"note": int(rng.integers(100))} if rng.random() < 0.1 else {},
                **fields,  # type: ignore[arg-type]
            )
        )
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A single index of ~2600 records in interleaved lists with gaps in its ids, and its 3-shard split."""
    rng = np.random.default_rng(2026)
    base = tmp_path_factory.mktemp("shards")
    centres = [random_bits(rng, 32) for _ in range(40)]
    phash_centres = [random_bits(rng, 8) for _ in range(30)]
    md5_pool = [hex_digest(rng, 32) for _ in range(40)]
    real = []
    for i, kind in enumerate(fixtures.KINDS * 2):
        hashes = hash_image(fixtures.scene(300 + i, 96, 72, kind), ["pdq", "phash"])[0].hashes
        real.append(hashes)
    real_records = []
    for i, hashes in enumerate(real):
        real_records.append(KnownRecord(hashes=dict(hashes), name=f"scene-{i}.png", md5=md5_pool[i]))
        for copy in range(3):  # near copies of the real hashes
            near = {name: Hash(name, flipped(h.bits, rng, 2 + copy), h.quality) for name, h in hashes.items()}
            real_records.append(KnownRecord(hashes=near, name=f"scene-{i}-{copy}.png", sha1=hex_digest(rng, 40)))
    digest_only = [KnownRecord(md5=md5_pool[rng.integers(len(md5_pool))], sha1=hex_digest(rng, 40)) for _ in range(30)]
    source = base / "single"
    with KnownIndex.create(source, ("pdq", "phash")) as index:
        index.set_category_labels("uk", {1: "A", 2: "B", 3: "C"})
        index.set_category_labels("us", {1: "csam", 9: "ignorable"}, default=False)
        index.add(synthetic_records(rng, 1100, centres, phash_centres, md5_pool), "alpha")
        index.add(synthetic_records(rng, 800, centres, phash_centres, md5_pool, series="s1"), "beta", category=2)
        index.add(real_records, "gamma", category=1)
        index.add(synthetic_records(rng, 600, centres, phash_centres, md5_pool), "alpha")  # alpha again: interleaved
        index.add(digest_only, "digests")
        ids = [r.id for r in index.iter_records()]
        index.remove_records(rng.choice(ids, size=90, replace=False).tolist())  # gaps in the ids
    target = base / "sharded"
    paths = split_index(source, target, 3)
    return {
        "source": source,
        "sharded": target,
        "paths": paths,
        "centres": centres,
        "phash_centres": phash_centres,
        "md5_pool": md5_pool,
        "real": real,
        "rng_seed": 99,
    }


@pytest.fixture(scope="module")
def pair(built: dict):
    with KnownIndex.open(built["source"]) as single, ShardedIndex.open(built["sharded"]) as sharded:
        yield single, sharded


def pdq_queries(built: dict, single: KnownIndex) -> list[Hash]:
    rng = np.random.default_rng(built["rng_seed"])
    stored = [r.hashes["pdq"] for r in single.iter_records() if "pdq" in r.hashes]
    queries = [
        Hash("pdq", flipped(stored[i].bits, rng, int(rng.integers(0, 10))), 90)
        for i in rng.choice(len(stored), 25, replace=False)
    ]
    queries += [Hash("pdq", c, 80) for c in built["centres"][:12]]  # clusters of exact copies: ties
    queries += [Hash("pdq", random_bits(rng, 32)) for _ in range(8)]
    queries += [hashes["pdq"] for hashes in built["real"]]
    queries += [Hash("pdq", built["centres"][0], 10)]  # quality below 50: skipped
    return queries


def phash_queries(built: dict) -> list[Hash]:
    rng = np.random.default_rng(built["rng_seed"] + 1)
    queries = [Hash("phash", flipped(c, rng, int(rng.integers(0, 4)))) for c in built["phash_centres"][:15]]
    queries += [hashes["phash"] for hashes in built["real"]]
    return queries + [Hash("phash", random_bits(rng, 8)) for _ in range(5)]


# -- layout and ids -----------------------------------------------------------------------------------


def test_split_writes_three_normal_indexes_and_a_manifest(built: dict) -> None:
    target = built["sharded"]
    assert [p.name for p in built["paths"]] == ["shard-000", "shard-001", "shard-002"]
    document = json.loads((target / SHARDS_NAME).read_text())
    assert [s["name"] for s in document["shards"]] == ["shard-000", "shard-001", "shard-002"]
    with KnownIndex.open(built["source"]) as single:
        total = len(single)
        source_ids = [r.id for r in single.iter_records()]
        for path in built["paths"]:  # every shard is a valid index of its own, ids 1..n
            with KnownIndex.open(path) as shard:
                assert shard.algorithms == single.algorithms
                assert [r.id for r in shard.iter_records()] == list(range(1, len(shard) + 1))
                assert shard.category_schemes() == single.category_schemes()
                assert shard.default_category_scheme == single.default_category_scheme == "uk"
                global_ids = np.load(path / GLOBAL_IDS_NAME)
                assert global_ids.tolist() == source_ids[: len(shard)]  # contiguous ranges, in order
                source_ids = source_ids[len(shard) :]
                assert abs(len(shard) - total / 3) < 1
    assert source_ids == []
    assert document["records"] == total


def test_records_lists_and_info_add_up(pair) -> None:
    single, sharded = pair
    assert len(sharded) == len(single)
    every = list(single.iter_records())
    assert plain(list(sharded.iter_records(batch_size=333))) == plain(every)
    assert plain(list(sharded.iter_records("beta", batch_size=50))) == plain(list(single.iter_records("beta")))
    ids = [r.id for r in every]
    asked = ids[::7] + [ids[5], ids[5], 10**9, -3, ids[-1]]  # repeats and unknown ids as KnownIndex does
    assert plain(sharded.records(asked)) == plain(single.records(asked))
    assert sharded.lists() == single.lists()
    mine, theirs = sharded.info(), single.info()
    for key in ("records", "algorithms", "views", "lists", "category_schemes", "default_category_scheme"):
        assert mine[key] == theirs[key], key
    assert mine["sharded"] is True and [s["name"] for s in mine["shards"]] == ["shard-000", "shard-001", "shard-002"]
    assert sum(s["records"] for s in mine["shards"]) == theirs["records"]
    assert sharded.algorithms == single.algorithms and sharded.views == single.views == {}
    assert sharded.category_label(2) == single.category_label(2) == "B"
    assert sharded.category_label(9, "us") == "ignorable"


# -- exact answers ------------------------------------------------------------------------------------


def test_every_range_search_equals_the_single_index(pair, built: dict) -> None:
    single, sharded = pair
    queries = pdq_queries(built, single)
    found = 0
    for radius in RADII:
        expected = single.search(queries, radius)
        assert sharded.search(queries, radius) == expected, radius
        found += sum(len(r) for r in expected)
    assert expected[-1].skipped_reason is not None  # the low-quality query
    assert found > 2000  # the comparison is not vacuous
    ph = phash_queries(built)
    for radius in PHASH_RADII:
        assert sharded.search(ph, radius) == single.search(ph, radius), radius
    mixed = queries[:5] + ph[:5] + queries[5:8]
    assert sharded.search(mixed) == single.search(mixed)
    assert sharded.search([]) == []


def test_matches_span_shards_and_keep_ordering_by_distance_then_global_id(pair, built: dict) -> None:
    single, sharded = pair
    owner = {}
    for info in sharded.shards:
        for gid in np.load(info.path / GLOBAL_IDS_NAME).tolist():
            owner[gid] = info.name
    result = sharded.search([Hash("pdq", built["centres"][3], 90)], 31)[0]
    assert len({owner[m.record_id] for m in result}) == 3
    keys = [(m.distance, m.record_id) for m in result]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert any(a[0] == b[0] for a, b in zip(keys, keys[1:]))  # ties at one distance, ordered by id


def test_k_nearest_equals_the_single_index_with_ties(pair, built: dict) -> None:
    single, sharded = pair
    queries = pdq_queries(built, single)
    ph = phash_queries(built)
    for k in (1, 5, 20):
        assert sharded.nearest(queries, k) == single.nearest(queries, k), k
        assert sharded.nearest(ph, k) == single.nearest(ph, k), k
    tied = single.nearest([Hash("pdq", built["centres"][1], 90)], 20)[0]
    assert tied[0].distance == tied[1].distance == 0  # exact copies tie, and they are cut by id
    with pytest.raises(UsageError):
        sharded.nearest(queries, 0)


def test_digest_lookups_equal(pair, built: dict) -> None:
    single, sharded = pair
    sample = list(single.iter_records())[::13]
    for kind in ("md5", "sha1", "sha256"):
        values = [getattr(r, kind) for r in sample if getattr(r, kind)] + [
            "0" * {"md5": 32, "sha1": 40, "sha256": 64}[kind]
        ]
        mine, theirs = sharded.lookup_digest(kind, values), single.lookup_digest(kind, values)
        assert {v: plain(r) for v, r in mine.items()} == {v: plain(r) for v, r in theirs.items()}
    pool = built["md5_pool"]
    many = single.lookup_digest("md5", [pool[0].upper(), pool[1]])
    assert len(many[pool[0].upper()]) > 3  # one md5 on records of several shards
    assert {v: plain(r) for v, r in sharded.lookup_digest("md5", [pool[0].upper(), pool[1]]).items()} == {
        v: plain(r) for v, r in many.items()
    }
    with pytest.raises(UsageError):
        sharded.lookup_digest("crc32", ["00"])


# -- the per-shard function for distributed engines ---------------------------------------------------


def test_search_shard_and_merge_give_the_sharded_answers(pair, built: dict) -> None:
    single, sharded = pair
    queries = pdq_queries(built, single)[:20]
    clear_shard_cache()
    try:
        infos = [pickle.loads(pickle.dumps(info)) for info in sharded.shards]  # as sent to a worker
        per_shard = [search_shard(info, queries, 31) for info in infos]
        assert merge_results(per_shard) == single.search(queries, 31)
        by_path = [search_shard(str(info.path), queries, k=5) for info in infos]
        assert merge_results(by_path, k=5) == single.nearest(queries, 5)
        assert cached_shard_names() == [info.name for info in infos]  # each shard opened once in this process
        before = [cached_shard(info) for info in infos]
        search_shard(infos[0], queries, 8)
        assert all(cached_shard(info) is opened for info, opened in zip(infos, before))
        assert cached_shard(str(infos[1].path)) is before[1]  # by path: the same open shard
        values = [r.md5 for r in single.iter_records() if r.md5][:10]
        merged = merge_digest_results([lookup_digest_shard(info, "md5", values) for info in infos])
        assert {v: plain(r) for v, r in merged.items()} == {
            v: plain(r) for v, r in single.lookup_digest("md5", values).items()
        }
    finally:
        clear_shard_cache()
    assert cached_shard_names() == []
    with pytest.raises(UsageError):
        merge_results([])


# -- views --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def viewed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An index made from generated images (with view tables) plus hand-made records with views, split in 3."""
    rng = np.random.default_rng(11)
    base = tmp_path_factory.mktemp("viewed")
    folder = base / "images"
    folder.mkdir()
    for i in range(9):
        image = fixtures.scene(700 + i, 160, 120, fixtures.KINDS[i % 3])
        (folder / f"k{i}.png").write_bytes(fixtures.encode(image, "PNG"))
    names = known_view_names()
    extra = []
    for _ in range(240):
        views = {
            view: Hash("pdq", random_bits(rng, 32), int(rng.integers(30, 100))) for view in names if rng.random() < 0.4
        }
        extra.append(
            KnownRecord(
                hashes={"pdq": Hash("pdq", random_bits(rng, 32), 90)}, views={"pdq": views}, sha1=hex_digest(rng, 40)
            )
        )
    source = base / "single"
    with KnownIndex.create(source, ("pdq",)) as index:
        index.add(extra[:120], "hand")
        summary = import_sources(index, [str(folder)], list_name="images")
        assert summary.added == 9 and summary.problems == 0
        index.add(extra[120:], "hand")
    split_index(source, base / "sharded", 3)
    return {"source": source, "sharded": base / "sharded"}


def test_views_go_with_their_records_and_view_searches_equal(viewed: dict) -> None:
    rng = np.random.default_rng(5)
    with KnownIndex.open(viewed["source"]) as single, ShardedIndex.open(viewed["sharded"]) as sharded:
        assert single.views and sharded.views == single.views
        assert sharded.info()["views"] == single.info()["views"]
        for info in sharded.shards:  # each shard holds exactly its records' view codes
            with KnownIndex.open(info.path) as shard:
                gids = np.load(info.path / GLOBAL_IDS_NAME).tolist()
                theirs = single.record_views(gids)
                mine = shard.record_views(range(1, len(shard) + 1))
                assert {gids[local - 1]: views for local, views in mine.items()} == theirs
        codes = single.record_views(r.id for r in single.iter_records())
        assert any(r.source and r.source.endswith(".png") and r.id in codes for r in single.iter_records())
        for view in single.views["pdq"]:
            stored = [named["pdq"][view] for named in codes.values() if view in named.get("pdq", {})]
            queries = [Hash("pdq", flipped(h.bits, rng, int(rng.integers(0, 12))), 90) for h in stored[:15]]
            queries += [Hash("pdq", random_bits(rng, 32), 90) for _ in range(3)]
            for radius in (0, 31, 100):
                assert sharded.search(queries, radius, view=view) == single.search(queries, radius, view=view)
            for k in (1, 3):
                assert sharded.nearest(queries, k, view=view) == single.nearest(queries, k, view=view)
        query = [Hash("pdq", random_bits(rng, 32), 90)]
        assert sharded.search(query, 256, view="crop10") == single.search(query, 256, view="crop10")
        with pytest.raises(UsageError):
            sharded.search(query, view="nonsense")


# -- refusals -----------------------------------------------------------------------------------------


@pytest.fixture()
def small(tmp_path: Path) -> Path:
    """A 3-shard split of a 60-record index; returns the sharded directory."""
    rng = np.random.default_rng(3)
    source = tmp_path / "single"
    with KnownIndex.create(source, ("pdq",)) as index:
        index.add([KnownRecord(hashes={"pdq": Hash("pdq", random_bits(rng, 32), 90)}) for _ in range(60)], "l")
    split_index(source, tmp_path / "sharded", 3)
    return tmp_path / "sharded"


def rewrite_shards(path: Path, change) -> None:
    document = json.loads((path / SHARDS_NAME).read_text())
    change(document)
    document.pop("shards_sha256")
    document["shards_sha256"] = body_digest(document)
    (path / SHARDS_NAME).write_text(json.dumps(document))


def test_missing_shard_is_named(small: Path) -> None:
    shutil.rmtree(small / "shard-001")
    with pytest.raises(IndexStoreError, match="shard-001"):
        ShardedIndex.open(small)


def test_corrupt_shard_file_is_named(small: Path) -> None:
    codes = next((small / "shard-002").glob("gen-*/pdq.codes.npy"))
    data = bytearray(codes.read_bytes())
    data[-1] ^= 0xFF
    codes.write_bytes(bytes(data))
    with pytest.raises(IndexStoreError, match="shard-002"):
        ShardedIndex.open(small)
    with ShardedIndex.open(small, verify=False):  # sizes still match; only checksums see it
        pass


def test_altered_or_missing_global_ids_are_named(small: Path) -> None:
    ids = small / "shard-000" / GLOBAL_IDS_NAME
    original = ids.read_bytes()
    np.save(ids, np.arange(100, 120, dtype=np.int64))
    with pytest.raises(IndexStoreError, match="shard-000.*checksum"):
        ShardedIndex.open(small)
    ids.unlink()
    with pytest.raises(IndexStoreError, match="shard-000"):
        ShardedIndex.open(small)
    ids.write_bytes(original)
    ShardedIndex.open(small).close()


def test_global_ids_with_a_broken_npy_header_are_named_not_a_tokenizer_error(small: Path) -> None:
    """numpy parses a .npy header with Python's tokenizer, whose errors (TokenError, IndentationError)
    are not ValueErrors: they must still come out as IndexStoreError (found by fuzzing the index loader)."""
    ids = small / "shard-000" / GLOBAL_IDS_NAME
    original = ids.read_bytes()
    header = b"{'descr': '<i8', 'fortran_order': False, 'shape': (20,\n  "
    broken = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    for data in (broken, broken.replace(b"(20,", b"(20, (((")):
        ids.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        rewrite_shards(small, lambda d, digest=digest: d["shards"][0].update(global_ids_sha256=digest))
        with pytest.raises(IndexStoreError, match="shard-000.*cannot read array"):
            ShardedIndex.open(small)
    ids.write_bytes(original)
    rewrite_shards(small, lambda d: d["shards"][0].update(global_ids_sha256=hashlib.sha256(original).hexdigest()))
    ShardedIndex.open(small).close()


def test_shard_written_to_after_the_split_is_refused(small: Path) -> None:
    with KnownIndex.open(small / "shard-001", writable=True) as shard:
        shard.add([KnownRecord(hashes={"pdq": Hash("pdq", bytes(32), 90)})], "l")
    with pytest.raises(IndexStoreError, match="shard-001.*differs"):
        ShardedIndex.open(small)
    with pytest.raises(IndexStoreError, match="shard-001"):
        search_shard(small / "shard-001", [Hash("pdq", bytes(32), 90)])


def test_tampered_shards_json_is_refused(small: Path) -> None:
    text = (small / SHARDS_NAME).read_text()
    (small / SHARDS_NAME).write_text(text.replace('"records": 20', '"records": 21', 1))
    with pytest.raises(IndexStoreError, match="checksum"):
        ShardedIndex.open(small)
    (small / SHARDS_NAME).write_text(text)
    rewrite_shards(small, lambda d: d["shards"][1].update(manifest_sha256="0" * 64))  # checksum made valid
    with pytest.raises(IndexStoreError, match="shard-001"):
        ShardedIndex.open(small)
    rewrite_shards(small, lambda d: d["shards"].pop())
    with pytest.raises(IndexStoreError, match="add up"):
        ShardedIndex.open(small)
    (small / SHARDS_NAME).write_text("{not json")
    with pytest.raises(IndexStoreError, match=SHARDS_NAME):
        ShardedIndex.open(small)
    (small / SHARDS_NAME).unlink()
    with pytest.raises(IndexStoreError, match="not a sharded index"):
        ShardedIndex.open(small)


def test_open_any_split_arguments_and_edge_cases(small: Path, tmp_path: Path) -> None:
    single = tmp_path / "single"
    with open_any(small) as index:
        assert isinstance(index, ShardedIndex) and len(index) == 60
    with open_any(single) as index:
        assert isinstance(index, KnownIndex)
    with pytest.raises(IndexStoreError, match="not empty"):
        split_index(single, small, 2)
    with pytest.raises(UsageError):
        split_index(single, tmp_path / "zero", 0)
    assert not (tmp_path / "zero").exists()
    with pytest.raises(IndexStoreError):
        split_index(tmp_path / "absent", tmp_path / "never", 2)
    assert not (tmp_path / "never").exists()
    query = [Hash("pdq", bytes(32), 90)]
    with KnownIndex.open(single) as one:
        expected, nearest = one.search(query, 256), one.nearest(query, 7)
    split_index(single, tmp_path / "one", 1)
    with ShardedIndex.open(tmp_path / "one") as sharded:
        assert len(sharded.shards) == 1 and len(sharded) == 60
        assert sharded.search(query, 256) == expected and sharded.nearest(query, 7) == nearest
    with KnownIndex.create(tmp_path / "tiny", ("pdq",)) as tiny:  # more shards than records: some empty
        tiny.add([KnownRecord(hashes={"pdq": Hash("pdq", bytes([i]) * 32, 90)}) for i in range(4)], "l")
        expected, nearest = tiny.search(query, 256), tiny.nearest(query, 3)
    split_index(tmp_path / "tiny", tmp_path / "six", 6)
    with ShardedIndex.open(tmp_path / "six") as sharded:
        assert [s.records for s in sharded.shards] == [0, 1, 1, 0, 1, 1]
        assert sharded.shards[0].first_id is None and sharded.shards[1].first_id == 1
        assert sharded.search(query, 256) == expected and sharded.nearest(query, 3) == nearest
        assert [r.id for r in sharded.iter_records()] == [1, 2, 3, 4]
    sharded = ShardedIndex.open(small)
    sharded.close()
    with pytest.raises(UsageError, match="closed"):
        sharded.search(query)


def test_a_scan_against_the_shards_reports_exactly_what_the_single_index_gives(viewed: dict, tmp_path: Path) -> None:
    from matcher.scan import ScanOptions, run_scan

    evidence = tmp_path / "evidence"
    evidence.mkdir()
    for i, edit in enumerate(("crop10", "mirror", "caption", "pad20_black", "rotate4", "jpeg30")):
        image = fixtures.edit(fixtures.scene(700 + i, 160, 120, fixtures.KINDS[i % 3]), edit)
        (evidence / f"copy{i}.png").write_bytes(fixtures.encode(image, "PNG"))
    for i in range(2):
        (evidence / f"other{i}.png").write_bytes(fixtures.encode(fixtures.scene(900 + i, 160, 120), "PNG"))
    reports = {}
    for name in ("source", "sharded"):
        output = tmp_path / f"{name}.jsonl"
        summary = run_scan([str(evidence)], viewed[name], ScanOptions(workers=1), str(output))
        reports[name] = output.read_bytes()
        assert summary.matched_files == 5  # the mirrored plasma card's PDQ quality is 45: not matched
        manifest = json.loads((tmp_path / f"{name}.jsonl.manifest.json").read_text())
        reports[name + " checksum"] = manifest["index"]["manifest_sha256"]
    assert reports["source"] == reports["sharded"]
    assert reports["sharded checksum"] == hashlib.sha256((viewed["sharded"] / "shards.json").read_bytes()).hexdigest()
    assert b'"view": "crop10"' in reports["sharded"] and b'"variant": "trim"' in reports["sharded"]


def test_resigned_shards_json_with_wrong_field_types_is_refused_not_coerced(small: Path) -> None:
    """A forged but re-signed shards.json is checked field by field, as manifest.json is."""
    text = (small / SHARDS_NAME).read_text()
    for change in (
        lambda d: d["shards"][0].update(records="20"),
        lambda d: d.update(records=60.0),
        lambda d: d["shards"][1].update(name=7),
        lambda d: d.update(algorithms=[["pdq"]]),
    ):
        (small / SHARDS_NAME).write_text(text)
        rewrite_shards(small, change)
        with pytest.raises(IndexStoreError, match="malformed field"):
            ShardedIndex.open(small)
    (small / SHARDS_NAME).write_text(text)
    ShardedIndex.open(small).close()
