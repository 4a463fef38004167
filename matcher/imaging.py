"""Identify and decode images safely: magic-byte sniffing, header checks, frames as RGB.

Everything here is written for hostile input. Pillow's own exceptions never escape: they become
:class:`~matcher.errors.DecodeError` or one of its subclasses (:class:`UnsupportedFormatError`,
:class:`TruncatedImageError`, :class:`ImageTooLargeError`), and a partially decoded image is never
passed off as a whole one (``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` must stay ``False``).

Nothing reaches stderr, and importing this module changes no process-wide state (no warnings
filter, no logging handler). While at least one decode is under way in the process (in any thread),
matcher's decoding guard is in force; when the last one ends, everything it changed is put back:

* Warnings raised from Pillow's code (or this module's) are logged to this module's logger at INFO
  level instead of being shown, and ``PIL.Image.DecompressionBombWarning`` is ignored: matcher
  applies its own pixel limit (:attr:`DecodeOptions.max_pixels`), and Pillow's
  ``DecompressionBombError`` (far over its limit) is still turned into :class:`ImageTooLargeError`.
  The guard adds two filters at the front of ``warnings.filters`` (scoped to that category, and to
  Pillow's modules and this one) and wraps ``warnings.showwarning``; warnings from other code pass
  through untouched, even while a decode runs in another thread. The guard is entered and left under
  a lock and counted, so concurrent decodes in threads are safe (``warnings.catch_warnings`` per call
  would not be before Python 3.14: overlapping uses restore each other's state in the wrong order).
* Pillow logs some corrupt headers at ERROR level on its own loggers (e.g. ``PIL.TiffImagePlugin``)
  without installing a handler, so Python's last-resort handler would print them when the
  application configured no logging. While the guard is in force, a ``NullHandler`` sits on the
  ``PIL`` logger: the records still reach the application's handlers if it configured logging, and
  are dropped otherwise.

Pillow checks its own limit (``2 * PIL.Image.MAX_IMAGE_PIXELS`` pixels, 178,956,970 by default) while
opening, before matcher's; a ``max_pixels`` above it only takes effect if the application also
raises ``PIL.Image.MAX_IMAGE_PIXELS``.

Formats: whatever Pillow can open except EPS (Pillow would hand the file to Ghostscript). Files the
sniffer recognises as a non-image type (archives, executables, media, databases, ...) are refused
without asking Pillow, because formats without magic bytes (TGA) would otherwise "open" them.
HEIC/HEIF decode when the optional ``pillow-heif`` package is installed (``matcher[heic]``).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import logging
import os
import re
import struct
import sys
import threading
import warnings
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, BinaryIO, TextIO, cast

import numpy as np
from PIL import Image, ImageFile, JpegImagePlugin, UnidentifiedImageError, features

from .errors import (
    DecodeError,
    ImageTooLargeError,
    MatcherError,
    TruncatedImageError,
    UnsupportedFormatError,
    UsageError,
)

__all__ = [
    "DecodeOptions",
    "DraftCheck",
    "Frame",
    "ImageInfo",
    "MediaType",
    "draft_scale",
    "extension_mismatch",
    "iter_frames",
    "open_image",
    "sniff",
    "to_rgb",
]

logger = logging.getLogger(__name__)

_HEAD_SIZE = 512  # bytes read for sniffing; sniff() needs at least 64
_EXCLUDED_FORMATS = frozenset({"EPS"})  # Pillow would run Ghostscript on the file


# --------------------------------------------------------------------------------------------------
# Media types and sniffing


@dataclass(frozen=True, slots=True)
class MediaType:
    """A file type as named in a report.

    ``mime`` is the media type (``"image/jpeg"``); ``extensions`` the usual file name extensions,
    lowercase, without the dot, canonical one first; ``is_image`` is true for the image types matcher
    decodes; ``is_video`` for the video containers it samples frames from (:mod:`matcher.video`).
    """

    mime: str
    extensions: tuple[str, ...]
    is_image: bool
    is_video: bool = False


def _image(mime: str, *extensions: str) -> MediaType:
    return MediaType(mime, extensions, True)


def _other(mime: str, *extensions: str) -> MediaType:
    return MediaType(mime, extensions, False)


def _video(mime: str, *extensions: str) -> MediaType:
    return MediaType(mime, extensions, False, True)


_JPEG = _image("image/jpeg", "jpg", "jpeg", "jpe", "jfif")
_PNG = _image("image/png", "png", "apng")
_GIF = _image("image/gif", "gif")
_BMP = _image("image/bmp", "bmp", "dib")
_TIFF = _image("image/tiff", "tif", "tiff")
_WEBP = _image("image/webp", "webp")
_HEIC = _image("image/heic", "heic", "heif", "hif")
_HEIF = _image("image/heif", "heif", "heic", "hif")
_AVIF = _image("image/avif", "avif")
_ICO = _image("image/vnd.microsoft.icon", "ico")
_CUR = _image("image/x-win-bitmap", "cur")
_JP2_OK = bool(features.check("jpg_2000"))
_JP2 = MediaType("image/jp2", ("jp2", "jpf", "jpx"), _JP2_OK)
_J2C = MediaType("image/j2c", ("j2c", "j2k", "jpc"), _JP2_OK)

_PDF = _other("application/pdf", "pdf")
_ZIP = _other("application/zip", "zip", "docx", "xlsx", "pptx", "odt", "ods", "odp", "epub", "jar", "apk", "cbz")
_GZIP = _other("application/gzip", "gz", "tgz")
_7Z = _other("application/x-7z-compressed", "7z")
_RAR = _other("application/vnd.rar", "rar", "cbr")
_MP4 = _video("video/mp4", "mp4", "m4v", "m4a", "m4b", "m4p")
_MOV = _video("video/quicktime", "mov", "qt")
_3GP = _video("video/3gpp", "3gp", "3g2")
_MKV = _video("video/x-matroska", "mkv", "mka", "mks", "mk3d")
_WEBM = _video("video/webm", "webm")
_AVI = _video("video/x-msvideo", "avi")
_WAV = _other("audio/wav", "wav")
_MP3 = _other("audio/mpeg", "mp3")
_OGG = _other("application/ogg", "ogg", "oga", "ogv", "opus", "spx")
_ELF = _other("application/x-executable", "elf", "so", "o", "ko", "bin")
_PE = _other("application/vnd.microsoft.portable-executable", "exe", "dll", "sys", "scr", "cpl", "ocx", "drv", "efi")
_SQLITE = _other("application/vnd.sqlite3", "sqlite", "sqlite3", "db", "db3")
_TEXT = _other(
    "text/plain",
    "txt",
    "text",
    "log",
    "csv",
    "tsv",
    "md",
    "json",
    "xml",
    "html",
    "htm",
    "svg",
    "ini",
    "cfg",
    "conf",
)

_PREFIXES: tuple[tuple[bytes, MediaType], ...] = (
    (b"\xff\xd8\xff", _JPEG),
    (b"\x89PNG\r\n\x1a\n", _PNG),
    (b"GIF87a", _GIF),
    (b"GIF89a", _GIF),
    (b"II*\x00", _TIFF),
    (b"MM\x00*", _TIFF),
    (b"II+\x00", _TIFF),  # BigTIFF
    (b"MM\x00+", _TIFF),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", _JP2),
    (b"\xff\x4f\xff\x51", _J2C),
    (b"%PDF-", _PDF),
    (b"PK\x03\x04", _ZIP),
    (b"PK\x05\x06", _ZIP),
    (b"PK\x07\x08", _ZIP),
    (b"\x1f\x8b", _GZIP),
    (b"7z\xbc\xaf\x27\x1c", _7Z),
    (b"Rar!\x1a\x07", _RAR),
    (b"\x7fELF", _ELF),
    (b"SQLite format 3\x00", _SQLITE),
    (b"ID3", _MP3),
    (b"OggS", _OGG),
)
_RIFF = {b"WEBP": _WEBP, b"AVI ": _AVI, b"WAVE": _WAV}
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_MP3_SYNC = frozenset({0xFB, 0xFA, 0xF3, 0xF2, 0xE3, 0xE2})
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"miaf"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_TEXT_CONTROLS = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")  # C0 controls other than \t\n\v\f\r and ESC


def _sniff_ftyp(head: bytes) -> MediaType:
    """Type of an ISO base media file (head[4:8] == b"ftyp") from its major and compatible brands."""
    box_size = int.from_bytes(head[:4], "big")
    end = min(len(head), box_size) if box_size >= 16 else len(head)
    major = head[8:12]
    brands = {major} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if major in _AVIF_BRANDS or (major in _HEIF_BRANDS and brands & _AVIF_BRANDS):
        return _AVIF
    if major in _HEIC_BRANDS or (major in _HEIF_BRANDS and brands & _HEIC_BRANDS):
        return _HEIC
    if major in _HEIF_BRANDS:
        return _HEIF
    if major == b"qt  ":
        return _MOV
    if major.startswith(b"3g"):
        return _3GP
    return _MP4


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)  # head may end mid-character
    except UnicodeDecodeError:
        return False
    return _TEXT_CONTROLS.search(text) is None


def sniff(head: bytes) -> MediaType | None:
    """Identify a file's type from its first bytes (at least 64 of them; more does no harm).

    Images: JPEG, PNG (APNG included, as ``image/png``), GIF, BMP, TIFF (both byte orders, BigTIFF),
    WebP, HEIC/HEIF and AVIF (by ISO-BMFF ``ftyp`` brands), ICO/CUR, JPEG 2000 (``is_image`` only when
    Pillow was built with OpenJPEG). Non-images named for reports: PDF, ZIP, GZIP, 7z, RAR, MP4/MOV/3GP,
    Matroska/WebM, AVI, WAV, ELF, PE, SQLite, MP3, OGG, and ``text/plain`` (no NUL, valid UTF-8, no
    control characters other than white space and ESC). Returns ``None`` when the type is unknown.
    """
    if not isinstance(head, (bytes, bytearray, memoryview)):
        raise UsageError(f"sniff() needs bytes, not {type(head).__name__}")
    head = bytes(head)
    for prefix, media in _PREFIXES:
        if head.startswith(prefix):
            return media
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    if head.startswith(b"RIFF") and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head.startswith(b"BM") and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return _BMP
    icon = head[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00") and len(head) >= 10 and head[4:6] != b"\x00\x00"
    if icon and head[9] == 0:  # the first directory entry's reserved byte
        return _ICO if head[2] == 1 else _CUR
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML
        return _WEBM if b"webm" in head[:64] else _MKV
    if head.startswith(b"MZ") and b"\x00" in head[2:64]:
        return _PE
    if len(head) >= 2 and head[0] == 0xFF and head[1] in _MP3_SYNC:
        return _MP3
    if _looks_like_text(head):
        return _TEXT
    return None


def extension_mismatch(name: str, media: MediaType | None) -> bool | None:
    """Whether a file name's extension disagrees with its sniffed type.

    ``name`` is a file name or path (``/`` or ``\\`` separated). Returns ``None`` when there is nothing
    to compare (``media`` is ``None`` or the name has no extension), ``True`` when the lowercased
    extension is not one of ``media.extensions``, else ``False``.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str):
        raise UsageError(f"extension_mismatch() needs a str name, not {type(name).__name__}")
    if media is None:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, extension = base.rpartition(".")
    if not dot or not stem or not extension:
        return None
    return extension.lower() not in media.extensions


