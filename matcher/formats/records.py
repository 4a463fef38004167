"""Writers of hash records (the output of ``matcher hash``) as JSON Lines and CSV.

JSON Lines: one object per record with the keys of :meth:`matcher.hashing.HashRecord.to_dict`.
CSV: the same columns; a cell that a spreadsheet would run as a formula (one starting with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return) is written with a leading ``'`` so it stays text.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from ..hashing import HashRecord
from ..video_hash import vpdq_line

__all__ = ["RecordWriter", "JsonlRecordWriter", "CsvRecordWriter", "VpdqRecordWriter", "WRITERS", "csv_safe"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formula injection in one CSV cell (text cells only)."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


class RecordWriter:
    """Base of the record writers: ``write(record)`` for each record, then ``close()``."""

    def __init__(self, stream: TextIO, algorithms: Sequence[str]) -> None:
        self.stream = stream
        self.algorithms = list(algorithms)

    def write(self, record: Any) -> None:
        """Write one record."""
        raise NotImplementedError

    def write_all(self, records: Iterable[Any]) -> int:
        """Write every record (one at a time, as they come); return how many were written."""
        count = 0
        for record in records:
            self.write(record)
            count += 1
        return count

    def close(self) -> None:
        """Flush what is buffered (the stream itself is the caller's to close)."""
        self.stream.flush()


class JsonlRecordWriter(RecordWriter):
    """One JSON object per line, UTF-8, keys in a fixed order."""

    def write(self, record: HashRecord) -> None:
        self.stream.write(json.dumps(record.to_dict(self.algorithms), ensure_ascii=False) + "\n")


class CsvRecordWriter(RecordWriter):
    """CSV with a header row; booleans as ``true``/``false``, missing values empty."""

    def __init__(self, stream: TextIO, algorithms: Sequence[str]) -> None:
        super().__init__(stream, algorithms)
        self._columns = list(HashRecord(path=None).to_dict(self.algorithms))
        self._writer = csv.writer(stream, lineterminator="\n")
        self._writer.writerow(self._columns)

    def write(self, record: HashRecord) -> None:
        row = record.to_dict(self.algorithms)
        self._writer.writerow([_cell(row[column]) for column in self._columns])


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return csv_safe(value)


class VpdqRecordWriter(RecordWriter):
    """vpdq's text (``frame,quality,hex,timestamp`` lines) of each video, after a ``# path`` line;
    a file that is not a video gets its ``# path`` line saying why it has no vPDQ (so every file
    is in the output), and no frame lines."""

    def write(self, record: HashRecord) -> None:
        path = (record.path or "").replace("\n", " ").replace("\r", " ")
        if record.vpdq:
            self.stream.write(f"# {path}\n")
            self.stream.writelines(vpdq_line(f) + "\n" for f in record.vpdq)
            return
        why = (record.error or record.note or "not a video").replace("\n", " ").replace("\r", " ")
        self.stream.write(f"# {path} (no vPDQ: {why})\n")


#: Record writers by format name.
WRITERS: dict[str, type[RecordWriter]] = {
    "jsonl": JsonlRecordWriter,
    "csv": CsvRecordWriter,
    "vpdq": VpdqRecordWriter,
}
