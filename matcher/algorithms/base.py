"""What every perceptual hash algorithm declares and does: the :class:`Algorithm` protocol.

The facts an algorithm declares are all that the rest of matcher (records, reports, hash-list
formats, the index, scan, cluster and compare) knows about it: nothing outside
:mod:`matcher.algorithms` tests an algorithm's name to decide what to do. Every registered algorithm
must pass the contract test (``tests/test_algorithms_contract.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from ..hashes import Hash

__all__ = ["Algorithm", "QUALITY_RANGE"]

#: The range of quality scores (inclusive) every algorithm with a quality uses; hash lists carry
#: qualities in it.
QUALITY_RANGE: tuple[int, int] = (0, 100)


@runtime_checkable
class Algorithm(Protocol):
    """A perceptual hash algorithm: its facts (read-only) and how it hashes a still frame.

    Identity and names:

    - :attr:`name`: registry name, hash column of records and reports (``pdq``, ``phash``, ...);
      lowercase.
    - :attr:`display_name`: how people write it, in report texts (``PDQ``, ``pHash``).
    - :attr:`vics_name`: the ``HashName`` of its VICS ``AlternativeHashes`` entries as matcher
      writes them; for the built-ins the display name (``PDQ``, ``pHash``), so people and VICS
      documents read one spelling, machine columns (records, CSV headers, ``--algorithms``) the
      registry name. VICS readers match ``HashName`` case-insensitively against the registry
      name and this name (so older documents with ``phash`` read as before).

    Bits and distances (Hamming, ``<=``):

    - :attr:`bit_length`: bits in a hash, a multiple of 8 (hex text has ``bit_length // 4`` digits).
    - :attr:`default_max_distance`: the largest distance counted as a match by default.
    - :attr:`strong_max_distance`: at most :attr:`default_max_distance`; a match this near is what
      re-encodes and resizes of the same picture give, with a wide margin to unrelated pictures:
      a strong match. Matching itself uses :attr:`default_max_distance`; only a strong match (or a
      digest match) may precategorize a file in a VICS report, a weaker one goes to review
      (:func:`matcher.formats.vics.precategorizes`).
    - :attr:`view_max_distance`: at most :attr:`default_max_distance`; the largest distance of a
      match *through a view* (a region, crop, small turn or trimmed border of either image) at the
      default distance. Each view multiplies the comparisons of an image pair (about 170 with every
      view on), so where a hash is short the bound is tighter; a run with its own distance keeps the
      same margin (``distance - (default_max_distance - view_max_distance)``).

    Quality (scores in :data:`QUALITY_RANGE`):

    - :attr:`has_quality`: whether its hashes carry a quality score.
    - :attr:`quality_field`: the report column (and hash-list field) of that score
      (``pdq_quality``); ``None`` exactly when :attr:`has_quality` is false.
    - :attr:`min_quality`: the quality gate: a hash scored below it is not matched on (``None``:
      no gate; only algorithms with a quality have one).

    Decoding:

    - :attr:`draft_size`: the smallest width and height the decoder may reduce an image to (JPEG
      draft mode) for this algorithm to stay within its tolerance; ``None``: it needs the full
      decode.
    - :attr:`draft_check_distance`: how far (bits) the hash of a frame decoded at reduced scale may
      be from the hash of the same frame reduced once more for the reduced decode to be kept (else it
      is decoded again at twice the resolution, in full if need be); ``None``: no check (the
      algorithm's reduced decodes need none).
    """

    @property
    def name(self) -> str:
        """Registry name, also the hash column of records and reports (lowercase)."""
        ...

    @property
    def display_name(self) -> str:
        """The name as people write it, used in report texts (``PDQ``, ``pHash``)."""
        ...

    @property
    def vics_name(self) -> str:
        """``HashName`` of this algorithm's VICS ``AlternativeHashes`` entries."""
        ...

    @property
    def bit_length(self) -> int:
        """Number of bits in a hash (a multiple of 8)."""
        ...

    @property
    def default_max_distance(self) -> int:
        """Largest Hamming distance counted as a match by default (``<=``)."""
        ...

    @property
    def strong_max_distance(self) -> int:
        """Largest Hamming distance of a strong match (``<=``; at most the default distance)."""
        ...

    @property
    def view_max_distance(self) -> int:
        """Largest Hamming distance of a match through a view at the default distance (``<=``)."""
        ...

    @property
    def has_quality(self) -> bool:
        """Whether hashes carry a quality score."""
        ...

    @property
    def quality_field(self) -> str | None:
        """Report column of the quality score (``None`` without a quality)."""
        ...

    @property
    def min_quality(self) -> int | None:
        """Hashes with a quality below this are not matched on (``None``: no quality gate)."""
        ...

    @property
    def draft_size(self) -> tuple[int, int] | None:
        """Smallest reduced decode size this algorithm tolerates (``None``: full decode only)."""
        ...

    @property
    def draft_check_distance(self) -> int | None:
        """Largest distance between a reduced decode's hash and the once-more-reduced one's for the
        reduced decode to be kept (``None``: no check)."""
        ...

    def hash_image(self, image: Image.Image, full_size: tuple[int, int] | None = None) -> Hash:
        """Hash one RGB (mode ``"RGB"``) Pillow image.

        ``full_size`` (width, height) is given when ``image`` was decoded at reduced scale from an
        image of that size, so an algorithm can approximate its full-scale hash.
        """
        ...

    def hash_array(self, array: np.ndarray) -> Hash:
        """Hash an HxWx3 (RGB) or HxW (grey) uint8 array of pixels as they are."""
        ...

    def variant_hashes(self, image: Image.Image, full_size: tuple[int, int] | None = None) -> dict[str, Hash]:
        """``{variant: hash}`` of an RGB image with each dihedral variant undone, keyed by
        :data:`~matcher.algorithms.dihedral.VARIANT_NAMES`: ``["rot90"]`` equals the hash of a
        known image of which ``image`` is the 90-degree counter-clockwise rotation. ``["orig"]`` is
        :meth:`hash_image`."""
        ...
