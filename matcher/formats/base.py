"""What every hash-list format shares: the :class:`Format` base, sources, problem reporting, parsing.

A format reads a hash list into :class:`~matcher.known.KnownRecord` values, one at a time (readers
stream: none holds a whole list in memory), and may write records back out. Entries that cannot be
read are reported as :class:`~matcher.known.ImportProblem` values (file and line) and skipped; under
``strict`` the first one raises :class:`~matcher.errors.HashListError` instead. Whatever the content,
a reader ends either normally or with a :class:`~matcher.errors.MatcherError`: an unexpected
exception caused by bad content is turned into a :class:`~matcher.errors.HashListError`.
"""

from __future__ import annotations

import io
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, TextIO, Union

from ..algorithms import QUALITY_RANGE, registry
from ..errors import FileReadError, HashFormatError, HashListError, MatcherError, UsageError
from ..hashes import Hash
from ..known import ImportProblem, KnownRecord

__all__ = [
    "Format",
    "SourceArg",
    "ProblemHandler",
    "Source",
    "ProblemReporter",
    "open_source",
    "source_name",
    "iter_lines",
    "decode_text_head",
    "parse_digest",
    "parse_category",
    "parse_size",
    "parse_hash",
    "parse_quality",
    "HEAD_SIZE",
    "DIGEST_LENGTHS",
]

logger = logging.getLogger(__name__)

#: What a reader accepts: a path, or a binary stream open for reading.
SourceArg = Union[str, "os.PathLike[str]", BinaryIO]
#: The callback that receives each problem found while reading.
ProblemHandler = Callable[[ImportProblem], None]

#: How many bytes detection looks at.
HEAD_SIZE = 64 * 1024
#: Hex lengths of the digests matcher knows.
DIGEST_LENGTHS: dict[str, int] = {"md5": 32, "sha1": 40, "sha256": 64}
#: Longest line a line-based reader accepts; longer lines are reported and skipped.
MAX_LINE = 1024 * 1024

_HEX = frozenset("0123456789abcdefABCDEF")
_UTF8_BOM = b"\xef\xbb\xbf"


# --------------------------------------------------------------------------------------------------
# Sources


class _PrefixedStream(io.RawIOBase):
    """A read-only raw stream that returns ``prefix`` and then the rest of ``stream``.

    Used after detection has read the head of a caller's stream: the reader then sees it whole.
    """

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._stream = stream
        self.name = getattr(stream, "name", None)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._stream.read(len(buffer))
        if not data:
            return 0
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:  # the wrapped stream is the caller's to close
        super().close()


def prefixed_stream(prefix: bytes, stream: BinaryIO) -> BinaryIO:
    """A buffered binary stream giving ``prefix`` followed by what is left of ``stream``."""
    return io.BufferedReader(_PrefixedStream(prefix, stream))


def source_name(source: SourceArg) -> str:
    """A name for ``source`` in messages: the path, a stream's ``name``, or ``<stream>``."""
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<stream>"


@dataclass(frozen=True, slots=True)
class Source:
    """An opened source: its display ``name``, the file ``path`` if there is one, and the stream.

    ``stream`` is ``None`` for sources opened for path-only readers (NSRL's SQLite database).
    """

    name: str
    path: str | None
    stream: BinaryIO | None


@contextmanager
def open_source(source: SourceArg, *, need_stream: bool = True) -> Iterator[Source]:
    """Open ``source`` for reading; a stream passed in is used as is and not closed.

    Raises :class:`~matcher.errors.FileReadError` when a path cannot be opened.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fsdecode(source)
        if not need_stream:
            yield Source(path, path, None)
            return
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise FileReadError(f"{path}: cannot open hash list: {exc.strerror or exc}") from exc
        try:
            yield Source(path, path, stream)
        finally:
            stream.close()
        return
    if not hasattr(source, "read"):
        raise UsageError(f"a hash list source must be a path or a binary stream, not {type(source).__name__}")
    name = source_name(source)
    yield Source(name, name if name != "<stream>" and os.path.isfile(name) else None, source)


def read_head(source: SourceArg, size: int = HEAD_SIZE) -> tuple[bytes, str, SourceArg]:
    """The first ``size`` bytes of ``source``, its name, and a source to read it whole from after.

    For a path the source is returned unchanged; a stream is wrapped so the bytes read here are
    read again.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fsdecode(source)
        try:
            with open(path, "rb") as stream:
                return stream.read(size), path, source
        except OSError as exc:
            raise FileReadError(f"{path}: cannot open hash list: {exc.strerror or exc}") from exc
    if not hasattr(source, "read"):
        raise UsageError(f"a hash list source must be a path or a binary stream, not {type(source).__name__}")
    head = source.read(size)
    if isinstance(head, str):
        raise UsageError(f"{source_name(source)}: hash lists must be opened in binary mode ('rb')")
    return head, source_name(source), prefixed_stream(head, source)


