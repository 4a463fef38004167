"""Hashing files, streams, Pillow images and arrays into :class:`HashRecord` values.

A thin layer over :mod:`matcher.pipeline`, which reads each file once (the same bytes feed the digests
and the decoder) and decodes it into frames. Every input gives records, never an exception for what is
wrong with the input itself: a file that cannot be read, decoded or hashed still gets a record whose
``error`` says why (with its digests when its bytes could be read); a file that is not an image gets
its digests and a ``note`` (the pipeline's one rule for what is not decoded). Only wrong arguments (an
unknown algorithm, a bad option) raise.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from . import files
from .algorithms import registry
from .errors import UsageError
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

__all__ = [
    "HashOptions",
    "HashRecord",
    "hash_file",
    "hash_bytes",
    "hash_stream",
    "hash_image",
    "hash_array",
    "hash_paths",
    "records_of",
    "file_columns",
    "DEFAULT_ALGORITHMS",
    "CHANGED_WHILE_READ",
]

log = logging.getLogger(__name__)

AlgorithmNames = str | Sequence[str]


@dataclass(frozen=True, slots=True)
class HashRecord:
    """What matcher knows of one file, or of one frame of a multi-frame file.

    ``path`` is the path as text (bytes that are not UTF-8 shown as ``\\xNN``), ``path_raw_hex`` the
    raw bytes in hex when the path is not valid UTF-8 (else ``None``). ``frame`` is ``None`` for a
    still image, else the 0-based frame index; ``frame_count`` the frames in the file. ``hashes`` maps
    algorithm names to :class:`~matcher.hashes.Hash`. ``error`` is ``None`` or a message naming what was
    wrong; ``note`` says why a file that is not an error has no hash (not an image: digests only;
    see :mod:`matcher.pipeline`); fields that could not be learnt are ``None``. ``views`` (only with
    :attr:`HashOptions.views`) maps algorithm names to ``{view name: Hash}`` of the frame's
    known-side views (views that do not apply are absent); :meth:`to_dict` does not include them.
    """

    path: str | None
    frame: int | None = None
    frame_count: int | None = None
    size: int | None = None
    mime: str | None = None
    extension_mismatch: bool | None = None
    width: int | None = None
    height: int | None = None
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    hashes: dict[str, Hash] = field(default_factory=dict)
    pdq_quality: int | None = None
    error: str | None = None
    path_raw_hex: str | None = None
    views: dict[str, dict[str, Hash]] = field(default_factory=dict)
    note: str | None = None

    def to_dict(self, algorithms: Iterable[str] = ()) -> dict[str, Any]:
        """A flat, JSON-ready dict: the fields, then one hex column per algorithm (never the views).

        ``algorithms`` names the hash columns to include even when this record has no such hash
        (their value is then ``None``), so every record of a report has the same keys.
        """
        out = file_columns(self, algorithms)
        out["pdq_quality"] = self.pdq_quality
        out["error"] = self.error
        out["note"] = self.note
        out["path_raw_hex"] = self.path_raw_hex
        return out


_FILE_FIELDS = (
    "path",
    "frame",
    "frame_count",
    "size",
    "mime",
    "extension_mismatch",
    "width",
    "height",
    "md5",
    "sha1",
    "sha256",
)


def file_columns(record: Any, algorithms: Iterable[str] = ()) -> dict[str, Any]:
    """The leading report columns shared by hash and scan records: the file fields in a fixed order,
    then one hex column per algorithm (``None`` where the record has no such hash)."""
    out: dict[str, Any] = {name: getattr(record, name) for name in _FILE_FIELDS}
    for name in dict.fromkeys([*algorithms, *record.hashes]):
        value = record.hashes.get(name)
        out[name] = None if value is None else str(value)
    return out


def _request(names: AlgorithmNames | None, options: HashOptions) -> FeatureRequest:
    chosen = registry.resolve(DEFAULT_ALGORITHMS if names is None else names)
    return FeatureRequest(tuple(a.name for a in chosen), known_views=options.views)


def records_of(entry: EntryFeatures) -> list[HashRecord]:
    """The hash records of one entry the pipeline read: one per decoded frame, and one more for the
    failure (or for the whole file when no frame was decoded)."""
    if entry.skipped:  # never opened: a hash record has no status, its error says what the entry is
        return [HashRecord(path=entry.name, path_raw_hex=entry.raw_hex, size=entry.size, error=entry.note)]
    facts = entry.file_facts()
    notes = [n for n in (entry.note, *entry.notes) if n]
    note = "; ".join(notes) if notes else None
    records = [
        HashRecord(
            **{**facts, "frame": frame.index, "width": frame.width, "height": frame.height},
            hashes=dict(frame.hashes),
            pdq_quality=frame.quality("pdq"),
            views={name: dict(views) for name, views in frame.known_views.items()},
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


def hash_paths(
    paths: Iterable[str | bytes | os.PathLike[str] | os.PathLike[bytes]],
    algorithms: AlgorithmNames | None = None,
    *,
    options: HashOptions | None = None,
) -> Iterator[HashRecord]:
    """Walk files and directories (recursively, in sorted order) and yield every file's records.

    Symbolic links met inside a directory are not followed, FIFOs, sockets and devices are never
    opened; each of them, and every directory that cannot be listed, still gets a record whose
    ``error`` says what it was.
    """
    options = options or HashOptions()
    request = _request(algorithms, options)
    for entry in files.walk(paths):  # the pipeline answers links, FIFOs and unlistable directories too
        yield from records_of(read_entry(entry, request, options))
