"""The review page is safe against its input: hostile file names, list names, series, notes, errors,
manifest values and titles are shown as text and never run, with and without the page's
Content-Security-Policy (the escaping alone must hold).

A corpus of nasty names (markup and script payloads, quotes, template syntax, right-to-left
overrides and other format characters, control characters, newlines, a name that is not UTF-8, a
path of more than 500 characters) is written as real files holding a synthetic known image, indexed
under a hostile list name and scanned with the real ``matcher scan``; records with hostile series,
categories, notes, errors, a region and unknown keys are added to the report. Every payload would
call ``alert`` (a dialog) and set ``window.__pwned``: the test counts both, page errors, console
errors (a blocked inline script would log one) and requests, after opening every record's details.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.generate import example_set
from tests.test_report_html import launch_chromium, matcher_in_process, open_page

PAYLOADS = [
    "<script>alert(1);window.__pwned=1</script>",
    '<img src=x onerror="alert(2);window.__pwned=1">',
    "'><svg onload=alert(3);window.__pwned=1>",
    '" onmouseover="alert(4)" autofocus onfocus="window.__pwned=1" x="',
    "javascript:alert(5);window.__pwned=1",
    '<iframe srcdoc="<script>parent.__pwned=1;parent.alert(6)</script>"></iframe>',
    "{{constructor.constructor('alert(7)')()}}",
    "${alert(8)}`${window.__pwned=1}`",
    '<a href="javascript:alert(9)" id=x>click</a><base href="javascript:alert(10)//">',
    "<style>*{display:none}</style><link rel=stylesheet href=http://example.invalid/x.css>",
    "&lt;script&gt;alert(11)&lt;/script&gt; &amp; &#60;b&#62;",
    "<!--<script>--><script>alert(12)</script>",
    '"]);alert(13);//',
    "\\u003cscript\\u003ealert(14)",
]
DECORATIONS = [
    lambda p: p,
    lambda p: "\u202e" + p + "gpj.exe",  # right-to-left override
    lambda p: "ctrl\x01\x07\x1b[31m\x7f\x85" + p,  # control characters, an ANSI escape, C1
    lambda p: "new\nline\rret\ttab " + p,
    lambda p: "\u2028\u2029\ufeff\u200b\u2066" + p + "\u2069\u200f",
]
LIST_NAME = '<img src=x onerror="alert(20);window.__pwned=1">list "demo" \u202eRTL'
TITLE = "<script>alert(21)</script>Case \u202e1234 & \"quotes\" 'too'"
LONG_TAIL = "y" * 240 + ".jpg"


def nasty_names() -> list[str]:
    """The corpus: every payload under every decoration, plus a few on their own."""
    names = [decorate(payload) for payload in PAYLOADS for decorate in DECORATIONS]
    names += ["😀 emoji 🧨", "e\u0301\u0327 combining", "x" * 200]
    return names


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real scan of nasty names against a hostile list, hostile records added, the page built."""
    root = tmp_path_factory.mktemp("hostile")
    example_set(root / "example", count=1, seed=3)
    known = sorted((root / "example" / "known").iterdir())[0]
    evidence = root / "evidence"
    evidence.mkdir()
    written = 0
    for k, name in enumerate(nasty_names()):
        target = evidence / f"{k:02d} {name}.jpg"  # a "/" in a payload makes folders: the path keeps it
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(known, target)
        written += 1
    with open(os.path.join(os.fsencode(evidence), b"bad \xff\xfe<b>name</b>.jpg".replace(b"/", b"_")), "wb") as out:
        out.write(known.read_bytes())
    long_dir = evidence / ("d" * 250)
    long_dir.mkdir()
    shutil.copyfile(known, long_dir / LONG_TAIL)
    index = root / "index"
    assert matcher_in_process("index", "create", index, "-q", cwd=root) == 0
    assert matcher_in_process("index", "add", index, known.parent, "--list", LIST_NAME, "-q", cwd=root) == 0
    scan = ("scan", "evidence", "--index", index, "--output", "report.jsonl", "-j", "1", "-q")
    assert matcher_in_process(*scan, cwd=root) == 1  # the command's own code, in this process
    report = root / "report.jsonl"
    scanned = [json.loads(line) for line in report.read_text(encoding="utf-8").split("\n") if line]
    assert len(scanned) == written + 2 and all(r["status"] == "match" for r in scanned)
    # records with hostile series, categories, notes, errors, a region and unknown keys
    template = scanned[0]
    extra = []
    for k, payload in enumerate(PAYLOADS):
        match = dict(template["matches"][0], list=payload, series=payload, category=payload if k % 2 else 7)
        match["region"] = {"x": 1, "y": 2, "width": 30, "height": 40, "note": payload}
        extra.append(
            dict(
                template,
                path="evidence/" + payload + "z" * 480,  # a path of more than 500 characters
                matches=[match, dict(match, variant=payload, view=payload, explanation=payload)],
                notes=[payload, "note " + payload],
                error=payload,
                **{payload: payload},
            )
        )
    with open(report, "a", encoding="utf-8") as out:
        for record in extra:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    manifest_path = root / "report.jsonl.manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["host"] = PAYLOADS[1]
    manifest["parameters"][PAYLOADS[0]] = PAYLOADS[2]
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    assert (
        matcher_in_process("report", "report.jsonl", "--html", "page", "--thumbnails", "--title", TITLE, cwd=root) == 0
    )
    page = root / "page"
    # every real file got its thumbnail, whatever its name (named by number, never by the file's name)
    assert len(list((page / "thumbs").iterdir())) == 2 * len(scanned)
    # the same page without its policy: the escaping alone must hold
    html = (page / "index.html").read_text(encoding="utf-8")
    start = html.index('<meta http-equiv="Content-Security-Policy"')
    stripped = html[:start] + html[html.index(">", start) + 1 :]
    assert "Content-Security-Policy" not in stripped
    (page / "no-policy.html").write_text(stripped, encoding="utf-8")
    return {"root": root, "page": page, "records": scanned + extra, "scanned": len(scanned)}


