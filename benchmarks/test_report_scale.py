"""Scale of ``matcher report --html``: generating the review page of a large scan, and opening it.

Run (about a minute at 100,000 records; add 1,000,000 with the environment)::

    python -m pytest benchmarks/test_report_scale.py -s
    MATCHER_BENCH_REPORT_SIZES=100000,1000000 python -m pytest benchmarks/test_report_scale.py -s

Not part of the normal test run (``testpaths`` is ``tests``). The report is synthetic: ``N`` records
as ``matcher scan`` writes them (digests, a PDQ hash and quality for each, paths in folders of 1,000),
5% of them matches (one or two matches each, over 3 lists, 3 categories, a few series, variants and
known views), 1% errors with a note, the rest without a match; and a run manifest.

Timed, side by side in the same run (the machine is shared: ratios matter more than seconds):

* ``baseline_parse_s``: ``json.loads`` of every line, the least any reader of the report does;
* ``generate_s``: :func:`matcher.report.write_html_report` (no thumbnails), in-process;
* in headless chromium (Debian's, Playwright), from disk: ``first_paint_s``, from the navigation
  until the summary and the first page of the table are drawn (wall clock, and the browser's own
  ``first-contentful-paint``); ``all_rows_s`` until every chunk of the table is loaded; then
  ``filter_s`` (a path filter over every row) and ``sort_s`` (sorting every row by distance).

Targets (issue 20): generated in under 10 s and first paint under 2 s at 100,000 records. Figures go to
``benchmarks/results/report_scale.json``.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

from benchmarks.speed_common import save
from matcher.report import ReportOptions, write_html_report

SIZES = [int(n) for n in os.environ.get("MATCHER_BENCH_REPORT_SIZES", "100000").split(",") if n.strip()]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VARIANTS = [("orig", None), ("orig", "crop5"), ("rot90", None), ("flipy", None), ("trim", None), ("top88", "top88")]
EXPLAIN = {
    ("orig", None): "as is",
    ("orig", "crop5"): "cropped 5% centred",
    ("rot90", None): "rotated 90° counter-clockwise",
    ("flipy", None): "mirrored",
    ("trim", None): "borders added",
    ("top88", "top88"): "caption band cut at bottom",
}


def synthetic_report(path: Path, n: int, seed: int = 0) -> None:
    """``n`` records like a scan's (see the module notes) and the run manifest beside them."""
    rng = random.Random(seed)
    counts = {"match": 0, "known_good": 0, "error": 0, "skipped": 0, "no_match": 0}
    with open(path, "w", encoding="utf-8") as out:
        for k in range(n):
            roll = rng.random()
            status = "match" if roll < 0.05 else "error" if roll < 0.06 else "no_match"
            counts[status] += 1
            matches = []
            if status == "match":
                for _ in range(rng.choice((1, 1, 1, 2))):
                    variant, view = rng.choice(VARIANTS)
                    matches.append(
                        {
                            "algorithm": "pdq",
                            "distance": rng.randrange(0, 32),
                            "variant": variant,
                            "view": view,
                            "explanation": EXPLAIN[(variant, view)],
                            "record": rng.randrange(1, 50_000),
                            "list": rng.choice(("agency-a", "agency-b", "hotline")),
                            "category": rng.choice((1, 1, 2, 3)),
                            "series": rng.choice((None, None, "series-7", "series-12")),
                        }
                    )
            error = status == "error"
            record = {
                "path": f"case/folder_{k // 1000:04d}/IMG_{k:07d}.jpg",
                "frame": None,
                "frame_count": None if error else 1,
                "size": rng.randrange(20_000, 4_000_000),
                "mime": "image/jpeg",
                "extension_mismatch": False,
                "width": None if error else 640,
                "height": None if error else 480,
                "md5": rng.randbytes(16).hex(),
                "sha1": rng.randbytes(20).hex(),
                "sha256": rng.randbytes(32).hex(),
                "pdq": None if error else rng.randbytes(32).hex(),
                "phash_quality": None,
                "dhash_quality": None,
                "ahash_quality": None,
                "whash_quality": None,
                "pdq_quality": None if error else rng.randrange(50, 101),
                "status": status,
                "matches": matches,
                "error": "cannot decode: image file is truncated" if error else None,
                "notes": ["truncated JPEG"] if error else [],
                "path_raw_hex": None,
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    manifest = {
        "tool": "matcher scan",
        "versions": {"matcher": "0.1.0"},
        "host": "bench",
        "started_at": "2026-12-04T20:00:00Z",
        "finished_at": "2026-12-04T21:00:00Z",
        "evidence_paths": ["case"],
        "index": {"path": "/cases/index", "generation": 3, "manifest_sha256": "0" * 64},
        "parameters": {"algorithms": ["pdq"], "max_distances": {"pdq": 31}, "rotations": True},
        "counts": {"files": n, "files_by_status": counts},
    }
    Path(str(path) + ".manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def open_in_chromium(index_html: Path) -> dict[str, float]:
    """First paint, all rows, a filter and a sort, in headless chromium, from disk."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        start = time.perf_counter()
        page.goto(index_html.resolve().as_uri(), wait_until="commit")
        page.wait_for_selector("#table tbody tr")
        first_paint = time.perf_counter() - start
        fcp = page.evaluate(
            "() => (performance.getEntriesByName('first-contentful-paint')[0] || {startTime: -1000}).startTime"
        )
        page.wait_for_function("() => document.getElementById('loading').textContent === ''", timeout=120_000)
        all_rows = time.perf_counter() - start
        total = page.text_content("#shown")
        t = time.perf_counter()
        page.fill("#filter-path", "folder_0042")
        page.wait_for_function("() => document.getElementById('shown').textContent.startsWith('1,000 of')")
        filter_s = time.perf_counter() - t - 0.2  # the input's 200 ms debounce
        page.fill("#filter-path", "")
        page.wait_for_function("() => !document.getElementById('shown').textContent.includes('match the filters')")
        t = time.perf_counter()
        page.click("th[data-col=distance] button")
        page.wait_for_function("() => document.querySelector('th[data-col=distance]').hasAttribute('aria-sort')")
        sort_s = time.perf_counter() - t
        browser.close()
    return {
        "first_paint_s": round(first_paint, 3),
        "first_contentful_paint_s": round(fcp / 1000, 3),
        "all_rows_s": round(all_rows, 3),
        "filter_s": round(filter_s, 3),
        "sort_s": round(sort_s, 3),
        "shown": total,
    }


def test_report_scale(tmp_path: Path) -> None:
    results: dict[str, Any] = {}
    for n in SIZES:
        report = tmp_path / f"report-{n}.jsonl"
        synthetic_report(report, n)
        t = time.perf_counter()
        with open(report, "rb") as stream:
            for line in stream:
                json.loads(line)
        baseline = time.perf_counter() - t
        t = time.perf_counter()
        summary = write_html_report(report, tmp_path / f"page-{n}", ReportOptions(base_dir=str(tmp_path)))
        generate = time.perf_counter() - t
        assert summary.records == n and summary.bad_lines == 0
        size = sum(f.stat().st_size for f in (tmp_path / f"page-{n}").rglob("*") if f.is_file())
        browser = open_in_chromium(Path(summary.index_html))
        assert browser["shown"] == f"{n:,} of {n:,} records"
        results[str(n)] = {
            "records": n,
            "report_mb": round(report.stat().st_size / 1e6, 1),
            "page_mb": round(size / 1e6, 1),
            "baseline_parse_s": round(baseline, 3),
            "generate_s": round(generate, 3),
            "generate_over_parse": round(generate / baseline, 2),
            **browser,
        }
        print(f"\n{n:,} records: {json.dumps(results[str(n)])}")
    save("report_scale", {"sizes": results, "targets": {"generate_s": 10, "first_paint_s": 2, "at": 100_000}})
