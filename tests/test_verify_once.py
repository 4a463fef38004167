"""A scan verifies its index once: the parent's open hashes every file, its workers do not again.

Users rely on: scan workers opening a large index without hashing gigabytes each; every file still
being verified (by the parent) before anything is searched; a file altered after the parent verified
it (or a different copy of it, say on another machine) being hashed by the worker and refused when
its checksum is wrong; files written moments ago (whose times cannot show a change made in the same
clock tick) being hashed by every process.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from matcher.errors import IndexStoreError
from matcher.hashes import Hash
from matcher.index import KnownIndex, manifest
from matcher.index import store as store_module
from matcher.index.manifest import read_manifest
from matcher.index.shards import open_any
from matcher.known import KnownRecord
from matcher.scan import ScanOptions
from matcher.scan.options import resolve_config
from matcher.scan.scanner import open_scanner


@pytest.fixture()
def index_path(tmp_path: Path) -> Path:
    """A small PDQ + pHash index of 300 records."""
    rng = np.random.default_rng(5)
    path = tmp_path / "ix"
    with KnownIndex.create(path, ("pdq", "phash")) as index:
        index.add(
            [
                KnownRecord(
                    hashes={
                        "pdq": Hash("pdq", rng.integers(0, 256, 32, dtype=np.uint8).tobytes(), 90),
                        "phash": Hash("phash", rng.integers(0, 256, 8, dtype=np.uint8).tobytes()),
                    }
                )
                for _ in range(300)
            ],
            "list",
        )
    return path


@pytest.fixture()
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the index files hashed while the test runs."""
    seen: list[str] = []
    whole_file: Callable[[Path], Any] = store_module.sha256_file

    def count_file(path: Path) -> Any:
        seen.append(Path(path).name)
        return whole_file(path)

    monkeypatch.setattr(store_module, "sha256_file", count_file)
    return seen


@pytest.fixture()
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by the test count as settled (the test index is seconds old)."""
    monkeypatch.setattr(manifest, "STAMP_SETTLED_NS", 0)


def _generation_files(path: Path) -> list[Path]:
    current = read_manifest(path)
    return sorted((path / current.directory).glob("*")) if current.directory else []


def test_worker_open_hashes_nothing_the_parent_verified(index_path: Path, hashed: list[str], settled: None) -> None:
    with KnownIndex.open(index_path) as parent:
        assert len(hashed) == len(read_manifest(index_path).files)  # the parent verified every file
        config = resolve_config(parent, str(index_path), ScanOptions())
        assert len(config.index_verified) == len(hashed)
        hashed.clear()
        scanner = open_scanner(config)
        try:
            assert hashed == []
            assert scanner.index.generation == parent.generation
            assert len(scanner.index) == 300
        finally:
            scanner.index.close()
    # the counter does count: a worker handed no stamps hashes every file
    bare = resolve_config(KnownIndex.open(index_path, verify=False), str(index_path), ScanOptions())
    assert bare.index_verified == ()
    hashed.clear()
    open_scanner(bare).index.close()
    assert len(hashed) == len(read_manifest(index_path).files)


def test_file_altered_after_the_parent_verified_it_is_hashed_and_refused(
    index_path: Path, hashed: list[str], settled: None
) -> None:
    with KnownIndex.open(index_path) as parent:
        config = resolve_config(parent, str(index_path), ScanOptions())
        codes = next(p for p in _generation_files(index_path) if p.name == "pdq.codes.npy")
        data = bytearray(codes.read_bytes())
        data[-1] ^= 0xFF  # one code byte, same size
        status = codes.stat()
        codes.write_bytes(bytes(data))
        os.utime(codes, ns=(status.st_atime_ns, status.st_mtime_ns + 5_000_000_000))  # whatever the clock tick
        hashed.clear()
        with pytest.raises(IndexStoreError, match="pdq.codes.npy: SHA-256 checksum mismatch"):
            open_scanner(config)
        assert hashed == ["pdq.codes.npy"]  # that file only: the others are unchanged


def test_replaced_or_copied_files_are_hashed(index_path: Path, hashed: list[str], settled: None) -> None:
    with KnownIndex.open(index_path) as parent:
        stamps = parent.verified_files
    # an identical copy put in place (another inode, as another machine's copy would be)
    db_file = next(p for p in _generation_files(index_path) if p.name.endswith(".sqlite"))
    shutil.copy2(db_file, db_file.with_name("copy"))
    os.replace(db_file.with_name("copy"), db_file)
    hashed.clear()
    with open_any(index_path, verified=stamps) as worker:
        assert hashed == [db_file.name]
        assert {stamp.path for stamp in worker.verified_files} == {stamp.path for stamp in stamps}
    # a copy of the whole index elsewhere: every file hashed
    copy = Path(shutil.copytree(index_path, index_path.with_name("copy")))
    hashed.clear()
    KnownIndex.open(copy, verified=stamps).close()
    assert len(hashed) == len(stamps)


def test_files_written_moments_ago_are_hashed_by_every_process(index_path: Path, hashed: list[str]) -> None:
    with KnownIndex.open(index_path) as parent:
        assert parent.verified_files == ()  # the index was written within STAMP_SETTLED_NS
        config = resolve_config(parent, str(index_path), ScanOptions())
    hashed.clear()
    open_scanner(config).index.close()
    assert len(hashed) == len(read_manifest(index_path).files)


def test_unverified_open_hands_on_nothing(index_path: Path, settled: None) -> None:
    with KnownIndex.open(index_path, verify=False) as index:
        assert index.verified_files == ()
