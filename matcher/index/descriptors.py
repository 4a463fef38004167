"""The candidate search of local features: a two-level tree of binary cells over known descriptors.

A frame's local features are found in the known set in two steps (:mod:`matcher.local_features`):
a *vote* (each frame descriptor asks for its nearest known descriptors; the known images they
belong to get a vote) and a geometric check of the best few candidates. The vote needs the nearest
known descriptors of 500-1,500 frame descriptors among 20 million (100,000 known images) to 200
million (a million), where true correspondences of ORB codes lie 20-60 bits apart: far beyond the
radius an exact multi-index search reaches (pigeonhole over 16 x 16-bit substrings stops at 15
bits), and a flat scan costs seconds a frame.

:class:`DescriptorTree` is an inverted file with a two-level quantiser, the structure of a
vocabulary tree: ``branch`` level-1 centres, and under each ``branch`` level-2 centres, all drawn
(seeded) from the known descriptors themselves (k-majority refinement gained nothing measurable on
ORB codes in ``benchmarks/test_local_search.py`` and costs passes over the set). Every known
descriptor is stored in the leaf cell of its nearest level-1 centre's nearest level-2 centre;
the arrays are sorted by cell, so a cell is one contiguous run of rows. A frame descriptor probes
the ``probe1`` nearest level-1 centres and, under each, the ``probe2`` nearest level-2 centres,
scans those cells, and keeps its ``k`` nearest known descriptors within ``max_distance`` bits. The
cost of a query is ``branch * (1 + probe1)`` centre distances plus the probed cells' rows: at a
million known images about 2,000 distances a frame descriptor, whatever the size of the set.

The arrays (``centres``, ``offsets``, and the cell-sorted ``descriptors`` and ``owners``) are
plain numpy arrays, saved by the index beside its tables and memory-mapped on open (see
:mod:`matcher.index.local_table`). The kernels (:mod:`matcher.index.descriptor_kernels`, numba)
are imported on first search or build, so that opening an index does not pay for numba.

Measured choice (``benchmarks/test_local_search.py``, docs/local-features.md): against FAISS
``IndexBinaryFlat`` (exact), ``IndexBinaryIVF`` (nprobe swept) and ``IndexBinaryHNSW``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError

__all__ = ["DEFAULT_PROBES", "DescriptorTree", "TreeProbes", "branch_for", "assign_cells", "two_nearest"]

#: Rows a leaf cell holds on average when the tree is sized for a set (see :func:`branch_for`).
CELL_ROWS = 64
#: Largest branching factor (``branch ** 2`` leaf cells: 262,144).
MAX_BRANCH = 512
#: Descriptors sampled to draw the centres from: at least this many, and at least
#: :data:`SAMPLE_PER_CELL` a leaf cell, so that each level-1 centre has enough sampled members to
#: draw its ``branch`` level-2 centres from without repeating one (a repeated centre is a cell that
#: stays empty while its twin holds both shares).
SAMPLE = 200_000
SAMPLE_PER_CELL = 8


@dataclass(frozen=True, slots=True)
class TreeProbes:
    """How a search probes the tree: ``probe1`` level-1 centres, under each ``probe2`` level-2
    centres; ``k`` nearest kept per frame descriptor within ``max_distance`` bits; at most
    ``max_queries`` of a frame's descriptors vote (spread over the frame and its pyramid levels:
    :func:`matcher.local_features.voting_rows`; all of them are used to verify)."""

    probe1: int = 2
    probe2: int = 2
    k: int = 4
    max_distance: int = 64
    max_queries: int = 400

    def __post_init__(self) -> None:
        for name in ("probe1", "probe2", "k", "max_queries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be a positive integer, not {value!r}")


#: The probes a scan uses (measured: vote recall against an exact flat search, time a frame).
DEFAULT_PROBES = TreeProbes()


def branch_for(rows: int) -> int:
    """The branching factor for a set of ``rows`` descriptors: about :data:`CELL_ROWS` rows a leaf
    cell (``branch ** 2`` cells), a power of two from 1 to :data:`MAX_BRANCH`."""
    if rows <= CELL_ROWS:
        return 1
    wanted = math.sqrt(rows / CELL_ROWS)
    return int(min(MAX_BRANCH, 1 << max(0, round(math.log2(wanted)))))


def _words(descriptors: np.ndarray) -> np.ndarray:
    """``(n, 32)`` uint8 descriptors viewed as ``(n, 4)`` uint64 words (no copy when contiguous)."""
    array = np.asarray(descriptors)
    if array.ndim != 2 or array.shape[1] != 32 or array.dtype != np.uint8:
        raise UsageError(f"descriptors must be uint8 of shape (n, 32), not {array.dtype} {array.shape}")
    return np.ascontiguousarray(array).view(np.uint64)


def draw_centres(descriptors: np.ndarray, branch: int, seed: int = 0) -> np.ndarray:
    """The tree's centres drawn from ``descriptors``: ``branch`` level-1 centres, then ``branch``
    level-2 centres under each (drawn without repeats from the sample rows nearest that level-1
    centre; repeated only when it has fewer), ``uint8`` of shape ``(branch + branch ** 2, 32)``."""
    rng = np.random.default_rng(seed)
    n = len(descriptors)
    if n == 0:
        return np.zeros((branch + branch * branch, 32), np.uint8)
    wanted = max(SAMPLE, SAMPLE_PER_CELL * branch * branch)
    sample = np.asarray(descriptors[np.sort(rng.choice(n, min(n, wanted), replace=False))])
    top = sample[rng.choice(len(sample), branch, replace=len(sample) < branch)]
    centres = [top]
    words = _words(sample)
    from .descriptor_kernels import assign

    nearest = assign(words, np.vstack([top, np.repeat(top[:1], branch * branch, axis=0)]).view(np.uint64), branch)
    parent = nearest // branch
    for c in range(branch):
        members = sample[parent == c]
        if len(members) == 0:
            members = top[c : c + 1]
        if len(members) >= branch:
            centres.append(members[rng.choice(len(members), branch, replace=False)])
        else:  # every member once, then repeats (cells that stay empty: no more can be drawn)
            order = rng.permutation(len(members))
            centres.append(members[np.resize(order, branch)])
    return np.ascontiguousarray(np.vstack(centres), dtype=np.uint8)


def assign_cells(descriptors: np.ndarray, centres: np.ndarray, branch: int) -> np.ndarray:
    """The leaf cell (``0 .. branch ** 2 - 1``) of each descriptor under ``centres``."""
    if len(descriptors) == 0:
        return np.zeros(0, np.int64)
    from .descriptor_kernels import assign

    return np.asarray(assign(_words(descriptors), _words(centres), branch))


def two_nearest(queries: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest and second nearest of each of ``queries`` among ``train`` (both ``uint8``
    ``(n, 32)``): ``(distances, rows)``, ``distances`` ``int64`` ``(n, 2)`` (the two Hamming
    distances), ``rows`` ``int64`` ``(n,)`` (the nearest's row in ``train``, the first among equals).
    ``train`` needs at least two rows. The ratio test of a verification runs on this."""
    if len(train) < 2:
        raise UsageError(f"two_nearest needs at least 2 train descriptors, not {len(train)}")
    words = _words(queries) if len(queries) else np.zeros((0, 4), np.uint64)
    distances = np.empty((len(words), 2), np.int64)
    rows = np.empty(len(words), np.int64)
    from .descriptor_kernels import two_nearest as kernel

    kernel(words, np.ascontiguousarray(_words(train).T), distances, rows)
    return distances, rows


