"""Running the benchmark: configuration, hashing in a process pool, matching and scoring."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from matcher import local_features
from matcher.insets import find_insets
from matcher.places import FaissBinarySearch

from .corpus import KIND_SHARES, LOW_TEXTURE_KINDS, SIDES, STORE_QUALITY, ImageSpec, as_stored, generate, specs
from .matching import HashTable, no_match, pair_distances
from .methods import Method, View, ViewHashes, hash_sets, methods, views_available
from .transforms import TRANSFORMS

__all__ = ["Config", "run", "BLOCKS", "LocalFound"]

RESULTS = Path(__file__).resolve().parent.parent / "results"
ORIGINAL_SEED = 1_000_000
DISTRACTOR_SEED = 2_000_000
#: The kinds of false pair, in table order: a distractor searched among the originals and among
#: the other distractors, an edited copy among the originals but its own, an original among the
#: distractors (a known image that is itself evidence: the views and the local rule are not
#: symmetric, so this direction is not the first one's).
BLOCKS = ("distractor-original", "distractor-distractor", "edited-wrong original", "original-distractor")
QUICK = (20, 200)
DEFAULT = (300, 2000)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


@dataclass(frozen=True, slots=True)
class Config:
    """What to run. :meth:`from_env` reads the ``MATCHER_ROBUST_*`` variables."""

    originals: int = DEFAULT[0]
    distractors: int = DEFAULT[1]
    workers: int = 2
    false_match_rate: float = 1e-4
    out_dir: Path = RESULTS
    stem: str = "robustness"

    @classmethod
    def from_env(cls, quick: bool | None = None) -> Config:
        """``MATCHER_ROBUST_QUICK=1`` (or ``quick=True``): 20 originals, 200 distractors;
        ``MATCHER_ROBUST_ORIGINALS`` / ``MATCHER_ROBUST_DISTRACTORS`` / ``MATCHER_ROBUST_WORKERS``
        override. Results go to ``benchmarks/results/robustness.*`` at the default sizes and to
        ``robustness_<originals>x<distractors>.*`` at any other."""
        if quick is None:
            quick = os.environ.get("MATCHER_ROBUST_QUICK", "") not in ("", "0")
        base = QUICK if quick else DEFAULT
        originals = _env_int("MATCHER_ROBUST_ORIGINALS", base[0])
        distractors = _env_int("MATCHER_ROBUST_DISTRACTORS", base[1])
        workers = _env_int("MATCHER_ROBUST_WORKERS", min(2, os.cpu_count() or 1))
        if originals < 2 or distractors < 2 or workers < 1:
            raise ValueError("need at least 2 originals, 2 distractors and 1 worker")
        stem = "robustness" if (originals, distractors) == DEFAULT else f"robustness_{originals}x{distractors}"
        return cls(originals, distractors, workers, stem=stem)


# ------------------------------------------------------------------------------------- hashing

Sets = dict[str, ViewHashes]


@dataclass(slots=True)
class Hashed:
    """Every image's hash sets, per method key."""

    original_specs: list[ImageSpec]
    distractor_specs: list[ImageSpec]
    original_known: list[Sets] = field(default_factory=list)
    original_query: list[Sets] = field(default_factory=list)
    edited_query: dict[str, list[Sets]] = field(default_factory=dict)  # transform -> per original
    distractor_query: list[Sets] = field(default_factory=list)
    distractor_known: list[Sets] = field(default_factory=list)
    local: LocalFound | None = None


