"""matcher's own formats: the ``matcher hash`` JSON Lines, and the KnownRecord exports.

``matcher-hash-jsonl`` reads what ``matcher hash`` writes (see
:meth:`matcher.hashing.HashRecord.to_dict`): every registered algorithm's column that is present and
not null becomes a hash (columns it does not know are ignored, never read as hashes), with its
quality from the algorithm's quality column (its registered ``quality_field``, PDQ's
``pdq_quality``; else a ``<algorithm>_quality`` column), ``md5``/``sha1``/``sha256`` the digests,
``path`` the name and ``size`` the size; ``frame``, ``frame_count``, ``width``, ``height``,
``mime``, ``path_raw_hex``, ``error`` and ``note`` go to ``extra`` when set. A line with an
``error`` and no hash or digest is reported as a problem and skipped (the file could not be hashed).
No writer here: :mod:`matcher.formats.records` writes this format.

``matcher-jsonl`` and ``matcher-csv`` export :class:`~matcher.known.KnownRecord` values whole, and
read them back exactly (``read(write(records)) == records`` apart from ``source``). Columns:
``name, size, md5, sha1, sha256, photodna, category, series, comment``, then ``list`` (the list
the record belongs to, :attr:`~matcher.known.KnownRecord.list_name`; exports written before it
existed lack it and read as ``None``), then one column per hash algorithm (hex), then
``<algorithm>_quality``, then ``extra`` (a JSON object; in CSV a JSON text).

* JSON Lines: every field is written (null when absent); hash and quality keys only for the hashes
  a record has, so any algorithm, registered or not, round-trips, and so does every quality.
* CSV: a header row; a hash column for each algorithm given to the writer (default: every
  registered algorithm) and a ``<algorithm>_quality`` column for registered algorithms with a
  quality score (``pdq_quality``); an
  empty cell is ``None``. Text starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return
  (which a spreadsheet would run as a formula), or with ``'``, is written with one ``'`` in front,
  and the reader takes one leading ``'`` off, so the escape is exact. CSV cannot tell an empty text
  from a missing one: ``""`` is read back as ``None``.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

from ..algorithms import registry as algorithm_registry
from ..errors import UsageError
from ..file_facts import FILE_FIELDS
from ..hashes import Hash
from ..known import KnownRecord
from ..video_hash import VpdqFeature, known_video, parse_vpdq_line
from .base import (
    Format,
    ProblemReporter,
    Source,
    decode_text_head,
    iter_lines,
    optional_text,
    parse_category,
    parse_digest,
    parse_hash,
    parse_quality,
    parse_size,
    text_writer,
)

__all__ = ["MatcherHashJsonlFormat", "MatcherJsonlFormat", "MatcherCsvFormat", "RECORD_FIELDS", "LIST_FIELD"]

logger = logging.getLogger(__name__)

#: The scalar KnownRecord fields, in column order.
RECORD_FIELDS = ("name", "size", "md5", "sha1", "sha256", "photodna", "category", "series", "comment")
#: The column of the record's list (after :data:`RECORD_FIELDS`; optional when read).
LIST_FIELD = "list"
_RESERVED = frozenset(RECORD_FIELDS) | {LIST_FIELD, "extra", "source", "hashes"}
_QUALITY = "_quality"

_HASH_JSONL_FIELDS = frozenset({*FILE_FIELDS, "error", "note", "path_raw_hex"})
_HASH_JSONL_EXTRA = ("frame", "frame_count", "width", "height", "mime", "path_raw_hex", "error", "note")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def _first_json_object(head: bytes) -> dict[str, Any] | None:
    for line in decode_text_head(head).splitlines():
        if line.strip():
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _json_lines(source: Source, reporter: ProblemReporter) -> Iterator[tuple[int, dict[str, Any]]]:
    assert source.stream is not None
    for number, line in iter_lines(source.stream, reporter):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            reporter.report(number, f"broken JSON: {exc}")
            continue
        if not isinstance(value, dict):
            reporter.report(number, "line is not a JSON object")
            continue
        yield number, value


def _check_algorithm(algorithm: str) -> None:
    if algorithm in _RESERVED or algorithm.endswith(_QUALITY):
        raise UsageError(f"hash algorithm name {algorithm!r} clashes with a column name of the export")


# --------------------------------------------------------------------------------------------------


class MatcherHashJsonlFormat(Format):
    """The JSON Lines ``matcher hash`` writes: one image (or frame) a line with its hashes and digests."""

    name = "matcher-hash-jsonl"
    description = "JSON Lines written by 'matcher hash' (path, digests, one column per algorithm)"
    extensions = (".jsonl", ".ndjson")

    def detect(self, head: bytes, filename: str) -> bool:
        """The first line is a JSON object with ``path`` and one of ``frame``/``mime``/``error``."""
        first = _first_json_object(head)
        return first is not None and "path" in first and bool({"frame", "mime", "error", "path_raw_hex"} & set(first))

    def _read(self, source: Source, reporter: ProblemReporter) -> Iterator[KnownRecord]:
        for number, row in _json_lines(source, reporter):
            try:
                record = self._record(row, reporter.where(number))
            except (ValueError, TypeError) as exc:
                reporter.report(number, str(exc))
                continue
            if record.is_empty():
                error = row.get("error")
                reporter.report(number, f"no hash or digest: {error}" if error else "no hash or digest")
                continue
            yield record

    @staticmethod
    def _record(row: dict[str, Any], where: str) -> KnownRecord:
        hashes: dict[str, Hash] = {}
        qualities = {key[: -len(_QUALITY)]: value for key, value in row.items() if key.endswith(_QUALITY)}
        quality_fields = set(algorithm_registry.quality_fields())
        for algorithm in algorithm_registry.with_quality():
            if algorithm.quality_field in row:
                qualities[algorithm.name] = row[algorithm.quality_field]
        algorithms = set(algorithm_registry.names())
        for key, value in row.items():
            if key in _HASH_JSONL_FIELDS or key.endswith(_QUALITY) or key in quality_fields or value is None:
                continue
            if key not in algorithms:
                continue  # a column of a newer 'matcher hash' (or another tool's): not a hash
            hashes[key] = parse_hash(key, value, parse_quality(qualities.get(key)))
        extra = {key: row[key] for key in _HASH_JSONL_EXTRA if row.get(key) is not None}
        path = row.get("path")
        if isinstance(row.get("vpdq"), list) and row["vpdq"]:  # a video: one known video record
            return known_video(
                [_vpdq_feature(item) for item in row["vpdq"]],
                md5=parse_digest("md5", row.get("md5")),
                sha1=parse_digest("sha1", row.get("sha1")),
                sha256=parse_digest("sha256", row.get("sha256")),
                name=path if isinstance(path, str) and path else None,
                size=parse_size(row.get("size")),
                source=where,
                extra=extra,
            )
        return KnownRecord(
            hashes=hashes,
            md5=parse_digest("md5", row.get("md5")),
            sha1=parse_digest("sha1", row.get("sha1")),
            sha256=parse_digest("sha256", row.get("sha256")),
            name=path if isinstance(path, str) and path else None,
            size=parse_size(row.get("size")),
            source=where,
            extra=extra,
        )


def _vpdq_feature(item: Any) -> VpdqFeature:
    """One frame of a ``vpdq`` list of ``matcher hash``'s JSON Lines: a ``{"frame", "timestamp",
    "pdq", "quality"}`` object or a vpdq line."""
    if isinstance(item, str):
        return parse_vpdq_line(item)
    if not isinstance(item, dict):
        raise ValueError(f"a vpdq frame is an object or a vpdq line, not {item!r:.60}")
    text = f"{item.get('frame')},{item.get('quality')},{item.get('pdq')},{item.get('timestamp')}"
    return parse_vpdq_line(text)


# --------------------------------------------------------------------------------------------------


def _record_from_fields(
    fields: dict[str, Any], hashes: dict[str, Any], qualities: dict[str, Any], extra: Any, where: str
) -> KnownRecord:
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise ValueError(f"extra must be a JSON object, not {type(extra).__name__}")
    parsed = {
        algorithm: parse_hash(algorithm, value, parse_quality(qualities.get(algorithm)))
        for algorithm, value in hashes.items()
        if value is not None and value != ""
    }
    return KnownRecord(
        hashes=parsed,
        md5=parse_digest("md5", fields.get("md5")),
        sha1=parse_digest("sha1", fields.get("sha1")),
        sha256=parse_digest("sha256", fields.get("sha256")),
        photodna=optional_text(fields.get("photodna"), "photodna"),
        category=parse_category(fields.get("category")),
        series=optional_text(fields.get("series"), "series"),
        comment=optional_text(fields.get("comment"), "comment"),
        name=optional_text(fields.get("name"), "name"),
        size=parse_size(fields.get("size")),
        source=where,
        extra=extra,
        list_name=optional_text(fields.get(LIST_FIELD), LIST_FIELD),
    )


def _split_row(row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Any]:
    fields: dict[str, Any] = {}
    hashes: dict[str, Any] = {}
    qualities: dict[str, Any] = {}
    for key, value in row.items():
        if key in RECORD_FIELDS or key == LIST_FIELD:
            fields[key] = value
        elif key == "extra":
            continue
        elif key.endswith(_QUALITY):
            qualities[key[: -len(_QUALITY)]] = value
        else:
            hashes[key] = value
    return fields, hashes, qualities, row.get("extra")


class MatcherJsonlFormat(Format):
    """matcher's KnownRecord export as JSON Lines; reads back exactly what it wrote."""

    name = "matcher-jsonl"
    description = "matcher's own KnownRecord export, JSON Lines"
    extensions = (".jsonl", ".ndjson")
    can_write = True

    def detect(self, head: bytes, filename: str) -> bool:
        """The first line is a JSON object with the export's ``photodna``, ``category`` and ``extra``."""
        first = _first_json_object(head)
        return first is not None and {"photodna", "category", "extra"} <= set(first)

    def _read(self, source: Source, reporter: ProblemReporter) -> Iterator[KnownRecord]:
        for number, row in _json_lines(source, reporter):
            try:
                record = _record_from_fields(*_split_row(row), reporter.where(number))
            except (ValueError, TypeError) as exc:
                reporter.report(number, str(exc))
                continue
            yield record

    def write(self, records: Iterable[KnownRecord], stream: IO[Any]) -> int:
        """Write one JSON object a line (UTF-8, keys in column order); return how many."""
        out, finish = text_writer(stream)
        count = 0
        try:
            for record in records:
                row: dict[str, Any] = {field: getattr(record, field) for field in RECORD_FIELDS}
                row[LIST_FIELD] = record.list_name
                for algorithm, value in record.hashes.items():
                    _check_algorithm(algorithm)
                    row[algorithm] = value.hex()
                for algorithm, value in record.hashes.items():
                    if value.quality is not None:
                        row[algorithm + _QUALITY] = value.quality
                row["extra"] = record.extra
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        finally:
            finish()
        return count


