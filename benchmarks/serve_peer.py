"""The HMA-style peer of ``benchmarks/serve_load.py``: HMA 2.0's matcher approach, written here for the
comparison (our code, not HMA's): one FAISS binary index of the PDQ codes in memory behind a minimal
Starlette route with HMA's shape, ``GET /m/raw_lookup?signal_type=pdq&signal=HEX`` answering
``{"matches": [ids]}``, each request searched on its own (HMA's ``index.query(signal)``) within
distance 31, in Starlette's thread pool (as Flask's request threads do).

``--kind flat``: ``faiss.IndexBinaryFlat`` (exhaustive; HMA's ``PDQFlatHashIndex``);
``--kind multihash``: ``faiss.IndexBinaryMultiHash(256, 16, 16)`` (HMA's ``PDQMultiHashIndex``,
the older pytx default); without bit flips in the probes it finds a code only when one of its sixteen
16-bit chunks equals the query's: exact up to 15 bits, not beyond (``serve_load`` measures its recall). HMA 2.0's ``PDQIndex2`` keeps the bits as 256 float32 in an
``IndexFlatL2`` (32x the memory: 10 GB at 10M codes), which this machine cannot hold beside the rest.

    python -m benchmarks.serve_peer --codes /tmp/serve_bench/pdq10m.codes.npy --port 18090 --kind flat
"""

from __future__ import annotations

import argparse

import faiss
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

THRESHOLD = 31


def build(codes: np.ndarray, kind: str) -> faiss.IndexBinary:
    """The peer's index of ``codes`` (rows of 32 bytes)."""
    if kind == "flat":
        index = faiss.IndexBinaryFlat(256)
    elif kind == "multihash":
        index = faiss.IndexBinaryMultiHash(256, 16, 16)
    else:
        raise SystemExit(f"unknown kind {kind}")
    index.add(codes)
    return index


def make_app(index: faiss.IndexBinary) -> Starlette:
    """The minimal HMA-shaped service."""

    def raw_lookup(request: Request) -> JSONResponse:  # sync: Starlette runs it in its thread pool
        signal = request.query_params.get("signal")
        if request.query_params.get("signal_type") != "pdq" or signal is None:
            return JSONResponse({"message": "signal_type=pdq and signal are required"}, 400)
        try:
            query = np.frombuffer(bytes.fromhex(signal), dtype=np.uint8).reshape(1, 32)
        except ValueError:
            return JSONResponse({"message": "invalid signal"}, 400)
        lims, distances, labels = index.range_search(query, THRESHOLD + 1)
        order = np.argsort(distances, kind="stable")
        return JSONResponse({"matches": [int(labels[i]) + 1 for i in order]})

    return Starlette(routes=[Route("/m/raw_lookup", raw_lookup)])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--codes", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kind", default="flat")
    parser.add_argument("--threads", type=int, default=1, help="FAISS threads per search (default 1)")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    codes = np.load(args.codes, mmap_mode="r")
    app = make_app(build(np.ascontiguousarray(codes), args.kind))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
