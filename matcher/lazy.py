"""Deferred imports of heavy dependencies, so that a command imports only what it uses.

numba (whose import alone takes about a second on a busy machine), imagehash (which imports scipy
and PyWavelets), FAISS, Dask and Pillow's plugins are only needed by some commands. A module that
needs one of them at call time, not at import time, binds a stand-in instead of importing it::

    if TYPE_CHECKING:
        import imagehash
    else:
        imagehash = lazy_module("imagehash")

The real module is imported on the first attribute read (``imagehash.phash``), through
:func:`importlib.import_module`, whose per-module lock makes that safe from several threads; an
:class:`ImportError` then surfaces there, at the first use. :func:`lazy_function` names a function
of a module the same way, for values built at import time that hold a function (it pickles by name).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["LazyFunction", "LazyModule", "lazy_function", "lazy_module"]


class LazyModule(ModuleType):
    """Stands in for the module ``name`` until an attribute is read; then it is that module's attribute."""

    def __init__(self, name: str) -> None:
        super().__init__(name, f"deferred import of {name}")

    def __getattr__(self, attribute: str) -> Any:
        module = self.__dict__.get("_lazy_loaded")
        if module is None:
            module = importlib.import_module(self.__name__)
            self.__dict__["_lazy_loaded"] = module
        return getattr(module, attribute)

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(self.__name__))

    def __repr__(self) -> str:
        state = "imported" if "_lazy_loaded" in self.__dict__ else "not imported yet"
        return f"<lazy module {self.__name__!r} ({state})>"


def lazy_module(name: str) -> ModuleType:
    """A stand-in for the module ``name`` (absolute) that imports it on first use."""
    return LazyModule(name)


@dataclass(frozen=True, slots=True)
class LazyFunction:
    """The function ``module.name``, imported on the first call; compares and pickles by name."""

    module: str
    name: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(self.module), self.name)(*args, **kwargs)


def lazy_function(module: str, name: str) -> LazyFunction:
    """A callable standing in for ``module.name`` that imports ``module`` on the first call."""
    return LazyFunction(module, name)
