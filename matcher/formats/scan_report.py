"""Writers of scan reports (the output of ``matcher scan``): JSON Lines, CSV and VICS 2.0 ``#Cases``.

Every writer takes the text stream to write to and the algorithm names whose hash columns every
record carries; :meth:`ScanWriter.write` writes one :class:`~matcher.scan_records.ScanRecord`,
:meth:`ScanWriter.write_all` an iterable of them, and :meth:`ScanWriter.close` finishes the document
and flushes (the stream itself stays open: it is the caller's). Writers stream: no writer holds more
than one record, except the VICS writer, which holds the frames of the one file being written (at
most ``max_frames`` records).

**jsonl**: one JSON object a line, :meth:`ScanRecord.to_dict` (UTF-8, not ASCII-escaped), so
``ScanRecord.from_dict(json.loads(line), algorithms)`` gives the record back.

**csv**: a header row, then one row per record with the columns of ``to_dict`` except ``matches``,
which is replaced, where it stands, by the nearest match (``match_algorithm``, ``match_distance``,
``match_variant``, ``match_record``, ``match_list``, ``match_category``, ``match_series``; empty
without a match) and ``match_count``; then ``match_view``, the known record's view the nearest
match was found in (empty for its main hash), and last ``match_explanation``, what the evidence
differs by in words (:attr:`~matcher.scan_records.ScanMatch.explanation`: "as is", "mirrored",
"cropped 10% centred", "caption band cut at top"...; the short codes stay in ``match_variant`` and
``match_view``). Both are appended last so that the columns before them stay where they were.
``notes`` are joined with ``"; "``, booleans are written ``true``/``false`` and ``None`` as an
empty cell. Every text cell goes through
:func:`~matcher.formats.records.csv_safe`, so a file called ``=HYPERLINK(...)`` stays text in a
spreadsheet.

**vics**: one Project VIC VICS 2.0 document of shape ``#Cases``: a single Case object holding the
``case`` fields given to the writer and a ``Media`` array with **one Media object per scanned file**.
The frames of a multi-frame file (consecutive records with the same path and a frame number) are
merged into that one Media: its status is the strongest of the frames' (in the order of
:data:`~matcher.scan_records.STATUSES`), its match the nearest over all frames (digest matches
first, then the smallest distance, then the earlier frame), and its perceptual hashes those of the
frame that matched (else of the first frame). Media fields, as
:mod:`matcher.formats.vics` reads and writes them:

* ``MediaID``: 1, 2, ... in the order written;
* ``Category``: the raw integer category of the list entry of the nearest match that precategorizes
  (see ``IsPrecategorized``); ``null`` without one or when the entry has none (always written, as
  in matcher's ``#Media`` output);
* ``IsPrecategorized``: ``true`` when the category came from a known list through a digest match or
  a strong perceptual match (within the algorithm's ``strong_max_distance``;
  :func:`~matcher.formats.vics.precategorizes`), else ``false``; ``Category`` and ``Series`` come
  from the nearest such match. A file with only weaker matches (within the match distance, beyond
  the strong one) goes to review: ``Category`` ``null``, no ``Series``, and ``Comments`` says so
  with the known entry's category (``weak pHash match (distance 8, strong <= 4): for review, not
  precategorized (known category 1)``);
* ``Series``: the series of the match that precategorizes, when it has one;
* ``MD5``, ``SHA1``, ``SHA256``: the file's digests, upper-case (``SHA256`` as matcher's ``#Media``
  writer writes it; not every VICS consumer knows that field);
* ``MediaSize``: the file size in bytes;
* ``MediaFiles``: ``[{"FileName": <last part of the path>, "FilePath": <the folder part>}]``, the
  file's location as scanned. ``RelativeFilePath`` is *not* written: in VICS it names a copy of the
  media exported next to the document, and a scan report exports no copies;
* ``AlternativeHashes``: ``{"HashName": <the algorithm's vics_name>, "HashValue": <hex>}`` for each
  hash (its display name: ``PDQ``, ``pHash``, ...; see
  :attr:`~matcher.algorithms.base.Algorithm.vics_name`);
* ``Comments``: one line for the examiner: the status, the review note of a weak match, the nearest
  match (algorithm by its display name, or the digest in capitals, distance,
  variant, the known image's view when not its full frame, list, record id), how many matches, the
  frame it was found in, the quality score of each algorithm with one (``PDQ quality 93``: the
  algorithm's ``display_name``), notes, any error, and the raw path bytes (hex) when the path is
  not valid UTF-8.

The Case object starts with ``SourceApplicationName`` (``"matcher"``) and
``SourceApplicationVersion``, then the caller's ``case`` fields (e.g. ``CaseNumber``, ``Examiner``),
which may override those two, then ``Media``. The document is valid JSON for any number of records
(``"Media": []`` for none) and is read back by ``read_records(path, "vics")``; a Media without any
digest or hash (a file that could not be read) is then reported as a problem and skipped by that
reader, since there is nothing in it to match on.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from ..algorithms import registry
from ..errors import UsageError
from ..scan_records import DIGEST_ALGORITHMS, STATUSES, ScanMatch, ScanRecord
from .records import RecordWriter, csv_safe
from .vics import precategorizes, review_note, vics_hash_name

__all__ = [
    "ScanWriter",
    "JsonlScanWriter",
    "CsvScanWriter",
    "VicsScanWriter",
    "SCAN_WRITERS",
    "MATCH_COLUMNS",
    "MATCH_VIEW_COLUMN",
    "MATCH_EXPLANATION_COLUMN",
    "VICS_CASES_CONTEXT",
    "csv_columns",
]

#: The columns that stand for ``matches`` in the CSV report, in order.
MATCH_COLUMNS: tuple[str, ...] = (
    "match_algorithm",
    "match_distance",
    "match_variant",
    "match_record",
    "match_list",
    "match_category",
    "match_series",
    "match_count",
)
#: The CSV report's column after :data:`MATCH_COLUMNS`' group: the known record's view the nearest
#: match was found in.
MATCH_VIEW_COLUMN = "match_view"
#: The CSV report's last column: what the evidence differs by, in words (the nearest match's
#: :attr:`~matcher.scan_records.ScanMatch.explanation`).
MATCH_EXPLANATION_COLUMN = "match_explanation"

#: The ``@odata.context`` of the VICS 2.0 ``#Cases`` document the VICS writer produces.
VICS_CASES_CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Cases"


class ScanWriter(RecordWriter):
    """Base of the scan report writers: ``write(record)`` for each record, then ``close()``.

    Also a context manager: leaving the ``with`` block closes the writer (not the stream).
    """

    def __init__(self, stream: TextIO, algorithms: Sequence[str]) -> None:
        if isinstance(algorithms, str):
            algorithms = [name for name in (part.strip() for part in algorithms.split(",")) if name]
        super().__init__(stream, algorithms)
        self.closed = False

    def close(self) -> None:
        """Finish the document and flush (the stream itself is the caller's to close); idempotent."""
        self.closed = True
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise UsageError("write() on a scan report writer that is closed already")

    def __enter__(self) -> ScanWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------
# JSON Lines


class JsonlScanWriter(ScanWriter):
    """One JSON object per line: :meth:`ScanRecord.to_dict`, UTF-8, keys in a fixed order."""

    def write(self, record: ScanRecord) -> None:
        """Write one record as one line."""
        self._check_open()
        self.stream.write(json.dumps(record.to_dict(self.algorithms), ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------------
# CSV


def csv_columns(algorithms: Sequence[str]) -> list[str]:
    """The CSV report's header for these hash columns (``matches`` replaced by :data:`MATCH_COLUMNS`,
    then :data:`MATCH_VIEW_COLUMN` and :data:`MATCH_EXPLANATION_COLUMN` last)."""
    columns: list[str] = []
    for key in ScanRecord(path=None, status="no_match").to_dict(list(algorithms)):
        if key == "matches":
            columns.extend(MATCH_COLUMNS)
        else:
            columns.append(key)
    columns.extend((MATCH_VIEW_COLUMN, MATCH_EXPLANATION_COLUMN))
    return columns


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return csv_safe(value)


class CsvScanWriter(ScanWriter):
    """CSV with a header row (written at once), one row per record; see the module notes."""

    def __init__(self, stream: TextIO, algorithms: Sequence[str]) -> None:
        super().__init__(stream, algorithms)
        self._columns = csv_columns(self.algorithms)
        self._writer = csv.writer(stream, lineterminator="\n")
        self._writer.writerow(self._columns)

    def write(self, record: ScanRecord) -> None:
        """Write one record as one row."""
        self._check_open()
        row = record.to_dict(self.algorithms)
        best = record.matches[0] if record.matches else None
        row.update(
            match_algorithm=best.algorithm if best else None,
            match_distance=best.distance if best else None,
            match_variant=best.variant if best else None,
            match_record=best.record if best else None,
            match_list=best.list if best else None,
            match_category=best.category if best else None,
            match_series=best.series if best else None,
            match_count=len(record.matches),
            match_view=best.view if best else None,
            match_explanation=best.explanation if best else None,
            notes="; ".join(record.notes) if record.notes else None,
        )
        self._writer.writerow([_csv_cell(row.get(column)) for column in self._columns])


# --------------------------------------------------------------------------------------------------
# VICS 2.0 #Cases


def _match_rank(match: ScanMatch) -> tuple[int, int]:
    """Sort key of matches across frames: digest (exact) matches first, then by distance, local-feature
    matches (the known image found inside a frame) last, most inliers first."""
    if match.inliers is not None:
        return (2, -match.inliers)
    return (0 if match.algorithm in DIGEST_ALGORITHMS else 1, match.distance)


def _status_of(records: Sequence[ScanRecord]) -> str:
    return min((r.status for r in records), key=STATUSES.index)


def _best_frame(records: Sequence[ScanRecord]) -> tuple[ScanRecord, ScanMatch | None]:
    """The record holding the nearest match over all frames (first frame when none matched)."""
    best: tuple[ScanRecord, ScanMatch] | None = None
    for record in records:
        if record.matches and (best is None or _match_rank(record.matches[0]) < _match_rank(best[1])):
            best = (record, record.matches[0])
    if best is None:
        with_hashes = [r for r in records if r.hashes]
        return (with_hashes[0] if with_hashes else records[0]), None
    return best


def _precategorizing(records: Sequence[ScanRecord]) -> ScanMatch | None:
    """The nearest of a file's matches (over its frames) that may precategorize it: a digest match
    or a strong perceptual one (:func:`~matcher.formats.vics.precategorizes`); ``None`` if none may."""
    allowed = [m for r in records for m in r.matches if precategorizes(m.algorithm, m.distance)]
    return min(allowed, key=_match_rank, default=None)


def _match_text(match: ScanMatch) -> str:
    if match.algorithm in DIGEST_ALGORITHMS:
        how = f"{match.algorithm.upper()} (exact)"
    elif match.inliers is not None:
        how = f"local features ({match.algorithm.upper()}, {match.inliers} inliers)"
    else:
        how = f"{vics_hash_name(match.algorithm)} distance {match.distance}"
    extra = []
    if match.category is not None:
        extra.append(f"category {match.category}")
    if match.series is not None:
        extra.append(f"series {match.series!r}")
    tail = f" ({', '.join(extra)})" if extra else ""
    # then what the evidence differs by, in words a reviewer reads, with the short codes
    codes = [f"variant {match.variant}"] if match.variant and match.variant not in ("orig", "local") else []
    codes += [f"known view {match.view}"] if match.view else []
    words = match.explanation
    if codes and not words.startswith("variant "):  # (codes describe_match does not know are shown as codes)
        words += f" ({', '.join(codes)})"
    return f"{how} to record {match.record} of list {match.list!r}{tail}: {words}"


def _comments(records: Sequence[ScanRecord], chosen: ScanRecord, best: ScanMatch | None, status: str) -> str:
    parts = [f"matcher scan: {status}"]
    if best is not None:
        note = review_note(best.algorithm, best.distance, best.category)
        if note is not None and _precategorizing(records) is None:
            parts.append(note)
        parts.append("nearest match " + _match_text(best))
        count = sum(len(r.matches) for r in records)
        if count > 1:
            parts.append(f"{count} matches in all")
    frame_count = chosen.frame_count
    if chosen.frame is not None:
        where = f"frame {chosen.frame}" + (f" of {frame_count}" if frame_count else "")
        parts.append(("matched in " if best is not None else "hashes of ") + where)
    for algorithm in registry.with_quality():
        quality = chosen.quality(algorithm.name)
        if quality is not None:
            parts.append(f"{algorithm.display_name} quality {quality}")
    notes = list(dict.fromkeys(note for r in records for note in r.notes))
    if notes:
        parts.append("notes: " + "; ".join(notes))
    errors = list(
        dict.fromkeys(r.error if r.frame is None else f"frame {r.frame}: {r.error}" for r in records if r.error)
    )
    if errors:
        parts.append("error: " + "; ".join(errors))
    if chosen.path_raw_hex:
        parts.append(f"path bytes are not UTF-8; raw path (hex) {chosen.path_raw_hex}")
    return "; ".join(parts)


def _media_object(records: Sequence[ScanRecord], media_id: int) -> dict[str, Any]:
    """The VICS Media object of one file (all its frame records); mapping in the module notes."""
    status = _status_of(records)
    chosen, best = _best_frame(records)
    first = records[0]
    applied = _precategorizing(records)
    category = applied.category if applied is not None else None
    media: dict[str, Any] = {
        "MediaID": media_id,
        "Category": category,
        "IsPrecategorized": category is not None,
    }
    if applied is not None and applied.series is not None:
        media["Series"] = applied.series
    for key, value in (("MD5", first.md5), ("SHA1", first.sha1), ("SHA256", first.sha256)):
        if value:
            media[key] = value.upper()
    size = next((r.size for r in records if r.size is not None), None)
    if size is not None:
        media["MediaSize"] = size
    if first.path is not None:
        media["MediaFiles"] = [{"FileName": os.path.basename(first.path), "FilePath": os.path.dirname(first.path)}]
    alternatives = [
        {"HashName": vics_hash_name(name), "HashValue": value.hex()} for name, value in chosen.hashes.items()
    ]
    if alternatives:
        media["AlternativeHashes"] = alternatives
    media["Comments"] = _comments(records, chosen, best, status)
    return media


def _case_fields(case: Mapping[str, Any] | None) -> dict[str, Any]:
    from ..version import __version__

    fields: dict[str, Any] = {"SourceApplicationName": "matcher", "SourceApplicationVersion": __version__}
    if case is None:
        return fields
    if not isinstance(case, Mapping):
        raise UsageError(f"case must be a dict of VICS Case fields, not {type(case).__name__}")
    for key, value in case.items():
        if not isinstance(key, str) or not key:
            raise UsageError(f"VICS Case field names must be non-empty strings, not {key!r}")
        if key.lower() == "media":
            raise UsageError("the VICS Case field 'Media' is written by the scan report itself")
        fields[key] = value
    try:
        json.dumps(fields)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"VICS Case fields must be JSON values: {exc}") from None
    return fields


class VicsScanWriter(ScanWriter):
    """A VICS 2.0 ``#Cases`` document: one Case, one Media per scanned file (see the module notes).

    ``case`` holds the Case-level fields (``{"CaseNumber": ..., "Examiner": ...}``); the document's
    head is written with the first Media (or at :meth:`close`), each Media when its file is complete
    (the next file begins, or :meth:`close`), and the closing brackets at :meth:`close`.
    """

    def __init__(self, stream: TextIO, algorithms: Sequence[str], *, case: Mapping[str, Any] | None = None) -> None:
        super().__init__(stream, algorithms)
        self.case: dict[str, Any] = _case_fields(case)
        self._started = False
        self._count = 0
        self._pending: list[ScanRecord] = []

    @property
    def media_count(self) -> int:
        """How many Media objects have been written so far."""
        return self._count

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        head = json.dumps(self.case, ensure_ascii=False)[:-1]  # the case object, left open
        separator = ", " if self.case else ""
        self.stream.write(
            '{"@odata.context": ' + json.dumps(VICS_CASES_CONTEXT) + ', "value": [\n' + head + separator + '"Media": ['
        )

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        self._start()
        self._count += 1
        media = _media_object(self._pending, self._count)
        self._pending = []
        self.stream.write(("," if self._count > 1 else "") + "\n" + json.dumps(media, ensure_ascii=False))

    def write(self, record: ScanRecord) -> None:
        """Add one record: a still image's record becomes a Media at once; frames of one file are
        gathered until the next file begins."""
        self._check_open()
        if self._pending:
            last = self._pending[-1]
            same_file = (
                record.frame is not None
                and last.frame is not None
                and (record.path, record.path_raw_hex) == (last.path, last.path_raw_hex)
            )
            if not same_file:
                self._flush_pending()
        self._pending.append(record)
        if record.frame is None:
            self._flush_pending()

    def close(self) -> None:
        """Write the last file's Media and the closing brackets; flush. Idempotent."""
        if self.closed:
            return
        self._flush_pending()
        self._start()
        self.stream.write("\n]}\n]}\n")
        super().close()


#: Scan report writers by format name.
SCAN_WRITERS: dict[str, type[ScanWriter]] = {
    "jsonl": JsonlScanWriter,
    "csv": CsvScanWriter,
    "vics": VicsScanWriter,
}
