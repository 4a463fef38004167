"""Scale of ``matcher cluster``: grouping 100,000 images' hashes, and hashing throughput against the scan's.

Run (about 5-8 minutes on 2 cores)::

    python -m pytest benchmarks/test_cluster_scale.py -s
    MATCHER_BENCH_CLUSTER_N=20000 MATCHER_BENCH_CLUSTER_FILES=300 python -m pytest benchmarks/test_cluster_scale.py -s  # quick

Not part of the normal test run (``testpaths`` is ``tests``). All data is synthetic.

**Grouping** (:func:`matcher.cluster.cluster_hashes`, no images): ``N`` (default 100,000) items, each
with a PDQ ``orig`` hash and the seven other dihedral variant hashes, as hashing real images gives.
About 70% of the items are in ~20,000 planted groups of 1 to 6 related items (at 100k): random bit
flips (0 to 20) of a base code; one in ten items after a group's first is a rotated or flipped copy,
linked only through one of its variant hashes (its ``orig`` and other variants are unrelated
codes); one in twenty is a byte-identical copy of the one before it. The rest are random
singletons. Scenarios, each in a fresh process so that its peak
memory is its own:

- ``uniform``: base codes uniformly random;
- ``realistic``: base codes with the bit statistics of real PDQ hashes of generated images
  (:func:`benchmarks.speed_common.realistic_pdq_codes`), the hard case for bucket-based search;
- ``dense``: ``uniform`` plus one group of ``DENSE`` (default 2,000) near-identical but distinct
  codes (0 to 10 bits from one base), whose pairs all link: the quadratic case.

Timed: the ``cluster_hashes`` call alone, after a tiny warm-up call (compiled kernels); memory: the
process's peak resident set size, and how far it rose during the call above the set-up (the items
themselves, ~0.9 GB of Python objects at 100k, are set-up). Checked: in each scenario, on a random
subset of ``SUBSET`` (default 5,000) items, ``cluster_hashes`` equals a brute-force union-find over
every pair (numpy); in ``uniform`` (where links cannot cross planted groups) the whole 100k result
equals a brute-force union-find inside every planted group.

**Hashing throughput**: ``FILES`` (default 1,000) generated JPEGs (320x240 to 640x480) hashed by
:func:`matcher.cluster.cluster_paths` and scanned by :func:`matcher.scan.run_scan` (rotations on,
default decoding, against a small index), one and two workers: images per second of each.

Figures go to ``benchmarks/results/cluster_scale.json`` (and pytest-benchmark's table: the
``uniform`` scenario's process, set-up included; its exact figures are in ``extra_info``).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.speed_common import env_int, realistic_pdq_codes, save

N = env_int("MATCHER_BENCH_CLUSTER_N", 100_000)
SUBSET = env_int("MATCHER_BENCH_CLUSTER_SUBSET", 5_000)
DENSE = env_int("MATCHER_BENCH_CLUSTER_DENSE", 2_000)
FILES = env_int("MATCHER_BENCH_CLUSTER_FILES", 1_000)
MAX_DISTANCE = 31
VARIANTS = ("orig", "rot90", "rot180", "rot270", "flipx", "flipy", "flipp", "flipm")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """Current resident set size."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def flip_bits(codes: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row with ``counts[row]`` distinct random bits flipped."""
    bits = np.unpackbits(codes, axis=1)
    keys = rng.random(bits.shape, dtype=np.float32)
    cut = np.sort(keys, axis=1)[np.arange(codes.shape[0]), np.maximum(counts - 1, 0)]
    bits ^= ((keys <= cut[:, None]) & (counts[:, None] > 0)).astype(np.uint8)
    return np.packbits(bits, axis=1)


