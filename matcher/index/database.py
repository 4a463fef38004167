"""The SQLite side of the index: schema, record rows, and the queries the index runs.

One SQLite file (``records.sqlite``) per generation holds every record with its list, raw category,
descriptive fields, digests and all of its hashes, plus the category label schemes. A committed
generation's file is never modified again: readers open it read-only with ``immutable=1`` (no locks,
no journal), writers copy it into a new generation and change the copy.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import HashFormatError, IndexStoreError, UsageError
from ..hashes import Hash
from ..known import KNOWN_SCALAR_FIELDS, KnownRecord
from .types import IndexedRecord

__all__ = [
    "DB_NAME",
    "SCHEMA_VERSION",
    "DIGEST_LENGTHS",
    "create_schema",
    "open_readonly",
    "open_writable",
    "closed_on_failure",
]

#: File name of the SQLite database inside a generation directory.
DB_NAME = "records.sqlite"
#: Version of the SQLite schema, stored in the ``meta`` table.
SCHEMA_VERSION = 1
#: Hex length of each digest kind :meth:`KnownIndex.lookup_digest` accepts.
DIGEST_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}

# Bound variables per statement: SQLite >= 3.32 allows 32766; stay well below.
IN_CHUNK = 900

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE lists (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    list_id INTEGER NOT NULL REFERENCES lists(id),
    fingerprint BLOB NOT NULL,
    category INTEGER,
    series TEXT,
    comment TEXT,
    name TEXT,
    size INTEGER,
    md5 TEXT,
    sha1 TEXT,
    sha256 TEXT,
    photodna TEXT,
    source TEXT,
    added_at TEXT NOT NULL,
    extra TEXT
);
CREATE UNIQUE INDEX records_list_fingerprint ON records(list_id, fingerprint);
CREATE INDEX records_md5 ON records(md5) WHERE md5 IS NOT NULL;
CREATE INDEX records_sha1 ON records(sha1) WHERE sha1 IS NOT NULL;
CREATE INDEX records_sha256 ON records(sha256) WHERE sha256 IS NOT NULL;
CREATE TABLE record_hashes (
    record_id INTEGER NOT NULL,
    algorithm TEXT NOT NULL,
    bits BLOB NOT NULL,
    quality INTEGER,
    PRIMARY KEY (record_id, algorithm)
) WITHOUT ROWID;
CREATE TABLE category_labels (
    scheme TEXT NOT NULL,
    category INTEGER NOT NULL,
    label TEXT NOT NULL,
    PRIMARY KEY (scheme, category)
) WITHOUT ROWID;
"""

_RECORD_COLUMNS = ", ".join(["r.id", "l.name", *(f"r.{name}" for name in KNOWN_SCALAR_FIELDS), "r.added_at", "r.extra"])


def create_schema(conn: sqlite3.Connection, algorithms: Sequence[str], created_at: str) -> None:
    """Create the tables of an empty index database."""
    conn.executescript(_SCHEMA)
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [
            ("schema_version", str(SCHEMA_VERSION)),
            ("next_record_id", "1"),
            ("algorithms", json.dumps(list(algorithms))),
            ("created_at", created_at),
        ],
    )


def open_writable(path: Path) -> sqlite3.Connection:
    """Open a generation's working copy for writing.

    No rollback journal and no syncing by SQLite: the copy lives in a temp generation that is
    thrown away on failure and fsynced as a whole before it is committed.
    """
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA cache_size=-262144")  # 256 MiB page cache while writing
    except BaseException:
        conn.close()
        raise
    return conn


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open a committed generation's database read-only and immutable (safe to share under a lock)."""
    uri = f"file:{quote(str(path))}?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    except sqlite3.DatabaseError as exc:
        raise IndexStoreError(f"{path}: cannot read the records database ({exc})") from None
    try:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:  # not a database, or not ours: the connection is not kept
        conn.close()
        raise IndexStoreError(f"{path}: cannot read the records database ({exc})") from None
    except BaseException:
        conn.close()
        raise
    if version is None or str(version[0]).strip() != str(SCHEMA_VERSION):  # a forged value may be any text
        conn.close()
        raise IndexStoreError(f"{path}: unsupported records database schema {version!r}")
    return conn


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    """A value of the ``meta`` table, or ``None``."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Set a value of the ``meta`` table."""
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def fingerprint(record: KnownRecord) -> bytes:
    """16-byte identity of a record's content: its hashes (algorithm and bits) and its digests.

    Two records with the same fingerprint in one list are duplicates; descriptive fields (category,
    name, comment ...) do not take part, and neither does a hash's quality.
    """
    parts = [f"{name}={record.hashes[name].bits.hex()}" for name in sorted(record.hashes)]
    for kind in ("md5", "sha1", "sha256", "photodna"):
        value = getattr(record, kind)
        parts.append(f"{kind}={'' if value is None else str(value).strip().lower()}")
    return hashlib.blake2b("\n".join(parts).encode("utf-8"), digest_size=16).digest()


