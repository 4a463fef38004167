"""``matcher compare``: what a scan decides for one evidence file against one known image, and why."""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

from ..errors import HashFormatError, UsageError
from .common import (
    EXIT_MATCH,
    EXIT_OK,
    add_decode_arguments,
    add_distance_arguments,
    add_video_match_arguments,
    add_view_arguments,
    hash_options,
    max_distances,
    video_thresholds,
)

if TYPE_CHECKING:
    from ..hashes import Hash


def add_compare_parser(sub: Any) -> None:
    """Add ``matcher compare`` to the command's subparsers."""
    sub.add_parser(
        "compare",
        help="would a scan match EVIDENCE against KNOWN, and why (not)",
        description="Runs the scan's own matching of EVIDENCE against an index holding only KNOWN (hashed as "
        "`matcher index add` hashes it, views included; a temporary index, removed afterwards) and explains the "
        "decision: the scan's result, the best pair of views and its distance, and why it matched or not. "
        "KNOWN and EVIDENCE are image or video files or hashes written HEX or ALGORITHM:HEX (a hash has no views). "
        "Exit 1 when the scan would match, 0 when not, 2 on an error.",
        populate=_add_compare_arguments,
    )


def _add_compare_arguments(c: argparse.ArgumentParser) -> None:
    c.add_argument("known", metavar="KNOWN", help="the known image file, or its hash")
    c.add_argument("evidence", metavar="EVIDENCE", help="the evidence file (never written), or its hash")
    c.add_argument("--algorithms", "-a", help="comma-separated algorithms (default: pdq, or the hash's)")
    add_distance_arguments(c, "counted as a match", "match")
    add_view_arguments(c, "the evidence")
    c.add_argument(
        "--local",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also look for the known image inside the evidence by local features, as a scan does for frames "
        "no hash matched (default: on when OpenCV is installed)",
    )
    add_decode_arguments(c)
    add_video_match_arguments(c)
    c.add_argument("--json", action="store_true", help="print JSON (keys in the README)")
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
    from ..compare import compare, format_table

    algorithms = [a.name for a in registry.resolve(args.algorithms)] if args.algorithms else None
    comparison = compare(
        _compare_input(args.known, algorithms),
        _compare_input(args.evidence, algorithms),
        algorithms,
        rotations=args.rotations,
        trim_borders=args.trim_borders,
        regions=args.regions,
        insets=args.insets,
        max_distances=max_distances(args) or None,
        options=hash_options(args),
        video=video_thresholds(args),
        local=args.local,
    )
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2))
    else:
        print(format_table(comparison))
    return EXIT_MATCH if comparison.match else EXIT_OK
