"""The :class:`Hash` value: an algorithm name, its bits, and (where the algorithm has one) a quality score.

This module knows nothing of the algorithms (it is a leaf: the algorithms build on it); the length
of a registered algorithm's hashes is checked by
:meth:`matcher.algorithms.Registry.hash_from_hex`, or by :meth:`Hash.from_hex` when the
caller gives the bit length.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .errors import HashFormatError

__all__ = ["Hash", "code_matrix"]


@dataclass(frozen=True, slots=True)
class Hash:
    """A perceptual hash.

    ``bits`` are the hash bits, most significant first, exactly as ``bytes.fromhex`` of the hash's hex
    text gives them: the reference layout for PDQ (words w[15] .. w[0]) and imagehash's own hex for the
    imagehash family, so hex written by those tools and by matcher is interchangeable. These are also
    the bytes a FAISS binary index stores.

    ``quality`` is the algorithm's quality score where it has one (PDQ: 0..100), else ``None``. It is
    carried along but is not part of equality: two hashes are equal when algorithm and bits are.

    ``a.distance(b)`` and ``a - b`` give the Hamming distance; ``str(h)`` the hex text, and
    ``Hash.from_hex(algorithm, text)`` reads it back (``matcher.registry.hash_from_hex(algorithm,
    text)`` also checks the length against the registered algorithm's).
    """

    algorithm: str
    bits: bytes
    quality: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.algorithm, str) or not self.algorithm:
            raise HashFormatError(f"hash algorithm must be a non-empty string, not {self.algorithm!r}")
        if not isinstance(self.bits, bytes):
            if isinstance(self.bits, (bytearray, memoryview)):
                object.__setattr__(self, "bits", bytes(self.bits))
            else:
                raise HashFormatError(f"{self.algorithm} hash bits must be bytes, not {type(self.bits).__name__}")
        if not self.bits:
            raise HashFormatError(f"{self.algorithm} hash has no bits")

    @classmethod
    def from_hex(cls, algorithm: str, text: str, quality: int | None = None, *, bit_length: int | None = None) -> Hash:
        """Read a hash from its hex text (case and surrounding white space do not matter).

        With ``bit_length``, the text must have exactly ``bit_length // 4`` hex digits. Without it,
        any whole-byte hex is read: to check against a registered algorithm's length, use
        :meth:`matcher.algorithms.Registry.hash_from_hex` (``matcher.registry.hash_from_hex``).
        (Earlier versions looked the length up in the registry here; that made an import circle.)
        Raises :class:`~matcher.errors.HashFormatError` for text that is not whole-byte hex or not
        of the given length.
        """
        cleaned = text.strip() if isinstance(text, str) else text
        if not isinstance(cleaned, str) or not cleaned:
            raise HashFormatError(f"{algorithm} hash: empty or not text: {text!r}")
        try:
            bits = binascii.unhexlify(cleaned)
        except (binascii.Error, ValueError):
            raise HashFormatError(f"{algorithm} hash is not hex of whole bytes: {text!r}") from None
        if bit_length is not None and len(bits) * 8 != bit_length:
            raise HashFormatError(
                f"{algorithm} hash must have {bit_length // 4} hex digits, got {len(cleaned)}: {text!r}"
            )
        return cls(algorithm, bits, quality)

    @property
    def bit_length(self) -> int:
        """Number of bits in the hash."""
        return len(self.bits) * 8

    def hex(self) -> str:
        """The lowercase hex text (the same as ``str(h)``)."""
        return self.bits.hex()

    def __str__(self) -> str:
        return self.bits.hex()

    def distance(self, other: Hash) -> int:
        """Hamming distance to another hash of the same algorithm and length."""
        if not isinstance(other, Hash):
            return NotImplemented
        if other.algorithm != self.algorithm:
            raise HashFormatError(f"cannot compare a {self.algorithm} hash with a {other.algorithm} hash")
        if len(other.bits) != len(self.bits):
            raise HashFormatError(
                f"cannot compare {self.algorithm} hashes of {self.bit_length} and {other.bit_length} bits"
            )
        x = int.from_bytes(self.bits, "big") ^ int.from_bytes(other.bits, "big")
        return x.bit_count()

    def __sub__(self, other: Hash) -> int:
        if not isinstance(other, Hash):
            return NotImplemented
        return self.distance(other)


def code_matrix(bits: Iterable[bytes], width: int) -> np.ndarray:
    """Hashes' ``bits`` (each ``width`` bytes) as the rows of a read-only ``uint8`` matrix, the layout
    the index's searches take (``(0, width)`` for none)."""
    return np.frombuffer(b"".join(bits), dtype=np.uint8).reshape(-1, width)