# --------------------------------------------------------------------------------------------------


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_value(cell: str) -> str | None:
    if cell == "":
        return None
    return cell[1:] if cell.startswith("'") else cell


class MatcherCsvFormat(Format):
    """matcher's KnownRecord export as CSV with a header row; reads back exactly what it wrote."""

    name = "matcher-csv"
    description = "matcher's own KnownRecord export, CSV with a header row"
    extensions = (".csv",)
    can_write = True

    def detect(self, head: bytes, filename: str) -> bool:
        """The first line is the export's header (``name,size,md5,...,comment`` then hash columns)."""
        text = decode_text_head(head)
        first = text.splitlines()[0] if text else ""
        columns = [c.strip() for c in first.split(",")]
        return tuple(columns[: len(RECORD_FIELDS)]) == RECORD_FIELDS and "extra" in columns

    def _read(self, source: Source, reporter: ProblemReporter) -> Iterator[KnownRecord]:
        assert source.stream is not None
        lines = iter_lines(source.stream, reporter, keepends=True)
        reader = csv.reader(text for _, text in lines)
        header: list[str] | None = None
        start = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                reporter.report(reader.line_num, f"broken CSV: {exc}; the rest of the file is not read")
                return
            line, start = start, reader.line_num + 1
            if header is None:
                header = [c.strip() for c in cells]
                missing = [c for c in (*RECORD_FIELDS, "extra") if c not in header]
                if missing:
                    reporter.report(line, f"not a matcher-csv header: missing {', '.join(missing)}")
                    return
                continue
            if not any(cells):
                continue
            if len(cells) != len(header):
                reporter.report(line, f"row has {len(cells)} cells, the header {len(header)}")
                continue
            row: dict[str, Any] = {column: _csv_value(cell) for column, cell in zip(header, cells)}
            try:
                extra_text = row.get("extra")
                row["extra"] = json.loads(extra_text) if extra_text else {}
                record = _record_from_fields(*_split_row(row), reporter.where(line))
            except (ValueError, TypeError) as exc:
                reporter.report(line, str(exc))
                continue
            yield record

    def write(self, records: Iterable[KnownRecord], stream: IO[Any], *, algorithms: Sequence[str] | None = None) -> int:
        """Write a header and one row a record; return how many rows.

        ``algorithms`` are the hash columns (default: every registered algorithm); a record with a
        hash of another algorithm raises :class:`~matcher.errors.UsageError`.
        """
        columns_algorithms = list(algorithm_registry.names() if algorithms is None else algorithms)
        for algorithm in columns_algorithms:
            _check_algorithm(algorithm)
        qualities = [
            a for a in columns_algorithms if a in algorithm_registry.names() and algorithm_registry.get(a).has_quality
        ]
        header = [*RECORD_FIELDS, LIST_FIELD, *columns_algorithms, *(a + _QUALITY for a in qualities), "extra"]
        out, finish = text_writer(stream)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        count = 0
        try:
            for record in records:
                unknown = set(record.hashes) - set(columns_algorithms)
                if unknown:
                    raise UsageError(
                        f"record {record.source or record.name!r} has hashes of {', '.join(sorted(unknown))}, "
                        f"not among the CSV columns ({', '.join(columns_algorithms)})"
                    )
                cells = [_csv_cell(getattr(record, field)) for field in (*RECORD_FIELDS, "list_name")]
                cells += [_csv_cell(record.hashes[a].hex() if a in record.hashes else None) for a in columns_algorithms]
                cells += [_csv_cell(record.hashes[a].quality if a in record.hashes else None) for a in qualities]
                cells.append(json.dumps(record.extra, ensure_ascii=False, sort_keys=False))
                writer.writerow(cells)
                count += 1
        finally:
            finish()
        return count
