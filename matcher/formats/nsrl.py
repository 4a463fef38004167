"""NIST NSRL RDSv3 (the SQLite release of the National Software Reference Library), read-only.

An RDSv3 database is SQLite with a ``FILE`` view (a table in minimal or derived sets) whose rows
carry ``sha256``, ``sha1``, ``md5``, ``file_name`` and ``file_size`` (plus ``crc32`` and
``package_id``). Its files are known *good* software files, so every record gets
``extra={"known_good": True}``: they serve to set files aside, never to flag them.

The database is opened read-only and immutable (``file:...?mode=ro&immutable=1``), so reading never
writes to the evidence copy, takes no locks and creates no journal; rows are streamed from the
cursor. Problems are reported with the row's ordinal number (1 = the first row read) as the
"line". A stream cannot be read (SQLite needs a file): pass a path, or a stream opened on a file.
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

#: The first 16 bytes of every SQLite 3 database.
SQLITE_HEADER = b"SQLite format 3\x00"
#: The columns of the ``FILE`` view matcher reads.
NSRL_COLUMNS = ("sha256", "sha1", "md5", "file_name", "file_size")


def _connect(path: str) -> sqlite3.Connection:
    uri = pathlib.Path(os.path.abspath(path)).as_uri() + "?mode=ro&immutable=1"
    return sqlite3.connect(uri, uri=True)


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
        except sqlite3.Error:
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
            if relation is None:
                raise HashListError(
                    f"{source.name}: SQLite database without an NSRL RDSv3 FILE view "
                    f"(columns {', '.join(NSRL_COLUMNS)})"
                )
            cursor = connection.execute(f'SELECT sha256, sha1, md5, file_name, file_size FROM "{relation}"')
            number = 0
            while True:
                rows = cursor.fetchmany(1000)
                if not rows:
                    break
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
