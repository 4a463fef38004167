"""Hashing one image file, all of the per-file work: matcher against a bare decode and the peers.

Run (about a minute at the default sizes on 2 cores)::

    python -m pytest benchmarks/test_hash_speed.py -s
    MATCHER_BENCH_HASH_LARGE=1600x1200 python -m pytest benchmarks/test_hash_speed.py -s   # quick

Not part of the normal test run (``testpaths`` is ``tests``). Sized by ``MATCHER_BENCH_HASH_LARGE``
(the large image, ``WxH``, default ``4000x3000``), ``MATCHER_BENCH_HASH_SMALL`` (default ``640x480``)
and ``MATCHER_BENCH_HASH_REPEATS`` (repetitions of the large case, default 7; the small case gets
five times as many).

For a generated landscape JPEG (quality 90) of each size, held in memory, it times:

- ours: ``matcher.hash_bytes(data, ["pdq", "phash"], options=HashOptions(fast=True))`` — MD5, SHA-1
  and SHA-256 of the bytes, type sniffing, decoding (JPEG draft mode at reduced scale) and the PDQ
  and pHash hashes; and the same with ``fast=False`` (full decode) for reference;
- floor: a bare Pillow decode at the scale matcher's fast mode chooses (``Image.draft("RGB", size)``
  with ``size = matcher.pipeline.draft_size(...)``, ``load()``, ``convert("RGB")``) plus hashlib
  MD5/SHA-1/SHA-256 of the same bytes: what the work costs before any hashing;
- peers: ``pdqhash.compute`` on a full Pillow decode converted to an RGB array, and
  ``imagehash.phash`` on a (full-decode) Pillow image.

Each is run once per round, interleaved (ours, ours full, floor, pdqhash, imagehash, ours, ...), so
that noise from other work on the machine hits all of them alike; the best (minimum) of the rounds
is reported, in ms per file, with the ratios pdqhash/ours (target >= 10 at 4000x3000),
imagehash/ours (target >= 3) and ours/floor (target <= 1.5). The PDQ distance between the fast and
full decodes is asserted (<= 10 at quality >= 80); timings are reported, never asserted. Figures go
to ``benchmarks/results/hash_speed.json``. All data is synthetic.
"""

from __future__ import annotations

import hashlib
import os
import time
from io import BytesIO

import imagehash
import numpy as np
import pdqhash
import pytest
from PIL import Image

import matcher
from benchmarks.speed_common import env_int, save
from fixtures import encode, scene
from matcher.hashes import Hash
from matcher.pipeline import draft_size

REPEATS = env_int("MATCHER_BENCH_HASH_REPEATS", 7)
QUALITY = 90
ALGORITHMS = ["pdq", "phash"]
FAST = matcher.HashOptions(fast=True)
FULL = matcher.HashOptions(fast=False)
RESULTS: dict[str, dict] = {}


def _size(name: str, default: str) -> tuple[int, int]:
    width, height = os.environ.get(name, default).lower().split("x")
    return int(width), int(height)


SIZES = {
    "large": (_size("MATCHER_BENCH_HASH_LARGE", "4000x3000"), REPEATS),
    "small": (_size("MATCHER_BENCH_HASH_SMALL", "640x480"), REPEATS * 5),
}


def candidates(data: bytes) -> dict:
    """The timed functions, each doing one file's work from its bytes."""
    size = draft_size(matcher.registry.resolve(ALGORITHMS), FAST.fast)
    assert size is not None

    def ours():
        return matcher.hash_bytes(data, ALGORITHMS, options=FAST)

    def ours_full():
        return matcher.hash_bytes(data, ALGORITHMS, options=FULL)

    def floor():
        hashlib.md5(data).digest()
        hashlib.sha1(data).digest()
        hashlib.sha256(data).digest()
        im = Image.open(BytesIO(data))
        im.draft("RGB", size)
        im.load()
        return im.convert("RGB")

    def pdqhash_full():
        return pdqhash.compute(np.asarray(Image.open(BytesIO(data)).convert("RGB")))

    def imagehash_phash():
        return imagehash.phash(Image.open(BytesIO(data)))

    return {
        "ours": ours,
        "ours_full_decode": ours_full,
        "floor": floor,
        "pdqhash": pdqhash_full,
        "imagehash_phash": imagehash_phash,
    }


@pytest.mark.parametrize("case", list(SIZES))
def test_hash_speed(benchmark, case):
    (width, height), rounds = SIZES[case]
    data = encode(scene(4242, width, height, "landscape"), "JPEG", quality=QUALITY)
    functions = candidates(data)
    for function in functions.values():  # warm up (imports, compiled kernels, caches)
        function()

    best = {name: float("inf") for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)

    # pytest-benchmark's own table: ours (fast) alone
    benchmark.pedantic(functions["ours"], rounds=3, iterations=1)

    (fast,) = functions["ours"]()
    (full,) = functions["ours_full_decode"]()
    assert fast.error is None and full.error is None
    fast_full = fast.hashes["pdq"].distance(full.hashes["pdq"])
    assert fast_full <= 10, f"fast decode moved PDQ by {fast_full} bits (quality {QUALITY})"
    peer_bits, peer_quality = functions["pdqhash"]()
    vs_pdqhash = full.hashes["pdq"].distance(Hash("pdq", np.packbits(peer_bits.astype(np.uint8)).tobytes()))
    phash_peer = str(functions["imagehash_phash"]())
    vs_phash = full.hashes["phash"].distance(Hash.from_hex("phash", phash_peer))

    ms = {name: round(seconds * 1000, 3) for name, seconds in best.items()}
    row = {
        "width": width,
        "height": height,
        "jpeg_quality": QUALITY,
        "file_bytes": len(data),
        "rounds": rounds,
        "draft_size": list(draft_size(matcher.registry.resolve(ALGORITHMS), FAST.fast)),
        "decoded_size_fast": list(functions["floor"]().size),
        "ms_per_file": ms,
        "pdqhash_over_ours": round(best["pdqhash"] / best["ours"], 2),
        "imagehash_phash_over_ours": round(best["imagehash_phash"] / best["ours"], 2),
        "ours_over_floor": round(best["ours"] / best["floor"], 3),
        "ours_full_over_ours": round(best["ours_full_decode"] / best["ours"], 2),
        "files_per_s_ours": round(1 / best["ours"], 1),
        "pdq_distance_fast_vs_full": fast_full,
        "pdq_quality_fast": fast.pdq_quality,
        "pdq_distance_full_vs_pdqhash": vs_pdqhash,
        "pdqhash_quality": int(peer_quality),
        "phash_distance_full_vs_imagehash": vs_phash,
    }
    RESULTS[case] = row
    save("hash_speed", RESULTS)
    print(case, row)
