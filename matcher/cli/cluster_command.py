"""``matcher cluster``: group the near-duplicates of an evidence set."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from .common import (
    EXIT_OK,
    add_decode_arguments,
    add_distance_arguments,
    add_force_argument,
    add_quiet_argument,
    add_video_match_arguments,
    add_workers_argument,
    check_evidence_paths,
    exit_line,
    hash_options,
    max_distances,
    positive_int,
    refuse_existing,
    report_output,
    video_thresholds,
)

if TYPE_CHECKING:
    pass


_CLUSTER_EPILOG = """\
Two images are linked when, for any chosen algorithm, one of them (or one of its rotations and flips)
is within the max distance of the other; a group is everything linked, directly or through a chain.
Each group's representative is its member with the most links, then the most pixels, then the first
path. One record per member (largest group first): its distance, algorithm and variant to the
representative, "hops" and "chain" (true: linked to the representative only through other members,
named in "linked_via"). Files that cannot be read or decoded (status "error") and files that are not
images (status "skipped") are reported after the groups, whatever --min-size.

A video is one member. Two videos are linked when they match by vPDQ (with either as the query:
the share of its sampled frames within --video-distance of the other's reaches --video-query-percent
and the other's share reaches --video-compared-percent), never by a few shared frames (a title
card, a logo); "link_video" gives both percentages and the matching frames' timestamps. A video and
an image are linked when any sampled frame of the video is within the max distance of the image.

--local also links images that show one place (the same room, the same background) by local
features: keypoints verified in both directions on one transform (at least 15 inliers, spread over
the shared part; a shared logo, caption band, watermark or interface at the same place is not a
link). Such a link says "link_algorithm": "local", "link_inliers", "link_region" (the shared part
in this image, left, top, right, bottom) and "linked_via_region"; "local_links" lists every place
link of the image. Needs OpenCV (pip install 'perceptual-matcher[local]').

exit codes (the summary's last line says which):
  0    the run completed (whether or not any group was found; per-file errors are in the report)
  2    bad usage or a fatal error (a PATH that does not exist or cannot be read, an --output that
       exists without --force, output not writable or inside an evidence path)
  130  interrupted (Ctrl-C); nothing is written
  141  standard output closed before the report was written (broken pipe): the report is incomplete"""


def add_cluster_parser(sub: Any) -> None:
    """Add ``matcher cluster`` to the command's subparsers."""
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


def _add_cluster_arguments(c: argparse.ArgumentParser) -> None:
    from ..hashing import DEFAULT_ALGORITHMS

    c.add_argument("paths", nargs="+", metavar="PATH", help="evidence files or directories (never written)")
    c.add_argument(
        "--algorithms",
        "-a",
        default=",".join(DEFAULT_ALGORITHMS),
        help="comma-separated algorithms to link by (default: %(default)s)",
    )
    add_distance_arguments(c, "that links two images", "link")
    c.add_argument("--format", "-f", choices=["jsonl", "csv"], default="jsonl", help="report format (default: jsonl)")
    c.add_argument(
        "--output", "-o", metavar="FILE", help="write the report here, once complete (default: standard output)"
    )
    add_force_argument(c)
    c.add_argument(
        "--min-size",
        type=positive_int,
        default=1,
        metavar="N",
        help="report only groups of at least N images (default: 1, every image); "
        "errors and skipped files are always reported",
    )
    c.add_argument(
        "--local",
        action="store_true",
        help="also link images that show one place (same room, same background) by local features "
        "verified both ways (needs OpenCV)",
    )
    add_workers_argument(c)
    add_decode_arguments(c)
    add_video_match_arguments(c)
    add_quiet_argument(c)
    c.set_defaults(handler=_cmd_cluster)


def _cmd_cluster(args: argparse.Namespace) -> int:
    check_evidence_paths(args.paths)
    from ..cluster import ClusterProgress, run_cluster
    from ..progress import ProgressReporter

    reporter = ProgressReporter("cluster", quiet=args.quiet)

    def progress(p: ClusterProgress) -> None:
        reporter.update(
            files=p.done,
            total_files=p.total,
            bytes_done=p.bytes_done,
            total_bytes=p.total_bytes,
            errors=p.errors,
            stage="grouping" if p.stage == "grouping" else None,
        )

    output = report_output(args)
    refuse_existing(output, force=args.force)
    with reporter:
        result = run_cluster(
            [os.fsencode(p) for p in args.paths],
            output,
            args.format,
            min_size=args.min_size,
            stream=sys.stdout,
            algorithms=args.algorithms,
            max_distances=max_distances(args),
            rotations=args.rotations,
            workers=args.workers,
            hash_options=hash_options(args),
            progress=None if args.quiet else progress,
            count_first=not args.quiet,
            local=args.local,
            video=video_thresholds(args),
        )
    if not args.quiet:
        hidden = sum(g.size for g in result.groups if g.size < args.min_size)
        print(
            f"matcher cluster: {result.entries} files, {result.hashed} members hashed (an image, a frame of an "
            f"animation or a whole video each) in {result.hashing_seconds:.1f}s, "
            f"grouped in {result.grouping_seconds:.1f}s: {result.multi_groups} groups of 2 or more holding "
            f"{result.hashed - result.singles} members (largest {result.largest if result.multi_groups else 0}), "
            f"{result.singles} single, {result.errors} errors, {result.skipped} skipped"
            + (f", {result.place_links} place links" if result.local else "")
            + (f"; {hidden} members in groups under --min-size {args.min_size} not reported" if hidden else ""),
            file=sys.stderr,
        )
        what = "grouping completed (near-duplicate groups are not matches)"
        if result.errors:
            what += (
                f" ({result.errors} file{'s' if result.errors != 1 else ''} could not be read or decoded: status error)"
            )
        print(exit_line(EXIT_OK, what), file=sys.stderr)
    return EXIT_OK
