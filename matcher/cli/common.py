"""What the ``matcher`` subcommands share: the lazily populated parser, exit codes, argument types,
the decoding and distance flags, and the output stream."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ..errors import MatcherError

if TYPE_CHECKING:
    from ..hashing import HashOptions

EXIT_OK = 0
EXIT_MATCH = 1
EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage already; keep its messages, prefixed with the program name.

    ``populate``: called once with the parser before its first parse or help, to add its arguments
    (a subcommand's arguments are added only when that subcommand is used).
    """

    def __init__(self, *args: Any, populate: Callable[[Parser], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._populate = populate

    def populated(self) -> Parser:
        """This parser with its arguments added."""
        populate, self._populate = self._populate, None
        if populate is not None:
            populate(self)
        return self

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        return super(Parser, self.populated()).parse_known_args(args, namespace)

    def format_usage(self) -> str:
        return super(Parser, self.populated()).format_usage()

    def format_help(self) -> str:
        return super(Parser, self.populated()).format_help()


class Version(argparse.Action):
    """``--version``: print the version and exit (the version is read only then)."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str = argparse.SUPPRESS,
        default: Any = argparse.SUPPRESS,
        help: str | None = "show program's version number and exit",
    ) -> None:
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> NoReturn:
        from ..version import __version__

        print(f"matcher {__version__}")
        parser.exit()


def positive_int(text: str) -> int:
    """argparse type: a whole number above zero."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def escape_unencodable_stdout() -> None:
    """Characters standard output cannot encode (in file names, say) are written escaped, not fatal."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        with contextlib.suppress(ValueError):
            sys.stdout.reconfigure(errors="backslashreplace")


@contextlib.contextmanager
def open_output(path: str | None, evidence: Sequence[str]) -> Iterator[TextIO]:
    """The output stream: standard output for ``None``/``-``, else ``path`` (refused inside an evidence path)."""
    if path is None or path == "-":
        escape_unencodable_stdout()
        yield sys.stdout
        return
    from ..files import path_inside

    root = path_inside(path, evidence)
    if root is not None:
        raise MatcherError(f"output {path!r} is inside the evidence path {root!r}; matcher never writes there")
    try:
        stream = open(path, "w", encoding="utf-8", errors="backslashreplace", newline="")
    except OSError as exc:
        raise MatcherError(f"cannot write output {path!r}: {exc.strerror or exc}") from None
    with stream:
        yield stream


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    """The decoding flags of the commands that walk evidence (``scan``, ``cluster``)."""
    from ..hashing import HashOptions

    defaults = HashOptions()
    parser.add_argument(
        "--fast",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="decode JPEGs at reduced scale where the algorithms allow (default: off)",
    )
    parser.add_argument(
        "--max-pixels",
        type=positive_int,
        default=defaults.max_pixels,
        help="pixel limit per frame (default: %(default)s)",
    )
    parser.add_argument(
        "--max-frames",
        type=positive_int,
        default=defaults.max_frames,
        help="frames hashed per file (default: %(default)s)",
    )
    parser.add_argument(
        "--max-file-bytes",
        type=positive_int,
        default=defaults.max_file_bytes,
        help="larger image files are digested but not decoded; each worker holds up to about "
        "twice this while decoding (default: %(default)s)",
    )
    parser.add_argument(
        "--exif-orientation",
        action="store_true",
        help="apply EXIF orientation before hashing (default: the stored pixels, as reference hash sets)",
    )


def hash_options(args: argparse.Namespace) -> HashOptions:
    """The decoding options the ``hash``, ``scan`` and ``cluster`` flags ask for."""
    from ..hashing import HashOptions

    return HashOptions(
        max_pixels=args.max_pixels,
        max_frames=args.max_frames,
        fast=args.fast,
        apply_exif_orientation=args.exif_orientation,
        max_file_bytes=args.max_file_bytes,
    )


def algorithm_distance(text: str) -> tuple[str, int]:
    """argparse type of ``--max-distance ALGO=N``: ``(algorithm name, N)``."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected ALGO=N, e.g. pdq=20, not {text!r}")
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number in {text!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"distance must not be negative: {text!r}")
    return name.strip(), number


def add_distance_arguments(parser: argparse.ArgumentParser, counted: str, verb: str) -> None:
    """``--max-distance ALGO=N`` and ``--rotations``, as scan and cluster share them."""
    parser.add_argument(
        "--max-distance",
        type=algorithm_distance,
        action="append",
        default=[],
        metavar="ALGO=N",
        help=f"largest distance {counted} for ALGO (repeatable; default: the algorithm's own)",
    )
    parser.add_argument(
        "--rotations",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"also {verb} rotated and flipped copies (default: on)",
    )
