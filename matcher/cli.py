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
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from .errors import HashFormatError, MatcherError, UsageError

if TYPE_CHECKING:
    from .hashes import Hash
    from .hashing import HashOptions

EXIT_OK = 0
EXIT_MATCH = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage already; keep its messages, prefixed with the program name.

    ``populate``: called once with the parser before its first parse or help, to add its arguments
    (a subcommand's arguments are added only when that subcommand is used).
    """

    def __init__(self, *args: Any, populate: Callable[[_Parser], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._populate = populate

    def populated(self) -> _Parser:
        """This parser with its arguments added."""
        populate, self._populate = self._populate, None
        if populate is not None:
            populate(self)
        return self

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        return super(_Parser, self.populated()).parse_known_args(args, namespace)

    def format_usage(self) -> str:
        return super(_Parser, self.populated()).format_usage()

    def format_help(self) -> str:
        return super(_Parser, self.populated()).format_help()


class _Version(argparse.Action):
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
        from .version import __version__

        print(f"matcher {__version__}")
        parser.exit()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``matcher`` command (a subcommand's arguments are added when it is used)."""
    parser = _Parser(prog="matcher", description="Perceptual image-hash matching.")
    parser.add_argument("--version", action=_Version)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and per-file problems to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sub.add_parser(
        "hash",
        help="hash image files and directories",
        description="Hash files and directories (walked recursively; symlinks inside them are not followed). "
        "One record per file, and per frame of animated or multi-page images.",
        populate=_add_hash_arguments,
    )
    _add_index_parser(sub)
    _add_compare_parser(sub)
    _add_scan_parser(sub)
    _add_cluster_parser(sub)
    return parser


def _add_hash_arguments(h: argparse.ArgumentParser) -> None:
    from .algorithms import registry
    from .formats.records import WRITERS
    from .hashing import DEFAULT_ALGORITHMS, HashOptions

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
    h.add_argument("--fast", action="store_true", help="decode JPEGs at reduced scale where the algorithms allow")
    h.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=defaults.max_pixels,
        help="pixel limit per frame (default: %(default)s)",
    )
    h.add_argument(
        "--max-frames",
        type=_positive_int,
        default=defaults.max_frames,
        help="frames hashed per file (default: %(default)s)",
    )
    h.add_argument(
        "--max-file-bytes",
        type=_positive_int,
        default=defaults.max_file_bytes,
        help="larger image files are digested but not decoded (default: %(default)s)",
    )
    h.add_argument(
        "--exif-orientation", action="store_true", help="apply EXIF orientation before hashing (default: stored pixels)"
    )
    h.set_defaults(handler=_cmd_hash)


def _add_index_parser(sub: Any) -> None:
    sub.add_parser(
        "index",
        help="build and query a known-material index",
        description="Known-material indexes.",
        populate=_add_index_actions,
    )


def _add_index_actions(ix: argparse.ArgumentParser) -> None:
    isub = ix.add_subparsers(dest="index_command", metavar="ACTION")
    isub.required = True
    isub.add_parser("create", help="create an empty index directory", populate=_add_index_create_arguments)
    isub.add_parser(
        "add",
        help="add hash lists, images or image folders",
        description="Add SOURCEs under one list in one atomic commit. A SOURCE is a hash-list file "
        "(format detected from its content) or an image file or folder (hashed with the index's algorithms).",
        populate=_add_index_add_arguments,
    )
    isub.add_parser("remove", help="remove a list or records", populate=_add_index_remove_arguments)
    isub.add_parser(
        "info", help="counts per algorithm and list, format version, size on disk", populate=_add_index_info_arguments
    )
    isub.add_parser(
        "query",
        help="look up hashes given as hex",
        description="One JSON line per query hash: its matches nearest first. Exit 1 when any query matched.",
        populate=_add_index_query_arguments,
    )
    isub.add_parser("export", help="write the records as a hash list", populate=_add_index_export_arguments)
    isub.add_parser(
        "split",
        help="split an index by record into N shard indexes (for sets beyond one machine's memory)",
        description="Write TARGET/shard-000 ... (each a normal index holding a contiguous range of INDEX's "
        "records, with their hashes, digests, metadata and view codes) and TARGET/shards.json. TARGET "
        "can then be given wherever an index is read (matcher scan --index TARGET); answers are exactly "
        "those of INDEX, with the same record ids. INDEX is only read.",
        populate=_add_index_split_arguments,
    )


