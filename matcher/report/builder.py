"""Build the review page from a JSON Lines scan report and its run manifest, in one streamed pass.

The output directory holds:

* ``index.html``, ``report.js`` and ``report.css`` (the page, its script and style; nothing else is
  ever loaded: see :data:`~matcher.report.page.CONTENT_SECURITY_POLICY`);
* ``data/summary.js``: counts (by status, list, category, series, algorithm, variant and view,
  distance histograms), the run manifest as the scan wrote it, the string tables the rows refer
  to, and the lines of the report that could not be read;
* ``data/rows-N.js``: the table, :attr:`ReportOptions.rows_per_chunk` records per file, in columns
  (path, status, frame, matches as small tuples, thumbnail); the page shows the first chunk at once
  and loads the others after its first paint;
* ``data/details-N.js``: each record as the report has it, :attr:`ReportOptions.details_per_chunk`
  per file, loaded only when a record is opened;
* ``thumbs/`` (only with :attr:`ReportOptions.thumbnails`; see :mod:`matcher.report.thumbnails`).

The directory is built beside ``out_dir`` under a temporary name and renamed into place once
complete, so a failed run leaves no half page. A line of the report that is not a scan record is
listed in the summary with its number and the reason (never dropped silently, never a crash).
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..errors import MatcherError, UsageError
from ..files import path_inside
from ..scan_records import DIGEST_ALGORITHMS, STATUSES
from ..version import __version__
from ..views import describe_match
from .page import index_html, js_call
from .thumbnails import THUMBNAIL_MODES, Thumbnailer

__all__ = ["ReportOptions", "ReportSummary", "write_html_report", "MANIFEST_SUFFIX", "MAX_BAD_LINES_LISTED"]

#: Where the scan writes its run manifest, beside the report.
MANIFEST_SUFFIX = ".manifest.json"
#: How many unreadable lines the summary lists one by one (all are counted).
MAX_BAD_LINES_LISTED = 1000
# The files of the page itself (package data), copied as they are.
_ASSETS = ("report.js", "report.css")
# A file that marks a directory as a matcher review page (what --force may replace).
_MARKER = os.path.join("data", "summary.js")


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """What to build.

    ``title``: the page's title (default: "matcher review: <report file name>").
    ``thumbnails``: ``None`` (none, the default), ``"matches"`` (files with a match) or ``"all"``
    (every image), read from the evidence read-only (:mod:`matcher.report.thumbnails`).
    ``manifest_path``: the run manifest (default: the report's path + ``.manifest.json``).
    ``base_dir``: the directory relative paths in the report and manifest are resolved from (the
    directory the scan ran in; default: the current directory). ``force``: replace an ``out_dir``
    that holds an earlier review page (anything else is never replaced).
    ``rows_per_chunk``/``details_per_chunk``: records per data file of the table / of the details.
    """

    title: str | None = None
    thumbnails: str | None = None
    manifest_path: str | None = None
    base_dir: str | None = None
    force: bool = False
    rows_per_chunk: int = 20_000
    details_per_chunk: int = 500
    thumbnail_size: int = 160

    def __post_init__(self) -> None:
        if self.thumbnails is not None and self.thumbnails not in THUMBNAIL_MODES:
            raise UsageError(f"thumbnails must be one of {THUMBNAIL_MODES} or None, not {self.thumbnails!r}")
        for name in ("rows_per_chunk", "details_per_chunk", "thumbnail_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"ReportOptions.{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """What :func:`write_html_report` wrote: the page's path and the counts it shows."""

    out_dir: str
    index_html: str
    records: int
    files: int
    matched_files: int
    records_by_status: dict[str, int]
    bad_lines: int
    manifest_found: bool
    thumbnails: int
    thumbnails_not_made: int
    elapsed_seconds: float


class _Strings:
    """A table of distinct strings, each referred to by its position."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.values: list[str] = []

    def ref(self, value: Any) -> int | None:
        if value is None:
            return None
        text = value if isinstance(value, str) else json.dumps(value)
        found = self.index.get(text)
        if found is None:
            found = self.index[text] = len(self.values)
            self.values.append(text)
        return found


class _BadLine(Exception):
    """A line of the report that is not a scan record (the message says why)."""


def _check_match(match: Any) -> None:
    if not isinstance(match, dict):
        raise _BadLine("a match is not an object")
    if not isinstance(match.get("algorithm"), str):
        raise _BadLine("a match has no algorithm")
    distance = match.get("distance")
    if isinstance(distance, bool) or not isinstance(distance, int):
        raise _BadLine("a match's distance is not a whole number")


class _Builder:
    """The one pass over the report: rows, details, tallies (and thumbnails) as records come."""

    def __init__(self, tmp: str, options: ReportOptions, thumbnailer: Thumbnailer | None) -> None:
        self.tmp = tmp
        self.options = options
        self.thumbnailer = thumbnailer
        self.algorithms, self.variants, self.views = _Strings(), _Strings(), _Strings()
        self.lists, self.series, self.explanations = _Strings(), _Strings(), _Strings()
        self.explained: dict[tuple[Any, Any], int | None] = {}
        self.records = 0
        self.files = 0
        self.records_by_status: Counter[str] = Counter()
        self.files_by_status: Counter[str] = Counter()
        self.files_by_list: Counter[str] = Counter()
        self.files_by_category: Counter[str] = Counter()
        self.files_by_series: Counter[str] = Counter()
        self.matches_by_algorithm: Counter[str] = Counter()
        self.matches_by_variant: Counter[str] = Counter()
        self.matches_by_view: Counter[str] = Counter()
        self.distances: dict[str, Counter[int]] = {}
        self.with_error = 0
        self.with_notes = 0
        self.bad_lines: list[dict[str, Any]] = []
        self.bad_line_count = 0
        self.thumbnails = 0
        self.thumbnails_not_made = 0
        self.rows: dict[str, list[Any]] = _empty_rows()
        self.details: list[str] = []
        self.row_chunks = 0
        self.detail_chunks = 0
        # the file being gathered (consecutive frame records of one path): its key, status, sets
        self.group_key: tuple[Any, Any] | None = None
        self.group_status = ""
        self.group_lists: set[str] = set()
        self.group_categories: set[str] = set()
        self.group_series: set[str] = set()

    # ---------------------------------------------------------------------------------------------
    def add_line(self, number: int, raw: bytes) -> None:
        """One line of the report: a record, a blank line (ignored), or a bad line (listed)."""
        text = raw.strip()
        if not text:
            return
        try:
            try:
                line = text.decode("utf-8")
                record = json.loads(line)
            except ValueError as exc:
                raise _BadLine(f"not JSON: {exc}") from None
            self.add_record(record, line)
        except _BadLine as exc:
            self.bad_line_count += 1
            if len(self.bad_lines) < MAX_BAD_LINES_LISTED:
                self.bad_lines.append({"line": number, "error": str(exc)})

    def add_record(self, record: Any, line: str) -> None:
        if not isinstance(record, dict):
            raise _BadLine("not a JSON object")
        status = record.get("status")
        if status not in STATUSES:
            raise _BadLine(f"status {status!r} is not one of {', '.join(STATUSES)}")
        path = record.get("path")
        if path is not None and not isinstance(path, str):
            raise _BadLine("path is not text")
        frame = record.get("frame")
        if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int)):
            raise _BadLine("frame is not a whole number")
        matches = record.get("matches") or []
        if not isinstance(matches, list):
            raise _BadLine("matches is not a list")
        for match in matches:
            _check_match(match)
        raw_hex = record.get("path_raw_hex")
        index = self.records
        self.records += 1
        self._tally(record, status, path, raw_hex, frame, matches)
        thumb: int | str = 0
        if self.thumbnailer is not None and self.thumbnailer.wanted(record):
            thumb = self.thumbnailer.make(index, record)
            if thumb == 1:
                self.thumbnails += 1
            else:
                self.thumbnails_not_made += 1
        rows = self.rows
        rows["p"].append(path if path is not None else "")
        rows["s"].append(STATUSES.index(status))
        rows["f"].append(frame)
        rows["m"].append([self._match_tuple(m) for m in matches] if matches else 0)
        rows["t"].append(thumb)
        rows["x"].append(1 if raw_hex else 0)
        if len(rows["p"]) >= self.options.rows_per_chunk:
            self._flush_rows()
        # the record as the report has it: JSON is a JavaScript expression; only the characters that
        # could end or change a script are escaped (it came from json.loads: no raw control characters)
        for unsafe, escaped in _UNSAFE_RAW:
            if unsafe in line:
                line = line.replace(unsafe, escaped)
        self.details.append(line)
        if len(self.details) >= self.options.details_per_chunk:
            self._flush_details()

    def _match_tuple(self, match: dict[str, Any]) -> list[Any]:
        variant, view = match.get("variant"), match.get("view")
        key = (variant, view)
        explanation = self.explained.get(key, -1)
        if explanation == -1:
            given = match.get("explanation")
            if not isinstance(given, str):
                given = describe_match(
                    variant if isinstance(variant, str) else None, view if isinstance(view, str) else None
                )
            explanation = self.explained[key] = self.explanations.ref(given)
        category = match.get("category")
        return [
            self.algorithms.ref(match["algorithm"]),
            match["distance"],
            self.variants.ref(variant),
            self.views.ref(view),
            self.lists.ref(match.get("list")),
            category if category is None or isinstance(category, (int, str)) else json.dumps(category),
            self.series.ref(match.get("series")),
            explanation,
        ]

    def _tally(
        self, record: dict[str, Any], status: str, path: Any, raw_hex: Any, frame: Any, matches: list[dict[str, Any]]
    ) -> None:
        self.records_by_status[status] += 1
        if record.get("error"):
            self.with_error += 1
        if record.get("notes"):
            self.with_notes += 1
        key = (path, raw_hex)
        if frame is None or key != self.group_key:
            self._close_group()
            self.group_key = key if frame is not None else None
            self.files += 1
        if not self.group_status or STATUSES.index(status) < STATUSES.index(self.group_status):
            self.group_status = status
        for match in matches:
            algorithm = match["algorithm"]
            self.matches_by_algorithm[algorithm] += 1
            variant, view = match.get("variant"), match.get("view")
            self.matches_by_variant[str(variant) if variant is not None else "(digest: identical file)"] += 1
            self.matches_by_view[str(view) if view is not None else "(the known image itself)"] += 1
            if algorithm not in DIGEST_ALGORITHMS:
                self.distances.setdefault(algorithm, Counter())[match["distance"]] += 1
            if status == "match":
                self.group_lists.add(str(match.get("list")))
                if match.get("category") is not None:
                    self.group_categories.add(str(match.get("category")))
                if match.get("series") is not None:
                    self.group_series.add(str(match.get("series")))
        if frame is None:
            self._close_group()

    def _close_group(self) -> None:
        if self.group_status:
            self.files_by_status[self.group_status] += 1
            self.files_by_list.update(self.group_lists)
            self.files_by_category.update(self.group_categories)
            self.files_by_series.update(self.group_series)
        self.group_key, self.group_status = None, ""
        self.group_lists, self.group_categories, self.group_series = set(), set(), set()

    def _flush_rows(self) -> None:
        if not self.rows["p"]:
            return
        _write_text(
            os.path.join(self.tmp, "data", f"rows-{self.row_chunks}.js"), js_call("rows", self.row_chunks, self.rows)
        )
        self.row_chunks += 1
        self.rows = _empty_rows()

    def _flush_details(self) -> None:
        if not self.details:
            return
        name = os.path.join(self.tmp, "data", f"details-{self.detail_chunks}.js")
        _write_text(name, f"matcherReport.details({self.detail_chunks},[\n" + ",\n".join(self.details) + "\n]);\n")
        self.detail_chunks += 1
        self.details = []

    def finish(self) -> None:
        self._close_group()
        self._flush_rows()
        self._flush_details()

    def summary_data(self, title: str, report_path: str, manifest: dict[str, Any] | None, problem: str | None) -> Any:
        def ranked(counter: Counter[str]) -> list[list[Any]]:
            return [[key, count] for key, count in counter.most_common()]

        return {
            "title": title,
            "generated_at": _utc_now(),
            "generator": f"matcher {__version__}",
            "report": {"path": report_path, "records": self.records, "files": self.files},
            "manifest": manifest,
            "manifest_problem": problem,
            "statuses": list(STATUSES),
            "records_by_status": {s: self.records_by_status.get(s, 0) for s in STATUSES},
            "files_by_status": {s: self.files_by_status.get(s, 0) for s in STATUSES},
            "files_by_list": ranked(self.files_by_list),
            "files_by_category": ranked(self.files_by_category),
            "files_by_series": ranked(self.files_by_series),
            "matches_by_algorithm": ranked(self.matches_by_algorithm),
            "matches_by_variant": ranked(self.matches_by_variant),
            "matches_by_view": ranked(self.matches_by_view),
            "distances": {alg: sorted(counts.items()) for alg, counts in sorted(self.distances.items())},
            "with_error": self.with_error,
            "with_notes": self.with_notes,
            "bad_lines": self.bad_lines,
            "bad_line_count": self.bad_line_count,
            "strings": {
                "algorithm": self.algorithms.values,
                "variant": self.variants.values,
                "view": self.views.values,
                "list": self.lists.values,
                "series": self.series.values,
                "explanation": self.explanations.values,
            },
            "chunks": {
                "rows": self.row_chunks,
                "rows_per_chunk": self.options.rows_per_chunk,
                "details": self.detail_chunks,
                "details_per_chunk": self.options.details_per_chunk,
            },
            "thumbnails": {
                "mode": self.options.thumbnails,
                "made": self.thumbnails,
                "not_made": self.thumbnails_not_made,
            },
        }


_UNSAFE_RAW = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def _empty_rows() -> dict[str, list[Any]]:
    return {"p": [], "s": [], "f": [], "m": [], "t": [], "x": []}


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_text(path: str, text: str) -> None:
    with open(path, "x", encoding="utf-8", newline="") as out:
        out.write(text)


def _read_lines(path: str) -> Iterator[tuple[int, bytes]]:
    try:
        stream = open(path, "rb")
    except OSError as exc:
        raise UsageError(f"scan report {path!r} cannot be read: {exc.strerror or exc}") from None
    with stream:
        yield from enumerate(stream, start=1)


def _load_manifest(path: str) -> tuple[dict[str, Any] | None, str | None]:
    """The run manifest, or ``None`` and why it is missing (never an error: the page says so)."""
    try:
        with open(path, "rb") as stream:
            data = json.loads(stream.read().decode("utf-8"))
    except FileNotFoundError:
        return None, f"no run manifest at {path!r}: the page shows only what the report itself says"
    except OSError as exc:
        return None, f"run manifest {path!r} cannot be read: {exc.strerror or exc}"
    except ValueError as exc:
        return None, f"run manifest {path!r} is not JSON: {exc}"
    if not isinstance(data, dict):
        return None, f"run manifest {path!r} is not a JSON object"
    return data, None


def evidence_roots(manifest: dict[str, Any] | None, base_dir: str) -> list[str]:
    """The evidence paths the manifest names, resolved from ``base_dir`` (empty without a manifest)."""
    if manifest is None:
        return []
    paths = manifest.get("evidence_paths")
    if not isinstance(paths, list):
        return []
    return [os.path.join(base_dir, p) for p in paths if isinstance(p, str) and p]


def _record_folders(report: str, base_dir: str) -> list[str]:
    """Without a manifest, the evidence paths are not known: the folders of the records' files stand
    for them (one pass over the report, before anything is written)."""
    folders: set[str] = set()
    for _, raw in _read_lines(report):
        try:
            path = json.loads(raw).get("path")
        except (ValueError, AttributeError):
            continue
        if isinstance(path, str) and path:
            folders.add(os.path.dirname(path) or os.curdir)
    return [os.path.join(base_dir, folder) for folder in sorted(folders)]


def _check_out_dir(out_dir: str, force: bool) -> None:
    """Refuse an existing ``out_dir`` without ``force``; with it, replace only an earlier review page
    or an empty directory, never anything else."""
    if not os.path.lexists(out_dir):
        return
    if not force:
        raise UsageError(f"output {out_dir!r} exists; matcher does not replace it: use --force to replace it")
    if os.path.islink(out_dir) or not os.path.isdir(out_dir):
        raise UsageError(f"output {out_dir!r} exists and is not a directory; matcher does not replace it")
    if os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, _MARKER)):
        raise UsageError(
            f"output {out_dir!r} exists and is not a matcher review page; matcher does not replace it, "
            "even with --force: name a new directory"
        )


def write_html_report(
    report_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], options: ReportOptions = ReportOptions()
) -> ReportSummary:
    """Build the review page of the JSON Lines scan report at ``report_path`` into ``out_dir``.

    Raises :class:`~matcher.errors.UsageError`, before anything is written, when the report cannot
    be read, when ``out_dir`` lies inside an evidence path of the run manifest (nothing is ever
    written there), when it exists (unless ``options.force`` and it is an earlier review page or
    empty), and when thumbnails are asked for without a run manifest (it names the evidence paths
    the files are read below). Lines of the report that are not records are listed on the page.
    """
    clock = time.perf_counter()
    report = os.fspath(report_path)
    out = os.fspath(out_dir).rstrip(os.sep) or os.sep
    if not os.path.isfile(report):
        raise UsageError(f"scan report {report!r} does not exist or is not a file")
    base_dir = options.base_dir if options.base_dir is not None else os.getcwd()
    manifest_path = options.manifest_path or report + MANIFEST_SUFFIX
    manifest, problem = _load_manifest(manifest_path)
    if options.manifest_path is not None and manifest is None:
        raise UsageError(problem or f"run manifest {manifest_path!r} cannot be read")
    roots = evidence_roots(manifest, base_dir)
    root = path_inside(out, roots if manifest is not None else _record_folders(report, base_dir))
    if root is not None:
        raise UsageError(f"output {out!r} is inside the evidence path {root!r}; matcher never writes there")
    if options.thumbnails is not None and manifest is None:
        raise UsageError(
            f"--thumbnails needs the scan's run manifest (it names the evidence paths files are read "
            f"below): {problem}; give it with --manifest FILE"
        )
    _check_out_dir(out, options.force)
    title = options.title or f"matcher review: {os.path.basename(report)}"
    parent = os.path.dirname(os.path.abspath(out))
    tmp = os.path.join(parent, f".matcher-report-{secrets.token_hex(8)}")
    try:
        os.mkdir(tmp)  # (the umask applies, as to any directory the user makes)
    except OSError as exc:
        raise MatcherError(f"cannot write output {out!r}: {exc.strerror or exc}") from None
    try:
        os.mkdir(os.path.join(tmp, "data"))
        thumbnailer = None
        if options.thumbnails is not None and manifest is not None:
            os.mkdir(os.path.join(tmp, "thumbs"))
            thumbnailer = Thumbnailer(os.path.join(tmp, "thumbs"), roots, base_dir, manifest, options)
        builder = _Builder(tmp, options, thumbnailer)
        for number, raw in _read_lines(report):
            builder.add_line(number, raw)
        builder.finish()
        if builder.records == 0 and builder.bad_line_count > 0:
            raise UsageError(f"{report!r} is not a matcher JSON Lines scan report: no line of it is a scan record")
        summary = builder.summary_data(title, report, manifest, problem)
        _write_text(os.path.join(tmp, "data", "summary.js"), js_call("summary", summary))
        _write_text(os.path.join(tmp, "index.html"), index_html(title))
        assets = resources.files(__package__).joinpath("assets")
        for name in _ASSETS:
            with open(os.path.join(tmp, name), "xb") as target:
                target.write(assets.joinpath(name).read_bytes())
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ReportSummary(
        out_dir=out,
        index_html=os.path.join(out, "index.html"),
        records=builder.records,
        files=builder.files,
        matched_files=builder.files_by_status.get("match", 0),
        records_by_status=dict(summary["records_by_status"]),
        bad_lines=builder.bad_line_count,
        manifest_found=manifest is not None,
        thumbnails=builder.thumbnails,
        thumbnails_not_made=builder.thumbnails_not_made,
        elapsed_seconds=time.perf_counter() - clock,
    )


def _move_into_place(tmp: str, out: str) -> None:
    """Rename the finished page to ``out``; an earlier page there (checked before) is replaced."""
    old = None
    if os.path.lexists(out):
        old = tempfile.mkdtemp(prefix=".matcher-report-old-", dir=os.path.dirname(os.path.abspath(out)))
        os.rename(out, os.path.join(old, "page"))
    try:
        os.rename(tmp, out)
    except OSError:
        if old is not None:
            os.rename(os.path.join(old, "page"), out)
            os.rmdir(old)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