def _media_from_pillow(format_name: str | None) -> MediaType:
    """A MediaType from Pillow's registry for an image Pillow opened but the sniffer did not know."""
    mime = Image.MIME.get(format_name or "", f"image/x-{(format_name or 'unknown').lower()}")
    extensions = tuple(ext.lstrip(".") for ext, fmt in Image.EXTENSION.items() if fmt == format_name)
    return MediaType(mime, extensions, True)


# --------------------------------------------------------------------------------------------------
# Options and values


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Limits and choices for decoding.

    ``max_pixels``: width*height limit per frame, checked on the header before any pixel is decoded.
    ``max_frames``: frames decoded per multi-frame file (animated GIF/WebP/APNG, multi-page TIFF).
    ``apply_exif_orientation``: rotate/flip by the EXIF orientation tag; off by default, so the stored
    pixels are hashed (as reference hash sets are made).
    """

    max_pixels: int = 178_956_970
    max_frames: int = 100
    apply_exif_orientation: bool = False

    def __post_init__(self) -> None:
        for field_name in ("max_pixels", "max_frames"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"DecodeOptions.{field_name} must be a positive integer, not {value!r}")
        if not isinstance(self.apply_exif_orientation, bool):
            raise UsageError(
                f"DecodeOptions.apply_exif_orientation must be a bool, not {self.apply_exif_orientation!r}"
            )


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame.

    ``index`` is ``None`` for a still image, else the 0-based frame number. ``image`` is a fully loaded
    RGB image. ``width``/``height`` are those of the full-scale frame (after EXIF orientation, if
    applied), even when ``image`` was decoded at reduced scale (JPEG draft mode).
    """

    index: int | None
    image: Image.Image
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the header of an image file says.

    ``media`` comes from sniffing the bytes (or from Pillow's registry for image types the sniffer
    does not know, such as PPM or TGA); ``format`` is Pillow's format name; ``width``/``height`` those
    of the first frame as stored; ``frame_count`` the number of frames in the file (1 for stills);
    ``mode`` Pillow's mode of the stored pixels.
    """

    media: MediaType
    format: str
    width: int
    height: int
    frame_count: int
    mode: str


# --------------------------------------------------------------------------------------------------
# Pillow guards


class _DecodingGuard:
    """The process-wide state decoding needs, in force while any decode runs (see the module docstring).

    Entered and left under one lock with a count, so that overlapping decodes in several threads put
    in and take out the state exactly once, in the right order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._filters: list[Any] = []
        self._shown: Callable[..., None] | None = None
        self._handler = logging.NullHandler()
        self._pil_dir = os.path.dirname(os.path.abspath(Image.__file__)) + os.sep
        self._own_file = os.path.abspath(__file__)

    def enter(self) -> None:
        with self._lock:
            if self._depth == 0:
                before = list(warnings.filters)
                warnings.filterwarnings("always", module=r"(PIL(\.|$)|matcher\.imaging$)")
                warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
                self._filters = [f for f in warnings.filters if f not in before]
                self._shown = warnings.showwarning
                warnings.showwarning = self._show
                logging.getLogger("PIL").addHandler(self._handler)
            self._depth += 1

    def leave(self) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                logging.getLogger("PIL").removeHandler(self._handler)
                if warnings.showwarning == self._show:  # unless someone replaced it since
                    warnings.showwarning = self._shown  # type: ignore[assignment]
                filters = cast("list[Any]", warnings.filters)
                for entry in self._filters:
                    with contextlib.suppress(ValueError):  # already removed by someone else
                        filters.remove(entry)
                self._filters, self._shown = [], None

    def _show(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        """Log Pillow's warnings (and this module's); show every other warning as before."""
        path = os.path.abspath(filename) if filename else ""
        if path.startswith(self._pil_dir) or path == self._own_file:
            logger.info("Pillow warning: %s", message)
            return
        shown = self._shown
        if shown is None or shown == self._show:  # called after the guard ended, through a saved reference
            (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))
            return
        shown(message, category, filename, lineno, file, line)


