"""Compare two images, an image and a hash, or two hashes: distances per algorithm and variant.

``a`` is taken as the known image and ``b`` as the evidence. A :class:`Comparison`'s ``variant``
always says how ``b`` is transformed relative to ``a``, with the names of
:func:`matcher.algorithms.pdq.variant_hashes` and :class:`~matcher.scan_records.ScanMatch`:
``orig`` (as is), ``rot90``/``rot180``/``rot270`` (``b`` is ``a`` rotated that far
counter-clockwise, Pillow's ``ROTATE_90`` etc.), ``flipx`` (top-bottom), ``flipy`` (mirrored),
``flipp``/``flipm`` (transposed about the main/anti-diagonal).

* **Two images**: for each algorithm, ``a``'s hash against the hash of ``b`` transformed back by each
  variant (PDQ: :func:`~matcher.algorithms.pdq.variant_hashes` on ``b``'s pixels, ``exact=True``;
  the other algorithms: ``b`` transposed back with Pillow and hashed). One :class:`Comparison` per
  algorithm and variant; only ``orig`` with ``rotations=False``.
* **A hash and an image** (either way round): only the hash's algorithm is compared; the variants
  are computed on the image side. When the image is ``a``, ``a`` is transformed instead of ``b`` and
  the variant is named as the transform of ``b`` relative to ``a`` (``rot90`` and ``rot270`` swap).
* **Two hashes**: one comparison, variant ``orig`` (``rotations`` makes no difference).

``algorithms`` defaults to PDQ; when a hash is given, it defaults to the hash's algorithm, and a
hash whose algorithm is not among ``algorithms`` given explicitly is refused.

Images are decoded as :func:`matcher.hash_file` decodes them (same :class:`~matcher.HashOptions`:
pixel limit, EXIF orientation, ``fast``), so the distances are those a scan computes. A multi-frame
image (animated GIF/WebP/PNG, multi-page TIFF) is compared by its **first frame** only.

A comparison is a match when ``distance <= max_distance`` (the algorithm's default, or
``max_distances[algorithm]``) and, for an algorithm with a quality rule (PDQ: 50), neither side's
quality is below it; otherwise ``note`` says why not. A hash read from hex carries no quality, so no
quality rule applies to it.

Unreadable files raise :class:`~matcher.errors.FileReadError`/:class:`~matcher.errors.NotAFileError`,
undecodable ones a :class:`~matcher.errors.DecodeError` subclass, each naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from PIL import Image

from . import files
from .algorithms import Algorithm, registry
from .errors import MatcherError, UsageError
from .hashes import Hash
from .pipeline import (
    DEFAULT_ALGORITHMS,
    FeatureRequest,
    FrameFeatures,
    HashOptions,
    first_frame,
)
from .variants import INVERSE, VARIANT_NAMES

__all__ = ["Comparison", "CompareInput", "VARIANTS", "compare", "comparisons_to_dict", "format_table"]

#: What :func:`compare` accepts on each side: an image path, a Pillow image, or a :class:`Hash`.
CompareInput = Union[str, "os.PathLike[str]", Image.Image, Hash]

#: Variant names, in the order ties are broken.
VARIANTS: tuple[str, ...] = VARIANT_NAMES


@dataclass(frozen=True, slots=True)
class Comparison:
    """One distance between ``a`` and ``b``: for ``algorithm``, with ``b`` seen as ``variant`` of ``a``.

    ``is_match`` is ``distance <= max_distance`` and the quality rule held; ``note`` (else ``None``)
    says why a comparison is not a match although near enough, e.g. low PDQ quality.
    """

    algorithm: str
    variant: str
    distance: int
    max_distance: int
    is_match: bool
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the fields as keys."""
        return {
            "algorithm": self.algorithm,
            "variant": self.variant,
            "distance": self.distance,
            "max_distance": self.max_distance,
            "is_match": self.is_match,
            "note": self.note,
        }


