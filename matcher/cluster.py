"""Near-duplicate groups of an evidence set: the library behind ``matcher cluster``.

Three entry points:

* :func:`cluster_paths` walks files and directories, hashes every image (every frame of animated and
  multi-page ones) with its rotations and flips and every video's sampled frames, and groups them.
  It walks, reads and decodes as the scan does (same walk, one read-only read per file, same
  decoding options), and hashes the eight dihedral variants of
  :func:`matcher.variants.variant_hashes`; with ``workers > 1`` it hashes in a pool of worker
  processes (forkserver), the only processes it starts, shut down before it returns.
* :func:`cluster_hashes` groups hashes computed already (:class:`ClusterItem` values, or
  ``(key, {variant: Hash})`` pairs); it starts no process.
* :func:`run_cluster` is the driver behind ``matcher cluster``: :func:`cluster_paths`, then the
  report (:func:`write_cluster_report`) to a file, written whole or not at all, or to a stream.

The rule
--------
Two items (images, or frames of animations; videos: see Videos) are *linked* when, for any chosen
algorithm, a variant of one (its hash after undoing a rotation or flip, ``orig`` included; ``orig``
only without rotations) is within that algorithm's maximum distance (``<=``; default the algorithm's
``default_max_distance``, PDQ 31) of the other's ``orig`` hash: the match rule of the scan, with one
image as the evidence and the other as the known image. An item whose hash has a quality below its
algorithm's minimum (PDQ: 50) is not linked by that algorithm, and says so in its ``notes``. A
*group* is a connected component of the links: a chain A~B~C puts A and C in one group even when A
and C are far apart.

Links are found with the index's exact search, never by comparing all pairs: per algorithm, one
:class:`~matcher.index.search.AlgorithmTable` over the distinct ``orig`` hashes of the items it may
link, range-searched with every variant hash as a query, in batches: multi-index hashing from 2,000
codes (an index waits for 20,000, as it answers a few queries at a time; clustering asks eight per
code), FAISS flat below; both exact.
Items whose hashes are bit-identical in every variant (copies of one file, mostly) are searched once.
Groups come from a union-find over the links. Time and memory grow with the number of items and of
linked pairs: a group of ``k`` near-identical but not bit-identical images holds about ``k * k / 2``
pairs.

The representative and the distances
------------------------------------
Each group's *representative* is its member with the most links (distinct members within the
maximum distance), then the most pixels, then the first by path (then frame). Every member gets its
distance to the representative, computed directly whatever it is: the smallest over the chosen
algorithms (as a share of the hash length; ties: the algorithms' order) and variants (ties:
``orig``, ``rot90``, ... in :data:`~matcher.variants.VARIANT_NAMES` order), both ways round,
preferring a distance that counts as a link. ``variant`` says how the member is transformed
relative to the representative (``rot90``: the member is the representative rotated 90° counter-
clockwise; ``flipy``: mirrored), as in scan matches. ``hops`` is the number of links on the shortest
chain to the representative; a member with ``hops >= 2`` is not itself within the maximum distance of
the representative and is flagged ``chain``. ``linked_via`` names the member one step nearer the
representative on such a chain (the nearest one when several are), with that link's distance,
algorithm and variant (how this member is transformed relative to that one).

Videos
------
A video is one item (:attr:`ClusterItem.video_frames`: its sampled frames; its own hashes are its
representative frame's) and one member of the result, never one member per frame. Its frames are
searched, not linked one by one:

* **two videos** are linked when they match by the vPDQ rule of the scan
  (:func:`matcher.video_hash.compare` with the ``video``
  :class:`~matcher.video_hash.VideoThresholds`, vPDQ's by default): the share of one's comparable
  frames within the distance of a frame of the other reaches ``query_percent`` and the other's share
  reaches ``compared_percent``, with either video as the query (a clip of a longer video is linked
  to it), the query's frames as they are or with their borders trimmed (a letterboxed copy is
  linked), as a scan compares an evidence video. Candidate pairs come from one range search of every
  video's comparable frames against all of them; a few shared frames (a title card, a logo intro)
  never link two videos. Needs ``pdq`` among the algorithms. The link has ``link_algorithm``
  :data:`VIDEO_LINK`, the nearest frame pair's distance, ``orig``;
* **a video and an image** are linked when any sampled frame (of at least the algorithm's minimum
  quality), as it is or with its borders trimmed, is within the algorithm's distance of a variant of
  the image (the rule for images; video frames are not tried rotated), found by range-searching a
  table of every video frame with the images' variant hashes; ``linked_via_frame`` of an image
  linked via a video is the video's nearest frame.

A link that involves a video says so in the member's ``link_video`` (the percentages of two
videos, the timestamps of each side's matching frames). The distance to the representative of a
video, or of an image whose representative is a video, is the nearest frame's (two videos: the
nearest PDQ frame pair, algorithm ``vpdq``). Videos get no place links (``local``).

Places (``local=True``)
-----------------------
Every frame's local features are extracted too (:data:`~matcher.local_features.QUERY_PARAMS`), and
frames that show one place (the same room, the same background, whatever is in front) are linked
by :func:`matcher.places.place_links`: candidate pairs from a vote over the set's descriptors in a
FAISS binary index, each verified in both directions (see :mod:`matcher.places` for the rule, which
refuses regions that unrelated images share: logos, caption bands, watermarks, interfaces). Place
links join the hash links as a last kind of link (``link_algorithm`` ``"local"``): groups, chains
and representatives count them; a chain prefers a hash link where both exist. Each member says the
inliers and the regions of its link (``link_inliers``, ``link_region``, ``linked_via_region``) and
lists all its place links (``local_links``). Found on the first item of each set of bit-identical
items (copies of one file share their links).

What each file gets
-------------------
Every entry the walk meets is in the result. An image frame, or a video, that was hashed is a
member of a group (``status`` ``grouped``, or ``single`` in a group of one); a video cut by a limit
or broken part way is a member with the frames sampled before it, and its error is a record of its
own (as in the scan). A file that could not be read, decoded or
hashed has ``status`` ``error`` and its ``error``; a file that is not an image, a symbolic link
(never followed), a FIFO, socket or device (never opened) has ``status`` ``skipped`` and a note
saying what it is. Those have no group.
"""

from __future__ import annotations

import collections
import csv
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

import numpy as np
from numba import njit

from . import allocator, batch, files
from .algorithms import Algorithm, registry
from .errors import HashFormatError, MatcherError, UsageError
from .file_facts import FileFacts
from .formats.records import csv_safe
from .hashes import Hash, code_matrix
from .hashing import DEFAULT_ALGORITHMS
from .index.mih import MultiIndex
from .index.search import MIH_QUERY_CHUNK, AlgorithmTable, range_search
from .local_features import QUERY_PARAMS, LocalFeatures, LocalFeaturesUnavailableError
from .pipeline import EntryFeatures, FeatureRequest, HashOptions, read_entry, with_changed
from .places import PlaceLink, place_links
from .variants import INVERSE, VARIANT_NAMES
from .video_hash import VideoComparison, VideoThresholds, VpdqFeature, comparable_frames, representative
from .video_hash import compare as compare_videos
from .video_hash import distances as frame_distances
from .views import TRIM_VIEW

__all__ = [
    "ClusterItem",
    "ClusterVideoFrame",
    "VIDEO_LINK",
    "ClusterMember",
    "PlaceNeighbour",
    "ClusterGroup",
    "ClusterResult",
    "ClusterProgress",
    "cluster_paths",
    "cluster_hashes",
    "run_cluster",
    "write_cluster_report",
    "CLUSTER_FORMATS",
    "MEMBER_STATUSES",
]

log = logging.getLogger(__name__)

#: Report formats of :func:`write_cluster_report`.
CLUSTER_FORMATS: tuple[str, ...] = ("jsonl", "csv")
#: What a member's ``status`` can be.
MEMBER_STATUSES: tuple[str, ...] = ("grouped", "single", "error", "skipped")
#: The ``algorithm`` / ``link_algorithm`` of a link between two videos by the vPDQ rule.
VIDEO_LINK = "vpdq"

_VARIANTS = len(VARIANT_NAMES)
_VARIANT_INDEX = {name: i for i, name in enumerate(VARIANT_NAMES)}
# index of the inverse of each variant (rot90 <-> rot270; the others are their own inverse)
_INVERSE_INDEX = np.array([_VARIANT_INDEX[INVERSE.get(name, name)] for name in VARIANT_NAMES], dtype=np.int64)
# Entries sent to a worker at a time, and chunks in flight per worker.
_CHUNK = 4
_WINDOW_PER_WORKER = 2
# Nodes whose distances to their representative are computed at a time (bounds the temporaries).
_DISTANCE_CHUNK = 16_384
# Codes from which a table is searched with multi-index hashing (the index's own floor is higher: it
# answers a few queries at a time, where clustering asks eight per code).
_MIH_FROM = 2_000