_GUARD = _DecodingGuard()


@contextmanager
def _pillow_warnings() -> Iterator[None]:
    """Keep Pillow's warnings and error logs off stderr inside the block (see the module docstring)."""
    _GUARD.enter()
    try:
        yield
    finally:
        _GUARD.leave()


_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


_CODEC_MISSING = re.compile(r"\b(de|en)coder \S+ not available")


def _as_decode_error(exc: Exception, what: str, media: MediaType | None = None) -> DecodeError:
    """Translate an exception raised by Pillow (or numpy) while reading ``what`` into a matcher error.

    ``media``: the sniffed type, if known, to name in a "no decoder available" message: Pillow loads
    plugins and codecs lazily, and an ``ImportError`` (or Pillow's "decoder ... not available") means
    the machine cannot decode the type, not that the file is corrupt.
    """
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ImportError) or (isinstance(exc, OSError) and _CODEC_MISSING.search(text)):
        kind = media.mime if media is not None else "this image type"
        where = "" if what == "image" else f" ({what})"
        return UnsupportedFormatError(f"no decoder available for {kind}{where}: {type(exc).__name__}: {text}")
    if isinstance(exc, Image.DecompressionBombError):
        found = _BOMB_PIXELS.search(str(exc))
        declared = f"declares {found.group(1)} pixels" if found else "is too large"
        return ImageTooLargeError(
            f"{what} {declared}, over Pillow's decompression-bomb limit of {2 * (Image.MAX_IMAGE_PIXELS or 0)}"
        )
    if isinstance(exc, (EOFError, struct.error)) or re.search(
        r"truncated|not enough (image )?data", text, re.IGNORECASE
    ):
        return TruncatedImageError(f"{what} is truncated: {text}")
    if isinstance(exc, MemoryError):
        return ImageTooLargeError(f"{what} needs more memory than is available")
    return DecodeError(f"cannot decode {what}: {type(exc).__name__}: {text}")


