"""Cryptographic digests (MD5, SHA-1, SHA-256) of file content, all three computed in one pass.

Examiners match files against hash sets in any of these three digests, so every file read gets all of
them. :class:`DigestAccumulator` is fed chunk by chunk (see :mod:`matcher.files`), and
:func:`digest_bytes` is the shortcut for content already in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .errors import UsageError

__all__ = ["EMPTY_CONTENT_DIGESTS", "DigestAccumulator", "Digests", "digest_bytes"]

#: The digests of zero-length content, by kind. They are never a match: a hash list that holds one
#: would make every empty file (and every file that could not be read) "match" it, so imports skip
#: them (:meth:`matcher.known.KnownRecord.without_empty_content_digests`) and scans never look them up.
EMPTY_CONTENT_DIGESTS: Mapping[str, str] = MappingProxyType(
    {
        "md5": "d41d8cd98f00b204e9800998ecf8427e",
        "sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    }
)
_HEX_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
_HEX_DIGITS = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Digests:
    """The MD5, SHA-1 and SHA-256 of some content, as lowercase hex.

    Hex given in upper or mixed case is stored lowercased; anything that is not hex of the right
    length raises :class:`~matcher.errors.UsageError`.
    """

    md5: str
    sha1: str
    sha256: str

    def __post_init__(self) -> None:
        for name, length in _HEX_LENGTHS.items():
            value = getattr(self, name)
            text = value.lower() if isinstance(value, str) else None
            if text is None or len(text) != length or not _HEX_DIGITS.issuperset(text):
                raise UsageError(f"{name} digest must be {length} hex digits, not {value!r}")
            object.__setattr__(self, name, text)


class DigestAccumulator:
    """Feeds chunks of content to MD5, SHA-1 and SHA-256 at once.

    Call :meth:`update` with each chunk in order, then :meth:`result`. ``result`` does not end the
    accumulation: more chunks may follow, and a later ``result`` covers them too.
    """

    __slots__ = ("_md5", "_sha1", "_sha256")

    def __init__(self) -> None:
        # MD5 and SHA-1 serve here to identify files, not for security; saying so keeps them
        # available on FIPS-restricted systems.
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self._sha256 = hashlib.sha256()

    def update(self, chunk: bytes | memoryview) -> None:
        """Add the next chunk of content (any bytes-like object)."""
        self._md5.update(chunk)
        self._sha1.update(chunk)
        self._sha256.update(chunk)

    def result(self) -> Digests:
        """The digests of all content added so far."""
        return Digests(self._md5.hexdigest(), self._sha1.hexdigest(), self._sha256.hexdigest())


def digest_bytes(data: bytes | memoryview) -> Digests:
    """The digests of ``data`` (any bytes-like object)."""
    accumulator = DigestAccumulator()
    accumulator.update(data)
    return accumulator.result()
