"""Hashing files, streams, Pillow images and arrays into :class:`HashRecord` values.

A file is read from disk once: the same bytes feed the digests (MD5, SHA-1, SHA-256) and the decoder.
Every input gives records, never an exception for what is wrong with the input itself: a file that
cannot be read, decoded or hashed still gets a record whose ``error`` says why (with its digests when
its bytes could be read). Only wrong arguments (an unknown algorithm, a bad option) raise.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from . import files, imaging
from .algorithms import Algorithm, registry
from .digests import Digests
from .errors import MatcherError, UsageError
from .hashes import Hash

__all__ = [
    "HashOptions",
    "HashRecord",
    "hash_file",
    "hash_bytes",
    "hash_stream",
    "hash_image",
    "hash_array",
    "hash_paths",
    "DEFAULT_ALGORITHMS",
]

log = logging.getLogger(__name__)

DEFAULT_ALGORITHMS: tuple[str, ...] = ("pdq",)
_DECODE_DEFAULTS = imaging.DecodeOptions()
AlgorithmNames = str | Sequence[str]


@dataclass(frozen=True, slots=True)
class HashOptions:
    """How files are decoded and hashed.

    - ``max_pixels``: largest width x height decoded per frame; larger images get an error record.
    - ``max_frames``: frames hashed per animated or multi-page file (each record names its frame;
      ``frame_count`` tells how many the file has).
    - ``apply_exif_orientation``: hash the image as displayed rather than as stored. Off by default:
      reference hash sets hash the stored pixels.
    - ``fast``: let JPEGs be decoded at reduced scale (1/2, 1/4, 1/8) when every chosen algorithm
      tolerates it. PDQ stays within 10 bits of the full decode at quality >= 80; hashes are then no
      longer bit-identical to other tools' full decodes. Off by default.
    - ``max_file_bytes``: image files larger than this are digested but not decoded (memory bound).
    - ``views``: also compute every frame's known-side view hashes (:func:`matcher.views.known_view_hashes`:
      border-trimmed content, top/bottom 88 %, crops, small rotations) into :attr:`HashRecord.views`,
      as images added to an index need. Off by default (it costs about a dozen extra hashes a frame).
    """

    max_pixels: int = _DECODE_DEFAULTS.max_pixels
    max_frames: int = _DECODE_DEFAULTS.max_frames
    apply_exif_orientation: bool = False
    fast: bool = False
    max_file_bytes: int = 512 * 1024 * 1024
    views: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.max_file_bytes, int) or self.max_file_bytes <= 0:
            raise UsageError(f"max_file_bytes must be a positive integer, not {self.max_file_bytes!r}")
        if not isinstance(self.views, bool):
            raise UsageError(f"views must be True or False, not {self.views!r}")
        self.decode_options()  # validates the rest

    def decode_options(self) -> imaging.DecodeOptions:
        """The decoder's share of these options."""
        return imaging.DecodeOptions(
            max_pixels=self.max_pixels,
            max_frames=self.max_frames,
            apply_exif_orientation=self.apply_exif_orientation,
        )


