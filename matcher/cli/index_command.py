"""``matcher index``: create, add to, remove from, inspect, query, export and split indexes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import HashFormatError, UsageError
from .common import EXIT_MATCH, EXIT_OK, add_force_argument, open_output, positive_int

#: Warnings of one kind printed by ``index add`` before the rest are only counted.
_WARNINGS_SHOWN = 10

if TYPE_CHECKING:
    from ..hashes import Hash


def add_index_parser(sub: Any) -> None:
    """Add ``matcher index`` and its actions to the command's subparsers."""
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
    from ..formats.registry import format_names

    a.add_argument("index", metavar="INDEX")
    a.add_argument("sources", nargs="+", metavar="SOURCE")
    a.add_argument(
        "--list",
        dest="list_name",
        help="list (source set) name for every record (default: the list each record names in a matcher "
        "export, else the first SOURCE's file name)",
    )
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
    a.add_argument(
        "--local",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="for images, also store local features (ORB keypoints, about 8.8 KB an image) so that scans "
        "find the image inside crops, screenshots and collages (default: on when OpenCV is installed)",
    )
    a.add_argument("--quiet", "-q", action="store_true", help="no progress, problem lines or summary on stderr")
    a.add_argument("--workers", "-j", type=positive_int, help="processes hashing images (default: the number of CPUs)")
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
    q.add_argument("--max-distance", type=int, help="largest distance counted as a match (default: the algorithm's)")
    q.add_argument(
        "--nearest",
        type=positive_int,
        metavar="K",
        help="the K nearest records instead, each marked within_max_distance or not (only those within "
        "count as matches for the exit status)",
    )
    q.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    add_force_argument(q)
    q.set_defaults(handler=_cmd_index_query)


def _add_index_export_arguments(e: argparse.ArgumentParser) -> None:
    from ..formats.registry import formats

    e.add_argument("index", metavar="INDEX")
    writable = [f.name for f in formats() if f.can_write]
    e.add_argument("--format", default="matcher-jsonl", choices=writable, help="(default: %(default)s)")
    e.add_argument("--list", dest="list_name", help="only this list")
    e.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    add_force_argument(e)
    e.set_defaults(handler=_cmd_index_export)


def _add_index_split_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("index", metavar="INDEX")
    p.add_argument("target", metavar="TARGET", help="new or empty directory for the shards")
    p.add_argument("--shards", "-n", type=positive_int, required=True, help="number of shards")
    p.set_defaults(handler=_cmd_index_split)


def _cmd_index_create(args: argparse.Namespace) -> int:
    from ..algorithms import registry
    from ..index import KnownIndex

    algorithms = [a.name for a in registry.resolve(args.algorithms)]
    with KnownIndex.create(args.index, algorithms) as index:
        if not args.quiet:
            print(f"created {index.path} ({', '.join(index.algorithms)})", file=sys.stderr)
    return EXIT_OK


def _cmd_index_add(args: argparse.Namespace) -> int:
    from ..hashing import HashProgress
    from ..index import KnownIndex
    from ..index.importing import import_sources
    from ..known import ImportProblem
    from ..progress import ProgressReporter

    list_name = args.list_name or os.path.basename(os.path.normpath(args.sources[0]))
    reporter = ProgressReporter("index add", quiet=args.quiet)
    before, current = [0, 0, 0], [0, 0, 0]  # files, bytes, errors of the runs of image sources hashed
    warnings = 0

    def problem(p: ImportProblem) -> None:
        if not args.quiet:
            reporter.note(f"matcher: skipped {p}")

    def warning(p: ImportProblem) -> None:
        nonlocal warnings
        warnings += 1
        if not args.quiet and warnings <= _WARNINGS_SHOWN:
            reporter.note(f"matcher: warning: {p}")

    def progress(n: int) -> None:
        reporter.update(records=n)

    def hash_progress(p: HashProgress) -> None:
        if p.files == 0:  # a new run of image sources: what the earlier ones hashed stays counted
            before[:] = [b + c for b, c in zip(before, current, strict=True)]
        current[:] = [p.files, p.bytes_done, p.errors]
        reporter.update(
            files=before[0] + p.files,
            bytes_done=before[1] + p.bytes_done,
            total_files=None if p.total is None else before[0] + p.total,
            total_bytes=None if p.total_bytes is None else before[1] + p.total_bytes,
            errors=before[2] + p.errors,
        )

    with KnownIndex.open(args.index, writable=True) as index, reporter:
        summary = import_sources(
            index,
            args.sources,
            list_name=list_name,
            category=args.category,
            format=args.format,
            strict=args.strict,
            views=args.views,
            local=args.local,
            on_problem=problem,
            on_warning=warning,
            record_lists=not args.list_name,
            progress=progress,
            workers=args.workers,
            hash_progress=hash_progress,
        )
    if warnings > _WARNINGS_SHOWN and not args.quiet:
        print(f"matcher: warning: {warnings - _WARNINGS_SHOWN} more like these", file=sys.stderr)
    lists = ", ".join(repr(name) for name in summary.lists or (list_name,))
    reporter.summary(
        f"list{'s' if len(summary.lists) > 1 else ''} {lists}: added {summary.added}, "
        f"duplicates {summary.duplicates}, empty {summary.empty}, "
        f"zero-length content digests skipped {summary.empty_digests}, problems skipped {summary.problems}; "
        f"{before[0] + current[0]} files hashed in {reporter.elapsed():.1f}s"
    )
    return EXIT_OK


