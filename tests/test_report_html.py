"""``matcher report --html``: the review page, built from a real scan and checked in a real browser.

The example of the README's quick start (synthetic images from ``fixtures/``) is indexed and scanned
with the real ``matcher`` command once per module; the page is built from its report and loaded from
disk (``file://``) in Debian's headless Chromium, driven by Playwright (one browser per module).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.generate import example_set
from matcher.errors import UsageError
from matcher.report import ReportOptions, write_html_report
from tests.conftest import run_matcher

#: Debian's chromium (``.ci/run`` installs it where missing); never ``playwright install``.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(playwright: Any) -> Any:
    """Headless Debian chromium; a missing one fails (never skips: CI installs it)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium for the module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


class Watch:
    """What a page did that it never should: dialogs, page errors, console errors, requests that
    leave the page's folder."""

    def __init__(self, page: Any, folder: Path) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.console: list[str] = []
        self.outside: list[str] = []
        prefix = folder.resolve().as_uri() + "/"

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("request", lambda req: None if req.url.startswith(prefix) else self.outside.append(req.url))

    def assert_quiet(self) -> None:
        assert self.dialogs == []
        assert self.errors == []
        assert [c for c in self.console if c.startswith(("error", "warning"))] == []
        assert self.outside == []


def open_page(browser: Any, folder: Path, html: str = "index.html") -> tuple[Any, Watch]:
    """A fresh page (own context) on ``folder/html`` from disk, with the table drawn."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watch = Watch(page, folder)
    page.goto((folder / html).resolve().as_uri())
    page.wait_for_selector("#table tbody tr")
    page.wait_for_function("() => document.getElementById('loading').textContent === ''")
    return page, watch


def matcher_in_process(*args: str | os.PathLike[str], cwd: Path) -> int:
    """``matcher ARGS`` run in this process (the command's own ``main``: no interpreter start-up),
    in ``cwd``; its exit status."""
    from matcher.cli import main

    with contextlib.chdir(cwd), contextlib.redirect_stdout(io.StringIO()):
        return main([os.fspath(a) for a in args])


def scan_example(root: Path, *, list_name: str = "demo", count: int = 4) -> Path:
    """The README's quick start in ``root``: example set, index (in-process), ``matcher scan`` (the
    installed command, one worker); returns the JSON Lines report (its manifest beside it)."""
    example_set(root / "example", count=count, seed=0)
    index = root / "example" / "index"
    assert matcher_in_process("index", "create", index, "-q", cwd=root) == 0
    add = ("index", "add", index, "example/known", "--list", list_name, "--category", "1", "-q")
    assert matcher_in_process(*add, cwd=root) == 0
    done = run_matcher(
        "scan", "example/evidence", "--index", index, "--output", "example/report.jsonl", "-j", "1", "-q", cwd=root
    )
    assert done.returncode == 1, done.stderr.decode()  # something matched
    return root / "example" / "report.jsonl"


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the example was scanned in (``example/report.jsonl`` and its manifest)."""
    root = tmp_path_factory.mktemp("report")
    scan_example(root)
    return root


@pytest.fixture(scope="module")
def records(scanned: Path) -> list[dict[str, Any]]:
    lines = (scanned / "example" / "report.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def page_dir(scanned: Path) -> Path:
    """The page of the example with thumbnails, made by the command a user types."""
    done = run_matcher("report", "example/report.jsonl", "--html", "review", "--thumbnails", cwd=scanned)
    assert done.returncode == 0, done.stderr.decode()
    assert b"exit 0: the page was written" in done.stderr
    return scanned / "review"


def shown_rows(page: Any) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        "#table tbody tr",
        "rows => rows.map(r => Object.fromEntries([...r.cells].map((c, k) => "
        "[document.querySelectorAll('#table thead th')[k].dataset.col, c.textContent])))",
    )


def test_page_shows_the_counts_of_the_scan(browser: Any, page_dir: Path, scanned: Path) -> None:
    manifest = json.loads((scanned / "example" / "report.jsonl.manifest.json").read_text(encoding="utf-8"))
    by_status = manifest["counts"]["files_by_status"]
    page, watch = open_page(browser, page_dir)
    cards = page.eval_on_selector_all(
        ".card", "cards => Object.fromEntries(cards.map(c => [c.dataset.count, c.querySelector('.value').textContent]))"
    )
    files = manifest["counts"]["files"]
    assert cards["files"] == str(files) and files >= 15
    for status in ("match", "known_good", "error", "skipped", "no_match"):
        assert cards[status] == str(by_status[status])
    assert by_status["match"] >= 9 and by_status["error"] == 1 and by_status["no_match"] > 1
    assert page.text_content("#shown") == f"{files} of {files} records"
    assert len(shown_rows(page)) == files
    # the run: every parameter of the manifest, the index checksum, the host
    run = page.text_content("#run")
    for key, value in manifest["parameters"].items():
        # as JavaScript writes numbers; null (no limit, e.g. max_video_frames) as a dash
        shown = "—" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
        assert key in run and (shown.lower() in run.lower() or isinstance(value, (dict, list))), (key, value)
    assert manifest["index"]["manifest_sha256"] in page.text_content("#summary")
    assert manifest["host"] in run
    # the charts are drawn (inline SVG)
    assert page.locator("#charts figure svg rect.bar").count() >= 4
    assert page.title() == "matcher review: report.jsonl"
    watch.assert_quiet()
    page.context.close()