@dataclass(frozen=True, slots=True)
class HashRecord:
    """What matcher knows of one file, or of one frame of a multi-frame file.

    ``path`` is the path as text (bytes that are not UTF-8 shown as ``\\xNN``), ``path_raw_hex`` the
    raw bytes in hex when the path is not valid UTF-8 (else ``None``). ``frame`` is ``None`` for a
    still image, else the 0-based frame index; ``frame_count`` the frames in the file. ``hashes`` maps
    algorithm names to :class:`~matcher.hashes.Hash`. ``error`` is ``None`` or a message naming what was
    wrong; fields that could not be learnt are ``None``. ``views`` (only with
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

    def to_dict(self, algorithms: Iterable[str] = ()) -> dict[str, Any]:
        """A flat, JSON-ready dict: the fields, then one hex column per algorithm (never the views).

        ``algorithms`` names the hash columns to include even when this record has no such hash
        (their value is then ``None``), so every record of a report has the same keys.
        """
        out = file_columns(self, algorithms)
        out["pdq_quality"] = self.pdq_quality
        out["error"] = self.error
        out["path_raw_hex"] = self.path_raw_hex
        return out


_FILE_FIELDS = ("path", "frame", "frame_count", "size", "mime", "extension_mismatch", "width", "height",
                "md5", "sha1", "sha256")


def file_columns(record: Any, algorithms: Iterable[str] = ()) -> dict[str, Any]:
    """The leading report columns shared by hash and scan records: the file fields in a fixed order,
    then one hex column per algorithm (``None`` where the record has no such hash)."""
    out: dict[str, Any] = {name: getattr(record, name) for name in _FILE_FIELDS}
    for name in dict.fromkeys([*algorithms, *record.hashes]):
        value = record.hashes.get(name)
        out[name] = None if value is None else str(value)
    return out


def _algorithms(names: AlgorithmNames | None) -> tuple[Algorithm, ...]:
    return registry.resolve(DEFAULT_ALGORITHMS if names is None else names)


def draft_size(algorithms: Sequence[Algorithm], options: HashOptions) -> tuple[int, int] | None:
    """The reduced JPEG decode size every algorithm tolerates under ``options.fast``, or ``None``
    for a full decode."""
    if not options.fast:
        return None
    sizes = [a.draft_size for a in algorithms]
    if any(size is None for size in sizes):
        return None
    return (max(s[0] for s in sizes), max(s[1] for s in sizes))  # type: ignore[index]


def describe_error(exc: BaseException) -> str:
    """The message a record carries for an exception met while reading, decoding or hashing."""
    if isinstance(exc, MatcherError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory while decoding or hashing"
    return f"unexpected {type(exc).__name__}: {exc}"


def _hash_frame(
    image: Image.Image, algorithms: Sequence[Algorithm], full_size: tuple[int, int], views: bool = False
) -> tuple[dict[str, Hash], int | None, dict[str, dict[str, Hash]]]:
    """The frame's hashes, its PDQ quality, and (with ``views``) its known-side view hashes."""
    size = None if image.size == full_size else full_size  # decoded at reduced scale (draft)
    hashes = {a.name: a.hash_image(image, full_size=size) for a in algorithms}
    pdq = hashes.get("pdq")
    view_hashes: dict[str, dict[str, Hash]] = {}
    if views:
        from .views import known_view_hashes  # imported here: views builds on the algorithms, not on hashing

        view_hashes = {a.name: known_view_hashes(a, image, size, main=hashes[a.name]) for a in algorithms}
    return hashes, (pdq.quality if pdq is not None else None), view_hashes


def _frame_records(
    base: HashRecord,
    source: bytes | Image.Image,
    algorithms: Sequence[Algorithm],
    options: HashOptions,
) -> list[HashRecord]:
    """Decode ``source`` and hash every frame; failures become error records on ``base``."""
    decode = options.decode_options()
    try:
        if isinstance(source, Image.Image):
            frame_count = int(getattr(source, "n_frames", 1) or 1)
            base = replace(base, width=source.width, height=source.height, frame_count=frame_count)
        else:
            info, _ = imaging.open_image(source, decode)
            base = replace(base, width=info.width, height=info.height, frame_count=info.frame_count)
        frames = imaging.iter_frames(source, decode, draft_size=draft_size(algorithms, options))
    except Exception as exc:  # noqa: BLE001 - every failure becomes the record's error
        log.debug("cannot decode %s: %s", base.path, exc)
        return [replace(base, error=describe_error(exc))]

    records: list[HashRecord] = []
    index: int | None = None
    try:
        for frame in frames:
            index = frame.index
            hashes, quality, views = _hash_frame(frame.image, algorithms, (frame.width, frame.height), options.views)
            records.append(
                replace(base, frame=frame.index, width=frame.width, height=frame.height, hashes=hashes,
                        pdq_quality=quality, views=views)
            )
    except Exception as exc:  # noqa: BLE001
        failed = None if not records and base.frame_count in (None, 1) else (0 if index is None else index + 1)
        log.debug("cannot hash %s frame %s: %s", base.path, failed, exc)
        records.append(replace(base, frame=failed, error=describe_error(exc)))
    if not records:
        records.append(replace(base, error="no frame could be decoded"))
    return records


def file_facts(
    name: str | None, raw_hex: str | None, size: int, digests: Digests, media: imaging.MediaType | None
) -> dict[str, Any]:
    """The facts of one read file that hash, scan and cluster records share, as keyword arguments:
    path (and its raw bytes when not UTF-8), size, sniffed type and extension mismatch, digests."""
    return {
        "path": name,
        "path_raw_hex": raw_hex,
        "size": size,
        "mime": media.mime if media else None,
        "extension_mismatch": imaging.extension_mismatch(name, media) if name else None,
        "md5": digests.md5,
        "sha1": digests.sha1,
        "sha256": digests.sha256,
    }


def _base_record(name: str | None, raw_hex: str | None, size: int, digests: Digests, head: bytes) -> HashRecord:
    return HashRecord(**file_facts(name, raw_hex, size, digests, imaging.sniff(head)))


def keep_if_image(head: bytes) -> bool:
    """Whether a file starting with ``head`` is an image, so its bytes are kept for the decoder."""
    media = imaging.sniff(head)
    return media is not None and media.is_image


#: Said of a file whose size or modification time changed while it was read.
CHANGED_WHILE_READ = "file changed while it was read (size or modification time differ); values may not match it now"


