"""The index manifest (``manifest.json``) and the file-level helpers of atomic writes.

The manifest is the single source of truth for which generation directory is current. It records the
format version, the algorithms and the parameters they were indexed with, counts per algorithm and
per list, and the size and SHA-256 of every file of the current generation. It also carries a
SHA-256 of its own canonical JSON body (``manifest_sha256``), so a damaged manifest is detected too.

Format versions: 1 has one code table per algorithm. 2 adds *view tables*: extra code tables of
hashes of fixed regions of known images (``pdq@top88``, ``pdq@crop10`` ...; see
:mod:`matcher.views`), listed under ``views`` as ``{algorithm: {view: {"count": n, "searchable": m}}}``
with their files in ``files`` like the main tables. Version 1 manifests are read as having no views;
A manifest naming a view this matcher does not know is refused. 3 adds *local features*
(:mod:`matcher.index.local_table`): the ``local.*.npy`` arrays of the known images' keypoints and
descriptors, listed in ``files``, and a ``local`` key ``{"records": n, "keypoints": m, "branch": b}``
(absent when the generation holds none). Versions 1 and 2 are read as holding no local features
(images added before have none until they are added again); this code writes version 3.

Saved search structures (no version change): ``structures`` lists, with the same size and SHA-256
as ``files``, the arrays of the multi-index search structures of the large tables
(``pdq.mih.order.npy`` ...; see :mod:`matcher.index.store`), which readers memory-map instead of
building the structure in each process. The key is optional both ways: an index without it (written
before it existed) builds its structures on open, and a matcher that predates it ignores it (the
manifest checksum covers it all the same) and writes generations without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..algorithms import registry
from ..batch import atomic_file, fsync_dir
from ..errors import IndexStoreError, UnknownAlgorithmError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "FileEntry",
    "FileStamp",
    "Manifest",
    "STAMP_SETTLED_NS",
    "algorithm_params",
    "known_view_names",
    "table_stem",
    "read_manifest",
    "index_file_errors",
    "write_manifest",
    "write_atomically",
    "body_digest",
    "count_field",
    "text_field",
    "mapping_field",
    "sha256_file",
    "fsync_dir",
    "fsync_file",
]

log = logging.getLogger(__name__)

#: Identifies a matcher index manifest.
FORMAT_NAME = "matcher-known-index"
#: On-disk format version this code writes (it reads this one and older); a newer one is refused.
FORMAT_VERSION = 4
#: Separates algorithm and view in the name of a view table (``pdq@top88``).
VIEW_SEPARATOR = "@"
#: Name of the manifest file at the top of an index directory.
MANIFEST_NAME = "manifest.json"

#: The algorithm parameters recorded in the manifest and compared with the registry on open.
PARAM_KEYS = ("bit_length", "code_bytes", "default_max_distance", "has_quality", "min_quality")
#: The parameters an index built before its algorithm had a quality may differ in: such an index
#: stores no qualities (every hash searchable), and the next write records the current parameters.
QUALITY_KEYS = ("has_quality", "min_quality")

_CHUNK = 4 << 20


def algorithm_params(name: str) -> dict[str, Any]:
    """The parameters of a registered algorithm as recorded in a manifest."""
    algorithm = registry.get(name)
    if algorithm.bit_length % 8:
        raise IndexStoreError(f"algorithm {name!r} has {algorithm.bit_length} bits, not whole bytes")
    return {
        "bit_length": int(algorithm.bit_length),
        "code_bytes": int(algorithm.bit_length) // 8,
        "default_max_distance": int(algorithm.default_max_distance),
        "has_quality": bool(algorithm.has_quality),
        "min_quality": None if algorithm.min_quality is None else int(algorithm.min_quality),
    }


def known_view_names() -> tuple[str, ...]:
    """The names of the known-side views this matcher computes and can search (:data:`matcher.views.KNOWN_VIEWS`)."""
    from ..views import KNOWN_VIEWS

    return tuple(KNOWN_VIEWS)


def table_stem(algorithm: str, view: str | None = None) -> str:
    """The file-name stem of a code table: ``pdq`` for the main table, ``pdq@top88`` for a view's."""
    return algorithm if view is None else f"{algorithm}{VIEW_SEPARATOR}{view}"


