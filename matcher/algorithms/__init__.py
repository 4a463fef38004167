"""Perceptual hash algorithms and the registry that maps their names to them.

Each algorithm is a small object (see :class:`~matcher.algorithms.base.Algorithm`) that declares its
facts (names, bit length, distances, quality column and gate) and computes a
:class:`~matcher.hashes.Hash` from an RGB image. Everything else in matcher looks algorithms up in
:data:`registry` by name and asks them for their facts.

Modules: :mod:`.base` (the protocol), :mod:`.dihedral` (the variant naming), :mod:`.pdq` and
:mod:`.imagehash_family` (the built-ins) and :mod:`.registry`; none of them imports this package
back.
"""

from __future__ import annotations

from .base import QUALITY_RANGE, Algorithm
from .registry import BUILT_IN, Registry, registry

__all__ = ["Algorithm", "Registry", "registry", "get", "names", "hash_from_hex", "BUILT_IN", "QUALITY_RANGE"]

#: Shortcuts to the methods of :data:`registry`.
get = registry.get
names = registry.names
hash_from_hex = registry.hash_from_hex
