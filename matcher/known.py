"""The values that hash lists and the index exchange: known records and import problems."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .digests import EMPTY_CONTENT_DIGESTS
from .hashes import Hash
from .local_features import LocalFeatures

__all__ = ["EMPTY_CONTENT_DIGESTS", "KnownFacts", "KNOWN_SCALAR_FIELDS", "KnownRecord", "ImportProblem"]


#: The scalar fields of :class:`KnownFacts` (a known record's facts other than its hashes and extra).
KNOWN_SCALAR_FIELDS = ("md5", "sha1", "sha256", "photodna", "category", "series", "comment", "name", "size", "source")


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownFacts:
    """What a hash list says of one known image: the fields :class:`KnownRecord` and the index's
    :class:`~matcher.index.types.IndexedRecord` share (all keyword-only; see :class:`KnownRecord`)."""

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

    def scalar_facts(self) -> dict[str, Any]:
        """The :data:`KNOWN_SCALAR_FIELDS` of this record, as keyword arguments."""
        return {name: getattr(self, name) for name in KNOWN_SCALAR_FIELDS}


@dataclass(frozen=True, slots=True)
class KnownRecord(KnownFacts):
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

    ``local`` holds the image's local features (:mod:`matcher.local_features`, extracted with
    :data:`~matcher.local_features.KNOWN_PARAMS`), which let scans find the image inside crops,
    screenshots and collages; images hashed for an index get them, hash lists carry none. Like the
    views, they take no part in duplicate detection and exports do not write them.

    ``list_name`` is the list the record belonged to where the source says so (matcher's own
    exports carry it); an import keeps it when no list is named (see
    :func:`matcher.index.importing.import_sources`), and ``None`` otherwise.
    """

    views: dict[str, dict[str, Hash]] = field(default_factory=dict)
    list_name: str | None = None
    local: LocalFeatures | None = None

    def is_empty(self) -> bool:
        """True when the record carries neither a hash nor a digest (nothing to match on)."""
        return not (self.hashes or self.md5 or self.sha1 or self.sha256 or self.photodna)

    def empty_content_digests(self) -> tuple[str, ...]:
        """The kinds (``"md5"``, ``"sha1"``, ``"sha256"``) of this record's digests that are the digest
        of zero-length content (:data:`EMPTY_CONTENT_DIGESTS`; case and surrounding space ignored)."""
        return tuple(
            kind
            for kind, empty in EMPTY_CONTENT_DIGESTS.items()
            if isinstance(value := getattr(self, kind), str) and value.strip().lower() == empty
        )

    def without_empty_content_digests(self) -> KnownRecord:
        """This record without its digests of zero-length content (itself when it has none).

        Such a digest says nothing about the material (every empty file has it), so it is never
        imported; the record's other hashes and digests are kept.
        """
        kinds = self.empty_content_digests()
        if not kinds:
            return self
        return replace(
            self,
            md5=None if "md5" in kinds else self.md5,
            sha1=None if "sha1" in kinds else self.sha1,
            sha256=None if "sha256" in kinds else self.sha256,
        )


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """A line or entry of a hash list that could not be read: where, and what was wrong."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"
