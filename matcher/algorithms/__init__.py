"""Perceptual hash algorithms and the registry that maps their names to them.

Each algorithm is a small object (see :class:`~matcher.algorithms.base.Algorithm`) that declares its
facts (names, bit length, distances, quality column and gate) and computes a
:class:`~matcher.hashes.Hash` from an RGB image. Everything else in matcher looks algorithms up in
:data:`registry` by name and asks them for their facts.

Modules: :mod:`.base` (the protocol), :mod:`.dihedral` (the variant naming), :mod:`.pdq` and
:mod:`.imagehash_family` (the built-ins) and :mod:`.algorithm_registry` (the registry class and
:data:`registry`; not named "registry", which is the instance); none of them imports this package
back.
"""

from __future__ import annotations

from .algorithm_registry import BUILT_IN, Registry, registry
from .base import QUALITY_RANGE, Algorithm

__all__ = ["Algorithm", "Registry", "registry", "get", "names", "hash_from_hex", "BUILT_IN", "QUALITY_RANGE"]

#: Shortcuts to the methods of :data:`registry`.
get = registry.get
names = registry.names
hash_from_hex = registry.hash_from_hex
