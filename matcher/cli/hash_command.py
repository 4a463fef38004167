"""``matcher hash``: hash files and directories into a hash list."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from .common import (
    EXIT_OK,
    add_decode_arguments,
    add_force_argument,
    add_quiet_argument,
    add_workers_argument,
    check_evidence_paths,
    exit_line,
    hash_options,
    open_output,
)

if TYPE_CHECKING:
    pass


_HASH_EPILOG = """\
exit codes:
  0    the run completed (files that cannot be read or decoded are in the output with their error)
  2    bad usage or a fatal error (a PATH that does not exist or cannot be read, an --output that
       exists without --force, output not writable or inside an evidence path)
  130  interrupted (Ctrl-C)
  141  standard output closed before everything was written (broken pipe): the output is incomplete"""


def add_hash_parser(sub: Any) -> None:
    """Add ``matcher hash`` to the command's subparsers."""
    sub.add_parser(
        "hash",
        help="hash image files and directories",
        description="Hash files and directories (walked recursively; symlinks inside them are not followed). "
        "One record per file, and per frame of animated or multi-page images.",
        epilog=_HASH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        populate=_add_hash_arguments,
    )


def _add_hash_arguments(h: argparse.ArgumentParser) -> None:
    from ..algorithms import registry
    from ..formats.records import WRITERS
    from ..hashing import DEFAULT_ALGORITHMS

    h.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    h.add_argument(
        "--algorithms",
        "-a",
        default=",".join(DEFAULT_ALGORITHMS),
        help=f"comma-separated algorithms (default: %(default)s; known: {', '.join(registry.names())})",
    )
    h.add_argument("--format", "-f", choices=sorted(WRITERS), default="jsonl", help="output format (default: jsonl)")
    h.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    add_force_argument(h)
    add_decode_arguments(h)
    add_workers_argument(h)
    add_quiet_argument(h)
    h.set_defaults(handler=_cmd_hash)


def _cmd_hash(args: argparse.Namespace) -> int:
    check_evidence_paths(args.paths)
    from ..algorithms import registry
    from ..formats.records import WRITERS
    from ..hashing import HashProgress, hash_paths
    from ..progress import ProgressReporter

    algorithms = [a.name for a in registry.resolve(args.algorithms)]
    options = hash_options(args)
    paths = [os.fsencode(p) for p in args.paths]
    last = HashProgress(0, 0, 0, 0, 0.0)

    def progress(p: HashProgress) -> None:
        nonlocal last
        last = p
        reporter.update(
            files=p.files,
            total_files=p.total,
            bytes_done=p.bytes_done,
            total_bytes=p.total_bytes,
            records=p.records,
            errors=p.errors,
        )

    output = open_output(args.output, args.paths, force=args.force)
    with output as stream, ProgressReporter("hash", quiet=args.quiet) as reporter:
        writer = WRITERS[args.format](stream, algorithms)
        records = hash_paths(
            paths,
            algorithms,
            options=options,
            workers=args.workers,
            progress=None if args.quiet else progress,
            count_first=True,
        )
        writer.write_all(records)
        writer.close()
    what = "hashing completed"
    if last.errors:
        what += f" ({last.errors} record{'s' if last.errors != 1 else ''} with an error in the output)"
    reporter.summary(
        f"matcher hash: {last.files} files, {last.records} records, {last.errors} errors in {reporter.elapsed():.1f}s"
        + "\n"
        + exit_line(EXIT_OK, what)
    )
    return EXIT_OK