@dataclass(frozen=True, slots=True)
class FileEntry:
    """Size in bytes and SHA-256 (hex) of one file of a generation."""

    size: int
    sha256: str


#: A file whose status changed less than this long (nanoseconds) before it was stamped gets no
#: :class:`FileStamp`: file times tick coarsely (a few milliseconds on Linux), so a change made in the
#: same tick as the file's last write could leave its times as they were.
STAMP_SETTLED_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class FileStamp:
    """What ``stat`` said of one file of a generation just before a process verified its SHA-256.

    Another process that finds the file with the same stamp (same device, inode, size, modification
    and status-change times) opens it as verified without hashing it again: any write, truncation,
    replacement or rename since changes at least the status-change time, which no program can set.
    A copy of the index on another machine, or a file altered since, differs and is hashed.
    """

    path: str
    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: Path, status: os.stat_result) -> FileStamp:
        """The stamp of ``path`` (made absolute) from its ``status``."""
        return cls(
            os.path.abspath(path),
            status.st_dev,
            status.st_ino,
            status.st_size,
            status.st_mtime_ns,
            status.st_ctime_ns,
        )

    def settled(self, now_ns: int) -> bool:
        """Whether the file's status last changed at least :data:`STAMP_SETTLED_NS` before ``now_ns``
        (only a settled file's stamp is worth handing on)."""
        return self.ctime_ns <= now_ns - STAMP_SETTLED_NS