# --------------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True)
class ClusterVideoFrame:
    """One sampled frame of a video item: its ``frame`` number, ``timestamp`` (seconds),
    ``hashes`` (``{algorithm: Hash}``, the frame as it is: video frames are not tried rotated) and
    ``trimmed`` (``{algorithm: Hash}`` of the frame with its uniform borders trimmed, when it has
    borders: a letterbox)."""

    frame: int
    timestamp: float
    hashes: Mapping[str, Hash]
    trimmed: Mapping[str, Hash] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClusterItem(FileFacts):
    """One image, or one frame of a multi-frame image, to be grouped, and what is known of its file.

    ``path`` is the file's path as text (or, for :func:`cluster_hashes`, any key naming the item);
    ``hashes`` maps algorithm names to ``{variant: Hash}``, where ``orig`` is the item's own hash and
    the other :data:`~matcher.variants.VARIANT_NAMES` the hashes of the item with that rotation or
    flip undone (an item without ``orig`` for an algorithm is not grouped by it). An item with no
    ``orig`` hash of any chosen algorithm is not grouped: it is reported with ``status`` ``error``
    when ``error`` is set, else ``skipped`` (``notes`` say why). The file fields are those of
    :class:`~matcher.file_facts.FileFacts`, as in :class:`~matcher.hashing.HashRecord` (``None`` where
    unknown; only ``path`` positional). ``local``: the item's local features (extracted with
    :data:`~matcher.local_features.QUERY_PARAMS`), which link places when clustering with
    ``local=True``; results keep none (they are dropped once the links are found).

    A *video* is one item whose ``video_frames`` are its sampled frames (in frame order) and whose
    ``hashes`` are those of its representative frame (the highest PDQ quality, the earliest of
    those), ``frame`` ``None``: it is linked to another video by the vPDQ rule, to an image when
    any of its frames is within the distance of the image (module documentation).
    """

    hashes: Mapping[str, Mapping[str, Hash]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    local: LocalFeatures | None = field(default=None, compare=False)
    video_frames: tuple[ClusterVideoFrame, ...] = ()

    @property
    def is_video(self) -> bool:
        """Whether the item is a video (it has sampled frames)."""
        return bool(self.video_frames)

    def vpdq(self) -> tuple[VpdqFeature, ...]:
        """The video's frames that have a PDQ hash, as vPDQ features (none for an image)."""
        return tuple(VpdqFeature(f.frame, f.hashes["pdq"], f.timestamp) for f in self.video_frames if "pdq" in f.hashes)

    def frame_hashes(self, algorithm: str) -> list[Hash]:
        """Every sampled frame's hash of ``algorithm``, as it is and with its borders trimmed."""
        return [
            value
            for f in self.video_frames
            for value in (f.hashes.get(algorithm), f.trimmed.get(algorithm))
            if value is not None
        ]

    def vpdq_views(self) -> dict[int, list[Hash]]:
        """Frame number -> the frame's further PDQ hashes (its borders trimmed), as
        :func:`matcher.video_hash.compare` takes a query's views."""
        return {f.frame: [f.trimmed["pdq"]] for f in self.video_frames if "pdq" in f.trimmed}

    def orig(self, algorithm: str) -> Hash | None:
        """The item's own (``orig``) hash of ``algorithm``, if it has one."""
        variants = self.hashes.get(algorithm)
        return None if variants is None else variants.get("orig")

    @property
    def pdq_quality(self) -> int | None:
        """The quality of the item's PDQ hash (``None`` without one)."""
        pdq = self.orig("pdq")
        return None if pdq is None else pdq.quality


@dataclass(frozen=True, slots=True)
class PlaceNeighbour:
    """A place link of a member (``local=True``): the other item (``path``, ``frame``), the link's
    ``inliers`` (the smaller count of the two directions), ``region`` (``left, top, right,
    bottom`` in this member's pixels: the part of it the other shows too) and ``other_region``
    (the same in the other's pixels)."""

    path: str | None
    frame: int | None
    inliers: int
    region: tuple[int, int, int, int]
    other_region: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "path": self.path,
            "frame": self.frame,
            "inliers": self.inliers,
            "region": list(self.region),
            "other_region": list(self.other_region),
        }


@dataclass(frozen=True, slots=True)
class ClusterMember:
    """One item in the result: its group and how it relates to the group's representative.

    ``group`` is the group's number (1 = the largest) and ``group_size`` its member count; both are
    ``None`` for an item that could not be grouped (``status`` ``error`` or ``skipped``). ``status``
    is one of :data:`MEMBER_STATUSES`. ``distance``/``algorithm``/``variant``/``max_distance``: the
    nearest comparison with the representative (``variant``: how this member is transformed relative
    to it); ``distance`` is ``None`` when the two share no algorithm. ``hops``: links on the shortest
    chain to the representative (0 for the representative itself); ``chain``: ``hops >= 2``, i.e. the
    member is in the group only through other members. ``linked_via`` / ``linked_via_frame``: the
    member one link nearer the representative, with ``link_distance``, ``link_algorithm`` and
    ``link_variant`` of that link. ``notes``: why a hash was not linked (low quality), or what a
    skipped entry is. With local features (``local=True``) a link may be a place link
    (``link_algorithm`` ``"local"``, no distance or variant): ``link_inliers``, ``link_region``
    (where, in this member, the part shown by ``linked_via`` lies) and ``linked_via_region`` (the
    same in ``linked_via``) say what was verified; ``local_links`` lists every place link of the
    member (:class:`PlaceNeighbour`). ``link_video``: when the link to ``linked_via`` involves a
    video, ``query_percent`` / ``compared_percent`` (two videos: the share of this member's frames
    matched by ``linked_via``'s and the other way round; ``None`` for a video and an image),
    ``timestamps`` (this member's matching frames; ``None`` for an image) and
    ``linked_via_timestamps`` (``linked_via``'s).
    """

    item: ClusterItem
    status: str
    group: int | None = None
    group_size: int | None = None
    representative: bool = False
    distance: int | None = None
    algorithm: str | None = None
    variant: str | None = None
    max_distance: int | None = None
    hops: int | None = None
    linked_via: str | None = None
    linked_via_frame: int | None = None
    link_distance: int | None = None
    link_algorithm: str | None = None
    link_variant: str | None = None
    notes: tuple[str, ...] = ()
    link_inliers: int | None = None
    link_region: tuple[int, int, int, int] | None = None
    linked_via_region: tuple[int, int, int, int] | None = None
    local_links: tuple[PlaceNeighbour, ...] = ()
    link_video: Mapping[str, Any] | None = None

    @property
    def path(self) -> str | None:
        """The item's path (or key)."""
        return self.item.path

    @property
    def frame(self) -> int | None:
        """The item's frame (``None`` for a still image)."""
        return self.item.frame

    @property
    def chain(self) -> bool:
        """Whether the member is linked to the representative only through other members."""
        return self.hops is not None and self.hops >= 2

    def to_dict(self, algorithms: Iterable[str] = (), *, local: bool = False) -> dict[str, Any]:
        """A flat, JSON-ready dict: the report's columns, in order (see :func:`write_cluster_report`).

        ``algorithms`` names the hash columns (hex of each algorithm's ``orig`` hash) every record has
        (default: the item's algorithms). ``video`` (``{"frames_sampled": n}`` for a video, else
        ``None``) and ``link_video`` (see the class) follow ``link_variant``. ``local``: add the
        place-link columns ``link_inliers``, ``link_region``, ``linked_via_region`` and
        ``local_links`` (after ``link_video``).
        """
        item = self.item
        out: dict[str, Any] = {
            "group": self.group,
            "group_size": self.group_size,
            "status": self.status,
            "representative": self.representative,
            "path": item.path,
            "frame": item.frame,
            "distance_to_representative": self.distance,
            "algorithm": self.algorithm,
            "variant": self.variant,
            "max_distance": self.max_distance,
            "chain": None if self.hops is None else self.chain,
            "hops": self.hops,
            "linked_via": self.linked_via,
            "linked_via_frame": self.linked_via_frame,
            "link_distance": self.link_distance,
            "link_algorithm": self.link_algorithm,
            "link_variant": self.link_variant,
            "video": {"frames_sampled": len(item.video_frames)} if item.is_video else None,
            "link_video": None if self.link_video is None else dict(self.link_video),
        }
        if local:
            out["link_inliers"] = self.link_inliers
            out["link_region"] = None if self.link_region is None else list(self.link_region)
            out["linked_via_region"] = None if self.linked_via_region is None else list(self.linked_via_region)
            out["local_links"] = [neighbour.to_dict() for neighbour in self.local_links]
        out |= {
            "frame_count": item.frame_count,
            "size": item.size,
            "mime": item.mime,
            "extension_mismatch": item.extension_mismatch,
            "width": item.width,
            "height": item.height,
            "md5": item.md5,
            "sha1": item.sha1,
            "sha256": item.sha256,
        }
        for name in list(algorithms) or list(item.hashes):
            value = item.orig(name)
            out[name] = None if value is None else str(value)
        out["pdq_quality"] = item.pdq_quality
        out["error"] = item.error
        out["notes"] = list(self.notes)
        out["path_raw_hex"] = item.path_raw_hex
        return out


@dataclass(frozen=True, slots=True)
class ClusterGroup:
    """One group: its number (1 = the largest) and its members, the representative first, then by
    distance to it (as a share of the hash length), then by path and frame."""

    number: int
    members: tuple[ClusterMember, ...]

    @property
    def size(self) -> int:
        """Number of members."""
        return len(self.members)

    @property
    def representative(self) -> ClusterMember:
        """The group's representative."""
        return self.members[0]


