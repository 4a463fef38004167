"""A range search the multi-index answers does not load FAISS (``matcher index query`` against a large
index pays no FAISS import), and keeps FAISS's thread setting once FAISS is loaded.

Users rely on: the same answers either way; scan workers (FAISS set to one thread) searching with one
thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from matcher.hashes import Hash
from matcher.index import KnownIndex
from matcher.index.search import MIH_MIN_CODES, search_threads
from matcher.known import KnownRecord

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PDQ index just large enough for a saved multi-index structure."""
    codes = np.random.default_rng(11).integers(0, 256, (MIH_MIN_CODES + 100, 32), dtype=np.uint8)
    path = tmp_path_factory.mktemp("lazy") / "ix"
    with KnownIndex.create(path, ("pdq",)) as index:
        index.add((KnownRecord(hashes={"pdq": Hash("pdq", row.tobytes(), 90)}) for row in codes), "list")
    np.save(path.parent / "queries.npy", codes[:50])
    return path


def test_multi_index_search_does_not_load_faiss(large: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from matcher.hashes import Hash
        from matcher.index import KnownIndex

        codes = np.load(sys.argv[2])
        with KnownIndex.open(sys.argv[1]) as index:
            results = index.search([Hash("pdq", row.tobytes()) for row in codes], 31)
        assert all(result.matches and result.matches[0].distance == 0 for result in results)
        print("faiss" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(large), str(large.parent / "queries.npy")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


def test_search_threads_follow_faiss_once_loaded() -> None:
    import faiss

    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)
        assert search_threads() == 1
    finally:
        faiss.omp_set_num_threads(before)
    assert search_threads() == before
