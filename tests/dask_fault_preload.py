"""Dask worker preload used by the tests (see tests/fault_injection.py): exit on a named entry, or
while opening the index (``$MATCHER_FAULT_EXIT_ON_OPEN`` set: as a worker killed for lack of memory
while it maps the index or a shard would)."""

from __future__ import annotations

import os

EXIT_ON = "MATCHER_FAULT_EXIT_ON"
EXIT_ONCE = "MATCHER_FAULT_EXIT_ONCE"
EXIT_ON_OPEN = "MATCHER_FAULT_EXIT_ON_OPEN"


def _crash_on(entry) -> None:
    target = os.environ.get(EXIT_ON)
    if not target or os.path.basename(entry.path) != os.fsencode(target):
        return
    token = os.environ.get(EXIT_ONCE)
    if token:
        try:
            os.close(os.open(token, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return
    os._exit(70)


def _patch_index_opening() -> None:
    """Opening the index or a shard in this worker exits the process on the spot."""
    from matcher.scan.engines import dask_engine

    if getattr(dask_engine, "_fault_injected", False):
        return

    def exit_instead(*args, **kwargs):
        os._exit(71)

    dask_engine.open_scanner = exit_instead
    dask_engine._open_shard = exit_instead
    dask_engine._fault_injected = True


def dask_setup(worker=None) -> None:
    """Called by Dask when a worker loads this preload: wrap the scanner's entry points (and, with
    ``$MATCHER_FAULT_EXIT_ON_OPEN``, the opening of the index)."""
    from matcher.scan.scanner import Scanner

    if os.environ.get(EXIT_ON_OPEN):
        _patch_index_opening()

    if getattr(Scanner, "_fault_injected", False):
        return
    scan_entry, hash_entry = Scanner.scan_entry, Scanner.hash_entry

    def scan_with_fault(self, entry):
        _crash_on(entry)
        return scan_entry(self, entry)

    def hash_with_fault(self, entry):
        _crash_on(entry)
        return hash_entry(self, entry)

    Scanner.scan_entry, Scanner.hash_entry = scan_with_fault, hash_with_fault
    Scanner._fault_injected = True
