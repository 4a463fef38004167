"""Line-based hash lists: PDQ hex lists and ``md5sum``/``sha1sum``/``sha256sum`` digest lists.

``pdq-hex`` reads, one entry a line (blank lines and ``#`` comments skipped):

* a bare 64-hex PDQ hash;
* ThreatExchange's ``pdq <hex>``;
* the PDQ reference hasher's CSV ``hash,quality,filename`` (quality and file name are optional; a
  ``hash,quality,filename`` header line is skipped; the file name is everything after the second
  comma, commas included).

It writes the reference hasher's ``hash,quality,filename`` form (no header), so its output can be
compared with the reference tools line by line; records without a PDQ hash are skipped.

``digest-list`` reads the output of ``md5sum``, ``sha1sum`` and ``sha256sum`` (``<hex>  <name>``,
binary mode ``<hex> *<name>``, GNU's backslash-escaped names), the BSD/``--tag`` form
``SHA256 (name) = <hex>``, and plain one-digest-a-line lists. The digest type follows from the hex
length: 32 MD5, 40 SHA-1, 64 SHA-256. It writes ``sha256sum`` style: one line per record with its
strongest digest (SHA-256, else SHA-1, else MD5) and the name (names with a newline or backslash are
escaped as GNU does); records without a digest are skipped.

**The 64-hex rule.** A bare 64-hex line could be a SHA-256 or a PDQ hash. Detection decides: a
64-hex line *with a file name* counts as a digest line, a bare one as a PDQ line; a file is detected
as the kind more of its first lines are (and at least a third of them, so a few malformed lines
do not hide the format). So a bare SHA-256 list (no names) is detected as
``pdq-hex``; read it with the format ``sha256-list`` (never auto-detected), which reads bare 64-hex
lines as SHA-256 and accepts nothing else. Inside a file read as ``digest-list``, every 64-hex
digest is SHA-256.

The ``pdq-hex`` format names its algorithm once (:attr:`PdqHexFormat.algorithm`); the hex length,
the ``<name> <hex>`` prefix and the messages follow from that algorithm's registered facts.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from ..algorithms import registry
from ..hashes import Hash
from ..known import KnownRecord
from .base import (
    Format,
    ProblemReporter,
    Source,
    decode_text_head,
    is_hex,
    iter_lines,
    parse_hash,
    parse_quality,
    significant_lines,
    text_writer,
)

__all__ = ["PdqHexFormat", "DigestListFormat", "Sha256ListFormat", "HexLineSyntax", "hex_line_syntax"]

logger = logging.getLogger(__name__)

_HEX_HEADER = re.compile(r"hash\s*,\s*quality\s*(,\s*filename\s*)?", re.IGNORECASE)
_GNU_DIGEST = re.compile(r"\\?(?:[0-9A-Fa-f]{32}|[0-9A-Fa-f]{40})(?:(?:  | \*).*)?|\\?[0-9A-Fa-f]{64}(?:  | \*).+")
_BSD_DIGEST = re.compile(r"(MD5|SHA1|SHA-1|SHA256|SHA-256) ?\((.*)\) ?= ?([0-9A-Fa-f]+)", re.IGNORECASE)
_BSD_KINDS = {"md5": "md5", "sha1": "sha1", "sha-1": "sha1", "sha256": "sha256", "sha-256": "sha256"}


@dataclass(frozen=True, slots=True)
class HexLineSyntax:
    """The line forms of a one-hash-a-line list of one algorithm, from its registered facts: bare
    hex of ``bit_length // 4`` digits, ``<name> <hex>`` (ThreatExchange's ``pdq <hex>``), and the
    reference hasher's ``hash,quality,filename`` CSV (with its header)."""

    algorithm: str
    display_name: str
    digits: int
    bare: re.Pattern[str]
    prefixed: re.Pattern[str]
    csv: re.Pattern[str]

    def is_line(self, line: str) -> bool:
        """Whether ``line`` (stripped) has one of the forms."""
        return bool(
            self.bare.fullmatch(line)
            or self.prefixed.fullmatch(line)
            or self.csv.fullmatch(line)
            or _HEX_HEADER.fullmatch(line)
        )


