"""Hashing files, streams, Pillow images and arrays into :class:`HashRecord` values.

A thin layer over :mod:`matcher.pipeline`, which reads each file once (the same bytes feed the digests
and the decoder) and decodes it into frames. Every input gives records, never an exception for what is
wrong with the input itself: a file that cannot be read, decoded or hashed still gets a record whose
``error`` says why (with its digests when its bytes could be read); a file that is not an image gets
its digests and a ``note`` (the pipeline's one rule for what is not decoded). Only wrong arguments (an
unknown algorithm, a bad option) raise.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from . import batch, files, local_features
from .algorithms import registry
from .errors import UsageError
from .file_facts import FileFacts, file_columns
from .hashes import Hash
from .pipeline import (
    CHANGED_WHILE_READ,
    DEFAULT_ALGORITHMS,
    EntryFeatures,
    FeatureRequest,
    HashOptions,
    decode,
    read_entry,
    read_source,
    with_changed,
)
from .video_hash import VpdqFeature, representative

__all__ = [
    "HashOptions",
    "HashRecord",
    "hash_file",
    "hash_bytes",
    "hash_stream",
    "hash_image",
    "hash_array",
    "hash_paths",
    "HashProgress",
    "records_of",
    "file_columns",
    "DEFAULT_ALGORITHMS",
    "CHANGED_WHILE_READ",
]

log = logging.getLogger(__name__)

AlgorithmNames = str | Sequence[str]


@dataclass(frozen=True, slots=True)
class HashRecord(FileFacts):
    """What matcher knows of one file, or of one frame of a multi-frame file.

    The file fields of :class:`~matcher.file_facts.FileFacts` (``path``, ``frame``, digests, ``error``,
    ...; only ``path`` positional), plus: ``hashes`` maps algorithm names to
    :class:`~matcher.hashes.Hash`; ``note`` says why a file that is not an error has no hash (not an
    image: digests only; see :mod:`matcher.pipeline`); fields that could not be learnt are ``None``.
    ``views`` (only with
    :attr:`HashOptions.views`) maps algorithm names to ``{view name: Hash}`` of the frame's
    known-side views (views that do not apply are absent); :meth:`to_dict` does not include them.
    ``vpdq``: a video's sampled frames (its vPDQ hash; :mod:`matcher.video_hash`); a video is one
    record whose ``hashes`` are those of its representative frame (the highest PDQ quality, the
    earliest of those), and :meth:`to_dict` adds the key ``vpdq``, a list of ``{"frame",
    "timestamp", "pdq", "quality"}``.
    ``local`` (only with :attr:`HashOptions.local`): the frame's known-image local features.
    """

    hashes: dict[str, Hash] = field(default_factory=dict)
    pdq_quality: int | None = None
    views: dict[str, dict[str, Hash]] = field(default_factory=dict)
    note: str | None = None
    vpdq: tuple[VpdqFeature, ...] = ()
    local: local_features.LocalFeatures | None = None

    def to_dict(self, algorithms: Iterable[str] = ()) -> dict[str, Any]:
        """A flat, JSON-ready dict: the fields, then one hex column per algorithm (never the views),
        ``pdq_quality`` and the quality column of each other algorithm with a quality
        (``phash_quality``...), so that a hash list made from it keeps the quality gate.

        ``algorithms`` names the hash columns to include even when this record has no such hash
        (their value is then ``None``), so every record of a report has the same keys.
        """
        names = tuple(algorithms)
        out = file_columns(self, names)
        out["pdq_quality"] = self.pdq_quality
        for name in dict.fromkeys((*names, *self.hashes)):
            algorithm = registry.find(name)
            column = None if algorithm is None else algorithm.quality_field
            if column is not None and column not in out:
                value = self.hashes.get(name)
                out[column] = None if value is None else value.quality
        out["error"] = self.error
        out["note"] = self.note
        out["path_raw_hex"] = self.path_raw_hex
        if self.vpdq:
            out["vpdq"] = [
                {"frame": f.frame, "timestamp": round(f.timestamp, 3), "pdq": f.hash.hex(), "quality": f.quality}
                for f in self.vpdq
            ]
        return out


def _video_records(entry: EntryFeatures, facts: dict[str, Any], note: str | None) -> list[HashRecord]:
    """A video's hash records: one for the video (its vPDQ frames, its representative frame's hashes,
    views as asked), and one more for its error (or for the file when no frame was sampled)."""
    records = []
    features = tuple(
        VpdqFeature(frame.index or 0, frame.hashes["pdq"], frame.timestamp or 0.0)
        for frame in entry.frames
        if "pdq" in frame.hashes
    )
    if entry.frames:
        best = representative(features)
        chosen = next((f for f in entry.frames if best is not None and f.index == best.frame), entry.frames[0])
        records.append(
            HashRecord(
                **facts,
                hashes=dict(chosen.hashes),
                pdq_quality=chosen.quality("pdq"),
                views={name: dict(views) for name, views in chosen.known_views.items()},
                error=with_changed(None, entry.changed),
                note=note,
                vpdq=features,
            )
        )
    if entry.error is not None or not entry.frames:
        records.append(
            HashRecord(
                **{**facts, "frame": entry.failed_frame}, error=with_changed(entry.error, entry.changed), note=note
            )
        )
    return records


def _request(names: AlgorithmNames | None, options: HashOptions) -> FeatureRequest:
    chosen = registry.resolve(DEFAULT_ALGORITHMS if names is None else names)
    local = local_features.KNOWN_PARAMS if options.local else None
    return FeatureRequest(tuple(a.name for a in chosen), known_views=options.views, local=local)


def records_of(entry: EntryFeatures) -> list[HashRecord]:
    """The hash records of one entry the pipeline read: one per decoded frame, and one more for the
    failure (or for the whole file when no frame was decoded)."""
    if entry.skipped:  # never opened: a hash record has no status, its error says what the entry is
        return [HashRecord(path=entry.name, path_raw_hex=entry.raw_hex, size=entry.size, error=entry.note)]
    facts = entry.file_facts()
    notes = [n for n in (entry.note, *entry.notes) if n]
    note = "; ".join(notes) if notes else None
    if entry.media is not None and entry.media.is_video:
        return _video_records(entry, facts, note)
    records = [
        HashRecord(
            **{**facts, "frame": frame.index, "width": frame.width, "height": frame.height},
            hashes=dict(frame.hashes),
            pdq_quality=frame.quality("pdq"),
            views={name: dict(views) for name, views in frame.known_views.items()},
            local=frame.descriptors,
            error=with_changed(None, entry.changed),
            note=note,
        )
        for frame in entry.frames
    ]
    if entry.error is not None or not entry.frames:
        records.append(
            HashRecord(
                **{**facts, "frame": entry.failed_frame}, error=with_changed(entry.error, entry.changed), note=note
            )
        )
    return records


def hash_file(
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
    algorithms: AlgorithmNames | None = None,
    *,
    options: HashOptions | None = None,
) -> list[HashRecord]:
    """Hash one file: one record per frame (one record for a still image or any failure).

    The file is opened read-only and read once; its bytes feed both the digests and the decoder.
    ``algorithms`` is a list of names or a comma-separated string (default ``"pdq"``).
    """
    options = options or HashOptions()
    request = _request(algorithms, options)
    raw = os.fsencode(path)
    name, raw_hex = files.display_path(raw)
    return records_of(read_source(files.read_file, raw, name, raw_hex, request, options, path=raw))


def hash_stream(
    stream: BinaryIO,
    algorithms: AlgorithmNames | None = None,
    *,
    name: str | None = None,
    options: HashOptions | None = None,
) -> list[HashRecord]:
    """Hash the bytes of an open binary stream (read to its end once); ``name`` goes in ``path``."""
    options = options or HashOptions()
    request = _request(algorithms, options)
    return records_of(read_source(files.read_stream, stream, name, None, request, options))


def hash_bytes(
    data: bytes,
    algorithms: AlgorithmNames | None = None,
    *,
    name: str | None = None,
    options: HashOptions | None = None,
) -> list[HashRecord]:
    """Hash a file's content held in memory; ``name`` (optional) goes in ``path``."""
    return hash_stream(io.BytesIO(bytes(data)), algorithms, name=name, options=options)


