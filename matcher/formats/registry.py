"""The registry of hash-list formats, content-based detection, and the read/write entry points.

Formats (by name):

========================  ===========================================================  =======
name                      content                                                      writer
========================  ===========================================================  =======
``nsrl``                  NIST NSRL RDSv3 SQLite (``FILE`` view)                       no
``vics``                  Project VIC VICS JSON 1.x / 2.0, ``#Media`` or ``#Cases``    yes
``matcher-jsonl``         matcher's KnownRecord export, JSON Lines                     yes
``matcher-hash-jsonl``    what ``matcher hash`` writes                                 no
``matcher-csv``           matcher's KnownRecord export, CSV                            yes
``digest-list``           md5sum/sha1sum/sha256sum output, plain digest lists          yes
``pdq-hex``               PDQ hex lines, ``pdq <hex>``, ``hash,quality,filename``      yes
``sha256-list``           bare SHA-256 lines (only when named)                         yes
``vpdq``                  vpdq video hashes, ``frame,quality,hex,timestamp`` lines     yes
``vpdq-json``             ThreatExchange vPDQ signals, a JSON array a line             yes
========================  ===========================================================  =======

**Detection** looks at the first 64 KiB only, by content:

* ``nsrl``: starts with ``SQLite format 3\\0``, and (for a file) has a ``FILE`` table or view
  with ``sha256, sha1, md5, file_name, file_size``;
* ``vics``: a JSON object (after a BOM and white space) with an ``odata.metadata`` or
  ``@odata.context`` key, or with a ``value`` array and ``MediaID``/``MD5``/``SHA1``/``Media`` keys;
* ``matcher-jsonl``: the first line is a JSON object with ``photodna``, ``category`` and ``extra``;
* ``matcher-hash-jsonl``: the first line is a JSON object with ``path`` and ``frame``, ``mime``,
  ``error`` or ``path_raw_hex``;
* ``matcher-csv``: the first line is the export's header;
* ``digest-list`` / ``pdq-hex``: of the first 200 non-blank, non-comment lines, at least a third,
  and more than of the other kind, are digest lines (32/40-hex with or without a name, 64-hex
  *with* a name, BSD ``SHA256 (n) = h``) or PDQ lines (bare 64-hex, ``pdq <hex>``,
  ``<64-hex>,<quality>,<name>``) respectively. A bare 64-hex list is therefore PDQ; name
  ``sha256-list`` to read one as SHA-256.
* ``vpdq``: two thirds of the first significant lines are ``frame,quality,hex,timestamp``;
* ``vpdq-json``: the first significant line is a JSON array of ``"hex,quality,timestamp"``
  (optionally after ``vpdq`` or a name and a tab).

When several formats claim a file, the one whose usual file name ending matches wins, else the
first in the order above. The file name never decides alone: a PDQ list called ``x.json`` is read as
PDQ. Content no format claims raises :class:`~matcher.errors.HashListError`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import IO, Any

from ..errors import HashListError, UsageError
from ..known import KnownRecord
from .base import HEAD_SIZE, Format, ProblemHandler, SourceArg, read_head
from .exports import MatcherCsvFormat, MatcherHashJsonlFormat, MatcherJsonlFormat
from .nsrl import NsrlFormat
from .textlists import DigestListFormat, PdqHexFormat, Sha256ListFormat
from .vics import VicsFormat
from .vpdq import VpdqJsonFormat, VpdqTextFormat

__all__ = [
    "Format",
    "register_format",
    "get_format",
    "format_names",
    "formats",
    "detect_format",
    "read_records",
    "write_records",
]

logger = logging.getLogger(__name__)

_FORMATS: dict[str, Format] = {}


def register_format(fmt: Format) -> Format:
    """Add a format under its name (later registrations are tried later in detection)."""
    if not fmt.name:
        raise UsageError("a format needs a name")
    if fmt.name in _FORMATS:
        raise UsageError(f"format {fmt.name!r} is registered already")
    _FORMATS[fmt.name] = fmt
    return fmt


def get_format(name: str) -> Format:
    """The format called ``name``; :class:`~matcher.errors.UsageError` for an unknown name."""
    try:
        return _FORMATS[name]
    except KeyError:
        raise UsageError(f"unknown hash list format {name!r} (known: {', '.join(_FORMATS)})") from None


def format_names() -> list[str]:
    """Registered format names, in detection order."""
    return list(_FORMATS)


def formats() -> list[Format]:
    """Registered formats, in detection order."""
    return list(_FORMATS.values())


def _detect(head: bytes, filename: str) -> Format:
    candidates = [fmt for fmt in _FORMATS.values() if _safe_detect(fmt, head, filename)]
    if not candidates:
        where = filename or "the data"
        if not head.strip():
            raise HashListError(f"{where}: empty; no hash list format to detect")
        raise HashListError(
            f"{where}: cannot tell the hash list format from its content "
            f"(known formats: {', '.join(_FORMATS)}); name the format explicitly"
        )
    if len(candidates) > 1:
        lowered = filename.lower()
        by_name = [fmt for fmt in candidates if any(lowered.endswith(ext) for ext in fmt.extensions)]
        if by_name:
            candidates = by_name
        logger.debug("%s: formats %s all match; taking %s", filename, [f.name for f in candidates], candidates[0].name)
    return candidates[0]


def _safe_detect(fmt: Format, head: bytes, filename: str) -> bool:
    try:
        return bool(fmt.detect(head, filename))
    except Exception as exc:  # a detector must not stop detection
        logger.debug("format %s: detection failed on %s: %s", fmt.name, filename, exc)
        return False


def detect_format(path_or_head: str | os.PathLike[str] | bytes, filename: str = "") -> Format:
    """The format of a file (a path: its first 64 KiB are read) or of the given head bytes.

    ``filename`` (for head bytes) serves as a tie-breaker only. Raises
    :class:`~matcher.errors.HashListError` when no format recognises the content.
    """
    if isinstance(path_or_head, (bytes, bytearray, memoryview)):
        return _detect(bytes(path_or_head[:HEAD_SIZE]), filename)
    head, name, _ = read_head(path_or_head)
    return _detect(head, filename or name)


def read_records(
    source: SourceArg,
    format: str | Format = "auto",  # noqa: A002 - the public keyword
    on_problem: ProblemHandler | None = None,
    strict: bool = False,
) -> Iterator[KnownRecord]:
    """Stream the records of a hash list (a path or a binary stream) in ``format``.

    ``format="auto"`` detects it from the content (see the module notes). Malformed entries are
    reported to ``on_problem`` (or logged) with file and line and skipped; with ``strict`` the first
    raises :class:`~matcher.errors.HashListError`.
    """
    if isinstance(format, Format):
        fmt = format
    elif format == "auto":
        head, name, source = read_head(source)
        fmt = _detect(head, name)
        logger.debug("%s: detected format %s", name, fmt.name)
    else:
        fmt = get_format(format)
    return fmt.read(source, on_problem=on_problem, strict=strict)


def write_records(records: Iterable[KnownRecord], stream: IO[Any], format: str | Format) -> int:  # noqa: A002
    """Write ``records`` to ``stream`` in ``format`` (which must have a writer); return how many."""
    fmt = format if isinstance(format, Format) else get_format(format)
    if not fmt.can_write:
        raise UsageError(f"format {fmt.name!r} cannot be written")
    return fmt.write(records, stream)


for _fmt in (
    NsrlFormat(),
    VicsFormat(),
    MatcherJsonlFormat(),
    MatcherHashJsonlFormat(),
    MatcherCsvFormat(),
    DigestListFormat(),
    PdqHexFormat(),
    Sha256ListFormat(),
    VpdqTextFormat(),
    VpdqJsonFormat(),
):
    register_format(_fmt)
del _fmt
