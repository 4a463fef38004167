"""Brute-force set-to-set Hamming distances with numpy.

A :class:`HashTable` holds one hash set kind for many images: a fixed list of view names and, per
image and view, the hash (as uint64 words), whether the image has that view, and whether its quality
allows matching. :func:`pair_distances` gives, for every (query image, known image) pair and for each
of several *rules* (which query view may meet which known view), the smallest distance over the
allowed combinations, twice: with the quality rule (views below the algorithm's minimum quality left
out) and without it. Each (query view, known view) distance matrix is computed once and shared by
every rule that allows it. A pair with no comparable views gets :func:`no_match` (bit length + 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from matcher.scan.matching import is_view_match

from .methods import View, ViewHashes

__all__ = ["HashTable", "Rule", "pair_distances", "no_match"]

#: Which known views a query view may be compared with (empty: the query view is not used).
Rule = Callable[[View], tuple[View, ...]]


def no_match(bit_length: int) -> int:
    """The distance recorded for a pair without any comparable views (never <= a threshold)."""
    return bit_length + 1


@dataclass(frozen=True, slots=True)
class HashTable:
    """One hash set kind for ``n`` images."""

    views: tuple[View, ...]
    words: np.ndarray  # (len(views), n, words per hash) uint64, view-major for contiguous slices
    present: np.ndarray  # (len(views), n) bool: the image has this view
    usable: np.ndarray  # (len(views), n) bool: present, and quality >= the minimum (if any; unknown passes)
    bit_length: int

    @classmethod
    def build(cls, sets: Sequence[ViewHashes], bit_length: int, min_quality: int | None) -> HashTable:
        """A table of ``sets`` (one ``{view: (bits, quality)}`` per image)."""
        views: dict[View, int] = {}
        for hashes in sets:
            for view in hashes:
                views.setdefault(view, len(views))
        words = np.zeros((len(views), len(sets), bit_length // 64), np.uint64)
        present = np.zeros((len(views), len(sets)), bool)
        usable = np.zeros((len(views), len(sets)), bool)
        for i, hashes in enumerate(sets):
            for view, (bits, quality) in hashes.items():
                j = views[view]
                words[j, i] = np.frombuffer(bits, np.uint64)
                present[j, i] = True
                usable[j, i] = min_quality is None or quality is None or quality >= min_quality
        return cls(tuple(views), words, present, usable, bit_length)

    def __len__(self) -> int:
        return self.words.shape[1]


def _hamming(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(len(q), len(k)) int16 Hamming distances of two (n, words) uint64 arrays."""
    acc = np.bitwise_count(q[:, None, 0] ^ k[None, :, 0]).astype(np.int16)
    for w in range(1, q.shape[1]):
        acc += np.bitwise_count(q[:, None, w] ^ k[None, :, w])
    return acc


def pair_distances(
    query: HashTable,
    known: HashTable,
    rules: Sequence[Rule],
    *,
    skip_diagonal: bool = False,
    chunk: int = 256,
    view_penalty: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per rule, ``(with_quality_rule, without_it)``: (len(query), len(known)) int16 set distances.

    ``skip_diagonal``: query i and known i are the same image; those pairs get :func:`no_match`.
    ``view_penalty``: bits added to a distance through a view (``matcher.scan.matching.is_view_match``),
    the scan's tighter bound on view matches.
    """
    big = no_match(query.bit_length)
    nq, nk = len(query), len(known)
    out = [(np.full((nq, nk), big, np.int16), np.full((nq, nk), big, np.int16)) for _ in rules]
    known_index = {view: j for j, view in enumerate(known.views)}
    combos: dict[tuple[int, int], list[int]] = {}  # (query view, known view) -> rules allowing it
    for r, rule in enumerate(rules):
        for qi, qv in enumerate(query.views):
            for kv in dict.fromkeys(rule(qv)):
                if kv in known_index:
                    combos.setdefault((qi, known_index[kv]), []).append(r)
    for (qi, ki), users in combos.items():
        k_present, k_usable = known.present[ki], known.usable[ki]
        if not k_present.any():
            continue
        k_absent, k_unusable = np.flatnonzero(~k_present), np.flatnonzero(~k_usable)
        for start in range(0, nq, chunk):
            stop = min(nq, start + chunk)
            q_present = query.present[qi, start:stop]
            if not q_present.any():
                continue
            d = _hamming(query.words[qi, start:stop], known.words[ki])
            if view_penalty and is_view_match(query.views[qi], known.views[ki]):
                d += view_penalty
            d[~q_present] = big
            d[:, k_absent] = big
            for r in users:
                np.minimum(out[r][1][start:stop], d, out=out[r][1][start:stop])
            d[~query.usable[qi, start:stop]] = big
            d[:, k_unusable] = big
            for r in users:
                np.minimum(out[r][0][start:stop], d, out=out[r][0][start:stop])
    if skip_diagonal:
        diagonal = np.arange(min(nq, nk))
        for ruled, unruled in out:
            ruled[diagonal, diagonal] = big
            unruled[diagonal, diagonal] = big
    return out