def hash_image(
    image: Image.Image,
    algorithms: AlgorithmNames | None = None,
    *,
    options: HashOptions | None = None,
) -> list[HashRecord]:
    """Hash a Pillow image (every frame of an animated one); there are no file digests."""
    if not isinstance(image, Image.Image):
        raise UsageError(f"hash_image needs a PIL.Image.Image, not {type(image).__name__}")
    options = options or HashOptions()
    request = _request(algorithms, options)
    fmt = (image.format or "").upper()
    mime = Image.MIME.get(fmt) if fmt else None
    entry = EntryFeatures(None, None, None).with_decoded(decode(image, request, options))
    return [replace(r, mime=mime) for r in records_of(entry)]


def hash_array(array: np.ndarray, algorithms: AlgorithmNames | None = None) -> HashRecord:
    """Hash an HxWx3 (RGB) or HxW (grey) uint8 numpy array.

    PDQ is computed on the array directly, exactly as the reference does on the same pixels.
    """
    algos = registry.resolve(DEFAULT_ALGORITHMS if algorithms is None else algorithms)
    pixels = np.asarray(array)
    if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise UsageError(f"hash_array needs an HxWx3 or HxW uint8 array, got {pixels.dtype} {pixels.shape}")
    if pixels.ndim == 3:
        pixels = np.ascontiguousarray(pixels[..., :3])
    hashes = {algorithm.name: algorithm.hash_array(pixels) for algorithm in algos}
    quality = hashes["pdq"].quality if "pdq" in hashes else None
    return HashRecord(path=None, width=pixels.shape[1], height=pixels.shape[0], hashes=hashes, pdq_quality=quality)


