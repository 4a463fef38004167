"""The matching methods compared: each algorithm in each matching mode, ours and the peers'.

Every image gets *hash sets*, keyed by view name: a query set when it is searched for (edited copies,
distractors) and a known set when it is in the index (originals, distractors). ``None`` names an
image's main (global) hash. A method is a hash set kind plus a *rule*: which known views each query
view may be compared with. The distance of a (query image, known image) pair is the smallest Hamming
distance over the combinations the rule allows.

Hash set kinds (:func:`hash_sets`):

- ``pdqhash``: query: the 8 hashes of ``pdqhash.compute_dihedral`` (the reference's cheap DCT-derived
  dihedral variants; ``dihedral0`` is the plain hash, identical to ``pdqhash.compute``); known: the
  plain hash.
- ``imagehash``: ``imagehash.phash`` on both sides.
- ``pdq`` / ``phash`` (matcher, through ``matcher.registry``): query: with ``matcher.views``,
  ``views.query_view_hashes(algorithm, image)`` with every feature on (the 8 exact rotation/flip
  variants ``orig``, ``rot90``, ..., the border-trimmed ``trim``/``trim+<variant>`` when the image has
  borders, ``top88``/``bottom88``, and the inset views of the pictures embedded in the image, which
  ``matcher.insets`` proposes: collage tiles, a picture pasted into a screenshot), else
  ``matcher.variants.variant_hashes``; known: the main hash (``hash_image``) plus
  ``views.known_view_hashes`` (``trim``, caption bands, crops, small rotations). An inset view's name
  carries its box (``inset@L,T,R,B``); here the i-th inset of an image is renamed to a placeholder
  box ``inset@i,0,i+1,1`` so that the insets of all images share the table's columns.

Modes (rules) of the matcher algorithms, all on the same hash sets:

- ``global``: ``orig`` (= ``hash_image``) against the main hash only;
- ``+rot``: the 8 variants against the main hash;
- ``+rot+trim``: border trimming alone: variants and trimmed views against the main hash and the
  known ``trim`` view (as ``views.known_views_for`` allows);
- ``+rot+regions``: the region views alone (``top88``/``bottom88``, the insets, the crop views, the
  4-degree rotations): everything ``views.known_views_for`` allows except trimmed views;
- ``+views``: everything ``views.known_views_for`` allows;
- ``+views, no insets``: the same without the inset views (the scan's ``--no-insets``).

The view modes exist only when ``matcher.views`` can be imported (it is feature-detected).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import imagehash
import numpy as np
import pdqhash
from PIL import Image

from matcher.algorithms import registry
from matcher.errors import UsageError
from matcher.hashes import Hash
from matcher.variants import VARIANT_NAMES, variant_hashes

__all__ = ["View", "Bits", "ViewHashes", "Method", "VIEWS", "views_available", "methods", "hash_sets"]

View = str | None
Bits = tuple[bytes, int | None]  # hash bits and quality (None: the algorithm has none)
ViewHashes = dict[View, Bits]


def _load_views() -> ModuleType | None:
    """``matcher.views`` if it exists and offers the three functions the benchmark uses."""
    try:
        from matcher import views
    except ImportError:
        return None
    needed = ("known_view_hashes", "query_view_hashes", "known_views_for")
    return views if all(hasattr(views, name) for name in needed) else None


VIEWS: ModuleType | None = _load_views()


def views_available() -> bool:
    """Whether ``matcher.views`` is there, so the ``+trim``, ``+regions`` and ``+views`` modes run."""
    return VIEWS is not None


def _rule_global(view: View) -> tuple[View, ...]:
    return (None,) if view in ("orig", "dihedral0", None) else ()


def _rule_rotations(view: View) -> tuple[View, ...]:
    return (None,) if view in VARIANT_NAMES or (isinstance(view, str) and view.startswith("dihedral")) else ()


def _is_trim(view: View) -> bool:
    trim = getattr(VIEWS, "TRIM_VIEW", "trim")
    return isinstance(view, str) and (view == trim or view.startswith(trim + "+"))


def _views_for(view: View) -> tuple[View, ...]:
    if VIEWS is None or view is None:
        return ()
    try:
        return tuple(VIEWS.known_views_for(view))
    except UsageError:  # a name query_view_hashes never gives
        return ()


def _rule_trim(view: View) -> tuple[View, ...]:
    """Rotations plus border trimming alone: dihedral and trimmed query views, known main and trim."""
    if view not in VARIANT_NAMES and not _is_trim(view):
        return ()
    return tuple(kv for kv in _views_for(view) if kv is None or _is_trim(kv))


def _is_inset(view: View) -> bool:
    return VIEWS is not None and hasattr(VIEWS, "inset_box") and VIEWS.inset_box(view) is not None


def _rule_no_insets(view: View) -> tuple[View, ...]:
    """Every view but the insets."""
    return () if _is_inset(view) else _views_for(view)


def _rule_regions(view: View) -> tuple[View, ...]:
    """Rotations plus the fixed region views alone (caption bands, crops, small rotations)."""
    if _is_trim(view):
        return ()
    return tuple(kv for kv in _views_for(view) if not _is_trim(kv))


@dataclass(frozen=True, slots=True)
class Method:
    """An algorithm in one matching mode: a hash set kind and a rule of which views may meet."""

    key: str  # short id used in the JSON
    label: str  # table column
    algorithm: str  # "pdq" or "phash": bit length, threshold, quality rule
    mode: str  # "global", "dihedral (DCT)", "+rotations", "+trim", "+regions", "+views"
    peer: bool  # a reference library rather than matcher
    hash_set: str  # key of the hash sets it uses (see hash_sets)
    rule: Callable[[View], tuple[View, ...]]  # known views a query view may be compared with

    @property
    def threshold(self) -> int:
        """The algorithm's default match distance (``<=``)."""
        return registry.get(self.algorithm).default_max_distance

    @property
    def bit_length(self) -> int:
        return registry.get(self.algorithm).bit_length

    @property
    def view_penalty(self) -> int:
        """Bits added to a distance through a view, so that the threshold holds views to the
        algorithm's ``view_max_distance`` as the scan does (pHash family: 1; PDQ: 0; peers use no views)."""
        algorithm = registry.get(self.algorithm)
        return 0 if self.peer else algorithm.default_max_distance - algorithm.view_max_distance

    @property
    def min_quality(self) -> int | None:
        """Hashes below this quality are never matched (PDQ: 50)."""
        return registry.get(self.algorithm).min_quality