def _add_index_create_arguments(c: argparse.ArgumentParser) -> None:
    c.add_argument("index", metavar="INDEX")
    c.add_argument("--algorithms", "-a", default="pdq", help="algorithms to index (default: %(default)s)")
    c.set_defaults(handler=_cmd_index_create)


def _add_index_add_arguments(a: argparse.ArgumentParser) -> None:
    from .formats.registry import format_names

    a.add_argument("index", metavar="INDEX")
    a.add_argument("sources", nargs="+", metavar="SOURCE")
    a.add_argument("--list", dest="list_name", help="list (source set) name (default: the first SOURCE's file name)")
    a.add_argument("--category", type=int, help="category for every record (overrides the sources' own)")
    a.add_argument(
        "--format", default="auto", choices=["auto", *format_names()], help="hash-list format (default: auto)"
    )
    a.add_argument("--strict", action="store_true", help="refuse the whole import at the first malformed entry")
    a.add_argument(
        "--views",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="for images, also store view hashes (trimmed borders, top/bottom 88%%, crops, +-4 degree "
        "rotations) so that cropped, padded, captioned and slightly rotated copies match (default: on)",
    )
    a.add_argument("--quiet", "-q", action="store_true", help="no progress or problem lines on stderr")
    a.set_defaults(handler=_cmd_index_add)


def _add_index_remove_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("index", metavar="INDEX")
    r.add_argument("--list", dest="list_name", help="remove every record of this list")
    r.add_argument("--id", dest="ids", type=int, nargs="+", metavar="ID", help="remove these record ids")
    r.set_defaults(handler=_cmd_index_remove)


def _add_index_info_arguments(i: argparse.ArgumentParser) -> None:
    i.add_argument("index", metavar="INDEX")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(handler=_cmd_index_info)


def _add_index_query_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument("index", metavar="INDEX")
    q.add_argument("hashes", nargs="*", metavar="HEX")
    q.add_argument("--input", "-i", metavar="FILE", help="read hashes from FILE, one per line ('-': stdin)")
    q.add_argument("--algorithm", default="pdq", help="algorithm of the hashes (default: %(default)s)")
    q.add_argument("--max-distance", type=int, help="largest distance counted (default: the algorithm's)")
    q.add_argument("--nearest", type=_positive_int, metavar="K", help="the K nearest records instead")
    q.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    q.set_defaults(handler=_cmd_index_query)


def _add_index_export_arguments(e: argparse.ArgumentParser) -> None:
    from .formats.registry import formats

    e.add_argument("index", metavar="INDEX")
    writable = [f.name for f in formats() if f.can_write]
    e.add_argument("--format", default="matcher-jsonl", choices=writable, help="(default: %(default)s)")
    e.add_argument("--list", dest="list_name", help="only this list")
    e.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    e.set_defaults(handler=_cmd_index_export)


def _add_index_split_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("index", metavar="INDEX")
    p.add_argument("target", metavar="TARGET", help="new or empty directory for the shards")
    p.add_argument("--shards", "-n", type=_positive_int, required=True, help="number of shards")
    p.set_defaults(handler=_cmd_index_split)


def _cmd_index_create(args: argparse.Namespace) -> int:
    from .algorithms import registry
    from .index import KnownIndex

    algorithms = [a.name for a in registry.resolve(args.algorithms)]
    with KnownIndex.create(args.index, algorithms) as index:
        print(f"created {index.path} ({', '.join(index.algorithms)})", file=sys.stderr)
    return EXIT_OK


