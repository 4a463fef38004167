"""Thumbnails of the review page, read from the evidence read-only, only when asked.

Each file is read and decoded by the pipeline (:func:`matcher.pipeline.read_frame_image`: read-only,
``O_NOATIME`` where permitted, no symbolic link followed below the evidence path the run manifest
names, no FIFO or device opened) under the scan's limits (pixels, frames, file size, EXIF
orientation as the scan had it): no second reader, no second decoder. A file whose
SHA-256 differs from the report's is not shown (it is not what was scanned). Two JPEGs per image,
named by the record's number, never by the file's name: ``thumbs/N.jpg`` and ``thumbs/N-b.jpg``,
the same picture in greyscale and blurred, which the page shows until the examiner reveals it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import MatcherError

if TYPE_CHECKING:
    from PIL import Image

    from .builder import ReportOptions

__all__ = ["THUMBNAIL_MODES", "Thumbnailer", "BLUR_RADIUS", "JPEG_QUALITY"]

#: What ``--thumbnails`` takes: ``matches`` (files with a match) or ``all`` (every image).
THUMBNAIL_MODES = ("matches", "all")
#: The Gaussian blur of the default (hidden) thumbnail, in pixels of a 160-pixel thumbnail.
BLUR_RADIUS = 8
#: JPEG quality of the thumbnails.
JPEG_QUALITY = 75


class Thumbnailer:
    """Makes the thumbnails of one page into ``folder``.

    ``roots``: the evidence paths (as the run manifest names them, joined to ``base_dir``); a
    record's path is read only below one of them. ``manifest``: the run manifest (its
    ``parameters`` give the scan's decoding limits).
    """

    def __init__(
        self, folder: str, roots: list[str], base_dir: str, manifest: dict[str, Any], options: ReportOptions
    ) -> None:
        from ..pipeline import HashOptions

        defaults = HashOptions()
        parameters = manifest.get("parameters")
        parameters = parameters if isinstance(parameters, dict) else {}

        def limit(name: str, default: int) -> int:
            value = parameters.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default

        self.folder = folder
        self.base_dir = base_dir
        self.mode = options.thumbnails
        self.size = options.thumbnail_size
        self.hash_options = HashOptions(
            max_pixels=limit("max_pixels", defaults.max_pixels),
            max_frames=limit("max_frames", defaults.max_frames),
            apply_exif_orientation=parameters.get("exif_orientation") is True,
            max_file_bytes=limit("max_file_bytes", defaults.max_file_bytes),
        )
        self.roots = [os.fsencode(os.path.normpath(os.path.join(base_dir, root))) for root in roots]

    def wanted(self, record: dict[str, Any]) -> bool:
        """Whether this record gets a thumbnail: a match (``matches``), or any decoded image (``all``)."""
        status = record.get("status")
        if status == "match":
            return True
        return self.mode == "all" and status in ("no_match", "known_good") and record.get("width") is not None

    def make(self, index: int, record: dict[str, Any]) -> int | str:
        """Write record ``index``'s two thumbnails; ``1``, or why none was made (never raises for a
        problem of the file)."""
        from .. import files
        from ..pipeline import read_frame_image

        frame = record.get("frame")
        wanted = frame if isinstance(frame, int) and not isinstance(frame, bool) and frame >= 0 else None
        try:
            root, path = self.locate(record)
            read = read_frame_image(files.Entry(path, "file", root=root), wanted, self.hash_options)
            expected = record.get("sha256")
            if isinstance(expected, str) and expected.lower() != read.digests.sha256:
                raise MatcherError("the file's SHA-256 differs from the report's: it changed since the scan")
            self.write(index, read.frame.image)
        except MatcherError as exc:
            return f"no thumbnail: {exc}"
        except Exception as exc:  # noqa: BLE001 - a decoder's surprise is this file's problem, not the page's
            return f"no thumbnail: {type(exc).__name__}: {exc}"
        return 1

    def locate(self, record: dict[str, Any]) -> tuple[bytes, bytes]:
        """``(root, path)``: the record's path (its raw bytes when the report has them) resolved from
        the base directory, and the evidence path it lies below (lexically: no ``..`` out of it)."""
        raw_hex, text = record.get("path_raw_hex"), record.get("path")
        if isinstance(raw_hex, str) and raw_hex:
            try:
                raw = bytes.fromhex(raw_hex)
            except ValueError:
                raise MatcherError("path_raw_hex is not hex") from None
        elif isinstance(text, str) and text:
            raw = os.fsencode(text)
        else:
            raise MatcherError("the record has no path")
        if b"\0" in raw:
            raise MatcherError("the path holds a NUL byte")
        path = os.path.normpath(os.path.join(os.fsencode(self.base_dir), raw))
        for root in self.roots:
            if path == root or path.startswith(root.rstrip(b"/") + b"/"):
                return root, path
        raise MatcherError("the file is not below an evidence path of the run manifest: not read")

    def write(self, index: int, image: Image.Image) -> None:
        """Write the frame's clear and its greyscale, blurred thumbnail."""
        from PIL import ImageFilter

        image.thumbnail((self.size, self.size))
        clear = os.path.join(self.folder, f"{index}.jpg")
        hidden = os.path.join(self.folder, f"{index}-b.jpg")
        with open(clear, "xb") as out:
            image.save(out, "JPEG", quality=JPEG_QUALITY)
        blurred = image.convert("L").filter(ImageFilter.GaussianBlur(BLUR_RADIUS * self.size / 160))
        with open(hidden, "xb") as out:
            blurred.save(out, "JPEG", quality=JPEG_QUALITY)
