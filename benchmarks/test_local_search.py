"""Local features: the candidate search at 10,000-100,000 known images, against FAISS, in one run.

Run (about 8 minutes at 100,000 known images on 2 shared cores, 5 GB of memory)::

    MATCHER_LOCAL_SIZES=100000 MATCHER_LOCAL_FLAT_QUERIES=6 python -m pytest benchmarks/test_local_search.py -s
    MATCHER_LOCAL_SIZES=10000 python -m pytest benchmarks/test_local_search.py -s   # quick
    MATCHER_LOCAL_PEERS=1 MATCHER_LOCAL_SIZES=10000 ...   # also FAISS IVF and HNSW (about 20 minutes)

The known set: ``TARGETS`` real known images (generated scenes of the kinds landscape, shapes and
text, 640 x 480, features extracted as an index stores them: ``KNOWN_PARAMS``), and synthetic known
images up to the size: each holds ``KNOWN_PARAMS.max_keypoints`` descriptors drawn at random from a pool of real descriptors
(``POOL`` other generated scenes, all four kinds), each with every bit flipped with probability
1/8 (about 32 bits). So the distractors have ORB's bit statistics (biased and correlated bits,
texture and text codes) but are not copies of one another. The queries (extracted as a scan does:
``QUERY_PARAMS``): each target cropped 20 % centred, pasted at 60 % into a chat-like interface
(a screenshot) and one tile of a 2x2 collage; and as many unrelated scenes.

For each structure it measures, single-threaded, the time of the search of one frame's
descriptors (``ms``) and the *vote recall*: the share of the queries whose target is among the 10
candidates with most votes (at least 6), as :func:`matcher.local_features.vote` counts them, and
the same for the exact search (FAISS ``IndexBinaryFlat``) as the reference; ``found``: the share
whose target is then verified (:func:`matcher.local_features.verify` of the 10 best candidates),
and ``false``: unrelated queries that verified anything. Structures: matcher's
:class:`~matcher.index.descriptors.DescriptorTree` (probes swept), FAISS ``IndexBinaryIVF``
(``nlist`` 4096 trained on a sample, ``nprobe`` swept) and ``IndexBinaryHNSW`` (M 16,
``efSearch`` swept; built at the smallest size only: its build takes hours at 20M descriptors).
Figures go to ``benchmarks/results/local_search.json``.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np
from PIL import Image

from benchmarks.local_features_probe import centred_crop, collage, screenshot
from benchmarks.speed_common import env_int, save
from fixtures.generate import scene
from matcher import local_features as lf
from matcher.index.descriptors import DescriptorTree, TreeProbes
from matcher.index.local_table import LocalHit, LocalTable

SIZES = [int(s) for s in os.environ.get("MATCHER_LOCAL_SIZES", "100000").split(",")]
TARGETS = env_int("MATCHER_LOCAL_TARGETS", 12)
POOL = env_int("MATCHER_LOCAL_POOL", 120)
FLAT_QUERIES = env_int("MATCHER_LOCAL_FLAT_QUERIES", 6)  # the exact search on a subset at 100k (seconds a frame)
KINDS = ("landscape", "shapes", "text")
PER_IMAGE = lf.KNOWN_PARAMS.max_keypoints  # descriptors of a synthetic known image


def _known_sets() -> tuple[
    list[lf.LocalFeatures], np.ndarray, list[tuple[str, int, lf.LocalFeatures]], list[Image.Image]
]:
    targets = [scene(1000 + i, 640, 480, KINDS[i % 3]) for i in range(TARGETS)]
    known = [lf.extract(img, lf.KNOWN_PARAMS) for img in targets]
    pool = np.concatenate(
        [
            lf.extract(scene(5000 + i, 640, 480, (*KINDS, "plasma")[i % 4]), lf.KNOWN_PARAMS).descriptors
            for i in range(POOL)
        ]
    )
    rng = np.random.default_rng(3)
    queries: list[tuple[str, int, lf.LocalFeatures]] = []
    others = [scene(9000 + i, 640, 480, KINDS[i % 3]) for i in range(3)]
    for i, img in enumerate(targets):
        for name, edited in (
            ("crop20", centred_crop(img, 20)[0]),
            ("screenshot60", screenshot(img, 0.6, rng, ui_seed=i)[0]),
            ("tile2x2", collage(img, list(others), 2, i % 4)[0]),
        ):
            queries.append((name, i, lf.extract(edited, lf.QUERY_PARAMS)))
    for i in range(TARGETS):
        queries.append(("unrelated", -1, lf.extract(scene(7000 + i, 640, 480, KINDS[i % 3]), lf.QUERY_PARAMS)))
    return known, pool, queries, targets


def _synthetic(pool: np.ndarray, images: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((images * PER_IMAGE, 32), np.uint8)
    step = 1_000_000
    for start in range(0, len(out), step):
        n = min(step, len(out) - start)
        rows = pool[rng.integers(0, len(pool), n)]
        flips = rng.integers(0, 256, (n, 32), dtype=np.uint8)
        flips &= rng.integers(0, 256, (n, 32), dtype=np.uint8)
        flips &= rng.integers(0, 256, (n, 32), dtype=np.uint8)
        out[start : start + n] = rows ^ flips
    return out


class _Faiss:
    def __init__(self, index: Any, owners: np.ndarray) -> None:
        self.index, self.owners = index, owners

    def search(self, descriptors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        d, i = self.index.search(np.ascontiguousarray(descriptors), k)
        return d, np.where(i >= 0, self.owners[np.maximum(i, 0)], -1)


def _measure(
    search: lf.DescriptorSearch,
    queries: list[tuple[str, int, lf.LocalFeatures]],
    known: list[lf.LocalFeatures],
    verify: bool,
) -> dict[str, Any]:
    times, hits, found, false = [], {}, {}, 0
    for name, target, query in queries:
        started = time.perf_counter()
        candidates = lf.vote(query, search)
        times.append(time.perf_counter() - started)
        top = [c for c, _v in candidates[:10]]
        if target >= 0:
            hits.setdefault(name, []).append(target in top)
        if verify:
            verified = [c for c in top if c < len(known) and lf.verify(query, known[c]) is not None]
            if target >= 0:
                found.setdefault(name, []).append(target in verified)
            elif verified:
                false += 1
    out: dict[str, Any] = {
        "ms_per_frame": round(1000 * float(np.mean(times)), 2),
        "vote_recall": {name: round(float(np.mean(v)), 3) for name, v in hits.items()},
        "vote_recall_all": round(float(np.mean([x for v in hits.values() for x in v])), 3),
    }
    if verify:
        out["found"] = {name: round(float(np.mean(v)), 3) for name, v in found.items()}
        out["false_matches"] = false
    return out


def _table(known: list[lf.LocalFeatures], synthetic: np.ndarray, first_id: int = 1) -> LocalTable:
    """The index's local table of the real known images (records ``first_id`` on: 1..TARGETS) and the
    synthetic ones."""
    count = len(known) + len(synthetic) // PER_IMAGE
    sizes = np.tile(np.array([[640, 480]], np.uint32), (count, 1))
    counts = np.array([len(k) for k in known] + [PER_IMAGE] * (len(synthetic) // PER_IMAGE), np.int64)
    starts = np.zeros(count + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    rng = np.random.default_rng(1)
    points = np.concatenate(
        [*(np.asarray(k.points) for k in known), rng.integers(0, 65536, (len(synthetic), 2)).astype(np.uint16)]
    )
    descriptors = np.concatenate([*(np.asarray(k.descriptors) for k in known), synthetic]) if known else synthetic
    ids = np.arange(first_id, first_id + count, dtype=np.int64)
    return LocalTable.from_columns(ids, sizes, starts, points, descriptors)


def _stage(
    find: Callable[[lf.LocalFeatures], list[LocalHit]],
    images: list[tuple[str, int, Image.Image]],
) -> dict[str, Any]:
    """The scan's local stage on each evidence frame, one thread: extraction (``QUERY_PARAMS``), then
    ``find`` (e.g. :meth:`LocalTable.find`: vote, verify the best candidates; its hits best first)."""
    extract_ms, find_ms, found, false = [], [], {}, 0
    for name, target, image in images:
        started = time.perf_counter()
        query = lf.extract(image, lf.QUERY_PARAMS)
        middle = time.perf_counter()
        hits = find(query)
        done = time.perf_counter()
        extract_ms.append(1000 * (middle - started))
        find_ms.append(1000 * (done - middle))
        if target >= 0:
            found.setdefault(name, []).append([h.record for h in hits[:1]] == [target + 1])
        elif hits:
            false += 1
    return {
        "extract_ms": round(float(np.median(extract_ms)), 2),
        "search_verify_ms": round(float(np.median(find_ms)), 2),
        "total_ms": round(float(np.median(np.add(extract_ms, find_ms))), 2),
        "total_ms_mean": round(float(np.mean(np.add(extract_ms, find_ms))), 2),
        "found": {name: round(float(np.mean(v)), 3) for name, v in found.items()},
        "found_all": round(float(np.mean([x for v in found.values() for x in v])), 3),
        "false_matches": false,
    }


def test_local_search() -> None:
    """The chosen path (the index's descriptor tree, as a scan runs it) at each size; with
    ``MATCHER_LOCAL_PEERS=1`` also FAISS IVF and HNSW on the raw vote (see the module notes)."""
    import cv2

    cv2.setNumThreads(1)
    faiss.omp_set_num_threads(1)
    known, pool, queries, targets = _known_sets()
    images = _edited_images(targets)
    real = np.concatenate([k.descriptors for k in known])
    real_owners = np.repeat(np.arange(len(known)), [len(k) for k in known])
    results: dict[str, Any] = {"targets": TARGETS, "pool_images": POOL, "queries": len(queries)}
    ceiling: dict[str, list[bool]] = {}
    for name, target, query in queries:  # what verification alone finds (the target given): the stage's ceiling
        if target >= 0:
            ceiling.setdefault(name, []).append(lf.verify(query, known[target]) is not None)
    results["verify_ceiling"] = {name: round(float(np.mean(v)), 3) for name, v in ceiling.items()}
    for size in SIZES:
        synthetic = _synthetic(pool, size - len(known), seed=size)
        row: dict[str, Any] = {"descriptors": len(real) + len(synthetic)}
        started = time.perf_counter()
        table = _table(known, synthetic)
        row["table_build_s"] = round(time.perf_counter() - started, 1)
        row["branch"] = table.tree.branch
        row["bytes_per_known_image"] = round(sum(a.nbytes for a in table.arrays().values()) / len(table), 1)
        for p1, p2 in ((1, 1), (1, 2), (2, 2)):  # (2, 2): the default (DEFAULT_PROBES)
            probes = TreeProbes(probe1=p1, probe2=p2)
            row[f"stage_tree_{p1}x{p2}"] = _stage(functools.partial(table.find, probes=probes), images)
            row[f"vote_tree_{p1}x{p2}"] = _measure(_Probed(table.tree, probes), queries, known, verify=False)
        descriptors = np.concatenate([real, synthetic])
        owners = np.concatenate([real_owners, len(known) + np.arange(len(synthetic)) // PER_IMAGE]).astype(np.int64)
        del table
        flat = faiss.IndexBinaryFlat(256)
        flat.add(descriptors)
        subset = queries if size <= 10_000 else [q for q in queries if 0 <= q[1] < FLAT_QUERIES // 3]
        row["vote_faiss_flat"] = _measure(_Faiss(flat, owners), subset, known, verify=False)
        row["vote_faiss_flat"]["queries"] = len(subset)
        del flat
        if os.environ.get("MATCHER_LOCAL_PEERS") == "1":
            _peers(row, descriptors, owners, queries, known)
        results[str(size)] = row
        print(size, row, flush=True)
        save("local_search", results)


class _Probed:
    """The tree's raw vote search with all of a frame's descriptors (as FAISS is asked)."""

    def __init__(self, tree: DescriptorTree, probes: TreeProbes) -> None:
        self.tree, self.probes = tree, probes

    def search(self, descriptors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        held = self.tree.probes
        self.tree.probes = self.probes
        try:
            return self.tree.search(descriptors, k)
        finally:
            self.tree.probes = held


def _edited_images(targets: list[Image.Image]) -> list[tuple[str, int, Image.Image]]:
    rng = np.random.default_rng(3)
    others = [scene(9000 + i, 640, 480, KINDS[i % 3]) for i in range(3)]
    out: list[tuple[str, int, Image.Image]] = []
    for i, img in enumerate(targets):
        out.append(("crop20", i, centred_crop(img, 20)[0]))
        out.append(("screenshot60", i, screenshot(img, 0.6, rng, ui_seed=i)[0]))
        out.append(("tile2x2", i, collage(img, list(others), 2, i % 4)[0]))
    for i in range(TARGETS):
        out.append(("unrelated", -1, scene(7000 + i, 640, 480, KINDS[i % 3])))
    return out


def _peers(
    row: dict[str, Any],
    descriptors: np.ndarray,
    owners: np.ndarray,
    queries: list[tuple[str, int, lf.LocalFeatures]],
    known: list[lf.LocalFeatures],
) -> None:
    started = time.perf_counter()
    quantizer = faiss.IndexBinaryFlat(256)
    ivf = faiss.IndexBinaryIVF(quantizer, 256, 4096)
    rng = np.random.default_rng(0)
    ivf.train(descriptors[rng.choice(len(descriptors), min(len(descriptors), 4096 * 40), replace=False)])
    ivf.add(descriptors)
    row["ivf_build_s"] = round(time.perf_counter() - started, 1)
    for nprobe in (1, 4, 16, 64):
        ivf.nprobe = nprobe
        row[f"vote_faiss_ivf4096_nprobe{nprobe}"] = _measure(_Faiss(ivf, owners), queries, known, verify=False)
    del ivf
    started = time.perf_counter()
    hnsw = faiss.IndexBinaryHNSW(256, 16)
    hnsw.add(descriptors)
    row["hnsw_build_s"] = round(time.perf_counter() - started, 1)
    for ef in (16, 64, 256):
        hnsw.hnsw.efSearch = ef
        row[f"vote_faiss_hnsw16_ef{ef}"] = _measure(_Faiss(hnsw, owners), queries, known, verify=False)


SHARDED_SIZE = env_int("MATCHER_LOCAL_SHARDED_SIZE", 1_000_000)
SHARDS = env_int("MATCHER_LOCAL_SHARDS", 4)


def test_local_search_sharded() -> None:
    """The scan's local stage against ``MATCHER_LOCAL_SHARDED_SIZE`` known images (default 1,000,000)
    split into ``MATCHER_LOCAL_SHARDS`` shards (default 4), as a sharded index holds them (each shard
    its own descriptor tree; :func:`matcher.index.shards.merge_local_results` merges by inliers): per
    frame, extraction once, then vote and verification in every shard, one thread. One machine's
    memory holds the 4 shards' tables (~2 GB each at 1M) where one 1M table's build does not fit
    beside other work. Run: ``python -m pytest benchmarks/test_local_search.py -s -k sharded``."""
    import cv2

    from matcher.index.shards import merge_local_results

    cv2.setNumThreads(1)
    known, pool, _queries, targets = _known_sets()
    images = _edited_images(targets)
    per_shard = SHARDED_SIZE // SHARDS
    tables: list[LocalTable] = []
    started = time.perf_counter()
    first_id = 1
    for k in range(SHARDS):
        real = known if k == 0 else []
        synthetic = _synthetic(pool, per_shard - len(real), seed=SHARDED_SIZE + k)
        tables.append(_table(real, synthetic, first_id))
        first_id += len(tables[-1])
        del synthetic
    build_s = time.perf_counter() - started

    def find(query: lf.LocalFeatures) -> list[LocalHit]:  # every shard, merged (default probes and rule)
        return merge_local_results([[table.find(query)] for table in tables], 1)[0]

    stage = _stage(find, images)
    all_shards = stage.pop("search_verify_ms")
    row = {
        "known_images": sum(len(t) for t in tables),
        "shards": SHARDS,
        "descriptors": int(sum(int(t.tree.offsets[-1]) for t in tables)),
        "branch": [t.tree.branch for t in tables],
        "tables_build_s": round(build_s, 1),
        **stage,
        "search_verify_ms_all_shards": all_shards,
        "search_verify_ms_per_shard": round(all_shards / SHARDS, 2),
    }
    print(row, flush=True)
    save(f"local_search_sharded_{SHARDED_SIZE}", row)
