"""The index's local-feature table: known images' keypoints and descriptors, searchable as stored.

Images added to an index (not hash lists) keep their local features (:mod:`matcher.local_features`,
:data:`~matcher.local_features.KNOWN_PARAMS`: at most 186 ORB keypoints found at 320 pixels). A
generation holds them as nine arrays (``local.<name>.npy``, listed and checksummed in the manifest
like the code tables, memory-mapped on open from 256 KiB), so a search never unpacks records:

==================  ===========================  ==================================================
``records``         int64 ``(n,)``               record ids holding local features, ascending
``sizes``           uint32 ``(n, 2)``            each one's frame width and height
``starts``          int64 ``(n + 1,)``           record ``i``'s keypoints are ``rows[starts[i]:starts[i + 1]]``
``rows``            int32 ``(m,)``               those keypoints' rows in the cell-sorted arrays
``centres``         uint8 ``(b + b*b, 32)``      the search tree's centres (:mod:`~matcher.index.descriptors`)
``offsets``         int64 ``(b*b + 1,)``         the rows of each tree cell
``descriptors``     uint8 ``(m, 32)``            every keypoint's descriptor, sorted by cell
``points``          uint8 ``(m, 3)``             its position: x and y as 12-bit fractions of the frame side
                                                 (``x * 4095 / width``), packed in 3 bytes (``x | y << 12``)
``owners``          int32 ``(m,)``               its record's position in ``records``
==================  ===========================  ==================================================

Per known image of 186 keypoints (:data:`~matcher.local_features.KNOWN_PARAMS`' cap): 6,510 bytes of
descriptors and points, 1,488 of the search columns (``rows`` and ``owners``), 24 of the per-record
arrays: 8,022 bytes, and the tree's centres and offsets (about 105 bytes a known image at 100,000,
10 at a million).

Positions on a 4,096-step grid are exact enough for the verification (a step is 0.08 pixels of a
640-pixel frame) and take 3 bytes instead of 4. Generations of index format 3 (local features as
first released) store ``points`` as uint16 ``(m, 2)`` fractions of 65,535: they open and search as
they are, and the next write of the index rewrites the table in the packed form (format 4).

Writes rebuild the table (as they rewrite a changed code table): the new records' keypoints are
placed in the cells of the existing centres; the centres are drawn again when the set has grown or
shrunk enough that another branching factor fits it (:func:`~matcher.index.descriptors.branch_for`).
A generation without local features has none of these files (and no ``local`` key in its manifest).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import IndexStoreError
from ..local_features import DEFAULT_RULE, POINT_STEPS, LocalFeatures, LocalMatch, MatchRule, verify, vote, voting_rows
from .descriptors import DEFAULT_PROBES, DescriptorTree, TreeProbes, assign_cells, branch_for

__all__ = [
    "LOCAL_ARRAYS",
    "LOCAL_PREFIX",
    "LocalHit",
    "LocalTable",
    "local_file_names",
    "MAX_CANDIDATES",
    "pack_points",
    "unpack_points",
]

#: File-name prefix of the local-feature arrays of a generation.
LOCAL_PREFIX = "local"
#: The arrays and their dtypes (see the module documentation).
LOCAL_ARRAYS: dict[str, np.dtype[Any]] = {
    "records": np.dtype(np.int64),
    "sizes": np.dtype(np.uint32),
    "starts": np.dtype(np.int64),
    "rows": np.dtype(np.int32),
    "centres": np.dtype(np.uint8),
    "offsets": np.dtype(np.int64),
    "descriptors": np.dtype(np.uint8),
    "points": np.dtype(np.uint8),
    "owners": np.dtype(np.int32),
}
#: Candidates verified per frame at most (the most voted first).
MAX_CANDIDATES = 5


_FRACTION = 65535  # the unit of LocalFeatures.points


def pack_points(points: np.ndarray) -> np.ndarray:
    """Keypoint positions (``uint16`` ``(m, 2)`` fractions of 65,535, as
    :class:`~matcher.local_features.LocalFeatures` holds them) packed on the 12-bit grid of
    :data:`~matcher.local_features.POINT_STEPS`: ``uint8`` ``(m, 3)``, the little-endian bytes of
    ``x | y << 12`` (lossless for positions the extraction gives, which lie on that grid)."""
    fractions = np.asarray(points, np.uint32).reshape(-1, 2)
    x, y = ((fractions * POINT_STEPS + _FRACTION // 2) // _FRACTION).T
    value = x | (y << 12)
    return np.ascontiguousarray(np.stack([value & 255, (value >> 8) & 255, value >> 16], axis=1), np.uint8)


def unpack_points(packed: np.ndarray) -> np.ndarray:
    """The positions of :func:`pack_points` back as ``uint16`` ``(m, 2)`` fractions of 65,535
    (legacy ``uint16`` ``(m, 2)`` arrays are returned as they are)."""
    array = np.asarray(packed)
    if array.dtype == np.uint16:
        return array.reshape(-1, 2)
    b = array.reshape(-1, 3).astype(np.uint32)
    value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    steps = np.stack([value & 4095, value >> 12], axis=1)
    return ((steps * _FRACTION + POINT_STEPS // 2) // POINT_STEPS).astype(np.uint16)


def local_file_names() -> list[str]:
    """The file names of a generation's local-feature arrays."""
    return [f"{LOCAL_PREFIX}.{name}.npy" for name in LOCAL_ARRAYS]


