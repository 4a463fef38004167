"""Fuzzing of every parser that takes outside bytes: the targets, the mutators, and the long campaign.

Targets (each a function of one input's bytes, see :data:`TARGETS`):

* ``image``: :func:`matcher.imaging.sniff`, :func:`~matcher.imaging.open_image`,
  :func:`~matcher.imaging.iter_frames` (with EXIF orientation and a JPEG draft size) and
  :func:`matcher.hashing.hash_bytes` on the bytes; seeds: JPEG, PNG (RGB, palette with
  transparency, 16-bit, grey+alpha, animated), GIF (animated), WebP (still, animated), TIFF
  (multi-page, CMYK), BMP, all made by :mod:`fixtures`.
* ``video``: :func:`matcher.video.iter_video_frames` and :func:`matcher.hashing.hash_bytes` on the
  bytes (limits: 30 s of video sampled, a 4 s decode budget); seeds: H.264 in MP4, VP9 in WebM,
  MPEG-4 in AVI, HEVC in Matroska, made by :mod:`fixtures.video`.
* ``hashlist``, ``vics``, ``nsrl``: :func:`matcher.formats.registry.detect_format` and
  :func:`~matcher.formats.registry.read_records` with ``auto`` and every registered format, strict and
  not; seeds: lists written by the project's own writers (and an NSRL RDSv3-shaped SQLite file).
* ``manifest``: ``manifest.json`` read by :func:`matcher.index.manifest.read_manifest`
  (:meth:`Manifest.from_json`); ``shards``: ``shards.json`` read by ``matcher.index.shards._read_document``
  and, when it parses, :meth:`ShardedIndex.open`. The first input byte says whether the document's
  self-checksum is recomputed after mutation (so the fields behind the checksum are reached).
* ``index``: :meth:`matcher.index.KnownIndex.open` (then a search, a digest look-up, every record,
  ``info()``) on a small index one of whose files (manifest, SQLite, ``.npy`` arrays) is replaced by
  the input; the first byte picks the file, whether the manifest is re-signed to match the new file
  (a forged but consistent index) and whether ``verify`` is on.
* ``import``: the input as a hash list imported into a copy of a small index, strict or not, by
  :func:`matcher.index.importing.import_sources` or by ``matcher index add``; when the import is
  refused the index must answer exactly as before (same records, same manifest, same generation).

The property, for every input: the call ends normally or with a :class:`matcher.errors.MatcherError`
(per-record errors for ``hash_bytes``); nothing else escapes; no error message is the library's
safety net ("unexpected ValueError ...", which means a parser let a foreign exception through); no
``MemoryError``; a refused import leaves the index unchanged. Bounds (see :data:`TIME_BOUND_S` and
:data:`MEMORY_BOUND_BYTES`): 5 s and 1 GiB of address space per input, images decoded with
``max_pixels`` = 4,000,000 and ``max_frames`` = 10 (:data:`FUZZ_HASH_OPTIONS`).

The campaign::

    python -m benchmarks.fuzz_campaign --minutes 10 [--seed N] [--engine atheris|hypothesis] [--targets a,b]
                                       [--name fuzz_campaign]

runs every target in turn in a child process (the time is shared equally) whose address space is
limited with ``resource.setrlimit(RLIMIT_AS)`` to what it uses after start-up plus 1 GiB. With
atheris installed (``pip install 'matcher[fuzz]'``) the search is coverage-guided (libFuzzer's
mutations plus this module's structure-aware ones, on matcher and Pillow's Python code); otherwise
hypothesis runs the same property with a large budget. Crashing inputs go to
``tests/fuzz_regressions/<target>-NNNN.<ext>`` (``tests/test_fuzz.py`` replays every file there), the
figures to ``benchmarks/results/<name>.json`` and ``.md``. Findings in code the fuzzed parsers do not
own are listed in :data:`KNOWN_OPEN` until fixed: counted, not raised, their inputs expected failures.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import json
import os
import platform
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REGRESSIONS = ROOT / "tests" / "fuzz_regressions"
RESULTS = ROOT / "benchmarks" / "results"

#: Wall-clock bound of one input (seconds).
TIME_BOUND_S = 5.0
#: Address space one input may use above the process's size after start-up.
MEMORY_BOUND_BYTES = 1 << 30


class Finding(Exception):
    """A property violation: ``kind`` is ``crash``, ``unclear``, ``memory``, ``changed`` or ``timeout``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class _Alarm(BaseException):
    """Raised by the per-input timer (a BaseException: the code under test must not swallow it)."""


_SAFETY_NET = re.compile(r"\bunexpected [A-Za-z_]*(Error|Exception)\b|out of memory")


#: The decoding limits every image input is fuzzed with (as text, for the results).
FUZZ_HASH_OPTIONS = "max_pixels=4000000, max_frames=10"


@functools.cache
def fuzz_hash_options() -> Any:
    """The decoding limits every image input is fuzzed with (:data:`FUZZ_HASH_OPTIONS`)."""
    from matcher.hashing import HashOptions

    return HashOptions(max_pixels=4_000_000, max_frames=10)


def _matcher_error() -> type[BaseException]:
    from matcher.errors import MatcherError

    return MatcherError


