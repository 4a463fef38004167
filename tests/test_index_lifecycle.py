"""Opening, creating, reloading and closing an index: nothing is wiped by a racing creator, and
nothing (database connections, lock descriptors) is left open by reloads, writes or interrupted locks.

All data is synthetic: random PDQ codes.
"""

from __future__ import annotations

import gc
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from matcher.errors import IndexStoreError, UsageError
from matcher.hashes import Hash
from matcher.index import KnownIndex
from matcher.index import store as store_module
from matcher.known import KnownRecord

FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


def records(seed: int, n: int) -> list[KnownRecord]:
    codes = np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)
    return [
        KnownRecord(hashes={"pdq": Hash("pdq", row.tobytes(), 90)}, md5=f"{seed:016x}{i:016x}")
        for i, row in enumerate(codes)
    ]


def open_descriptors() -> int:
    return len(os.listdir(FD_DIR))


def connection_closed(snapshot: Any) -> bool:
    """Whether a generation's database connection has been closed."""
    try:
        snapshot.conn.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return True
    return False


@pytest.fixture
def no_gc() -> Iterator[None]:
    """The cyclic garbage collector off: descriptors must be released by the code, not by a collection."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# -- create: exactly one of racing creators succeeds -------------------------------------------------


def test_create_racing_another_create_between_check_and_lock_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second creator commits (and adds records) after the first checked the directory but before it
    took the lock: the first must refuse, not wipe the second's index."""
    path = tmp_path / "ix"
    original = store_module._FileLock.__enter__  # noqa: SLF001 - the fault is injected at the lock
    other: dict[str, Any] = {}

    def enter(lock: Any) -> Any:
        if not other:
            other["running"] = True
            with KnownIndex.create(path) as index:  # runs wholly inside the first creator's window
                other["added"] = index.add(records(1, 5), "other").added
                other["generation"] = index.generation
        return original(lock)

    monkeypatch.setattr(store_module._FileLock, "__enter__", enter)  # noqa: SLF001
    with pytest.raises(IndexStoreError, match="already holds an index"):
        KnownIndex.create(path)
    monkeypatch.undo()
    assert other["added"] == 5
    with KnownIndex.open(path) as index:
        assert index.lists() == {"other": 5}
        assert index.generation == other["generation"]
        assert len(index.records(range(1, 6))) == 5


