"""``matcher scan``: match evidence against an index."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .common import add_decode_arguments, add_distance_arguments, escape_unencodable_stdout, hash_options, positive_int

if TYPE_CHECKING:
    pass


_SCAN_EPILOG = """\
exit codes:
  0  the scan completed and nothing matched
  1  the scan completed and at least one record has status "match"
  2  bad usage or a fatal error (index unreadable, output not writable or inside an evidence path,
     an interrupted scan's journal present without --resume, --resume with different parameters)
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
    s.add_argument(
        "--trim-borders",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also hash each frame with uniform borders (letterbox, pillarbox, padding) trimmed (default: on)",
    )
    s.add_argument(
        "--regions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also hash the top and bottom 88%% of each frame, matched against the index's region views "
        "(caption banners; default: on)",
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
    s.add_argument("--workers", "-j", type=positive_int, help="worker processes (default: the number of CPUs)")
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
    s.add_argument("--matches-only", action="store_true", help="report only records with status match")
    add_decode_arguments(s)
    s.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a case-level field of a VICS report, e.g. CaseNumber=2026-17 (repeatable; --format vics)",
    )
    s.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary on stderr")
    s.set_defaults(handler=_cmd_scan)


def _cmd_scan(args: argparse.Namespace) -> int:
    from ..algorithms import registry
    from ..progress import ProgressReporter
    from ..scan import ScanOptions, ScanProgress, run_scan

    distances: dict[str, int] = {}
    for name, value in args.max_distance:
        distances[registry.get(name).name] = value
    options = ScanOptions(
        algorithms=args.algorithms,
        max_distances=distances,
        rotations=args.rotations,
        trim_borders=args.trim_borders,
        regions=args.regions,
        workers=args.workers,
        matches_only=args.matches_only,
        engine=args.engine,
        scheduler=args.scheduler,
        hash_options=hash_options(args),
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

    output = None if args.output in (None, "-") else args.output
    if output is None:
        escape_unencodable_stdout()
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
    return summary.exit_code


def _case_fields(pairs: list[str]) -> dict[str, str]:
    fields = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--case wants FIELD=VALUE, not {pair!r}")
        fields[name.strip()] = value
    return fields