@contextlib.contextmanager
def _property(what: str) -> Iterator[None]:
    """Turn what escapes the block into a :class:`Finding` unless it is a clear :class:`MatcherError`."""
    matcher_error = _matcher_error()
    try:
        yield
    except Finding:
        raise
    except MemoryError as exc:
        raise Finding("memory", f"{what}: MemoryError {exc}") from exc
    except matcher_error as exc:
        text = str(exc)
        if _SAFETY_NET.search(text):
            raise Finding("unclear", f"{what}: {type(exc).__name__}: {text}") from exc
        if isinstance(exc.__cause__, MemoryError):
            raise Finding("memory", f"{what}: {text}") from exc
    except Exception as exc:  # noqa: BLE001 - anything else is what we are looking for
        raise Finding("crash", f"{what}: {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------------------------------
# Seeds


def _image_seeds() -> list[bytes]:
    from fixtures import animated_gif, animated_png, animated_webp, encode, image, multipage_tiff

    w, h = 48, 36
    return [
        encode(image(1, w, h), "JPEG", quality=80),
        encode(image(2, w, h), "JPEG", quality=70, exif_orientation=6),
        encode(image(3, w, h, "shapes"), "PNG"),
        encode(image(4, w, h, "plasma", "P", transparency=True), "PNG"),
        encode(image(5, w, h, "gradient", "I;16"), "PNG"),
        encode(image(6, w, h, "text", "LA"), "PNG"),
        animated_png(7, 24, 18, 2),
        animated_gif(8, 24, 18, 3),
        encode(image(9, w, h), "WEBP", quality=60),
        animated_webp(10, 24, 18, 2),
        multipage_tiff(11, 24, 18, 2),
        encode(image(12, w, h, "landscape", "CMYK"), "TIFF"),
        encode(image(13, w, h, "shapes", "P"), "BMP"),
        encode(image(14, w, h, "plasma", "1"), "GIF"),
    ]


def _sample_records(seed: int = 1, n: int = 4) -> list[Any]:
    from matcher.hashes import Hash
    from matcher.known import KnownRecord

    rnd = random.Random(seed)

    def hexd(k: int) -> str:
        return "".join(rnd.choice("0123456789abcdef") for _ in range(k))

    out = []
    for i in range(n):
        out.append(
            KnownRecord(
                hashes={"pdq": Hash.from_hex("pdq", hexd(64), 90 - i), "phash": Hash.from_hex("phash", hexd(16))},
                md5=hexd(32),
                sha1=hexd(40),
                sha256=hexd(64),
                category=i,
                series=f"series {i}",
                comment='a, "quoted" comment' if i == 1 else None,
                name=f"file {i}.jpg",
                size=1000 + i,
                extra={"MediaID": i + 1, "Tags": ["x", "y"]} if i % 2 else {},
            )
        )
    return out


def _sample_video(seed: int = 3, frames: int = 3) -> Any:
    """A known video record (vPDQ frames), as the ``vpdq`` and ``vpdq-json`` writers need."""
    from matcher.hashes import Hash
    from matcher.video_hash import VpdqFeature, known_video

    rnd = random.Random(seed)
    features = [
        VpdqFeature(25 * i, Hash("pdq", bytes(rnd.randrange(256) for _ in range(32)), 100 - i), float(i))
        for i in range(frames)
    ]
    return known_video(features, name="clip.mp4", md5="".join(rnd.choice("0123456789abcdef") for _ in range(32)))


def _written(fmt: str, records: list[Any]) -> bytes:
    from matcher.formats.registry import write_records

    buf = io.BytesIO()
    write_records(records, buf, fmt)
    return buf.getvalue()


def _hashlist_seeds() -> list[bytes]:
    from matcher.formats.registry import formats

    records = [*_sample_records(), _sample_video()]
    seeds = [_written(f.name, records) for f in formats() if f.can_write and f.name != "vics"]
    seeds += [
        b"d41d8cd98f00b204e9800998ecf8427e  empty.txt\n# comment\nda39a3ee5e6b4b0d3255bfef95601890afd80709 *x\n",
        b"SHA256 (a b.jpg) = " + b"ab" * 32 + b"\n",
        b"pdq " + b"f" * 64 + b"\n" + b"0" * 64 + b",100,name.jpg\n",
        json.dumps(
            {
                "path": "a.jpg",
                "frame": None,
                "mime": "image/jpeg",
                "md5": "0" * 32,
                "pdq": "a" * 64,
                "pdq_quality": 80,
                "error": None,
            }
        ).encode()
        + b"\n",
    ]
    return seeds


def _vics_seeds() -> list[bytes]:
    records = _sample_records(2, 3)
    v2 = _written("vics", records)
    cases = {
        "@odata.context": "http://github.com/ICMEC/ProjectVic/DataModels/2.0.xml/CUSTOM/$metadata#Cases",
        "value": [
            {
                "CaseNumber": "c-1",
                "Media": [
                    {
                        "MediaID": 1,
                        "MD5": "A" * 32,
                        "Category": "1",
                        "MediaSize": 10,
                        "AlternativeHashes": [{"HashName": "PDQ", "HashValue": "b" * 64}],
                        "MediaFiles": [{"FileName": "x.jpg"}],
                        "IsPrecategorized": "true",
                    },
                    {"MediaID": 2, "SHA1": "C" * 40, "PhotoDNA": "AAAA", "RelativeFilePath": "d/e/f.png"},
                ],
            }
        ],
    }
    v1 = {
        "odata.metadata": "http://localhost/odata/$metadata#Media",
        "value": [{"MediaID": 7, "MD5": "e" * 32, "Category": 2, "Series": "s", "Comments": "c"}],
    }
    return [v2, json.dumps(cases).encode(), json.dumps(v1, indent=1).encode()]


def _nsrl_seed() -> bytes:
    import sqlite3

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "nsrl.db")
        conn = sqlite3.connect(path)
        conn.execute(
            "CREATE TABLE FILE_DATA (sha256 TEXT, sha1 TEXT, md5 TEXT, crc32 TEXT, file_name TEXT, "
            "file_size INTEGER, package_id INTEGER)"
        )
        rnd = random.Random(3)
        rows = [("".join(rnd.choice("0123456789ABCDEF") for _ in range(k)) for k in (64, 40, 32)) for _ in range(3)]
        conn.executemany(
            "INSERT INTO FILE_DATA VALUES (?, ?, ?, '0A0B0C0D', ?, ?, 1)",
            [(*r, f"lib{i}.dll", 100 * i) for i, r in enumerate(rows)],
        )
        conn.execute(
            "CREATE VIEW FILE AS SELECT sha256, sha1, md5, crc32, file_name, file_size, package_id FROM FILE_DATA"
        )
        conn.commit()
        conn.execute("VACUUM")
        conn.close()
        return Path(path).read_bytes()


# --------------------------------------------------------------------------------------------------
# Mutations (deterministic: a seed's bytes and a list of (op, a, b) integers give one input)

_INTERESTING = (
    0,
    1,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    65500,
    30000,
    1 << 20,
)
_JSON_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1 << 64,
    -(1 << 70),
    1.5,
    1e308,
    float("nan"),
    "",
    "x" * 300,
    "\u0000",
    "../..",
    "/",
    "a/b",
    "ff" * 32,
    "0" * 31,
    [],
    {},
    [[[[[[[[[[]]]]]]]]]],
    {"a": {"b": {"c": None}}},
    "\ud800",
)
MUTATIONS = (
    "bitflip",
    "byte",
    "truncate",
    "delete",
    "insert",
    "duplicate",
    "splice",
    "int",
    "png_crc",
    "json",
    "huge_dims",
)


