"""``matcher index query`` as a whole process against a standalone FAISS script, in one run.

Run (about 4-6 minutes at the default sizes on 2 cores, most of it building the index)::

    python -m pytest benchmarks/test_query_cli.py -s
    MATCHER_BENCH_QUERY_N=100000 python -m pytest benchmarks/test_query_cli.py -s   # quick

Not part of the normal test run (``testpaths`` is ``tests``). Sized by ``MATCHER_BENCH_QUERY_N``
(records in the index, default 1,000,000), ``MATCHER_BENCH_QUERY_QUERIES`` (query hashes, default
10,000) and ``MATCHER_BENCH_QUERY_RUNS`` (timed runs of each command, best taken, default 3);
``MATCHER_BENCH_QUERY_CODES`` picks the codes: ``realistic`` (default: PDQ codes with the bit
statistics of real hashes, :func:`benchmarks.speed_common.realistic_pdq_codes`) or ``uniform``.
``MATCHER_BENCH_QUERY_DIR`` keeps the set-up (codes, queries, index) in that directory and reuses it
on the next run with the same sizes, so that the index is built once (e.g. to measure before and after
a change); by default it lives in a temporary directory for the run only.

Set-up (not timed): the codes are added to a :class:`~matcher.index.KnownIndex` (one list, in a
temporary directory kept for the run only, or ``MATCHER_BENCH_QUERY_DIR``) and saved as a ``.npy``
file; the queries (half planted near-duplicates at distances 0..31, half random,
:func:`benchmarks.speed_common.planted_queries`) are written one hex per line to a file both commands read.

Timed, wall clock with ``subprocess.run`` (interpreter start-up, imports and index load included;
both at their default thread counts), alternating the two commands, best of the runs:

- ours: ``matcher index query INDEX --input queries.txt`` (PDQ, distance <= 31), report to a file;
- peer: a Python script (written to a temporary file) that loads the ``.npy`` codes into a FAISS
  ``IndexBinaryFlat``, range-searches the queries with radius 32 (i.e. distance <= 31) and prints one
  JSON line per query with its matches, to a file;
- for the breakdown, ours with an empty query file (interpreter start-up, imports and index opening;
  whatever the first search prepares is left in the remainder).

Both outputs are parsed and must hold the same matches (record ids and distances) for every query.
Figures (seconds, the ratio FAISS/ours: target >= 6, issue 15) go to ``benchmarks/results/query_cli.json``.
All data is synthetic.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.speed_common import env_int, planted_queries, realistic_pdq_codes, save, uniform_codes
from matcher.hashes import Hash
from matcher.index import KnownIndex
from matcher.known import KnownRecord

N = env_int("MATCHER_BENCH_QUERY_N", 1_000_000)
QUERIES = env_int("MATCHER_BENCH_QUERY_QUERIES", 10_000)
RUNS = env_int("MATCHER_BENCH_QUERY_RUNS", 3)
CODES = os.environ.get("MATCHER_BENCH_QUERY_CODES", "realistic")
MAX_DISTANCE = 31
TARGET_SPEEDUP = 6  # issue 15: the whole process at least 6x the FAISS flat script

FAISS_SCRIPT = textwrap.dedent('''
    """Range search of hex PDQ queries in a FAISS IndexBinaryFlat; one JSON line per query."""
    import json
    import sys

    import faiss
    import numpy as np

    codes = np.load(sys.argv[1])
    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    index.add(codes)
    with open(sys.argv[2]) as handle:
        hexes = [line.strip() for line in handle if line.strip()]
    queries = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=np.uint8).reshape(len(hexes), codes.shape[1])
    lims, distances, ids = index.range_search(queries, int(sys.argv[3]))
    write = sys.stdout.write
    for row, text in enumerate(hexes):
        a, b = int(lims[row]), int(lims[row + 1])
        order = np.lexsort((ids[a:b], distances[a:b])) + a  # nearest first
        matches = [{"id": int(ids[j]), "distance": int(distances[j])} for j in order]
        write(json.dumps({"query": text, "matches": matches}) + "\\n")
''')


def matcher_command() -> list[str]:
    """The installed ``matcher`` console script beside this interpreter, else ``python -m matcher``."""
    script = Path(sys.executable).parent / "matcher"
    if script.exists():
        return [str(script)]
    found = shutil.which("matcher")
    return [found] if found else [sys.executable, "-m", "matcher"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    kept = os.environ.get("MATCHER_BENCH_QUERY_DIR")
    base = Path(kept) if kept else tmp_path_factory.mktemp("querycli")
    stamp = base / "setup.json"
    wanted = {"n": N, "queries": QUERIES, "codes": CODES}
    if kept and stamp.exists() and {k: v for k, v in json.loads(stamp.read_text()).items() if k in wanted} == wanted:
        facts = json.loads(stamp.read_text())
        codes = np.load(base / "codes.npy")
        queries = np.frombuffer(bytes.fromhex((base / "queries.txt").read_text().replace("\n", "")), dtype=np.uint8)
        return {
            "base": base,
            "codes": codes,
            "queries": queries.reshape(-1, codes.shape[1]),
            "codes_s": facts["codes_s"],
            "build_s": facts["build_s"],
        }
    if kept:
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
    started = time.perf_counter()
    codes = realistic_pdq_codes(N) if CODES == "realistic" else uniform_codes(N, 32)
    codes_s = time.perf_counter() - started
    np.save(base / "codes.npy", codes)
    queries = planted_queries(codes, QUERIES, MAX_DISTANCE)
    (base / "queries.txt").write_text("".join(q.tobytes().hex() + "\n" for q in queries))
    (base / "empty.txt").write_text("")
    (base / "faiss_query.py").write_text(FAISS_SCRIPT)

    started = time.perf_counter()
    index = KnownIndex.create(base / "index", ("pdq",))
    result = index.add((KnownRecord(hashes={"pdq": Hash("pdq", row.tobytes())}) for row in codes), "bench")
    index.close()
    build_s = time.perf_counter() - started
    assert result.added == N  # no duplicates: record id = row + 1
    stamp.write_text(json.dumps({**wanted, "codes_s": codes_s, "build_s": build_s}))
    return {"base": base, "codes": codes, "queries": queries, "codes_s": codes_s, "build_s": build_s}


def run(command: list[str], out: Path, cwd: Path, ok: tuple[int, ...] = (0,)) -> float:
    """Wall-clock seconds of one process, its standard output to ``out``; ``ok``: accepted exit codes."""
    with open(out, "wb") as handle:
        started = time.perf_counter()
        done = subprocess.run(command, stdout=handle, stderr=subprocess.PIPE, cwd=cwd)
        elapsed = time.perf_counter() - started
    assert done.returncode in ok, done.stderr.decode(errors="replace")[-2000:]
    return elapsed


def ours_matches(path: Path) -> dict[str, set[tuple[int, int]]]:
    found = {}
    for line in path.read_text().splitlines():
        item = json.loads(line)
        assert item["error"] is None and item["skipped"] is None, item
        found[item["query"]] = {(m["record"] - 1, m["distance"]) for m in item["matches"]}
    return found


def faiss_matches(path: Path) -> dict[str, set[tuple[int, int]]]:
    found = {}
    for line in path.read_text().splitlines():
        item = json.loads(line)
        found[item["query"]] = {(m["id"], m["distance"]) for m in item["matches"]}
    return found


def test_query_cli(setup, benchmark):
    base = setup["base"]
    index = str(base / "index")
    ours_cmd = [*matcher_command(), "index", "query", index, "--input", str(base / "queries.txt")]
    load_cmd = [*matcher_command(), "index", "query", index, "--input", str(base / "empty.txt")]
    faiss_cmd = [
        sys.executable,
        str(base / "faiss_query.py"),
        str(base / "codes.npy"),
        str(base / "queries.txt"),
        str(MAX_DISTANCE + 1),
    ]

    times: dict[str, list[float]] = {"ours": [], "faiss_flat_script": [], "ours_startup_and_open": []}
    for _ in range(RUNS):
        times["ours"].append(run(ours_cmd, base / "ours.jsonl", base, (1,)))  # 1: something matched
        times["faiss_flat_script"].append(run(faiss_cmd, base / "faiss.jsonl", base))
        times["ours_startup_and_open"].append(run(load_cmd, base / "empty.jsonl", base))
    # pytest-benchmark's own table: one more run of ours
    benchmark.pedantic(run, args=(ours_cmd, base / "ours.jsonl", base, (1,)), rounds=1, iterations=1)

    ours = ours_matches(base / "ours.jsonl")
    peer = faiss_matches(base / "faiss.jsonl")
    hexes = [q.tobytes().hex() for q in setup["queries"]]
    assert len(ours) == len(set(hexes)) and set(ours) == set(peer)
    assert ours == peer  # same records at the same distances for every query
    planted = QUERIES // 2
    assert all(ours[h] for h in hexes[:planted])  # every planted near-duplicate is found

    best = {name: min(values) for name, values in times.items()}
    row = {
        "n": N,
        "codes": CODES,
        "queries": QUERIES,
        "max_distance": MAX_DISTANCE,
        "runs": RUNS,
        "ours_s": round(best["ours"], 3),
        "faiss_flat_script_s": round(best["faiss_flat_script"], 3),
        "ours_startup_and_open_s": round(best["ours_startup_and_open"], 3),
        "ours_rest_s": round(best["ours"] - best["ours_startup_and_open"], 3),
        "speedup_vs_faiss_flat_script": round(best["faiss_flat_script"] / best["ours"], 2),
        "target_speedup": TARGET_SPEEDUP,
        "all_runs_s": {name: [round(v, 3) for v in values] for name, values in times.items()},
        "matches": int(sum(len(v) for v in ours.values())),
        "queries_with_matches": int(sum(1 for v in ours.values() if v)),
        "index_build_s": round(setup["build_s"], 1),
        "codes_generation_s": round(setup["codes_s"], 1),
        "ours_command": " ".join(Path(ours_cmd[0]).name if i == 0 else a for i, a in enumerate(ours_cmd[:3]))
        + " INDEX --input queries.txt",
    }
    save("query_cli", {"query_cli": row})
    print(row)
