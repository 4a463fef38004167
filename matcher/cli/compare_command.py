"""``matcher compare``: explain the distances between two images or hashes."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

from ..errors import HashFormatError, UsageError
from .common import EXIT_MATCH, EXIT_OK, algorithm_distance

if TYPE_CHECKING:
    from ..hashes import Hash


def add_compare_parser(sub: Any) -> None:
    """Add ``matcher compare`` to the command's subparsers."""
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
        type=algorithm_distance,
        action="append",
        default=[],
        metavar="ALGO=N",
        help="override a threshold",
    )
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(handler=_cmd_compare)


def _compare_input(text: str, algorithms: list[str] | None) -> str | Hash:
    """A path when it exists, else a hash written ``HEX`` or ``ALGORITHM:HEX``."""
    from ..algorithms import registry

    if os.path.exists(text):
        return text
    name, _, hex_text = text.rpartition(":")
    name = name or (algorithms[0] if algorithms else "pdq")
    try:
        return registry.hash_from_hex(name, hex_text)
    except HashFormatError as exc:
        raise UsageError(f"{text!r} is neither an existing file nor a hash ({exc})") from None


def _cmd_compare(args: argparse.Namespace) -> int:
    from ..algorithms import registry
    from ..compare import compare, comparisons_to_dict, format_table

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
