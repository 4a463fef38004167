"""Importing sources into a :class:`~matcher.index.KnownIndex`: hash lists, image files, folders.

A source is a path. A directory is walked and its images hashed with every algorithm the index
holds, with their known-side view hashes (:mod:`matcher.views`: border-trimmed content, top and
bottom 88 %, crops, small rotations) so that scans find edited copies; a file whose magic bytes say
image is hashed the same way; any other file is read as a hash
list (format detected from its content unless named). Problems (a malformed line, an image that
cannot be decoded) are reported with file and line and skipped, or, with ``strict``, refuse the whole
import, which then leaves the index exactly as it was.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .. import imaging, local_features
from ..errors import HashListError
from ..files import display_path
from ..formats.registry import read_records
from ..hashing import HashOptions, HashProgress, HashRecord, hash_paths
from ..known import EMPTY_CONTENT_DIGESTS, ImportProblem, KnownRecord
from ..video_hash import known_video
from .store import KnownIndex

__all__ = ["ImportSummary", "import_sources", "known_from_hash_record"]

ProblemHandler = Callable[[ImportProblem], None]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import did: records added, duplicates kept once, empty records and problems skipped.

    ``empty_digests``: digests of zero-length content left out (one per digest; see
    :data:`~matcher.known.EMPTY_CONTENT_DIGESTS`). ``lists``: the lists records went to.
    """

    added: int
    duplicates: int
    empty: int
    problems: int
    empty_digests: int = 0
    lists: tuple[str, ...] = ()


def _without_empty_digests(
    records: Iterable[KnownRecord], warn: ProblemHandler, list_of: Callable[[KnownRecord], str], lists: dict[str, None]
) -> Iterator[KnownRecord]:
    """The records with their digests of zero-length content taken out, each one reported to ``warn``;
    the list of each record left with something to match on is added to ``lists``."""
    for record in records:
        kinds = record.empty_content_digests()
        if kinds:
            where = record.source or record.name or "?"
            for kind in kinds:
                warn(
                    ImportProblem(
                        where,
                        None,
                        f"{kind} {EMPTY_CONTENT_DIGESTS[kind]} is the digest of zero-length content; not imported "
                        "(every empty or unreadable file has it)",
                    )
                )
            record = record.without_empty_content_digests()
        if not record.is_empty():
            lists[list_of(record)] = None
        yield record


def known_from_hash_record(record: HashRecord) -> KnownRecord:
    """The known record for one hashed image (or frame): its hashes, view hashes, digests, path and size."""
    extra = {} if record.frame is None else {"frame": record.frame}
    if record.vpdq:  # a video: one record, its frames in extra (matcher.video_hash.known_video)
        return known_video(
            record.vpdq,
            md5=record.md5,
            sha1=record.sha1,
            sha256=record.sha256,
            name=record.path,
            size=record.size,
            source=record.path,
            extra=extra,
        )
    return KnownRecord(
        hashes=dict(record.hashes),
        views={name: dict(views) for name, views in record.views.items()},
        local=record.local,
        md5=record.md5,
        sha1=record.sha1,
        sha256=record.sha256,
        name=record.path,
        size=record.size,
        source=record.path,
        extra=extra,
    )