@dataclass(frozen=True, slots=True)
class ClusterResult:
    """The groups of an evidence set, and the items that could not be grouped.

    ``groups`` holds every hashed item exactly once, groups of one included, ordered by size
    (largest first), then by the representative's path and frame. ``ungrouped`` holds the items with
    ``status`` ``error`` or ``skipped``, in input (walk) order. ``links`` counts the linked pairs of
    items. ``entries`` is the number of walked entries (``None`` for :func:`cluster_hashes`);
    ``hashing_seconds`` and ``grouping_seconds`` the time each stage took. ``local``: whether
    places were linked by local features too, ``place_links`` the place links found (between
    distinct items; they count in ``links``). ``video``: the vPDQ thresholds two videos were linked
    by. Members hold the items
    given to :func:`cluster_hashes` as they were; those of :func:`cluster_paths` keep only their
    ``orig`` hashes (the variant hashes are not kept, to bound memory).
    """

    groups: tuple[ClusterGroup, ...]
    ungrouped: tuple[ClusterMember, ...]
    algorithms: tuple[str, ...]
    max_distances: dict[str, int]
    rotations: bool
    links: int
    entries: int | None = None
    hashing_seconds: float = 0.0
    grouping_seconds: float = 0.0
    local: bool = False
    place_links: int = 0
    video: VideoThresholds = field(default_factory=VideoThresholds)

    def members(self, min_size: int = 1) -> Iterator[ClusterMember]:
        """Every member in report order: the groups of at least ``min_size`` members, then the
        ungrouped items (always)."""
        for group in self.groups:
            if group.size >= min_size:
                yield from group.members
        yield from self.ungrouped

    @property
    def hashed(self) -> int:
        """Items (images, frames of animations, videos) that were hashed and grouped."""
        return sum(group.size for group in self.groups)

    @property
    def multi_groups(self) -> int:
        """Groups of two or more members."""
        return sum(1 for group in self.groups if group.size >= 2)

    @property
    def singles(self) -> int:
        """Items near-duplicate of no other item (groups of one)."""
        return sum(1 for group in self.groups if group.size == 1)

    @property
    def largest(self) -> int:
        """Size of the largest group (0 when nothing was hashed)."""
        return self.groups[0].size if self.groups else 0

    @property
    def errors(self) -> int:
        """Items with ``status`` ``error``."""
        return sum(1 for member in self.ungrouped if member.status == "error")

    @property
    def skipped(self) -> int:
        """Items with ``status`` ``skipped``."""
        return sum(1 for member in self.ungrouped if member.status == "skipped")

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts."""
        return {
            "entries": self.entries,
            "hashed": self.hashed,
            "groups": self.multi_groups,
            "grouped": self.hashed - self.singles,
            "singles": self.singles,
            "largest_group": self.largest,
            "links": self.links,
            "errors": self.errors,
            "skipped": self.skipped,
            "algorithms": list(self.algorithms),
            "max_distances": dict(self.max_distances),
            "rotations": self.rotations,
            "local": self.local,
            "place_links": self.place_links,
            **self.video.to_dict(),
            "hashing_seconds": round(self.hashing_seconds, 3),
            "grouping_seconds": round(self.grouping_seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class ClusterProgress:
    """Progress of :func:`cluster_paths`: ``stage`` (``"hashing"`` or ``"grouping"``), ``done``
    entries walked and hashed so far, ``elapsed`` seconds since the start; ``bytes_done`` the sizes
    of the files done; ``total`` / ``total_bytes`` the entries and bytes of the walk (``None`` unless
    counted first); ``errors`` entries that could not be read, decoded or hashed."""

    stage: str
    done: int
    elapsed: float
    bytes_done: int = 0
    total: int | None = None
    total_bytes: int | None = None
    errors: int = 0


# --------------------------------------------------------------------------------------------------
# The rule's parameters


@dataclass(frozen=True, slots=True)
class _Rule:
    algorithms: tuple[Algorithm, ...]
    max_distances: dict[str, int]
    rotations: bool
    local: bool = False
    video: VideoThresholds = VideoThresholds()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.algorithms)


def _rule(
    algorithms: str | Sequence[str],
    max_distances: Mapping[str, int] | None,
    rotations: bool,
    local: bool = False,
    video: VideoThresholds | None = None,
) -> _Rule:
    chosen = tuple(registry.resolve(algorithms if isinstance(algorithms, str) else list(algorithms)))
    names = [a.name for a in chosen]
    distances: dict[str, int] = {}
    for name, value in dict(max_distances or {}).items():
        algorithm = registry.get(name)
        if algorithm.name not in names:
            raise UsageError(
                f"a max distance is given for {algorithm.name}, which is not used here ({', '.join(names)})"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"max distance of {algorithm.name} must be a non-negative integer, not {value!r}")
        if value > algorithm.bit_length:
            raise UsageError(f"max distance of {algorithm.name} ({value}) exceeds its {algorithm.bit_length} bits")
        distances[algorithm.name] = value
    for algorithm in chosen:
        distances.setdefault(algorithm.name, int(algorithm.default_max_distance))
    if video is not None and not isinstance(video, VideoThresholds):
        raise UsageError(f"video must be VideoThresholds, not {type(video).__name__}")
    return _Rule(
        chosen, {name: distances[name] for name in names}, bool(rotations), bool(local), video or VideoThresholds()
    )


# --------------------------------------------------------------------------------------------------
# Reading and hashing (the scan's reading and decoding, without its index)


class _Hasher:
    """Reads and hashes walked entries into items with their variant hashes (one per worker), through
    :func:`matcher.pipeline.read_entry`: the scan's reading, decoding and dihedral variants."""

    def __init__(self, algorithms: tuple[str, ...], rotations: bool, options: HashOptions, local: bool = False) -> None:
        self.request = FeatureRequest(
            tuple(algorithms),
            variants=rotations,
            local=QUERY_PARAMS if local else None,
            local_video_frames=False,  # a video is one member, linked by the vPDQ rule
            trim_video_frames=True,
        )
        self.options = options

    def entry(self, entry: files.Entry) -> list[ClusterItem]:
        """The items of one walked entry; never raises for a problem of the entry itself."""
        read = read_entry(entry, self.request, self.options)
        if read.skipped or not read.read:
            said = (read.note,) if read.note else ()
            return [
                ClusterItem(path=read.name, size=read.size, error=read.error, notes=said, path_raw_hex=read.raw_hex)
            ]
        facts = read.file_facts()
        notes = tuple(n for n in (read.note, *read.notes) if n)
        if read.media is not None and read.media.is_video:
            items = [_video_item(read, facts)] if read.frames else []
        else:
            items = [
                ClusterItem(
                    **{**facts, "frame": frame.index, "width": frame.width, "height": frame.height},
                    hashes={
                        name: dict(frame.variants[name]) if name in frame.variants else {"orig": value}
                        for name, value in frame.hashes.items()
                    },
                    error=with_changed(None, read.changed),
                    notes=tuple(read.notes),
                    local=frame.descriptors,
                )
                for frame in read.frames
            ]
        if read.error is not None or not read.frames:  # as in the scan: the failure is a record of its own
            items.append(
                ClusterItem(
                    **{**facts, "frame": read.failed_frame}, error=with_changed(read.error, read.changed), notes=notes
                )
            )
        return items


def _video_item(read: EntryFeatures, facts: dict[str, Any]) -> ClusterItem:
    """A video as one item: its sampled frames' hashes in ``video_frames``, its representative
    frame's (:func:`matcher.video_hash.representative`; the first frame without PDQ) as its own."""
    frames = tuple(
        ClusterVideoFrame(
            f.index or 0,
            f.timestamp or 0.0,
            dict(f.hashes),
            {
                name: views[TRIM_VIEW]
                for name, views in f.variants.items()
                if TRIM_VIEW in views and name in f.hashes and views[TRIM_VIEW].bits != f.hashes[name].bits
            },
        )
        for f in read.frames
    )
    item = ClusterItem(
        **{**facts, "frame": None}, error=with_changed(None, read.changed), notes=tuple(read.notes), video_frames=frames
    )
    best = representative(item.vpdq())
    lead = next((f for f in frames if best is not None and f.frame == best.frame), frames[0])
    return replace(item, hashes={name: {"orig": value} for name, value in lead.hashes.items()})


_WORKER: _Hasher | None = None


def _init_worker(
    algorithms: tuple[str, ...], rotations: bool, options: HashOptions, driver: int | None = None, local: bool = False
) -> None:
    """Pool initializer: one hasher per worker process, which exits once ``driver`` (the clustering
    process) is gone, as the scan's workers do."""
    global _WORKER
    allocator.tune_allocator()
    batch.start_watching_driver(driver)
    _WORKER = _Hasher(algorithms, rotations, options, local)


def _hash_chunk(entries: list[files.Entry]) -> list[list[ClusterItem]]:
    """Pool task: the items of a chunk of entries, in order."""
    if _WORKER is None:  # pragma: no cover - the initializer always sets it
        raise MatcherError("cluster worker was not initialised")
    return [_WORKER.entry(entry) for entry in entries]


def _hashed_entries(
    paths: Sequence[Any], rule: _Rule, options: HashOptions, workers: int
) -> Iterator[list[ClusterItem]]:
    """The items of every walked entry, in walk order; parallel with ``workers > 1``."""
    entries = files.walk(list(paths))
    if workers == 1:
        hasher = _Hasher(rule.names, rule.rotations, options, rule.local)
        for entry in entries:
            yield hasher.entry(entry)
        return
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=batch.pool_context(["matcher.cluster"]),
        initializer=_init_worker,
        initargs=(rule.names, rule.rotations, options, os.getpid(), rule.local),
    )
    pending: collections.deque[Future[list[list[ClusterItem]]]] = collections.deque()
    try:
        for chunk in batch.chunks(entries, _CHUNK):
            pending.append(pool.submit(_hash_chunk, chunk))
            if len(pending) >= _WINDOW_PER_WORKER * workers:
                yield from _collect(pending.popleft())
        while pending:
            yield from _collect(pending.popleft())
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _collect(future: Future[list[list[ClusterItem]]]) -> list[list[ClusterItem]]:
    try:
        return future.result()
    except BrokenProcessPool as exc:
        raise MatcherError(f"a cluster worker process died unexpectedly ({exc})") from None


# --------------------------------------------------------------------------------------------------
# Items to arrays