# --------------------------------------------------------------------------------------------------
# Inputs


def _name_of(value: Any, label: str) -> str:
    if isinstance(value, (str, os.PathLike)):
        return files.display_path(os.fsencode(value))[0]
    return f"image {label}"


def _load(
    value: Any, label: str, algorithms: Sequence[Algorithm], options: HashOptions, rotations: bool
) -> FrameFeatures:
    """The first frame of a path or Pillow image, with its variants as asked; errors name the input."""
    request = FeatureRequest(tuple(a.name for a in algorithms), variants=rotations)
    return first_frame(value, _name_of(value, label), request, options)


def _check_input(value: Any, label: str) -> None:
    if isinstance(value, (Hash, Image.Image, str, os.PathLike)):
        return
    raise UsageError(
        f"compare: {label} must be an image path, a PIL image or a Hash, not {type(value).__name__}"
        + (" (parse hex text with Hash.from_hex)" if isinstance(value, (bytes, bytearray)) else "")
    )


# --------------------------------------------------------------------------------------------------
# Hashing


def _variant_hashes(side: FrameFeatures, algorithm: Algorithm) -> Mapping[str, Hash]:
    """The hashes of ``side`` transformed back by each variant (only ``orig`` without rotations)."""
    return side.variants.get(algorithm.name) or {"orig": side.hashes[algorithm.name]}


def _max_distance(name: str, max_distances: dict[str, int] | None) -> int:
    if max_distances and name in max_distances:
        return max_distances[name]
    return registry.get(name).default_max_distance


def _quality_note(algorithm: str, first: Hash, second: Hash) -> str | None:
    """Why the quality rule refuses a match (``None`` when it does not, or there is no rule)."""
    try:
        minimum = registry.get(algorithm).min_quality
    except MatcherError:
        return None
    if minimum is None:
        return None
    low = [
        f"{which} {value.quality}"
        for which, value in (("a", first), ("b", second))
        if value.quality is not None and value.quality < minimum
    ]
    if not low:
        return None
    return f"{algorithm} quality of {' and '.join(low)} below {minimum}: not matched"


def _comparison(algorithm: str, variant: str, known: Hash, evidence: Hash, limit: int) -> Comparison:
    distance = known.distance(evidence)
    note = _quality_note(algorithm, known, evidence)
    return Comparison(algorithm, variant, distance, limit, distance <= limit and note is None, note)


# --------------------------------------------------------------------------------------------------
# The entry point


def _check_max_distances(max_distances: dict[str, int] | None) -> None:
    if max_distances is None:
        return
    if not isinstance(max_distances, dict):
        raise UsageError(f"max_distances must be a dict of algorithm name to int, not {type(max_distances).__name__}")
    for name, value in max_distances.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UsageError(f"max distance for {name!r} must be a non-negative integer, not {value!r}")


def _hash_algorithm(value: Hash, chosen: tuple[Algorithm, ...] | None, label: str) -> str:
    if chosen is not None and value.algorithm not in {a.name for a in chosen}:
        names = ", ".join(a.name for a in chosen)
        raise UsageError(f"compare: {label} is a {value.algorithm} hash, but the algorithms compared are {names}")
    return value.algorithm


