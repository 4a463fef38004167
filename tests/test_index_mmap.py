"""Saved search structures: a large index's multi-index arrays are written at commit, and every
process that opens the index maps them (and the codes) read-only instead of building its own copy.

Users rely on: the same answers whether the structure was saved or built; the mapped arrays being
shared, read-only file pages; an index written before structures were saved still opening (and
gaining them at its next write); damage to a saved structure being refused with a clear error.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from matcher.errors import IndexStoreError
from matcher.hashes import Hash
from matcher.index import KnownIndex
from matcher.index import store as store_module
from matcher.index.manifest import body_digest
from matcher.index.search import MIH_MIN_CODES, AlgorithmTable, range_hits
from matcher.known import KnownRecord

COUNT = MIH_MIN_CODES + 4_000
LOW_QUALITY = 300  # PDQ rows below the quality gate: stored, not searchable


def _codes(seed: int, count: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, width), dtype=np.uint8)


PDQ = _codes(1, COUNT, 32)
PHASH = _codes(2, COUNT, 8)
QUALITY = np.where(np.arange(COUNT) % (COUNT // LOW_QUALITY) == 7, 20, 90)


def _records(rows: range) -> list[KnownRecord]:
    return [
        KnownRecord(
            hashes={"pdq": Hash("pdq", PDQ[i].tobytes(), int(QUALITY[i])), "phash": Hash("phash", PHASH[i].tobytes())}
        )
        for i in rows
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of ``COUNT`` records (ids 1..COUNT) with PDQ and pHash hashes, written once."""
    path = tmp_path_factory.mktemp("mmap") / "ix"
    with KnownIndex.create(path, ("pdq", "phash")) as index:
        index.add(_records(range(COUNT)), "list")
    return path


@pytest.fixture()
def large(built: Path, tmp_path: Path) -> Path:
    """A private copy of the large index, for tests that change it."""
    return Path(shutil.copytree(built, tmp_path / "ix"))