def methods() -> tuple[Method, ...]:
    """The methods of this run, in column order (the view modes only when ``matcher.views`` exists)."""
    out = [
        Method("ref_pdq", "pdqhash", "pdq", "global", True, "pdqhash", _rule_global),
        Method("ref_pdq_dihedral", "pdqhash dihedral", "pdq", "dihedral (DCT)", True, "pdqhash", _rule_rotations),
        Method("ref_phash", "imagehash.phash", "phash", "global", True, "imagehash", _rule_global),
        Method("pdq_global", "pdq global", "pdq", "global", False, "pdq", _rule_global),
        Method("pdq_rotations", "pdq +rot", "pdq", "+rotations", False, "pdq", _rule_rotations),
    ]
    if views_available():
        out += [
            Method("pdq_trim", "pdq +rot+trim", "pdq", "+trim", False, "pdq", _rule_trim),
            Method("pdq_regions", "pdq +rot+regions", "pdq", "+regions", False, "pdq", _rule_regions),
            Method("pdq_views", "pdq +views", "pdq", "+views", False, "pdq", _views_for),
            Method(
                "pdq_views_no_insets",
                "pdq +views, no insets",
                "pdq",
                "+views, no insets",
                False,
                "pdq",
                _rule_no_insets,
            ),
        ]
    out += [
        Method("phash_global", "phash global", "phash", "global", False, "phash", _rule_global),
        Method("phash_rotations", "phash +rot", "phash", "+rotations", False, "phash", _rule_rotations),
    ]
    if views_available():
        out.append(Method("phash_views", "phash +views", "phash", "+views", False, "phash", _views_for))
    return tuple(out)


def _bits(h: Hash) -> Bits:
    return h.bits, h.quality


def _matcher_sets(name: str, image: Image.Image, *, query: bool, known: bool) -> tuple[ViewHashes, ViewHashes]:
    """Query and known sets of one matcher algorithm: all views when ``matcher.views`` exists (the
    rules pick the views of each mode), else the eight rotation variants; known: the main hash plus
    the known views."""
    algorithm = registry.get(name)
    q: ViewHashes = {}
    k: ViewHashes = {}
    if query:
        if VIEWS is not None:
            views = VIEWS.query_view_hashes(algorithm, image, rotations=True, trim_borders=True, regions=True)
        else:
            views = variant_hashes(algorithm, image)
        q = {_shared_name(view, views): _bits(h) for view, h in views.items()}
    if known:
        k[None] = q["orig"] if query else _bits(algorithm.hash_image(image))
        if VIEWS is not None:
            k.update((view, _bits(h)) for view, h in VIEWS.known_view_hashes(algorithm, image).items())
    return q, k


def _shared_name(view: str, views: dict[str, Hash]) -> str:
    """``view``, or for the i-th inset view of ``views`` the placeholder ``inset@i,0,i+1,1``."""
    if not _is_inset(view) or VIEWS is None:
        return view
    i = [name for name in views if _is_inset(name)].index(view)
    return str(VIEWS.inset_view((i, 0, i + 1, 1)))


def hash_sets(image: Image.Image, *, query: bool, known: bool) -> tuple[dict[str, ViewHashes], dict[str, ViewHashes]]:
    """``(query sets, known sets)`` of an RGB image, keyed by hash set kind (``Method.hash_set``):

    - ``pdqhash``: query ``dihedral0..7`` = ``pdqhash.compute_dihedral`` (``dihedral0`` is the plain
      hash), known ``None`` = the plain hash;
    - ``imagehash``: ``imagehash.phash`` on both sides;
    - ``pdq`` / ``phash``: see :func:`_matcher_sets`.

    Each side is empty unless asked for.
    """
    ref_hashes, ref_quality = pdqhash.compute_dihedral(np.asarray(image))
    ref = [_reference_bits(h, ref_quality) for h in ref_hashes]
    ref_phash: Bits = (_phash_bits(imagehash.phash(image)), None)
    q: dict[str, ViewHashes] = {}
    k: dict[str, ViewHashes] = {}
    if query:
        q["pdqhash"] = {f"dihedral{i}": bits for i, bits in enumerate(ref)}
        q["imagehash"] = {None: ref_phash}
    if known:
        k["pdqhash"] = {None: ref[0]}
        k["imagehash"] = {None: ref_phash}
    for name in ("pdq", "phash"):
        q[name], k[name] = _matcher_sets(name, image, query=query, known=known)
    return ({s: v for s, v in q.items() if v}, {s: v for s, v in k.items() if v})


def _reference_bits(bit_array: np.ndarray, quality: int) -> Bits:
    return np.packbits(np.asarray(bit_array, dtype=np.uint8)).tobytes(), int(quality)


def _phash_bits(value: Any) -> bytes:
    return np.packbits(np.asarray(value.hash, dtype=bool).flatten()).tobytes()