@dataclass(frozen=True, slots=True)
class Manifest:
    """The parsed ``manifest.json`` of an index.

    ``algorithms`` maps each indexed algorithm to its parameters (see :data:`PARAM_KEYS`) plus
    ``count`` (records with such a hash) and ``searchable`` (those a search can return: PDQ hashes of
    known quality under the minimum are stored but not searchable). ``lists`` maps each list name to
    ``{"records": n, "algorithms": {name: n}}``. ``files`` maps file names inside ``directory`` to
    their :class:`FileEntry`. ``views`` maps an indexed algorithm to its view tables, each
    ``{"count": n, "searchable": m}`` (empty for indexes without views, and for format version 1).
    ``structures`` maps the files of saved search structures to their :class:`FileEntry` (empty
    when none are saved; see the module documentation).
    """

    format_version: int
    generation: int
    directory: str
    created_at: str
    updated_at: str
    records: int
    algorithms: Mapping[str, Mapping[str, Any]]
    lists: Mapping[str, Mapping[str, Any]]
    files: Mapping[str, FileEntry]
    extra: Mapping[str, Any] = field(default_factory=dict)
    views: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    structures: Mapping[str, FileEntry] = field(default_factory=dict)
    local: Mapping[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict, without its self-checksum."""
        body = {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "generation": self.generation,
            "directory": self.directory,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "records": self.records,
            "algorithms": {k: dict(v) for k, v in self.algorithms.items()},
            "lists": {k: _plain(v) for k, v in self.lists.items()},
            "files": {k: {"size": v.size, "sha256": v.sha256} for k, v in self.files.items()},
            "extra": dict(self.extra),
        }
        if self.format_version >= 2:
            body["views"] = {k: {view: dict(v) for view, v in views.items()} for k, views in self.views.items()}
        if self.structures:  # absent when empty: such a manifest reads exactly as before the key existed
            body["structures"] = {k: {"size": v.size, "sha256": v.sha256} for k, v in self.structures.items()}
        if self.local:  # absent when the generation holds no local features
            body["local"] = dict(self.local)
        return body

    def to_json(self) -> str:
        """The manifest text: the body plus ``manifest_sha256`` of its canonical form."""
        body = self.body()
        document = dict(body)
        document["manifest_sha256"] = body_digest(body)
        return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        """Parse and check a manifest; :class:`IndexStoreError` naming ``where`` if it is unusable."""
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise IndexStoreError(f"{where}: manifest is not valid JSON ({exc})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
            raise IndexStoreError(f"{where}: not a matcher index manifest")
        version = document.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise IndexStoreError(f"{where}: format_version missing or not an integer")
        if version > FORMAT_VERSION:
            raise IndexStoreError(
                f"{where}: index format version {version} is newer than this matcher supports "
                f"({FORMAT_VERSION}); upgrade matcher to read it"
            )
        if version < 1:
            raise IndexStoreError(f"{where}: invalid index format version {version}")
        claimed = document.pop("manifest_sha256", None)
        if claimed != body_digest(document):
            raise IndexStoreError(f"{where}: manifest checksum mismatch (manifest damaged or edited)")
        try:
            files = _file_entries(document["files"], "files")
            structures = _file_entries(document.get("structures") or {}, "structures")
            views = mapping_field(document.get("views") or {}, "views") if version >= 2 else {}
            local = mapping_field(document.get("local") or {}, "local") if version >= 3 else {}
            for key in ("records", "keypoints", "branch") if local else ():
                count_field(local.get(key), f"local {key}")
            manifest = cls(
                format_version=version,
                generation=count_field(document["generation"], "generation"),
                directory=text_field(document["directory"], "directory"),
                created_at=text_field(document["created_at"], "created_at"),
                updated_at=text_field(document["updated_at"], "updated_at"),
                records=count_field(document["records"], "records"),
                algorithms={
                    k: dict(mapping_field(v, f"algorithm {k}"))
                    for k, v in mapping_field(document["algorithms"], "algorithms").items()
                },
                lists={
                    k: dict(mapping_field(v, f"list {k}")) for k, v in mapping_field(document["lists"], "lists").items()
                },
                files=files,
                extra=dict(mapping_field(document.get("extra") or {}, "extra")),
                views={
                    k: {
                        view: dict(mapping_field(v, f"view {k}{VIEW_SEPARATOR}{view}"))
                        for view, v in mapping_field(named, f"views of {k}").items()
                    }
                    for k, named in views.items()
                },
                structures=structures,
                local=dict(local),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IndexStoreError(f"{where}: manifest is missing or has a malformed field ({exc!r})") from None
        if "/" in manifest.directory or manifest.directory in ("", ".", ".."):
            raise IndexStoreError(f"{where}: manifest names an invalid generation directory")
        for name in [*manifest.files, *manifest.structures]:
            if "/" in name or name in ("", ".", ".."):
                raise IndexStoreError(f"{where}: manifest names an invalid file {name!r}")
        if set(manifest.files) & set(manifest.structures):
            raise IndexStoreError(f"{where}: manifest lists a file both as a table and as a search structure")
        manifest.check_algorithms(where)
        manifest.check_views(where)
        return manifest

    def check_algorithms(self, where: str) -> None:
        """Raise :class:`IndexStoreError` unless every algorithm's recorded parameters match the registry."""
        if not self.algorithms:
            raise IndexStoreError(f"{where}: manifest lists no algorithms")
        for name, recorded in self.algorithms.items():
            try:
                current = algorithm_params(name)
            except UnknownAlgorithmError:
                raise IndexStoreError(
                    f"{where}: index was built with algorithm {name!r}, which this matcher does not know"
                ) from None
            for key in PARAM_KEYS:
                if key in QUALITY_KEYS and recorded.get("has_quality") is False and recorded.get("min_quality") is None:
                    continue  # built before the algorithm had a quality: its qualities are unknown (-1, searchable)
                if recorded.get(key) != current[key]:
                    raise IndexStoreError(
                        f"{where}: index was built with {name} {key}={recorded.get(key)!r}, "
                        f"but this matcher uses {key}={current[key]!r}; rebuild the index"
                    )

    def check_views(self, where: str) -> None:
        """Raise :class:`IndexStoreError` unless every view table is of an indexed algorithm and a known view."""
        if not self.views:
            return
        known = set(known_view_names())
        for algorithm, views in self.views.items():
            if algorithm not in self.algorithms:
                raise IndexStoreError(
                    f"{where}: manifest lists view tables of {algorithm!r}, which the index does not index"
                )
            for view, counts in views.items():
                if view not in known:
                    raise IndexStoreError(
                        f"{where}: index holds view table {table_stem(algorithm, view)!r}, a view this "
                        f"matcher does not know (known: {', '.join(sorted(known))}); upgrade matcher to read it"
                    )
                for key in ("count", "searchable"):
                    value = counts.get(key)
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise IndexStoreError(
                            f"{where}: view table {table_stem(algorithm, view)!r} has a malformed {key} ({value!r})"
                        )


def count_field(value: Any, field: str) -> int:
    """``value`` when it is a non-negative integer (not a bool); else ``TypeError`` naming ``field``.

    The field checks of the index's JSON documents (``manifest.json``, ``shards.json``): a parsed
    value of the wrong type is refused, never coerced. ``field`` names the field in the message.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{field} must be a non-negative integer, not {value!r:.80}")
    return value


def text_field(value: Any, field: str) -> str:
    """``value`` when it is text; else ``TypeError`` naming ``field`` (see :func:`count_field`)."""
    if not isinstance(value, str):
        raise TypeError(f"{field} must be text, not {value!r:.80}")
    return value


def mapping_field(value: Any, field: str) -> Mapping[str, Any]:
    """``value`` when it is a JSON object (a ``dict``); else ``TypeError`` naming ``field`` (see
    :func:`count_field`)."""
    if not isinstance(value, dict):
        raise TypeError(f"{field} must be an object, not {type(value).__name__}")
    return value


def _file_entries(value: Any, field: str) -> dict[str, FileEntry]:
    return {
        text_field(name, "file name"): FileEntry(
            count_field(entry["size"], f"size of {name}"), text_field(entry["sha256"], f"sha256 of {name}")
        )
        for name, entry in mapping_field(value, field).items()
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def body_digest(body: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON document's canonical form (sorted keys, no spaces, ASCII): the checksum a
    document such as ``manifest.json`` or ``shards.json`` carries of itself."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


@contextmanager
def index_file_errors(missing: str, unreadable: str) -> Iterator[None]:
    """Reading an index's file inside this block: a missing file raises :class:`IndexStoreError`
    ``missing``, another error of reading or decoding it ``unreadable`` followed by ``(the error)``."""
    try:
        yield
    except FileNotFoundError:
        raise IndexStoreError(missing) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexStoreError(f"{unreadable} ({exc})") from None


def read_manifest(root: Path) -> Manifest:
    """Read and check ``root/manifest.json``; :class:`IndexStoreError` when absent or unusable."""
    path = root / MANIFEST_NAME
    with index_file_errors(f"{root}: not a matcher index (no {MANIFEST_NAME})", f"{path}: cannot read manifest"):
        text = path.read_text(encoding="utf-8")
    return Manifest.from_json(text, str(path))


def write_manifest(root: Path, manifest: Manifest, checkpoint: Any = None) -> None:
    """Replace ``root/manifest.json`` atomically: write a temp file, fsync, rename over, fsync the dir.

    ``checkpoint(step)``, when given, is called between the steps (the crash tests use it).
    """
    write_atomically(root, MANIFEST_NAME, manifest.to_json().encode("utf-8"), checkpoint)


def write_atomically(root: Path, name: str, data: bytes, checkpoint: Any = None) -> None:
    """Replace ``root/name`` with ``data`` atomically (:func:`matcher.batch.atomic_file`): a reader
    sees the old file or the new one, never part of one.

    ``checkpoint("manifest-temp-written")``, when given, is called between writing and renaming.
    """
    step = None if checkpoint is None else (lambda: checkpoint("manifest-temp-written"))
    with atomic_file(root / name, before_replace=step) as handle:
        handle.write(data)


def sha256_file(path: Path) -> FileEntry:
    """Size and SHA-256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            digest.update(chunk)
    return FileEntry(size, digest.hexdigest())


def fsync_file(path: Path) -> None:
    """Flush a file's data to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
