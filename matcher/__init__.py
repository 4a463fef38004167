"""matcher: perceptual image-hash matching for known-material (CSAM) investigation and trust & safety.

The public API, re-exported from the modules that hold it:

- :class:`Hash`: a hash value (algorithm, bits, optional quality); hex round trip; Hamming distance.
- :func:`hash_file`, :func:`hash_stream`, :func:`hash_bytes`, :func:`hash_image`, :func:`hash_array`,
  :func:`hash_paths`: hash inputs into :class:`HashRecord` values; :class:`HashOptions` tunes decoding.
- :data:`registry`: the registry of algorithms (``pdq``, ``phash``, ``dhash``, ``ahash``, ``whash``).
- :class:`KnownIndex` (with :func:`import_sources`, :class:`KnownRecord`, :func:`read_records`): the
  known-material index, its imports and the hash-list formats.
- :func:`matcher.scan.scan` (the module keeps its name), :func:`run_scan`, :class:`ScanOptions`,
  :class:`ScanRecord`, :class:`ScanMatch`: the batch scan of evidence paths.
- :func:`matcher.compare.compare`, :class:`Comparison`: distances between two images or hashes.
- :func:`cluster_paths`, :func:`cluster_hashes`, :class:`ClusterResult` (with :class:`ClusterGroup`,
  :class:`ClusterMember`, :class:`ClusterItem`): near-duplicate groups of an evidence set.
- :mod:`matcher.views` and :mod:`matcher.borders`: the region views (trimmed borders, caption bands,
  crops, small rotations) hashed on both sides so that edited copies match.
- :class:`MatcherError` and its subclasses: every deliberate error.
"""

import logging
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("matcher")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from . import algorithms
from .algorithms import registry
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
from .cluster import ClusterGroup, ClusterItem, ClusterMember, ClusterResult, cluster_hashes, cluster_paths
from .compare import Comparison
from .formats.registry import read_records, write_records
from .hashes import Hash
from .index import KnownIndex
from .index.importing import import_sources
from .known import ImportProblem, KnownRecord
from .scan import ScanOptions, run_scan
from .scan_records import ScanMatch, ScanRecord
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