def _cmd_index_remove(args: argparse.Namespace) -> int:
    if not args.list_name and not args.ids:
        raise UsageError("name --list NAME or --id ID... to remove")
    from ..index import KnownIndex
    from ..index.store import unknown_list_message

    with KnownIndex.open(args.index, writable=True) as index:
        if args.list_name:  # checked before anything is removed, as remove_records checks its ids
            lists = index.lists()
            if args.list_name not in lists:
                raise UsageError(unknown_list_message(index.path, args.list_name, lists))
        removed = index.remove_records(args.ids) if args.ids else 0
        removed += index.remove_list(args.list_name) if args.list_name else 0
    if not args.quiet:
        print(f"removed {removed} records", file=sys.stderr)
    return EXIT_OK


def _cmd_index_info(args: argparse.Namespace) -> int:
    from ..index import open_any

    with open_any(args.index) as index:
        info = index.info()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return EXIT_OK
    if info.get("sharded"):
        source = info.get("source", {})
        print(
            f"sharded index {args.index}: format {info['format_version']}, {len(info['shards'])} shards, "
            f"{info['records']} records, {info['size_on_disk']} bytes on disk; split from "
            f"{source.get('path')} generation {source.get('generation')} (read-only)"
        )
    else:
        print(
            f"index {args.index}: format {info['format_version']}, generation {info['generation']}, "
            f"{info['records']} records, {info['size_on_disk']} bytes on disk"
        )
    for name, algo in info["algorithms"].items():
        print(f"  {name}: {algo['count']} hashes ({algo['searchable']} searchable)")
        for view, counts in sorted(info.get("views", {}).get(name, {}).items()):
            print(f"    view {view}: {counts['count']} hashes ({counts['searchable']} searchable)")
    local = info.get("local") or {}
    print(
        f"  local features: {local.get('records', 0)} images, {local.get('keypoints', 0)} keypoints, "
        f"{local.get('bytes', 0)} bytes"
    )
    for name, lst in info["lists"].items():
        print(f"  list {name!r}: {lst['records']} records")
    for shard in info.get("shards", ()):
        print(f"  shard {shard['name']}: {shard['records']} records (ids {shard['first_id']}-{shard['last_id']})")
    return EXIT_OK


def _query_hashes(args: argparse.Namespace) -> Iterator[tuple[str, Hash | None, str | None]]:
    """(text, hash or None, error) for every query given, in order; malformed ones keep their place.

    A query is ``HEX``, ``HEX,QUALITY[,...]`` (the reference hasher's CSV) or ``ALGORITHM HEX``.
    """
    from ..algorithms import registry

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
    from ..algorithms import registry
    from ..index import open_any

    limit = registry.get(args.algorithm).default_max_distance if args.max_distance is None else args.max_distance
    matched = False
    with open_any(args.index) as index, open_output(args.output, [], force=args.force) as out:
        batch: list[tuple[str, Hash | None, str | None]] = []

        def flush() -> None:
            nonlocal matched
            good = [h for _, h, _ in batch if h is not None]
            if args.nearest:
                results = iter(index.nearest(good, args.nearest))
            else:
                results = iter(index.search(good, limit))
            for text, h, error in batch:
                if h is None:
                    line = {"query": text, "algorithm": args.algorithm, "max_distance": limit, "matches": []}
                    out.write(json.dumps({**line, "skipped": None, "error": error}) + "\n")
                    continue
                result = next(results).to_dict()
                for match in result["matches"]:
                    match["within_max_distance"] = match["distance"] <= limit
                    matched = matched or match["within_max_distance"]
                out.write(json.dumps({**result, "max_distance": limit, "error": None}) + "\n")
            batch.clear()

        for item in _query_hashes(args):
            batch.append(item)
            if len(batch) >= 10_000:
                flush()
        flush()
    return EXIT_MATCH if matched else EXIT_OK


def _cmd_index_split(args: argparse.Namespace) -> int:
    from ..index.shards import split_index

    shards = split_index(args.index, args.target, args.shards)
    if not args.quiet:
        print(f"split {args.index} into {len(shards)} shards under {args.target}", file=sys.stderr)
    return EXIT_OK


def _cmd_index_export(args: argparse.Namespace) -> int:
    from ..formats.registry import write_records
    from ..index import open_any

    with open_any(args.index) as index:
        local = int((index.info().get("local") or {}).get("records", 0))
        records = (r.to_known() for r in index.iter_records(args.list_name))  # an unknown list fails here
        with open_output(args.output, [], force=args.force) as out:
            count = write_records(records, out, args.format)
    if not args.quiet:
        print(f"exported {count} records", file=sys.stderr)
        if local:
            print(
                f"matcher: note: local features ({local} images) are not exported (hash lists carry none); "
                "add the images themselves to an index to keep them",
                file=sys.stderr,
            )
    return EXIT_OK