class _Codes:
    """The hashes of the groupable items as arrays, one set per algorithm, filled as items arrive.

    Per algorithm: ``variants`` (n, 8, bytes; zeros where absent; column 0 is ``orig``), ``present``
    (n, 8) bool, ``quality`` (n,) int16 (-1: unknown). With ``strip`` the items kept hold their
    ``orig`` hashes only (the variants live on in the arrays).
    """

    def __init__(self, rule: _Rule, *, strip: bool) -> None:
        self.rule = rule
        self.strip = strip
        self._names = rule.names
        self._width = {a.name: a.bit_length // 8 for a in rule.algorithms}
        self._zero = {a.name: bytes(a.bit_length // 8) for a in rule.algorithms}
        self._wanted = VARIANT_NAMES if rule.rotations else VARIANT_NAMES[:1]
        self._variants = {a.name: bytearray() for a in rule.algorithms}
        self._present = {a.name: bytearray() for a in rule.algorithms}
        self._quality: dict[str, list[int]] = {a.name: [] for a in rule.algorithms}
        self.items: list[ClusterItem] = []
        self.local: list[LocalFeatures | None] = []  # per item, with rule.local

    def add(self, item: ClusterItem) -> bool:
        """Take ``item``'s hashes if it has an ``orig`` hash of a chosen algorithm; returns whether it did."""
        if not isinstance(item, ClusterItem):
            raise UsageError(f"cluster items must be ClusterItem values, not {type(item).__name__}")
        chosen = [item.hashes.get(name) or {} for name in self._names]
        for variants in chosen:
            for variant in variants:
                if variant not in _VARIANT_INDEX:
                    raise UsageError(f"{item.path}: unknown variant {variant!r} (known: {', '.join(VARIANT_NAMES)})")
        if not any("orig" in variants for variants in chosen):
            return False
        kept: dict[str, Mapping[str, Hash]] = {}
        for name, variants in zip(self._names, chosen):
            width, zero = self._width[name], self._zero[name]
            orig = variants.get("orig")
            buf, present = self._variants[name], self._present[name]
            for variant in VARIANT_NAMES:
                value = variants.get(variant) if orig is not None and variant in self._wanted else None
                if value is None:
                    buf += zero
                    present.append(0)
                    continue
                if value.algorithm != name or len(value.bits) != width:
                    raise HashFormatError(
                        f"{item.path}: {variant} hash given as {name} is a {value.bit_length}-bit "
                        f"{value.algorithm} hash; {name} hashes have {width * 8} bits"
                    )
                buf += value.bits
                present.append(1)
            self._quality[name].append(-1 if orig is None or orig.quality is None else int(orig.quality))
            if orig is not None:
                kept[name] = {"orig": orig}
        if self.rule.local:
            self.local.append(item.local)
        self.items.append(replace(item, hashes=kept, local=None) if self.strip else item)
        return True

    def arrays(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(variants, present, quality)`` of one algorithm."""
        n, width = len(self.items), self._width[name]
        variants = np.frombuffer(bytes(self._variants[name]), dtype=np.uint8).reshape(n, _VARIANTS, width)
        present = np.frombuffer(bytes(self._present[name]), dtype=np.uint8).reshape(n, _VARIANTS).astype(bool)
        quality = np.asarray(self._quality[name], dtype=np.int16).reshape(n)
        return variants, present, quality


def _as_item(value: Any) -> ClusterItem:
    if isinstance(value, ClusterItem):
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], Mapping):
        key, variants = value
        algorithms = {h.algorithm for h in variants.values() if isinstance(h, Hash)}
        if len(algorithms) != 1 or not all(isinstance(h, Hash) for h in variants.values()):
            raise UsageError(f"item {key!r}: a (key, {{variant: Hash}}) pair needs Hash values of one algorithm")
        return ClusterItem(path=str(key), hashes={algorithms.pop(): dict(variants)})
    raise UsageError(f"a cluster item is a ClusterItem or a (key, {{variant: Hash}}) pair, not {type(value).__name__}")


# --------------------------------------------------------------------------------------------------
# Graph kernels


@njit(cache=True, nogil=True)
def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Union-find over the pairs ``(a[k], b[k])``: each node's label is the smallest node of its set."""
    parent = np.arange(n)
    for k in range(a.shape[0]):
        x = a[k]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        y = b[k]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x < y:
            parent[y] = x
        elif y < x:
            parent[x] = y
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        x = i
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        labels[i] = x
    return labels


@njit(cache=True, nogil=True)
def _shortest_chains(
    indptr: np.ndarray,
    neighbours: np.ndarray,
    pair_of_edge: np.ndarray,
    pair_keys: np.ndarray,
    sources: np.ndarray,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Breadth-first search from every source at once: each node's depth (-1: not reached) and the
    adjacency entry of its parent, the neighbour one level nearer with the smallest link key (then
    the smallest node)."""
    depth = np.full(n, -1, dtype=np.int64)
    queue = np.empty(n, dtype=np.int64)
    tail = 0
    for s in sources:
        if depth[s] < 0:
            depth[s] = 0
            queue[tail] = s
            tail += 1
    head = 0
    while head < tail:
        x = queue[head]
        head += 1
        for e in range(indptr[x], indptr[x + 1]):
            y = neighbours[e]
            if depth[y] < 0:
                depth[y] = depth[x] + 1
                queue[tail] = y
                tail += 1
    parent_edge = np.full(n, -1, dtype=np.int64)
    for x in range(n):
        if depth[x] <= 0:
            continue
        best = -1
        for e in range(indptr[x], indptr[x + 1]):
            y = neighbours[e]
            if depth[y] != depth[x] - 1:
                continue
            if best < 0:
                best = e
                continue
            key, held = pair_keys[pair_of_edge[e]], pair_keys[pair_of_edge[best]]
            if key < held or (key == held and y < neighbours[best]):
                best = e
        parent_edge[x] = best
    return depth, parent_edge


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits along the last axis of a uint8 array."""
    counts: np.ndarray
    if hasattr(np, "bitwise_count"):
        counts = np.bitwise_count(x).sum(axis=-1, dtype=np.int64)
    else:  # pragma: no cover - numpy < 2
        counts = _BYTE_BITS[x].sum(axis=-1, dtype=np.int64)
    return counts


_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


# --------------------------------------------------------------------------------------------------
# Grouping


@dataclass(slots=True)
class _Outcome:
    """Per-item results of the grouping (arrays over the groupable items)."""

    component: np.ndarray
    representative: np.ndarray  # per item: the item index of its group's representative
    hops: np.ndarray
    parent: np.ndarray  # item index one link nearer the representative, -1 for none
    link_distance: np.ndarray
    link_algorithm: np.ndarray
    link_variant: np.ndarray
    distance: np.ndarray  # to the representative, -1 when the two share no algorithm
    distance_algorithm: np.ndarray
    distance_variant: np.ndarray
    scaled_distance: np.ndarray
    links: int
    node_of: np.ndarray  # per item: its node (items with bit-identical hashes share one)
    place: dict[tuple[int, int], PlaceLink]  # place links between nodes (u < w; in_a: w seen in u)
    video_links: dict[tuple[int, int], _VideoLink]  # links of video nodes (u < w)


def _place_pairs(codes: _Codes, lead_item: np.ndarray) -> dict[tuple[int, int], PlaceLink]:
    """The place links between nodes (``local``): found on each node's first item's features."""
    if not codes.rule.local:
        return {}
    features = [codes.local[i] for i in lead_item.tolist()]
    return {(i, j): link for i, j, link in place_links(features)}


def _search_table(algorithm: Algorithm, ids: np.ndarray, codes: np.ndarray, quality: np.ndarray) -> AlgorithmTable:
    """A table over ``codes`` (every row searchable) for :func:`~matcher.index.search.range_search`,
    with multi-index hashing from :data:`_MIH_FROM` codes."""
    table = AlgorithmTable.build(algorithm.name, algorithm.bit_length, None, ids, codes, quality)
    if table.mih is None and table.searchable >= _MIH_FROM and algorithm.bit_length % 64 == 0:
        # eight queries per code: multi-index hashing beats the flat scan from a few thousand codes
        table = replace(table, mih=MultiIndex.build(np.ascontiguousarray(table.codes)))
    return table


def _links(
    rule: _Rule,
    arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    lead_item: np.ndarray,
    node_eligible: list[np.ndarray],
) -> tuple[np.ndarray, ...]:
    """Every linked pair of nodes once, ``u < w``, with its nearest link: ``(u, w, distance,
    algorithm rank, variant)`` where the variant says how ``u`` is transformed relative to ``w``.

    Per algorithm, a table over the eligible nodes' ``orig`` hashes is range-searched with every
    variant of every eligible node, in batches; hits are kept in compact arrays as they come.
    """
    us: list[np.ndarray] = []
    ws: list[np.ndarray] = []
    dists: list[np.ndarray] = []
    algs: list[np.ndarray] = []
    variants_: list[np.ndarray] = []
    for rank, (algorithm, (variants, present, quality)) in enumerate(zip(rule.algorithms, arrays)):
        node_variants, node_present = variants[lead_item], present[lead_item]
        holders = np.flatnonzero(node_eligible[rank])
        if holders.shape[0] == 0:
            continue
        table = _search_table(
            algorithm,
            holders.astype(np.int64),
            np.ascontiguousarray(node_variants[holders, 0]),
            quality[lead_item][holders].copy(),
        )
        query_nodes, query_variants = np.nonzero(node_present & node_eligible[rank][:, None])
        limit = rule.max_distances[algorithm.name]
        for start in range(0, query_nodes.shape[0], MIH_QUERY_CHUNK):
            qn, qv = query_nodes[start : start + MIH_QUERY_CHUNK], query_variants[start : start + MIH_QUERY_CHUNK]
            owners, hits, distances = range_search(table, node_variants[qn, qv], limit)
            queried, variant = qn[owners], qv[owners]
            keep = queried != hits
            queried, hits, distances, variant = queried[keep], hits[keep], distances[keep], variant[keep]
            # "queried is variant v of hit" is "hit is inverse(v) of queried": store with u < w
            swap = queried > hits
            us.append(np.where(swap, hits, queried).astype(np.int32))
            ws.append(np.where(swap, queried, hits).astype(np.int32))
            dists.append(distances.astype(np.int16))
            algs.append(np.full(queried.shape[0], rank, dtype=np.int8))
            variants_.append(np.where(swap, _INVERSE_INDEX[variant], variant).astype(np.int8))
    if not us:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, empty
    u, w = np.concatenate(us).astype(np.int64), np.concatenate(ws).astype(np.int64)
    del us, ws
    dist, alg, var = np.concatenate(dists), np.concatenate(algs), np.concatenate(variants_)
    scale_base = math.lcm(*(a.bit_length for a in rule.algorithms))
    scale = np.array([scale_base // a.bit_length for a in rule.algorithms], dtype=np.int64)
    key = ((dist.astype(np.int64) * scale[alg]) << 16) | (alg.astype(np.int64) << 8) | var
    pair = u * int(lead_item.shape[0]) + w
    order = np.lexsort((key, pair))  # each pair's nearest link first
    del key
    pair = pair[order]
    first = np.ones(pair.shape[0], dtype=bool)
    first[1:] = pair[1:] != pair[:-1]
    keep = order[first]
    return (u[keep], w[keep], dist[keep].astype(np.int64), alg[keep].astype(np.int64), var[keep].astype(np.int64))


@dataclass(slots=True)
class _VideoLink:
    """A link between nodes ``u < w`` of which one or both are videos: its nearest frame pair's
    ``key`` (ordered as the other links'), ``distance``, algorithm ``rank`` (the vPDQ rank for two
    videos), ``variant`` (how ``u`` is transformed relative to ``w``), the frames of each side that
    matched (``(number, timestamp)``; ``None`` for an image), each side's frame nearest the other,
    and for two videos the comparisons with ``u`` and with ``w`` as the query (``comparisons``)."""

    key: int
    distance: int
    rank: int
    variant: int
    frames_u: set[tuple[int, float]] | None
    frames_w: set[tuple[int, float]] | None
    nearest_u: int | None = None
    nearest_w: int | None = None
    comparisons: tuple[VideoComparison, VideoComparison] | None = None

    def seen_from(self, is_u: bool) -> dict[str, Any]:
        """The member's ``link_video``, the member being ``u`` (``is_u``) or ``w``: for two videos,
        the comparison with the member as the query."""
        if self.comparisons is not None:
            mine = self.comparisons[0 if is_u else 1]
            return {
                "query_percent": round(mine.query_percent, 2),
                "compared_percent": round(mine.compared_percent, 2),
                "timestamps": [round(t, 3) for t in mine.matched_timestamps],
                "linked_via_timestamps": [round(t, 3) for t in mine.compared_timestamps],
            }
        own, other = (self.frames_u, self.frames_w) if is_u else (self.frames_w, self.frames_u)
        return {
            "query_percent": None,
            "compared_percent": None,
            "timestamps": None if own is None else [round(t, 3) for _, t in sorted(own)],
            "linked_via_timestamps": None if other is None else [round(t, 3) for _, t in sorted(other)],
        }

    def nearest(self, is_u: bool) -> int | None:
        """The frame of ``u`` (``is_u``) or of ``w`` nearest the other side (``None``: an image)."""
        return self.nearest_u if is_u else self.nearest_w


def _video_frame_links(
    rule: _Rule,
    arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    items: Sequence[ClusterItem],
    lead_item: np.ndarray,
    video_nodes: list[int],
    hash_eligible: list[np.ndarray],
    scale: np.ndarray,
    links: dict[tuple[int, int], _VideoLink],
) -> None:
    """Links between images and videos: an image node is linked to a video when one of its variant
    hashes is within the algorithm's distance of any sampled frame, as it is or with its borders
    trimmed (of at least the algorithm's minimum quality), found by range-searching a table of every
    video frame with the images' variants."""
    for rank, algorithm in enumerate(rule.algorithms):
        name, quality_floor = algorithm.name, algorithm.min_quality
        row_node: list[int] = []
        row_frame: list[tuple[int, float]] = []
        row_bits: list[bytes] = []
        for node in video_nodes:
            for frame in items[int(lead_item[node])].video_frames:
                for value in (frame.hashes.get(name), frame.trimmed.get(name)):  # as it is, borders trimmed
                    if value is None or (
                        quality_floor is not None and value.quality is not None and value.quality < quality_floor
                    ):
                        continue
                    row_node.append(node)
                    row_frame.append((frame.frame, frame.timestamp))
                    row_bits.append(value.bits)
        variants, present, _ = arrays[rank]
        query_nodes, query_variants = np.nonzero(present[lead_item] & hash_eligible[rank][:, None])
        if not row_bits or query_nodes.shape[0] == 0:
            continue
        codes = code_matrix(row_bits, algorithm.bit_length // 8)
        table = _search_table(
            algorithm, np.arange(len(row_bits), dtype=np.int64), codes, np.full(len(row_bits), -1, dtype=np.int16)
        )
        for start in range(0, query_nodes.shape[0], MIH_QUERY_CHUNK):
            qn, qv = query_nodes[start : start + MIH_QUERY_CHUNK], query_variants[start : start + MIH_QUERY_CHUNK]
            owners, hits, distances = range_search(table, variants[lead_item[qn], qv], rule.max_distances[name])
            for owner, hit, gap in zip(owners.tolist(), hits.tolist(), distances.tolist()):
                image, variant, video = int(qn[owner]), int(qv[owner]), row_node[hit]
                frame = row_frame[hit]
                # the image's variant v matched the frame: the image is v of the video
                u, w, var = (image, video, variant) if image < video else (video, image, int(_INVERSE_INDEX[variant]))
                key = ((gap * int(scale[rank])) << 16) | (rank << 8) | var
                link = links.get((u, w))
                nearer = link is None or key < link.key
                if link is None:
                    link = links[(u, w)] = _VideoLink(
                        key, gap, rank, var, None if u == image else set(), None if w == image else set()
                    )
                if nearer:
                    link.key, link.distance, link.rank, link.variant = key, gap, rank, var
                    if u == video:
                        link.nearest_u = frame[0]
                    else:
                        link.nearest_w = frame[0]
                side = link.frames_u if u == video else link.frames_w
                if side is not None:
                    side.add(frame)


def _video_pair_links(
    rule: _Rule,
    items: Sequence[ClusterItem],
    lead_item: np.ndarray,
    video_nodes: list[int],
    scale: np.ndarray,
    links: dict[tuple[int, int], _VideoLink],
) -> None:
    """Links between two videos by the vPDQ rule: :func:`matcher.video_hash.compare` passes with one
    of them as the query (its frames as they are or with their borders trimmed, as a scan compares
    an evidence video) against the other.

    Candidate pairs come from one range search of every video's comparable frames
    (:func:`~matcher.video_hash.comparable_frames`, with their trimmed views) against all the
    comparable frames; a pair is compared only when, one way round, the shares of the query's
    frames with a hit and of the other's frames hit could reach the thresholds (those hits are what
    the comparison counts), so videos that share a few frames (a title card, a logo) cost one
    search, not a comparison."""
    if "pdq" not in rule.names or len(video_nodes) < 2:
        return
    thresholds = rule.video
    pdq = registry.get("pdq")
    videos = {node: items[int(lead_item[node])] for node in video_nodes}
    features = {node: video.vpdq() for node, video in videos.items()}
    views = {node: video.vpdq_views() for node, video in videos.items()}
    kept = {node: comparable_frames(features[node], thresholds.quality) for node in video_nodes}
    row_node = np.array([node for node in video_nodes for _ in kept[node]], dtype=np.int64)
    if row_node.shape[0] == 0:
        return
    codes = code_matrix((f.hash.bits for node in video_nodes for f in kept[node]), 32)
    # the queries: each comparable frame (its row) and its trimmed views, as compare() counts them
    extra_row: list[int] = []
    extra_bits: list[bytes] = []
    row = 0
    for node in video_nodes:
        for feature in kept[node]:
            for extra in views[node].get(feature.frame, ()):
                if extra.quality is None or extra.quality >= thresholds.quality:
                    extra_row.append(row)
                    extra_bits.append(extra.bits)
            row += 1
    query_row = np.concatenate([np.arange(row_node.shape[0], dtype=np.int64), np.asarray(extra_row, dtype=np.int64)])
    queries = np.concatenate([codes, code_matrix(extra_bits, 32)])
    table = _search_table(
        pdq, np.arange(row_node.shape[0], dtype=np.int64), codes, np.full(row_node.shape[0], -1, dtype=np.int16)
    )
    owners, hits, _distances = range_search(table, queries, thresholds.distance)
    asked = query_row[owners]
    apart = row_node[asked] != row_node[hits]
    asked, hits = asked[apart], hits[apart]
    # with A's frames as the query against B: A's frames with a hit, and B's frames hit, each once
    asking = np.unique(np.stack([asked, row_node[hits]], axis=1), axis=0)
    hit = np.unique(np.stack([row_node[asked], hits], axis=1), axis=0)
    query_hits = collections.Counter(zip(row_node[asking[:, 0]].tolist(), asking[:, 1].tolist()))
    compared_hits = collections.Counter(zip(hit[:, 0].tolist(), row_node[hit[:, 1]].tolist()))

    def could_pass(a: int, b: int) -> bool:
        return (
            100.0 * query_hits.get((a, b), 0) / len(kept[a]) >= thresholds.query_percent
            and 100.0 * compared_hits.get((a, b), 0) / len(kept[b]) >= thresholds.compared_percent
        )

    rank = len(rule.algorithms) + 1
    pdq_scale = int(scale[rule.names.index("pdq")])
    for a, b in sorted({(min(a, b), max(a, b)) for a, b in query_hits}):
        if not (could_pass(a, b) or could_pass(b, a)):
            continue
        forward = compare_videos(features[a], features[b], thresholds, views[a])
        backward = compare_videos(features[b], features[a], thresholds, views[b])
        if not (forward.matches(thresholds) or backward.matches(thresholds)):
            continue
        gap = min(int(forward.best_distance or 0), int(backward.best_distance or 0))
        links[(a, b)] = _VideoLink(
            ((gap * pdq_scale) << 16) | (rank << 8), gap, rank, 0, None, None, comparisons=(forward, backward)
        )


def _video_links(
    rule: _Rule,
    arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    items: Sequence[ClusterItem],
    lead_item: np.ndarray,
    node_is_video: np.ndarray,
    hash_eligible: list[np.ndarray],
    scale: np.ndarray,
) -> dict[tuple[int, int], _VideoLink]:
    """Every link of a video node, by node pair ``(u, w)``, ``u < w``: with images (any frame) and
    with other videos (vPDQ)."""
    links: dict[tuple[int, int], _VideoLink] = {}
    video_nodes = np.flatnonzero(node_is_video).tolist()
    if video_nodes:
        _video_frame_links(rule, arrays, items, lead_item, video_nodes, hash_eligible, scale, links)
        _video_pair_links(rule, items, lead_item, video_nodes, scale, links)
    return links


def _group(codes: _Codes) -> _Outcome:
    rule = codes.rule
    items = codes.items
    n = len(items)
    algos = rule.algorithms
    scale_base = math.lcm(*(a.bit_length for a in algos))
    scale = np.array([scale_base // a.bit_length for a in algos], dtype=np.int64)
    arrays = [codes.arrays(a.name) for a in algos]
    eligible = []
    for algorithm, (_, present, quality) in zip(algos, arrays):
        ok = present[:, 0].copy()
        if algorithm.min_quality is not None:
            ok &= (quality < 0) | (quality >= algorithm.min_quality)
        eligible.append(ok)

    # Items with bit-identical hashes (every algorithm, every variant) are one node of the graph; a
    # video is a node of its own (its links depend on all its frames, not on its representative's).
    is_video = np.array([item.is_video for item in items], dtype=bool)
    video_tag = np.where(is_video, np.arange(n, dtype=np.int64) + 1, 0).astype("<i8").view(np.uint8).reshape(n, 8)
    signature = np.concatenate(
        [
            *(
                np.concatenate(
                    [present.astype(np.uint8), ok[:, None].astype(np.uint8), variants.reshape(n, -1)], axis=1
                )
                for (variants, present, _), ok in zip(arrays, eligible)
            ),
            video_tag,
        ],
        axis=1,
    )
    signature = np.ascontiguousarray(signature)
    void = signature.view(np.dtype((np.void, signature.shape[1]))).ravel()
    _, first, inverse = np.unique(void, return_index=True, return_inverse=True)
    renumber = np.empty(first.shape[0], dtype=np.int64)
    by_first = np.argsort(first, kind="stable")
    renumber[by_first] = np.arange(first.shape[0])
    node_of = renumber[inverse.ravel()]
    lead_item = first[by_first]  # the first item of each node (input order)
    m = lead_item.shape[0]
    multiplicity = np.bincount(node_of, minlength=m)
    node_eligible = [ok[lead_item] for ok in eligible]
    node_is_video = is_video[lead_item]
    any_eligible = node_is_video.copy()
    for ok in node_eligible:
        any_eligible |= ok
    hash_eligible = [ok & ~node_is_video for ok in node_eligible]  # videos are linked by their frames

    # Links between nodes (each pair once), then the adjacency both ways round for the chains.
    pair_u, pair_w, pair_dist, pair_alg, pair_var = _links(rule, arrays, lead_item, hash_eligible)
    video_links = _video_links(rule, arrays, items, lead_item, node_is_video, hash_eligible, scale)
    if video_links:
        more = np.array(
            [(u, w, link.distance, link.rank, link.variant) for (u, w), link in video_links.items()], dtype=np.int64
        )
        pair_u, pair_w = np.concatenate([pair_u, more[:, 0]]), np.concatenate([pair_w, more[:, 1]])
        pair_dist, pair_alg = np.concatenate([pair_dist, more[:, 2]]), np.concatenate([pair_alg, more[:, 3]])
        pair_var = np.concatenate([pair_var, more[:, 4]])
    place = _place_pairs(codes, lead_item)
    if place:
        # place links join the hash links as a last "algorithm" (rank len(algos)), weaker than any
        # hash link when a chain's parent is chosen; a pair linked both ways keeps its hash link
        hashed_pairs = set(zip(pair_u.tolist(), pair_w.tolist()))
        extra = np.array([pair for pair in place if pair not in hashed_pairs], dtype=np.int64).reshape(-1, 2)
        none = np.zeros(extra.shape[0], dtype=np.int64)
        pair_u, pair_w = np.concatenate([pair_u, extra[:, 0]]), np.concatenate([pair_w, extra[:, 1]])
        pair_dist, pair_var = np.concatenate([pair_dist, none]), np.concatenate([pair_var, none])
        pair_alg = np.concatenate([pair_alg, none + len(algos)])
        for node in {node for pair in place for node in pair}:
            any_eligible[node] = True
    local_link = pair_alg == len(algos)
    # per link rank: the algorithms' scales, then place links (keyed below), then vPDQ (PDQ distances)
    rank_scale = np.concatenate([scale, [0, scale[rule.names.index("pdq")] if "pdq" in rule.names else 0]])
    pair_keys = (
        ((pair_dist.astype(np.int64) * rank_scale[pair_alg]) << 16) | (pair_alg.astype(np.int64) << 8) | pair_var
    )
    pair_keys[local_link] = ((2 * scale_base + 1) << 16) | (len(algos) << 8)
    ends = np.concatenate([pair_u, pair_w])
    by_end = np.argsort(ends, kind="stable")
    neighbours = np.concatenate([pair_w, pair_u])[by_end]
    pair_of_edge = (by_end % max(1, pair_u.shape[0])).astype(np.int64)
    indptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(np.bincount(ends, minlength=m), out=indptr[1:])
    del ends, by_end

    # Groups: union-find over the nodes, then the items (identical copies of an eligible node are
    # linked at distance 0; those of a node no algorithm may link stay apart).
    node_label = _components(m, pair_u, pair_w)
    shared = any_eligible[node_of]
    component = np.where(shared, node_label[node_of], m + np.arange(n))
    links = int((multiplicity[pair_u] * multiplicity[pair_w]).sum())
    links += int((multiplicity * (multiplicity - 1) // 2)[any_eligible].sum())  # identical copies

    # Representative: most links, then most pixels, then first by path and frame.
    neighbour_items = (
        np.bincount(pair_u, weights=multiplicity[pair_w], minlength=m)
        + np.bincount(pair_w, weights=multiplicity[pair_u], minlength=m)
    ).astype(np.int64)
    degree = np.where(shared, neighbour_items[node_of] + multiplicity[node_of] - 1, 0)
    pixels = np.array([(it.width or 0) * (it.height or 0) for it in items], dtype=np.int64)
    path_rank = np.empty(n, dtype=np.int64)
    by_path = sorted(range(n), key=lambda i: (items[i].path or "", -1 if items[i].frame is None else items[i].frame))
    path_rank[by_path] = np.arange(n)
    order = np.lexsort((path_rank, -pixels, -degree, component))
    is_first = np.ones(n, dtype=bool)
    is_first[1:] = component[order][1:] != component[order][:-1]
    rep_of_component = dict(zip(component[order][is_first].tolist(), order[is_first].tolist()))
    representative = np.array([rep_of_component[c] for c in component.tolist()], dtype=np.int64)

    # Shortest chains to the representative (on nodes), then per item.
    rep_nodes = np.unique(node_of[representative])
    depth, parent_edge = _shortest_chains(indptr, neighbours, pair_of_edge, pair_keys, rep_nodes, m)
    lead_by_rank = np.full(m, -1, dtype=np.int64)  # the node's first item by path
    by_rank = np.lexsort((path_rank, node_of))
    node_first = np.ones(n, dtype=bool)
    node_first[1:] = node_of[by_rank][1:] != node_of[by_rank][:-1]
    lead_by_rank[node_of[by_rank][node_first]] = by_rank[node_first]
    own_node, rep_node = node_of, node_of[representative]
    hops = np.where(own_node == rep_node, 1, depth[own_node])
    is_rep = np.arange(n) == representative
    hops[is_rep] = 0
    first_eligible = np.full(m, -1, dtype=np.int64)
    for rank in reversed(range(len(algos))):
        first_eligible[node_eligible[rank]] = rank
    parent = np.full(n, -1, dtype=np.int64)
    link_distance = np.full(n, -1, dtype=np.int64)
    link_algorithm = np.full(n, -1, dtype=np.int64)
    link_variant = np.full(n, -1, dtype=np.int64)
    copy_of_rep = (own_node == rep_node) & ~is_rep & shared
    parent[copy_of_rep] = representative[copy_of_rep]
    link_distance[copy_of_rep] = 0
    link_algorithm[copy_of_rep] = first_eligible[own_node[copy_of_rep]]
    link_variant[copy_of_rep] = 0
    chained = (own_node != rep_node) & shared
    edges = parent_edge[own_node[chained]]
    parent_node = neighbours[edges]
    pairs = pair_of_edge[edges]
    parent[chained] = np.where(parent_node == rep_node[chained], representative[chained], lead_by_rank[parent_node])
    link_distance[chained] = pair_dist[pairs]
    link_algorithm[chained] = pair_alg[pairs]
    # the pair's variant is its first node's relative to its second: turned round from the other end
    link_variant[chained] = np.where(
        pair_u[pairs] == own_node[chained], pair_var[pairs], _INVERSE_INDEX[pair_var[pairs]]
    )

    distance, distance_algorithm, distance_variant, scaled = _distances_to(
        arrays, eligible, rule, scale, node_of, lead_item, representative
    )
    for i in np.flatnonzero((is_video | is_video[representative]) & shared & ~is_rep).tolist():
        nearest = _video_distance(rule, arrays, items, i, int(representative[i]), rank_scale)
        if nearest is not None:
            distance[i], distance_algorithm[i], distance_variant[i], scaled[i] = nearest
    return _Outcome(
        component,
        representative,
        hops,
        parent,
        link_distance,
        link_algorithm,
        link_variant,
        distance,
        distance_algorithm,
        distance_variant,
        scaled,
        links,
        node_of,
        place,
        video_links,
    )


def _video_distance(
    rule: _Rule,
    arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    items: Sequence[ClusterItem],
    i: int,
    r: int,
    rank_scale: np.ndarray,
) -> tuple[int, int, int, int] | None:
    """Item ``i``'s nearest comparison with its representative ``r`` when either is a video, as
    ``(distance, rank, variant, scaled distance)``: two videos, their nearest PDQ frame pair (the
    vPDQ rank, ``orig``); a video and an image, the video's frame nearest one of the image's
    variants (the smallest scaled distance over the algorithms, then their order). Frames count as
    they are and with their borders trimmed. ``None`` when they share no algorithm."""
    a, b = items[i], items[r]
    if a.is_video and b.is_video:
        hashes_a, hashes_b = a.frame_hashes("pdq"), b.frame_hashes("pdq")
        if not hashes_a or not hashes_b:
            return None
        gap = int(frame_distances(hashes_a, hashes_b).min())
        rank = len(rule.algorithms) + 1
        return gap, rank, 0, gap * int(rank_scale[rank])
    video, image = (a, r) if a.is_video else (b, i)
    best: tuple[int, int, int, int] | None = None
    huge = np.iinfo(np.int64).max
    for rank, algorithm in enumerate(rule.algorithms):
        variants, present, _ = arrays[rank]
        bits = [value.bits for value in video.frame_hashes(algorithm.name)]
        if not bits or not present[image, 0]:
            continue
        frames = code_matrix(bits, algorithm.bit_length // 8)
        table = np.where(present[image][None, :], _popcount(frames[:, None, :] ^ variants[image][None, :, :]), huge)
        nearest = table.min(axis=0)
        v = int(nearest.argmin())
        gap = int(nearest[v])
        # the image's variant v is nearest a frame: the image is v of the video
        variant = v if image == i else int(_INVERSE_INDEX[v])
        found = (gap * int(rank_scale[rank]), rank, variant, gap)
        if best is None or found[:3] < (best[3], best[1], best[2]):
            best = (gap, rank, variant, found[0])
    return best


def _distances_to(
    arrays: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    eligible: list[np.ndarray],
    rule: _Rule,
    scale: np.ndarray,
    node_of: np.ndarray,
    lead_item: np.ndarray,
    representative: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each item's nearest comparison with its representative: both ways round, every algorithm and
    variant, a comparison that counts as a link first. Computed once per (node, representative node)."""
    pairs = np.stack([node_of, node_of[representative]], axis=1)
    unique_pairs, pair_of_item = np.unique(pairs, axis=0, return_inverse=True)
    pair_of_item = pair_of_item.ravel()
    count = unique_pairs.shape[0]
    huge = np.iinfo(np.int64).max
    best_key = np.full(count, huge, dtype=np.int64)
    best_dist = np.full(count, -1, dtype=np.int64)
    best_alg = np.full(count, -1, dtype=np.int64)
    best_var = np.full(count, -1, dtype=np.int64)
    best_scaled = np.full(count, -1, dtype=np.int64)
    variant_rank = np.arange(_VARIANTS, dtype=np.int64)
    for start in range(0, count, _DISTANCE_CHUNK):
        stop = min(count, start + _DISTANCE_CHUNK)
        x_items = lead_item[unique_pairs[start:stop, 0]]
        r_items = lead_item[unique_pairs[start:stop, 1]]
        for rank, ((variants, present, _), ok) in enumerate(zip(arrays, eligible)):
            algorithm = rule.algorithms[rank]
            both = present[x_items, 0] & present[r_items, 0]
            # this item's variant v against the representative's orig: the item is v of the representative
            forward = _popcount(variants[x_items] ^ variants[r_items, 0][:, None, :])
            forward = np.where(present[x_items], forward, huge)
            # the representative's variant v against this item's orig: the item is inverse(v) of it
            backward = _popcount(variants[r_items] ^ variants[x_items, 0][:, None, :])
            backward = np.where(present[r_items], backward, huge)[:, _INVERSE_INDEX]
            dist = np.minimum(forward, backward)
            absent = ~both[:, None] | (dist == huge)
            dist = np.where(absent, 0, dist)
            counts = (dist <= rule.max_distances[algorithm.name]) & (ok[x_items] & ok[r_items])[:, None]
            scaled = dist * scale[rank]
            key = ((~counts).astype(np.int64) << 40) | (scaled << 16) | (rank << 8) | variant_rank[None, :]
            key = np.where(absent, huge, key)
            choice = key.argmin(axis=1)
            rows = np.arange(stop - start)
            chosen = key[rows, choice]
            better = chosen < best_key[start:stop]
            idx = np.flatnonzero(better) + start
            best_key[idx] = chosen[better]
            best_dist[idx] = dist[rows, choice][better]
            best_alg[idx] = rank
            best_var[idx] = choice[better]
            best_scaled[idx] = scaled[rows, choice][better]
    return (best_dist[pair_of_item], best_alg[pair_of_item], best_var[pair_of_item], best_scaled[pair_of_item])


def _low_quality_notes(item: ClusterItem, rule: _Rule) -> tuple[str, ...]:
    notes = []
    for algorithm in rule.algorithms:
        value = item.orig(algorithm.name)
        if (
            value is not None
            and algorithm.min_quality is not None
            and value.quality is not None
            and value.quality < algorithm.min_quality
        ):
            notes.append(f"{algorithm.name} not linked: quality {value.quality} below {algorithm.min_quality}")
    return tuple(notes)


def _grouped(
    codes: _Codes,
    ungrouped: list[ClusterItem],
    rule: _Rule,
    entries: int | None,
    hashing_seconds: float,
    grouping_started: float,
) -> ClusterResult:
    """Group ``codes`` and give the result: ``entries`` walked (``None`` without a walk), the seconds
    spent hashing, and the grouping's seconds counted from ``grouping_started`` (``perf_counter``)."""
    groups, ungrouped_members, links, places = _assemble(codes, ungrouped, rule)
    return ClusterResult(
        groups,
        ungrouped_members,
        rule.names,
        dict(rule.max_distances),
        rule.rotations,
        links,
        entries,
        hashing_seconds,
        time.perf_counter() - grouping_started,
        rule.local,
        places,
        rule.video,
    )


def _assemble(
    codes: _Codes, ungrouped_items: list[ClusterItem], rule: _Rule
) -> tuple[tuple[ClusterGroup, ...], tuple[ClusterMember, ...], int, int]:
    """The groups (numbered and ordered), the ungrouped members, the links and the place links."""
    items = codes.items
    names = (*rule.names, "local", VIDEO_LINK)
    ungrouped = tuple(_ungrouped_member(item, rule) for item in ungrouped_items)
    if not items:
        return (), ungrouped, 0, 0
    out = _group(codes)
    node_of = out.node_of.tolist()
    members_of: dict[int, list[int]] = {}
    for i, node in enumerate(node_of):
        members_of.setdefault(node, []).append(i)
    place_count = 0
    neighbours: dict[int, list[PlaceNeighbour]] = {}
    for (u, w), link in out.place.items():
        place_count += len(members_of[u]) * len(members_of[w])
        for here, there, region, other in ((u, w, link.region_a, link.region_b), (w, u, link.region_b, link.region_a)):
            for i in members_of[here]:
                neighbours.setdefault(i, []).extend(
                    PlaceNeighbour(items[j].path, items[j].frame, link.inliers, region, other)
                    for j in members_of[there]
                )

    def place_of(
        i: int, parent: int
    ) -> tuple[int | None, tuple[int, int, int, int] | None, tuple[int, int, int, int] | None]:
        """The inliers and regions (in ``i``, in ``parent``) of the place link between two items."""
        u, w = node_of[i], node_of[parent]
        link = out.place.get((min(u, w), max(u, w)))
        if link is None:
            return None, None, None
        return (link.inliers, link.region_a, link.region_b) if u < w else (link.inliers, link.region_b, link.region_a)

    rep = out.representative.tolist()
    lists = {
        name: getattr(out, name).tolist()
        for name in (
            "hops",
            "parent",
            "link_distance",
            "link_algorithm",
            "link_variant",
            "distance",
            "distance_algorithm",
            "distance_variant",
            "scaled_distance",
        )
    }
    path_key = [(item.path or "", -1 if item.frame is None else item.frame) for item in items]
    scaled = lists["scaled_distance"]

    # Group order: size (largest first), then the representative's path and frame; within a group the
    # representative, then by distance to it, then by path and frame.
    by_component: dict[int, list[int]] = {}
    for i, c in enumerate(out.component.tolist()):
        by_component.setdefault(c, []).append(i)
    ordered = []
    for indices in by_component.values():
        r = rep[indices[0]]
        rest = sorted((i for i in indices if i != r), key=lambda i: (scaled[i] < 0, scaled[i], path_key[i]))
        ordered.append((-len(indices), path_key[r], [r, *rest]))
    ordered.sort(key=lambda entry: (entry[0], entry[1]))

    def member(i: int, number: int, size: int) -> ClusterMember:
        item = items[i]
        alg, link_alg, parent = lists["distance_algorithm"][i], lists["link_algorithm"][i], lists["parent"][i]
        by_place = parent >= 0 and link_alg == len(rule.names)
        inliers, region, via_region = place_of(i, parent) if by_place else (None, None, None)
        video_link, is_u, via_frame = None, False, None if parent < 0 else items[parent].frame
        if parent >= 0:
            u, w = node_of[i], node_of[parent]
            video_link, is_u = out.video_links.get((min(u, w), max(u, w))), u < w
            if video_link is not None and items[parent].is_video and not item.is_video:
                via_frame = video_link.nearest(not is_u)  # the video's frame nearest this image
        return ClusterMember(
            item=item,
            status="grouped" if size >= 2 else "single",
            group=number,
            group_size=size,
            representative=rep[i] == i,
            distance=None if alg < 0 else lists["distance"][i],
            algorithm=None if alg < 0 else names[alg],
            variant=None if alg < 0 else VARIANT_NAMES[lists["distance_variant"][i]],
            max_distance=None if alg < 0 else rule.max_distances.get(names[alg], rule.video.distance),
            hops=lists["hops"][i],
            linked_via=None if parent < 0 else items[parent].path,
            linked_via_frame=via_frame,
            link_distance=None if parent < 0 or by_place else lists["link_distance"][i],
            link_algorithm=None if parent < 0 or link_alg < 0 else names[link_alg],
            link_variant=None if parent < 0 or by_place else VARIANT_NAMES[lists["link_variant"][i]],
            notes=(*item.notes, *_low_quality_notes(item, rule)),
            link_inliers=inliers,
            link_region=region,
            linked_via_region=via_region,
            local_links=tuple(neighbours.get(i, ())),
            link_video=None if video_link is None else video_link.seen_from(is_u),
        )

    groups = tuple(
        ClusterGroup(number, tuple(member(i, number, len(indices)) for i in indices))
        for number, (_, _, indices) in enumerate(ordered, start=1)
    )
    return groups, ungrouped, out.links, place_count


def _ungrouped_member(item: ClusterItem, rule: _Rule) -> ClusterMember:
    if item.error is not None:
        return ClusterMember(item=item, status="error", notes=item.notes)
    notes = item.notes or (f"no {' or '.join(rule.names)} hash to group by",)
    return ClusterMember(item=item, status="skipped", notes=notes)


# --------------------------------------------------------------------------------------------------
# Entry points


def _require_opencv() -> None:
    """Fail before the walk, not once per file, when local features cannot be extracted."""
    try:
        import cv2  # noqa: F401
    except ImportError as exc:
        raise LocalFeaturesUnavailableError(
            "matcher cluster --local needs OpenCV: pip install 'perceptual-matcher[local]' (opencv-python-headless)"
        ) from exc


def cluster_hashes(
    items: Iterable[ClusterItem | tuple[str, Mapping[str, Hash]]],
    *,
    algorithms: str | Sequence[str] | None = None,
    max_distances: Mapping[str, int] | None = None,
    rotations: bool = True,
    local: bool = False,
    video: VideoThresholds | None = None,
) -> ClusterResult:
    """Group hashes computed already into near-duplicate groups (see the module documentation).

    ``items`` are :class:`ClusterItem` values or ``(key, {variant: Hash})`` pairs (one algorithm per
    pair; ``orig`` is the item's own hash, the others its variant hashes). ``algorithms``: the
    algorithms to link by (default: every registered algorithm the items have, in registry order,
    else PDQ). ``max_distances``: per algorithm, the largest distance that links (default: the
    algorithm's own). ``rotations=False`` links by ``orig`` hashes only. ``local=True`` also links
    items showing one place by their local features (``ClusterItem.local``; see
    :mod:`matcher.places`). ``video``: when two video items (``ClusterItem.video_frames``) are
    linked (default: vPDQ's thresholds). Starts no process.

    Raises :class:`~matcher.errors.UsageError` for a bad argument or item and
    :class:`~matcher.errors.HashFormatError` for a hash of the wrong algorithm or length.
    """
    started = time.perf_counter()
    converted = [_as_item(value) for value in items]
    if algorithms is None:
        found = {name for item in converted for name in item.hashes}
        algorithms = [name for name in registry.names() if name in found] or list(DEFAULT_ALGORITHMS)
    rule = _rule(algorithms, max_distances, rotations, local, video)
    codes = _Codes(rule, strip=False)
    ungrouped = [item for item in converted if not codes.add(item)]
    return _grouped(codes, ungrouped, rule, None, 0.0, started)


def cluster_paths(
    paths: Sequence[str | bytes | os.PathLike[str] | os.PathLike[bytes]],
    *,
    algorithms: str | Sequence[str] = DEFAULT_ALGORITHMS,
    max_distances: Mapping[str, int] | None = None,
    rotations: bool = True,
    workers: int | None = 1,
    hash_options: HashOptions | None = None,
    progress: Callable[[ClusterProgress], None] | None = None,
    count_first: bool = False,
    local: bool = False,
    video: VideoThresholds | None = None,
) -> ClusterResult:
    """Walk ``paths``, hash every image and frame, and group them (see the module documentation).

    Files are walked, read (once, read-only) and decoded exactly as :func:`matcher.scan.scan` does.
    ``workers``: processes hashing in parallel (``None``: the CPU count; ``1``, the default: in this process, no
    process is started); a pool is shut down before this returns. ``hash_options``: decoding
    options. ``progress`` is called once before the first entry, after each walked entry while
    hashing, and once when grouping starts; ``count_first`` walks the paths once beforehand so that
    it has totals (files and bytes). ``local=True`` also extracts every frame's local features
    (:data:`~matcher.local_features.QUERY_PARAMS`; OpenCV needed) and links frames that show one
    place (:mod:`matcher.places`): place links join the hash links in the groups. A video is one
    item, linked to another video when they match by vPDQ with the ``video`` thresholds (default:
    vPDQ's) and to an image when any of its sampled frames is within the distance of it.
    Raises :class:`~matcher.errors.UsageError` for bad arguments;
    problems of single files are in the result, never raised.
    """
    started = time.perf_counter()
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise UsageError("cluster_paths() takes a sequence of paths; wrap a single path in a list")
    if not paths:
        raise UsageError("give at least one path to cluster")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UsageError(f"workers must be a positive integer or None, not {workers!r}")
    options = hash_options or HashOptions()
    if not isinstance(options, HashOptions):
        raise UsageError(f"hash_options must be HashOptions, not {type(options).__name__}")
    rule = _rule(algorithms, max_distances, rotations, local, video)
    if local:
        _require_opencv()
    codes = _Codes(rule, strip=True)  # the variant hashes live on in arrays only
    ungrouped: list[ClusterItem] = []
    entries = done_bytes = errors = 0
    total = total_bytes = None
    if count_first:
        total = total_bytes = 0
        for entry in files.walk(list(paths)):
            total, total_bytes = total + 1, total_bytes + (entry.size or 0)
    if progress is not None:
        progress(ClusterProgress("hashing", 0, time.perf_counter() - started, 0, total, total_bytes))
    count = workers if workers is not None else (os.cpu_count() or 1)
    for found in _hashed_entries(paths, rule, options, count):
        entries += 1
        done_bytes += max((item.size or 0 for item in found), default=0)
        failed = False
        for item in found:
            if not codes.add(item):
                ungrouped.append(item)
                failed = failed or item.error is not None
        errors += failed
        if progress is not None:
            elapsed = time.perf_counter() - started
            progress(ClusterProgress("hashing", entries, elapsed, done_bytes, total, total_bytes, errors))
    hashed = time.perf_counter()
    if progress is not None:
        progress(ClusterProgress("grouping", entries, hashed - started, done_bytes, total, total_bytes, errors))
    return _grouped(codes, ungrouped, rule, entries, hashed - started, hashed)


# --------------------------------------------------------------------------------------------------
# Reports


def write_cluster_report(
    result: ClusterResult,
    stream: TextIO,
    format: str = "jsonl",  # noqa: A002
    *,
    min_size: int = 1,
) -> int:
    """Write ``result`` to ``stream``: one record per member, group by group (see
    :meth:`ClusterMember.to_dict` for the columns), then the ungrouped items; returns the records written.

    ``jsonl``: one JSON object a line (``notes`` a list). ``csv``: a header row, then the same
    columns; ``notes`` joined with ``"; "``, booleans ``true``/``false``, ``None`` empty, and text
    cells that a spreadsheet would run as a formula prefixed with ``'``. Groups of fewer than
    ``min_size`` members are left out (their count is in :meth:`ClusterResult.summary`); ungrouped
    items (errors, skipped) are always written.
    """
    if format not in CLUSTER_FORMATS:
        raise UsageError(f"unknown cluster report format {format!r} (known: {', '.join(CLUSTER_FORMATS)})")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise UsageError(f"min_size must be a positive integer, not {min_size!r}")
    algorithms = list(result.algorithms)
    local = result.local
    written = 0
    if format == "jsonl":
        for member in result.members(min_size):
            stream.write(json.dumps(member.to_dict(algorithms, local=local), ensure_ascii=False) + "\n")
            written += 1
    else:
        writer = csv.writer(stream, lineterminator="\n")
        columns = list(ClusterMember(ClusterItem(path=None), "single").to_dict(algorithms, local=local))
        writer.writerow(columns)
        for member in result.members(min_size):
            row = member.to_dict(algorithms, local=local)
            writer.writerow([_cell(row.get(column)) for column in columns])
            written += 1
    stream.flush()
    return written


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, dict) for v in value)):
        return csv_safe(json.dumps(value, ensure_ascii=False))
    if isinstance(value, list):
        return csv_safe("; ".join(str(v) for v in value))
    return csv_safe(value)


def run_cluster(
    paths: Sequence[str | bytes | os.PathLike[str] | os.PathLike[bytes]],
    output_path: str | None = None,
    format: str = "jsonl",  # noqa: A002 - the CLI's word
    *,
    min_size: int = 1,
    stream: TextIO | None = None,
    algorithms: str | Sequence[str] = DEFAULT_ALGORITHMS,
    max_distances: Mapping[str, int] | None = None,
    rotations: bool = True,
    workers: int | None = 1,
    hash_options: HashOptions | None = None,
    progress: Callable[[ClusterProgress], None] | None = None,
    count_first: bool = False,
    local: bool = False,
    video: VideoThresholds | None = None,
) -> ClusterResult:
    """The driver behind ``matcher cluster``: :func:`cluster_paths`, then :func:`write_cluster_report`.

    ``output_path`` (``None`` or ``"-"``: ``stream``, default standard output) is checked before any
    file is read: it must not lie inside an evidence path (:class:`~matcher.errors.UsageError`) and
    its folder must exist. The report is written to a temporary file beside it and renamed over it
    once complete, so an interrupted run leaves no partial report.
    """

    if format not in CLUSTER_FORMATS:
        raise UsageError(f"unknown cluster report format {format!r} (known: {', '.join(CLUSTER_FORMATS)})")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise UsageError(f"min_size must be a positive integer, not {min_size!r}")
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise UsageError("run_cluster() takes a sequence of paths; wrap a single path in a list")
    if output_path == "-":
        output_path = None
    if output_path is not None:
        root = files.path_inside(output_path, paths)
        if root is not None:
            raise UsageError(f"output {output_path!r} is inside the evidence path {root!r}; matcher never writes there")
        if os.path.isdir(output_path):
            raise UsageError(f"output {output_path!r} is a directory")
        folder = os.path.dirname(os.path.abspath(output_path))
        if not os.path.isdir(folder):
            raise UsageError(f"output {output_path!r}: folder {folder!r} does not exist")
        if not os.access(folder, os.W_OK):
            raise MatcherError(f"cannot write output {output_path!r}: folder {folder!r} is not writable")
    result = cluster_paths(
        paths,
        algorithms=algorithms,
        max_distances=max_distances,
        rotations=rotations,
        workers=workers,
        hash_options=hash_options,
        progress=progress,
        count_first=count_first,
        local=local,
        video=video,
    )
    if output_path is None:
        write_cluster_report(result, stream if stream is not None else sys.stdout, format, min_size=min_size)
    else:
        with batch.atomic_text(output_path) as out:
            write_cluster_report(result, out, format, min_size=min_size)
    return result