def _cmd_index_add(args: argparse.Namespace) -> int:
    from .index import KnownIndex
    from .index.importing import import_sources
    from .known import ImportProblem

    list_name = args.list_name or os.path.basename(os.path.normpath(args.sources[0]))
    tty = sys.stderr.isatty() and not args.quiet

    def problem(p: ImportProblem) -> None:
        if not args.quiet:
            print(f"matcher: skipped {p}", file=sys.stderr)

    def progress(n: int) -> None:
        if tty:
            print(f"\rread {n} records", end="", file=sys.stderr, flush=True)

    with KnownIndex.open(args.index, writable=True) as index:
        summary = import_sources(
            index,
            args.sources,
            list_name=list_name,
            category=args.category,
            format=args.format,
            strict=args.strict,
            views=args.views,
            on_problem=problem,
            progress=progress,
        )
    if tty:
        print(file=sys.stderr)
    print(
        f"list {list_name!r}: added {summary.added}, duplicates {summary.duplicates}, "
        f"empty {summary.empty}, problems skipped {summary.problems}",
        file=sys.stderr,
    )
    return EXIT_OK


def _cmd_index_remove(args: argparse.Namespace) -> int:
    if not args.list_name and not args.ids:
        raise UsageError("name --list NAME or --id ID... to remove")
    from .index import KnownIndex

    with KnownIndex.open(args.index, writable=True) as index:
        removed = index.remove_list(args.list_name) if args.list_name else 0
        removed += index.remove_records(args.ids) if args.ids else 0
    print(f"removed {removed} records", file=sys.stderr)
    return EXIT_OK


def _cmd_index_info(args: argparse.Namespace) -> int:
    from .index import KnownIndex

    with KnownIndex.open(args.index) as index:
        info = index.info()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return EXIT_OK
    print(
        f"index {args.index}: format {info['format_version']}, generation {info['generation']}, "
        f"{info['records']} records, {info['size_on_disk']} bytes on disk"
    )
    for name, algo in info["algorithms"].items():
        print(f"  {name}: {algo['count']} hashes ({algo['searchable']} searchable)")
        for view, counts in sorted(info.get("views", {}).get(name, {}).items()):
            print(f"    view {view}: {counts['count']} hashes ({counts['searchable']} searchable)")
    for name, lst in info["lists"].items():
        print(f"  list {name!r}: {lst['records']} records")
    return EXIT_OK


def _query_hashes(args: argparse.Namespace) -> Iterator[tuple[str, Hash | None, str | None]]:
    """(text, hash or None, error) for every query given, in order; malformed ones keep their place.

    A query is ``HEX``, ``HEX,QUALITY[,...]`` (the reference hasher's CSV) or ``ALGORITHM HEX``.
    """
    from .algorithms import registry

    texts: Iterable[str] = args.hashes
    if args.input:
        stream = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8-sig", errors="replace")
        texts = [*texts, *(line.strip() for line in stream)]
    for text in texts:
        if not text or text.startswith("#"):
            continue
        words = text.split(",")
        hex_text = words[0].split()[-1] if words[0].strip() else ""
        quality = int(words[1]) if len(words) > 1 and words[1].strip().isdigit() else None
        try:
            yield text, registry.hash_from_hex(args.algorithm, hex_text, quality), None
        except HashFormatError as exc:
            yield text, None, str(exc)


def _cmd_index_query(args: argparse.Namespace) -> int:
    if not args.hashes and not args.input:
        raise UsageError("give hashes as arguments or --input FILE")
    from .algorithms import registry
    from .index import KnownIndex

    registry.get(args.algorithm)
    matched = False
    with KnownIndex.open(args.index) as index, _open_output(args.output, []) as out:
        batch: list[tuple[str, Hash | None, str | None]] = []

        def flush() -> None:
            nonlocal matched
            good = [h for _, h, _ in batch if h is not None]
            if args.nearest:
                results = iter(index.nearest(good, args.nearest))
            else:
                results = iter(index.search(good, args.max_distance))
            for text, h, error in batch:
                if h is None:
                    out.write(
                        json.dumps(
                            {"query": text, "algorithm": args.algorithm, "matches": [], "skipped": None, "error": error}
                        )
                        + "\n"
                    )
                    continue
                result = next(results).to_dict()
                matched = matched or bool(result["matches"])
                out.write(json.dumps({**result, "error": None}) + "\n")
            batch.clear()

        for item in _query_hashes(args):
            batch.append(item)
            if len(batch) >= 10_000:
                flush()
        flush()
    return EXIT_MATCH if matched else EXIT_OK


