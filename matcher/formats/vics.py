"""Project VIC VICS JSON (version 1.x and 2.0), read streaming and written as VICS 2.0 ``#Media``.

A VICS document is one JSON object: an OData header key (``odata.metadata`` in 1.x,
``@odata.context`` in 2.0) and a ``value`` array. ``value`` holds either Media objects (a hash set,
``#Media``) or Case objects, each with its Media in a ``Media`` array (``#Cases``).

**Streaming.** Hash sets run to hundreds of thousands of Media, so the document is never parsed
whole. :class:`_JsonScanner` keeps a sliding text buffer over the file (decoded chunk by chunk) and
walks the structure by hand only down to the arrays that matter: the top-level object's members,
the ``value`` array, each element's members, and a ``Media`` array inside an element. Every other
value (one Media object, one case field) is small and is parsed with
:meth:`json.JSONDecoder.raw_decode` at the buffer position, reading more text first when the value
is not complete yet. Text before the position is dropped as it is passed, so memory stays at about
one chunk plus the largest single Media object. Line numbers are counted as the scanner advances.

**Mapping** (field names matched case-insensitively):

* ``MD5``, ``SHA1``, ``SHA256`` → digests, lowercased (empty text = absent);
* ``PhotoDNA`` → :attr:`~matcher.known.KnownRecord.photodna`, verbatim;
* ``Category`` → the raw integer (``"1"`` → 1; ``0`` and ``null`` stay different);
* ``Series`` → series; ``Comments`` (or ``Comment``/``Notes``) → comment; ``MediaSize`` → size;
* the name: ``MediaFiles[0].FileName``, else the last part of ``RelativeFilePath``;
* ``AlternativeHashes`` entries ``{"HashName": ..., "HashValue": ...}``: ``PhotoDNA`` → photodna,
  ``SHA256`` → sha256, and a registered perceptual algorithm (its registry name or
  :attr:`~matcher.algorithms.base.Algorithm.vics_name` in any case: ``PDQ``, ``pHash``, ...) → a
  hash; a top-level field so named (``PDQ``) is read too. Entries not used stay in ``extra``;
* flags written as text (``"true"``/``"false"``, any case) become booleans;
* every other field (``MediaID``, ``Tags``, ``MediaFiles``, ``Exifs``, flags, dates ...) goes to
  ``extra`` as is, except OData annotations (``odata.*``, ``*@odata.*``). A ``MediaFiles`` that only
  repeats the name (``[{"FileName": name}]``) is not kept, since :attr:`name` holds it.

A Media object with a bad field (a digest of the wrong length, a category that is not an integer)
is reported with the line it starts on and skipped; one with no digest or hash at all likewise.
JSON that is broken or cut short ends the read with one problem at the line where it went wrong
(after the records before it were yielded); nothing after that point can be trusted.

**Writing** gives VICS 2.0 ``#Media``: digests upper-case (as Project VIC distributes them;
SHA-256 as a ``SHA256`` field, which not every VICS consumer may know),
``Category`` always written (``null`` when absent), ``PhotoDNA`` as a field, perceptual hashes as
``AlternativeHashes`` entries (``HashName``: the algorithm's ``vics_name``, its display name:
``PDQ``, ``pHash``, ``dHash``, ``aHash``, ``wHash``; :func:`vics_hash_name`), the name as
``MediaFiles: [{"FileName": name}]``, and the ``extra`` fields as Media fields. Reading it back gives
the same records (apart from ``source`` and hash quality, which VICS has no field for).
"""

from __future__ import annotations

import codecs
import json
import logging
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any, BinaryIO

from ..algorithms import registry as algorithm_registry
from ..hashes import Hash
from ..known import KnownRecord
from ..scan_records import DIGEST_ALGORITHMS
from .base import (
    Format,
    ProblemReporter,
    Source,
    decode_text_head,
    optional_text,
    parse_category,
    parse_digest,
    parse_hash,
    parse_size,
    text_writer,
)

