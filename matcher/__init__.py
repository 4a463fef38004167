"""matcher: perceptual image-hash matching for known-material (CSAM) investigation and trust & safety.

The public API, re-exported from the modules that hold it:

- :class:`Hash`: a hash value (algorithm, bits, optional quality); hex round trip; Hamming distance.
- :func:`hash_file`, :func:`hash_stream`, :func:`hash_bytes`, :func:`hash_image`, :func:`hash_array`,
  :func:`hash_paths`: hash inputs into :class:`HashRecord` values; :class:`HashOptions` tunes decoding.
- :data:`registry`: the registry of algorithms (``pdq``, ``phash``, ``dhash``, ``ahash``, ``whash``).
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
    ImageTooLargeError,
    MatcherError,
    NotAFileError,
    TruncatedImageError,
    UnknownAlgorithmError,
    UnsupportedFormatError,
    UsageError,
)
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
]
