"""NIST NSRL RDSv3 (the SQLite release of the National Software Reference Library), read-only.

An RDSv3 database is SQLite with a ``FILE`` view (a table in minimal or derived sets) whose rows
carry ``sha256``, ``sha1``, ``md5``, ``file_name`` and ``file_size`` (plus ``crc32`` and
``package_id``). Its files are known *good* software files, so every record gets
``extra={"known_good": True}``: they serve to set files aside, never to flag them.

The database is opened read-only and immutable (``file:...?mode=ro&immutable=1``), so reading never
writes to the evidence copy, takes no locks and creates no journal; rows are streamed from the
cursor. Problems are reported with the row's ordinal number (1 = the first row read) as the
"line". A stream cannot be read (SQLite needs a file): pass a path, or a stream opened on a file.

A database is outside input, and a ``FILE`` *view* is a query that runs when it is read: a crafted
one (a recursive ``WITH``, a cross join) could run forever or give endless rows. So reading stops
with :class:`~matcher.errors.HashListError` when SQLite spends more virtual-machine steps on the
read than :data:`BASE_STEPS` plus :data:`STEPS_PER_BYTE` per byte of the database (reading a real
RDSv3 ``FILE`` view, even sorted, takes a few steps a byte), or when the view gives more rows than
the file could hold (one row per :data:`MIN_ROW_BYTES` bytes of database, and never fewer than
:data:`BATCH_ROWS`).
"""

from __future__ import annotations

import logging
import os
import pathlib
import sqlite3
from collections.abc import Iterator

from ..errors import HashListError
from ..known import KnownRecord
from .base import Format, ProblemReporter, Source, parse_digest, parse_size

__all__ = ["NsrlFormat", "SQLITE_HEADER", "NSRL_COLUMNS"]

logger = logging.getLogger(__name__)

#: Rows fetched from the cursor at a time.
BATCH_ROWS = 1000
#: SQLite virtual-machine steps any read may take, plus :data:`STEPS_PER_BYTE` per byte of database.
BASE_STEPS = 2_000_000
#: SQLite virtual-machine steps a read may take per byte of the database file, beyond :data:`BASE_STEPS`.
STEPS_PER_BYTE = 256
#: Bytes of database file per row, at the least: more rows than ``size // MIN_ROW_BYTES`` are refused.
MIN_ROW_BYTES = 16
_PROGRESS_EVERY = 10_000  # steps between calls of the progress handler

#: The first 16 bytes of every SQLite 3 database.
SQLITE_HEADER = b"SQLite format 3\x00"
#: The columns of the ``FILE`` view matcher reads.
NSRL_COLUMNS = ("sha256", "sha1", "md5", "file_name", "file_size")


def _connect(path: str) -> sqlite3.Connection:
    uri = pathlib.Path(os.path.abspath(path)).as_uri() + "?mode=ro&immutable=1"
    connection = sqlite3.connect(uri, uri=True)
    # TEXT that is not UTF-8 (a damaged or crafted file) is read with U+FFFD in place of the bad bytes
    # rather than failing the whole read; a digest with them then fails its own hex check, row by row.
    connection.text_factory = _decode_text
    return connection


def _decode_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _file_relation(connection: sqlite3.Connection) -> str | None:
    """The name of the ``FILE`` table or view (any case) with the NSRL columns, or ``None``."""
    rows = connection.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND lower(name) = 'file'"
    ).fetchall()
    for (name,) in rows:
        columns = {row[1].lower() for row in connection.execute(f'PRAGMA table_info("{name}")')}
        if set(NSRL_COLUMNS) <= columns:
            return str(name)
    return None