def _cmd_index_split(args: argparse.Namespace) -> int:
    from .index.shards import split_index

    shards = split_index(args.index, args.target, args.shards)
    print(f"split {args.index} into {len(shards)} shards under {args.target}", file=sys.stderr)
    return EXIT_OK


def _cmd_index_export(args: argparse.Namespace) -> int:
    from .formats.registry import write_records
    from .index import KnownIndex

    with KnownIndex.open(args.index) as index, _open_output(args.output, []) as out:
        records = (r.to_known() for r in index.iter_records(args.list_name))
        count = write_records(records, out, args.format)
    print(f"exported {count} records", file=sys.stderr)
    return EXIT_OK


def _escape_unencodable_stdout() -> None:
    """Characters standard output cannot encode (in file names, say) are written escaped, not fatal."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        with contextlib.suppress(ValueError):
            sys.stdout.reconfigure(errors="backslashreplace")


@contextlib.contextmanager
def _open_output(path: str | None, evidence: Sequence[str]) -> Iterator[TextIO]:
    if path is None or path == "-":
        _escape_unencodable_stdout()
        yield sys.stdout
        return
    from .files import path_inside

    root = path_inside(path, evidence)
    if root is not None:
        raise MatcherError(f"output {path!r} is inside the evidence path {root!r}; matcher never writes there")
    try:
        stream = open(path, "w", encoding="utf-8", errors="backslashreplace", newline="")
    except OSError as exc:
        raise MatcherError(f"cannot write output {path!r}: {exc.strerror or exc}") from None
    with stream:
        yield stream


def _add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    """The decoding flags of the commands that walk evidence (``scan``, ``cluster``)."""
    from .hashing import HashOptions

    defaults = HashOptions()
    parser.add_argument(
        "--fast",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="decode JPEGs at reduced scale where the algorithms allow (default: off)",
    )
    parser.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=defaults.max_pixels,
        help="pixel limit per frame (default: %(default)s)",
    )
    parser.add_argument(
        "--max-frames",
        type=_positive_int,
        default=defaults.max_frames,
        help="frames hashed per file (default: %(default)s)",
    )
    parser.add_argument(
        "--max-file-bytes",
        type=_positive_int,
        default=defaults.max_file_bytes,
        help="larger image files are digested but not decoded; each worker holds up to about "
        "twice this while decoding (default: %(default)s)",
    )
    parser.add_argument(
        "--exif-orientation",
        action="store_true",
        help="apply EXIF orientation before hashing (default: the stored pixels, as reference hash sets)",
    )


def _hash_options(args: argparse.Namespace) -> HashOptions:
    """The decoding options the ``hash``, ``scan`` and ``cluster`` flags ask for."""
    from .hashing import HashOptions

    return HashOptions(
        max_pixels=args.max_pixels,
        max_frames=args.max_frames,
        fast=args.fast,
        apply_exif_orientation=args.exif_orientation,
        max_file_bytes=args.max_file_bytes,
    )


def _cmd_hash(args: argparse.Namespace) -> int:
    from .algorithms import registry
    from .formats.records import WRITERS
    from .hashing import hash_paths

    algorithms = [a.name for a in registry.resolve(args.algorithms)]
    options = _hash_options(args)
    paths = [os.fsencode(p) for p in args.paths]
    with _open_output(args.output, args.paths) as stream:
        writer = WRITERS[args.format](stream, algorithms)
        writer.write_all(hash_paths(paths, algorithms, options=options))
        writer.close()
    return EXIT_OK


_SCAN_EPILOG = """\
exit codes:
  0  the scan completed and nothing matched
  1  the scan completed and at least one record has status "match"
  2  bad usage or a fatal error (index unreadable, output not writable or inside an evidence path,
     an interrupted scan's journal present without --resume, --resume with different parameters)
Files that cannot be read or decoded are in the report with status "error" and do not change the code.

An interrupted scan (even killed) continues with --resume and the same arguments; the report is
written only when the scan completes, beside a run manifest FILE.manifest.json."""


def _algorithm_distance(text: str) -> tuple[str, int]:
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


def _add_scan_parser(sub: Any) -> None:
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
    _add_distance_arguments(s, "counted as a match", "match")
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
    s.add_argument("--workers", "-j", type=_positive_int, help="worker processes (default: the number of CPUs)")
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
    _add_decode_arguments(s)
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
    from .algorithms import registry
    from .scan import ScanOptions, ScanProgress, run_scan

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
        hash_options=_hash_options(args),
    )
    show = not args.quiet and sys.stderr.isatty()

    def progress(p: ScanProgress) -> None:
        fresh = p.done - p.resumed
        rate = fresh / p.elapsed if p.elapsed > 0 else 0.0
        text = f"\rscanned {p.done}" + (f"/{p.total}" if p.total is not None else "") + f" files, {rate:.1f}/s"
        if p.total is not None and rate > 0:
            text += f", about {max(0.0, (p.total - p.done) / rate):.0f}s left"
        print(text + "   ", end="", file=sys.stderr, flush=True)

    output = None if args.output in (None, "-") else args.output
    if output is None:
        _escape_unencodable_stdout()
    summary = run_scan(
        [os.fsencode(p) for p in args.paths],
        args.index,
        options,
        output,
        args.format,
        args.resume,
        manifest_path=args.manifest,
        stream=sys.stdout,
        progress=progress if show else None,
        count_first=show,
        case=_case_fields(args.case),
    )
    if show:
        print(file=sys.stderr)
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


_CLUSTER_EPILOG = """\
Two images are linked when, for any chosen algorithm, one of them (or one of its rotations and flips)
is within the max distance of the other; a group is everything linked, directly or through a chain.
Each group's representative is its member with the most links, then the most pixels, then the first
path. One record per member (largest group first): its distance, algorithm and variant to the
representative, "hops" and "chain" (true: linked to the representative only through other members,
named in "linked_via"). Files that cannot be read or decoded (status "error") and files that are not
images (status "skipped") are reported after the groups, whatever --min-size.

exit codes:
  0  the run completed (whether or not any group was found; per-file errors are in the report)
  2  bad usage or a fatal error (output not writable or inside an evidence path)"""


def _add_cluster_parser(sub: Any) -> None:
    sub.add_parser(
        "cluster",
        help="group the images of an evidence set into near-duplicate groups",
        description="Walk PATHs (symlinks inside them are never followed, FIFOs and devices never opened), read "
        "every file once read-only, hash every image (and frame) with its rotations and flips, and group "
        "near-duplicates using the index search (never all pairs).",
        epilog=_CLUSTER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        populate=_add_cluster_arguments,
    )


def _add_distance_arguments(parser: argparse.ArgumentParser, counted: str, verb: str) -> None:
    """``--max-distance ALGO=N`` and ``--rotations``, as scan and cluster share them."""
    parser.add_argument(
        "--max-distance",
        type=_algorithm_distance,
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


def _add_cluster_arguments(c: argparse.ArgumentParser) -> None:
    from .hashing import DEFAULT_ALGORITHMS

    c.add_argument("paths", nargs="+", metavar="PATH", help="evidence files or directories (never written)")
    c.add_argument(
        "--algorithms",
        "-a",
        default=",".join(DEFAULT_ALGORITHMS),
        help="comma-separated algorithms to link by (default: %(default)s)",
    )
    _add_distance_arguments(c, "that links two images", "link")
    c.add_argument("--format", "-f", choices=["jsonl", "csv"], default="jsonl", help="report format (default: jsonl)")
    c.add_argument(
        "--output", "-o", metavar="FILE", help="write the report here, once complete (default: standard output)"
    )
    c.add_argument(
        "--min-size",
        type=_positive_int,
        default=1,
        metavar="N",
        help="report only groups of at least N images (default: 1, every image); "
        "errors and skipped files are always reported",
    )
    c.add_argument("--workers", "-j", type=_positive_int, help="worker processes (default: the number of CPUs)")
    _add_decode_arguments(c)
    c.add_argument("--quiet", "-q", action="store_true", help="no progress and no summary on stderr")
    c.set_defaults(handler=_cmd_cluster)


def _cmd_cluster(args: argparse.Namespace) -> int:
    from .algorithms import registry
    from .cluster import ClusterProgress, run_cluster

    show = not args.quiet and sys.stderr.isatty()

    def progress(p: ClusterProgress) -> None:
        if p.stage == "grouping":
            print(f"\rhashed {p.done} files in {p.elapsed:.0f}s; grouping...   ", end="", file=sys.stderr, flush=True)
            return
        rate = p.done / p.elapsed if p.elapsed > 0 else 0.0
        print(f"\rhashed {p.done} files, {rate:.1f}/s   ", end="", file=sys.stderr, flush=True)

    output = None if args.output in (None, "-") else args.output
    if output is None:
        _escape_unencodable_stdout()
    result = run_cluster(
        [os.fsencode(p) for p in args.paths],
        output,
        args.format,
        min_size=args.min_size,
        stream=sys.stdout,
        algorithms=args.algorithms,
        max_distances={registry.get(name).name: value for name, value in args.max_distance},
        rotations=args.rotations,
        workers=args.workers,
        hash_options=_hash_options(args),
        progress=progress if show else None,
    )
    if show:
        print(file=sys.stderr)
    if not args.quiet:
        hidden = sum(g.size for g in result.groups if g.size < args.min_size)
        print(
            f"matcher cluster: {result.entries} files, {result.hashed} images hashed in {result.hashing_seconds:.1f}s, "
            f"grouped in {result.grouping_seconds:.1f}s: {result.multi_groups} groups of 2 or more holding "
            f"{result.hashed - result.singles} images (largest {result.largest if result.multi_groups else 0}), "
            f"{result.singles} single, {result.errors} errors, {result.skipped} skipped"
            + (f"; {hidden} images in groups under --min-size {args.min_size} not reported" if hidden else ""),
            file=sys.stderr,
        )
    return EXIT_OK


def _add_compare_parser(sub: Any) -> None:
    sub.add_parser(
        "compare",
        help="distance between two images, or an image and a hash",
        description="Distances per algorithm and variant between A (known) and B (evidence), and whether each "
        "counts as a match. A and B are image files or hashes written HEX or ALGORITHM:HEX. Exit 1 when any "
        "comparison is a match, 0 when none is.",
        populate=_add_compare_arguments,
    )


def _add_compare_arguments(c: argparse.ArgumentParser) -> None:
    c.add_argument("a", metavar="A")
    c.add_argument("b", metavar="B")
    c.add_argument("--algorithms", "-a", help="comma-separated algorithms (default: pdq, or the hash's)")
    c.add_argument("--no-rotations", dest="rotations", action="store_false", help="compare B as it is only")
    c.add_argument(
        "--max-distance",
        type=_algorithm_distance,
        action="append",
        default=[],
        metavar="ALGO=N",
        help="override a threshold",
    )
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(handler=_cmd_compare)


def _compare_input(text: str, algorithms: list[str] | None) -> str | Hash:
    """A path when it exists, else a hash written ``HEX`` or ``ALGORITHM:HEX``."""
    from .algorithms import registry

    if os.path.exists(text):
        return text
    name, _, hex_text = text.rpartition(":")
    name = name or (algorithms[0] if algorithms else "pdq")
    try:
        return registry.hash_from_hex(name, hex_text)
    except HashFormatError as exc:
        raise UsageError(f"{text!r} is neither an existing file nor a hash ({exc})") from None


def _cmd_compare(args: argparse.Namespace) -> int:
    from .algorithms import registry
    from .compare import compare, comparisons_to_dict, format_table

    algorithms = [a.name for a in registry.resolve(args.algorithms)] if args.algorithms else None
    comparisons = compare(
        _compare_input(args.a, algorithms),
        _compare_input(args.b, algorithms),
        algorithms,
        rotations=args.rotations,
        max_distances={registry.get(name).name: value for name, value in args.max_distance} or None,
    )
    if args.json:
        print(json.dumps(comparisons_to_dict(comparisons), indent=2))
    else:
        print(format_table(comparisons))
    return EXIT_MATCH if any(c.is_match for c in comparisons) else EXIT_OK


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
