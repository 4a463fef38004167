"""The values that hash lists and the index exchange: known records and import problems."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .hashes import Hash

__all__ = ["KnownRecord", "ImportProblem"]


@dataclass(frozen=True, slots=True)
class KnownRecord:
    """One entry of a known-material (or known-good) set, as read from a hash list or image.

    ``hashes`` maps algorithm names (``pdq``, ``phash``, ...) to hashes (PDQ's carries its quality
    when the list gave one). Digests are lowercase hex. ``category`` is the list's raw integer
    category, kept verbatim: ``None`` (no category given) and ``0`` are different things.
    ``photodna`` is stored and passed through, never computed. ``source`` names where the record was
    read (``file:line``) for messages; ``extra`` keeps other fields a format carried (VICS fields
    matcher has no column for), JSON-ready.

    ``views`` holds extra hashes of fixed regions of the image (see :mod:`matcher.views`), by
    algorithm then view name (``{"pdq": {"top88": Hash, "crop10": Hash, ...}}``): an index searches
    them to find edited copies (crops, borders, captions). Records read from hash lists have none;
    images hashed for an index get them. They take no part in duplicate detection, and hash-list
    exports do not write them.
    """

    hashes: dict[str, Hash] = field(default_factory=dict)
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None
    photodna: str | None = None
    category: int | None = None
    series: str | None = None
    comment: str | None = None
    name: str | None = None
    size: int | None = None
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    views: dict[str, dict[str, Hash]] = field(default_factory=dict)

    def is_empty(self) -> bool:
        """True when the record carries neither a hash nor a digest (nothing to match on)."""
        return not (self.hashes or self.md5 or self.sha1 or self.sha256 or self.photodna)


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """A line or entry of a hash list that could not be read: where, and what was wrong."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"
