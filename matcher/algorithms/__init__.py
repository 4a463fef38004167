"""Perceptual hash algorithms and the registry that maps their names to them.

Each algorithm is a small object (see :class:`Algorithm`) that declares its name, bit length, default
match distance and whether it has a quality score, and computes a :class:`~matcher.hashes.Hash` from an
RGB image. Everything else in matcher looks algorithms up here by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import UnknownAlgorithmError

if TYPE_CHECKING:
    from PIL import Image

    from ..hashes import Hash

__all__ = ["Algorithm", "Registry", "registry", "get", "names"]


@runtime_checkable
class Algorithm(Protocol):
    """What every perceptual hash algorithm declares and does."""

    #: Registry name, also the report column (``pdq``, ``phash``, ...).
    name: str
    #: Number of bits in a hash.
    bit_length: int
    #: Largest Hamming distance counted as a match by default (``<=``).
    default_max_distance: int
    #: Whether hashes carry a quality score.
    has_quality: bool
    #: Hashes with a quality below this are not matched on (``None``: no quality rule).
    min_quality: int | None
    #: Smallest width and height the decoder may reduce an image to (JPEG draft mode) for this
    #: algorithm to stay within its tolerance; ``None``: the algorithm needs the full decode.
    draft_size: tuple[int, int] | None

    def hash_image(self, image: Image.Image, full_size: tuple[int, int] | None = None) -> Hash:
        """Hash one RGB (mode ``"RGB"``) Pillow image.

        ``full_size`` (width, height) is given when ``image`` was decoded at reduced scale from an
        image of that size, so an algorithm can approximate its full-scale hash.
        """
        ...


class Registry:
    """Maps algorithm names to algorithm objects; one instance, :data:`registry`, serves matcher."""

    def __init__(self) -> None:
        self._algorithms: dict[str, Algorithm] = {}

    def register(self, algorithm: Algorithm) -> Algorithm:
        """Add an algorithm under its name (a name can be registered once)."""
        if algorithm.name in self._algorithms:
            raise ValueError(f"algorithm {algorithm.name!r} is registered already")
        self._algorithms[algorithm.name] = algorithm
        return algorithm

    def get(self, name: str) -> Algorithm:
        """The algorithm called ``name``; :class:`~matcher.errors.UnknownAlgorithmError` if none is."""
        try:
            return self._algorithms[name]
        except KeyError:
            known = ", ".join(self._algorithms)
            raise UnknownAlgorithmError(f"unknown algorithm {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._algorithms)

    def bit_length_of(self, name: str) -> int | None:
        """The bit length of a registered algorithm, or ``None`` for a name not registered."""
        algorithm = self._algorithms.get(name)
        return None if algorithm is None else algorithm.bit_length

    def resolve(self, names: str | list[str] | tuple[str, ...]) -> tuple[Algorithm, ...]:
        """Algorithms for a comma-separated string or a sequence of names, duplicates dropped."""
        if isinstance(names, str):
            names = [n for n in (part.strip() for part in names.split(",")) if n]
        if not names:
            raise UnknownAlgorithmError("no algorithm named")
        seen: dict[str, Algorithm] = {}
        for name in names:
            seen.setdefault(name, self.get(name))
        return tuple(seen.values())


#: The registry every part of matcher uses.
registry = Registry()
get = registry.get
names = registry.names

# Register the built-in algorithms (imports at the end: they use the names above).
from . import imagehash_family, pdq  # noqa: E402,F401
