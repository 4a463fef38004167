"""Scan throughput with the local-feature stage on and off, in one run.

Run (about 3 minutes on 2 shared cores)::

    python -m pytest benchmarks/test_local_scan_speed.py -s
    MATCHER_LOCAL_SCAN_FILES=400 python -m pytest benchmarks/test_local_scan_speed.py -s

An index of ``KNOWN`` generated scenes added as images (local features on), and an evidence folder
of ``FILES`` JPEGs (640 x 480): a quarter exact re-encodings of known images (the global hashes
match them: the local stage does not run for them), a quarter 20 % crops (global hashes miss, the
stage finds them), half unrelated scenes (the stage runs and finds nothing). One worker, in this
process, ``--no-local`` against the default. Figures go to ``benchmarks/results/local_scan_speed.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from benchmarks.speed_common import env_int, save
from fixtures.generate import scene
from matcher.index import KnownIndex
from matcher.index.importing import import_sources
from matcher.scan import ScanOptions, scan

KNOWN = env_int("MATCHER_LOCAL_SCAN_KNOWN", 40)
FILES = env_int("MATCHER_LOCAL_SCAN_FILES", 120)
KINDS = ("landscape", "shapes", "text")


def test_local_scan_speed(tmp_path: Path) -> None:
    known, evidence = tmp_path / "known", tmp_path / "evidence"
    known.mkdir()
    evidence.mkdir()
    for i in range(KNOWN):
        scene(20_000 + i, 640, 480, KINDS[i % 3]).save(known / f"k{i}.png")
    for n in range(FILES):
        i = n % KNOWN
        if n % 4 == 0:
            image = scene(20_000 + i, 640, 480, KINDS[i % 3])
        elif n % 4 == 1:
            image = scene(20_000 + i, 640, 480, KINDS[i % 3]).crop((64, 48, 576, 432))
        else:
            image = scene(30_000 + n, 640, 480, KINDS[n % 3])
        image.save(evidence / f"e{n:05d}.jpg", quality=90)
    index = tmp_path / "ix"
    with KnownIndex.create(index) as ix:
        import_sources(ix, [known], list_name="known")
    results: dict[str, dict[str, float]] = {}
    for label, local in (("local_off", False), ("local_on", None), ("local_off_again", False)):
        started = time.perf_counter()
        records = list(scan([str(evidence)], str(index), ScanOptions(workers=1, local=local)))
        elapsed = time.perf_counter() - started
        matched = sum(r.status == "match" for r in records)
        via_local = sum(any(m.variant == "local" for m in r.matches) for r in records)
        results[label] = {
            "images_per_s": round(FILES / elapsed, 2),
            "seconds": round(elapsed, 2),
            "matched": matched,
            "matched_by_local_features": via_local,
        }
        print(label, results[label], flush=True)
    on, off = results["local_on"], results["local_off"]
    results["cost_ratio"] = {"off_over_on": round(on["seconds"] / off["seconds"], 3)}
    save("local_scan_speed", {"known": KNOWN, "files": FILES, **results})
    assert on["matched"] >= off["matched"]
    if not on["matched_by_local_features"]:
        pytest.fail("the local stage found none of the crops")
