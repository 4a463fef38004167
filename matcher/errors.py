"""The one exception hierarchy of matcher.

Every error the library raises on purpose derives from :class:`MatcherError`; its message names the
file or record concerned and what was wrong with it, so it can be put straight into a report.
"""

from __future__ import annotations

__all__ = [
    "DecodeError",
    "FileReadError",
    "HashFormatError",
    "HashListError",
    "ImageTooLargeError",
    "IndexStoreError",
    "MatcherError",
    "NotAFileError",
    "TruncatedImageError",
    "UnknownAlgorithmError",
    "UnsupportedFormatError",
    "UsageError",
]


class MatcherError(Exception):
    """Base class of every error matcher raises deliberately."""


class UsageError(MatcherError, ValueError):
    """A call was made with arguments that cannot work (bad option value, wrong type)."""


class HashFormatError(MatcherError, ValueError):
    """A hash given as text or bytes is malformed (wrong length, not hex, wrong algorithm)."""


class UnknownAlgorithmError(MatcherError, KeyError):
    """An algorithm name that is not in the registry."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class FileReadError(MatcherError, OSError):
    """A file could not be opened or read (permissions, vanished, I/O error)."""


class NotAFileError(MatcherError):
    """The path is not a regular file (FIFO, socket, device, directory) and was not opened."""


class DecodeError(MatcherError):
    """The bytes could not be decoded into pixels."""


class UnsupportedFormatError(DecodeError):
    """The bytes are not an image type matcher can decode (or not an image at all)."""


class TruncatedImageError(DecodeError):
    """The image data ends early or is corrupt; no partial hash is produced."""


class ImageTooLargeError(DecodeError):
    """The image declares more pixels (or the file more bytes) than the configured limit."""


class HashListError(MatcherError, ValueError):
    """A hash list could not be read, or (under ``strict``) had a malformed entry."""


class IndexStoreError(MatcherError):
    """An index directory cannot be used: missing, corrupt, truncated, from a newer format version,
    or built with different algorithm parameters. Never answered with a wrong result instead."""