# --------------------------------------------------------------------------------------------------
# Problems


class ProblemReporter:
    """Reports the problems of one read: to ``on_problem`` (or the log), or raises under ``strict``."""

    __slots__ = ("name", "on_problem", "strict", "count")

    def __init__(self, name: str, on_problem: ProblemHandler | None, strict: bool) -> None:
        self.name = name
        self.on_problem = on_problem
        self.strict = strict
        self.count = 0

    def report(self, line: int | None, message: str) -> None:
        """Report one problem at ``line`` (``None``: the file as a whole)."""
        problem = ImportProblem(self.name, line, message)
        self.count += 1
        if self.strict:
            raise HashListError(str(problem))
        if self.on_problem is not None:
            self.on_problem(problem)
        else:
            logger.warning("%s", problem)

    def where(self, line: int | None) -> str:
        """``name:line`` for :attr:`KnownRecord.source`."""
        return self.name if line is None else f"{self.name}:{line}"


# --------------------------------------------------------------------------------------------------
# Lines and text


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace")


def iter_lines(stream: BinaryIO, reporter: ProblemReporter, *, keepends: bool = False) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` for each line of ``stream``, decoded as UTF-8, streaming.

    A UTF-8 byte order mark is dropped; bytes that are not UTF-8 become U+FFFD (they can only be in
    names: hex with them fails its own check). A line longer than :data:`MAX_LINE` is reported and
    skipped. Line ends are removed unless ``keepends``.
    """
    number = 0
    first = True
    while True:
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # drop the rest of the over-long line
                raw = stream.readline(MAX_LINE)
            reporter.report(number, f"line longer than {MAX_LINE} bytes; skipped")
            first = False
            continue
        if first:
            first = False
            if raw.startswith(_UTF8_BOM):
                raw = raw[len(_UTF8_BOM) :]
        text = _decode(raw)
        if not keepends:
            text = text.rstrip("\r\n")
        yield number, text


def decode_text_head(head: bytes) -> str:
    """The head of a file as text, for detection: BOMs honoured (UTF-8, UTF-16), errors replaced.

    When the head is a full :data:`HEAD_SIZE` block, its last (probably cut) line is dropped.
    """
    if head.startswith(_UTF8_BOM):
        text = head[3:].decode("utf-8", errors="replace")
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head.decode("utf-16", errors="replace")
    else:
        text = head.decode("utf-8", errors="replace")
    if len(head) >= HEAD_SIZE and "\n" in text:
        text = text[: text.rindex("\n")]
    return text


def significant_lines(text: str, limit: int = 200) -> list[str]:
    """Up to ``limit`` stripped lines of ``text`` that are neither blank nor ``#`` comments."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
            if len(out) >= limit:
                break
    return out


def is_hex(text: str) -> bool:
    """True for a non-empty string of hex digits (either case)."""
    return bool(text) and _HEX.issuperset(text)


def text_writer(stream: IO[Any]) -> tuple[TextIO, Callable[[], None]]:
    """A text stream writing to ``stream`` (wrapped as UTF-8 when it is binary), and a finisher.

    The finisher flushes and, for a wrapped binary stream, detaches the wrapper so the caller's
    stream stays open.
    """
    if isinstance(stream, io.TextIOBase) or hasattr(stream, "encoding"):
        text: TextIO = stream  # type: ignore[assignment]
        return text, text.flush
    wrapper = io.TextIOWrapper(stream, encoding="utf-8", newline="")

    def finish() -> None:
        wrapper.flush()
        wrapper.detach()

    return wrapper, finish


# --------------------------------------------------------------------------------------------------
# Field parsing (each raises ValueError with a readable message)


def parse_digest(kind: str, value: Any) -> str | None:
    """A digest as lowercase hex; ``None``/``""`` give ``None``; wrong length or not hex raise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{kind} must be hex text, not {type(value).__name__}")
    text = value.strip()
    if not text:
        return None
    length = DIGEST_LENGTHS[kind]
    if not is_hex(text):
        raise ValueError(f"{kind} is not hex: {value!r}")
    if len(text) != length:
        raise ValueError(f"{kind} must have {length} hex digits, got {len(text)}: {value!r}")
    return text.lower()


def parse_category(value: Any) -> int | None:
    """A category, kept verbatim: an integer, or text of one (``"1"`` gives 1); null/empty give None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"category must be an integer, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return int(text, 10)
        except ValueError:
            pass
    raise ValueError(f"category must be an integer, not {value!r}")


def parse_size(value: Any) -> int | None:
    """A file size in bytes (integer or digits); null/empty give ``None``; negative raises."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"size must be an integer, not {value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip(), 10)
        except ValueError:
            raise ValueError(f"size must be an integer, not {value!r}") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"size must be a non-negative integer, not {value!r}")
    return value


def parse_quality(value: Any) -> int | None:
    """A hash quality score (integer or digits in :data:`~matcher.algorithms.QUALITY_RANGE`, 0..100);
    null/empty give ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"quality must be an integer, not {value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip(), 10)
        except ValueError:
            raise ValueError(f"quality must be an integer, not {value!r}") from None
    low, high = QUALITY_RANGE
    if not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"quality must be an integer from {low} to {high}, not {value!r}")
    return value


def parse_hash(algorithm: str, value: Any, quality: int | None = None) -> Hash:
    """A :class:`~matcher.hashes.Hash` from hex text (length checked for registered algorithms)."""
    if not isinstance(value, str):
        raise ValueError(f"{algorithm} hash must be hex text, not {type(value).__name__}")
    try:
        return registry.hash_from_hex(algorithm, value, quality)
    except HashFormatError as exc:
        raise ValueError(str(exc)) from None


def optional_text(value: Any, field: str) -> str | None:
    """A text field: ``None`` and ``""`` give ``None``; numbers are turned into text."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{field} must be text, not {value!r}")
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"{field} must be text, not {type(value).__name__}")
    return value


# --------------------------------------------------------------------------------------------------
# The Format base


class Format:
    """A hash-list format: detects its content, reads it as records, and maybe writes records.

    Subclasses set :attr:`name`, :attr:`description` and :attr:`extensions`, implement
    :meth:`detect` and :meth:`_read`, and override :meth:`write` when they can write.
    """

    #: Registry name (``pdq-hex``, ``vics``, ...).
    name: str = ""
    #: One line saying what the format is.
    description: str = ""
    #: File name endings that suggest the format (lowercase, with the dot); a tie-breaker only.
    extensions: tuple[str, ...] = ()
    #: Whether :meth:`read` needs a path rather than a stream (SQLite databases).
    needs_path: bool = False
    #: Whether :meth:`write` is implemented.
    can_write: bool = False

    def detect(self, head: bytes, filename: str) -> bool:
        """True when ``head`` (the first bytes of a file) looks like this format."""
        raise NotImplementedError

    def read(
        self,
        source: SourceArg,
        *,
        on_problem: ProblemHandler | None = None,
        strict: bool = False,
    ) -> Iterator[KnownRecord]:
        """Stream the records of ``source`` (a path or a binary stream).

        Malformed entries go to ``on_problem`` (or the log) and are skipped; with ``strict`` the
        first raises :class:`~matcher.errors.HashListError`. A stream passed in is not closed.
        """
        with open_source(source, need_stream=not self.needs_path) as opened:
            reporter = ProblemReporter(opened.name, on_problem, strict)
            count = 0
            try:
                for record in self._read(opened, reporter):
                    count += 1
                    yield record
            except MatcherError:
                raise
            except (OSError, sqlite3.Error) as exc:
                raise HashListError(f"{opened.name}: cannot read {self.name} hash list: {exc}") from exc
            except MemoryError as exc:
                raise HashListError(f"{opened.name}: out of memory reading {self.name} hash list") from exc
            except Exception as exc:  # bad content must never surface as anything but a MatcherError
                raise HashListError(
                    f"{opened.name}: unexpected {type(exc).__name__} reading {self.name} hash list: {exc}"
                ) from exc
            logger.info("read %d records from %s (%s, %d problems)", count, opened.name, self.name, reporter.count)

    def _read(self, source: Source, reporter: ProblemReporter) -> Iterator[KnownRecord]:
        """The reader proper: yield records, report problems through ``reporter``."""
        raise NotImplementedError

    def write(self, records: Iterable[KnownRecord], stream: IO[Any]) -> int:
        """Write ``records`` to ``stream`` (text, or binary written as UTF-8); return how many."""
        raise UsageError(f"format {self.name!r} cannot be written")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