def visit_everything(browser: Any, page_dir: Path, html: str, count: int) -> tuple[Any, Any]:
    """Open the page, show every record in the table and open every record's details."""
    page, watch = open_page(browser, page_dir, html)
    page.select_option("#page-size", "500")
    assert page.locator("#table tbody tr").count() == count
    page.click("#table tbody tr[data-record='0'] button.open")  # loads the details' data file
    page.wait_for_function("() => document.querySelector('#detail h2')?.textContent === 'Record 1'")
    opened = page.evaluate(
        """(count) => {
            const seen = [];
            for (let k = 0; k < count; k++) {  // the details are loaded now: each opens at once
                document.querySelector(`#table tbody tr[data-record='${k}'] button.open`).click();
                seen.push(document.querySelector('#detail h2').textContent);
            }
            return seen;
        }""",
        count,
    )
    assert opened == [f"Record {k + 1}" for k in range(count)]
    for button in page.locator("button.reveal").all()[:10]:
        button.click()
    page.wait_for_timeout(200)  # anything deferred (an onerror, a timer) would have run
    return page, watch


def assert_nothing_ran(page: Any, watch: Any) -> None:
    assert watch.dialogs == [], watch.dialogs
    assert page.evaluate("() => window.__pwned") is None
    assert watch.errors == []
    assert [c for c in watch.console if "error" in c or "Refused" in c] == []
    assert watch.outside == []
    elements = page.evaluate(
        """() => ({
            handlers: [...document.querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => a.name))
                .filter(n => n.startsWith('on')),
            scripts: [...document.scripts].map(s => s.getAttribute('src')),
            images: [...document.images].map(i => i.getAttribute('src'))
                .filter(s => !/^thumbs\\/\\d+(-b)?\\.jpg$/.test(s)),
            frames: document.querySelectorAll('iframe, object, embed, base, style, link:not([href="report.css"])')
                .length,
            links: document.querySelectorAll('a').length
        })"""
    )
    assert elements["handlers"] == []
    assert all(s == "report.js" or s.startswith("data/") for s in elements["scripts"])
    assert elements["images"] == [] and elements["frames"] == 0 and elements["links"] == 0


def test_hostile_names_do_not_run(browser: Any, hostile: dict[str, Any]) -> None:
    page, watch = visit_everything(browser, hostile["page"], "index.html", len(hostile["records"]))
    assert_nothing_ran(page, watch)
    page.context.close()


def test_hostile_names_do_not_run_without_the_policy(browser: Any, hostile: dict[str, Any]) -> None:
    page, watch = visit_everything(browser, hostile["page"], "no-policy.html", len(hostile["records"]))
    assert_nothing_ran(page, watch)
    page.context.close()


def test_hostile_names_are_shown_as_text(browser: Any, hostile: dict[str, Any]) -> None:
    page, watch = open_page(browser, hostile["page"])
    page.select_option("#page-size", "500")
    table = page.text_content("#table")
    assert "<script>alert(1);window.__pwned=1</script>" in table  # shown, not run
    assert "\u27e8U+202E\u27e9" in table and "\u202e" not in table  # a direction override shown, not obeyed
    assert "\u27e8U+000A\u27e9" in table and "\u27e8U+001B\u27e9" in table  # newline, escape
    shown_title = TITLE.replace("\u202e", "\u27e8U+202E\u27e9")
    assert page.title() == shown_title and page.text_content("#title") == shown_title
    assert LIST_NAME.split("\u202e")[0] in page.text_content("#summary")
    # the name that is not UTF-8: its raw bytes
    bad = next(i for i, r in enumerate(hostile["records"]) if r["path_raw_hex"])
    page.click(f"#table tbody tr[data-record='{bad}'] button.open")
    page.wait_for_selector("#detail .raw")
    assert b"bad \xff\xfe<b>name<_b>.jpg".hex() in page.text_content("#detail .raw")
    # the long paths, whole in the details
    long = next(i for i, r in enumerate(hostile["records"]) if r["path"].endswith(LONG_TAIL))
    page.click(f"#table tbody tr[data-record='{long}'] button.open")
    page.wait_for_function(f"() => document.querySelector('#detail h2')?.textContent === 'Record {long + 1}'")
    assert page.text_content("#detail-path") == hostile["records"][long]["path"]
    assert len(hostile["records"][long]["path"]) > 500
    # a hostile record added to the report: every field, the region, the unknown key, as text
    k = hostile["scanned"]
    page.click(f"#table tbody tr[data-record='{k}'] button.open")
    page.wait_for_selector("#detail-matches")
    detail = page.text_content("#detail")
    assert PAYLOADS[0] in detail and "region" in page.text_content("#detail-matches thead")
    assert page.text_content("#detail .error") == "Error: " + PAYLOADS[0]
    assert page.text_content("#detail-path") == hostile["records"][k]["path"]
    watch.assert_quiet()
    page.context.close()


def test_data_files_cannot_end_a_script(hostile: dict[str, Any]) -> None:
    data = hostile["page"] / "data"
    for path in [*data.iterdir(), hostile["page"] / "index.html"]:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".js":
            assert "<" not in text and ">" not in text and "\u2028" not in text and "\u2029" not in text
        else:
            assert "<script>alert" not in text and "&lt;script&gt;alert(21)" in text