@dataclass(frozen=True, slots=True)
class LocalHit:
    """A known record found in a frame by its local features: ``record`` (id), ``votes`` (frame
    descriptors whose nearest known descriptors included one of its) and the verified ``match``."""

    record: int
    votes: int
    match: LocalMatch


class LocalTable:
    """The local features of an index generation (see the module documentation); immutable."""

    __slots__ = ("records", "sizes", "starts", "rows", "points", "tree")

    def __init__(
        self,
        records: np.ndarray,
        sizes: np.ndarray,
        starts: np.ndarray,
        rows: np.ndarray,
        points: np.ndarray,
        tree: DescriptorTree,
    ) -> None:
        self.records = records
        self.sizes = sizes
        self.starts = starts
        self.rows = rows
        self.points = points
        self.tree = tree

    # -- facts ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Records holding local features."""
        return int(self.records.shape[0])

    @property
    def keypoints(self) -> int:
        """Keypoints of all records."""
        return int(self.rows.shape[0])

    def counts(self) -> dict[str, int]:
        """The manifest's ``local`` entry: records, keypoints and the tree's branching factor."""
        return {"records": len(self), "keypoints": self.keypoints, "branch": self.tree.branch}

    def position(self, record_id: int) -> int | None:
        """The position of a record id in :attr:`records` (``None`` when it holds no local features)."""
        i = int(np.searchsorted(self.records, record_id))
        return i if i < len(self) and int(self.records[i]) == record_id else None

    def features(self, position: int) -> LocalFeatures:
        """The stored local features of the record at ``position``."""
        rows = self.rows[int(self.starts[position]) : int(self.starts[position + 1])]
        width, height = (int(v) for v in self.sizes[position])
        return LocalFeatures(width, height, unpack_points(self.points[rows]), self.tree.descriptors[rows])

    def features_of(self, ids: Sequence[int]) -> dict[int, LocalFeatures]:
        """``{record id: local features}`` of those of ``ids`` that hold some."""
        out = {}
        for record_id in ids:
            position = self.position(int(record_id))
            if position is not None:
                out[int(record_id)] = self.features(position)
        return out

    # -- searching -----------------------------------------------------------------------------

    def find(
        self,
        query: LocalFeatures,
        rule: MatchRule = DEFAULT_RULE,
        max_candidates: int = MAX_CANDIDATES,
        probes: TreeProbes = DEFAULT_PROBES,
    ) -> list[LocalHit]:
        """The known records seen in the frame ``query``: vote over the tree, verify the
        ``max_candidates`` most voted; most inliers first."""
        if not len(self) or not len(query):
            return []
        if probes is not self.tree.probes:
            tree = DescriptorTree(
                self.tree.branch, self.tree.centres, self.tree.offsets, self.tree.descriptors, self.tree.owners, probes
            )
        else:
            tree = self.tree
        voters = query
        if len(query) > probes.max_queries:  # spread over the frame and its pyramid levels
            rows = voting_rows(query, probes.max_queries)
            voters = LocalFeatures(query.width, query.height, query.points[rows], query.descriptors[rows])
        hits = []
        for position, votes in vote(voters, tree, rule)[:max_candidates]:
            match = verify(query, self.features(position), rule)
            if match is not None:
                hits.append(LocalHit(int(self.records[position]), votes, match))
        hits.sort(key=lambda hit: (-hit.match.inliers, hit.record))
        return hits

    # -- writing -------------------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays to save, by name (:data:`LOCAL_ARRAYS`)."""
        return {
            "records": self.records,
            "sizes": self.sizes,
            "starts": self.starts,
            "rows": self.rows,
            "centres": self.tree.centres,
            "offsets": self.tree.offsets,
            "descriptors": self.tree.descriptors,
            "points": self.points,
            "owners": self.tree.owners,
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], counts: Mapping[str, Any], where: str) -> LocalTable:
        """A table from loaded arrays, checked against the manifest's ``counts``;
        :class:`IndexStoreError` naming ``where`` when they disagree."""
        legacy = arrays["points"].dtype == np.uint16  # index format 3: (m, 2) uint16 points
        for name, dtype in LOCAL_ARRAYS.items():
            if name == "points" and legacy:
                continue
            if arrays[name].dtype != dtype:
                raise IndexStoreError(f"{where}: local.{name} has dtype {arrays[name].dtype}, expected {dtype}")
        try:
            n, m, branch = int(counts["records"]), int(counts["keypoints"]), int(counts["branch"])
        except (KeyError, TypeError, ValueError):
            raise IndexStoreError(f"{where}: manifest's local entry is malformed ({dict(counts)!r})") from None
        shapes = {
            "records": (n,),
            "sizes": (n, 2),
            "starts": (n + 1,),
            "rows": (m,),
            "centres": (branch + branch * branch, 32),
            "offsets": (branch * branch + 1,),
            "descriptors": (m, 32),
            "points": (m, 2) if legacy else (m, 3),
            "owners": (m,),
        }
        for name, shape in shapes.items():
            if arrays[name].shape != shape:
                raise IndexStoreError(
                    f"{where}: local.{name} has shape {arrays[name].shape}, the manifest says {shape}"
                )
        starts, offsets = arrays["starts"], arrays["offsets"]
        if int(starts[0]) != 0 or int(starts[-1]) != m or int(offsets[0]) != 0 or int(offsets[-1]) != m:
            raise IndexStoreError(f"{where}: local feature offsets do not cover the keypoints")
        if n > 1 and not bool(np.all(arrays["records"][1:] > arrays["records"][:-1])):
            raise IndexStoreError(f"{where}: local.records ids are not ascending")
        if m and (
            int(arrays["rows"].min()) < 0
            or int(arrays["rows"].max()) >= m
            or int(arrays["owners"].min()) < 0
            or int(arrays["owners"].max()) >= n
        ):
            raise IndexStoreError(f"{where}: local feature rows or owners out of range")
        tree = DescriptorTree(branch, arrays["centres"], offsets, arrays["descriptors"], arrays["owners"])
        return cls(arrays["records"], arrays["sizes"], starts, arrays["rows"], arrays["points"], tree)

    @classmethod
    def build(cls, items: Sequence[tuple[int, LocalFeatures]], previous: LocalTable | None = None) -> LocalTable | None:
        """The table of ``items`` (``(record id, features)``, ids ascending and new), added to the
        records of ``previous``; ``None`` when nothing holds a keypoint-bearing record."""
        ids: list[int] = []
        sizes: list[tuple[int, int]] = []
        points: list[np.ndarray] = []
        descriptors: list[np.ndarray] = []
        if previous is not None and len(previous):
            order = np.asarray(previous.rows)
            ids.extend(int(v) for v in previous.records)
            sizes.extend((int(w), int(h)) for w, h in previous.sizes)
            counts = np.diff(previous.starts)
            splits = np.cumsum(counts)[:-1]
            points.extend(np.split(unpack_points(np.asarray(previous.points)[order]), splits))
            descriptors.extend(np.split(np.asarray(previous.tree.descriptors)[order], splits))
        for record_id, features in items:
            ids.append(int(record_id))
            sizes.append((features.width, features.height))
            points.append(np.asarray(features.points))
            descriptors.append(np.asarray(features.descriptors))
        return cls._assemble(ids, sizes, points, descriptors, previous)

    def without(self, gone: np.ndarray) -> LocalTable | None:
        """This table without the records ``gone`` (ids); itself when it holds none of them."""
        keep = ~np.isin(self.records, gone)
        if bool(keep.all()):
            return self
        ids, sizes, points, descriptors = [], [], [], []
        for position in np.flatnonzero(keep):
            features = self.features(int(position))
            ids.append(int(self.records[position]))
            sizes.append((features.width, features.height))
            points.append(np.asarray(features.points))
            descriptors.append(np.asarray(features.descriptors))
        return self._assemble(ids, sizes, points, descriptors, self)

    @classmethod
    def _assemble(
        cls,
        ids: list[int],
        sizes: list[tuple[int, int]],
        points: list[np.ndarray],
        descriptors: list[np.ndarray],
        previous: LocalTable | None,
    ) -> LocalTable | None:
        if not ids:
            return None
        order = np.argsort(np.asarray(ids, np.int64), kind="stable")
        counts = np.array([len(descriptors[i]) for i in order], np.int64)
        starts = np.zeros(len(order) + 1, np.int64)
        np.cumsum(counts, out=starts[1:])
        flat_descriptors = (
            np.concatenate([descriptors[i] for i in order]).astype(np.uint8, copy=False)
            if starts[-1]
            else np.zeros((0, 32), np.uint8)
        )
        flat_points = (
            np.concatenate([points[i] for i in order]).astype(np.uint16, copy=False)
            if starts[-1]
            else np.zeros((0, 2), np.uint16)
        )
        records = np.asarray(ids, np.int64)[order]
        sizes_array = np.asarray([sizes[i] for i in order], np.uint32).reshape(-1, 2)
        return cls.from_columns(records, sizes_array, starts, flat_points, flat_descriptors, previous)

    @classmethod
    def from_columns(
        cls,
        records: np.ndarray,
        sizes: np.ndarray,
        starts: np.ndarray,
        points: np.ndarray,
        descriptors: np.ndarray,
        previous: LocalTable | None = None,
    ) -> LocalTable:
        """The table of records given as columns in record order: ids ``records`` (ascending), frame
        ``sizes`` ``(n, 2)``, ``starts`` ``(n + 1)`` (record ``i``'s keypoints are rows
        ``starts[i]:starts[i + 1]`` of ``points``, ``uint16`` fractions as
        :class:`~matcher.local_features.LocalFeatures` holds them, and ``descriptors``). The tree reuses ``previous``'s
        centres when the branching factor that fits the set is the same."""
        owners = np.repeat(np.arange(len(records), dtype=np.int32), np.diff(starts))
        branch = branch_for(len(descriptors))
        if previous is not None and previous.tree.branch == branch:  # same size class: keep the centres
            centres = np.asarray(previous.tree.centres)
            cells = assign_cells(descriptors, centres, branch)
            cell_order = np.argsort(cells, kind="stable")
            offsets = np.zeros(branch * branch + 1, np.int64)
            np.cumsum(np.bincount(cells, minlength=branch * branch), out=offsets[1:])
            tree = DescriptorTree(
                branch, centres, offsets, np.ascontiguousarray(descriptors[cell_order]), owners[cell_order]
            )
        else:
            tree, cell_order = DescriptorTree.build(descriptors, owners, branch)
        rows = np.empty(len(cell_order), np.int32)
        rows[cell_order] = np.arange(len(cell_order), dtype=np.int32)
        return cls(
            np.asarray(records, np.int64),
            np.asarray(sizes, np.uint32).reshape(-1, 2),
            np.asarray(starts, np.int64),
            rows,
            pack_points(np.asarray(points)[cell_order]),
            tree,
        )