__all__ = ["VicsFormat", "VICS_2_CONTEXT", "vics_hash_name", "media_record", "precategorizes", "review_note"]

logger = logging.getLogger(__name__)

#: The ``@odata.context`` the writer puts on VICS 2.0 ``#Media`` documents.
VICS_2_CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media"

_CHUNK = 256 * 1024
#: Largest single JSON value (one Media object or case field) the scanner accepts.
MAX_VALUE = 64 * 1024 * 1024

_DETECT_KEY = re.compile(r'"(?:odata\.metadata|@odata\.context)"\s*:')
_DETECT_VALUE = re.compile(r'"value"\s*:\s*\[')
_DETECT_MEDIA = re.compile(r'"(?:MediaID|MD5|SHA1|Media)"\s*:')
_WS = " \t\r\n"

_BOOLEAN_FIELDS = frozenset(
    name.lower()
    for name in (
        "VictimIdentified",
        "OffenderIdentified",
        "IsDistributed",
        "IsPrecategorized",
        "IsSuspected",
        "SelfGenerated",
        "Unallocated",
        "IsVictim",
        "IsOffender",
    )
)
_DIGEST_FIELDS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "sha-1": "sha1", "sha-256": "sha256"}
_COMMENT_FIELDS = ("comments", "comment", "notes")


class _BrokenJson(Exception):
    """The document is not valid JSON from ``line`` on (or ends early)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _JsonScanner:
    """A sliding-window reader of a JSON text: hand-walked structure, ``raw_decode`` for values."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._decoder: codecs.IncrementalDecoder | None = None
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self._json = json.JSONDecoder()

    def _fill(self) -> bool:
        """Read more text into the buffer (dropping what was passed); False at the end."""
        if self.eof:
            return False
        data = self._stream.read(_CHUNK)
        if self._decoder is None:  # the first chunk says which encoding (UTF-16 BOM, else UTF-8)
            encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
            self._decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        try:
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise _BrokenJson(self.line, f"text is not valid Unicode: {exc.reason}") from None
        if not data:
            self.eof = True
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        return bool(text) or not self.eof

    def _advance_to(self, end: int) -> None:
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end

    def peek(self) -> str:
        """The next character that is not white space ('' at the end), not consumed."""
        while True:
            buf, pos, n = self.buf, self.pos, len(self.buf)
            while pos < n and buf[pos] in _WS:
                pos += 1
            self._advance_to(pos)
            if pos < n:
                return buf[pos]
            if not self._fill():
                return ""

    def expect(self, chars: str, what: str) -> str:
        """Consume one of ``chars`` (after white space) and return it, or raise :class:`_BrokenJson`."""
        ch = self.peek()
        if not ch or ch not in chars:
            if not ch:
                raise _BrokenJson(self.line, f"the document ends early (cut short?): expected {what}")
            raise _BrokenJson(self.line, f"broken JSON: expected {what}, found {ch!r}")
        self._advance_to(self.pos + 1)
        return ch

    def value(self) -> Any:
        """Parse the next JSON value whole (reading more text as needed) and consume it."""
        self.peek()
        while True:
            try:
                value, end = self._json.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                # More text cannot mend an error well before the end of the buffer (an open
                # string reports where it starts, so it is always worth reading on).
                settled = exc.pos < len(self.buf) - 64 and not exc.msg.startswith("Unterminated string")
                if self.eof or settled:
                    line = self.line + self.buf.count("\n", self.pos, exc.pos)
                    if self.eof and not self.buf[exc.pos :].strip():
                        raise _BrokenJson(line, "the document ends early (cut short?)") from None
                    raise _BrokenJson(line, f"broken JSON: {exc.msg}") from None
                if len(self.buf) - self.pos > MAX_VALUE:
                    raise _BrokenJson(self.line, f"a JSON value longer than {MAX_VALUE} characters") from None
                self._fill()
                continue
            except RecursionError:
                raise _BrokenJson(self.line, "a JSON value nested too deeply to read") from None
            except ValueError as exc:  # not a syntax error: an integer of more digits than Python converts
                raise _BrokenJson(self.line, f"unreadable JSON value: {exc}") from None
            if end >= len(self.buf) and not self.eof:  # a number may go on in the next chunk
                self._fill()
                continue
            self._advance_to(end)
            return value

    def members(self) -> Iterator[str]:
        """Walk an object: yield each key with the scanner at its value, which the caller consumes."""
        self.expect("{", "'{'")
        if self.peek() == "}":
            self._advance_to(self.pos + 1)
            return
        while True:
            if self.peek() != '"':
                raise _BrokenJson(self.line, "broken JSON: expected a member name")
            key = self.value()
            self.expect(":", "':'")
            yield key
            if self.expect(",}", "',' or '}'") == "}":
                return

    def elements(self) -> Iterator[int]:
        """Walk an array: yield the line of each element with the scanner at it (caller consumes)."""
        self.expect("[", "'['")
        if self.peek() == "]":
            self._advance_to(self.pos + 1)
            return
        while True:
            self.peek()
            yield self.line
            if self.expect(",]", "',' or ']'") == "]":
                return