def normalise_digest(kind: str, value: str | None, where: str) -> str | None:
    """Lowercase hex digest text, or ``None``; :class:`HashFormatError` when malformed."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if not text:
        return None
    length = DIGEST_LENGTHS[kind]
    if len(text) != length or any(c not in "0123456789abcdef" for c in text):
        raise HashFormatError(f"{where}: {kind} must be {length} hex digits, got {value!r}")
    return text


def record_row(
    record_id: int, list_id: int, fp: bytes, record: KnownRecord, category: int | None, added_at: str, where: str
) -> tuple[Any, ...]:
    """The ``records`` row of a record."""
    if record.extra:
        try:
            extra: str | None = json.dumps(record.extra, sort_keys=True, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{where}: record extra fields are not JSON-serialisable ({exc})") from None
    else:
        extra = None
    photodna = None if record.photodna is None else str(record.photodna)
    return (
        record_id,
        list_id,
        fp,
        category,
        record.series,
        record.comment,
        record.name,
        record.size,
        normalise_digest("md5", record.md5, where),
        normalise_digest("sha1", record.sha1, where),
        normalise_digest("sha256", record.sha256, where),
        photodna,
        record.source,
        added_at,
        extra,
    )


INSERT_RECORD = (
    "INSERT INTO records (id, list_id, fingerprint, category, series, comment, name, size, md5, sha1, "
    "sha256, photodna, source, added_at, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_HASH = "INSERT INTO record_hashes (record_id, algorithm, bits, quality) VALUES (?, ?, ?, ?)"


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``values`` of at most ``size`` items."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def existing_fingerprints(conn: sqlite3.Connection, list_id: int, fps: Sequence[bytes]) -> set[bytes]:
    """Those of ``fps`` already stored in the list."""
    found: set[bytes] = set()
    for part in chunks(fps):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            f"SELECT fingerprint FROM records WHERE list_id = ? AND fingerprint IN ({marks})",
            (list_id, *part),
        )
        found.update(bytes(row[0]) for row in rows)
    return found


def match_fields(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
    """``id -> (list_name, category, series, name, comment)`` for the given record ids."""
    out: dict[int, tuple[Any, ...]] = {}
    for part in chunks(ids):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            "SELECT r.id, l.name, r.category, r.series, r.name, r.comment FROM records r "
            f"JOIN lists l ON l.id = r.list_id WHERE r.id IN ({marks})",
            tuple(part),
        )
        for row in rows:
            out[int(row[0])] = tuple(row[1:])
    return out


def _hashes_of(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, dict[str, Hash]]:
    out: dict[int, dict[str, Hash]] = {}
    for part in chunks(ids):
        marks = ",".join("?" * len(part))
        rows = conn.execute(
            f"SELECT record_id, algorithm, bits, quality FROM record_hashes WHERE record_id IN ({marks}) "
            "ORDER BY record_id, algorithm",
            tuple(part),
        )
        for record_id, algorithm, bits, quality in rows:
            out.setdefault(int(record_id), {})[str(algorithm)] = Hash(str(algorithm), bytes(bits), quality)
    return out


def _build(rows: Iterable[Sequence[Any]], hashes: dict[int, dict[str, Hash]]) -> list[IndexedRecord]:
    out = []
    for record_id, list_name, *scalars, added_at, extra in rows:  # the columns of _RECORD_COLUMNS
        out.append(
            IndexedRecord(
                id=int(record_id),
                list_name=str(list_name),
                hashes=hashes.get(int(record_id), {}),
                **dict(zip(KNOWN_SCALAR_FIELDS, scalars, strict=True)),
                added_at=str(added_at),
                extra=json.loads(extra) if extra else {},
            )
        )
    return out


def _select(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> list[IndexedRecord]:
    """Full records (with their hashes) of the rows a ``WHERE ...`` clause selects."""
    rows = conn.execute(
        f"SELECT {_RECORD_COLUMNS} FROM records r JOIN lists l ON l.id = r.list_id {where}", tuple(params)
    ).fetchall()
    return _build(rows, _hashes_of(conn, [int(row[0]) for row in rows]))


def fetch_records(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, IndexedRecord]:
    """Full records for the given ids (ids not stored are left out)."""
    out: dict[int, IndexedRecord] = {}
    for part in chunks(ids):
        marks = ",".join("?" * len(part))
        out.update((record.id, record) for record in _select(conn, f"WHERE r.id IN ({marks})", part))
    return out


def page_records(conn: sqlite3.Connection, after_id: int, limit: int, list_name: str | None) -> list[IndexedRecord]:
    """Up to ``limit`` records with ids above ``after_id``, in id order (optionally of one list)."""
    if list_name is None:
        return _select(conn, "WHERE r.id > ? ORDER BY r.id LIMIT ?", (after_id, limit))
    return _select(conn, "WHERE l.name = ? AND r.id > ? ORDER BY r.id LIMIT ?", (list_name, after_id, limit))


def video_records(conn: sqlite3.Connection) -> list[IndexedRecord]:
    """The records whose ``extra`` holds a known video's frames (``"vpdq"``, see
    :func:`matcher.video_hash.known_video`), in id order; SQLite filters, no record else is built."""
    return _select(conn, "WHERE r.extra LIKE ? ORDER BY r.id", ('%"vpdq": [%',))


def lookup_digests(conn: sqlite3.Connection, kind: str, values: Sequence[str]) -> dict[str, list[IndexedRecord]]:
    """Records whose ``kind`` digest is one of ``values`` (normalised lowercase hex), by value."""
    column = {"md5": "r.md5", "sha1": "r.sha1", "sha256": "r.sha256"}[kind]
    out: dict[str, list[IndexedRecord]] = {value: [] for value in values}
    for part in chunks(list(dict.fromkeys(values))):
        marks = ",".join("?" * len(part))
        for record in _select(conn, f"WHERE {column} IN ({marks}) ORDER BY r.id", part):
            out[getattr(record, kind)].append(record)
    return out


def list_counts(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """``{list name: {"records": n, "algorithms": {algorithm: n}}}`` for every list."""
    out: dict[str, dict[str, Any]] = {}
    names: dict[int, str] = {}
    for list_id, name, count in conn.execute(
        "SELECT l.id, l.name, (SELECT count(*) FROM records r WHERE r.list_id = l.id) FROM lists l ORDER BY l.name"
    ):
        names[int(list_id)] = str(name)
        out[str(name)] = {"records": int(count), "algorithms": {}}
    for list_id, algorithm, count in conn.execute(
        "SELECT r.list_id, h.algorithm, count(*) FROM record_hashes h JOIN records r ON r.id = h.record_id "
        "GROUP BY r.list_id, h.algorithm"
    ):
        out[names[int(list_id)]]["algorithms"][str(algorithm)] = int(count)
    return out


def category_labels(conn: sqlite3.Connection) -> dict[str, dict[int, str]]:
    """Every category label scheme: ``{scheme: {category: label}}``."""
    out: dict[str, dict[int, str]] = {}
    for scheme, category, label in conn.execute(
        "SELECT scheme, category, label FROM category_labels ORDER BY scheme, category"
    ):
        out.setdefault(str(scheme), {})[int(category)] = str(label)
    return out


@contextmanager
def closed_on_failure(conn: sqlite3.Connection, where: str) -> Iterator[sqlite3.Connection]:
    """Reading ``conn`` inside this block: when the block fails the connection is closed, and an
    :class:`sqlite3.DatabaseError` becomes :class:`IndexStoreError` (``records database unreadable``)."""
    try:
        yield conn
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise IndexStoreError(f"{where}: records database unreadable ({exc})") from None
    except BaseException:
        conn.close()
        raise


def check_integrity_light(conn: sqlite3.Connection, where: str) -> None:
    """Cheap sanity check that the database is the index schema (not a deep integrity check)."""
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise IndexStoreError(f"{where}: records database unreadable ({exc})") from None
    missing = {"meta", "lists", "records", "record_hashes", "category_labels"} - tables
    if missing:
        raise IndexStoreError(f"{where}: records database lacks tables {sorted(missing)}")