def _json_mutate(data: bytes, rnd: random.Random) -> bytes:
    """Replace one node of a JSON document (or of one JSON Lines line) by an awkward value."""
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    targets = [i for i, line in enumerate(lines) if line.strip().startswith(("{", "["))]
    whole = True
    try:
        document = json.loads(text)
    except ValueError:
        if not targets:
            return data
        whole = False
        index = rnd.choice(targets)
        try:
            document = json.loads(lines[index])
        except ValueError:
            return data
    nodes: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in list(node):
                nodes.append((node, key))
                walk(node[key])
        elif isinstance(node, list):
            for i in range(len(node)):
                nodes.append((node, i))
                walk(node[i])

    walk(document)
    if not nodes:
        return data
    parent, key = rnd.choice(nodes)
    choice = rnd.randrange(4)
    if choice == 0 and isinstance(parent, dict):
        parent[str(rnd.choice(_JSON_VALUES[10:13]) or "k")] = parent.pop(key)  # rename the key
    elif choice == 1 and isinstance(parent, list):
        parent.append(parent[key])  # repeat an element
    else:
        parent[key] = rnd.choice(_JSON_VALUES)
    try:
        out = json.dumps(document, ensure_ascii=rnd.random() < 0.5)
    except (ValueError, RecursionError):
        return data
    if whole:
        return out.encode("utf-8", errors="surrogatepass")
    lines[index] = out
    return "\n".join(lines).encode("utf-8", errors="surrogatepass")


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every PNG chunk's CRC so a mutation reaches past Pillow's CRC check."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    out = bytearray(data)
    pos = 8
    while pos + 12 <= len(out):
        length = struct.unpack(">I", out[pos : pos + 4])[0]
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        out[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(out[pos + 4 : end])))
        pos = end + 4
    return bytes(out)


def _huge_dims(data: bytes, rnd: random.Random) -> bytes:
    """Declare huge (or zero) dimensions in the header of a PNG, GIF, BMP or JPEG."""
    out = bytearray(data)
    big = rnd.choice((0, 1, 65535, 30000, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 16, 100000))
    if data.startswith(b"\x89PNG") and len(out) >= 24:
        out[16 + 4 * rnd.randrange(2) :][:4] = struct.pack(">I", big)
        return fix_png_crcs(bytes(out))
    if data.startswith(b"GIF") and len(out) >= 10:
        out[6 + 2 * rnd.randrange(2) :][:2] = struct.pack("<H", big & 0xFFFF)
    elif data.startswith(b"BM") and len(out) >= 26:
        out[18 + 4 * rnd.randrange(2) :][:4] = struct.pack("<I", big)
    elif data.startswith(b"\xff\xd8"):
        sof = data.find(b"\xff\xc0")
        if sof < 0:
            sof = data.find(b"\xff\xc2")
        if sof >= 0 and sof + 9 <= len(out):
            out[sof + 5 + 2 * rnd.randrange(2) :][:2] = struct.pack(">H", big & 0xFFFF)
    elif data.startswith((b"II*\x00", b"MM\x00*")):  # TIFF: patch a 16/32-bit value somewhere after the IFD start
        pos = rnd.randrange(8, max(9, len(out) - 4))
        out[pos : pos + 4] = struct.pack("<I" if data[:1] == b"I" else ">I", big)
    return bytes(out[: len(data)])


