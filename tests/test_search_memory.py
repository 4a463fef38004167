"""The multi-index search works under a fixed memory budget, whatever the batch and the radius.

It used to sort every (query, probe) pair of a batch in one array: ``queries x probes x 8`` bytes a
thread (about 350 MiB for 10,000 PDQ queries at r=63, over 1 GiB for 64-bit hashes at r=19), with
hit arrays grown without bound.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

import numpy as np

from matcher.index import mih
from matcher.index.mih import HIT_BYTES, MultiIndex


def as_dicts(lims, rows, dists):
    return [dict(zip(rows[a:b].tolist(), dists[a:b].tolist())) for a, b in itertools.pairwise(lims)]


def test_a_search_over_its_budget_goes_in_batches_with_the_same_answer(monkeypatch):
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 256, (3000, 32), dtype=np.uint8)
    codes[100:400] = codes[0]  # 300 copies: one query's answer alone exceeds the tiny buffers
    near = codes[rng.integers(0, 3000, 200)]
    queries = np.vstack([near, codes[:1], rng.integers(0, 256, (50, 32), dtype=np.uint8)])
    index = MultiIndex.build(codes)
    expected = as_dicts(*index.range_search(queries, 31, threads=1))
    assert sum(map(len, expected)) > 500

    buffers: list[int] = []
    kernels = {"_search_kernel": mih._search_kernel, "_batch_kernel": mih._batch_kernel}
    for name, kernel in kernels.items():
        monkeypatch.setattr(mih, name, lambda *args, kernel=kernel: buffers.append(args[-1].shape[0]) or kernel(*args))
    budget = 80 * HIT_BYTES  # room for 80 hits
    for batched in (False, True):
        for threads in (1, 2):
            buffers.clear()
            got = index.range_search(queries, 31, threads=threads, memory=budget, batched=batched)
            assert as_dicts(*got) == expected
            assert len(buffers) > 5  # split into many kernel calls
            # buffers start within the budget and grow only to hold one query's own answer (301 hits)
            assert min(buffers) * HIT_BYTES * threads <= budget
            assert max(buffers) <= 2 * 301


def test_peak_memory_of_a_large_batch_is_bounded():
    """2,000 queries of 64-bit codes at r=19: the old kernel took 40 MB a thread of probe lists."""
    script = textwrap.dedent("""
        import json, resource, numpy as np
        from matcher.index.mih import MultiIndex
        rng = np.random.default_rng(0)
        codes = rng.integers(0, 256, (30000, 8), dtype=np.uint8)
        queries = rng.integers(0, 256, (2000, 8), dtype=np.uint8)
        index = MultiIndex.build(codes)
        index.range_search(queries[:4], 19, threads=2)  # compile, warm up
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        lims, rows, dists = index.range_search(queries, 19, threads=2)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"grew_kib": after - before, "hits": int(rows.size)}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["hits"] > 0
    assert result["grew_kib"] < 20 * 1024, result  # the answer is about 1 MB; the budget caps the rest
