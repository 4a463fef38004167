"""Pool workers and the command line fix glibc's allocator thresholds (matcher.allocator.tune_allocator).

Without it, after opening an index every few-MB array of a frame's hashing became a fresh,
zero-filled mapping: 9.7 -> 13.4 ms of CPU per 640x480 entry in a scan worker, and two workers were
no faster than one process (benchmarks/test_scan_workers.py)."""

from __future__ import annotations

import platform

import pytest

from matcher import allocator, batch
from matcher.scan.engines import local


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_the_allocator_thresholds_are_set_on_glibc() -> None:
    assert allocator.tune_allocator() is True


def test_every_pool_worker_initializer_tunes_the_allocator(monkeypatch) -> None:
    import matcher.cluster as cluster

    calls: list[str] = []
    monkeypatch.setattr(allocator, "tune_allocator", lambda: calls.append("tuned") or True)
    monkeypatch.setattr(batch, "start_watching_driver", lambda driver: None)
    monkeypatch.setattr(local, "open_scanner", lambda config: None)
    monkeypatch.setattr(local.signal, "signal", lambda *args: None)
    local._init_worker(None, None)  # type: ignore[arg-type]
    cluster._init_worker(("pdq",), False, cluster.HashOptions(), None)
    batch._start_pool_worker(0, None, ())
    assert calls == ["tuned", "tuned", "tuned"]