def _is_image_file(path: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            media = imaging.sniff(fh.read(4096))
    except OSError:
        return False  # let the hash-list reader report why it cannot be read
    return media is not None and (media.is_image or media.is_video)


def _image_records(
    paths: Sequence[bytes],
    algorithms: Sequence[str],
    options: HashOptions,
    report: ProblemHandler,
    strict: bool,
    workers: int | None = 1,
    hash_progress: Callable[[HashProgress], None] | None = None,
) -> Iterator[KnownRecord]:
    hashed = hash_paths(paths, algorithms, options=options, workers=workers, progress=hash_progress, count_first=True)
    for record in hashed:
        if record.error is not None or not record.hashes:
            problem = ImportProblem(record.path or "?", None, record.error or "no hash computed")
            if strict:
                raise HashListError(str(problem))
            report(problem)
            continue
        yield known_from_hash_record(record)


def _records(
    sources: Sequence[bytes],
    algorithms: Sequence[str],
    format_name: str,
    strict: bool,
    report: ProblemHandler,
    options: HashOptions,
    workers: int | None = 1,
    hash_progress: Callable[[HashProgress], None] | None = None,
) -> Iterator[KnownRecord]:
    images: list[bytes] = []  # consecutive image sources are hashed together (one pool)
    for source in sources:
        if os.path.isdir(source) or (format_name == "auto" and _is_image_file(source)):
            images.append(source)
            continue
        if images:
            yield from _image_records(images, algorithms, options, report, strict, workers, hash_progress)
            images = []
        yield from read_records(os.fsdecode(source), format_name, on_problem=report, strict=strict)
    if images:
        yield from _image_records(images, algorithms, options, report, strict, workers, hash_progress)


def import_sources(
    index: KnownIndex,
    sources: Iterable[str | bytes | os.PathLike[str]],
    *,
    list_name: str,
    category: int | None = None,
    format: str = "auto",  # noqa: A002 - the CLI's word
    strict: bool = False,
    on_problem: ProblemHandler | None = None,
    on_warning: ProblemHandler | None = None,
    record_lists: bool = False,
    progress: Callable[[int], None] | None = None,
    hash_options: HashOptions | None = None,
    views: bool = True,
    local: bool | None = None,
    workers: int | None = 1,
    hash_progress: Callable[[HashProgress], None] | None = None,
) -> ImportSummary:
    """Add every record of ``sources`` to ``index`` under ``list_name`` in one atomic commit.

    ``record_lists``: a record whose source names its list (matcher's own exports do) goes to that
    list, and ``list_name`` takes only the others (see :meth:`KnownIndex.add`).
    ``category`` (when given) overrides the sources' own categories. A digest of zero-length
    content (:data:`~matcher.known.EMPTY_CONTENT_DIGESTS`) is never imported: each is reported to
    ``on_warning`` (else logged as a warning) and counted in ``empty_digests`` (a record left with
    nothing is ``empty``).
    ``format`` names the hash-list format or ``"auto"``; images are hashed with the index's
    algorithms and, with ``views`` (the default; it overrides ``hash_options.views``), their
    known-side view hashes, which let scans find cropped, bordered and captioned copies (hash lists carry
    no views). With ``local`` (``None``, the default: when OpenCV is installed; it overrides
    ``hash_options.local``) images keep their local features (:mod:`matcher.index.local_table`),
    which let scans find them inside crops, screenshots and collages (hash lists carry none);
    ``True`` without OpenCV raises :class:`~matcher.local_features.LocalFeaturesUnavailableError`.
    Without ``strict`` each problem goes to
    ``on_problem`` and is skipped; with ``strict`` the first one raises
    :class:`~matcher.errors.HashListError` and nothing is added.

    ``workers``: processes hashing the images (``1``, the default: in this process; ``None``: the CPU
    count; see :func:`~matcher.hashing.hash_paths`), the records in the same order whatever the
    number. ``hash_progress`` is :func:`~matcher.hashing.hash_paths`'s ``progress`` while images are
    hashed (once per run of consecutive image sources); ``progress(n)`` counts records read.
    """
    problems: list[ImportProblem] = []

    def report(problem: ImportProblem) -> None:
        problems.append(problem)
        if on_problem is not None:
            on_problem(problem)

    paths = [os.fsencode(s) for s in sources]
    for path in paths:
        if not os.path.exists(path):
            raise HashListError(f"{display_path(path)[0]}: no such file or directory")
    if local is None:
        local = local_features.available()
    elif local:
        local_features.extract(np.zeros((8, 8), np.uint8))  # OpenCV missing: refused before anything is read
    options = replace(hash_options or HashOptions(), views=bool(views), local=bool(local))
    empty_digests = 0

    def warn(problem: ImportProblem) -> None:
        nonlocal empty_digests
        empty_digests += 1
        if on_warning is not None:
            on_warning(problem)
        else:
            log.warning("%s", problem)

    def list_of(record: KnownRecord) -> str:  # as KnownIndex.add chooses it
        own = record.list_name
        return own if record_lists and own and own.strip() else list_name

    lists: dict[str, None] = {}
    records = _records(paths, index.algorithms, format, strict, report, options, workers, hash_progress)
    result = index.add(
        _without_empty_digests(records, warn, list_of, lists),
        list_name,
        category=category,
        progress=progress,
        record_lists=record_lists,
    )
    return ImportSummary(result.added, result.duplicates, result.empty, len(problems), empty_digests, tuple(lists))