def _queries() -> list[Hash]:
    """Near copies of stored codes (some of low-quality rows) and random codes, of both algorithms."""
    rng = np.random.default_rng(3)
    out = []
    for name, codes in (("pdq", PDQ), ("phash", PHASH)):
        for row in [*range(0, COUNT, 997), *range(7, COUNT, COUNT // LOW_QUALITY)][:60]:
            bits = np.unpackbits(codes[row])
            flip = rng.choice(bits.shape[0], size=int(rng.integers(0, bits.shape[0] // 10)), replace=False)
            bits[flip] ^= 1
            out.append(Hash(name, np.packbits(bits).tobytes()))
        out.extend(Hash(name, bytes(c)) for c in _codes(4, 5, codes.shape[1]))
    return out


def _answers(index: KnownIndex, queries: list[Hash]) -> list[list[tuple[int, int]]]:
    return [[(m.record_id, m.distance) for m in result.matches] for result in index.search(queries)]


def _brute_force(query: Hash) -> list[tuple[int, int]]:
    codes = PDQ if query.algorithm == "pdq" else PHASH
    radius = 31 if query.algorithm == "pdq" else 8
    distances = np.unpackbits(codes ^ np.frombuffer(query.bits, dtype=np.uint8), axis=1).sum(axis=1)
    searchable = QUALITY >= 50 if query.algorithm == "pdq" else np.ones(COUNT, dtype=bool)
    rows = np.flatnonzero((distances <= radius) & searchable)
    return sorted((int(distances[r]), int(r) + 1) for r in rows)


def _mapped(array: np.ndarray) -> bool:
    """Whether ``array`` is (a view of) a read-only memory map of a file."""
    base = array
    while not isinstance(base, np.memmap) and isinstance(base.base, np.ndarray):
        base = base.base
    return isinstance(base, np.memmap) and not array.flags.owndata and not array.flags.writeable


def _strip_structures(path: Path) -> None:
    """Make ``path`` an index as written before structures were saved (no key, no files)."""
    document = json.loads((path / "manifest.json").read_text())
    for name in document.pop("structures"):
        (path / document["directory"] / name).unlink()
    document.pop("manifest_sha256")
    document["manifest_sha256"] = body_digest(document)
    (path / "manifest.json").write_text(json.dumps(document))


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def test_a_large_table_saves_its_structure_with_checksums_beside_the_arrays(built: Path) -> None:
    manifest = _manifest(built)
    assert set(manifest["structures"]) == {
        *(f"pdq.{s}.npy" for s in ("mih.widths", "mih.order", "mih.offsets", "searchable.ids", "searchable.codes")),
        *(f"phash.{s}.npy" for s in ("mih.widths", "mih.order", "mih.offsets")),  # every row searchable
    }
    # the tables' own files are those any matcher expects: an older one reads the index unchanged
    assert set(manifest["files"]) == {
        "records.sqlite",
        *(f"{a}.{s}.npy" for a in ("pdq", "phash") for s in ("ids", "codes", "quality")),
    }
    for name, entry in manifest["structures"].items():
        assert (built / manifest["directory"] / name).stat().st_size == entry["size"]
    with KnownIndex.open(built) as index:
        assert set(index.info()["structures"]) == set(manifest["structures"])


def test_a_small_index_saves_no_structure(tmp_path: Path) -> None:
    with KnownIndex.create(tmp_path / "ix") as index:
        index.add(_records(range(100)), "list")
    assert "structures" not in _manifest(tmp_path / "ix")


def test_processes_map_the_codes_and_the_saved_structure_read_only_and_answer_exactly(built: Path) -> None:
    queries = _queries()
    with KnownIndex.open(built) as first, KnownIndex.open(built) as second:
        for index in (first, second):
            pdq, phash = index._snap().tables["pdq"], index._snap().tables["phash"]
            assert pdq.mih is not None and phash.mih is not None
            for array in (pdq.codes, pdq.searchable_codes, pdq.mih.order, pdq.mih.offsets):
                assert _mapped(array)
            assert np.shares_memory(pdq.mih.codes, pdq.searchable_codes)
            assert pdq.searchable == COUNT - np.sum(QUALITY < 50)
            assert _mapped(phash.mih.order)  # its offsets (147 kB) are below MMAP_MIN_BYTES: read
            assert phash.searchable_codes is phash.codes  # nothing gated: no second copy
        answers = _answers(first, queries)
        assert answers == _answers(second, queries)
        assert answers == [[(r, d) for d, r in _brute_force(q)] for q in queries]
        assert sum(map(len, answers)) >= 80  # the near copies of searchable rows (24 PDQ, 60 pHash) are found
        # range searches by the multi-index never made the FAISS copy of the codes
        assert not first._snap().tables["pdq"].flat_built


def test_saved_and_rebuilt_structures_answer_the_same_including_nearest(built: Path) -> None:
    queries = _queries()
    with KnownIndex.open(built) as index:
        table = index._snap().tables["pdq"]
        rebuilt = AlgorithmTable.build(
            "pdq", 256, 50, np.array(table.ids), np.array(table.codes), np.array(table.quality)
        )
        assert rebuilt.mih is not None and not _mapped(rebuilt.mih.order)
        assert np.array_equal(rebuilt.mih.order, table.mih.order)
        pdq_codes = np.stack([np.frombuffer(q.bits, np.uint8) for q in queries if q.algorithm == "pdq"])
        for radius in (0, 31, 90):  # 90: beyond the multi-index's rule, the flat scan answers
            assert range_hits(table, pdq_codes, radius) == range_hits(rebuilt, pdq_codes, radius)
        nearest = index.nearest(queries, 3)
        assert index._snap().tables["pdq"].flat_built  # made on first use
        for query, result in zip(queries, nearest):
            assert [(m.distance, m.record_id) for m in result.matches] == _nearest_brute_force(query, 3)


def _nearest_brute_force(query: Hash, k: int) -> list[tuple[int, int]]:
    codes = PDQ if query.algorithm == "pdq" else PHASH
    distances = np.unpackbits(codes ^ np.frombuffer(query.bits, dtype=np.uint8), axis=1).sum(axis=1)
    searchable = QUALITY >= 50 if query.algorithm == "pdq" else np.ones(COUNT, dtype=bool)
    return sorted((int(distances[r]), int(r) + 1) for r in np.flatnonzero(searchable))[:k]


def test_an_index_written_without_saved_structures_opens_builds_and_gains_them_at_its_next_write(
    built: Path, large: Path
) -> None:
    _strip_structures(large)
    queries = _queries()
    with KnownIndex.open(built) as saved, KnownIndex.open(large, writable=True) as old:
        table = old._snap().tables["pdq"]
        assert table.mih is not None and not _mapped(table.mih.order)  # built on open, as before
        assert _answers(old, queries) == _answers(saved, queries)
        # a write saves the structures: of the table it changes, and of the one it leaves unchanged
        old.add([KnownRecord(hashes={"pdq": Hash("pdq", bytes(32), 90)})], "pdq only")
    saved_structures = _manifest(built)["structures"]
    assert set(_manifest(large)["structures"]) == set(saved_structures)
    assert _manifest(large)["structures"]["phash.mih.order.npy"] == saved_structures["phash.mih.order.npy"]
    with KnownIndex.open(large) as reopened, KnownIndex.open(built) as saved:
        assert _mapped(reopened._snap().tables["pdq"].mih.order)
        assert _answers(reopened, queries) == _answers(saved, queries)


def test_an_unchanged_table_links_its_saved_structure_into_the_next_generation(large: Path) -> None:
    before = _manifest(large)
    with KnownIndex.open(large, writable=True) as index:
        index.add([KnownRecord(hashes={"pdq": Hash("pdq", bytes(32), 90)})], "pdq only")
    after = _manifest(large)
    assert after["directory"] != before["directory"]
    for name in ("phash.mih.order.npy", "phash.mih.offsets.npy"):
        assert after["structures"][name] == before["structures"][name]
    assert after["structures"]["pdq.mih.order.npy"] != before["structures"]["pdq.mih.order.npy"]
    with KnownIndex.open(large) as index:
        [result] = index.search([Hash("pdq", bytes(32), 90)], 0)
        assert [m.record_id for m in result.matches] == [COUNT + 1]


def _structure_path(path: Path, name: str) -> Path:
    return path / _manifest(path)["directory"] / name


def test_a_corrupted_saved_structure_is_refused_by_its_checksum(large: Path) -> None:
    target = _structure_path(large, "pdq.mih.order.npy")
    data = bytearray(target.read_bytes())
    data[-5] ^= 0x01  # same size, one bit changed
    target.write_bytes(bytes(data))
    with pytest.raises(IndexStoreError, match=r"pdq\.mih\.order\.npy: SHA-256 checksum mismatch"):
        KnownIndex.open(large)


def test_unverified_opening_still_refuses_a_structure_pointing_outside_its_arrays(large: Path) -> None:
    target = _structure_path(large, "pdq.mih.order.npy")
    order = np.load(target)
    order[0, 0] = COUNT + 10  # a row that does not exist: the kernels would read outside the codes
    np.save(target, order)
    with pytest.raises(IndexStoreError, match="saved search structure damaged"):
        KnownIndex.open(large, verify=False)


def test_a_missing_or_partly_listed_saved_structure_is_refused(built: Path, tmp_path: Path) -> None:
    missing = Path(shutil.copytree(built, tmp_path / "missing"))
    os.unlink(_structure_path(missing, "phash.mih.offsets.npy"))
    with pytest.raises(IndexStoreError, match=r"phash\.mih\.offsets\.npy: file missing from the index"):
        KnownIndex.open(missing)
    partial = Path(shutil.copytree(built, tmp_path / "partial"))
    document = _manifest(partial)
    del document["structures"]["pdq.searchable.codes.npy"]
    document.pop("manifest_sha256")
    document["manifest_sha256"] = body_digest(document)
    (partial / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(IndexStoreError, match="manifest lists search structures"):
        KnownIndex.open(partial)


def test_small_arrays_are_read_into_memory_large_ones_mapped(built: Path) -> None:
    with KnownIndex.open(built) as index:
        phash = index._snap().tables["phash"]
        assert phash.codes.nbytes < store_module.MMAP_MIN_BYTES and not _mapped(phash.codes)
        assert phash.ids.nbytes < store_module.MMAP_MIN_BYTES and not _mapped(phash.ids)