def test_filters_narrow_the_table(browser: Any, page_dir: Path, records: list[dict[str, Any]]) -> None:
    page, watch = open_page(browser, page_dir)
    page.select_option("#filter-status", label="no_match")
    rows = shown_rows(page)
    assert len(rows) == sum(r["status"] == "no_match" for r in records) > 1
    assert {r["status"] for r in rows} == {"no_match"}
    page.select_option("#filter-status", label="any")
    page.fill("#filter-distance", "0")
    within = [r for r in records if any(m["distance"] <= 0 for m in r["matches"])]
    page.wait_for_function(f"() => document.querySelectorAll('#table tbody tr').length === {len(within)}")
    assert 0 < len(within) < sum(r["status"] == "match" for r in records)
    assert sorted(r["path"] for r in shown_rows(page)) == sorted(r["path"] for r in within)
    page.fill("#filter-distance", "")
    page.fill("#filter-path", "img_000")  # any case
    page.wait_for_function("() => document.querySelectorAll('#table tbody tr').length === 9")
    assert all("IMG_000" in r["path"] for r in shown_rows(page))
    page.click("#filters button[type=reset]")
    page.wait_for_function(f"() => document.querySelectorAll('#table tbody tr').length === {len(records)}")
    # a known view that is a crop: only the records matched through it
    page.select_option("#filter-view", label="crop5")
    cropped = [r for r in records if any(m["view"] == "crop5" for m in r["matches"])]
    assert len(shown_rows(page)) == len(cropped) > 0
    watch.assert_quiet()
    page.context.close()


def test_sorting_by_distance(browser: Any, page_dir: Path) -> None:
    page, watch = open_page(browser, page_dir)
    page.click("th[data-col=distance] button")
    distances = [int(r["distance"]) for r in shown_rows(page) if r["distance"]]
    assert distances == sorted(distances) and len(distances) == page.eval_on_selector_all(
        "#table td.status-match", "cells => cells.length"
    )
    page.click("th[data-col=distance] button")
    distances = [int(r["distance"]) for r in shown_rows(page) if r["distance"]]
    assert distances == sorted(distances, reverse=True)
    assert page.get_attribute("th[data-col=distance]", "aria-sort") == "descending"
    watch.assert_quiet()
    page.context.close()


def test_detail_shows_digests_hashes_and_every_match(
    browser: Any, page_dir: Path, records: list[dict[str, Any]]
) -> None:
    page, watch = open_page(browser, page_dir)
    k = next(i for i, r in enumerate(records) if r["matches"] and r["matches"][0]["view"])
    record = records[k]
    page.click(f"#table tbody tr[data-record='{k}'] button.open")
    page.wait_for_selector("#detail-matches")
    detail = page.text_content("#detail")
    assert page.text_content("#detail-path") == record["path"]
    for key in ("md5", "sha1", "sha256", "pdq"):
        assert record[key] in detail
    match = record["matches"][0]
    cells = page.eval_on_selector_all(
        "#detail-matches tbody tr:first-child td", "cells => cells.map(c => c.textContent)"
    )
    for value in (match["algorithm"], str(match["distance"]), match["variant"], match["view"], match["explanation"]):
        assert value in cells
    assert str(match["record"]) in cells and "demo" in cells
    # the bad file: its error
    bad = next(i for i, r in enumerate(records) if r["status"] == "error")
    page.click("#detail-close")
    page.click(f"#table tbody tr[data-record='{bad}'] button.open")
    page.wait_for_selector("#detail .error")
    assert records[bad]["error"] in page.text_content("#detail .error")
    page.keyboard.press("Escape")
    assert page.is_hidden("#detail")
    watch.assert_quiet()
    page.context.close()