class NsrlFormat(Format):
    """NSRL RDSv3 SQLite: the ``FILE`` view's digests, names and sizes, as known-good records."""

    name = "nsrl"
    description = "NIST NSRL RDSv3 SQLite database (FILE view; known-good files)"
    extensions = (".db", ".sqlite", ".sqlite3")
    needs_path = True

    def detect(self, head: bytes, filename: str) -> bool:
        """The SQLite header, and (when ``filename`` is a readable file) a ``FILE`` view with the columns."""
        if not head.startswith(SQLITE_HEADER):
            return False
        if not filename or not os.path.isfile(filename):
            return True  # nothing more to look at; reading checks the schema
        try:
            connection = _connect(filename)
            try:
                return _file_relation(connection) is not None
            finally:
                connection.close()
        except (sqlite3.Error, UnicodeDecodeError):  # not SQLite, or a damaged schema
            return False

    def _read(self, source: Source, reporter: ProblemReporter) -> Iterator[KnownRecord]:
        if source.path is None:
            raise HashListError(f"{source.name}: an NSRL SQLite database must be read from a file path")
        try:
            connection = _connect(source.path)
        except sqlite3.Error as exc:
            raise HashListError(f"{source.name}: cannot open as SQLite: {exc}") from exc
        try:
            try:
                relation = _file_relation(connection)
            except sqlite3.DatabaseError as exc:
                raise HashListError(f"{source.name}: not a readable SQLite database: {exc}") from exc
            except UnicodeDecodeError as exc:  # SQLite's message quotes schema bytes that are not UTF-8
                raise HashListError(
                    f"{source.name}: not a readable SQLite database: its schema is damaged "
                    f"(text that is not UTF-8: {exc.object[:80]!r})"
                ) from exc
            if relation is None:
                raise HashListError(
                    f"{source.name}: SQLite database without an NSRL RDSv3 FILE view "
                    f"(columns {', '.join(NSRL_COLUMNS)})"
                )
            size = os.path.getsize(source.path)
            max_steps = BASE_STEPS + STEPS_PER_BYTE * size
            steps = [0]  # progress-handler calls so far

            def over_budget() -> int:
                steps[0] += 1
                return int(steps[0] * _PROGRESS_EVERY > max_steps)  # non-zero interrupts SQLite

            connection.set_progress_handler(over_budget, _PROGRESS_EVERY)
            max_rows = max(size // MIN_ROW_BYTES, BATCH_ROWS)
            cursor: sqlite3.Cursor | None = None
            number = 0
            while True:
                try:
                    if cursor is None:  # executing runs the query up to its first row
                        cursor = connection.execute(f'SELECT sha256, sha1, md5, file_name, file_size FROM "{relation}"')
                    rows = cursor.fetchmany(BATCH_ROWS)
                except UnicodeDecodeError as exc:  # an error message quoting bytes that are not UTF-8
                    raise HashListError(
                        f"{source.name}: SQLite cannot read the {relation} view after row {number} "
                        f"(damaged database: {exc.object[:80]!r})"
                    ) from exc
                except sqlite3.OperationalError as exc:
                    if steps[0] * _PROGRESS_EVERY > max_steps:
                        raise HashListError(
                            f"{source.name}: reading the {relation} view took more than {max_steps} SQLite steps "
                            f"(after row {number}), more than a database of {size} bytes needs (a crafted view?); "
                            "not read further"
                        ) from exc
                    raise
                if not rows:
                    break
                if number + len(rows) > max_rows:
                    raise HashListError(
                        f"{source.name}: the {relation} view gives more than {max_rows} rows, more than a database "
                        f"of {size} bytes can hold (a crafted view?); not read further"
                    )
                for sha256, sha1, md5, file_name, file_size in rows:
                    number += 1
                    try:
                        record = KnownRecord(
                            sha256=parse_digest("sha256", sha256),
                            sha1=parse_digest("sha1", sha1),
                            md5=parse_digest("md5", md5),
                            name=file_name if isinstance(file_name, str) and file_name else None,
                            size=parse_size(file_size),
                            source=reporter.where(number),
                            extra={"known_good": True},
                        )
                    except ValueError as exc:
                        reporter.report(number, f"row {number} skipped: {exc}")
                        continue
                    if record.is_empty():
                        reporter.report(number, f"row {number} skipped: no digest")
                        continue
                    yield record
        finally:
            connection.close()