def synthetic(n: int, scenario: str, seed: int = 11) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(codes, present, owner)``: codes (n, 8, 32) with row i's variant hashes in
    :data:`VARIANTS` order, present (n, 8) bool, and each row's planted group (-1: a singleton)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, 8, 32), dtype=np.uint8)  # unrelated by default
    present = np.ones((n, 8), dtype=bool)
    dense = DENSE if scenario == "dense" else 0
    groups = max(1, (n - dense) // 5)
    bases = (
        realistic_pdq_codes(groups, seed=seed)
        if scenario == "realistic"
        else rng.integers(0, 256, (groups, 32), dtype=np.uint8)
    )
    sizes = rng.integers(1, 7, groups)
    sizes[np.cumsum(sizes) > int((n - dense) * 0.7)] = 0  # about 70% in planted groups, the rest singletons
    owner = np.full(n, -1, dtype=np.int64)
    members = np.repeat(np.arange(groups), sizes)
    grouped = members.shape[0]
    owner[:grouped] = members
    near = flip_bits(bases[members], rng.integers(0, 21, grouped), rng)
    not_first = np.r_[False, members[1:] == members[:-1]]
    rotated = (rng.random(grouped) < 0.1) & not_first  # a rotated/flipped copy: linked through a variant only
    variant = rng.integers(1, 8, grouped)
    rows = np.arange(grouped)
    codes[rows[~rotated], 0] = near[~rotated]
    codes[rows[rotated], variant[rotated]] = near[rotated]
    duplicate = np.flatnonzero((rng.random(grouped) < 0.05) & not_first)
    codes[duplicate] = codes[duplicate - 1]  # byte-identical copies
    if dense:
        base = rng.integers(0, 256, (1, 32), dtype=np.uint8)
        codes[n - dense :, 0] = flip_bits(np.repeat(base, dense, axis=0), rng.integers(1, 11, dense), rng)
        owner[n - dense :] = groups
    return codes, present, owner


def items_of(codes: np.ndarray, present: np.ndarray, rows: np.ndarray) -> list[Any]:
    from matcher.cluster import ClusterItem
    from matcher.hashes import Hash

    out = []
    for i in rows.tolist():
        hashes = {VARIANTS[v]: Hash("pdq", codes[i, v].tobytes(), 90) for v in range(8) if present[i, v]}
        out.append(ClusterItem(path=f"item{i:07d}", hashes={"pdq": hashes}))
    return out


def brute_force(codes: np.ndarray, present: np.ndarray) -> set[frozenset[int]]:
    """Union-find over every pair of rows: a variant of one within the distance of the other's orig."""
    n = codes.shape[0]
    orig = codes[:, 0].copy().view(np.uint64)  # (n, 4)
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    rows, cols = np.nonzero(present)
    queries = codes[rows, cols].copy().view(np.uint64)
    for start in range(0, rows.shape[0], 2048):
        q = queries[start : start + 2048]
        dist = np.bitwise_count(q[:, None, :] ^ orig[None, :, :]).sum(axis=2)
        for a, b in zip(*np.nonzero(dist <= MAX_DISTANCE)):
            i, j = int(rows[start + a]), int(b)
            if i != j:
                parent[find(i)] = find(j)
    groups: dict[int, set[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), set()).add(i)
    return {frozenset(g) for g in groups.values()}


def groups_of(result: Any) -> set[frozenset[int]]:
    return {frozenset(int(m.path[4:]) for m in g.members) for g in result.groups}


def scenario(name: str) -> dict[str, Any]:
    """One scenario in this (fresh) process: time and memory of cluster_hashes, and the checks."""
    from matcher.cluster import cluster_hashes

    started = time.perf_counter()
    codes, present, owner = synthetic(N, name)
    items = items_of(codes, present, np.arange(N))
    cluster_hashes(items_of(codes, present, np.arange(50)))  # warm-up: compiled kernels, imports
    setup_s = time.perf_counter() - started
    before = rss_mib()
    started = time.perf_counter()
    result = cluster_hashes(items)
    seconds = time.perf_counter() - started
    peak = peak_rss_mib()
    out: dict[str, Any] = {
        "items": N,
        "queries": int(present.sum()),
        "seconds": round(seconds, 2),
        "items_per_s": round(N / seconds),
        "rss_before_call_mib": round(before, 1),
        "peak_rss_mib": round(peak, 1),
        "rise_during_call_mib": round(max(0.0, peak - before), 1),
        "groups_2_or_more": result.multi_groups,
        "grouped_items": result.hashed - result.singles,
        "largest_group": result.largest,
        "links": result.links,
        "chain_members": sum(1 for m in result.members() if m.chain),
        "setup_s": round(setup_s, 1),
    }
    if name == "uniform":
        # Base codes are ~128 bits apart, so links stay within planted groups: the whole result must
        # equal a brute-force union-find run inside each planted group, and singletons stay alone.
        group_of = {int(m.path[4:]): g.number for g in result.groups for m in g.members}
        order = np.argsort(owner, kind="stable")
        bounds = np.flatnonzero(np.r_[True, owner[order][1:] != owner[order][:-1], True])
        for k in range(bounds.shape[0] - 1):
            rows = order[bounds[k] : bounds[k + 1]]
            if owner[rows[0]] < 0:
                assert all(len(found) == 1 for found in ({group_of[int(i)]} for i in rows))
                continue
            expected = {frozenset(int(rows[i]) for i in g) for g in brute_force(codes[rows], present[rows])}
            found: dict[int, set[int]] = {}
            for i in rows.tolist():
                found.setdefault(group_of[i], set()).add(i)
            assert {frozenset(v) for v in found.values()} == expected
        sizes = np.bincount(list(group_of.values()))
        assert sum(1 for i in np.flatnonzero(owner < 0).tolist() if sizes[group_of[i]] != 1) == 0
        out["planted_check"] = "every planted group equals its brute-force union-find"
    rng = np.random.default_rng(5)
    rows = np.sort(rng.choice(N, min(SUBSET, N), replace=False))
    if name == "dense":  # make sure the subset holds part of the dense group
        rows = np.union1d(rows, np.arange(N - DENSE, N, 10))
    started = time.perf_counter()
    expected = {frozenset(int(rows[k]) for k in g) for g in brute_force(codes[rows], present[rows])}
    brute_s = time.perf_counter() - started
    subset = cluster_hashes(items_of(codes, present, rows))
    assert groups_of(subset) == expected
    out["brute_force_subset"] = {
        "items": int(rows.shape[0]),
        "groups": len(expected),
        "equal": True,
        "brute_force_s": round(brute_s, 1),
    }
    return out


def run_in_fresh_process(name: str) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(scenario, (name,))


def test_cluster_scale(benchmark) -> None:
    holder: dict[str, dict[str, Any]] = {}
    benchmark.pedantic(lambda: holder.setdefault("uniform", run_in_fresh_process("uniform")), rounds=1, iterations=1)
    print("uniform", holder["uniform"])
    for name in ("realistic", "dense"):
        holder[name] = run_in_fresh_process(name)
        print(name, holder[name])
    benchmark.extra_info.update(holder)
    path = Path(__file__).resolve().parent / "results" / "cluster_scale.json"
    previous = {}
    if path.exists():
        import json

        previous = {k: v for k, v in json.loads(path.read_text()).items() if k != "machine"}
    save("cluster_scale", {**previous, "grouping": {"items": N, "dense_group": DENSE, "scenarios": holder}})


# --------------------------------------------------------------------------------------------------
# Hashing throughput: cluster_paths against run_scan on the same files


def _write_image(job: tuple[int, str]) -> None:
    from fixtures import edit, encode, scene

    n, path = job
    rng = np.random.default_rng(n)
    kinds = ("landscape", "plasma", "shapes", "text")
    img = scene(50_000 + n % 300, 640, 480, kinds[n % 4])
    if n % 3 == 0:
        img = edit(img, ("mirror", "rotate90", "jpeg75", "resize0.5")[n % 4])
    width, height = int(rng.integers(320, 641)), int(rng.integers(240, 481))
    img = img.resize((width, height)) if img.width >= img.height else img.resize((height, width))
    Path(path).write_bytes(encode(img, "JPEG", quality=int(rng.integers(70, 96))))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("clusterspeed")
    evidence = base / "evidence"
    jobs = []
    for n in range(FILES):
        folder = evidence / f"{n // 250:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((n, str(folder / f"IMG_{n:06d}.jpg")))
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_write_image, jobs, chunksize=25)
    return {"base": base, "evidence": evidence}