def test_thumbnails_are_hidden_until_revealed(browser: Any, page_dir: Path, records: list[dict[str, Any]]) -> None:
    matched = {i for i, r in enumerate(records) if r["status"] == "match"}
    made = {int(p.name.split(".")[0]) for p in (page_dir / "thumbs").glob("*.jpg") if "-b" not in p.name}
    assert made == matched  # never for files without a match
    page, watch = open_page(browser, page_dir)
    first = min(matched)
    image = page.locator(f"#table tbody tr[data-record='{first}'] img.thumb")
    image.scroll_into_view_if_needed()
    page.wait_for_function(
        f"() => document.querySelector(\"#table tr[data-record='{first}'] img\").complete && "
        f"document.querySelector(\"#table tr[data-record='{first}'] img\").naturalWidth > 0"
    )
    assert image.get_attribute("src") == f"thumbs/{first}-b.jpg"
    assert "hidden" in image.get_attribute("class")
    others = page.eval_on_selector_all("img.thumb", "imgs => imgs.filter(i => !i.src.endsWith('-b.jpg')).length")
    assert others == 0  # all hidden at first
    page.click(f"#table tbody tr[data-record='{first}'] button.reveal")
    page.wait_for_function(
        f"() => (i => i.complete && i.naturalWidth > 0 && i.src.endsWith('/{first}.jpg'))"
        f"(document.querySelector(\"#table tr[data-record='{first}'] img\"))"
    )
    assert page.get_attribute(f"#table tbody tr[data-record='{first}'] button.reveal", "aria-pressed") == "true"
    # only that one is revealed; the detail view did not open
    assert page.eval_on_selector_all("img.thumb.revealed", "imgs => imgs.length") == 1
    assert page.is_hidden("#detail")
    watch.assert_quiet()
    page.context.close()
    # the hidden one is greyscale
    from PIL import Image

    with Image.open(page_dir / "thumbs" / f"{first}-b.jpg") as hidden:
        assert hidden.mode == "L"


def test_thumbnails_all_and_read_only_evidence(scanned: Path, records: list[dict[str, Any]]) -> None:
    evidence = scanned / "example" / "evidence"
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in evidence.iterdir()}
    summary = write_html_report(
        scanned / "example" / "report.jsonl",
        scanned / "review-all",
        ReportOptions(thumbnails="all", base_dir=str(scanned)),
    )
    decoded = [r for r in records if r["status"] in ("match", "no_match") and r["width"] is not None]
    assert summary.thumbnails == len(decoded) > sum(r["status"] == "match" for r in records)
    assert summary.thumbnails_not_made == 0
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in evidence.iterdir()} == before
    assert sorted(os.listdir(evidence)) == sorted(p.name for p in before)


def test_changed_and_linked_evidence_get_no_thumbnail(
    tmp_path: Path, scanned: Path, records: list[dict[str, Any]]
) -> None:
    shutil.copytree(scanned / "example", tmp_path / "example", ignore=shutil.ignore_patterns("index"))
    matched = [r["path"] for r in records if r["status"] == "match"]
    changed, linked = tmp_path / matched[0], tmp_path / matched[1]
    changed.write_bytes(changed.read_bytes() + b"\0")
    outside = tmp_path / "outside.jpg"
    linked.rename(outside)
    linked.symlink_to(outside)
    out = tmp_path / "page"
    summary = write_html_report(
        tmp_path / "example" / "report.jsonl", out, ReportOptions(thumbnails="matches", base_dir=str(tmp_path))
    )
    assert summary.thumbnails == len(matched) - 2 and summary.thumbnails_not_made == 2
    rows = (out / "data" / "rows-0.js").read_text(encoding="utf-8")
    assert "differs from the report" in rows and "symbolic link" in rows