@functools.lru_cache(maxsize=16)
def hex_line_syntax(algorithm: str) -> HexLineSyntax:
    """The :class:`HexLineSyntax` of a registered algorithm."""
    facts = registry.get(algorithm)
    digits = facts.bit_length // 4
    hex_digits = f"[0-9A-Fa-f]{{{digits}}}"
    return HexLineSyntax(
        algorithm=facts.name,
        display_name=facts.display_name,
        digits=digits,
        bare=re.compile(hex_digits),
        prefixed=re.compile(re.escape(facts.name) + r"\s+" + hex_digits, re.IGNORECASE),
        csv=re.compile(hex_digits + r"\s*,\s*\d*\s*(,.*)?"),
    )


def _is_digest_line(line: str) -> bool:
    return bool(_GNU_DIGEST.fullmatch(line) or _BSD_DIGEST.fullmatch(line))


def _claims(head: bytes, mine: Callable[[str], bool], theirs: Callable[[str], bool]) -> bool:
    """At least a third of the first significant lines are ``mine``, and more than are ``theirs``."""
    lines = significant_lines(decode_text_head(head))
    if not lines:
        return False
    hits = sum(1 for line in lines if mine(line))
    others = sum(1 for line in lines if theirs(line))
    return hits * 3 >= len(lines) and hits > others


class PdqHexFormat(Format):
    """PDQ hashes one a line: bare hex, ``pdq <hex>``, or the reference ``hash,quality,filename`` CSV."""

    name = "pdq-hex"
    description = "PDQ hashes, one a line (bare hex, 'pdq <hex>', or reference 'hash,quality,filename')"
    extensions = (".pdq", ".txt", ".csv", ".hex")
    can_write = True
    #: The registered algorithm of the hashes (its facts decide the hex length and the prefix).
    algorithm = "pdq"

    @property
    def syntax(self) -> HexLineSyntax:
        """The line forms of :attr:`algorithm`."""
        return hex_line_syntax(self.algorithm)

    def detect(self, head: bytes, filename: str) -> bool:
        """A third or more of the first significant lines are PDQ lines, and more than digest lines."""
        return _claims(head, self.syntax.is_line, _is_digest_line)

    def _read(self, source: Source, reporter: ProblemReporter) -> Iterator[KnownRecord]:
        assert source.stream is not None
        for number, line in iter_lines(source.stream, reporter):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                record = self._parse(self.syntax, text, reporter.where(number))
            except ValueError as exc:
                reporter.report(number, str(exc))
                continue
            if record is not None:
                yield record

    @staticmethod
    def _parse(syntax: HexLineSyntax, text: str, where: str) -> KnownRecord | None:
        algorithm = syntax.algorithm
        if len(text) == syntax.digits and syntax.bare.fullmatch(text):  # the common case, checked already
            return KnownRecord(hashes={algorithm: Hash(algorithm, bytes.fromhex(text))}, source=where)
        if _HEX_HEADER.fullmatch(text):
            return None
        quality = None
        name = None
        prefix = len(algorithm)
        if text[:prefix].lower() == algorithm and len(text) > prefix and text[prefix].isspace():
            hex_text = text[prefix:].strip()
        elif "," in text:
            parts = text.split(",", 2)
            hex_text = parts[0].strip()
            quality = parse_quality(parts[1].strip())
            if len(parts) > 2 and parts[2]:
                name = parts[2]
        else:
            hex_text = text
        if not is_hex(hex_text):
            raise ValueError(f"not a {syntax.display_name} hash ({syntax.digits} hex digits): {text[:100]!r}")
        value = parse_hash(algorithm, hex_text, quality)
        return KnownRecord(hashes={algorithm: value}, name=name, source=where)

    def write(self, records: Iterable[KnownRecord], stream: IO[Any]) -> int:
        """Write ``hash,quality,filename`` lines (no header); records without PDQ are skipped.

        A missing quality or name leaves its field empty; line breaks in a name become spaces (the
        format has no escape for them).
        """
        syntax = self.syntax
        out, finish = text_writer(stream)
        count = 0
        try:
            for record in records:
                value = record.hashes.get(syntax.algorithm)
                if value is None:
                    logger.debug(
                        "record without a %s hash not written to %s: %s", syntax.display_name, self.name, record.source
                    )
                    continue
                name = record.name or ""
                if "\n" in name or "\r" in name:
                    logger.warning("line break in name replaced by a space for %s: %r", self.name, name)
                    name = name.replace("\r", " ").replace("\n", " ")
                quality = "" if value.quality is None else str(value.quality)
                out.write(f"{value.hex()},{quality},{name}\n")
                count += 1
        finally:
            finish()
        return count


