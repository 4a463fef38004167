"""Take the README's screenshot of the review page: ``python docs/images/report_screenshot.py PAGE_DIR``.

PAGE_DIR: the page of the README's quick start (``matcher report example/report.jsonl --html
example/review --thumbnails``). Headless Debian chromium via Playwright; thumbnails stay blurred.
Written to ``docs/images/report.png``, reduced to 256 colours (kept under 200 KB).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def main(page_dir: str) -> None:
    """Screenshot the top of the page (summary, charts, the first rows of the table)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1500})
        page.goto((Path(page_dir) / "index.html").resolve().as_uri())
        page.wait_for_selector("#table tbody tr")
        page.wait_for_timeout(1000)  # the thumbnails in view (they load lazily)
        png = page.screenshot(clip={"x": 0, "y": 0, "width": 1200, "height": 1500})
        browser.close()
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    target = Path(__file__).with_name("report.png")
    image.save(target, optimize=True)
    print(f"{target}: {target.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(sys.argv[1])