def test_refusals(tmp_path: Path, scanned: Path) -> None:
    report = scanned / "example" / "report.jsonl"
    existing = tmp_path / "exists"
    existing.mkdir()
    (existing / "case-notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="exists"):
        write_html_report(report, existing, ReportOptions(base_dir=str(scanned)))
    with pytest.raises(UsageError, match="not a matcher review page"):
        write_html_report(report, existing, ReportOptions(base_dir=str(scanned), force=True))
    assert (existing / "case-notes.txt").read_text() == "mine"
    # an earlier page is replaced with --force
    page = tmp_path / "page"
    write_html_report(report, page, ReportOptions(base_dir=str(scanned)))
    write_html_report(report, page, ReportOptions(base_dir=str(scanned), force=True, title="again"))
    assert "<title>again</title>" in (page / "index.html").read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing left behind
    # inside the evidence: refused, nothing written there
    done = run_matcher("report", "example/report.jsonl", "--html", "example/evidence/review", cwd=scanned)
    assert done.returncode == 2
    assert (
        b"is inside the evidence path" in done.stderr
        and b"example/evidence'; matcher never writes there" in done.stderr
    )
    assert not (scanned / "example" / "evidence" / "review").exists()
    # thumbnails without the run manifest: refused; the page alone is made, saying so
    lone = tmp_path / "lone.jsonl"
    shutil.copy(report, lone)
    with pytest.raises(UsageError, match="--thumbnails needs the scan's run manifest"):
        write_html_report(lone, tmp_path / "p2", ReportOptions(thumbnails="matches"))
    summary = write_html_report(lone, tmp_path / "p3")
    assert not summary.manifest_found and summary.records == len(lone.read_text().splitlines())
    # without a manifest, the folders of the records' files stand for the evidence paths
    with pytest.raises(UsageError, match="inside the evidence path"):
        write_html_report(lone, scanned / "example" / "evidence" / "p4", ReportOptions(base_dir=str(scanned)))
    assert not (scanned / "example" / "evidence" / "p4").exists()
    # an existing OUT_DIR on the command line: exit 2 and the reason
    done = run_matcher("report", report, "--html", existing)
    assert done.returncode == 2 and b"use --force" in done.stderr


def test_lines_that_are_not_records_are_listed(browser: Any, tmp_path: Path, scanned: Path) -> None:
    report = tmp_path / "report.jsonl"
    lines = (scanned / "example" / "report.jsonl").read_bytes().splitlines()
    report.write_bytes(b"\n".join([lines[0], b"{not json", b'{"status": "lost"}', b"\xff\xfe", *lines[1:]]) + b"\n")
    summary = write_html_report(report, tmp_path / "page")
    assert summary.records == len(lines) and summary.bad_lines == 3
    page, watch = open_page(browser, tmp_path / "page")
    text = page.text_content("#bad-lines")
    assert "3 line(s)" in text and "line 2: not JSON" in text and "line 3: status 'lost'" in text and "line 4" in text
    assert "no run manifest" in page.text_content("#problems")
    watch.console.clear()
    watch.assert_quiet()
    page.context.close()
    (tmp_path / "junk.jsonl").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(UsageError, match="not a matcher JSON Lines scan report"):
        write_html_report(tmp_path / "junk.jsonl", tmp_path / "junk")
    assert not (tmp_path / "junk").exists()


def test_paging_over_chunks(browser: Any, tmp_path: Path, scanned: Path, records: list[dict[str, Any]]) -> None:
    """Rows in several data files, details in others: every record reachable, in order."""
    out = tmp_path / "page"
    write_html_report(scanned / "example" / "report.jsonl", out, ReportOptions(rows_per_chunk=7, details_per_chunk=4))
    assert len(list((out / "data").glob("rows-*.js"))) == -(-len(records) // 7) >= 3
    page, watch = open_page(browser, out)
    page.select_option("#page-size", "50")
    assert page.text_content("#shown") == f"{len(records)} of {len(records)} records"
    page.click("th[data-col=path] button")
    page.click("th[data-col=path] button")  # descending
    paths = [r["path"] for r in shown_rows(page)]
    assert paths == sorted((r["path"] for r in records), reverse=True)
    last = len(records) - 1
    page.click(f"#table tbody tr[data-record='{last}'] button.open")
    page.wait_for_selector("#detail-path")
    assert page.text_content("#detail-path") == records[last]["path"]
    watch.assert_quiet()
    page.context.close()


def test_a_thumbnail_shows_the_frame_that_matched(tmp_path: Path) -> None:
    """A multi-frame file's records are frames: each thumbnail is that frame, decoded by the pipeline."""
    import hashlib

    from PIL import Image

    evidence = tmp_path / "evidence"
    evidence.mkdir()
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    frames = [Image.new("RGB", (96, 64), colour) for colour in colours]
    frames[0].save(evidence / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    digest = hashlib.sha256((evidence / "anim.gif").read_bytes()).hexdigest()
    match = {"algorithm": "pdq", "distance": 3, "variant": "orig", "view": None, "record": 1, "list": "demo"}
    report = tmp_path / "report.jsonl"
    with open(report, "w", encoding="utf-8") as out:
        for k in (2, 0):  # frames 2 and 0 matched
            record = {"path": "evidence/anim.gif", "frame": k, "frame_count": 3, "sha256": digest, "width": 96}
            out.write(json.dumps({**record, "status": "match", "matches": [match], "notes": []}) + "\n")
    (tmp_path / "report.jsonl.manifest.json").write_text(json.dumps({"evidence_paths": ["evidence"]}))
    summary = write_html_report(report, tmp_path / "page", ReportOptions(thumbnails="matches", base_dir=str(tmp_path)))
    assert summary.thumbnails == 2 and summary.files == 1 and summary.matched_files == 1
    for index, colour in ((0, colours[2]), (1, colours[0])):
        with Image.open(tmp_path / "page" / "thumbs" / f"{index}.jpg") as thumb:
            assert thumb.size == (96, 64)
            pixel = thumb.convert("RGB").getpixel((48, 32))
            assert all(abs(a - b) < 40 for a, b in zip(pixel, colour, strict=True)), (pixel, colour)