def compare(
    a: CompareInput,
    b: CompareInput,
    algorithms: str | Sequence[str] | None = None,
    *,
    rotations: bool = True,
    max_distances: dict[str, int] | None = None,
    options: HashOptions | None = None,
) -> list[Comparison]:
    """Distances between ``a`` (the known) and ``b`` (the evidence); see the module notes.

    ``algorithms``: names or a comma-separated string; ``None`` means ``pdq`` for two images and the
    hash's algorithm when a hash is given. ``max_distances`` overrides the algorithms' default match
    distances. Comparisons are sorted by algorithm (in the order of ``algorithms``), then distance,
    then variant (``orig`` first on ties).

    Raises :class:`~matcher.errors.UsageError` for bad arguments (an input of another type, a hash
    of an algorithm not compared, two hashes of different algorithms),
    :class:`~matcher.errors.UnknownAlgorithmError` for an unknown name, and the read and decode
    errors of the module notes for an image that cannot be used.
    """
    _check_input(a, "a")
    _check_input(b, "b")
    _check_max_distances(max_distances)
    if not isinstance(rotations, bool):
        raise UsageError(f"rotations must be a bool, not {rotations!r}")
    options = options or HashOptions()
    if not isinstance(options, HashOptions):
        raise UsageError(f"options must be HashOptions, not {type(options).__name__}")
    chosen = None if algorithms is None else registry.resolve(algorithms)

    if isinstance(a, Hash) and isinstance(b, Hash):
        name = _hash_algorithm(a, chosen, "a")
        _hash_algorithm(b, chosen, "b")
        if a.algorithm != b.algorithm:
            raise UsageError(f"compare: cannot compare a {a.algorithm} hash with a {b.algorithm} hash")
        return [_comparison(name, "orig", a, b, _max_distance(name, max_distances))]

    if isinstance(a, Hash) or isinstance(b, Hash):
        known_is_hash = isinstance(a, Hash)
        value: Hash = a if known_is_hash else b  # type: ignore[assignment]
        name = _hash_algorithm(value, chosen, "a" if known_is_hash else "b")
        algorithm = registry.get(name)
        side = _load(b if known_is_hash else a, "b" if known_is_hash else "a", (algorithm,), options, rotations)
        limit = _max_distance(name, max_distances)
        out = []
        for variant, computed in _variant_hashes(side, algorithm).items():
            if known_is_hash:
                out.append(_comparison(name, variant, value, computed, limit))
            else:  # the known image was transformed: name the evidence's transform relative to it
                out.append(_comparison(name, INVERSE.get(variant, variant), computed, value, limit))
        return _sorted(out, [name])

    algos = chosen if chosen is not None else registry.resolve(DEFAULT_ALGORITHMS)
    known = _load(a, "a", algos, options, False)
    evidence = _load(b, "b", algos, options, rotations)
    out = []
    for algorithm in algos:
        limit = _max_distance(algorithm.name, max_distances)
        known_hash = known.hashes[algorithm.name]
        for variant, computed in _variant_hashes(evidence, algorithm).items():
            out.append(_comparison(algorithm.name, variant, known_hash, computed, limit))
    return _sorted(out, [a.name for a in algos])


def _sorted(comparisons: list[Comparison], order: list[str]) -> list[Comparison]:
    return sorted(comparisons, key=lambda c: (order.index(c.algorithm), c.distance, VARIANTS.index(c.variant)))


# --------------------------------------------------------------------------------------------------
# Output


def comparisons_to_dict(comparisons: Sequence[Comparison]) -> dict[str, Any]:
    """A JSON-ready summary: ``match`` (any comparison matched), ``best`` (per algorithm, its first,
    i.e. nearest, comparison) and every comparison in order."""
    best: dict[str, dict[str, Any]] = {}
    for comparison in comparisons:
        best.setdefault(comparison.algorithm, comparison.to_dict())
    return {
        "match": any(c.is_match for c in comparisons),
        "best": best,
        "comparisons": [c.to_dict() for c in comparisons],
    }


def format_table(comparisons: Sequence[Comparison]) -> str:
    """A plain-text table (one line per comparison, header first, no trailing newline)."""
    header = ("algorithm", "variant", "distance", "max", "match", "note")
    rows = [
        (c.algorithm, c.variant, str(c.distance), str(c.max_distance), "yes" if c.is_match else "no", c.note or "")
        for c in comparisons
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [row[i].rjust(widths[i]) if i in (2, 3) else row[i].ljust(widths[i]) for i in range(len(widths))]
        lines.append(("  ".join(cells) + "  " + row[-1]).rstrip())
    return "\n".join(lines)
