"""The ``matcher`` command line. Thin: it parses arguments, calls the library, and prints.

Exit codes: 0 the command completed (per-file errors are in the output, not in the code);
2 bad usage or a fatal error (output not writable, unknown algorithm).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TextIO

from . import __version__
from .algorithms import registry
from .errors import MatcherError
from .formats.records import WRITERS
from .hashing import DEFAULT_ALGORITHMS, HashOptions, hash_paths

EXIT_OK = 0
EXIT_USAGE = 2
_DEFAULTS = HashOptions()


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage already; keep its messages, prefixed with the program name."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``matcher`` command."""
    parser = _Parser(prog="matcher", description="Perceptual image-hash matching.")
    parser.add_argument("--version", action="version", version=f"matcher {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and per-file problems to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    h = sub.add_parser(
        "hash",
        help="hash image files and directories",
        description="Hash files and directories (walked recursively; symlinks inside them are not followed). "
        "One record per file, and per frame of animated or multi-page images.",
    )
    h.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    h.add_argument(
        "--algorithms",
        "-a",
        default=",".join(DEFAULT_ALGORITHMS),
        help=f"comma-separated algorithms (default: %(default)s; known: {', '.join(registry.names())})",
    )
    h.add_argument("--format", "-f", choices=sorted(WRITERS), default="jsonl", help="output format (default: jsonl)")
    h.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    h.add_argument("--fast", action="store_true", help="decode JPEGs at reduced scale where the algorithms allow")
    h.add_argument(
        "--max-pixels", type=_positive_int, default=_DEFAULTS.max_pixels, help="pixel limit per frame (default: %(default)s)"
    )
    h.add_argument(
        "--max-frames", type=_positive_int, default=_DEFAULTS.max_frames, help="frames hashed per file (default: %(default)s)"
    )
    h.add_argument(
        "--exif-orientation", action="store_true", help="apply EXIF orientation before hashing (default: stored pixels)"
    )
    h.set_defaults(handler=_cmd_hash)
    return parser


def _inside(path: str, roots: Sequence[str]) -> str | None:
    """The root that ``path`` lies inside (after resolving links), if any."""
    real = os.path.realpath(path)
    for root in roots:
        real_root = os.path.realpath(root)
        if os.path.isdir(real_root) and (real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)):
            return root
    return None


@contextlib.contextmanager
def _open_output(path: str | None, evidence: Sequence[str]) -> Iterator[TextIO]:
    if path is None or path == "-":
        with contextlib.suppress(AttributeError, ValueError):
            sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[attr-defined]
        yield sys.stdout
        return
    root = _inside(path, evidence)
    if root is not None:
        raise MatcherError(f"output {path!r} is inside the evidence path {root!r}; matcher never writes there")
    try:
        stream = open(path, "w", encoding="utf-8", errors="backslashreplace", newline="")
    except OSError as exc:
        raise MatcherError(f"cannot write output {path!r}: {exc.strerror or exc}") from None
    with stream:
        yield stream


def _cmd_hash(args: argparse.Namespace) -> int:
    algorithms = [a.name for a in registry.resolve(args.algorithms)]
    options = HashOptions(
        max_pixels=args.max_pixels,
        max_frames=args.max_frames,
        apply_exif_orientation=args.exif_orientation,
        fast=args.fast,
    )
    paths = [os.fsencode(p) for p in args.paths]
    with _open_output(args.output, args.paths) as stream:
        writer = WRITERS[args.format](stream, algorithms)
        writer.write_all(hash_paths(paths, algorithms, options=options))
        writer.close()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="matcher: %(message)s")
    try:
        return int(args.handler(args))
    except MatcherError as exc:
        print(f"matcher: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