@cache
def _heif_opener_registered() -> bool:
    """Register pillow-heif's opener once, if it is installed."""
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except Exception as exc:  # noqa: BLE001 - not installed, or broken: HEIC then stays unsupported
        logger.debug("HEIC/HEIF decoding unavailable: %s", exc)
        return False
    return True


# Pillow's format names for the image types the sniffer knows: a plugin that failed to import (as
# can happen after a process dropped privileges) leaves its name out of Image.OPEN.
_PILLOW_NAMES: dict[str, tuple[str, ...]] = {
    _JPEG.mime: ("JPEG",),
    _PNG.mime: ("PNG",),
    _GIF.mime: ("GIF",),
    _BMP.mime: ("BMP", "DIB"),
    _TIFF.mime: ("TIFF",),
    _WEBP.mime: ("WEBP",),
    _ICO.mime: ("ICO",),
    _CUR.mime: ("CUR",),
    _JP2.mime: ("JPEG2000",),
    _J2C.mime: ("JPEG2000",),
}


def _has_decoder(media: MediaType) -> bool:
    """Whether Pillow (with the optional plugins present) can decode this image type at all."""
    if media in (_HEIC, _HEIF):
        return _heif_opener_registered()
    if media is _AVIF:
        return bool(features.check("avif"))
    names = _PILLOW_NAMES.get(media.mime)
    if names is not None and media.is_image:
        Image.init()
        return any(name in Image.OPEN for name in names)
    return media.is_image


