"""``matcher serve``: an HTTP matching service over the scan's pipeline and the index interface.

A thin layer: uploads are read and hashed by :mod:`matcher.pipeline` in memory, matched by the
scan's :class:`~matcher.scan.scanner.Scanner`, and hashes are searched with the index's own
search; the service adds HTTP, API keys, limits, an audit log, metrics, and following the index's
generations (:mod:`matcher.serve.live`). Library users build the ASGI application with
:func:`create_app` and run it on any ASGI server::

    from matcher.serve import ServeConfig, create_app
    app = create_app(ServeConfig(index="known-index", config_dir="serve-config"))

Layout: :mod:`~matcher.serve.config` (settings), :mod:`~matcher.serve.keys` (API keys, stored
hashed), :mod:`~matcher.serve.audit` (the JSON Lines audit log), :mod:`~matcher.serve.metrics`
(Prometheus text), :mod:`~matcher.serve.live` (the live index), :mod:`~matcher.serve.service`
(lookups, uploads, batching), :mod:`~matcher.serve.http` (bodies, multipart, errors),
:mod:`~matcher.serve.openapi` and :mod:`~matcher.serve.app` (routes). Needs the ``serve`` extra
(``pip install 'perceptual-matcher[serve]'``: Starlette, uvicorn, python-multipart).
"""

from __future__ import annotations

from .app import create_app, create_app_from_environment
from .config import ServeConfig, is_loopback
from .keys import ApiKey, KeyStore
from .live import LiveIndex, Snapshot

__all__ = [
    "ApiKey",
    "KeyStore",
    "LiveIndex",
    "ServeConfig",
    "Snapshot",
    "create_app",
    "create_app_from_environment",
    "is_loopback",
]
