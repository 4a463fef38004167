"""The service's pieces in process: the live index's switch, leases and corrupt generations, keys,
the no-auth rule and the metrics text (the HTTP behaviour is in tests/test_serve.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from matcher.errors import UsageError
from matcher.hashes import Hash
from matcher.index import KnownIndex
from matcher.known import KnownRecord
from matcher.scan.options import ScanOptions
from matcher.serve.config import ServeConfig
from matcher.serve.keys import KeyStore
from matcher.serve.live import LiveIndex
from matcher.serve.metrics import Metrics


def code(seed: int) -> Hash:
    return Hash("pdq", np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8).tobytes(), 90)


@pytest.fixture
def index_path(tmp_path: Path) -> Path:
    path = tmp_path / "index"
    with KnownIndex.create(path, ("pdq",)) as index:
        index.add([KnownRecord(hashes={"pdq": code(1)})], "first")
    return path


def add(path: Path, seed: int, list_name: str) -> None:
    with KnownIndex.open(path, writable=True) as index:
        index.add([KnownRecord(hashes={"pdq": code(seed)})], list_name)


def test_in_flight_requests_finish_on_their_snapshot_and_it_is_closed_after(index_path: Path) -> None:
    live = LiveIndex(index_path, ScanOptions())
    with live.lease() as old:
        add(index_path, 2, "second")
        assert live.check() is True
        assert live.current.generation == old.generation + 1
        assert not old.closed  # still leased: the request holding it goes on reading it
        assert old.reader.search([code(2)], 0)[0].matches == ()
        assert live.current.reader.search([code(2)], 0)[0].matches[0].list_name == "second"
    assert old.closed  # its last lease ended
    assert live.check() is False  # nothing new
    live.close()
    assert live.current.closed


def test_a_corrupt_generation_leaves_the_last_good_one(index_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    live = LiveIndex(index_path, ScanOptions())
    good = live.current.generation
    manifest = index_path / "manifest.json"
    saved = manifest.read_bytes()
    broken = index_path / "manifest.tmp"
    broken.write_bytes(saved.replace(b'"records"', b'"recordz"'))
    os.replace(broken, manifest)
    with caplog.at_level("ERROR", logger="matcher.serve.live"):
        assert live.check() is False
        assert live.check() is False  # the same broken state is not tried (nor logged) again
    assert live.current.generation == good and not live.current.closed
    assert live.problem is not None and f"still serving generation {good}" in live.problem.message
    assert live.failed_reloads == 1 and len(caplog.records) == 1
    assert live.current.reader.search([code(1)], 0)[0].matches  # still answering
    broken.write_bytes(saved)
    os.replace(broken, manifest)  # repaired: the same generation, the problem is gone
    assert live.check() is False
    assert live.problem is None and live.current.generation == good
    live.close()


def test_no_auth_only_on_loopback(tmp_path: Path) -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.5"):
        ServeConfig(index=str(tmp_path), auth=False, host=host)
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.org"):
        with pytest.raises(UsageError, match="loopback"):
            ServeConfig(index=str(tmp_path), auth=False, host=host)


def test_config_round_trips_for_worker_processes(tmp_path: Path) -> None:
    config = ServeConfig(index=str(tmp_path), algorithms=("pdq",), max_distances={"pdq": 20}, max_pixels=5)
    assert ServeConfig.from_json(config.to_json()) == config


def test_keys(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    stored, key = store.add("alice")
    assert store.check(key) == stored and store.check(key + "x") is None and store.check("") is None
    assert key not in (tmp_path / "keys.json").read_text()
    other = KeyStore(tmp_path / "keys.json")  # another process's view
    other.revoke(stored.id)
    assert store.check(key) is None  # re-read on change
    assert [k.active for k in store.keys()] == [False]
    with pytest.raises(UsageError, match="no key with id"):
        store.revoke("nope")


def test_metrics_text_format() -> None:
    metrics = Metrics()
    metrics.count("matcher_requests_total", route="lookup", status="200")
    metrics.count("matcher_errors_total", kind='we"ird\n')
    metrics.observe("lookup", 0.003)
    metrics.observe("lookup", 100.0)
    text = metrics.render({"matcher_index_generation": 7})
    assert 'matcher_requests_total{route="lookup",status="200"} 1' in text
    assert 'matcher_errors_total{kind="we\\"ird\\n"} 1' in text
    assert 'matcher_request_duration_seconds_bucket{route="lookup",le="0.005"} 1' in text
    assert 'matcher_request_duration_seconds_bucket{route="lookup",le="+Inf"} 2' in text
    assert 'matcher_request_duration_seconds_count{route="lookup"} 2' in text
    assert "# TYPE matcher_index_generation gauge\nmatcher_index_generation 7" in text


def test_the_batch_thread_searches_with_the_configured_threads() -> None:
    """OpenMP keeps its thread count per thread: set in the event loop's thread, it would not reach the
    batch thread, whose searches would then split over every core beside the event loop."""
    import asyncio
    import functools

    from matcher.batch import set_search_threads
    from matcher.index.search import search_threads
    from matcher.serve.service import Batcher

    before = search_threads()
    set_search_threads(2)  # the calling thread's setting: not the batch thread's
    batcher: Batcher[int, int] = Batcher(
        lambda _snapshot, items: [search_threads() for _ in items],
        8,
        8,
        thread_setup=functools.partial(set_search_threads, 1),
    )

    async def ask() -> int:
        return await batcher.submit(None, 0)  # type: ignore[arg-type]

    try:
        assert asyncio.run(ask()) == 1
        assert search_threads() == 2
    finally:
        batcher.close()
        set_search_threads(before)
