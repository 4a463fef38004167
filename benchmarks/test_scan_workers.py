"""Throughput of ``matcher scan`` with one and two worker processes, rotations on and off.

Not part of the normal test run (``testpaths`` is ``tests``). Run it with::

    python -m pytest benchmarks/test_scan_workers.py -s
    MATCHER_SCAN_BENCH_FILES=600 python -m pytest benchmarks/test_scan_workers.py -s

It writes a tree of ``MATCHER_SCAN_BENCH_FILES`` (default 1200: enough that the pool's start-up, about a second, does not dominate) synthetic 640x480 JPEGs: edited copies
(re-encoded, mirrored, rotated, resized) of 40 originals held in a small PDQ index, and unrelated
scenes. The tree is scanned in the same run with ``workers=1`` (in-process) and ``workers=2`` (a
process pool, start-up included), each with rotations on and off, through :func:`matcher.scan.run_scan`
to a JSON Lines report; the reports of both worker counts must be byte-identical. Figures (images/s,
speed-up of two workers over one, cost of rotations) go to ``benchmarks/results/scan_workers.json``;
pytest-benchmark times the default configuration (rotations on, two workers). All data is synthetic.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import pytest

import matcher
from fixtures import edit, encode, scene
from matcher.index import KnownIndex
from matcher.index.importing import known_from_hash_record
from matcher.scan import ScanOptions, run_scan

FILES = int(os.environ.get("MATCHER_SCAN_BENCH_FILES", "1200"))
ORIGINALS = 40
RESULTS = Path(__file__).resolve().parent / "results" / "scan_workers.json"
EDITS = ("jpeg75", "mirror", "rotate90", "resize0.5", "rotate180")
KINDS = ("landscape", "plasma", "shapes", "text")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("scanbench")
    evidence = base / "evidence"
    evidence.mkdir()
    index = KnownIndex.create(base / "index", ["pdq"])
    originals = [scene(10_000 + i, 640, 480, KINDS[i % len(KINDS)]) for i in range(ORIGINALS)]
    records = [known_from_hash_record(matcher.hash_image(img, "pdq")[0]) for img in originals]
    index.add(records, "bench", category=1)
    index.close()
    edited = FILES // 2
    for n in range(FILES):
        if n < edited:
            img = edit(originals[n % ORIGINALS], EDITS[n % len(EDITS)])
        else:
            img = scene(50_000 + n, 640, 480, KINDS[n % len(KINDS)])
        if img.size != (640, 480) and img.size != (480, 640):
            img = img.resize((640, 480))
        (evidence / f"{n // 100:02d}" / f"IMG_{n:05d}.jpg").parent.mkdir(exist_ok=True)
        (evidence / f"{n // 100:02d}" / f"IMG_{n:05d}.jpg").write_bytes(encode(img, "JPEG", quality=85))
    return {"base": base, "evidence": evidence, "index": base / "index", "edited": edited}


def timed_scan(tree, workers: int, rotations: bool, tag: str) -> tuple[float, Path, int]:
    out = tree["base"] / f"report-{tag}.jsonl"
    started = time.perf_counter()
    summary = run_scan(
        [str(tree["evidence"])],
        str(tree["index"]),
        ScanOptions(workers=workers, rotations=rotations),
        str(out),
        "jsonl",
        False,
    )
    elapsed = time.perf_counter() - started
    assert summary.files == FILES
    return elapsed, out, summary.matched_files


def test_scan_workers(tree, benchmark):
    figures: dict[str, dict[str, float]] = {}
    reports: dict[tuple[int, bool], bytes] = {}
    matched: dict[tuple[int, bool], int] = {}
    for rotations in (True, False):
        for workers in (1, 2):
            tag = f"w{workers}-{'rot' if rotations else 'norot'}"
            if (workers, rotations) == (2, True):
                holder: dict[str, tuple[float, Path, int]] = {}

                def run() -> None:
                    holder["r"] = timed_scan(tree, 2, True, tag)

                benchmark.pedantic(run, rounds=1, iterations=1)
                elapsed, out, hits = holder["r"]
            else:
                elapsed, out, hits = timed_scan(tree, workers, rotations, tag)
            reports[(workers, rotations)] = out.read_bytes()
            matched[(workers, rotations)] = hits
            figures[tag] = {
                "seconds": round(elapsed, 3),
                "images_per_second": round(FILES / elapsed, 2),
                "matched_files": hits,
            }
    for rotations in (True, False):
        assert reports[(1, rotations)] == reports[(2, rotations)]  # same report whatever the worker count
    assert matched[(1, True)] == tree["edited"]  # every edited copy found with rotations
    assert matched[(1, False)] < tree["edited"]  # rotated copies are missed without them

    speedup_rot = figures["w1-rot"]["seconds"] / figures["w2-rot"]["seconds"]
    speedup_norot = figures["w1-norot"]["seconds"] / figures["w2-norot"]["seconds"]
    result = {
        "files": FILES,
        "image_size": [640, 480],
        "index_records": ORIGINALS,
        "algorithms": ["pdq"],
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "runs": figures,
        "speedup_2_workers_rotations_on": round(speedup_rot, 2),
        "speedup_2_workers_rotations_off": round(speedup_norot, 2),
        "rotation_cost_factor_1_worker": round(figures["w1-rot"]["seconds"] / figures["w1-norot"]["seconds"], 2),
        "rotation_cost_factor_2_workers": round(figures["w2-rot"]["seconds"] / figures["w2-norot"]["seconds"], 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    assert speedup_rot >= 1.7, f"two workers only {speedup_rot:.2f}x faster than one"