def not_decoded(result: files.ReadResult, media: imaging.MediaType | None, max_file_bytes: int) -> tuple[str | None, str | None]:
    """Why a read file is not decoded, as ``(error, note)``; ``(None, None)`` when it is to be decoded.

    An empty file, or an image over ``max_file_bytes`` (digested, not kept), is an error; a file that
    is not an image gets a note (digests only).
    """
    if result.size == 0:
        return "empty file (0 bytes)", None
    if media is None or not media.is_image:
        return None, f"not an image ({media.mime if media else 'unrecognised data'}); digests only"
    if result.data is None:
        return f"image file of {result.size} bytes is over the limit of {max_file_bytes} bytes; not decoded", None
    return None, None


def with_changed(error: str | None, changed: bool) -> str | None:
    """``error`` with :data:`CHANGED_WHILE_READ` added when the file ``changed`` while it was read."""
    if not changed:
        return error
    return CHANGED_WHILE_READ if error is None else f"{error}; {CHANGED_WHILE_READ}"


def _records_from_read(
    name: str | None,
    raw_hex: str | None,
    result: files.ReadResult,
    algorithms: Sequence[Algorithm],
    options: HashOptions,
) -> list[HashRecord]:
    base = _base_record(name, raw_hex, result.size, result.digests, result.head)
    if result.size == 0:
        return [replace(base, error="empty file (0 bytes)")]
    media = imaging.sniff(result.head)
    if media is None or not media.is_image:
        what = media.mime if media else "unrecognised data"
        return [replace(base, error=f"not an image ({what})")]
    if result.data is None:
        return [replace(base, error=not_decoded(result, media, options.max_file_bytes)[0])]
    records = _frame_records(base, result.data, algorithms, options)
    return [replace(r, error=with_changed(r.error, result.changed)) for r in records]


def _read_and_hash(
    read: Callable[..., files.ReadResult],
    source: Any,
    name: str | None,
    raw_hex: str | None,
    algorithms: AlgorithmNames | None,
    options: HashOptions | None,
) -> list[HashRecord]:
    """Read ``source`` once with ``read`` (keeping the bytes of images) and hash what was read."""
    algos = _algorithms(algorithms)
    options = options or HashOptions()
    try:
        result = read(source, keep=keep_if_image, max_keep_bytes=options.max_file_bytes)
    except MatcherError as exc:
        return [HashRecord(path=name, path_raw_hex=raw_hex, error=str(exc))]
    return _records_from_read(name, raw_hex, result, algos, options)


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
    raw = os.fsencode(path)
    name, raw_hex = files.display_path(raw)
    return _read_and_hash(files.read_file, raw, name, raw_hex, algorithms, options)


def hash_stream(
    stream: BinaryIO,
    algorithms: AlgorithmNames | None = None,
    *,
    name: str | None = None,
    options: HashOptions | None = None,
) -> list[HashRecord]:
    """Hash the bytes of an open binary stream (read to its end once); ``name`` goes in ``path``."""
    return _read_and_hash(files.read_stream, stream, name, None, algorithms, options)


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
    algos = _algorithms(algorithms)
    options = options or HashOptions()
    fmt = (image.format or "").upper()
    mime = Image.MIME.get(fmt) if fmt else None
    return _frame_records(HashRecord(path=None, mime=mime), image, algos, options)


def hash_array(array: np.ndarray, algorithms: AlgorithmNames | None = None) -> HashRecord:
    """Hash an HxWx3 (RGB) or HxW (grey) uint8 numpy array.

    PDQ is computed on the array directly, exactly as the reference does on the same pixels.
    """
    algos = _algorithms(algorithms)
    pixels = np.asarray(array)
    if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise UsageError(f"hash_array needs an HxWx3 or HxW uint8 array, got {pixels.dtype} {pixels.shape}")
    if pixels.ndim == 3:
        pixels = np.ascontiguousarray(pixels[..., :3])
    image = Image.fromarray(pixels).convert("RGB")
    hashes: dict[str, Hash] = {}
    for algorithm in algos:
        if algorithm.name == "pdq":
            from .algorithms.pdq import hash_array as pdq_array

            hashes["pdq"] = pdq_array(pixels)
        else:
            hashes[algorithm.name] = algorithm.hash_image(image)
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
    algos = _algorithms(algorithms)
    options = options or HashOptions()
    names = [a.name for a in algos]
    for entry in files.walk(paths):
        if entry.kind == "file":
            yield from hash_file(entry.path, names, options=options)
        else:
            name, raw_hex = files.display_path(entry.path)
            yield HashRecord(path=name, path_raw_hex=raw_hex, size=entry.size, error=entry.error)
