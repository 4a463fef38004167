"""The ``matcher`` command line. Thin: it parses arguments, calls the library, and prints.

Exit codes (the README's "Exit codes" and each command's help say the same):

* 0: the command completed and nothing matched (``scan``, ``index query``, ``compare``), or
  completed (``hash``, ``cluster``, the other ``index`` actions); files that could not be read are
  in the output with their error and do not change the code;
* 1: the command completed and something matched (``scan``: a record with status ``match``;
  ``index query``, ``compare``);
* 2: bad usage or a systemic error (a PATH that does not exist, an output that exists without
  ``--force``, unknown algorithm, index unreadable, output not writable);
* 130: interrupted (SIGINT, Ctrl-C): one line on stderr says what was done (``scan``: how to resume);
* 141: standard output was closed before everything was written (``matcher scan ... | head``):
  the output is incomplete, whatever was found.

Options go anywhere after the subcommand's name (``index query I --nearest 2 HEX``), ``-v`` and
``--quiet`` too (:class:`~matcher.cli.common.Parser`).

Start-up: a command imports only the modules it uses. This module imports none of matcher's heavy
modules (numpy, Pillow, FAISS, numba, imagehash, Dask) at the top: each command's handler imports
what it calls, and each subcommand's arguments are added only when that subcommand is parsed or its
help shown (some of their defaults and choices come from the library), so that ``matcher --version``,
``matcher --help`` and ``matcher index info`` start quickly.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from ..errors import MatcherError
from ..progress import configure_logging
from .cluster_command import add_cluster_parser
from .common import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_MATCH,
    EXIT_OK,
    EXIT_USAGE,
    Parser,
    Version,
    add_common_options,
)
from .compare_command import add_compare_parser
from .hash_command import add_hash_parser
from .index_command import add_index_parser
from .report_command import add_report_parser
from .scan_command import add_scan_parser
from .serve_command import add_serve_parser

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_INTERRUPTED", "EXIT_MATCH", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``matcher`` command (a subcommand's arguments are added when it is used)."""
    parser = Parser(prog="matcher", description="Perceptual image-hash matching.")
    parser.add_argument("--version", action=Version)
    add_common_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    add_hash_parser(sub)
    add_index_parser(sub)
    add_compare_parser(sub)
    add_scan_parser(sub)
    add_cluster_parser(sub)
    add_report_parser(sub)
    add_serve_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = argparse.Namespace()
    try:
        args = build_parser().parse_args(arguments)
        args.verbose += args.verbose_after
        args.quiet = args.quiet_before or args.quiet
        args.argv = arguments  # what the user typed, for the line that says how to resume
        configure_logging(args.verbose)
        from ..allocator import tune_allocator

        tune_allocator()  # fixed allocator thresholds for this process (see its documentation)
        code = int(args.handler(args))
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except KeyboardInterrupt:
        name = " ".join(filter(None, [getattr(args, "command", None), getattr(args, "index_command", None)]))
        _say(f"matcher{' ' + name if name else ''}: interrupted (exit {EXIT_INTERRUPTED})")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _output_closed()
    except MatcherError as exc:
        _say(f"matcher: error: {exc}")
        return EXIT_USAGE
    except OSError as exc:  # e.g. disk full or an I/O error writing an output: a message, never a traceback
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        _say(f"matcher: error: {exc.strerror or exc}{where}")
        return EXIT_USAGE
    except Exception:  # noqa: BLE001 - a bug: report it, and never exit with 1 (which means "match")
        import traceback

        traceback.print_exc()
        _say("matcher: internal error (the traceback above); the command did not complete")
        return EXIT_USAGE


def _output_closed() -> int:
    """Standard output was closed early (``matcher scan ... | head``): say so, and return
    :data:`EXIT_BROKEN_PIPE`, never 0. Standard output is pointed at the null device, so that the
    interpreter's flush at exit does not fail again with a message."""
    _discard(sys.stdout)
    _say(f"matcher: standard output was closed early; the output is incomplete (exit {EXIT_BROKEN_PIPE})")
    return EXIT_BROKEN_PIPE


def _say(line: str) -> None:
    """Print a line on stderr; a stderr closed too is pointed at the null device (nothing to say it on)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        _discard(sys.stderr)


def _discard(stream: TextIO) -> None:
    """Point the file descriptor of ``stream`` at the null device (its buffered data goes nowhere)."""
    with contextlib.suppress(OSError, ValueError):
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
