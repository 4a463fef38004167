"""The public API: every advertised name is importable from `matcher`, and no re-export hides a module."""

from __future__ import annotations

import importlib
import types

import matcher


def test_every_public_name_exists():
    missing = [name for name in matcher.__all__ if not hasattr(matcher, name)]
    assert missing == []


def test_submodules_are_not_shadowed_by_functions():
    for name in ("scan", "compare", "hashing", "index", "formats", "variants", "imaging", "files"):
        module = importlib.import_module(f"matcher.{name}")
        assert isinstance(getattr(matcher, name), types.ModuleType) and getattr(matcher, name) is module
