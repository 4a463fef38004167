"""Load benchmark of ``matcher serve`` against a large PDQ index, side by side with an HMA-style peer.

    python -m benchmarks.serve_load                       # 10M records (the index is built once, ~20 min)
    MATCHER_SERVE_RECORDS=1000000 python -m benchmarks.serve_load
    MATCHER_SERVE_SECONDS=5 MATCHER_SERVE_RECORDS=100000 python -m benchmarks.serve_load   # a quick run
    python -m benchmarks.serve_load --soak 300            # only the server's memory over 5 minutes

What it measures, every server a separate process on 127.0.0.1, the load from this process (an
asyncio client on raw keep-alive HTTP/1.1 connections, light enough not to starve the servers):

* **Hash lookups**, HMA's shape: ``GET /m/raw_lookup?signal_type=pdq&signal=HEX`` one hash per
  request, at 1, 8 and 64 concurrent clients: lookups/s, p50/p99 latency. Queries are half planted
  near-duplicates of indexed codes (0..31 bits flipped), half random codes (no match), distance <= 31;
  each peer's recall against ours (exact) is measured on the first 300.
* **Batched lookups**: ``POST /v1/lookup`` with 100 hashes per request at 8 clients.
* **The HMA-style peer** (:mod:`benchmarks.serve_peer`): the same route over a FAISS
  ``IndexBinaryFlat`` (and ``IndexBinaryMultiHash``), one search per request, at 8 clients.
* **Image matches**: ``POST /v1/match`` of 640x480 JPEGs, one client and two, against the scan's
  own per-image cost on the same images and index (``matcher.scan.scan``, one process).
* The servers' resident memory before and after the load, and with ``MATCHER_SERVE_SOAK=300`` over
  five minutes of mixed lookups and image matches at 8 clients (sampled every 10 s).

The index is synthetic: codes with real PDQ bit statistics (:func:`benchmarks.speed_common.realistic_pdq_codes`).
Figures go to ``benchmarks/results/serve_load[_<records>].json``. The machine may be shared: compare the
side-by-side ratios, not the absolute figures.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.speed_common import env_int, planted_queries, realistic_pdq_codes, save
from matcher.hashes import Hash
from matcher.index import KnownIndex
from matcher.known import KnownRecord

ROOT = Path(__file__).resolve().parent.parent
RECORDS = env_int("MATCHER_SERVE_RECORDS", 10_000_000)
SECONDS = env_int("MATCHER_SERVE_SECONDS", 15)
WORK = Path(os.environ.get("MATCHER_SERVE_WORK", tempfile.gettempdir())) / "serve_bench"
IMAGES = env_int("MATCHER_SERVE_IMAGES", 40)
ROUNDS = env_int("MATCHER_SERVE_ROUNDS", 2)  # rounds of the side-by-side runs
RECALL_QUERIES = env_int("MATCHER_SERVE_RECALL_QUERIES", 300)
SOAK = env_int("MATCHER_SERVE_SOAK", 0)  # seconds of a mixed run watching the server's memory (e.g. 300)


def build_index(path: Path, records: int, seed: int = 7) -> np.ndarray:
    """A PDQ index of ``records`` synthetic records at ``path`` (kept between runs), and its codes."""
    codes_path = path.parent / f"{path.name}.codes.npy"
    if codes_path.exists() and (path / "manifest.json").exists():
        with KnownIndex.open(path, verify=False) as index:
            if len(index) == records:
                return np.load(codes_path)
    if path.exists():
        import shutil

        shutil.rmtree(path)
    codes = realistic_pdq_codes(records, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(codes_path, codes)
    started = time.perf_counter()
    with KnownIndex.create(path, ("pdq",)) as index:
        index.add((KnownRecord(hashes={"pdq": Hash("pdq", row.tobytes(), 90)}) for row in codes), "synthetic")
    print(f"built {records} records in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return codes


# -- processes ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_ready(process: subprocess.Popen[bytes], port: int, path: str, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                if conn.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit("server did not start")


STARTED: list[subprocess.Popen[bytes]] = []  # every server started, killed at exit if still running


def _kill_left() -> None:  # a run that fails half way leaves no server behind
    for process in STARTED:
        if process.poll() is None:
            process.kill()
            process.wait()


atexit.register(_kill_left)


def our_command(index: Path, port: int, *extra: str) -> list[str]:
    """``matcher serve`` on ``index`` at ``port`` without keys (loopback), its config under WORK."""
    command = [sys.executable, "-m", "matcher", "serve", "--index", str(index), "--no-auth", "--port", str(port)]
    return [*command, "--config", str(WORK / "config"), *extra]


def start(command: list[str], port: int, ready: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    STARTED.append(process)
    wait_ready(process, port, ready)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- the load -------------------------------------------------------------------------------------------


async def _client(port: int, requests: list[bytes], offset: int, deadline: float, out: dict[str, Any]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < deadline:
            request = requests[i % len(requests)]
            i += 1
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            out["latencies"].append(time.perf_counter() - started)
            out["statuses"][status] = out["statuses"].get(status, 0) + 1
            del body
    finally:
        writer.close()


def load(port: int, requests: list[bytes], clients: int, seconds: float, per_request: int = 1) -> dict[str, Any]:
    """``clients`` connections sending ``requests`` in turn for ``seconds``: rates and latencies."""
    out: dict[str, Any] = {"latencies": [], "statuses": {}}

    async def run() -> None:
        deadline = time.perf_counter() + seconds
        step = max(1, len(requests) // clients)
        await asyncio.gather(*(_client(port, requests, n * step, deadline, out) for n in range(clients)))

    started = time.perf_counter()
    asyncio.run(run())
    elapsed = time.perf_counter() - started
    latencies = np.array(out["latencies"]) * 1000
    count = len(latencies)
    return {
        "clients": clients,
        "requests": count,
        "hashes_per_request": per_request,
        "lookups_per_s": round(count * per_request / elapsed, 1),
        "requests_per_s": round(count / elapsed, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2) if count else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 2) if count else None,
        "statuses": {str(k): v for k, v in out["statuses"].items()},
    }


def get_requests(hexes: list[str]) -> list[bytes]:
    return [f"GET /m/raw_lookup?signal_type=pdq&signal={h} HTTP/1.1\r\nHost: b\r\n\r\n".encode() for h in hexes]


def post_requests(path: str, bodies: list[bytes], content_type: str) -> list[bytes]:
    return [
        f"POST {path} HTTP/1.1\r\nHost: b\r\nContent-Type: {content_type}\r\nContent-Length: {len(b)}\r\n\r\n".encode()
        + b
        for b in bodies
    ]


# -- images -------------------------------------------------------------------------------------------------


def make_images(folder: Path, count: int) -> list[Path]:
    from fixtures.generate import scene

    folder.mkdir(parents=True, exist_ok=True)
    kinds = ("landscape", "plasma", "shapes", "text")
    paths = []
    for i in range(count):
        path = folder / f"img-{i:03d}.jpg"
        if not path.exists():
            scene(5000 + i, 640, 480, kinds[i % len(kinds)]).convert("RGB").save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def scan_cost(index: Path, folder: Path, count: int) -> float:
    """Seconds per image of the scan itself (one process, the scan's batching), index open excluded."""
    import faiss

    from matcher.scan import ScanOptions, scan

    threads = faiss.omp_get_max_threads()
    records = scan([str(folder)], str(index), ScanOptions(workers=1))
    started = time.perf_counter()
    done = sum(1 for _ in records)
    elapsed = time.perf_counter() - started
    faiss.omp_set_num_threads(threads)
    assert done == count, done
    return elapsed / count


def answers(port: int, hexes: list[str]) -> list[set[int]]:
    """Each query's matched record ids from a server's ``/m/raw_lookup``."""
    out: list[set[int]] = []
    with socket.create_connection(("127.0.0.1", port), timeout=600) as conn:
        stream = conn.makefile("rb")
        for request in get_requests(hexes):
            conn.sendall(request)
            stream.readline()
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            out.append(set(json.loads(stream.read(length))["matches"]))
    return out


def recall(servers: dict[str, tuple[subprocess.Popen[bytes], int]], hexes: list[str]) -> dict[str, Any]:
    """Each peer's share of the matches that ours (exact) finds on the same queries."""
    exact = answers(servers["ours"][1], hexes)
    total = sum(len(found) for found in exact)
    out: dict[str, Any] = {"queries": len(hexes), "matches": total}
    for name, (_process, port) in servers.items():
        if name != "ours":
            found = answers(port, hexes)
            out[name] = round(sum(len(a & b) for a, b in zip(exact, found)) / total, 4) if total else None
    return out


def mean_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds of one configuration together: mean rates and latencies, every round kept."""
    out = dict(runs[0])
    for key in ("lookups_per_s", "requests_per_s", "p50_ms", "p99_ms"):
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = round(sum(values) / len(values), 2) if values else None
    out["requests"] = sum(r["requests"] for r in runs)
    out["rounds"] = [{k: r[k] for k in ("lookups_per_s", "p50_ms", "p99_ms")} for r in runs]
    return out


def main() -> None:
    index = WORK / ("pdq10m" if RECORDS == 10_000_000 else f"pdq{RECORDS}")
    codes = build_index(index, RECORDS)
    hexes = [row.tobytes().hex() for row in planted_queries(codes, 4000, 31)]
    del codes
    figures: dict[str, Any] = {"records": RECORDS, "seconds_per_run": SECONDS, "rounds": ROUNDS, "cpus": os.cpu_count()}

    # every server started first, then the comparable runs in turn, round after round, so that a
    # change of the machine's load falls on all of them alike
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    port = free_port()
    command = our_command(index, port, "--reload-interval", "0", "--audit-log", os.devnull)
    started = time.perf_counter()
    servers["ours"] = (start(command, port, "/healthz"), port)
    figures["ours_start_s"] = round(time.perf_counter() - started, 1)
    for kind in ("flat", "multihash"):
        port = free_port()
        command = [sys.executable, "-m", "benchmarks.serve_peer", "--codes", str(WORK / f"{index.name}.codes.npy")]
        command += ["--port", str(port), "--kind", kind]
        started = time.perf_counter()
        servers[f"peer_{kind}"] = (start(command, port, "/m/raw_lookup?signal_type=pdq&signal=" + "00" * 32), port)
        figures[f"peer_{kind}_start_s"] = round(time.perf_counter() - started, 1)
    for _name, (_process, port) in servers.items():
        load(port, get_requests(hexes[:100]), 8, 2)  # warm up (compiled kernels, page cache)
    rss_before = rss_mib(servers["ours"][0].pid)
    figures["recall_vs_ours"] = recall(servers, hexes[:RECALL_QUERIES])
    print(figures["recall_vs_ours"], file=sys.stderr)

    collected: dict[str, list[dict[str, Any]]] = {}
    for round_number in range(ROUNDS):
        for clients in (1, 8):
            for name, (_process, port) in servers.items():
                run = load(port, get_requests(hexes), clients, SECONDS)
                collected.setdefault(f"{name}_raw_lookup_{clients}", []).append(run)
                print(round_number, name, clients, run, file=sys.stderr)
    runs = {key: mean_runs(value) for key, value in collected.items()}
    ours, port = servers["ours"]
    runs["ours_raw_lookup_64"] = load(port, get_requests(hexes), 64, SECONDS)
    batches = [
        json.dumps({"hashes": [{"algorithm": "pdq", "hex": h} for h in hexes[i : i + 100]]}).encode()
        for i in range(0, len(hexes), 100)
    ]
    runs["ours_v1_lookup_batch100_8"] = load(
        port, post_requests("/v1/lookup", batches, "application/json"), 8, SECONDS, per_request=100
    )
    print(runs["ours_raw_lookup_64"], runs["ours_v1_lookup_batch100_8"], file=sys.stderr)
    for name in ("flat", "multihash"):
        figures[f"peer_{name}_rss_mib"] = round(rss_mib(servers[f"peer_{name}"][0].pid), 1)
        stop(servers[f"peer_{name}"][0])
    # the same service as two worker processes on one port (each gathers its own batches)
    port2 = free_port()
    twice = start(
        our_command(index, port2, "--reload-interval", "0", "--audit-log", os.devnull, "--workers", "2"),
        port2,
        "/healthz",
    )
    load(port2, get_requests(hexes[:100]), 8, 2)
    for clients in (8, 64):
        runs[f"ours_workers2_raw_lookup_{clients}"] = load(port2, get_requests(hexes), clients, SECONDS)
        print("workers 2", clients, runs[f"ours_workers2_raw_lookup_{clients}"], file=sys.stderr)
    stop(twice)

    images = make_images(WORK / f"images{IMAGES}", IMAGES)
    bodies = [p.read_bytes() for p in images]
    image_requests = post_requests("/v1/match", bodies, "image/jpeg")
    load(port, image_requests[:4], 1, 2)  # warm up
    for clients in (1, 2):
        run = load(port, image_requests, clients, SECONDS)
        run["seconds_per_image"] = round(1 / run["requests_per_s"], 4) if run["requests_per_s"] else None
        runs[f"ours_v1_match_{clients}"] = run
        print(run, file=sys.stderr)
    figures["ours_rss_mib"] = {"before": round(rss_before, 1), "after": round(rss_mib(ours.pid), 1)}
    if SOAK:
        figures["ours_soak"] = soak(ours, port, get_requests(hexes) + image_requests[:2], SOAK)
    stop(ours)

    per_image = scan_cost(index, WORK / f"images{IMAGES}", IMAGES)
    figures["scan_seconds_per_image"] = round(per_image, 4)
    served = runs["ours_v1_match_1"]["seconds_per_image"]
    figures["match_vs_scan_per_image"] = round(served / per_image, 2) if served else None

    figures["runs"] = runs
    name = "serve_load" if RECORDS == 10_000_000 else f"serve_load_{RECORDS}"
    print(save(name, figures), file=sys.stderr)
    print(json.dumps(figures, indent=2))


def soak(server: subprocess.Popen[bytes], port: int, mixed: list[bytes], seconds: int) -> dict[str, Any]:
    """The server's memory over ``seconds`` of ``mixed`` requests at 8 clients, sampled every 10 s,
    with every answer's status counted."""
    samples = [{"t": 0, "rss_mib": round(rss_mib(server.pid), 1)}]
    statuses: dict[str, int] = {}
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        run = load(port, mixed, 8, 10)
        for status, count in run["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
        t = round(time.monotonic() - started)
        samples.append({"t": t, "rss_mib": round(rss_mib(server.pid), 1), "requests_per_s": run["requests_per_s"]})
        print(samples[-1], file=sys.stderr)
    return {"seconds": seconds, "clients": 8, "statuses": statuses, "samples": samples}


def soak_only(seconds: int) -> None:
    """``--soak SECONDS``: only the memory run, on the index of ``MATCHER_SERVE_RECORDS`` (built if
    need be), with the audit log written to a file and the index watched (every 2 s) as in service;
    the mix: the lookups' queries, each a single-hash ``GET /m/raw_lookup``, and two 640x480 JPEG
    matches among them. Figures to ``benchmarks/results/serve_soak[_<records>].json``."""
    index = WORK / ("pdq10m" if RECORDS == 10_000_000 else f"pdq{RECORDS}")
    codes = build_index(index, RECORDS)
    hexes = [row.tobytes().hex() for row in planted_queries(codes, 4000, 31)]
    del codes
    port = free_port()
    server = start(our_command(index, port, "--audit-log", str(WORK / "soak-audit.jsonl")), port, "/healthz")
    images = [p.read_bytes() for p in make_images(WORK / f"images{IMAGES}", IMAGES)]
    mixed = get_requests(hexes) + post_requests("/v1/match", images[:2], "image/jpeg")
    load(port, mixed, 8, 5)  # warm up
    try:
        figures = {"records": RECORDS, "ours_soak": soak(server, port, mixed, seconds)}
    finally:
        stop(server)
    name = "serve_soak" if RECORDS == 10_000_000 else f"serve_soak_{RECORDS}"
    print(save(name, figures), file=sys.stderr)


def table(figures: dict[str, Any]) -> str:
    """The README's table of a results file."""
    runs = figures["runs"]
    rows = [
        "| run (8 clients unless said) | lookups/s | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    names = {
        "ours_raw_lookup_1": "matcher serve, `GET /m/raw_lookup`, 1 hash/request, 1 client",
        "ours_raw_lookup_8": "matcher serve, `GET /m/raw_lookup`, 1 hash/request",
        "ours_raw_lookup_64": "matcher serve, `GET /m/raw_lookup`, 1 hash/request, 64 clients",
        "ours_workers2_raw_lookup_8": "matcher serve `--workers 2`, `GET /m/raw_lookup`, 1 hash/request",
        "ours_workers2_raw_lookup_64": "matcher serve `--workers 2`, `GET /m/raw_lookup`, 1 hash/request, 64 clients",
        "ours_v1_lookup_batch100_8": "matcher serve, `POST /v1/lookup`, 100 hashes/request",
        "peer_flat_raw_lookup_1": "HMA-style peer, FAISS `IndexBinaryFlat`, 1 client",
        "peer_flat_raw_lookup_8": "HMA-style peer, FAISS `IndexBinaryFlat`",
        "peer_multihash_raw_lookup_1": "HMA-style peer, FAISS `IndexBinaryMultiHash`, 1 client",
        "peer_multihash_raw_lookup_8": "HMA-style peer, FAISS `IndexBinaryMultiHash`",
    }
    for key, label in names.items():
        run = runs.get(key)
        if run:
            rows.append(f"| {label} | {run['lookups_per_s']:,.0f} | {run['p50_ms']} | {run['p99_ms']} |")
    match1, match2 = runs.get("ours_v1_match_1"), runs.get("ours_v1_match_2")
    lines = "\n".join(rows)
    if match1 and match2:
        lines += (
            f"\n\nImage matches (`POST /v1/match`, 640x480 JPEG): {match1['requests_per_s']} images/s at 1 client "
            f"(p50 {match1['p50_ms']} ms), {match2['requests_per_s']} at 2; the scan itself (one process): "
            f"{figures['scan_seconds_per_image'] * 1000:.1f} ms per image, so a served match costs "
            f"{figures['match_vs_scan_per_image']}x the scan's per-image time (1 client)."
        )
    return lines


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--table":
        print(table(json.loads(Path(sys.argv[2]).read_text())))
        raise SystemExit(0)
    if len(sys.argv) > 2 and sys.argv[1] == "--soak":
        soak_only(int(sys.argv[2]))
        raise SystemExit(0)
    if len(sys.argv) > 2 and sys.argv[1] == "--build":  # build only (e.g. in the background beforehand)
        build_index(Path(sys.argv[2]), RECORDS)
    else:
        main()