def _as_bool(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _is_annotation(key: str) -> bool:
    return key.startswith("odata.") or "@odata." in key


def _algorithm_for(name: str) -> str | None:
    algorithm = algorithm_registry.find(name)
    return None if algorithm is None else algorithm.name


def vics_hash_name(algorithm: str) -> str:
    """The VICS ``HashName`` matcher writes for a hash of ``algorithm``: the registered algorithm's
    :attr:`~matcher.algorithms.base.Algorithm.vics_name`, else the name as it is."""
    found = algorithm_registry.get(algorithm) if algorithm in algorithm_registry else None
    return algorithm if found is None else found.vics_name


def precategorizes(algorithm: str, distance: int) -> bool:
    """Whether a match may precategorize a file in a VICS report (``IsPrecategorized`` and the known
    entry's ``Category``): a digest match (``md5``, ``sha1``, ``sha256``), or a perceptual match
    within its algorithm's :attr:`~matcher.algorithms.base.Algorithm.strong_max_distance`. A weaker
    perceptual match (within the match distance, beyond the strong one) is for review; so is a match
    of an algorithm matcher does not know."""
    if algorithm in DIGEST_ALGORITHMS:
        return True
    found = algorithm_registry.find(algorithm)
    return found is not None and found.name == algorithm and distance <= found.strong_max_distance


def review_note(algorithm: str, distance: int, category: int | None) -> str | None:
    """The VICS ``Comments`` text of a match that does not precategorize (``None`` for one that
    does): ``"weak pHash match (distance 8, strong <= 4): for review, not precategorized (known
    category 1)"``."""
    if precategorizes(algorithm, distance):
        return None
    known = "" if category is None else f" (known category {category})"
    if algorithm == "orb":  # a local-feature match: the known image found inside the frame
        return f"local-feature match (known image found inside the frame): for review, not precategorized{known}"
    found = algorithm_registry.find(algorithm)
    name = algorithm if found is None else found.display_name
    strong = "" if found is None else f", strong <= {found.strong_max_distance}"
    return f"weak {name} match (distance {distance}{strong}): for review, not precategorized{known}"


def media_record(media: dict[str, Any], where: str) -> KnownRecord:
    """A :class:`KnownRecord` from one VICS Media object (mapping in the module notes).

    Raises :class:`ValueError` for a bad field or a Media object with nothing to match on.
    """
    digests: dict[str, str | None] = {}
    hashes: dict[str, Hash] = {}
    photodna: str | None = None
    category: int | None = None
    series = comment = None
    size: int | None = None
    extra: dict[str, Any] = {}
    media_files: Any = None
    relative_path: Any = None
    alternatives: Any = None
    for key, value in media.items():
        if not isinstance(key, str) or _is_annotation(key):
            continue
        lowered = key.lower()
        if lowered in _DIGEST_FIELDS:
            kind = _DIGEST_FIELDS[lowered]
            digests[kind] = parse_digest(kind, value) or digests.get(kind)
        elif lowered == "photodna":
            photodna = optional_text(value, "PhotoDNA")
        elif lowered == "category":
            category = parse_category(value)
        elif lowered == "series":
            series = optional_text(value, "Series")
        elif lowered in _COMMENT_FIELDS:
            comment = optional_text(value, key) if comment is None else comment
        elif lowered == "mediasize":
            size = parse_size(value)
        elif lowered == "alternativehashes":
            alternatives = value
        elif lowered == "mediafiles":
            media_files = value
        elif lowered == "relativefilepath":
            relative_path = value
            extra[key] = value
        elif _algorithm_for(key) is not None and isinstance(value, str):
            if value.strip():
                algorithm = _algorithm_for(key)
                assert algorithm is not None
                hashes[algorithm] = parse_hash(algorithm, value)
        elif lowered in _BOOLEAN_FIELDS:
            extra[key] = _as_bool(value)
        else:
            extra[key] = value

    if isinstance(alternatives, list):
        left = []
        for entry in alternatives:
            if not isinstance(entry, dict):
                left.append(entry)
                continue
            name = entry.get("HashName", entry.get("hashName"))
            value = entry.get("HashValue", entry.get("hashValue"))
            if not isinstance(name, str) or not isinstance(value, str):
                left.append(entry)
                continue
            lowered = name.strip().lower()
            algorithm = _algorithm_for(name)
            if lowered == "photodna" and photodna is None:
                photodna = value
            elif lowered in _DIGEST_FIELDS and digests.get(_DIGEST_FIELDS[lowered]) is None:
                digests[_DIGEST_FIELDS[lowered]] = parse_digest(_DIGEST_FIELDS[lowered], value)
            elif algorithm is not None and algorithm not in hashes:
                hashes[algorithm] = parse_hash(algorithm, value)
            else:
                left.append(entry)
        if left:
            extra["AlternativeHashes"] = left
    elif alternatives is not None:
        extra["AlternativeHashes"] = alternatives

    name = None
    if isinstance(media_files, list) and media_files and isinstance(media_files[0], dict):
        name = optional_text(media_files[0].get("FileName"), "FileName")
    if name is None and isinstance(relative_path, str) and relative_path:
        name = re.split(r"[\\/]", relative_path)[-1] or None
    if media_files is not None and not (
        isinstance(media_files, list)
        and len(media_files) == 1
        and isinstance(media_files[0], dict)
        and set(media_files[0]) <= {"FileName"}
        and media_files[0].get("FileName") == name
    ):
        extra["MediaFiles"] = media_files

    record = KnownRecord(
        hashes=hashes,
        md5=digests.get("md5"),
        sha1=digests.get("sha1"),
        sha256=digests.get("sha256"),
        photodna=photodna,
        category=category,
        series=series,
        comment=comment,
        name=name,
        size=size,
        source=where,
        extra=extra,
    )
    if record.is_empty():
        raise ValueError("Media entry has no MD5, SHA1, SHA256, PhotoDNA or perceptual hash")
    return record


class VicsFormat(Format):
    """Project VIC VICS JSON 1.x/2.0, ``#Media`` and ``#Cases`` shapes; writes VICS 2.0 ``#Media``."""

    name = "vics"
    description = "Project VIC VICS JSON (1.x 'odata.metadata' and 2.0 '@odata.context'; Media or Cases)"
    extensions = (".json",)
    can_write = True

    def detect(self, head: bytes, filename: str) -> bool:
        """A JSON object with an OData header key, or with a ``value`` array of Media-like objects."""
        text = decode_text_head(head).lstrip()
        if not text.startswith("{"):
            return False
        if _DETECT_KEY.search(text):
            return True
        return bool(_DETECT_VALUE.search(text) and _DETECT_MEDIA.search(text))

    def _read(self, source: Source, reporter: ProblemReporter) -> Iterator[KnownRecord]:
        assert source.stream is not None
        scanner = _JsonScanner(source.stream)
        seen_value = False
        try:
            if scanner.peek() != "{":
                raise _BrokenJson(scanner.line, "not a VICS document: it does not start with a JSON object")
            for key in scanner.members():
                if key == "value" and scanner.peek() == "[":
                    seen_value = True
                    yield from self._value_array(scanner, reporter)
                else:
                    scanner.value()  # header fields: small, not needed
            if scanner.peek() != "":
                raise _BrokenJson(scanner.line, "broken JSON: text after the end of the document")
        except _BrokenJson as exc:
            reporter.report(exc.line, exc.message + "; the rest of the document is not read")
            return
        if not seen_value:
            reporter.report(None, "not a VICS document: no 'value' array")

    def _value_array(self, scanner: _JsonScanner, reporter: ProblemReporter) -> Iterator[KnownRecord]:
        for line in scanner.elements():
            if scanner.peek() != "{":
                scanner.value()
                reporter.report(line, "entry of 'value' is not a JSON object; skipped")
                continue
            fields: dict[str, Any] = {}
            is_case = False
            for key in scanner.members():
                if key.lower() == "media" and scanner.peek() == "[":
                    is_case = True
                    yield from self._media_array(scanner, reporter)
                else:
                    fields[key] = scanner.value()
            if not is_case:
                record = self._record(fields, line, reporter)
                if record is not None:
                    yield record

    def _media_array(self, scanner: _JsonScanner, reporter: ProblemReporter) -> Iterator[KnownRecord]:
        for line in scanner.elements():
            media = scanner.value()
            if not isinstance(media, dict):
                reporter.report(line, "Media entry is not a JSON object; skipped")
                continue
            record = self._record(media, line, reporter)
            if record is not None:
                yield record

    @staticmethod
    def _record(media: dict[str, Any], line: int, reporter: ProblemReporter) -> KnownRecord | None:
        try:
            return media_record(media, reporter.where(line))
        except (ValueError, TypeError, AttributeError) as exc:
            reporter.report(line, f"Media entry skipped: {exc}")
            return None

    def write(self, records: Iterable[KnownRecord], stream: IO[Any]) -> int:
        """Write a VICS 2.0 ``#Media`` document, one Media object a line; return how many."""
        out, finish = text_writer(stream)
        count = 0
        try:
            out.write('{"@odata.context": ' + json.dumps(VICS_2_CONTEXT) + ', "value": [')
            for record in records:
                out.write(",\n" if count else "\n")
                out.write(json.dumps(_media_object(record), ensure_ascii=False))
                count += 1
            out.write("\n]}\n")
        finally:
            finish()
        return count


def _media_object(record: KnownRecord) -> dict[str, Any]:
    media: dict[str, Any] = {"Category": record.category}
    if record.md5:
        media["MD5"] = record.md5.upper()
    if record.sha1:
        media["SHA1"] = record.sha1.upper()
    if record.sha256:
        media["SHA256"] = record.sha256.upper()
    if record.photodna is not None:
        media["PhotoDNA"] = record.photodna
    if record.size is not None:
        media["MediaSize"] = record.size
    if record.series is not None:
        media["Series"] = record.series
    if record.comment is not None:
        media["Comments"] = record.comment
    alternatives = [
        {"HashName": vics_hash_name(algorithm), "HashValue": value.hex()} for algorithm, value in record.hashes.items()
    ]
    extra = dict(record.extra)
    extra_alternatives = extra.pop("AlternativeHashes", None)
    if isinstance(extra_alternatives, list):
        alternatives.extend(extra_alternatives)
    if alternatives:
        media["AlternativeHashes"] = alternatives
    if "MediaFiles" not in extra and record.name is not None:
        media["MediaFiles"] = [{"FileName": record.name}]
    for key, value in extra.items():
        media.setdefault(key, value)
    return media
