"""vPDQ video hash lists: vpdq's hash files and ThreatExchange's vPDQ lines, one known video a record.

``vpdq`` (vpdq's ``vpdq-hash-video`` output, and what ``matcher hash --format vpdq`` writes): one
line per sampled frame, ``frame,quality,hex,timestamp``. A file is one video; matcher also writes
(and reads) several videos in one file, each after a ``# name`` line. The record is named after the
``# name`` line, else the file.

``vpdq-json`` (ThreatExchange's vPDQ signal): one video a line, a JSON array of
``"hex,quality,timestamp"`` features, optionally after a ``vpdq`` word or a name and a tab
(``name<TAB>[...]``). Frames are numbered in the order given.

Each video becomes one :class:`~matcher.known.KnownRecord` (:func:`matcher.video_hash.known_video`):
its representative frame as its PDQ hash, every frame in ``extra["vpdq"]``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any

from ..errors import MatcherError
from ..known import KnownRecord
from ..video_hash import VpdqFeature, compact, known_video, parse_compact, parse_vpdq_line, video_features, vpdq_line
from .base import Format, ProblemReporter, Source, decode_text_head, iter_lines, text_writer

__all__ = ["VpdqTextFormat", "VpdqJsonFormat"]

logger = logging.getLogger(__name__)

_VPDQ_LINE = re.compile(r"^\d+,\d{1,3},[0-9a-fA-F]{64},\d+(\.\d*)?$|^\d+,[0-9a-fA-F]{64},\d{1,3},\d+(\.\d*)?$")
_JSON_LINE = re.compile(r'^(?:[^\t\[]*\t|vpdq\s+)?\[\s*(?:"[0-9a-fA-F]{64},\d{1,3},[0-9.]+"|\])')


def _significant(head: bytes, limit: int = 50) -> list[str]:
    text = decode_text_head(head)
    lines = [line.strip() for line in text.splitlines()[:-1] or text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")][:limit]


def _stem(name: str) -> str:
    base = os.path.basename(name)
    return base.rsplit(".", 1)[0] if "." in base else base


class VpdqTextFormat(Format):
    """vpdq's hash files: ``frame,quality,hex,timestamp`` lines; ``# name`` lines start a video."""

    name = "vpdq"
    description = "vpdq video hashes: 'frame,quality,hash,timestamp' lines, one video a file or '# name' section"
    extensions = (".vpdq", ".txt")
    can_write = True

    def detect(self, head: bytes, filename: str) -> bool:
        """Most of the first significant lines are vpdq lines."""
        lines = _significant(head)
        return bool(lines) and sum(bool(_VPDQ_LINE.match(line)) for line in lines) * 3 >= len(lines) * 2

    def _read(self, source: Source, reporter: ProblemReporter) -> Iterator[KnownRecord]:
        if source.stream is None:  # pragma: no cover - a stream is always asked for
            raise MatcherError(f"{source.name}: no stream to read")
        name: str | None = _stem(source.path) if source.path else None
        start: int | None = None
        frames: list[VpdqFeature] = []
        for number, line in iter_lines(source.stream, reporter):
            text = line.strip()
            if not text:
                continue
            if text.startswith("#"):
                if frames:
                    yield known_video(frames, name=name, source=reporter.where(start))
                frames, start = [], None
                name = text[1:].strip() or (_stem(source.path) if source.path else None)
                continue
            try:
                frames.append(parse_vpdq_line(text))
            except MatcherError as exc:
                reporter.report(number, str(exc))
                continue
            start = number if start is None else start
        if frames:
            yield known_video(frames, name=name, source=reporter.where(start))

    def write(self, records: Iterable[KnownRecord], stream: IO[Any]) -> int:
        """Write each video record's frames as vpdq lines, after a ``# name`` line (``#`` alone for a
        record without a name); records that are not videos are skipped."""
        out, finish = text_writer(stream)
        count = 0
        try:
            for record in records:
                frames = video_features(record)
                if not frames:
                    logger.debug("record without vPDQ frames not written to %s: %s", self.name, record.source)
                    continue
                name = (record.name or "").replace("\n", " ").replace("\r", " ")
                out.write(f"# {name}\n" if name else "#\n")  # every video starts a section
                out.writelines(vpdq_line(f) + "\n" for f in frames)
                count += 1
        finally:
            finish()
        return count


class VpdqJsonFormat(Format):
    """ThreatExchange's vPDQ signals: one video a line, a JSON array of ``"hex,quality,timestamp"``."""

    name = "vpdq-json"
    description = "ThreatExchange vPDQ signals: one video a line, a JSON array of 'hash,quality,timestamp'"
    extensions = (".json", ".txt", ".tsv")
    can_write = True

    def detect(self, head: bytes, filename: str) -> bool:
        """The first significant line is a JSON array of vPDQ features."""
        lines = _significant(head, 1)
        return bool(lines) and _JSON_LINE.match(lines[0]) is not None

    def _read(self, source: Source, reporter: ProblemReporter) -> Iterator[KnownRecord]:
        if source.stream is None:  # pragma: no cover - a stream is always asked for
            raise MatcherError(f"{source.name}: no stream to read")
        for number, line in iter_lines(source.stream, reporter):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            name = None
            if "\t" in text and not text.startswith("["):
                name, text = (part.strip() for part in text.split("\t", 1))
            elif text.startswith("vpdq") and not text.startswith("["):
                text = text[4:].strip()
            try:
                items = json.loads(text)
                if not isinstance(items, list) or not items:
                    raise ValueError("not a non-empty JSON array of vPDQ features")
                frames = [parse_compact(str(item), position) for position, item in enumerate(items)]
            except (ValueError, MatcherError) as exc:
                reporter.report(number, f"not a vPDQ signal: {exc}")
                continue
            yield known_video(frames, name=name, source=reporter.where(number))

    def write(self, records: Iterable[KnownRecord], stream: IO[Any]) -> int:
        """One line per video record: ``name<TAB>`` (when it has one) and the JSON array."""
        out, finish = text_writer(stream)
        count = 0
        try:
            for record in records:
                frames = video_features(record)
                if not frames:
                    continue
                array = json.dumps([compact(f) for f in frames])
                name = (record.name or "").replace("\t", " ").replace("\n", " ").replace("\r", " ")
                out.write(f"{name}\t{array}\n" if name else f"{array}\n")
                count += 1
        finally:
            finish()
        return count
