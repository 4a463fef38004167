"""The ``matcher`` command line. Thin: it parses arguments, calls the library, and prints.

Exit codes: 0 the command completed (per-file errors are in the output, not in the code);
1 ``index query`` completed and at least one query matched, or ``scan`` completed and at least
one record has status ``match``; 2 bad usage or a fatal error
(output not writable, unknown algorithm, index unreadable).

Start-up: a command imports only the modules it uses. This module imports none of matcher's heavy
modules (numpy, Pillow, FAISS, numba, imagehash, Dask) at the top: each command's handler imports
what it calls, and each subcommand's arguments are added only when that subcommand is parsed or its
help shown (some of their defaults and choices come from the library), so that ``matcher --version``,
``matcher --help`` and ``matcher index info`` start quickly.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from ..errors import MatcherError
from ..progress import configure_logging
from .cluster_command import add_cluster_parser
from .common import EXIT_MATCH, EXIT_OK, EXIT_USAGE, Parser, Version
from .compare_command import add_compare_parser
from .hash_command import add_hash_parser
from .index_command import add_index_parser
from .scan_command import add_scan_parser

__all__ = ["EXIT_MATCH", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``matcher`` command (a subcommand's arguments are added when it is used)."""
    parser = Parser(prog="matcher", description="Perceptual image-hash matching.")
    parser.add_argument("--version", action=Version)
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log matcher's info and debug lines to stderr; -vv: other libraries' too",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    add_hash_parser(sub)
    add_index_parser(sub)
    add_compare_parser(sub)
    add_scan_parser(sub)
    add_cluster_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.handler(args))
    except MatcherError as exc:
        print(f"matcher: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return EXIT_OK
    except OSError as exc:  # e.g. disk full or an I/O error writing an output: a message, never a traceback
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"matcher: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:  # noqa: BLE001 - a bug: report it, and never exit with 1 (which means "match")
        import traceback

        traceback.print_exc()
        print("matcher: internal error (the traceback above); the command did not complete", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
