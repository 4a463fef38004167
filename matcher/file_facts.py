"""What hash, scan and cluster records know of a file, declared once.

:class:`FileFacts` holds the file fields that :class:`~matcher.hashing.HashRecord`,
:class:`~matcher.scan_records.ScanRecord` and :class:`~matcher.cluster.ClusterItem` share (each
of them is one); :data:`FILE_FIELDS` names the leading report columns in their fixed order and
:func:`file_columns` builds them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass
from typing import Any

__all__ = ["FileFacts", "FILE_FIELDS", "file_columns"]

#: The leading report columns of hash and scan records, in their fixed order.
FILE_FIELDS = (
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


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What is known of one file, or of one frame of a multi-frame file.

    ``path`` is the path as text (bytes that are not UTF-8 shown as ``\\xNN``), ``path_raw_hex`` the
    raw bytes in hex when the path is not valid UTF-8 (else ``None``). ``frame`` is ``None`` for a
    still image, else the 0-based frame index; ``frame_count`` the frames in the file. ``error`` is
    ``None`` or a message naming what was wrong; fields that could not be learnt are ``None``. Only
    ``path`` is positional: the other fields are keyword-only, so a record type built on this class
    keeps its own positional fields after ``path``.
    """

    path: str | None
    _: KW_ONLY
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
    error: str | None = None
    path_raw_hex: str | None = None


def file_columns(record: Any, algorithms: Iterable[str] = ()) -> dict[str, Any]:
    """The leading report columns shared by hash and scan records: the file fields in a fixed order,
    then one hex column per algorithm (``None`` where the record has no such hash)."""
    out: dict[str, Any] = {name: getattr(record, name) for name in FILE_FIELDS}
    for name in dict.fromkeys([*algorithms, *record.hashes]):
        value = record.hashes.get(name)
        out[name] = None if value is None else str(value)
    return out
