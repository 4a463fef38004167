"""The review report: a static, self-contained HTML page built from a scan report and its run manifest.

``write_html_report(report_path, out_dir, options)`` reads a JSON Lines scan report (``matcher scan
--format jsonl``) and its run manifest and writes ``out_dir``: ``index.html``, its script and style
sheet, the data as JavaScript files (``data/``: a summary, the table's rows in chunks, each record's
details in smaller chunks loaded when opened) and, only when asked, thumbnails (``thumbs/``). The page
needs no network and no server: it opens from disk (``file://``), a strict Content-Security-Policy
forbids anything but its own files, and every text of the input (paths, list names, notes) is shown
as text, never as markup. See :mod:`matcher.report.builder` and :mod:`matcher.report.thumbnails`.
"""

from __future__ import annotations

from .builder import ReportOptions, ReportSummary, write_html_report
from .page import js_call, js_literal

__all__ = ["ReportOptions", "ReportSummary", "js_call", "js_literal", "write_html_report"]