def _unescape_gnu(name: str) -> str:
    out = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "\\" and i + 1 < len(name):
            nxt = name[i + 1]
            out.append({"n": "\n", "r": "\r", "\\": "\\"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _escape_gnu(name: str) -> tuple[str, bool]:
    if "\\" not in name and "\n" not in name and "\r" not in name:
        return name, False
    return name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r"), True


class DigestListFormat(Format):
    """``md5sum``/``sha1sum``/``sha256sum`` output, BSD ``--tag`` lines, or plain digest lists."""

    name = "digest-list"
    description = "md5sum/sha1sum/sha256sum output or plain MD5/SHA-1/SHA-256 lists (type from hex length)"
    extensions: tuple[str, ...] = (".md5", ".sha1", ".sha256", ".md5sum", ".sha1sum", ".sha256sum", ".txt")
    can_write = True
    #: Digest kind by hex length.
    lengths: dict[int, str] = {32: "md5", 40: "sha1", 64: "sha256"}

    def detect(self, head: bytes, filename: str) -> bool:
        """A third or more of the first significant lines are digest lines, and more than PDQ lines."""
        return _claims(head, _is_digest_line, hex_line_syntax(PdqHexFormat.algorithm).is_line)

    def _read(self, source: Source, reporter: ProblemReporter) -> Iterator[KnownRecord]:
        assert source.stream is not None
        for number, line in iter_lines(source.stream, reporter):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            try:
                kind, digest, name = self._parse(line.lstrip())
            except ValueError as exc:
                reporter.report(number, str(exc))
                continue
            digests = {"md5": None, "sha1": None, "sha256": None} | {kind: digest}
            yield KnownRecord(
                name=name,
                source=reporter.where(number),
                md5=digests["md5"],
                sha1=digests["sha1"],
                sha256=digests["sha256"],
            )

    def _kind(self, hex_text: str) -> str:
        kind = self.lengths.get(len(hex_text))
        if kind is None:
            wanted = ", ".join(f"{n} ({k.upper()})" for n, k in self.lengths.items())
            raise ValueError(f"digest has {len(hex_text)} hex digits; expected {wanted}: {hex_text[:80]!r}")
        return kind

    def _parse(self, line: str) -> tuple[str, str, str | None]:
        bsd = _BSD_DIGEST.fullmatch(line.rstrip())
        if bsd is not None:
            kind = _BSD_KINDS[bsd.group(1).lower()]
            hex_text = bsd.group(3)
            if self._kind(hex_text) != kind:
                raise ValueError(f"{bsd.group(1)} digest has {len(hex_text)} hex digits: {line[:100]!r}")
            return kind, hex_text.lower(), bsd.group(2) or None
        escaped = line.startswith("\\")
        body = line[1:] if escaped else line
        end = 0
        while end < len(body) and body[end] in "0123456789abcdefABCDEF":
            end += 1
        hex_text, rest = body[:end], body[end:]
        if not hex_text:
            raise ValueError(f"not a digest line: {line[:100]!r}")
        name: str | None
        if not rest.strip():
            name = None
        elif rest.startswith(("  ", " *")):
            name = rest[2:]
        elif rest[0] in " \t":
            name = rest.strip().lstrip("*")
        else:
            raise ValueError(f"digest is not hex: {line[:100]!r}")
        if name is not None and escaped:
            name = _unescape_gnu(name)
        return self._kind(hex_text), hex_text.lower(), name or None

    def write(self, records: Iterable[KnownRecord], stream: IO[Any]) -> int:
        """Write ``sha256sum``-style lines with each record's strongest digest; return how many."""
        out, finish = text_writer(stream)
        count = 0
        try:
            for record in records:
                digest = record.sha256 or record.sha1 or record.md5
                if digest is None:
                    logger.debug("record without a digest not written to digest-list: %s", record.source)
                    continue
                if record.name:
                    name, escaped = _escape_gnu(record.name)
                    prefix = "\\" if escaped else ""
                    out.write(f"{prefix}{digest}  {name}\n")
                else:
                    out.write(f"{digest}\n")
                count += 1
        finally:
            finish()
        return count


class Sha256ListFormat(DigestListFormat):
    """Bare SHA-256 lists (also ``sha256sum`` lines): only ever used when named, never detected."""

    name = "sha256-list"
    description = "SHA-256 digests one a line (names optional); must be named: bare 64-hex lists detect as PDQ"
    extensions = ()
    lengths = {64: "sha256"}

    def detect(self, head: bytes, filename: str) -> bool:
        """Never: a bare 64-hex list is detected as ``pdq-hex``; name this format to read SHA-256."""
        return False