def mutate(data: bytes, ops: list[tuple[int, int, int]], others: list[bytes]) -> bytes:
    """Apply ``ops`` (``(mutation number, a, b)``) to ``data``; ``others`` are seeds to splice from."""
    out = bytes(data)
    for op, a, b in ops:
        kind = MUTATIONS[op % len(MUTATIONS)]
        n = len(out)
        rnd = random.Random(a * 1_000_003 + b)
        if kind == "bitflip" and n:
            arr = bytearray(out)
            arr[a % n] ^= 1 << (b % 8)
            out = bytes(arr)
        elif kind == "byte" and n:
            arr = bytearray(out)
            arr[a % n] = b % 256
            out = bytes(arr)
        elif kind == "truncate":
            out = out[: a % (n + 1)]
        elif kind == "delete" and n:
            start = a % n
            out = out[:start] + out[start + 1 + b % 64 :]
        elif kind == "insert":
            start = a % (n + 1)
            out = out[:start] + rnd.randbytes(b % 48 + 1) + out[start:]
        elif kind == "duplicate" and n:
            start = a % n
            piece = out[start : start + 1 + b % 256]
            out = out[:start] + piece * (1 + b % 4) + out[start:]
        elif kind == "splice" and others:
            other = others[b % len(others)]
            cut = a % (n + 1)
            out = out[:cut] + other[(b // 7) % (len(other) + 1) :]
        elif kind == "int" and n:
            value = _INTERESTING[b % len(_INTERESTING)]
            fmt = ("<H", ">H", "<I", ">I", "B")[(b // 16) % 5]
            packed = struct.pack(fmt, value & ((1 << (8 * struct.calcsize(fmt))) - 1))
            start = a % n
            out = out[:start] + packed + out[start + len(packed) :]
        elif kind == "png_crc":
            out = fix_png_crcs(out)
        elif kind == "json":
            out = _json_mutate(out, rnd)
        elif kind == "huge_dims":
            out = _huge_dims(out, rnd)
    return out


def random_ops(rnd: random.Random, count: int | None = None) -> list[tuple[int, int, int]]:
    """A random mutation list (the campaign's and atheris' structure-aware mutator)."""
    count = count if count is not None else rnd.choice((1, 1, 2, 3, 5, 8))
    return [(rnd.randrange(len(MUTATIONS)), rnd.getrandbits(32), rnd.getrandbits(32)) for _ in range(count)]


# --------------------------------------------------------------------------------------------------
# Targets


@dataclass
class Target:
    """One fuzz target: ``run(data)`` checks the property (raises :class:`Finding`); ``seeds()`` its corpus."""

    name: str
    description: str
    seeds: Callable[[], list[bytes]]
    run: Callable[[bytes], None]
    extension: str = "bin"
    #: Makes what every run shares (template indexes), outside the time bound.
    prepare: Callable[[], Any] = lambda: None


_WORK: dict[str, Path] = {}


def _workdir(name: str) -> Path:
    """A per-process scratch directory for ``name`` (created once, removed at exit)."""
    if name not in _WORK:
        import atexit

        path = Path(tempfile.mkdtemp(prefix=f"matcher-fuzz-{name}-"))
        atexit.register(shutil.rmtree, path, True)
        _WORK[name] = path
    return _WORK[name]


def run_image(data: bytes) -> None:
    """The image decoding path; also :func:`hash_bytes`, whose records must carry clear errors only."""
    from matcher import imaging
    from matcher.hashing import hash_bytes

    options = fuzz_hash_options()
    decode = options.decode_options()
    with _property("sniff"):
        media = imaging.sniff(data[:512])
        imaging.extension_mismatch("evidence.jpg", media)
    with _property("open_image"):
        _info, image = imaging.open_image(data, decode)
        image.close()
    exif = imaging.DecodeOptions(
        max_pixels=decode.max_pixels, max_frames=decode.max_frames, apply_exif_orientation=True
    )
    with _property("iter_frames"):
        for _frame in imaging.iter_frames(data, exif, draft_size=(32, 32)):
            pass
    with _property("hash_bytes"):
        records = hash_bytes(data, "pdq,phash,whash", name="evidence.jpg", options=options)
    for record in records:
        if record.error is not None and _SAFETY_NET.search(record.error):
            kind = "memory" if "memory" in record.error else "unclear"
            raise Finding(kind, f"hash_bytes record error: {record.error}")


def _video_seeds() -> list[bytes]:
    from fixtures.video import video

    small = (64, 48)
    return [
        video(31, seconds=2, fps=10, size=small),
        video(32, seconds=2, fps=10, size=small, container="webm", codec="libvpx-vp9"),
        video(33, seconds=2, fps=10, size=small, container="avi", codec="mpeg4"),
        video(34, seconds=1, fps=10, size=small, container="matroska", codec="libx265"),
    ]


def run_video(data: bytes) -> None:
    """The video path: the sampler on the bytes, and :func:`hash_bytes`, whose records must carry
    clear errors only."""
    from matcher.hashing import HashOptions, hash_bytes
    from matcher.video import VideoOptions, iter_video_frames

    limits = VideoOptions(max_seconds=30, decode_seconds=4)
    with _property("iter_video_frames"):
        for _frame in iter_video_frames(data, limits, max_pixels=4_000_000):
            pass
    with _property("hash_bytes"):
        records = hash_bytes(data, "pdq", name="evidence.mp4", options=HashOptions(max_pixels=4_000_000, video=limits))
    if not records:
        raise Finding("crash", "hash_bytes gave no record for a video")
    for record in records:
        if record.error is not None and _SAFETY_NET.search(record.error):
            kind = "memory" if "memory" in record.error else "unclear"
            raise Finding(kind, f"hash_bytes record error: {record.error}")


def _read_list(path: str, fmt: str, strict: bool) -> None:
    from matcher.formats.registry import read_records

    problems: list[Any] = []
    with _property(f"read_records({fmt}, strict={strict})"):
        for _record in read_records(path, fmt, on_problem=problems.append, strict=strict):
            pass
    for problem in problems:
        if _SAFETY_NET.search(problem.message):
            raise Finding("unclear", f"read_records({fmt}) problem: {problem}")


def _run_lists(data: bytes, formats: list[str], filename: str) -> None:
    from matcher.formats.registry import detect_format

    path = _workdir("lists") / filename
    path.write_bytes(data)
    with _property("detect_format(bytes)"):
        detect_format(data, filename)
    with _property("detect_format(path)"):
        detect_format(str(path))
    for fmt in formats:
        for strict in (False, True):
            _read_list(str(path), fmt, strict)


def run_hashlist(data: bytes) -> None:
    """Every hash-list reader, detection included, on the bytes as a file."""
    from matcher.formats.registry import format_names

    _run_lists(data, ["auto", *(n for n in format_names() if n != "nsrl")], "list.txt")


def run_vics(data: bytes) -> None:
    """The VICS reader (and detection) on the bytes."""
    _run_lists(data, ["auto", "vics"], "list.json")


def run_nsrl(data: bytes) -> None:
    """The NSRL SQLite reader (and detection) on the bytes as a database file."""
    _run_lists(data, ["auto", "nsrl"], "NSRLFile.db")


def _resign(data: bytes, key: str) -> bytes:
    """The JSON document with its self-checksum ``key`` recomputed (unchanged if it does not parse)."""
    from matcher.index.manifest import body_digest

    try:
        document = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return data
    if not isinstance(document, dict):
        return data
    document.pop(key, None)
    try:
        document[key] = body_digest(document)
        return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError, RecursionError):
        return data


#: Environment variables naming ready-made templates (the campaign makes them once for all its children).
_TEMPLATE_ENV = {"index": "MATCHER_FUZZ_TEMPLATE_INDEX", "sharded": "MATCHER_FUZZ_TEMPLATE_SHARDED"}


@functools.cache
def _template_index() -> Path:
    """A small two-algorithm index with view tables (made once per process, or copied from the campaign's)."""
    from fixtures import encode, image
    from matcher.index import KnownIndex
    from matcher.index.importing import import_sources

    root = _workdir("template") / "index"
    if os.environ.get(_TEMPLATE_ENV["index"]):
        shutil.copytree(os.environ[_TEMPLATE_ENV["index"]], root)
        return root
    images = _workdir("template") / "images"
    images.mkdir()
    for i in range(2):
        (images / f"k{i}.png").write_bytes(encode(image(100 + i, 64, 48, "shapes"), "PNG"))
    listing = _workdir("template") / "list.txt"
    listing.write_bytes(_written("pdq-hex", _sample_records(5, 3)))
    with KnownIndex.create(root, ("pdq", "phash")) as index:
        import_sources(index, [images], list_name="images", category=1)
        import_sources(index, [listing], list_name="list", category=2)
    return root


@functools.cache
def _template_sharded() -> Path:
    from matcher.index import split_index

    target = _workdir("template") / "sharded"
    if os.environ.get(_TEMPLATE_ENV["sharded"]):
        shutil.copytree(os.environ[_TEMPLATE_ENV["sharded"]], target)
        return target
    split_index(_template_index(), target, 2)
    return target


def run_manifest(data: bytes) -> None:
    """``manifest.json`` as :func:`read_manifest` reads it; byte 0 even: checksum recomputed."""
    from matcher.index.manifest import read_manifest

    root = _workdir("manifest")
    body = data[1:]
    if data[:1] and data[0] % 2 == 0:
        body = _resign(body, "manifest_sha256")
    (root / "manifest.json").write_bytes(body)
    with _property("read_manifest"):
        read_manifest(root)


def _manifest_seed() -> bytes:
    return (_template_index() / "manifest.json").read_bytes()


def run_shards(data: bytes) -> None:
    """``shards.json`` as the sharded index reads it; byte 0 even: checksum recomputed."""
    from matcher.index.shards import ShardedIndex, _read_document

    root = _template_sharded()
    original = (root / "shards.json").read_bytes()
    body = data[1:]
    if data[:1] and data[0] % 2 == 0:
        body = _resign(body, "shards_sha256")
    try:
        (root / "shards.json").write_bytes(body)
        parsed = False
        with _property("_read_document"):
            _read_document(root)
            parsed = True
        if parsed:
            with _property("ShardedIndex.open"):
                ShardedIndex.open(root).close()
    finally:
        (root / "shards.json").write_bytes(original)


def _index_files() -> list[str]:
    """The files of the template index a fuzzed input may replace: the manifest, then the generation's."""
    root = _template_index()
    manifest = json.loads((root / "manifest.json").read_text())
    return ["manifest.json", *sorted(manifest["files"])]


def _exercise(index: Any) -> None:
    from matcher.hashes import Hash

    queries = [Hash.from_hex("pdq", "0" * 64), Hash.from_hex("pdq", "f" * 64)]
    index.search(queries, 256)
    index.nearest(queries, 3)
    for view in index.views.get("pdq", ()):
        index.search(queries, 256, view=view)
    index.lookup_digest("md5", ["0" * 32])
    for record in index.iter_records():
        index.records([record.id])
        index.record_views([record.id])
    index.info()
    index.lists()
    index.category_schemes()


def run_index(data: bytes) -> None:
    """:meth:`KnownIndex.open` on the template index with one file replaced by ``data[1:]``.

    ``data[0]``: bit 0 set: the manifest's entry and checksum are forged to match the new file; bit 1
    set: open with ``verify=False``. ``data[1]``: the file's number in :func:`_index_files`.
    """
    from matcher.index import KnownIndex
    from matcher.index.manifest import body_digest

    root = _template_index()
    names = _index_files()
    selector = data[0] if data else 0
    name = names[(data[1] if len(data) > 1 else 0) % len(names)]
    manifest_path = root / "manifest.json"
    manifest_text = manifest_path.read_bytes()
    manifest = json.loads(manifest_text)
    target = manifest_path if name == "manifest.json" else root / manifest["directory"] / name
    original = target.read_bytes()
    body = data[2:]
    try:
        target.write_bytes(body)
        if name != "manifest.json" and selector & 1:
            forged = dict(manifest)
            forged.pop("manifest_sha256")
            forged["files"] = dict(forged["files"])
            forged["files"][name] = {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
            forged["manifest_sha256"] = body_digest(forged)
            manifest_path.write_text(json.dumps(forged, indent=1, sort_keys=True))
        elif name == "manifest.json" and selector & 1:
            target.write_bytes(_resign(body, "manifest_sha256"))
        with _property("KnownIndex.open"):
            with KnownIndex.open(root, verify=not selector & 2) as index:
                _exercise(index)
    finally:
        target.write_bytes(original)
        manifest_path.write_bytes(manifest_text)


def _index_seeds() -> list[bytes]:
    root = _template_index()
    manifest = json.loads((root / "manifest.json").read_text())
    seeds = []
    for number, name in enumerate(_index_files()):
        path = root / "manifest.json" if name == "manifest.json" else root / manifest["directory"] / name
        if name.endswith(".npy") and not name.startswith("pdq."):
            continue  # one set of arrays is enough as seeds; the selector still reaches the others
        seeds.append(bytes([1, number]) + path.read_bytes())
    return seeds


def _state(root: Path) -> tuple[Any, ...]:
    """What an index answers: its manifest, generation, records and lists (opened afresh, verified)."""
    from matcher.index import KnownIndex

    with KnownIndex.open(root) as index:
        records = [
            (
                r.id,
                r.list_name,
                r.category,
                r.md5,
                r.sha1,
                r.sha256,
                tuple(sorted((k, v.hex()) for k, v in r.hashes.items())),
            )
            for r in index.iter_records()
        ]
        views = {
            i: {a: {v: h.hex() for v, h in named.items()} for a, named in by.items()}
            for i, by in index.record_views([r[0] for r in records]).items()
        }
        return ((root / "manifest.json").read_bytes(), index.generation, records, views, index.lists())


@functools.cache
def _template_state() -> tuple[Any, ...]:
    return _state(_template_index())


def run_import(data: bytes) -> None:
    """Import ``data[1:]`` as a hash list into a copy of the template index; a refusal must change nothing.

    ``data[0]`` bit 0: strict; bit 1: through ``matcher index add`` (exit code 2 is the refusal).
    """
    from matcher.index import KnownIndex
    from matcher.index.importing import import_sources

    selector = data[0] if data else 0
    strict, cli = bool(selector & 1), bool(selector & 2)
    work = _workdir("import")
    root = work / "index"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(_template_index(), root)
    source = work / "list.txt"
    source.write_bytes(data[1:])
    before = _template_state()
    refused = False
    if cli:
        from matcher import cli as matcher_cli

        argv = ["index", "add", str(root), str(source), "--list", "fuzz", "--quiet"] + (["--strict"] if strict else [])
        with _property("matcher index add"):
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = matcher_cli.main(argv)
            if code not in (0, 2):
                raise Finding("crash", f"matcher index add exited {code}: {err.getvalue()[-300:]}")
            if _SAFETY_NET.search(err.getvalue()):
                raise Finding("unclear", f"matcher index add: {err.getvalue()[-300:]}")
            refused = code == 2
    else:
        matcher_error = _matcher_error()
        with _property("import_sources"):
            try:
                with KnownIndex.open(root, writable=True) as index:
                    import_sources(index, [source], list_name="fuzz", strict=strict, on_problem=lambda p: None)
            except matcher_error:
                refused = True
                raise
    with _property("reopen after import"):
        after = _state(root)
    if refused and after != before:
        raise Finding("changed", f"index changed after a refused import (generation {before[1]} -> {after[1]})")
    leftovers = [p.name for p in root.iterdir() if p.name.startswith("tmp-") or ".tmp-" in p.name]
    if leftovers:
        raise Finding("changed", f"import left temporary files behind: {leftovers}")


def _import_seeds() -> list[bytes]:
    seeds = []
    for number, seed in enumerate(_hashlist_seeds()[:4] + _vics_seeds()[:1]):
        seeds.append(bytes([number % 4]) + seed)
    return seeds


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("image", "open_image / iter_frames / sniff / hash_bytes", _image_seeds, run_image),
        Target("video", "iter_video_frames / hash_bytes on videos", _video_seeds, run_video, "mp4"),
        Target(
            "hashlist", "detect_format + read_records, auto and every text format", _hashlist_seeds, run_hashlist, "txt"
        ),
        Target("vics", "VICS JSON reader", _vics_seeds, run_vics, "json"),
        Target("nsrl", "NSRL RDSv3 SQLite reader", lambda: [_nsrl_seed()], run_nsrl, "db"),
        Target(
            "manifest",
            "manifest.json (Manifest.from_json via read_manifest)",
            lambda: [b"\x00" + _manifest_seed()],
            run_manifest,
            "json",
            _template_index,
        ),
        Target(
            "shards",
            "shards.json (_read_document, ShardedIndex.open)",
            lambda: [b"\x00" + (_template_sharded() / "shards.json").read_bytes()],
            run_shards,
            "json",
            _template_sharded,
        ),
        Target(
            "index",
            "KnownIndex.open on mutated manifest / SQLite / .npy files",
            _index_seeds,
            run_index,
            prepare=_template_index,
        ),
        Target(
            "import",
            "import_sources / matcher index add into an index; refusal leaves it unchanged",
            _import_seeds,
            run_import,
            "txt",
            _template_state,
        ),
    )
}


#: Findings in code outside the parsers this fuzzing may change, reported to its owners and tolerated
#: until fixed: ``(target, pattern of the finding's text, what is wrong and where)``.
KNOWN_OPEN: tuple[tuple[str, str, str], ...] = ()


def known_open(target: Target, finding: Finding) -> str | None:
    """The explanation when ``finding`` is a known open one (see :data:`KNOWN_OPEN`), else ``None``."""
    for name, pattern, explanation in KNOWN_OPEN:
        if name == target.name and re.search(pattern, str(finding)):
            return explanation
    return None


def check(target: Target, data: bytes, time_bound: float = TIME_BOUND_S, *, allow_known: bool = False) -> None:
    """Run ``target`` on ``data`` with the time bound (SIGALRM; main thread only); :class:`Finding` on violation.

    ``allow_known``: a finding listed in :data:`KNOWN_OPEN` is not raised.
    """
    try:
        _check(target, data, time_bound)
    except Finding as finding:
        if allow_known and known_open(target, finding):
            return
        raise


def _check(target: Target, data: bytes, time_bound: float) -> None:
    target.prepare()

    def alarm(_signum: int, _frame: Any) -> None:
        raise _Alarm()

    use_alarm = hasattr(signal, "setitimer") and _is_main_thread()
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, time_bound)
    started = time.perf_counter()
    try:
        target.run(data)
    except _Alarm:
        raise Finding("timeout", f"{target.name}: over {time_bound} s") from None
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    if time.perf_counter() - started > time_bound:
        raise Finding("timeout", f"{target.name}: {time.perf_counter() - started:.1f} s")


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def regression_files() -> list[Path]:
    """The saved crashing inputs, sorted."""
    if not REGRESSIONS.is_dir():
        return []
    return sorted(
        p
        for p in REGRESSIONS.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.split("-", 1)[0] in TARGETS
    )


def save_regression(target: Target, data: bytes) -> Path:
    """Save a crashing input as ``tests/fuzz_regressions/<target>-NNNN.<ext>`` (once per content)."""
    REGRESSIONS.mkdir(parents=True, exist_ok=True)
    for existing in REGRESSIONS.iterdir():
        if existing.is_file() and existing.read_bytes() == data and existing.name.startswith(target.name + "-"):
            return existing
    numbers = [int(m.group(1)) for p in REGRESSIONS.iterdir() if (m := re.match(r"[a-z]+-(\d{4})\.", p.name))]
    path = REGRESSIONS / f"{target.name}-{max(numbers, default=0) + 1:04d}.{target.extension}"
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------------
# The campaign: a child process per target


def _limit_memory() -> int:
    """Limit this process's address space to its current size plus :data:`MEMORY_BOUND_BYTES`."""
    import resource

    size = 0
    with open("/proc/self/statm") as handle:
        size = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = size + MEMORY_BOUND_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return limit


def _warm_up(target: Target) -> list[bytes]:
    """Seeds, and one run so that lazy imports and templates are made before the memory limit."""
    seeds = target.seeds()
    target.prepare()
    with contextlib.suppress(Finding):
        target.run(seeds[0])
    return seeds


def _count_known(stats: dict[str, Any], target: Target, finding: Finding, data: bytes) -> None:
    """Count a finding listed in :data:`KNOWN_OPEN` (its regression file is kept by hand, not per hit)."""
    stats["known_open"] = stats.get("known_open", 0) + 1
    if stats["known_open"] == 1:
        stats["known_open_detail"] = str(finding)[:300]


def _child_report(path: Path, stats: dict[str, Any]) -> None:
    path.write_text(json.dumps(stats))


def _child_hypothesis(target: Target, stop_at: float, seed: int, report: Path, limit: int) -> None:
    """Mutational fuzzing driven by hypothesis (the engine when atheris is missing)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    seeds = _warm_up(target)
    stats = {"inputs": 0, "findings": [], "engine": "hypothesis", "memory_limit": limit}
    deadline = time.monotonic() + (stop_at - time.time())
    strategy = fuzz_inputs_strategy(seeds, st)
    round_number = 0
    while time.monotonic() < deadline:
        found: list[tuple[Finding, bytes]] = []

        @settings(
            max_examples=2000, deadline=None, database=None, derandomize=False, suppress_health_check=list(HealthCheck)
        )
        @given(strategy)
        def prop(data: bytes) -> None:
            if time.monotonic() > deadline:
                return
            stats["inputs"] += 1
            try:
                check(target, data)
            except Finding as exc:
                if known_open(target, exc):
                    _count_known(stats, target, exc, data)
                    return
                found.append((exc, data))
                raise

        random.seed(seed * 7919 + round_number)
        round_number += 1
        try:
            prop()
        except Finding:
            pass
        except Exception as exc:  # noqa: BLE001 - hypothesis' own errors (flaky...) are findings too
            if not found:
                stats["findings"].append({"kind": "engine", "detail": repr(exc)[:500]})
        if found:
            finding, data = found[-1]  # the shrunk one comes last
            saved = save_regression(target, data)
            stats["findings"].append({"kind": finding.kind, "detail": finding.detail[:500], "file": saved.name})
        _child_report(report, stats)
    _child_report(report, stats)


def fuzz_inputs_strategy(seeds: list[bytes], st: Any, max_random: int = 4096) -> Any:
    """The hypothesis strategy of fuzz inputs: a seed with up to 6 mutations, or random bytes."""
    ops = st.lists(
        st.tuples(st.integers(0, len(MUTATIONS) - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=6
    )
    mutated = st.builds(lambda i, o: mutate(seeds[i], o, seeds), st.integers(0, len(seeds) - 1), ops)
    prefix = st.sampled_from([s[:1] for s in seeds])
    raw = st.builds(lambda p, b: p + b, prefix, st.binary(max_size=max_random))
    return st.one_of(mutated, mutated, mutated, raw)


def _child_atheris(target: Target, stop_at: float, seed: int, report: Path, corpus: Path, artifacts: Path) -> None:
    """Coverage-guided fuzzing with atheris (libFuzzer) over matcher's and Pillow's Python code."""
    import atheris

    # matcher.algorithms is left out: numba cannot compile instrumented functions (and hashing parses nothing);
    # Pillow's plugins (the image parsers) only for the image target, where they are what is fuzzed
    include = ["matcher", "PIL"] if target.name == "image" else ["matcher"]
    with atheris.instrument_imports(
        include=include,
        exclude=[
            "matcher.algorithms",
            "matcher.algorithms.pdq",
            "matcher.algorithms._pdq_numba",
            "matcher.algorithms.imagehash_family",
        ],
    ):
        import PIL.Image

        import matcher.cli  # noqa: F401
        import matcher.formats.registry  # noqa: F401
        import matcher.hashing  # noqa: F401
        import matcher.index  # noqa: F401
        import matcher.index.importing  # noqa: F401

        PIL.Image.init()  # the plugins, imported (and instrumented) now
    seeds = _warm_up(target)
    corpus.mkdir(parents=True, exist_ok=True)
    for data in seeds:
        (corpus / hashlib.sha1(data).hexdigest()).write_bytes(data)
    limit = _limit_memory()
    stats: dict[str, Any] = {"inputs": 0, "findings": [], "engine": "atheris", "memory_limit": limit}
    rnd = random.Random(seed)
    last_write = [time.monotonic()]

    def one_input(data: bytes) -> None:
        stats["inputs"] += 1
        if time.monotonic() - last_write[0] > 2:
            _child_report(report, stats)
            last_write[0] = time.monotonic()
        try:
            target.run(data)
        except Finding as exc:
            if known_open(target, exc):
                _count_known(stats, target, exc, data)
                return
            saved = save_regression(target, data)
            stats["findings"].append({"kind": exc.kind, "detail": exc.detail[:500], "file": saved.name})
            _child_report(report, stats)
            raise

    def custom_mutator(data: bytes, max_size: int, mutator_seed: int) -> bytes:
        local = random.Random(mutator_seed)
        if local.random() < 0.5:
            return atheris.Mutate(data, max_size)
        return mutate(data, random_ops(local), seeds)[:max_size]

    max_len = max(len(s) for s in seeds) + 4096
    seconds = max(1, int(stop_at - time.time()))
    argv = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={seconds}",
        f"-timeout={int(TIME_BOUND_S)}",
        "-rss_limit_mb=0",
        f"-max_len={max_len}",
        f"-seed={rnd.getrandbits(31) + 1}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        "-close_fd_mask=3",
    ]
    atheris.Setup(argv, one_input, custom_mutator=custom_mutator)
    import atexit

    atexit.register(lambda: _child_report(report, stats))
    atheris.Fuzz()


def _run_child(args: argparse.Namespace) -> int:
    target = TARGETS[args.target]
    report = Path(args.report)
    if args.engine == "atheris":
        _child_atheris(target, args.deadline, args.seed, report, Path(args.corpus), Path(args.artifacts))
    else:
        _warm_up(target)
        limit = _limit_memory()
        _child_hypothesis(target, args.deadline, args.seed, report, limit)
    return 0


def _engine(requested: str | None) -> str:
    if requested:
        return requested
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "hypothesis"
    return "atheris"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "matcher"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return out.stdout.strip() + (" (+ uncommitted changes under matcher/)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import PIL

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "platform": platform.platform(),
    }


def _campaign_target(target: Target, engine: str, seconds: float, seed: int, work: Path) -> dict[str, Any]:
    """Run one target for ``seconds``, restarting the child after each crash, hang or memory kill."""
    totals: dict[str, Any] = {
        "target": target.name,
        "description": target.description,
        "inputs": 0,
        "crashes": 0,
        "unclear_errors": 0,
        "hangs": 0,
        "memory_violations": 0,
        "index_changed": 0,
        "known_open": 0,
        "harness_errors": 0,
        "child_restarts": 0,
        "findings": [],
        "seconds": 0.0,
    }
    corpus = work / "corpus" / target.name
    artifacts = work / "artifacts" / target.name
    artifacts.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    run = 0
    while (left := seconds - (time.monotonic() - started)) > 5:
        report = work / f"{target.name}-{run}.json"
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.fuzz_campaign",
            "--child",
            "--target",
            target.name,
            "--engine",
            engine,
            "--deadline",
            str(time.time() + left),
            "--seed",
            str(seed * 1000 + run),
            "--report",
            str(report),
            "--corpus",
            str(corpus),
            "--artifacts",
            str(artifacts),
        ]
        before = set(artifacts.iterdir())
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=left + 120)
            code, tail = proc.returncode, (proc.stderr or "")[-2000:]
        except subprocess.TimeoutExpired as exc:
            code, tail = -9, f"child killed after {left + 120:.0f} s (hang in native code?) {exc}"
            totals["hangs"] += 1
        stats = json.loads(report.read_text()) if report.exists() else {"inputs": 0, "findings": []}
        executed = re.findall(r"stat::number_of_executed_units:\s*(\d+)", tail)
        totals["inputs"] += int(executed[-1]) if executed else stats["inputs"]
        totals["memory_limit_bytes"] = stats.get("memory_limit")
        totals["known_open"] += stats.get("known_open", 0)
        if stats.get("known_open_detail"):
            totals["known_open_detail"] = stats["known_open_detail"]
        for finding in stats["findings"]:
            totals["findings"].append(finding)
            key = {
                "crash": "crashes",
                "unclear": "unclear_errors",
                "timeout": "hangs",
                "memory": "memory_violations",
                "changed": "index_changed",
            }.get(finding["kind"], "crashes")
            totals[key] += 1
        for artifact in sorted(set(artifacts.iterdir()) - before):  # libFuzzer: timeouts, OOMs, native crashes
            data = artifact.read_bytes()
            if artifact.name.startswith("crash-") and any(f.get("file") for f in stats["findings"]):
                continue  # a Python finding, saved already
            kind = (
                "hangs"
                if artifact.name.startswith("timeout-")
                else ("memory_violations" if artifact.name.startswith("oom-") else "crashes")
            )
            totals[kind] += 1
            saved = save_regression(target, data)
            totals["findings"].append({"kind": kind, "detail": tail[-500:], "file": saved.name})
        if code != 0 and not stats["findings"] and not (set(artifacts.iterdir()) - before):
            if code < 0 or code in (137, 139):  # killed: a native crash or the kernel's OOM killer
                totals["crashes"] += 1
                totals["findings"].append({"kind": "child died", "detail": f"exit {code}: {tail[-500:]}"})
            else:
                totals["harness_errors"] += 1
                totals["findings"].append({"kind": "harness error", "detail": f"exit {code}: {tail[-800:]}"})
                print(f"  harness error (exit {code}):\n{tail[-1500:]}", file=sys.stderr, flush=True)
                break
        run += 1
        if code != 0:
            totals["child_restarts"] += 1
        else:
            break
    totals["seconds"] = round(time.monotonic() - started, 1)
    return totals


def campaign(minutes: float, seed: int, engine: str, targets: list[str], name: str = "fuzz_campaign") -> dict[str, Any]:
    """Run the campaign and write ``benchmarks/results/<name>.json`` and ``.md``."""
    started_at = datetime.now(UTC)
    started = time.monotonic()
    per_target = minutes * 60 / len(targets)
    results = []
    with tempfile.TemporaryDirectory(prefix="matcher-fuzz-campaign-") as tmp:
        # the templates every child starts from, made once (a child copies them: some targets change theirs)
        os.environ[_TEMPLATE_ENV["index"]] = str(_template_index())
        os.environ[_TEMPLATE_ENV["sharded"]] = str(_template_sharded())
        for target_name in targets:
            print(f"fuzzing {target_name} for {per_target:.0f} s ({engine})", file=sys.stderr, flush=True)
            result = _campaign_target(TARGETS[target_name], engine, per_target, seed, Path(tmp))
            print(
                f"  {result['inputs']} inputs, {result['crashes']} crashes, {result['hangs']} hangs, "
                f"{result['memory_violations']} memory, {result['unclear_errors']} unclear, "
                f"{result['index_changed']} index changed",
                file=sys.stderr,
                flush=True,
            )
            results.append(result)
    summary = {
        "command": "python -m benchmarks.fuzz_campaign " + " ".join(sys.argv[1:]),
        "engine": engine,
        "seed": seed,
        "date": started_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(time.monotonic() - started, 1),
        "matcher_commit": _git_commit(),
        "machine": _machine(),
        "bounds": {
            "time_per_input_s": TIME_BOUND_S,
            "memory_per_input": "RLIMIT_AS = size after start-up + 1 GiB",
            "memory_bound_bytes": MEMORY_BOUND_BYTES,
            "image_decoding": FUZZ_HASH_OPTIONS,
        },
        "totals": {
            key: sum(r[key] for r in results)
            for key in (
                "inputs",
                "crashes",
                "unclear_errors",
                "hangs",
                "memory_violations",
                "index_changed",
                "known_open",
                "harness_errors",
            )
        },
        "targets": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(_markdown(summary))
    return summary


def _markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# Fuzz campaign",
        "",
        f"`{summary['command']}`, engine **{summary['engine']}**, seed {summary['seed']}, "
        f"{summary['date']}, {summary['duration_s'] / 60:.1f} min, matcher {summary['matcher_commit']}.",
        "",
        f"Machine: {summary['machine']['cpu']}, {summary['machine']['cores']} cores, Python "
        f"{summary['machine']['python']}, Pillow {summary['machine']['pillow']}.",
        "",
        f"Bounds per input: {summary['bounds']['time_per_input_s']:.0f} s, memory "
        f"{summary['bounds']['memory_per_input']}; images decoded with {summary['bounds']['image_decoding']}.",
        "",
        "| target | what | inputs | crashes | unclear errors | hangs | memory | index changed | known open |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary["targets"]:
        lines.append(
            f"| {r['target']} | {r['description']} | {r['inputs']:,} | {r['crashes']} | "
            f"{r['unclear_errors']} | {r['hangs']} | {r['memory_violations']} | {r['index_changed']} | "
            f"{r['known_open']} |"
        )
    t = summary["totals"]
    lines.append(
        f"| **total** | | **{t['inputs']:,}** | {t['crashes']} | {t['unclear_errors']} | {t['hangs']} | "
        f"{t['memory_violations']} | {t['index_changed']} | {t['known_open']} |"
    )
    lines += [
        "",
        "Crashes: an exception other than a `MatcherError` escaped (or the process died); unclear errors: a "
        '`MatcherError` carrying the library\'s safety-net text ("unexpected ValueError ..."); known open: '
        "inputs that hit a bug already reported in code outside the fuzzed parsers (listed below), "
        "counted but not saved again.",
    ]
    if any(r["known_open"] for r in summary["targets"]):
        lines += ["", "## Known open", ""]
        for _name, _pattern, explanation in KNOWN_OPEN:
            hits = sum(r["known_open"] for r in summary["targets"] if r["target"] == _name)
            lines.append(f"- {_name} ({hits} inputs): {explanation}")
    findings = [(r["target"], f) for r in summary["targets"] for f in r["findings"]]
    lines += ["", "## Findings", ""]
    if not findings:
        lines.append("None.")
    for name, finding in findings:
        detail = finding["detail"].replace("\n", " ")[:300]
        lines.append(
            f"- {name}: {finding['kind']}: {detail}"
            + (f" (`tests/fuzz_regressions/{finding['file']}`)" if finding.get("file") else "")
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz_campaign", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="total time, shared equally by the targets")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", choices=["atheris", "hypothesis"], help="default: atheris when installed")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated (default: all)")
    parser.add_argument("--name", default="fuzz_campaign", help="results file name (default: %(default)s)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)  # time.time() to stop at
    parser.add_argument("--report", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--artifacts", help=argparse.SUPPRESS)
    args, _unknown = parser.parse_known_args(argv)
    if args.child:
        return _run_child(args)
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    summary = campaign(args.minutes, args.seed, _engine(args.engine), targets, args.name)
    print(json.dumps(summary["totals"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