@dataclass(frozen=True, slots=True)
class HashProgress:
    """Progress of :func:`hash_paths`: ``files`` walked entries done, ``bytes_done`` their sizes
    (regular files), ``records`` yielded, ``errors`` entries with an ``error`` record, ``elapsed``
    seconds; ``total`` / ``total_bytes`` the entries and bytes of the walk (``None`` unless counted
    first)."""

    files: int
    bytes_done: int
    records: int
    errors: int
    elapsed: float
    total: int | None = None
    total_bytes: int | None = None


# Entries sent to a hashing worker at a time, and the fewest entries (once counted) per worker
# started: a pool takes a second or two to start, the time to hash a few dozen images.
_CHUNK = 4
_ENTRIES_PER_WORKER = 32
_JOB: tuple[FeatureRequest, HashOptions] | None = None


def _init_worker(request: FeatureRequest, options: HashOptions) -> None:
    """Pool initializer: what every entry of this run is hashed with."""
    global _JOB
    _JOB = (request, options)


def _warm_up() -> bool:
    """Pool task: returns once this worker has hashed a tiny blank image (compiled kernels loaded)."""
    if _JOB is None:  # pragma: no cover - the initializer always sets it
        raise UsageError("hashing worker was not initialised")
    decode(Image.new("RGB", (32, 32)), *_JOB)
    return True


def _hash_chunk(entries: list[files.Entry]) -> list[list[HashRecord]]:
    """Pool task: the records of each entry of a chunk, in order."""
    if _JOB is None:  # pragma: no cover - the initializer always sets it
        raise UsageError("hashing worker was not initialised")
    request, options = _JOB
    return [records_of(read_entry(entry, request, options)) for entry in entries]


def hash_paths(
    paths: Iterable[str | bytes | os.PathLike[str] | os.PathLike[bytes]],
    algorithms: AlgorithmNames | None = None,
    *,
    options: HashOptions | None = None,
    workers: int | None = 1,
    progress: Callable[[HashProgress], None] | None = None,
    count_first: bool = False,
) -> Iterator[HashRecord]:
    """Walk files and directories (recursively, in sorted order) and yield every file's records.

    Symbolic links met inside a directory are not followed, FIFOs, sockets and devices are never
    opened; each of them, and every directory that cannot be listed, still gets a record whose
    ``error`` says what it was.

    ``workers``: processes hashing in parallel (``1``, the default: in this process, no process is
    started; ``None``: the CPU count); the records come in the same order whatever the number, and
    the pool is shut down when the iterator is exhausted or closed. ``progress`` is called once
    before the first entry and after each entry's records with a :class:`HashProgress`;
    ``count_first`` walks the paths once beforehand so that it has totals (and then starts at most
    one worker per 32 entries); with one worker and no ``progress`` there is nothing to count for.
    While the workers start, this process hashes the first entries itself. Bad arguments raise
    :class:`~matcher.errors.UsageError` here, before anything is read.
    """
    options = options or HashOptions()
    request = _request(algorithms, options)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UsageError(f"workers must be a positive integer or None, not {workers!r}")
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise UsageError("hash_paths() takes an iterable of paths; wrap a single path in a list")
    return _hash_paths(list(paths), request, options, workers or os.cpu_count() or 1, progress, count_first)


def _hash_paths(
    paths: list[str | bytes | os.PathLike[str] | os.PathLike[bytes]],
    request: FeatureRequest,
    options: HashOptions,
    workers: int,
    progress: Callable[[HashProgress], None] | None,
    count_first: bool,
) -> Iterator[HashRecord]:
    started = time.perf_counter()
    total = total_bytes = None
    if count_first and (progress is not None or workers > 1):  # totals serve the progress and the pool's size
        total = total_bytes = 0
        for entry in files.walk(paths):
            total, total_bytes = total + 1, total_bytes + (entry.size or 0)
        workers = max(1, min(workers, -(-total // _ENTRIES_PER_WORKER)))
    done = done_bytes = records = errors = 0
    if progress is not None:
        progress(HashProgress(0, 0, 0, 0, time.perf_counter() - started, total, total_bytes))
    entries = files.walk(paths)  # the pipeline answers links, FIFOs and unlistable directories too
    if workers == 1:
        found: Generator[list[HashRecord], None, None] = (
            records_of(read_entry(entry, request, options)) for entry in entries
        )
    else:
        found = batch.pool_map(
            _hash_chunk,
            entries,
            workers,
            initializer=_init_worker,
            initargs=(request, options),
            preload=["matcher.hashing"],
            chunk_size=_CHUNK,
            warm_up=_warm_up,
            in_parent=lambda entry: records_of(read_entry(entry, request, options)),
            what="hashing worker",
        )
    with contextlib.closing(found):
        for entry_records in found:
            done += 1
            done_bytes += max((r.size or 0 for r in entry_records), default=0)
            records += len(entry_records)
            errors += any(r.error is not None for r in entry_records)
            yield from entry_records
            if progress is not None:
                elapsed = time.perf_counter() - started
                progress(HashProgress(done, done_bytes, records, errors, elapsed, total, total_bytes))