@dataclass(slots=True)
class LocalFound:
    """What the local-feature method found: per transform, whether each edited copy found its own
    original, and the false pairs (ids as in :class:`PairNames`) per block; the seconds spent."""

    own: dict[str, np.ndarray] = field(default_factory=dict)  # transform -> bool per original
    inliers: dict[str, np.ndarray] = field(default_factory=dict)  # transform -> inliers with its own (0: none)
    false: dict[str, list[int]] = field(default_factory=dict)  # block -> false pair ids
    # the same with the spread condition (inliers' hull >= SPREAD of the shown part) on top
    own_spread: dict[str, np.ndarray] = field(default_factory=dict)
    false_spread: dict[str, list[int]] = field(default_factory=dict)
    extract_seconds: float = 0.0
    find_seconds: float = 0.0
    queries: int = 0
    known_descriptors: int = 0

    def timed(self, extract_s: float, find_s: float) -> None:
        """Count one query and the seconds its extraction and search took."""
        self.extract_seconds += extract_s
        self.find_seconds += find_s
        self.queries += 1

    def false_pair(self, block: str, pair: int, spread: float) -> None:
        """Record a false pair, also in the spread variant when its hull reaches :data:`SPREAD`."""
        self.false[block].append(pair)
        if spread >= SPREAD:
            self.false_spread[block].append(pair)


# Per pool worker: the known local features (originals, then distractors) and their searches.
_KNOWN: list[local_features.LocalFeatures] = []
_ORIGINALS = 0
_SEARCH_ORIGINALS: FaissBinarySearch | None = None
_SEARCH_ALL: FaissBinarySearch | None = None
_SEARCH_DISTRACTORS: FaissBinarySearch | None = None
#: The spread a match needs in the "+ spread" variant (EVIDENCE_PAIR_RULE's).
SPREAD = local_features.EVIDENCE_PAIR_RULE.min_spread


def _known_local(spec: ImageSpec) -> local_features.LocalFeatures:
    """A known image's local features (:data:`matcher.local_features.KNOWN_PARAMS`)."""
    return local_features.extract(as_stored(generate(spec)), local_features.KNOWN_PARAMS)


def _init_local(known: list[local_features.LocalFeatures], originals: int) -> None:
    """Pool initializer: the known set and its FAISS binary searches (originals only; all; distractors only); OpenCV
    and FAISS on one thread each (a worker process per core already)."""
    global _KNOWN, _ORIGINALS, _SEARCH_ORIGINALS, _SEARCH_ALL, _SEARCH_DISTRACTORS
    import cv2
    import faiss

    cv2.setNumThreads(1)
    faiss.omp_set_num_threads(1)
    _KNOWN, _ORIGINALS = known, originals
    _SEARCH_ORIGINALS = FaissBinarySearch(known[:originals])
    _SEARCH_ALL = FaissBinarySearch(known)
    _SEARCH_DISTRACTORS = FaissBinarySearch(known[originals:])


def _local_find(
    image: Image.Image, among: str, own: int | None = None
) -> tuple[list[tuple[int, int, float]], float, float]:
    """``[(known position, inliers, spread)]`` found in ``image`` (queries: :data:`QUERY_PARAMS`, the default
    rule) among the ``"originals"``, the ``"distractors"`` or ``"all"`` known images (positions in
    ``_KNOWN``: originals first), and the seconds of extraction and search. As the scan does, a frame
    whose own features found nothing (besides ``own``: a distractor's own known features, which a
    scan's index would not hold) is searched again by its insets (:func:`matcher.insets.find_insets`),
    each cut out."""
    search, known, offset = {
        "originals": (_SEARCH_ORIGINALS, _KNOWN[:_ORIGINALS], 0),
        "distractors": (_SEARCH_DISTRACTORS, _KNOWN[_ORIGINALS:], _ORIGINALS),
        "all": (_SEARCH_ALL, _KNOWN, 0),
    }[among]
    t0 = time.perf_counter()
    query = local_features.extract(image, local_features.QUERY_PARAMS)
    extract_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    found = local_features.find(query, known, search)
    find_s = time.perf_counter() - t1
    hits = [(offset + position, match.inliers, match.spread) for position, match in found]
    if all(position == own for position, _, _ in hits):
        for box in find_insets(image):
            t0 = time.perf_counter()
            part = local_features.extract(image.crop(box), local_features.inset_params())
            t1 = time.perf_counter()
            inset_found = local_features.find(part, known, search)
            extract_s, find_s = extract_s + t1 - t0, find_s + time.perf_counter() - t1
            hits += [(offset + position, match.inliers, match.spread) for position, match in inset_found]
    return hits, extract_s, find_s


