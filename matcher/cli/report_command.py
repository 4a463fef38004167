"""``matcher report``: a scan report as a static HTML review page (:mod:`matcher.report`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import EXIT_OK, exit_line

_REPORT_EPILOG = """\
The page opens from disk (file://, a USB stick: no server, no network; a strict Content-Security-Policy
lets it load nothing but its own files): a summary and charts, the run's manifest (versions, every
parameter and threshold, index checksum, times, host), the records in a table that sorts and filters
(status, list, category, series, algorithm, variant, view, distance, path text), and each record's
details. Names, list names and notes are shown as text, control and direction characters as codes.

Thumbnails only with --thumbnails: read from the evidence read-only below the evidence paths of the run
manifest (relative paths resolved from --base-dir, default the current directory), only files with a
match (--thumbnails all: every image), shown greyscale and blurred until revealed one by one.

exit codes:
  0    the page was written
  2    bad usage or a fatal error (a report that cannot be read, an OUT_DIR that exists without --force
       or that is not an earlier review page, an OUT_DIR inside an evidence path, --thumbnails without
       the run manifest)
  130  interrupted (Ctrl-C); nothing is written"""


def add_report_parser(sub: Any) -> None:
    """Add ``matcher report`` to the command's subparsers."""
    sub.add_parser(
        "report",
        help="turn a JSON Lines scan report into a static HTML review page",
        description="Build a self-contained HTML review page (OUT_DIR/index.html) from a JSON Lines scan report "
        "and its run manifest.",
        epilog=_REPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        populate=_add_report_arguments,
    )


def _add_report_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("report", metavar="SCAN_REPORT", help="a JSON Lines report of matcher scan (--format jsonl)")
    r.add_argument(
        "--html", required=True, metavar="OUT_DIR", help="the folder to write the page into (must not exist)"
    )
    r.add_argument(
        "--thumbnails",
        nargs="?",
        const="matches",
        choices=["matches", "all"],
        help="thumbnails of the files with a match (or of all images: --thumbnails all), read from the evidence "
        "read-only; greyscale and blurred until revealed (default: none)",
    )
    r.add_argument("--title", help="the page's title (default: 'matcher review: <report name>')")
    r.add_argument("--manifest", metavar="FILE", help="the scan's run manifest (default: SCAN_REPORT.manifest.json)")
    r.add_argument(
        "--base-dir",
        metavar="DIR",
        help="the folder the scan ran in: relative paths of the report are resolved from it (default: the current one)",
    )
    r.add_argument("--force", action="store_true", help="replace an OUT_DIR holding an earlier review page")
    r.set_defaults(handler=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from ..report import ReportOptions, write_html_report

    options = ReportOptions(
        title=args.title,
        thumbnails=args.thumbnails,
        manifest_path=args.manifest,
        base_dir=args.base_dir,
        force=args.force,
    )
    summary = write_html_report(args.report, args.html, options)
    if not args.quiet:
        parts = [f"{summary.records} records ({summary.files} files, {summary.matched_files} matched)"]
        if args.thumbnails:
            parts.append(f"{summary.thumbnails} thumbnails ({summary.thumbnails_not_made} could not be made)")
        if summary.bad_lines:
            parts.append(f"{summary.bad_lines} lines that are not records (listed on the page)")
        if not summary.manifest_found:
            parts.append("no run manifest")
        print(f"matcher report: {', '.join(parts)} in {summary.elapsed_seconds:.1f}s", file=sys.stderr)
        print(f"  page: {summary.index_html}", file=sys.stderr)
        print(exit_line(EXIT_OK, "the page was written"), file=sys.stderr)
    return EXIT_OK
