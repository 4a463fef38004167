"""The registry that maps algorithm names to algorithms, and the one instance matcher uses.

Everything in matcher that needs a fact about an algorithm (its bit length, VICS name, quality
column, distances) asks the registry, never tests a name. The built-in algorithms (PDQ and the
imagehash family) are in :data:`registry` from the start.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from ..errors import UnknownAlgorithmError
from ..hashes import Hash
from .base import Algorithm
from .imagehash_family import AHASH, DHASH, PHASH, WHASH
from .pdq import PDQ_ALGORITHM

__all__ = ["Registry", "registry", "BUILT_IN"]

#: The built-in algorithms, in registration order (the order of export columns and messages: keep it).
BUILT_IN: tuple[Algorithm, ...] = (PHASH, DHASH, AHASH, WHASH, PDQ_ALGORITHM)


class Registry:
    """Maps algorithm names to algorithm objects; one instance, :data:`registry`, serves matcher."""

    def __init__(self, algorithms: Iterable[Algorithm] = ()) -> None:
        self._algorithms: dict[str, Algorithm] = {}
        for algorithm in algorithms:
            self.register(algorithm)

    def register(self, algorithm: Algorithm) -> Algorithm:
        """Add an algorithm under its name (a name, or a VICS name, can be registered once)."""
        if algorithm.name in self._algorithms:
            raise ValueError(f"algorithm {algorithm.name!r} is registered already")
        clash = self.find(algorithm.name) or self.find(algorithm.vics_name)
        if clash is not None:
            raise ValueError(f"algorithm {algorithm.name!r} clashes with the names of {clash.name!r}")
        if algorithm.has_quality and algorithm.quality_field in self.quality_fields():
            raise ValueError(f"quality field {algorithm.quality_field!r} is registered already")
        self._algorithms[algorithm.name] = algorithm
        return algorithm

    def get(self, name: str) -> Algorithm:
        """The algorithm called ``name``; :class:`~matcher.errors.UnknownAlgorithmError` if none is."""
        try:
            return self._algorithms[name]
        except KeyError:
            known = ", ".join(self._algorithms)
            raise UnknownAlgorithmError(f"unknown algorithm {name!r} (known: {known})") from None

    def find(self, name: str) -> Algorithm | None:
        """The algorithm whose registry name or VICS name is ``name`` in any case (surrounding
        white space ignored), or ``None``: how hash lists' free-form hash names are resolved."""
        wanted = name.strip().lower()
        for algorithm in self._algorithms.values():
            if wanted in (algorithm.name.lower(), algorithm.vics_name.lower()):
                return algorithm
        return None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._algorithms)

    def __iter__(self) -> Iterator[Algorithm]:
        """The registered algorithms, in registration order."""
        return iter(list(self._algorithms.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._algorithms

    def bit_length_of(self, name: str) -> int | None:
        """The bit length of a registered algorithm, or ``None`` for a name not registered."""
        algorithm = self._algorithms.get(name)
        return None if algorithm is None else algorithm.bit_length

    def hash_from_hex(self, name: str, text: str, quality: int | None = None) -> Hash:
        """Read a hash from hex text; for a registered algorithm the length must be its bit length.

        :meth:`Hash.from_hex <matcher.hashes.Hash.from_hex>` with the registered bit length (no
        check for a name not registered: hash lists may carry algorithms matcher does not compute).
        Raises :class:`~matcher.errors.HashFormatError`.
        """
        return Hash.from_hex(name, text, quality, bit_length=self.bit_length_of(name))

    def resolve(self, names: str | Sequence[str]) -> tuple[Algorithm, ...]:
        """Algorithms for a comma-separated string or a sequence of names, duplicates dropped."""
        if isinstance(names, str):
            names = [n for n in (part.strip() for part in names.split(",")) if n]
        if not names:
            raise UnknownAlgorithmError("no algorithm named")
        seen: dict[str, Algorithm] = {}
        for name in names:
            seen.setdefault(name, self.get(name))
        return tuple(seen.values())

    def with_quality(self) -> tuple[Algorithm, ...]:
        """The registered algorithms whose hashes carry a quality score, in registration order."""
        return tuple(a for a in self._algorithms.values() if a.has_quality)

    def quality_fields(self) -> tuple[str, ...]:
        """The report's quality columns (``("pdq_quality",)``): one per algorithm with a quality,
        in registration order. Every hash and scan record carries all of them, so that a report's
        columns do not depend on the algorithms chosen."""
        return tuple(a.quality_field for a in self.with_quality() if a.quality_field is not None)

    def quality_columns(self, hashes: Mapping[str, Hash]) -> dict[str, int | None]:
        """``{quality field: score}`` for every algorithm with a quality: the score its hash in
        ``hashes`` carries, ``None`` where there is no such hash or it has no score."""
        out: dict[str, int | None] = {}
        for algorithm in self.with_quality():
            if algorithm.quality_field is not None:
                value = hashes.get(algorithm.name)
                out[algorithm.quality_field] = None if value is None else value.quality
        return out


#: The registry every part of matcher uses, holding :data:`BUILT_IN`.
registry = Registry(BUILT_IN)
