"""``matcher scan``: match evidence against an index."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .common import (
    EXIT_INTERRUPTED,
    add_decode_arguments,
    add_distance_arguments,
    add_force_argument,
    add_quiet_argument,
    add_video_match_arguments,
    add_view_arguments,
    add_workers_argument,
    check_evidence_paths,
    exit_line,
    hash_options,
    max_distances,
    refuse_existing,
    report_output,
    video_thresholds,
)

if TYPE_CHECKING:
    pass


_SCAN_EPILOG = """\
exit codes (the summary's last line says which, and why):
  0    the scan completed and nothing matched
  1    the scan completed and at least one record has status "match"
  2    bad usage or a fatal error (a PATH that does not exist or cannot be read, index unreadable,
       output not writable or inside an evidence path, an output or manifest that exists without
       --force, an interrupted scan's journal present without --resume, --resume with different
       parameters)
  130  interrupted (Ctrl-C): one line says how many files the journal keeps and the --resume command
  141  standard output closed before the report was written (broken pipe): the report is incomplete
Files that cannot be read or decoded are in the report with status "error" and do not change the code.

An interrupted scan (even killed) continues with --resume and the same arguments; the report is
written only when the scan completes, beside a run manifest FILE.manifest.json."""


def add_scan_parser(sub: Any) -> None:
    """Add ``matcher scan`` to the command's subparsers."""
    sub.add_parser(
        "scan",
        help="match files and directories against a known-material index",
        description="Walk PATHs (symlinks inside them are never followed, FIFOs and devices never opened), "
        "read every file once read-only, hash images and match digests and perceptual hashes (with "
        "rotations and flips) against INDEX. One record per file, and per frame of animated images.",
        epilog=_SCAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        populate=_add_scan_arguments,
    )


def _add_scan_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("paths", nargs="+", metavar="PATH", help="evidence files or directories (never written)")
    s.add_argument("--index", required=True, metavar="INDEX", help="known-material index directory")
    s.add_argument("--algorithms", "-a", help="comma-separated algorithms (default: every algorithm the index holds)")
    add_distance_arguments(s, "counted as a match", "match")
    add_view_arguments(s, "each frame")
    s.add_argument(
        "--local",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="search frames that no hash matched for known images inside them (crops, turns, screenshots, "
        "collage tiles) by their local features (default: on when the index holds local features)",
    )
    s.add_argument(
        "--format", "-f", choices=["jsonl", "csv", "vics"], default="jsonl", help="report format (default: jsonl)"
    )
    s.add_argument("--output", "-o", metavar="FILE", help="write the report here (default: standard output)")
    s.add_argument(
        "--manifest",
        metavar="FILE",
        help="run manifest (default: FILE.manifest.json beside --output; none for standard output)",
    )
    add_workers_argument(s)
    s.add_argument(
        "--engine",
        choices=["local", "dask"],
        default="local",
        help="where files are hashed: local worker processes, or the workers of a Dask cluster "
        "(needs dask[distributed]; the same report; default: local)",
    )
    s.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --engine dask: a running Dask scheduler, e.g. tcp://10.0.0.5:8786, whose workers read "
        "the evidence and the index at the same paths (default: a local cluster of --workers processes "
        "on the loopback interface)",
    )
    s.add_argument("--resume", action="store_true", help="continue an interrupted scan with the same --output")
    add_force_argument(s)
    s.add_argument("--matches-only", action="store_true", help="report only records with status match")
    add_decode_arguments(s)
    add_video_match_arguments(s)
    s.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a case-level field of a VICS report, e.g. CaseNumber=2026-17 (repeatable; --format vics)",
    )
    add_quiet_argument(s)
    s.set_defaults(handler=_cmd_scan)


