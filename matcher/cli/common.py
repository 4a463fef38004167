"""What the ``matcher`` subcommands share: the lazily populated parser, exit codes, argument types,
the decoding and distance flags, the evidence paths' check, and the output stream."""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ..errors import MatcherError, UsageError

if TYPE_CHECKING:
    from ..hashing import HashOptions
    from ..video_hash import VideoThresholds

EXIT_OK = 0
EXIT_MATCH = 1
EXIT_USAGE = 2
#: Interrupted (SIGINT, Ctrl-C): 128 + SIGINT, as shells report a process that SIGINT ended.
EXIT_INTERRUPTED = 130
#: Standard output closed before everything was written (``matcher scan ... | head``): 128 + SIGPIPE,
#: as shells report a process that SIGPIPE ended. Never 0: the output is incomplete.
EXIT_BROKEN_PIPE = 141


class Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage already; keep its messages, prefixed with the program name.

    ``populate``: called once with the parser before its first parse or help, to add its arguments
    (a subcommand's arguments are added only when that subcommand is used). A populated parser
    without subcommands of its own (``scan``, ``index query``, ...) also gets the options every
    command takes after its name (:func:`add_common_options`), and parses its arguments intermixed:
    options and positionals in any order (``index query I --nearest 2 HEX``).
    """

    def __init__(self, *args: Any, populate: Callable[[Parser], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._populate = populate
        self._has_subcommands = False
        self._intermixing = False

    def add_subparsers(self, **kwargs: Any) -> Any:
        self._has_subcommands = True
        return super().add_subparsers(**kwargs)

    def populated(self) -> Parser:
        """This parser with its arguments added."""
        populate, self._populate = self._populate, None
        if populate is not None:
            populate(self)
            if not self._has_subcommands:
                add_common_options(self, after_command=True)
        return self

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parser = self.populated()
        if self._has_subcommands or self._intermixing:  # argparse cannot intermix around subcommands
            return super(Parser, parser).parse_known_args(args, namespace)
        self._intermixing = True  # the intermixed parse calls this method again, for its two passes
        try:
            return super(Parser, parser).parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False

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


def add_common_options(parser: argparse.ArgumentParser, *, after_command: bool = False) -> None:
    """``-v``/``--verbose`` and ``-q``/``--quiet``, before the subcommand (``matcher -v scan``) or,
    with ``after_command``, after it (``matcher scan ... -v``; a subcommand's own ``--quiet`` is kept).

    Each place counts apart (before: ``verbose`` and ``quiet_before``; after: ``verbose_after`` and
    ``quiet``); ``main`` adds them up into ``verbose`` and ``quiet``.
    """
    parser.add_argument(
        "-v",
        "--verbose",
        dest="verbose_after" if after_command else "verbose",
        action="count",
        default=0,
        help="log matcher's info and debug lines to stderr; -vv: other libraries' too",
    )
    with contextlib.suppress(argparse.ArgumentError):  # the subcommand has its own --quiet
        parser.add_argument(
            "-q",
            "--quiet",
            dest="quiet" if after_command else "quiet_before",
            action="store_true",
            help="no progress and no summary on stderr (errors and warnings still are)",
        )


def check_evidence_paths(paths: Sequence[str]) -> None:
    """Refuse (:class:`~matcher.errors.UsageError`) a PATH that does not exist or cannot be read,
    before any work: a run over a mistyped PATH must never end as a run that found nothing.

    A PATH that is a link is followed (the user named it). Nothing is opened for writing, and no
    file is read here.
    """
    for path in paths:
        try:
            os.stat(path)
        except FileNotFoundError:
            raise UsageError(f"PATH {path!r} does not exist") from None
        except OSError as exc:
            raise UsageError(f"PATH {path!r} cannot be read: {exc.strerror or exc}") from None
        if not os.access(path, os.R_OK | (os.X_OK if os.path.isdir(path) else 0)):
            raise UsageError(f"PATH {path!r} cannot be read: permission denied")


def refuse_existing(path: str | None, what: str = "output", *, force: bool) -> None:
    """Refuse (:class:`~matcher.errors.UsageError`) to replace an existing regular file ``path``
    unless ``force``: a report may be the only copy. Devices and FIFOs (``/dev/null``) are written."""
    if path is None or path == "-" or force:
        return
    if os.path.isfile(path):
        raise UsageError(f"{what} {path!r} exists; matcher does not replace it: use --force to replace it")


def add_force_argument(parser: argparse.ArgumentParser) -> None:
    """``--force``: replace an existing ``--output`` (refused without it)."""
    parser.add_argument("--force", action="store_true", help="replace an --output file that exists (default: refused)")


def exit_line(code: int, what: str) -> str:
    """The last line of a command's summary: what its exit status means (``exit 1: 33 files matched``)."""
    return f"exit {code}: {what}"


def positive_float(text: str) -> float:
    """argparse type: a finite number above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


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
def open_output(path: str | None, evidence: Sequence[str], *, force: bool) -> Iterator[TextIO]:
    """The output stream: standard output for ``None``/``-``, else ``path`` (refused inside an evidence
    path, and when it exists unless ``force``: see :func:`refuse_existing`)."""
    if path is None or path == "-":
        escape_unencodable_stdout()
        yield sys.stdout
        return
    from ..files import path_inside

    root = path_inside(path, evidence)
    if root is not None:
        raise MatcherError(f"output {path!r} is inside the evidence path {root!r}; matcher never writes there")
    refuse_existing(path, force=force)
    try:
        stream = open(path, "w", encoding="utf-8", errors="backslashreplace", newline="")
    except OSError as exc:
        raise MatcherError(f"cannot write output {path!r}: {exc.strerror or exc}") from None
    with stream:
        yield stream


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    """The decoding flags of the commands that read evidence (``hash``, ``scan``, ``cluster``, ``compare``)."""
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
        default=None,
        help=f"frames hashed per file: per animated or multi-page image (default: {defaults.max_frames}) and, "
        "when given, sampled frames per video too (a longer video keeps its first N and gets an error saying "
        "so; default for videos: only --max-video-seconds bounds them)",
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
    video = parser.add_argument_group("videos (vPDQ)")
    video.add_argument(
        "--video-fps",
        type=positive_float,
        default=defaults.video.fps,
        help="video frames sampled per second, as vPDQ samples them (default: %(default)s)",
    )
    video.add_argument(
        "--max-video-seconds",
        type=positive_float,
        default=defaults.video.max_seconds,
        help="seconds of each video sampled; a longer video gets an error saying it was cut (default: %(default)s)",
    )
    video.add_argument(
        "--video-decode-seconds",
        type=positive_float,
        default=defaults.video.decode_seconds,
        help="decoding time budget per video, wall clock; over it the video gets an error (default: %(default)s)",
    )


def add_video_match_arguments(parser: argparse.ArgumentParser) -> None:
    """When a video matches a known video (``scan``, ``compare``, ``cluster``): vPDQ's thresholds."""
    from ..video_hash import VideoThresholds

    defaults = VideoThresholds()
    group = parser.add_argument_group("video matching (vPDQ)")
    group.add_argument(
        "--video-distance",
        type=int,
        default=defaults.distance,
        help="largest PDQ distance at which two video frames match (default: %(default)s)",
    )
    group.add_argument(
        "--video-quality",
        type=int,
        default=defaults.quality,
        help="video frames of lower PDQ quality are left out of the comparison (default: %(default)s)",
    )
    group.add_argument(
        "--video-query-percent",
        type=float,
        default=defaults.query_percent,
        help="share of the evidence video's frames that must match the known video (default: %(default)s)",
    )
    group.add_argument(
        "--video-compared-percent",
        type=float,
        default=defaults.compared_percent,
        help="share of the known video's frames that must match the evidence video (default: %(default)s)",
    )


def video_thresholds(args: argparse.Namespace) -> VideoThresholds:
    """The ``--video-*`` match thresholds as a :class:`~matcher.video_hash.VideoThresholds`."""
    from ..video_hash import VideoThresholds

    return VideoThresholds(
        distance=args.video_distance,
        quality=args.video_quality,
        query_percent=args.video_query_percent,
        compared_percent=args.video_compared_percent,
    )


def add_workers_argument(parser: argparse.ArgumentParser) -> None:
    """``--workers``/``-j``: worker processes (``hash``, ``scan``, ``cluster``)."""
    parser.add_argument("--workers", "-j", type=positive_int, help="worker processes (default: the number of CPUs)")


def add_quiet_argument(parser: argparse.ArgumentParser) -> None:
    """``--quiet``/``-q`` of a command with progress and a summary (``hash``, ``scan``, ``cluster``)."""
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary on stderr")


def add_view_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """``--trim-borders``, ``--regions`` and ``--insets`` (all on by default), as scan and compare share them;
    ``what`` names what is tried in the help (``each frame``, ``the evidence``)."""
    parser.add_argument(
        "--trim-borders",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"also try {what} with uniform borders (letterbox, pillarbox, padding) trimmed (default: on)",
    )
    parser.add_argument(
        "--regions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"also try the top and bottom 88%% of {what}, matched against the index's region views "
        "(caption banners; default: on)",
    )
    parser.add_argument(
        "--insets",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"also try the pictures embedded in {what} (collage tiles, a picture pasted into a screenshot), "
        "each cut out and matched against the known images (default: on)",
    )


def max_distances(args: argparse.Namespace) -> dict[str, int]:
    """The ``--max-distance ALGO=N`` flags as ``{algorithm name: N}`` (names as the registry spells
    them; an unknown name raises :class:`~matcher.errors.UnknownAlgorithmError`)."""
    from ..algorithms import registry

    return {registry.get(name).name: value for name, value in args.max_distance}


def report_output(args: argparse.Namespace) -> str | None:
    """The report's path, ``None`` for standard output (no ``--output``, or ``-``); standard output
    then writes the characters it cannot encode escaped (:func:`escape_unencodable_stdout`)."""
    if args.output in (None, "-"):
        escape_unencodable_stdout()
        return None
    path: str = args.output
    return path


def hash_options(args: argparse.Namespace) -> HashOptions:
    """The decoding options the ``hash``, ``scan`` and ``cluster`` flags ask for."""
    from ..hashing import HashOptions
    from ..video import VideoOptions

    return HashOptions(
        max_pixels=args.max_pixels,
        max_frames=HashOptions().max_frames if args.max_frames is None else args.max_frames,
        fast=args.fast,
        apply_exif_orientation=args.exif_orientation,
        max_file_bytes=args.max_file_bytes,
        video=VideoOptions(
            fps=args.video_fps,
            max_seconds=args.max_video_seconds,
            decode_seconds=args.video_decode_seconds,
            max_frames=args.max_frames,
        ),
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
