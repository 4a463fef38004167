"""Compare a known image (or hash) with an evidence file (or hash), and explain what a scan decides.

``compare(known, evidence)`` answers the examiner's question "would ``matcher scan`` match this file
against this known image, and why (not)?" by running the scan itself, not a copy of its rules:

1. **The known side as an index stores it.** ``known`` is hashed as ``matcher index add`` hashes an
   image (:func:`matcher.pipeline.read_entry` with the known-side views, every frame a record,
   :func:`matcher.index.importing.known_from_hash_record`) and added to a temporary
   :class:`~matcher.index.KnownIndex` (in a temporary directory, removed afterwards; nothing is
   written anywhere else). A known *hash* is a record with that hash only: like a hash list, it has
   no views (no trimmed borders, crops, caption regions or small rotations), and the result says so.
2. **The evidence side as a scan reads it.** The evidence file is read by the scan's
   :class:`~matcher.scan.Scanner` (its query views: rotations and flips, trimmed borders, the top
   and bottom 88 %, as the options ask) and matched by the scan's
   :class:`~matcher.scan.matching.Matcher` against that index, under the same configuration a scan
   resolves (:func:`matcher.scan.options.resolve_config`); like the scan's scanner, it sets FAISS to
   one thread in this process. The scan's records of the evidence are
   :attr:`Comparison.records`; :attr:`Comparison.match` is the scan's decision. An evidence *hash*
   is searched as it is (no views: a hash has no pixels).
3. **The explanation.** Every pair the scan can compare (each evidence query view against each known
   view it is searched against, :func:`matcher.views.known_views_for`) with its distance, as
   :class:`Pair`: for each algorithm, evidence frame, query view and known record the nearest known
   view, and whether the scan searches that pair at all (the quality gates of both sides,
   :func:`matcher.scan.matching.passes_gate`). :attr:`Comparison.reason` says in words why it
   matched (the pair the scan chose, or equal digests) or not (the nearest pair and the threshold,
   or a quality gate).

4. **Local features.** With ``local`` (the default) the known image also keeps its local features
   as ``matcher index add`` stores them, and the scan's local stage runs for evidence frames no hash
   matched: :attr:`Comparison.local_match` is the scan's local-feature match (the known image found
   inside the evidence: inliers, transform, region), and the reason says so.

Variant names (the evidence's query view) are the scan's: ``orig``, ``rot90``/``rot180``/``rot270``
(the evidence rotated that far counter-clockwise), ``flipx`` (upside-down), ``flipy`` (mirrored),
``flipp``/``flipm`` (transposed), ``trim`` and ``trim+<variant>`` (inside uniform borders),
``top88``/``bottom88``; known views are :data:`matcher.views.KNOWN_VIEWS` (``None``: the known
image's own hash).

Inputs are image paths, Pillow images or :class:`~matcher.hashes.Hash` values. A file that cannot be
used raises, naming it: :class:`~matcher.errors.FileReadError` (cannot be read),
:class:`~matcher.errors.NotAFileError` (a directory, FIFO, ...),
:class:`~matcher.errors.UnsupportedFormatError` (empty, or not an image: compare compares images)
and :class:`~matcher.errors.DecodeError` (cannot be decoded).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Union

from PIL import Image

from . import files, local_features
from .algorithms import registry
from .errors import DecodeError, FileReadError, MatcherError, NotAFileError, UnsupportedFormatError, UsageError
from .hashes import Hash
from .hashing import HashOptions, records_of
from .index.importing import known_from_hash_record
from .index.store import KnownIndex
from .index.types import IndexedRecord
from .known import KnownRecord
from .pipeline import (
    DEFAULT_ALGORITHMS,
    EntryFeatures,
    FeatureRequest,
    FrameFeatures,
    decode,
    read_entry,
)
from .scan.matching import is_view_match, passes_gate, view_radius
from .scan.options import ScanOptions, resolve_config
from .scan.scanner import HashedEntry, Scanner
from .scan.video_matching import VIDEO_ALGORITHM
from .scan_records import DIGEST_ALGORITHMS, ScanMatch, ScanRecord
from .video_hash import VideoThresholds
from .views import KNOWN_VIEWS, LOCAL_VARIANT, known_views_for

__all__ = ["CompareInput", "Comparison", "Pair", "Side", "SideFrame", "compare", "format_table"]

#: What :func:`compare` accepts on each side: an image path, a Pillow image, or a :class:`Hash`.
CompareInput = Union[str, "os.PathLike[str]", Image.Image, Hash]

#: The list name of the known record(s) in the temporary index.
_KNOWN_LIST = "known"


@dataclass(frozen=True, slots=True)
class Pair:
    """One evidence query view against one known record's view: what a scan compares.

    ``variant`` is the evidence's query view (``orig``, ``rot90``, ``trim+flipy``, ``top88``, ...),
    ``view`` the known record's view (``None``: its own hash), ``evidence_frame``/``known_frame`` the
    frames (``None`` for a still image or a hash), ``known_record`` the record id in the temporary
    index. ``searched``: whether a scan searches this pair at all; when not, ``note`` says why (a
    quality gate). ``within``: searched and ``distance <= max_distance``.
    """

    algorithm: str
    variant: str
    view: str | None
    distance: int
    max_distance: int
    evidence_frame: int | None = None
    known_record: int = 1
    known_frame: int | None = None
    searched: bool = True
    note: str | None = None

    @property
    def within(self) -> bool:
        """Searched and within the maximum distance."""
        return self.searched and self.distance <= self.max_distance

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the fields (and ``within``) as keys."""
        return {
            "algorithm": self.algorithm,
            "distance": self.distance,
            "max_distance": self.max_distance,
            "within": self.within,
            "variant": self.variant,
            "view": self.view,
            "evidence_frame": self.evidence_frame,
            "known_record": self.known_record,
            "known_frame": self.known_frame,
            "searched": self.searched,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class SideFrame:
    """One frame of a side: the known side's index record (``record`` its id), or an evidence frame.

    ``hashes``: each algorithm's own hash (with its quality); ``views``: per algorithm, the view names
    hashed (known side: the views the index stores; evidence side: the query views searched).
    """

    frame: int | None
    hashes: Mapping[str, Hash]
    views: Mapping[str, tuple[str, ...]]
    record: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``frame``, ``record`` (known side), ``hashes`` (hex), ``quality`` and ``views``."""
        out: dict[str, Any] = {"frame": self.frame}
        if self.record is not None:
            out["record"] = self.record
        out["hashes"] = {name: str(value) for name, value in self.hashes.items()}
        out["quality"] = {name: value.quality for name, value in self.hashes.items()}
        out["views"] = {name: list(views) for name, views in self.views.items()}
        return out


@dataclass(frozen=True, slots=True)
class Side:
    """What one side is: ``name`` (the path as text, ``"image"`` or the hash), ``kind`` (``"image"`` or
    ``"hash"``), its frames and notes (e.g. that a hash has no views)."""

    name: str
    kind: str
    frames: tuple[SideFrame, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields."""
        return {
            "input": self.name,
            "kind": self.kind,
            "frames": [frame.to_dict() for frame in self.frames],
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """What :func:`compare` found: the scan's decision (``match``), why (``reason``), and the detail.

    ``records``: the scan's records of the evidence (one per frame, record ids those of the temporary
    index, list ``"known"``); ``pairs``: every pair compared (see :class:`Pair`), ordered by algorithm,
    evidence frame, known record and distance; ``notes``: the scan records' notes and the known side's
    gate notes.
    """

    match: bool
    reason: str
    known: Side
    evidence: Side
    algorithms: tuple[str, ...]
    max_distances: Mapping[str, int]
    rotations: bool
    trim_borders: bool
    regions: bool
    records: tuple[ScanRecord, ...]
    pairs: tuple[Pair, ...]
    notes: tuple[str, ...] = field(default=())
    local: bool = False
    insets: bool = True

    @property
    def local_match(self) -> tuple[ScanRecord, ScanMatch] | None:
        """The scan's local-feature match (variant ``local``) and the evidence record holding it, most
        inliers first; ``None`` when the known image was not found inside the evidence that way."""
        found = [(r, m) for r in self.records for m in r.matches if m.variant == LOCAL_VARIANT]
        return max(found, key=lambda item: item[1].inliers or 0, default=None)

    def best(self) -> dict[str, Pair]:
        """Per algorithm, the pair that decides: the one the scan matched on when it matched with that
        algorithm, else the nearest pair (searched pairs before those a quality gate keeps out)."""
        out: dict[str, Pair] = {}
        for record in self.records:
            for m in record.matches:
                if m.algorithm in self.algorithms and m.algorithm not in out:
                    out[m.algorithm] = self._pair_of(record, m)
        for pair in sorted(self.pairs, key=lambda p: (not p.searched, p.distance)):
            out.setdefault(pair.algorithm, pair)
        return {name: out[name] for name in self.algorithms if name in out}

    def digests_equal(self) -> tuple[str, ...]:
        """The digests the scan found equal (``sha256``, ``sha1``, ``md5``): the files are identical."""
        return tuple(
            dict.fromkeys(m.algorithm for r in self.records for m in r.matches if m.algorithm in DIGEST_ALGORITHMS)
        )

    def _pair_of(self, record: ScanRecord, m: ScanMatch) -> Pair:
        known_frame = next((f.frame for f in self.known.frames if f.record == m.record), None)
        return Pair(
            m.algorithm,
            m.variant or "orig",
            m.view,
            m.distance,
            _limit(m.algorithm, self.max_distances[m.algorithm], m.variant, m.view),
            record.frame,
            m.record,
            known_frame,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON document ``matcher compare --json`` prints (keys documented in the README)."""
        return {
            "match": self.match,
            "reason": self.reason,
            "digests_equal": list(self.digests_equal()),
            "best": {name: pair.to_dict() for name, pair in self.best().items()},
            "known": self.known.to_dict(),
            "evidence": self.evidence.to_dict(),
            "settings": {
                "algorithms": list(self.algorithms),
                "max_distances": dict(self.max_distances),
                "rotations": self.rotations,
                "trim_borders": self.trim_borders,
                "regions": self.regions,
                "insets": self.insets,
                "local": self.local,
            },
            "local": None if self.local_match is None else self.local_match[1].to_dict(),
            "notes": list(self.notes),
            "scan": [record.to_dict(list(self.algorithms)) for record in self.records],
            "pairs": [pair.to_dict() for pair in self.pairs],
        }


# --------------------------------------------------------------------------------------------------
# Inputs


def _check_input(value: Any, label: str) -> None:
    if isinstance(value, (Hash, Image.Image, str, os.PathLike)):
        return
    raise UsageError(
        f"compare: {label} must be an image path, a PIL image or a Hash, not {type(value).__name__}"
        + (" (parse hex text with Hash.from_hex)" if isinstance(value, (bytes, bytearray)) else "")
    )


def _name_of(value: Any, label: str) -> str:
    if isinstance(value, Hash):
        return f"{value.algorithm}:{value}"
    if isinstance(value, (str, os.PathLike)):
        return files.display_path(os.fsencode(value))[0]
    return f"image {label}"


def _named(name: str, message: str) -> str:
    return message if message.startswith(name) else f"{name}: {message}"


def _refuse(entry: EntryFeatures, name: str) -> None:
    """Raise when a read entry cannot be compared (the module notes); an entry with frames passes."""
    if entry.skipped:
        raise NotAFileError(_named(name, entry.note or "not a regular file"))
    if not entry.read and entry.path is not None:
        raise FileReadError(_named(name, entry.error or "could not be read"))
    if entry.frames:
        return
    if entry.error == "empty file (0 bytes)":
        raise UnsupportedFormatError(f"{name}: empty file (0 bytes): not an image")
    if entry.note is not None:
        raise UnsupportedFormatError(f"{name}: {entry.note.split(';')[0]}: compare compares images")
    raise DecodeError(_named(name, entry.error or "no frame could be decoded"))


def _entry_of(
    value: str | os.PathLike[str] | Image.Image, name: str, request: FeatureRequest, options: HashOptions
) -> EntryFeatures:
    """``value`` read once by the pipeline as ``request`` asks, refused (raising) when it cannot be compared."""
    if isinstance(value, Image.Image):
        entry = EntryFeatures(None, name, None).with_decoded(decode(value, request, options))
    else:
        if os.path.isdir(value):
            raise NotAFileError(f"{name}: is a directory, not an image file")
        entry = read_entry(next(iter(files.walk([value]))), request, options)
    _refuse(entry, name)
    return entry


def _frame_notes(entry: EntryFeatures, name: str) -> tuple[str, ...]:
    if entry.error is None:
        return ()
    return (f"{name}: frame {entry.failed_frame}: {entry.error} (the frames before it are compared)",)


# --------------------------------------------------------------------------------------------------
# The known side: a temporary index holding it as `matcher index add` stores it


def _known_records(
    value: CompareInput, name: str, algorithms: tuple[str, ...], options: HashOptions, local: bool = False
) -> tuple[list[KnownRecord], str, tuple[str, ...]]:
    """The known records of ``value`` (kind, notes)."""
    if isinstance(value, Hash):
        note = "the known side is a hash: it has no views (trimmed borders, crops, caption regions, small rotations)"
        return [KnownRecord(hashes={value.algorithm: value})], "hash", (note,)
    # what `matcher index add` asks of an image
    request = FeatureRequest(algorithms, known_views=True, local=local_features.KNOWN_PARAMS if local else None)
    entry = _entry_of(value, name, request, options)
    hashed = [r for r in records_of(entry) if r.hashes]
    kind = "video" if entry.media is not None and entry.media.is_video else "image"
    return [known_from_hash_record(r) for r in hashed], kind, _frame_notes(entry, name)


def _known_side(index: KnownIndex, name: str, kind: str, notes: tuple[str, ...]) -> tuple[Side, list[IndexedRecord]]:
    stored = list(index.iter_records())
    views = index.record_views([r.id for r in stored])
    frames = tuple(
        SideFrame(
            r.extra.get("frame"),
            {a: h for a, h in r.hashes.items() if a in index.algorithms},
            {a: tuple(v for v in KNOWN_VIEWS if v in views.get(r.id, {}).get(a, {})) for a in index.algorithms},
            r.id,
        )
        for r in stored
    )
    return Side(name, kind, frames, notes), stored


def _gate_notes(side: Side, what: str) -> list[str]:
    """Why a side's own hashes are kept out of a scan's searches (their quality), one note each."""
    out = []
    for frame in side.frames:
        for name, value in frame.hashes.items():
            algorithm = registry.get(name)
            if passes_gate(algorithm, value):
                continue
            where = what
            if len(side.frames) > 1:
                where += f" (record {frame.record})" if what == "known" else f" (frame {frame.frame})"
            consequence = (
                "an index never returns it, nor its views"
                if what == "known"
                else "a scan does not search it (only views of sufficient quality of their own)"
            )
            out.append(f"{where}: {name} quality {value.quality} below {algorithm.min_quality}: {consequence}")
    return out


# --------------------------------------------------------------------------------------------------
# The evidence side: the scan's own scanner and matcher


def _hash_entry(value: Hash, name: str) -> HashedEntry:
    frame = FrameFeatures(None, 0, 0, {value.algorithm: value}, {value.algorithm: {"orig": value}})
    entry = EntryFeatures(None, name, None, frames=(frame,))
    return HashedEntry(b"", ScanRecord(path=name, status="no_match"), entry)


def _evidence_entry(value: CompareInput, name: str, scanner: Scanner) -> tuple[HashedEntry, tuple[str, ...]]:
    if isinstance(value, Hash):
        note = "the evidence is a hash: no rotations, trimmed borders or regions (a hash has no pixels)"
        return _hash_entry(value, name), (note,)
    options = scanner.config.hash_options
    if isinstance(value, Image.Image):
        entry = _entry_of(value, name, scanner.request, options)
        return HashedEntry(b"", ScanRecord(status="no_match", **entry.file_facts()), entry), _frame_notes(entry, name)
    if os.path.isdir(value):
        raise NotAFileError(f"{name}: is a directory, not an image file")
    hashed = scanner.hash_entry(next(iter(files.walk([value]))))  # read exactly as a scan reads it
    if not isinstance(hashed, HashedEntry):
        record = hashed.records[0]
        if record.status == "skipped":
            raise NotAFileError(_named(name, record.notes[0] if record.notes else "not a regular file"))
        raise FileReadError(_named(name, record.error or "could not be read"))
    _refuse(hashed.entry, name)
    return hashed, _frame_notes(hashed.entry, name)


def _evidence_side(name: str, kind: str, entry: EntryFeatures, notes: tuple[str, ...]) -> Side:
    frames = tuple(
        SideFrame(f.index, dict(f.hashes), {a: tuple(v) for a, v in f.variants.items()}) for f in entry.frames
    )
    return Side(name, kind, frames, notes)


# --------------------------------------------------------------------------------------------------
# Pairs and reasons


def _pairs(
    known: list[IndexedRecord],
    known_views: Mapping[int, Mapping[str, Mapping[str, Hash]]],
    evidence: EntryFeatures,
    algorithms: tuple[str, ...],
    max_distances: Mapping[str, int],
    frame_of: Mapping[int, int | None],
) -> list[Pair]:
    """For each algorithm, evidence frame, query view and known record: the nearest known view it meets."""
    out: list[Pair] = []
    for name in algorithms:
        algorithm = registry.get(name)
        limit = max_distances[name]
        for frame in evidence.frames:
            for record in known:
                main = record.hashes.get(name)
                stored: dict[str | None, Hash] = {None: main} if main is not None else {}
                stored.update(known_views.get(record.id, {}).get(name, {}))
                rows = []
                for variant, query in frame.variants.get(name, {}).items():
                    candidates = []
                    for target in known_views_for(variant):
                        value = stored.get(target)
                        if value is None:
                            continue
                        note = None
                        if not passes_gate(algorithm, query):
                            note = f"evidence {variant} {name} quality {query.quality} below {algorithm.min_quality}"
                        elif not passes_gate(algorithm, value):
                            what = "image" if target is None else target
                            note = f"known {what} {name} quality {value.quality} below {algorithm.min_quality}"
                        pair = Pair(
                            name,
                            variant,
                            target,
                            query.distance(value),
                            _limit(name, limit, variant, target),
                            frame.index,
                            record.id,
                            frame_of.get(record.id),
                            note is None,
                            note,
                        )
                        candidates.append(pair)
                    if candidates:  # the nearest searched pair; else the nearest at all (stable: plainest first)
                        rows.append(min(candidates, key=lambda p: (not p.searched, p.distance)))
                rows.sort(key=lambda p: p.distance)
                out.extend(rows)
    return out


def _limit(algorithm: str, limit: int, variant: str | None, view: str | None) -> int:
    """The largest distance the scan matches for this pair: ``limit``, or through a view the
    algorithm's tighter bound (:func:`matcher.scan.matching.view_radius`)."""
    if algorithm in DIGEST_ALGORITHMS or algorithm not in registry or not is_view_match(variant, view):
        return limit
    return view_radius(registry.get(algorithm), limit)


def _where(pair: Pair, frames: bool) -> str:
    evidence = (
        pair.variant if pair.evidence_frame is None or not frames else f"{pair.variant} (frame {pair.evidence_frame})"
    )
    known = "own hash" if pair.view is None else f"{pair.view} view"
    if pair.known_frame is not None and frames:
        known += f" (frame {pair.known_frame})"
    return f"evidence {evidence} against the known image's {known}"


def _reason(comparison: Comparison) -> str:
    """The decision in words: the pair the scan matched on (or equal digests), else per algorithm the
    nearest pair and the threshold, or the quality gate that kept the sides apart."""
    digests = comparison.digests_equal()
    if digests:
        return f"match: the files are identical ({', '.join(digests)} equal)"
    for record in comparison.records:  # a video matched as a known video (vPDQ)
        for m in record.matches:
            if m.algorithm == VIDEO_ALGORITHM and m.video is not None:
                return (
                    f"match: vPDQ: {m.video['query_percent']:g}% of the evidence video's sampled frames and "
                    f"{m.video['compared_percent']:g}% of the known video's match (nearest frame distance {m.distance})"
                )
    local = comparison.local_match
    if local is not None and not any(pair.within for pair in comparison.best().values()):
        record, found = local
        frame = "" if record.frame is None else f" (frame {record.frame})"
        return f"match: local features: {found.explanation}{frame}, transform {_matrix_text(found.transform)}"
    several = len(comparison.known.frames) > 1 or len(comparison.evidence.frames) > 1
    best = comparison.best()
    parts = []
    for name in comparison.algorithms:
        pair = best.get(name)
        if pair is None:
            parts.append(f"{name}: nothing to compare")
        elif pair.within:
            parts.append(f"{name} distance {pair.distance} <= {pair.max_distance}: {_where(pair, several)}")
        elif comparison.match:
            continue  # another algorithm matched
        elif pair.searched:
            parts.append(f"{name}: nearest distance {pair.distance} > {pair.max_distance}: {_where(pair, several)}")
        else:
            gates = [
                note
                for note in (*_gate_notes(comparison.evidence, "evidence"), *_gate_notes(comparison.known, "known"))
                if f": {name} quality" in note
            ]
            parts.append(
                f"{name}: quality gate: {'; '.join(gates) or pair.note} "
                f"(nearest distance {pair.distance}, not counted: {_where(pair, several)})"
            )
    if comparison.local and not comparison.match:
        parts.append("local features: the known image was not found inside the evidence")
    return ("match: " if comparison.match else "no match: ") + "; ".join(parts)


def _matrix_text(transform: Sequence[float] | None) -> str:
    """A 3 x 3 transform (row-major) as ``[[a, b, c], [d, e, f], [g, h, i]]`` with 3 decimals."""
    if transform is None:
        return "unknown"
    rows = [", ".join(f"{v:.3f}" for v in transform[i : i + 3]) for i in range(0, 9, 3)]
    return "[" + ", ".join(f"[{row}]" for row in rows) + "]"


# --------------------------------------------------------------------------------------------------
# The entry point


def _check_max_distances(max_distances: Mapping[str, int] | None) -> None:
    if max_distances is None:
        return
    if not isinstance(max_distances, Mapping):
        raise UsageError(f"max_distances must be a dict of algorithm name to int, not {type(max_distances).__name__}")
    for name, value in max_distances.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"max distance for {name!r} must be a non-negative integer, not {value!r}")


def _algorithms(known: CompareInput, evidence: CompareInput, algorithms: str | Sequence[str] | None) -> tuple[str, ...]:
    chosen = None if algorithms is None else tuple(a.name for a in registry.resolve(algorithms))
    hashes = [(label, v) for label, v in (("known", known), ("evidence", evidence)) if isinstance(v, Hash)]
    for label, value in hashes:
        if chosen is not None and value.algorithm not in chosen:
            raise UsageError(
                f"compare: the {label} is a {value.algorithm} hash, but the algorithms compared are {', '.join(chosen)}"
            )
    if len(hashes) == 2 and hashes[0][1].algorithm != hashes[1][1].algorithm:
        raise UsageError(
            f"compare: cannot compare a {hashes[0][1].algorithm} hash with a {hashes[1][1].algorithm} hash"
        )
    if hashes:
        return (hashes[0][1].algorithm,)
    return chosen if chosen is not None else DEFAULT_ALGORITHMS


def compare(
    known: CompareInput,
    evidence: CompareInput,
    algorithms: str | Sequence[str] | None = None,
    *,
    rotations: bool = True,
    trim_borders: bool = True,
    regions: bool = True,
    max_distances: Mapping[str, int] | None = None,
    options: HashOptions | None = None,
    video: VideoThresholds | None = None,
    local: bool | None = None,
    insets: bool = True,
) -> Comparison:
    """What ``matcher scan`` decides for ``evidence`` against an index holding ``known``, and why (see
    the module notes).

    ``algorithms``: names or a comma-separated string; ``None`` means ``pdq`` for two images and the
    hash's algorithm when a hash is given (only that algorithm is compared then). ``rotations``,
    ``trim_borders``, ``regions``, ``insets`` and ``max_distances`` are the scan's options of those names;
    ``options`` its decoding options (the evidence is decoded with them; the known image as
    ``matcher index add`` decodes it, with the default options, but for the sampling rate of
    videos, which both sides share). ``video``: when a video matches a known video (vPDQ's
    thresholds by default); two videos match as a scan matches them, by their sampled frames.
    ``local``: the scan's local-feature stage (the known image found inside the evidence: a
    crop, a screenshot, a collage tile; images only, a hash has no keypoints); ``None``: on
    when OpenCV is installed.

    Raises :class:`~matcher.errors.UsageError` for bad arguments (an input of another type, a hash of
    an algorithm not compared, two hashes of different algorithms),
    :class:`~matcher.errors.UnknownAlgorithmError` for an unknown name, and the read and decode
    errors of the module notes for a file that cannot be compared.
    """
    _check_input(known, "known")
    _check_input(evidence, "evidence")
    _check_max_distances(max_distances)
    for label, flag in (
        ("rotations", rotations),
        ("trim_borders", trim_borders),
        ("regions", regions),
        ("insets", insets),
        ("local", True if local is None else local),
    ):
        if not isinstance(flag, bool):
            raise UsageError(f"{label} must be a bool, not {flag!r}")
    options = options or HashOptions()
    if not isinstance(options, HashOptions):
        raise UsageError(f"options must be HashOptions, not {type(options).__name__}")
    chosen = _algorithms(known, evidence, algorithms)
    known_name, evidence_name = _name_of(known, "known"), _name_of(evidence, "evidence")
    if local is None:
        local = local_features.available()
    local = local and not isinstance(known, Hash) and not isinstance(evidence, Hash)
    records, known_kind, known_notes = _known_records(
        known, known_name, chosen, HashOptions(video=options.video), local
    )
    scan_options = ScanOptions(
        algorithms=chosen,
        max_distances=dict(max_distances or {}),
        rotations=rotations,
        trim_borders=trim_borders,
        regions=regions,
        insets=insets,
        hash_options=options,
        video=video or VideoThresholds(),
        local=local,
    )
    import faiss

    faiss.omp_set_num_threads(1)  # as a scan's scanner does (open_scanner): a tiny index, threads only cost
    with tempfile.TemporaryDirectory(prefix="matcher-compare-") as folder:
        index_path = os.path.join(folder, "index")
        index = KnownIndex.create(index_path, chosen)
        try:
            index.add(records, _KNOWN_LIST)
            config = resolve_config(index, index_path, scan_options)
            scanner = Scanner(index, config)
            hashed, evidence_notes = _evidence_entry(evidence, evidence_name, scanner)
            result = scanner.finish(hashed, index)
            known_side, stored = _known_side(index, known_name, known_kind, known_notes)
            stored_views = index.record_views([r.id for r in stored])
        finally:
            index.close()
    if hashed.entry.frames and not any(r.hashes for r in result.records):  # the matcher failed on it
        raise MatcherError(f"compare: {evidence_name}: {result.records[0].error}")
    media = hashed.entry.media
    evidence_kind = (
        "hash" if isinstance(evidence, Hash) else ("video" if media is not None and media.is_video else "image")
    )
    evidence_side = _evidence_side(evidence_name, evidence_kind, hashed.entry, evidence_notes)
    frame_of = {frame.record: frame.frame for frame in known_side.frames if frame.record is not None}
    pairs = _pairs(stored, stored_views, hashed.entry, chosen, config.max_distances, frame_of)
    notes = tuple(dict.fromkeys((*(n for r in result.records for n in r.notes), *_gate_notes(known_side, "known"))))
    matched = any(r.status == "match" for r in result.records)
    comparison = Comparison(
        match=matched,
        reason="",
        known=known_side,
        evidence=evidence_side,
        algorithms=chosen,
        max_distances=dict(config.max_distances),
        rotations=rotations,
        trim_borders=trim_borders,
        regions=regions,
        insets=insets,
        records=result.records,
        pairs=tuple(pairs),
        notes=notes,
        local=local,
    )
    return replace(comparison, reason=_reason(comparison))


# --------------------------------------------------------------------------------------------------
# Output


def _side_lines(side: Side, label: str) -> list[str]:
    """A side in a few lines: what it is, then per frame (record) and algorithm its hash, quality and views."""
    count = len(side.frames)
    unit = ("record" if label == "known" else "frame") + ("" if count == 1 else "s")
    lines = [f"{label:<10}{side.name} ({side.kind}, {count} {unit})"]
    for frame in side.frames:
        where = ""
        if count > 1 or frame.frame is not None:
            where = f"record {frame.record}, " if frame.record is not None and count > 1 else ""
            where += f"frame {frame.frame}, " if frame.frame is not None else ""
        for name, value in frame.hashes.items():
            quality = "" if value.quality is None else f", quality {value.quality}"
            views = frame.views.get(name, ())
            kind = "views" if label == "known" else "query views"
            lines.append(f"{'':<10}{where}{name} {value}{quality}")
            lines.append(f"{'':<10}  {kind}: {', '.join(views) if views else 'none'}")
    return lines


def format_table(comparison: Comparison) -> str:
    """The text ``matcher compare`` prints: the decision and its reason, both sides, the notes, then
    one line per pair (no trailing newline)."""
    lines = [
        f"decision  {'MATCH' if comparison.match else 'no match'}",
        f"reason    {comparison.reason}",
        *_side_lines(comparison.known, "known"),
        *_side_lines(comparison.evidence, "evidence"),
        "settings  "
        + ", ".join(f"{name} max distance {limit}" for name, limit in comparison.max_distances.items())
        + "; "
        + ", ".join(
            f"{label} {'on' if flag else 'off'}"
            for label, flag in (
                ("rotations", comparison.rotations),
                ("trim borders", comparison.trim_borders),
                ("regions", comparison.regions),
                ("insets", comparison.insets),
                ("local features", comparison.local),
            )
        ),
    ]
    if comparison.local_match is not None:
        record, found = comparison.local_match
        frame = "" if record.frame is None else f"frame {record.frame}: "
        lines.append(f"local     {frame}{found.explanation}; transform {_matrix_text(found.transform)}")
    for note in (*comparison.known.notes, *comparison.evidence.notes, *comparison.notes):
        lines.append(f"note      {note}")
    header = ("algorithm", "frame", "variant", "record", "view", "distance", "max", "within", "note")
    rows = [
        (
            p.algorithm,
            "-" if p.evidence_frame is None else str(p.evidence_frame),
            p.variant,
            str(p.known_record) if p.known_frame is None else f"{p.known_record} (frame {p.known_frame})",
            "(own hash)" if p.view is None else p.view,
            str(p.distance),
            str(p.max_distance),
            "yes" if p.within else "no",
            p.note or "",
        )
        for p in comparison.pairs
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines.append("")
    for row in [header, *rows]:
        cells = [row[i].rjust(widths[i]) if i in (5, 6) else row[i].ljust(widths[i]) for i in range(len(widths))]
        lines.append(("  ".join(cells) + "  " + row[-1]).rstrip())
    return "\n".join(lines)