def _cmd_scan(args: argparse.Namespace) -> int:
    check_evidence_paths(args.paths)
    from ..progress import ProgressReporter
    from ..scan import ScanOptions, ScanProgress, run_scan
    from ..scan.driver import ScanInterrupted

    options = ScanOptions(
        algorithms=args.algorithms,
        max_distances=max_distances(args),
        rotations=args.rotations,
        trim_borders=args.trim_borders,
        regions=args.regions,
        insets=args.insets,
        local=args.local,
        workers=args.workers,
        matches_only=args.matches_only,
        engine=args.engine,
        scheduler=args.scheduler,
        hash_options=hash_options(args),
        video=video_thresholds(args),
    )
    reporter = ProgressReporter("scan", quiet=args.quiet)

    def progress(p: ScanProgress) -> None:
        reporter.update(
            files=p.done,
            total_files=p.total,
            bytes_done=p.bytes_done,
            total_bytes=p.total_bytes,
            matches=p.matched,
            errors=p.errors,
        )

    output = report_output(args)
    _refuse_existing_outputs(args, output)
    try:
        with reporter:
            summary = run_scan(
                [os.fsencode(p) for p in args.paths],
                args.index,
                options,
                output,
                args.format,
                args.resume,
                manifest_path=args.manifest,
                stream=sys.stdout,
                progress=None if args.quiet else progress,
                count_first=not args.quiet,
                case=_case_fields(args.case),
            )
    except ScanInterrupted as stop:
        print(_interrupted_line(args, stop.files_done, stop.journal), file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.quiet:
        by_status = summary.files_by_status
        print(
            f"matcher scan: {summary.files} files ({summary.images} images, {summary.records} records reported) in "
            f"{summary.elapsed_seconds:.1f}s: {by_status.get('match', 0)} matched, "
            f"{by_status.get('known_good', 0)} known-good, {summary.errors} errors, {summary.skipped} skipped, "
            f"{by_status.get('no_match', 0)} no match"
            + (f" ({summary.resumed_files} from the interrupted run)" if summary.resumed_files else ""),
            file=sys.stderr,
        )
        for name, count in summary.matches_by_list.items():
            print(f"  list {name!r}: {count} files matched", file=sys.stderr)
        for name, count in summary.matches_by_category.items():
            print(f"  category {name}: {count} files matched", file=sys.stderr)
        if summary.manifest:
            print(f"  manifest: {summary.manifest}", file=sys.stderr)
        print(_exit_line(summary.exit_code, summary.matched_files, summary.errors), file=sys.stderr)
    return summary.exit_code


def _exit_line(code: int, matched: int, errors: int) -> str:
    """The summary's last line: what the exit status means."""
    what = f"{matched} file{'s' if matched != 1 else ''} matched" if matched else "nothing matched"
    if errors:
        what += f" ({errors} file{'s' if errors != 1 else ''} could not be read or decoded: status error in the report)"
    return exit_line(code, what)


def _refuse_existing_outputs(args: argparse.Namespace, output: str | None) -> None:
    """An existing report or manifest is replaced only with --force, or by --resume of its journal."""
    from ..scan.options import JOURNAL_SUFFIX, MANIFEST_SUFFIX

    resuming = args.resume and output is not None and os.path.lexists(output + JOURNAL_SUFFIX)
    manifest = args.manifest or (None if output is None else output + MANIFEST_SUFFIX)
    for what, path in (("output", output), ("manifest", manifest)):
        if not resuming:
            refuse_existing(path, what, force=args.force)


def _interrupted_line(args: argparse.Namespace, done: int, journal: str | None) -> str:
    """The one line an interrupted scan ends with: what was done, where the journal is, how to go on."""
    files = f"{done} file{'s' if done != 1 else ''}"
    if journal is None:
        if args.output in (None, "-"):
            why = "a scan to standard output keeps no journal: its output is incomplete"
        else:
            why = "there is no journal to resume: run the same command again"
        return f"matcher scan: interrupted after {files} (exit {EXIT_INTERRUPTED}); {why}"
    again = [*args.argv] if "--resume" in args.argv else [*args.argv, "--resume"]
    return (
        f"matcher scan: interrupted after {files} (exit {EXIT_INTERRUPTED}); the journal {journal} keeps them; "
        f"to continue: {shlex.join(['matcher', *again])}"
    )


def _case_fields(pairs: list[str]) -> dict[str, str]:
    fields = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--case wants FIELD=VALUE, not {pair!r}")
        fields[name.strip()] = value
    return fields