def test_cluster_hashing_throughput_against_scan(tree) -> None:
    import matcher
    from matcher.cluster import cluster_paths
    from matcher.index import KnownIndex
    from matcher.known import KnownRecord
    from matcher.scan import ScanOptions, run_scan

    index_path = tree["base"] / "index"
    index = KnownIndex.create(index_path, ("pdq",))
    first = sorted(tree["evidence"].rglob("*.jpg"))[:20]
    index.add((KnownRecord(hashes={"pdq": r.hashes["pdq"]}) for p in first for r in matcher.hash_file(p)), "bench")
    index.close()
    cluster_paths([str(first[0])], workers=1)  # warm-up: imports, compiled kernels
    runs: dict[str, Any] = {}
    for workers in (1, 2):
        started = time.perf_counter()
        result = cluster_paths([str(tree["evidence"])], workers=workers)
        seconds = time.perf_counter() - started
        assert result.hashed == FILES and result.errors == 0
        runs[f"cluster_w{workers}"] = {
            "seconds": round(seconds, 2),
            "images_per_s": round(FILES / seconds, 1),
            "hashing_s": round(result.hashing_seconds, 2),
            "grouping_s": round(result.grouping_seconds, 2),
            "groups_2_or_more": result.multi_groups,
        }
        out = tree["base"] / f"scan_w{workers}.jsonl"
        started = time.perf_counter()
        summary = run_scan([str(tree["evidence"])], str(index_path), ScanOptions(workers=workers), str(out), "jsonl")
        seconds = time.perf_counter() - started
        assert summary.files == FILES
        runs[f"scan_w{workers}"] = {"seconds": round(seconds, 2), "images_per_s": round(FILES / seconds, 1)}
        print(workers, runs[f"cluster_w{workers}"], runs[f"scan_w{workers}"])
    path = Path(__file__).resolve().parent / "results" / "cluster_scale.json"
    previous = {}
    if path.exists():
        import json

        previous = {k: v for k, v in json.loads(path.read_text()).items() if k != "machine"}
    save(
        "cluster_scale",
        {
            **previous,
            "hashing": {
                "files": FILES,
                "sizes": "320x240..640x480 JPEG q70-95",
                "options": "rotations on, default decoding",
                "runs": runs,
            },
        },
    )