def test_two_threads_creating_at_once_exactly_one_succeeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ix"
    original = store_module._FileLock.__enter__  # noqa: SLF001
    both_checked = threading.Barrier(2, timeout=30)
    calls = iter(range(1_000_000))
    calls_lock = threading.Lock()

    def enter(lock: Any) -> Any:
        with calls_lock:
            call = next(calls)
        if call < 2:  # each creator's lock: both have passed the first check before either takes it
            both_checked.wait()
        return original(lock)

    monkeypatch.setattr(store_module._FileLock, "__enter__", enter)  # noqa: SLF001
    outcomes: list[Any] = [None, None]

    def create(slot: int) -> None:
        try:
            index = KnownIndex.create(path)
            index.add(records(10 + slot, 3), f"creator-{slot}")
            index.close()
            outcomes[slot] = "created"
        except Exception as exc:  # noqa: BLE001 - recorded and checked below
            outcomes[slot] = exc

    threads = [threading.Thread(target=create, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    monkeypatch.undo()
    assert outcomes.count("created") == 1, outcomes
    refused = next(o for o in outcomes if o != "created")
    assert isinstance(refused, IndexStoreError) and "already holds an index" in str(refused)
    winner = outcomes.index("created")
    with KnownIndex.open(path) as index:  # the winner's content is all there
        assert index.lists() == {f"creator-{winner}": 3}


def test_create_still_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "ix").mkdir()
    (tmp_path / "ix" / "notes.txt").write_text("x")
    with pytest.raises(IndexStoreError, match="not empty"):
        KnownIndex.create(tmp_path / "ix")
    assert sorted(p.name for p in (tmp_path / "ix").iterdir()) == ["notes.txt"]


# -- reload and writes: replaced generations are closed -------------------------------------------------


def test_reloads_and_writes_do_not_grow_open_descriptors(tmp_path: Path, no_gc: None) -> None:
    writer = KnownIndex.create(tmp_path / "ix")
    reader = KnownIndex.open(tmp_path / "ix")
    writer.add(records(0, 2), "warm-up")
    reader.reload()
    before = open_descriptors()
    for round_ in range(30):
        writer.add(records(100 + round_, 2), f"list-{round_}")  # a new generation each time
        reader.reload()
        assert reader.generation == writer.generation
    after = open_descriptors()
    assert after <= before, f"{after - before} descriptors left open by 30 writes and reloads"
    assert len(reader) == len(writer) == 62
    assert len(reader.records(range(1, 63))) == 62  # the current connection still works
    writer.close()
    reader.close()
    assert open_descriptors() < before


def test_query_running_during_a_reload_completes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search that began on the old generation finishes on it while another thread reloads (the old
    connection is closed only afterwards)."""
    writer = KnownIndex.create(tmp_path / "ix")
    writer.add(records(1, 20), "first")
    reader = KnownIndex.open(tmp_path / "ix")
    query = reader.records([7])[0].hashes["pdq"]
    searching, reloaded = threading.Event(), threading.Event()
    original = store_module.range_hits

    def slow_range_hits(*args: Any) -> Any:  # the search is under way: codes searched, records not yet read
        hits = original(*args)
        searching.set()
        assert reloaded.wait(30)
        return hits

    monkeypatch.setattr(store_module, "range_hits", slow_range_hits)
    answer: list[Any] = []
    thread = threading.Thread(target=lambda: answer.append(_search(reader, query)))
    thread.start()
    assert searching.wait(30)
    old = reader._snap()  # noqa: SLF001 - to check when its connection closes
    writer.add(records(2, 5), "second")
    reader.reload()
    assert reader.generation == writer.generation
    assert not connection_closed(old)  # still read by the search
    reloaded.set()
    thread.join(30)
    monkeypatch.undo()
    assert isinstance(answer[0], list), answer
    assert [(m.record_id, m.distance, m.list_name) for m in answer[0][0]] == [(7, 0, "first")]
    assert connection_closed(old)  # closed once the search ended
    assert reader.lists() == {"first": 20, "second": 5}


def _search(index: KnownIndex, query: Hash) -> Any:
    try:
        return index.search([query], 0)
    except Exception as exc:  # noqa: BLE001 - handed back to the test
        return exc


def test_iteration_keeps_its_generation_across_reloads_and_then_closes_it(tmp_path: Path) -> None:
    writer = KnownIndex.create(tmp_path / "ix")
    writer.add(records(1, 10), "first")
    reader = KnownIndex.open(tmp_path / "ix")
    old = reader._snap()  # noqa: SLF001
    pages = reader.iter_records(batch_size=3)
    seen = [next(pages).id]
    writer.remove_list("first")
    writer.add(records(2, 4), "second")
    reader.reload()
    assert not connection_closed(old)
    seen += [r.id for r in pages]  # the generation the iteration started on, to the end
    assert seen == list(range(1, 11))
    assert connection_closed(old)
    assert reader.lists() == {"second": 4}
    # an iterator that is never started, then dropped, does not keep its generation open either
    current = reader._snap()  # noqa: SLF001
    unused = reader.iter_records()
    writer.add(records(3, 1), "third")
    reader.reload()
    assert not connection_closed(current)
    del unused
    assert connection_closed(current)


def test_close_waits_for_a_running_read_then_refuses(tmp_path: Path) -> None:
    index = KnownIndex.create(tmp_path / "ix")
    index.add(records(1, 5), "first")
    snapshot = index._snap()  # noqa: SLF001
    pages = index.iter_records(batch_size=2)
    assert next(pages).id == 1
    index.close()
    assert not connection_closed(snapshot)  # the iteration in progress still reads it
    assert [r.id for r in pages] == [2, 3, 4, 5]
    assert connection_closed(snapshot)
    with pytest.raises(UsageError, match="closed"):
        index.records([1])
    with pytest.raises(UsageError, match="closed"):
        index.reload()


def test_reload_racing_close_leaves_nothing_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_gc: None) -> None:
    writer = KnownIndex.create(tmp_path / "ix")
    writer.add(records(1, 3), "first")
    reader = KnownIndex.open(tmp_path / "ix")
    writer.add(records(2, 3), "second")
    before = open_descriptors()
    original = store_module._load_snapshot  # noqa: SLF001
    loaded: list[Any] = []

    def load_then_close(root: Path, verify: bool) -> Any:  # the index is closed while the reload loads
        snapshot = original(root, verify)
        loaded.append(snapshot)
        reader.close()
        return snapshot

    monkeypatch.setattr(store_module, "_load_snapshot", load_then_close)
    with pytest.raises(UsageError, match="closed"):
        reader.reload()
    monkeypatch.undo()
    assert connection_closed(loaded[0])
    assert open_descriptors() < before


def test_failed_opens_of_a_damaged_database_keep_no_descriptor(tmp_path: Path, no_gc: None) -> None:
    """A records database that is not SQLite (same size, checksums not verified) is refused, and the
    refused open leaves nothing open even while its errors are kept (as a service logging them would)."""
    KnownIndex.create(tmp_path / "ix").close()
    database = next((tmp_path / "ix").glob("gen-*/records.sqlite"))
    database.write_bytes(b"x" * database.stat().st_size)
    before = open_descriptors()
    errors = []
    for _attempt in range(10):
        with pytest.raises(IndexStoreError, match="cannot read the records database") as caught:
            KnownIndex.open(tmp_path / "ix", verify=False)
        errors.append(caught.value)
    assert open_descriptors() == before


# -- the writers' lock ------------------------------------------------------------------------------


def test_interrupted_wait_for_the_write_lock_keeps_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_gc: None
) -> None:
    index = KnownIndex.create(tmp_path / "ix")
    before = open_descriptors()

    class Interrupted(BaseException):
        pass

    def flock(fd: int, operation: int) -> None:
        raise Interrupted

    monkeypatch.setattr(store_module.fcntl, "flock", flock)
    for _attempt in range(5):
        with pytest.raises(Interrupted):
            index.add(records(1, 1), "x")
    monkeypatch.undo()
    assert open_descriptors() == before
    assert index.add(records(1, 1), "x").added == 1  # the lock still works afterwards
    index.close()