class DescriptorTree:
    """A :class:`~matcher.local_features.DescriptorSearch` over known descriptors sorted by cell.

    ``centres`` (``uint8``, ``branch + branch ** 2`` rows), ``offsets`` (``int64``, ``branch ** 2 +
    1``: the rows of cell ``c`` are ``offsets[c]:offsets[c + 1]``), ``descriptors`` (``uint8``, ``(n,
    32)``, sorted by cell) and ``owners`` (``int64`` or ``int32``: the known image of each row) may
    be memory maps. :meth:`build` makes one from unsorted descriptors.
    """

    __slots__ = ("branch", "centres", "offsets", "descriptors", "owners", "probes", "_words", "_centre_words")

    def __init__(
        self,
        branch: int,
        centres: np.ndarray,
        offsets: np.ndarray,
        descriptors: np.ndarray,
        owners: np.ndarray,
        probes: TreeProbes = DEFAULT_PROBES,
    ) -> None:
        if centres.shape != (branch + branch * branch, 32) or offsets.shape != (branch * branch + 1,):
            raise UsageError(f"descriptor tree arrays do not fit a branch of {branch}")
        if len(descriptors) != len(owners) or (len(offsets) and int(offsets[-1]) != len(descriptors)):
            raise UsageError("descriptor tree offsets, descriptors and owners disagree")
        self.branch = branch
        self.centres = centres
        self.offsets = offsets
        self.descriptors = descriptors
        self.owners = owners
        self.probes = probes
        self._words = _words(descriptors) if len(descriptors) else np.zeros((0, 4), np.uint64)
        self._centre_words = _words(centres)

    @classmethod
    def build(
        cls,
        descriptors: np.ndarray,
        owners: np.ndarray,
        branch: int | None = None,
        probes: TreeProbes = DEFAULT_PROBES,
        seed: int = 0,
        centres: np.ndarray | None = None,
    ) -> tuple[DescriptorTree, np.ndarray]:
        """The tree over ``descriptors`` (owned by ``owners``) and the row order that sorts them by
        cell (``tree.descriptors == descriptors[order]``). ``centres`` (with ``branch``) reuses a
        previous tree's centres; otherwise they are drawn (``branch`` by :func:`branch_for`)."""
        chosen = branch_for(len(descriptors)) if branch is None else branch
        if centres is None:
            centres = draw_centres(descriptors, chosen, seed)
        cells = assign_cells(descriptors, centres, chosen)
        order = np.argsort(cells, kind="stable")
        offsets = np.zeros(chosen * chosen + 1, np.int64)
        np.cumsum(np.bincount(cells, minlength=chosen * chosen), out=offsets[1:])
        tree = cls(chosen, centres, offsets, np.ascontiguousarray(descriptors[order]), owners[order], probes)
        return tree, order

    def search(self, descriptors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Each descriptor's ``k`` nearest known descriptors within the probes' ``max_distance`` among
        the probed cells: ``(distances, owners)``, both ``(n, k)``; ``-1`` owners where fewer found."""
        queries = _words(descriptors) if len(descriptors) else np.zeros((0, 4), np.uint64)
        n = len(queries)
        distances = np.full((n, k), np.iinfo(np.int32).max, np.int64)
        owners = np.full((n, k), -1, np.int64)
        if n == 0 or len(self._words) == 0:
            return distances, owners
        from .descriptor_kernels import search

        p = self.probes
        search(
            queries,
            self._centre_words,
            self.branch,
            self.offsets,
            self._words,
            self.owners,
            min(p.probe1, self.branch),
            min(p.probe2, self.branch),
            k,
            p.max_distance,
            distances,
            owners,
        )
        return distances, owners