def _undecodable(media: MediaType) -> str:
    if media.mime.startswith("image/"):
        return f"no decoder available for {media.mime}"
    return f"not an image ({media.mime})"


def _pillow_formats() -> list[str]:
    Image.init()
    return [name for name in Image.OPEN if name not in _EXCLUDED_FORMATS]


def _as_stream(data: bytes | BinaryIO) -> BinaryIO:
    """A seekable stream at the start of the data (like Pillow, a seekable stream is read from offset 0)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(data))
    if not callable(getattr(data, "read", None)):
        raise UsageError(f"image data must be bytes or a binary stream, not {type(data).__name__}")
    try:
        seekable = data.seekable()
    except (OSError, ValueError, AttributeError):
        seekable = False
    if seekable:
        data.seek(0)
        return data
    return io.BytesIO(data.read())


def _check_pixels(width: int, height: int, options: DecodeOptions, what: str) -> None:
    pixels = width * height
    if pixels > options.max_pixels:
        raise ImageTooLargeError(
            f"{what} declares {width}x{height} = {pixels} pixels, over the limit of {options.max_pixels}"
        )


def _count_frames(image: Image.Image) -> int:
    """Frames in the file; if the frame structure breaks part-way, the reachable ones plus the broken one."""
    try:
        return max(1, int(getattr(image, "n_frames", 1)))
    except Exception as exc:  # noqa: BLE001 - anything Pillow raises on hostile input
        logger.info("frame count failed (%s); counting frames one by one", exc)
    count = 1
    while True:
        try:
            image.seek(count)
        except EOFError:
            break
        except Exception:  # noqa: BLE001 - anything Pillow raises on hostile input
            count += 1  # include the broken frame so that iter_frames reports it
            break
        count += 1
    try:
        image.seek(0)
    except Exception as exc:
        raise _as_decode_error(exc, "image") from exc
    return count


# --------------------------------------------------------------------------------------------------
# Public decoding API


def open_image(data: bytes | BinaryIO, options: DecodeOptions = DecodeOptions()) -> tuple[ImageInfo, Image.Image]:
    """Open an image and read its header only; no pixel is decoded.

    ``data`` is the file's bytes or a binary stream; a seekable stream is read from its start (as
    Pillow does), an unseekable one is read to its end into memory first.
    Returns the :class:`ImageInfo` and the (lazy) Pillow image, ready for :func:`iter_frames`.
    Raises :class:`UnsupportedFormatError` for data that is not an image Pillow can read (the message
    names what it looks like, e.g. "not an image (text/plain)"), :class:`ImageTooLargeError` when
    width*height exceeds ``options.max_pixels`` (or Pillow's own bomb limit), and
    :class:`TruncatedImageError`/:class:`DecodeError` for a corrupt or truncated header.
    """
    if not isinstance(options, DecodeOptions):
        raise UsageError(f"options must be DecodeOptions, not {type(options).__name__}")
    stream = _as_stream(data)
    try:
        head = stream.read(_HEAD_SIZE)
        stream.seek(0)
    except OSError as exc:
        raise DecodeError(f"cannot read image data: {exc}") from exc
    if not head:
        raise UnsupportedFormatError("empty file (0 bytes): not an image")
    media = sniff(head)
    if media is not None and not media.is_image and media is not _TEXT:  # text may be PPM/XBM/XPM
        raise UnsupportedFormatError(_undecodable(media))
    if media in (_HEIC, _HEIF):
        _heif_opener_registered()
    try:
        with _pillow_warnings():
            image = Image.open(stream, formats=_pillow_formats())
            _check_pixels(image.width, image.height, options, "image")
            frame_count = _count_frames(image)
    except UnidentifiedImageError as exc:
        if media is None:
            raise UnsupportedFormatError("unrecognised image data") from exc
        if media is _TEXT or not _has_decoder(media):
            raise UnsupportedFormatError(_undecodable(media)) from exc
        raise DecodeError(f"looks like {media.mime}, but its header is corrupt or truncated") from exc
    except MatcherError:
        raise
    except Exception as exc:
        raise _as_decode_error(exc, "image", media) from exc
    info = ImageInfo(
        media=media if media is not None and media.is_image else _media_from_pillow(image.format),
        format=image.format or "",
        width=image.width,
        height=image.height,
        frame_count=frame_count,
        mode=image.mode,
    )
    return info, image


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1..8); 1 when absent or unreadable (a corrupt EXIF block is not fatal)."""
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception as exc:  # noqa: BLE001 - anything Pillow raises on hostile input
        logger.info("EXIF unreadable, orientation ignored: %s", exc)
        return 1
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


DraftCheck = Callable[[Image.Image, Image.Image, tuple[int, int]], bool]
"""Whether a reduced-scale JPEG decode may stand for the full decode: called as
``check(fine, coarse, full_size)`` with the RGB frame decoded at 1/k scale, the same frame at 1/2k
(coarser) and the full-scale (width, height); true when what is computed from ``fine`` is close
enough to what ``coarse`` gives (see :func:`iter_frames`)."""

_SCALES = (8, 4, 2)


def draft_scale(width: int, height: int, draft_size: tuple[int, int] | None) -> int:
    """The JPEG draft scale (1, 2, 4 or 8) that still leaves at least ``draft_size`` (width, height):
    the largest of 8, 4, 2 dividing both ``width // draft_size[0]`` and ``height // draft_size[1]``
    from below, else 1 (full scale). ``None``: 1."""
    if draft_size is None:
        return 1
    room = min(width // draft_size[0], height // draft_size[1])
    return next((scale for scale in _SCALES if room >= scale), 1)


def _load_at(image: Image.Image, scale: int) -> None:
    """Load the current frame of a JPEG/MPO at 1/``scale`` (``scale`` 1: full decode)."""
    if scale > 1:
        image.draft("RGB", (image.width // scale, image.height // scale))  # Pillow then picks exactly 1/scale
    image.load()
    setattr(image, "decoderconfig", ())  # noqa: B010 - Pillow keeps the draft scale across MPO seeks otherwise


def _decode_frame(
    image: Image.Image,
    index: int | None,
    options: DecodeOptions,
    draft_size: tuple[int, int] | None,
    draft_check: DraftCheck | None = None,
    reopen: Callable[[], Image.Image] | None = None,
) -> Frame:
    what = "image" if index is None else f"frame {index}"
    with _pillow_warnings():
        if index is not None:
            image.seek(index)
        width, height = image.size
        _check_pixels(width, height, options, what)
        orientation = _orientation(image) if options.apply_exif_orientation else 1
        if orientation >= 5:  # transposed: the stored frame's axes are swapped relative to the result
            width, height = height, width

        def upright(frame: Image.Image) -> Image.Image:
            rgb = to_rgb(frame)
            return rgb if orientation == 1 else rgb.transpose(_TRANSPOSE[orientation])

        scale = 1
        if draft_size is not None and isinstance(image, JpegImagePlugin.JpegImageFile):  # JPEG and MPO
            scale = draft_scale(*image.size, draft_size[::-1] if orientation >= 5 else draft_size)
            if draft_check is not None and reopen is None:
                scale = 1  # a draft that fails its check could not be decoded again: decode in full
        if scale == 1:
            image.load()
            return Frame(index=index, image=upright(image), width=width, height=height)
        _load_at(image, scale)
        rgb = upright(image)
        if draft_check is not None and reopen is not None:
            coarse = rgb.reduce(2)  # stands for the decode at twice the scale, without decoding again
            while scale > 1 and not draft_check(rgb, coarse, (width, height)):
                scale //= 2  # not close enough: decode again at twice the resolution (at 1, in full)
                again = reopen()
                try:
                    if index is not None:
                        again.seek(index)
                    _load_at(again, scale)
                    coarse, rgb = rgb, upright(again)
                finally:
                    again.close()
    return Frame(index=index, image=rgb, width=width, height=height)


def iter_frames(
    data: bytes | BinaryIO | Image.Image,
    options: DecodeOptions = DecodeOptions(),
    *,
    draft_size: tuple[int, int] | None = None,
    draft_check: DraftCheck | None = None,
) -> Generator[Frame, None, None]:
    """Decode an image and yield its frames as RGB, at most ``options.max_frames`` of them.

    ``data`` is the file's bytes, a binary stream, or a Pillow image (e.g. from :func:`open_image`; it
    is seeked and loaded in place). A still image yields one frame with index ``None``; a multi-frame
    file yields frames 0, 1, ... . EXIF orientation is applied only when
    ``options.apply_exif_orientation`` is set (same transforms as ``PIL.ImageOps.exif_transpose``).

    With ``draft_size`` a JPEG (or MPO) frame is decoded at 1/2, 1/4 or 1/8 scale where that still
    leaves at least ``draft_size`` in both dimensions of the result (after EXIF orientation, if
    applied; see :func:`draft_scale`; other formats are unaffected); :attr:`Frame.width` /
    :attr:`Frame.height` stay full-scale. How close a hash of the reduced frame comes to that of the
    full decode depends on the picture, not only on its size (fine texture and noise drift furthest),
    so give ``draft_check`` to bound it per frame: the frame decoded at 1/k is checked against itself
    reduced by 2 (``check(fine, coarse, full_size)``); while the check fails, the frame is decoded
    again at twice the resolution (and checked against the previous decode) until it passes or the
    frame is decoded in full. A Pillow image given as ``data`` cannot be decoded again, so with
    ``draft_check`` it is decoded in full.

    A truncated or corrupt frame raises :class:`TruncatedImageError`/:class:`DecodeError` naming the
    frame, after the frames before it have been yielded; partial pixels are never yielded.
    """
    if not isinstance(options, DecodeOptions):
        raise UsageError(f"options must be DecodeOptions, not {type(options).__name__}")
    if draft_size is not None and not (
        isinstance(draft_size, tuple)
        and len(draft_size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in draft_size)
    ):
        raise UsageError(f"draft_size must be a (width, height) tuple of positive ints, not {draft_size!r}")
    if draft_check is not None and not callable(draft_check):
        raise UsageError(f"draft_check must be callable, not {draft_check!r}")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise UsageError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; matcher refuses to hash partial images")
    reopen: Callable[[], Image.Image] | None = None
    media: MediaType | None = None
    if isinstance(data, Image.Image):
        image, owned = data, False
        try:
            with _pillow_warnings():
                frame_count = _count_frames(image)
        except MatcherError:
            raise
        except Exception as exc:
            raise _as_decode_error(exc, "image") from exc
        _check_pixels(image.width, image.height, options, "image")
    else:
        info, image = open_image(data, options)
        frame_count, owned, media = info.frame_count, True, info.media
        if draft_check is not None and draft_size is not None:
            reopen = _reopener(data)
    try:
        for k in range(min(frame_count, options.max_frames)):
            index = None if frame_count == 1 else k
            try:
                frame = _decode_frame(image, index, options, draft_size, draft_check, reopen)
            except MatcherError:
                raise
            except Exception as exc:
                raise _as_decode_error(exc, "image" if index is None else f"frame {index}", media) from exc
            yield frame
    finally:
        if owned:
            image.close()


def _reopener(data: bytes | BinaryIO) -> Callable[[], Image.Image]:
    """A function opening ``data`` afresh (to decode a frame again at another scale)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        content = bytes(data)
    else:
        content = b""  # read only if needed: most frames pass their check

    def reopen() -> Image.Image:
        nonlocal content
        if not content:
            stream = _as_stream(data)
            content = stream.read()
        return Image.open(io.BytesIO(content), formats=_pillow_formats())

    return reopen


_ALPHA_DROP = {"La": "LA", "RGBa": "RGBA", "PA": "RGBA"}
_WIDE_INT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow image to a new, loaded image of mode ``"RGB"``.

    The rule for each mode:

    * ``RGB``: copied as is.
    * ``1``, ``L``, ``P`` (no transparency), ``RGBX``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: Pillow's
      ``convert("RGB")``.
    * With alpha, the alpha is dropped and the colour kept (what ``convert("RGB")`` gives, and what
      peers' hash lists were made with): ``LA``, ``RGBA`` directly; ``P`` with a transparency entry via
      ``RGBA`` (a direct convert would warn about byte transparency); ``PA`` via ``RGBA``; the
      premultiplied ``La``/``RGBa`` are first un-premultiplied to ``LA``/``RGBA`` (Pillow cannot
      convert ``La`` to RGB at all, and older Pillow versions differ for ``RGBa``).
    * ``I;16``, ``I;16L``, ``I;16B``, ``I;16N``, ``I``: values clipped to 0..65535 and scaled to 0..255
      by value/257, rounded, as grey (Pillow's own convert clips at 255, whitening 16-bit images).
    * ``F``: NaN becomes 0; if the largest value is above 1.0 the values are clipped to 0..255, else
      taken as 0..1 (negatives clipped) and multiplied by 255; rounded, as grey.

    Raises :class:`UnsupportedFormatError` for a mode Pillow cannot convert.
    """
    mode = image.mode
    try:
        if mode == "RGB":
            return image.copy()
        if 0 in image.size:
            return Image.new("RGB", image.size)
        if mode == "F":
            values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, neginf=0.0)
            scaled = np.clip(values, 0.0, 255.0) if values.max() > 1.0 else np.clip(values, 0.0, 1.0) * 255.0
            return Image.fromarray(np.rint(scaled).astype(np.uint8)).convert("RGB")
        if mode in _WIDE_INT_MODES:
            values = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
            return Image.fromarray(((values + 128) // 257).astype(np.uint8)).convert("RGB")
        if mode in _ALPHA_DROP:
            return image.convert(_ALPHA_DROP[mode]).convert("RGB")
        if mode == "P" and "transparency" in image.info:
            return image.convert("RGBA").convert("RGB")
        return image.convert("RGB")
    except MatcherError:
        raise
    except Exception as exc:  # a lazily opened image is decoded here, so decode errors can occur too
        error = _as_decode_error(exc, "image")
        if type(error) is DecodeError and isinstance(exc, ValueError):  # "conversion from X to Y not supported"
            error = UnsupportedFormatError(f"cannot convert Pillow mode {mode!r} to RGB: {exc}")
        raise error from exc
