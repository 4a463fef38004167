"""Fault injection from the tests' side: matcher's library code carries no test hooks.

* :func:`kill_after_command` — the command line of a ``matcher`` run (in a child process) that
  SIGKILLs itself right after journaling its N-th entry, by wrapping the scan driver's journal write.
* :data:`DASK_PRELOAD` — a Dask worker preload module (``distributed.worker.preload``) that makes a
  worker exit on the spot (``os._exit``, as a decoder crash would) when it is about to scan an entry
  whose base name is ``$MATCHER_FAULT_EXIT_ON``; with ``$MATCHER_FAULT_EXIT_ONCE`` (a file path) only
  the first worker to create that file does, once across the cluster. Workers restarted by their
  nanny load it again, so the fault survives restarts as a real crashing file would.
"""

from __future__ import annotations

import sys
from pathlib import Path

KILL_AFTER = """
import os, signal, sys
import matcher.scan.driver as driver
after, real, count = int(sys.argv[1]), driver.write_all, [0]
def write_all(handle, data):
    real(handle, data)
    count[0] += 1
    if count[0] >= after:
        os.kill(os.getpid(), signal.SIGKILL)
driver.write_all = write_all
from matcher.cli import main
sys.exit(main(sys.argv[2:]))
"""

#: The Dask worker preload module's path (see the module documentation).
DASK_PRELOAD = str(Path(__file__).with_name("dask_fault_preload.py"))


def kill_after_command(after: int, command: list[str]) -> list[str]:
    """``command`` (``[python, "-m", "matcher", ...]``) run so that it SIGKILLs itself once ``after``
    entries are journaled."""
    if command[1:3] != ["-m", "matcher"]:
        raise ValueError(f"not a 'python -m matcher' command: {command[:3]}")
    return [sys.executable, "-c", KILL_AFTER, str(after), *command[3:]]
