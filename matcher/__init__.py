"""matcher: perceptual image-hash matching for known-material (CSAM) investigation and trust & safety.

The public API, re-exported from the modules that hold it (each imported when first used, so that
``import matcher`` is quick and has no effect but definitions):

- :class:`Hash`: a hash value (algorithm, bits, optional quality); hex round trip; Hamming distance.
- :func:`hash_file`, :func:`hash_stream`, :func:`hash_bytes`, :func:`hash_image`, :func:`hash_array`,
  :func:`hash_paths`: hash inputs into :class:`HashRecord` values; :class:`HashOptions` tunes decoding.
- :data:`registry`: the registry of algorithms (``pdq``, ``phash``, ``dhash``, ``ahash``, ``whash``).
- :class:`KnownIndex` (with :func:`import_sources`, :class:`KnownRecord`, :func:`read_records`): the
  known-material index, its imports and the hash-list formats.
- :func:`matcher.scan.scan` (the module keeps its name), :func:`run_scan`, :class:`ScanOptions`,
  :class:`ScanRecord`, :class:`ScanMatch`: the batch scan of evidence paths.
- :func:`matcher.compare.compare`, :class:`Comparison`: the scan's decision for one known image (or hash) and one
  evidence image, explained (every pair searched, the best, and why it matched or not).
- :func:`cluster_paths`, :func:`cluster_hashes`, :class:`ClusterResult` (with :class:`ClusterGroup`,
  :class:`ClusterMember`, :class:`ClusterItem`): near-duplicate groups of an evidence set.
- :mod:`matcher.views` and :mod:`matcher.borders`: the region views (trimmed borders, caption bands,
  crops, small rotations) hashed on both sides so that edited copies match.
- :mod:`matcher.local_features` (the known image found inside a crop, screenshot or collage) and
  :mod:`matcher.places` (photos of one place linked): local features, with OpenCV (``[local]``).
- :class:`VideoThresholds`: when a video matches a known video (vPDQ); :mod:`matcher.video` samples
  and decodes videos (PyAV, ``[video]``), :mod:`matcher.video_hash` holds vPDQ features.
- :func:`write_html_report`, :class:`ReportOptions`, :class:`ReportSummary`: the static review page
  of a scan report.
- :func:`matcher.serve.create_app`: the HTTP matching service as an ASGI app (``[serve]``).
- :class:`MatcherError` and its subclasses: every deliberate error.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:  # the names below, for type checkers; at run time they are imported on first use
    from . import algorithms
    from .algorithms import registry
    from .cluster import (
        ClusterGroup,
        ClusterItem,
        ClusterMember,
        ClusterResult,
        cluster_hashes,
        cluster_paths,
    )
    from .compare import Comparison
    from .digests import Digests
    from .errors import (
        DecodeError,
        FileReadError,
        HashFormatError,
        HashListError,
        ImageTooLargeError,
        IndexStoreError,
        MatcherError,
        NotAFileError,
        TruncatedImageError,
        UnknownAlgorithmError,
        UnsupportedFormatError,
        UsageError,
    )
    from .formats.registry import read_records, write_records
    from .hashes import Hash
    from .hashing import (
        DEFAULT_ALGORITHMS,
        HashOptions,
        HashRecord,
        hash_array,
        hash_bytes,
        hash_file,
        hash_image,
        hash_paths,
        hash_stream,
    )
    from .index import KnownIndex
    from .index.importing import import_sources
    from .known import ImportProblem, KnownRecord
    from .report import ReportOptions, ReportSummary, write_html_report
    from .scan import ScanOptions, run_scan
    from .scan_records import ScanMatch, ScanRecord
    from .video_hash import VideoThresholds

#: Where each public name lives (module relative to this package; ``None``: the module itself).
#: ``import matcher`` imports none of them: a name's module is imported when the name is first read
#: (``matcher.Hash``, ``from matcher import KnownIndex``), so that a command or script pays only
#: for what it uses (numba, imagehash, FAISS and Dask are slow to import).
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "algorithms": (".algorithms", None),
    "registry": (".algorithms", "registry"),
    "Digests": (".digests", "Digests"),
    **{
        name: (".errors", name)
        for name in (
            "DecodeError",
            "FileReadError",
            "HashFormatError",
            "HashListError",
            "ImageTooLargeError",
            "IndexStoreError",
            "MatcherError",
            "NotAFileError",
            "TruncatedImageError",
            "UnknownAlgorithmError",
            "UnsupportedFormatError",
            "UsageError",
        )
    },
    **{
        name: (".cluster", name)
        for name in ("ClusterGroup", "ClusterItem", "ClusterMember", "ClusterResult", "cluster_hashes", "cluster_paths")
    },
    "Comparison": (".compare", "Comparison"),
    "read_records": (".formats.registry", "read_records"),
    "write_records": (".formats.registry", "write_records"),
    "Hash": (".hashes", "Hash"),
    "KnownIndex": (".index", "KnownIndex"),
    "import_sources": (".index.importing", "import_sources"),
    "ImportProblem": (".known", "ImportProblem"),
    "KnownRecord": (".known", "KnownRecord"),
    "ScanOptions": (".scan", "ScanOptions"),
    "run_scan": (".scan", "run_scan"),
    "ScanMatch": (".scan_records", "ScanMatch"),
    "ScanRecord": (".scan_records", "ScanRecord"),
    "ReportOptions": (".report", "ReportOptions"),
    "ReportSummary": (".report", "ReportSummary"),
    "write_html_report": (".report", "write_html_report"),
    "VideoThresholds": (".video_hash", "VideoThresholds"),
    **{
        name: (".hashing", name)
        for name in (
            "DEFAULT_ALGORITHMS",
            "HashOptions",
            "HashRecord",
            "hash_array",
            "hash_bytes",
            "hash_file",
            "hash_image",
            "hash_paths",
            "hash_stream",
        )
    },
}


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (then kept in this module)."""
    try:
        module_name, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


# The library logs but never prints: without a handler configured by the application, stay silent.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "algorithms",
    "registry",
    "Digests",
    "Hash",
    "HashOptions",
    "HashRecord",
    "DEFAULT_ALGORITHMS",
    "hash_array",
    "hash_bytes",
    "hash_file",
    "hash_image",
    "hash_paths",
    "hash_stream",
    "KnownIndex",
    "KnownRecord",
    "ImportProblem",
    "import_sources",
    "read_records",
    "write_records",
    "run_scan",
    "ScanOptions",
    "ScanRecord",
    "ScanMatch",
    "Comparison",
    "cluster_paths",
    "cluster_hashes",
    "ClusterResult",
    "ClusterGroup",
    "ClusterMember",
    "ClusterItem",
    "VideoThresholds",
    "write_html_report",
    "ReportOptions",
    "ReportSummary",
    "MatcherError",
    "UsageError",
    "HashFormatError",
    "UnknownAlgorithmError",
    "FileReadError",
    "NotAFileError",
    "DecodeError",
    "UnsupportedFormatError",
    "TruncatedImageError",
    "ImageTooLargeError",
    "HashListError",
    "IndexStoreError",
]
