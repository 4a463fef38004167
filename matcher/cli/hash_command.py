"""``matcher hash``: hash files and directories into a hash list."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from .common import EXIT_OK, add_force_argument, check_evidence_paths, hash_options, open_output, positive_int

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
    from ..hashing import DEFAULT_ALGORITHMS, HashOptions

    defaults = HashOptions()
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
    h.add_argument("--fast", action="store_true", help="decode JPEGs at reduced scale where the algorithms allow")
    h.add_argument(
        "--max-pixels",
        type=positive_int,
        default=defaults.max_pixels,
        help="pixel limit per frame (default: %(default)s)",
    )
    h.add_argument(
        "--max-frames",
        type=positive_int,
        default=defaults.max_frames,
        help="frames hashed per file (default: %(default)s)",
    )
    h.add_argument(
        "--max-file-bytes",
        type=positive_int,
        default=defaults.max_file_bytes,
        help="larger image files are digested but not decoded (default: %(default)s)",
    )
    h.add_argument(
        "--exif-orientation", action="store_true", help="apply EXIF orientation before hashing (default: stored pixels)"
    )
    h.set_defaults(handler=_cmd_hash)


def _cmd_hash(args: argparse.Namespace) -> int:
    check_evidence_paths(args.paths)
    from ..algorithms import registry
    from ..formats.records import WRITERS
    from ..hashing import hash_paths

    algorithms = [a.name for a in registry.resolve(args.algorithms)]
    options = hash_options(args)
    paths = [os.fsencode(p) for p in args.paths]
    with open_output(args.output, args.paths, force=args.force) as stream:
        writer = WRITERS[args.format](stream, algorithms)
        writer.write_all(hash_paths(paths, algorithms, options=options))
        writer.close()
    return EXIT_OK