LocalResult = tuple[list[tuple[int, int, float]], float, float]


def _hash_original(
    item: tuple[int, ImageSpec],
) -> tuple[Sets, Sets, LocalResult, dict[str, Sets], dict[str, LocalResult]]:
    """The original's known and query sets and what local features found of it among the distractors,
    each edited copy's query sets and what local features found in it among the originals."""
    _, spec = item
    original = as_stored(generate(spec))
    query, known = hash_sets(original, query=True, known=True)
    edited: dict[str, Sets] = {}
    local: dict[str, LocalResult] = {}
    for t in TRANSFORMS:
        copy = as_stored(t.apply(original))
        edited[t.name] = hash_sets(copy, query=True, known=False)[0]
        local[t.name] = _local_find(copy, "originals")
    return known, query, _local_find(original, "distractors"), edited, local


def _hash_distractor(item: tuple[int, ImageSpec]) -> tuple[Sets, Sets, LocalResult]:
    number, spec = item
    image = as_stored(generate(spec))
    query, known = hash_sets(image, query=True, known=True)
    return query, known, _local_find(image, "all", own=_ORIGINALS + number)


def _progress(label: str, done: int, total: int, start: float) -> None:
    if done == total or done % max(1, total // 10) == 0:
        print(f"  {label}: {done}/{total} ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)


def hash_all(config: Config) -> Hashed:
    """Generate and hash every image (originals with all their edited copies, distractors), and run
    the local-feature method: known local features of every original and distractor first, then
    each edited copy searched among the originals, each original among the distractors and each
    distractor among all known images."""
    hashed = Hashed(specs(config.originals, ORIGINAL_SEED), specs(config.distractors, DISTRACTOR_SEED))
    hashed.edited_query = {t.name: [] for t in TRANSFORMS}
    n = config.originals
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=config.workers, initializer=_init_local, initargs=([], 0)) as pool:
        known_local = list(pool.map(_known_local, hashed.original_specs + hashed.distractor_specs, chunksize=16))
    _progress("known local features", len(known_local), len(known_local), start)
    found = LocalFound(
        own={t.name: np.zeros(n, bool) for t in TRANSFORMS},
        inliers={t.name: np.zeros(n, np.int64) for t in TRANSFORMS},
        false={b: [] for b in BLOCKS},
        own_spread={t.name: np.zeros(n, bool) for t in TRANSFORMS},
        false_spread={b: [] for b in BLOCKS},
        known_descriptors=sum(len(f) for f in known_local),
    )
    with ProcessPoolExecutor(max_workers=config.workers, initializer=_init_local, initargs=(known_local, n)) as pool:
        originals = pool.map(_hash_original, enumerate(hashed.original_specs))
        for i, (known, query, (hits, extract_s, find_s), edited, local) in enumerate(originals, 1):
            q = i - 1
            hashed.original_known.append(known)
            hashed.original_query.append(query)
            found.timed(extract_s, find_s)
            for position, _, spread in hits:
                found.false_pair(BLOCKS[3], q * config.distractors + position - n, spread)
            for t_index, transform in enumerate(TRANSFORMS):
                hashed.edited_query[transform.name].append(edited[transform.name])
                hits, extract_s, find_s = local[transform.name]
                found.timed(extract_s, find_s)
                for position, inliers, spread in hits:
                    if position == q:
                        found.own[transform.name][q] = True
                        found.own_spread[transform.name][q] = spread >= SPREAD
                        found.inliers[transform.name][q] = inliers
                    else:
                        found.false_pair(BLOCKS[2], t_index * n * n + q * n + position, spread)
            _progress("originals and edited copies", i, n, start)
        distractors = pool.map(_hash_distractor, enumerate(hashed.distractor_specs), chunksize=8)
        for i, (query, known, (hits, extract_s, find_s)) in enumerate(distractors, 1):
            q = i - 1
            hashed.distractor_query.append(query)
            hashed.distractor_known.append(known)
            found.timed(extract_s, find_s)
            for position, _, spread in hits:
                block, pair = (
                    (BLOCKS[0], q * n + position)
                    if position < n
                    else (BLOCKS[1], q * config.distractors + position - n)
                )
                if position - n == q:
                    continue
                found.false_pair(block, pair, spread)
            _progress("distractors", i, config.distractors, start)
    hashed.local = found
    return hashed


# ------------------------------------------------------------------------------------ matching


@dataclass(slots=True)
class Distances:
    """One method's distances: true pairs per transform, false-pair histograms and matches per block."""

    true_ruled: dict[str, np.ndarray] = field(default_factory=dict)
    true_unruled: dict[str, np.ndarray] = field(default_factory=dict)
    false_hist_ruled: dict[str, np.ndarray] = field(default_factory=dict)  # bincount, last bin: no match
    false_hist_unruled: dict[str, np.ndarray] = field(default_factory=dict)
    false_matches: dict[str, np.ndarray] = field(default_factory=dict)  # ids of matched false pairs (rule on)
    false_match_distances: dict[str, np.ndarray] = field(default_factory=dict)  # their distances
    query_views: float = 0.0  # mean number of views per query image
    known_views: float = 0.0


def _table(sets: Iterable[Sets], method: Method) -> HashTable:
    return HashTable.build([s[method.hash_set] for s in sets], method.bit_length, method.min_quality)


def _hist(values: np.ndarray, bit_length: int) -> np.ndarray:
    return np.bincount(values.ravel().astype(np.intp), minlength=no_match(bit_length) + 1)


def _used(table: HashTable, views: set[View]) -> np.ndarray:
    """Per image, how many of its views are among ``views``."""
    rows = [i for i, v in enumerate(table.views) if v in views]
    return table.present[rows].sum(axis=0) if rows else np.zeros(len(table), np.int64)


def match_methods(group: Sequence[Method], hashed: Hashed) -> list[Distances]:
    """All distances of methods that share one hash set kind (each distance matrix computed once)."""
    first = group[0]
    n, bits = len(hashed.original_specs), first.bit_length
    rules = [m.rule for m in group]
    penalty = first.view_penalty  # one algorithm per group
    out = [Distances() for _ in group]
    known = _table(hashed.original_known, first)
    d_query = _table(hashed.distractor_query, first)
    d_known = _table(hashed.distractor_known, first)
    off = ~np.eye(n, dtype=bool)
    wrong: list[list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in group]
    edited_tables = []
    for t_index, transform in enumerate(TRANSFORMS):
        edited = _table(hashed.edited_query[transform.name], first)
        edited_tables.append(edited)
        for j, (ruled, unruled) in enumerate(pair_distances(edited, known, rules, view_penalty=penalty)):
            out[j].true_ruled[transform.name] = np.diagonal(ruled).copy()
            out[j].true_unruled[transform.name] = np.diagonal(unruled).copy()
            flat = np.flatnonzero((ruled <= group[j].threshold) & off)
            wrong[j].append((ruled[off], unruled[off], t_index * n * n + flat, ruled.ravel()[flat]))
    for j, parts in enumerate(wrong):
        out[j].false_hist_ruled[BLOCKS[2]] = _hist(np.concatenate([p[0] for p in parts]), bits)
        out[j].false_hist_unruled[BLOCKS[2]] = _hist(np.concatenate([p[1] for p in parts]), bits)
        out[j].false_matches[BLOCKS[2]] = np.concatenate([p[2] for p in parts])
        out[j].false_match_distances[BLOCKS[2]] = np.concatenate([p[3] for p in parts])
    o_query = _table(hashed.original_query, first)
    for block, queries, target, diagonal in (
        (BLOCKS[0], d_query, known, False),
        (BLOCKS[1], d_query, d_known, True),
        (BLOCKS[3], o_query, d_known, False),
    ):
        keep = ~np.eye(len(queries), dtype=bool) if diagonal else np.ones((len(queries), len(target)), bool)
        for j, (ruled, unruled) in enumerate(
            pair_distances(queries, target, rules, skip_diagonal=diagonal, view_penalty=penalty)
        ):
            out[j].false_hist_ruled[block] = _hist(ruled[keep], bits)
            out[j].false_hist_unruled[block] = _hist(unruled[keep], bits)
            flat = np.flatnonzero(ruled <= group[j].threshold)
            out[j].false_matches[block] = flat
            out[j].false_match_distances[block] = ruled.ravel()[flat]
    # views each method uses per image: query views its rule gives a use, known views it reaches
    for j, method in enumerate(group):
        used = {v for t in (*edited_tables, d_query, o_query) for v in t.views if method.rule(v)}
        reach = {kv for v in used for kv in method.rule(v)}
        q_counts = [_used(t, used) for t in (*edited_tables, d_query, o_query)]
        k_counts = [_used(t, reach) for t in (known, d_known)]
        out[j].query_views = float(np.concatenate(q_counts).mean())
        out[j].known_views = float(np.concatenate(k_counts).mean())
    return out


# ------------------------------------------------------------------------------------- scoring


def _ratio(matched: int, total: int) -> float:
    return matched / total if total else float("nan")


def _threshold_at(false_hist: np.ndarray, allowed_matches: int, bit_length: int) -> int:
    """The largest threshold with at most ``allowed_matches`` false matches (-1: none)."""
    cumulative = np.cumsum(false_hist[: bit_length + 1])
    ok = np.flatnonzero(cumulative <= allowed_matches)
    return int(ok[-1]) if ok.size else -1


@dataclass(frozen=True, slots=True)
class PairNames:
    """Decodes false-pair ids (see :func:`match_methods`) into the images they stand for."""

    originals: Sequence[ImageSpec]
    distractors: Sequence[ImageSpec]

    def decode(self, block: str, pair_id: int) -> tuple[str, ImageSpec, ImageSpec]:
        """(transform of the query or "", query image spec, known image spec)."""
        n, m = len(self.originals), len(self.distractors)
        if block == BLOCKS[2]:
            t, rest = divmod(int(pair_id), n * n)
            q, k = divmod(rest, n)
            return TRANSFORMS[t].name, self.originals[q], self.originals[k]
        q, k = divmod(int(pair_id), n if block == BLOCKS[0] else m)
        if block == BLOCKS[3]:
            return "", self.originals[q], self.distractors[k]
        return "", self.distractors[q], (self.originals if block == BLOCKS[0] else self.distractors)[k]

    def details(
        self, ids: dict[str, np.ndarray], distances: dict[str, np.ndarray] | None, examples: int = 20
    ) -> dict[str, Any]:
        """False matches between two low-texture images, counts by kind pair, and a few examples."""
        low, by_kind, listed = 0, Counter[str](), []
        for block in BLOCKS:
            for i, pair_id in enumerate(ids[block]):
                transform, query, known = self.decode(block, pair_id)
                low += query.kind in LOW_TEXTURE_KINDS and known.kind in LOW_TEXTURE_KINDS
                by_kind[f"{query.kind} vs {known.kind}"] += 1
                if i < examples:
                    listed.append(
                        {
                            "block": block,
                            "transform": transform or None,
                            "query": asdict(query),
                            "known": asdict(known),
                            "distance": None if distances is None else int(distances[block][i]),
                        }
                    )
        return {"both_low_texture": low, "by_kind": dict(by_kind.most_common()), "examples": listed}


def _by_kind(true: dict[str, np.ndarray], threshold: int, kinds: np.ndarray) -> dict[str, dict[str, float]]:
    return {
        kind: {t: float((v[kinds == kind] <= threshold).mean()) for t, v in true.items()}
        for kind in dict.fromkeys(kinds.tolist())
    }


def score(
    method: Method,
    d: Distances,
    textured: np.ndarray,
    kinds: np.ndarray,
    false_pairs: dict[str, int],
    rate: float,
    names: PairNames,
) -> dict[str, Any]:
    """The JSON record of one method."""
    thr, bits = method.threshold, method.bit_length
    total_pairs = sum(false_pairs.values())
    pooled_false = np.sum(list(d.false_hist_ruled.values()), axis=0)
    pooled_false_unruled = np.sum(list(d.false_hist_unruled.values()), axis=0)
    allowed = int(np.floor(rate * total_pairs))
    fmr_thr = _threshold_at(pooled_false, allowed, bits)
    zero_thr = _threshold_at(pooled_false, 0, bits)
    pooled_true = np.concatenate(list(d.true_ruled.values()))
    fm = {b: int(d.false_hist_ruled[b][: thr + 1].sum()) for b in BLOCKS}
    fm_unruled = {b: int(d.false_hist_unruled[b][: thr + 1].sum()) for b in BLOCKS}
    return {
        "key": method.key,
        "label": method.label,
        "algorithm": method.algorithm,
        "mode": method.mode,
        "peer": method.peer,
        "threshold": thr,
        "quality_rule": method.min_quality,
        "mean_query_views": round(d.query_views, 2),
        "mean_known_views": round(d.known_views, 2),
        "recall": {t: _ratio(int((v <= thr).sum()), v.size) for t, v in d.true_ruled.items()},
        "recall_textured": {
            t: _ratio(int((v[textured] <= thr).sum()), int(textured.sum())) for t, v in d.true_ruled.items()
        },
        "recall_by_kind": _by_kind(d.true_ruled, thr, kinds),
        "recall_without_quality_rule": {t: _ratio(int((v <= thr).sum()), v.size) for t, v in d.true_unruled.items()},
        "refused_by_quality_rule": {
            t: int(((d.true_unruled[t] <= thr) & (d.true_ruled[t] > thr)).sum()) for t in d.true_ruled
        },
        "false_matches": {**fm, "total": sum(fm.values())},
        "false_matches_without_quality_rule": {**fm_unruled, "total": sum(fm_unruled.values())},
        "false_match_details": names.details(d.false_matches, d.false_match_distances),
        "false_pairs_not_comparable": int(pooled_false[no_match(bits)]),
        "fmr_threshold": fmr_thr,
        "recall_at_fmr": {t: _ratio(int((v <= fmr_thr).sum()), v.size) for t, v in d.true_ruled.items()},
        "zero_false_match_threshold": zero_thr,
        "recall_at_zero_false_matches": {
            t: _ratio(int((v <= zero_thr).sum()), v.size) for t, v in d.true_ruled.items()
        },
        "true_distance_hist": np.bincount(pooled_true, minlength=no_match(bits) + 1).tolist(),
        "true_distance_hist_by_transform": {
            t: np.bincount(v, minlength=no_match(bits) + 1).tolist() for t, v in d.true_ruled.items()
        },
        "false_distance_hist": pooled_false.tolist(),
        "false_distance_hist_without_quality_rule": pooled_false_unruled.tolist(),
    }


def score_any(
    label: str, parts: Sequence[tuple[Method, Distances]], textured: np.ndarray, names: PairNames
) -> dict[str, Any]:
    """A method that matches when any of ``parts`` matches (no single threshold, so no FMR figures)."""
    hit = {t.name: np.logical_or.reduce([d.true_ruled[t.name] <= m.threshold for m, d in parts]) for t in TRANSFORMS}
    hit_unruled = {
        t.name: np.logical_or.reduce([d.true_unruled[t.name] <= m.threshold for m, d in parts]) for t in TRANSFORMS
    }
    union = {b: np.unique(np.concatenate([d.false_matches[b] for _, d in parts])) for b in BLOCKS}
    fm = {b: int(ids.size) for b, ids in union.items()}
    return {
        "key": "any_" + "_".join(m.key for m, _ in parts),
        "label": label,
        "algorithm": "+".join(m.algorithm for m, _ in parts),
        "mode": parts[0][0].mode,
        "peer": False,
        "threshold": None,
        "parts": [m.key for m, _ in parts],
        "recall": {t: float(v.mean()) for t, v in hit.items()},
        "recall_textured": {t: float(v[textured].mean()) for t, v in hit.items()},
        "recall_without_quality_rule": {t: float(v.mean()) for t, v in hit_unruled.items()},
        "refused_by_quality_rule": {t: int((hit_unruled[t] & ~hit[t]).sum()) for t in hit},
        "false_matches": {**fm, "total": sum(fm.values())},
        "false_match_details": names.details(union, None),
    }


def score_found(
    key: str,
    label: str,
    algorithm: str,
    hit: dict[str, np.ndarray],
    false: dict[str, np.ndarray],
    textured: np.ndarray,
    kinds: np.ndarray,
    names: PairNames,
) -> dict[str, Any]:
    """A method that says found / not found (no distance): local features, or PDQ then local."""
    fm = {b: int(np.unique(false[b]).size) for b in BLOCKS}
    return {
        "key": key,
        "label": label,
        "algorithm": algorithm,
        "mode": "local",
        "peer": False,
        "threshold": None,
        "recall": {t: float(v.mean()) for t, v in hit.items()},
        "recall_textured": {t: float(v[textured].mean()) if textured.any() else float("nan") for t, v in hit.items()},
        "recall_by_kind": {
            kind: {t: float(v[kinds == kind].mean()) for t, v in hit.items()} for kind in dict.fromkeys(kinds.tolist())
        },
        "recall_without_quality_rule": {t: float(v.mean()) for t, v in hit.items()},
        "refused_by_quality_rule": {t: 0 for t in hit},
        "false_matches": {**fm, "total": sum(fm.values())},
        "false_match_details": names.details({b: np.unique(false[b]) for b in BLOCKS}, None),
    }


def _kinds(items: Sequence[ImageSpec]) -> dict[str, int]:
    return dict(Counter(s.kind for s in items))


def _main_quality(sets: Sequence[Sets]) -> np.ndarray:
    return np.array([s["pdq"][None][1] for s in sets], dtype=np.int64)


def run(config: Config) -> dict[str, Any]:
    """Hash, match and score everything; the JSON-ready results."""
    t0 = time.perf_counter()
    print(
        f"robustness: {config.originals} originals x {len(TRANSFORMS)} transforms, {config.distractors} "
        f"distractors, {config.workers} workers, matcher.views {'found' if views_available() else 'absent'}",
        file=sys.stderr,
        flush=True,
    )
    hashed = hash_all(config)
    t1 = time.perf_counter()
    n, m = config.originals, config.distractors
    false_pairs = {
        BLOCKS[0]: m * n,
        BLOCKS[1]: m * (m - 1),
        BLOCKS[2]: len(TRANSFORMS) * n * (n - 1),
        BLOCKS[3]: n * m,
    }
    quality = _main_quality(hashed.original_known)
    d_quality = _main_quality(hashed.distractor_known)
    textured = quality >= 50
    run_methods = methods()
    distances: dict[str, Distances] = {}
    for hash_set in dict.fromkeys(m.hash_set for m in run_methods):
        group = [m for m in run_methods if m.hash_set == hash_set]
        print(
            f"  matching {', '.join(m.label for m in group)} ({time.perf_counter() - t1:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
        distances.update(zip((m.key for m in group), match_methods(group, hashed)))
    kinds = np.array([s.kind for s in hashed.original_specs])
    names = PairNames(hashed.original_specs, hashed.distractor_specs)
    records = [
        score(m, distances[m.key], textured, kinds, false_pairs, config.false_match_rate, names) for m in run_methods
    ]
    best = "views" if views_available() else "rotations"
    by_key = {m.key: m for m in run_methods}
    records.append(
        score_any(
            f"pdq or phash {'+views' if best == 'views' else '+rot'}",
            [(by_key[k], distances[k]) for k in (f"pdq_{best}", f"phash_{best}")],
            textured,
            names,
        )
    )
    local = hashed.local
    if local is not None:
        views = distances[f"pdq_{best}"]
        threshold = by_key[f"pdq_{best}"].threshold
        plus = "+views" if best == "views" else "+rot"
        for suffix, label, own, false in (
            ("", "", local.own, local.false),
            ("_spread", f", spread >= {SPREAD:g}", local.own_spread, local.false_spread),
        ):
            local_false = {b: np.asarray(false[b], np.int64) for b in BLOCKS}
            records.append(
                score_found(
                    "local" + suffix,
                    "matcher local features" + label,
                    "local",
                    own,
                    local_false,
                    textured,
                    kinds,
                    names,
                )
            )
            either = {t.name: (views.true_ruled[t.name] <= threshold) | own[t.name] for t in TRANSFORMS}
            union = {b: np.concatenate([views.false_matches[b], local_false[b]]) for b in BLOCKS}
            records.append(
                score_found(
                    f"pdq_{best}_local{suffix}",
                    f"matcher PDQ {plus} + local{label}",
                    "pdq+local",
                    either,
                    union,
                    textured,
                    kinds,
                    names,
                )
            )
    t2 = time.perf_counter()
    all_query = [s for sets in hashed.edited_query.values() for s in sets] + hashed.distractor_query
    consistency = {
        "query_images": len(all_query),
        "pdq_global_differs_from_pdqhash": sum(s["pdq"]["orig"] != s["pdqhash"]["dihedral0"] for s in all_query),
        "phash_global_differs_from_imagehash": sum(s["phash"]["orig"][0] != s["imagehash"][None][0] for s in all_query),
    }
    return {
        "config": {
            **{k: v for k, v in asdict(config).items() if k != "out_dir"},
            "long_side": list(SIDES),
            "kind_shares": KIND_SHARES,
            "jpeg_quality": STORE_QUALITY,
            "seeds": {"originals": ORIGINAL_SEED, "distractors": DISTRACTOR_SEED},
        },
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
        },
        "views_module": views_available(),
        "runtime_s": {"hashing": round(t1 - t0, 1), "matching": round(t2 - t1, 1), "total": round(t2 - t0, 1)},
        "local": None
        if local is None
        else {
            "queries": local.queries,
            "known_images": n + m,
            "known_descriptors": local.known_descriptors,
            "extract_ms_per_query": round(1000 * local.extract_seconds / max(1, local.queries), 2),
            "find_ms_per_query": round(1000 * local.find_seconds / max(1, local.queries), 2),
            "search": "FAISS IndexBinaryFlat (matcher.places.FaissBinarySearch): edited copies among the originals, "
            "distractors among originals and distractors, originals among the distractors",
            "rule": "matcher.local_features.DEFAULT_RULE; known KNOWN_PARAMS, queries QUERY_PARAMS; find() verifies "
            "the 10 best-voted candidates",
            "median_inliers_own": {
                t: float(np.median(v[v > 0])) if (v > 0).any() else None for t, v in local.inliers.items()
            },
        },
        "transforms": [
            {"name": t.name, "target": t.target, "group": t.group, "description": t.description} for t in TRANSFORMS
        ],
        "originals": {
            "count": n,
            "by_kind": _kinds(hashed.original_specs),
            "pdq_quality_below_50": int((~textured).sum()),
            "pdq_quality_below_50_by_kind": _kinds([s for s, ok in zip(hashed.original_specs, textured) if not ok]),
            "low_texture_kinds": list(LOW_TEXTURE_KINDS),
        },
        "distractors": {
            "count": m,
            "by_kind": _kinds(hashed.distractor_specs),
            "pdq_quality_below_50": int((d_quality < 50).sum()),
        },
        "false_pairs": {**false_pairs, "total": sum(false_pairs.values())},
        "false_match_rate": config.false_match_rate,
        "consistency": consistency,
        "methods": records,
    }
