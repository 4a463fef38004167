"""The service's settings: :class:`ServeConfig` (what ``matcher serve`` and :func:`create_app` take).

Everything a worker process needs to build the same application is in this one frozen value, which
round-trips through JSON (:meth:`ServeConfig.to_json` / :meth:`ServeConfig.from_json`), so that
uvicorn's worker processes (``--workers N``) rebuild it from an environment variable.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = [
    "CONFIG_ENVIRONMENT",
    "DEFAULT_CONFIG_DIR",
    "ServeConfig",
    "is_loopback",
]

#: The environment variable through which uvicorn's worker processes receive the configuration.
CONFIG_ENVIRONMENT = "MATCHER_SERVE_CONFIG"
#: Where keys (``keys.json``) and the audit log (``audit.jsonl``) live unless ``--config`` names a directory.
DEFAULT_CONFIG_DIR = os.path.join("~", ".config", "matcher", "serve")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names the loopback interface only (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """How the service runs.

    - ``index``: the index directory (single or sharded), opened read-only and watched for new
      generations every ``reload_interval`` seconds (``0``: never).
    - ``config_dir``: holds ``keys.json`` (the API keys, stored hashed; ``matcher serve keys``) and,
      unless ``audit_log`` names another file, the audit log ``audit.jsonl``.
    - ``auth``: API keys required (``False`` only with a loopback ``host``: ``--no-auth``).
    - ``algorithms``: the algorithms matched (``()``: every algorithm the index holds);
      ``max_distances``: their largest distance (the algorithm's default otherwise), also the
      ceiling a lookup may ask for.
    - Limits: ``max_body_bytes`` (413 above), ``max_pixels`` (an image over it is an error answer),
      ``max_lookup_hashes`` per lookup request (413 above), ``request_timeout`` seconds for the
      work of one request (503 after it), ``body_timeout`` seconds to receive a body (408 after
      it), ``max_pending`` requests waiting for the matcher (503 above).
    - ``max_batch``: hashes searched together at most (concurrent lookups are gathered into one
      search, without waiting: what arrives while a search runs goes into the next one).
    - ``hash_threads``: images decoded and hashed at once.
    - ``metrics_dir``: a directory the worker processes of one instance share, where each publishes
      its metrics so that ``/metrics`` sums them (``matcher serve --workers N`` makes one; ``None``:
      this process's figures only).
    - ``search_threads``: threads one search may use (``None``, the default: as the search core
      decides from the batch's work, up to every core; small batches run on one thread).
    """

    index: str
    config_dir: str = DEFAULT_CONFIG_DIR
    audit_log: str | None = None
    auth: bool = True
    host: str = "127.0.0.1"
    algorithms: tuple[str, ...] = ()
    max_distances: dict[str, int] = field(default_factory=dict)
    max_body_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_lookup_hashes: int = 10_000
    request_timeout: float = 30.0
    body_timeout: float = 30.0
    max_pending: int = 256
    max_batch: int = 4096
    hash_threads: int = 2
    search_threads: int | None = None
    metrics_dir: str | None = None
    reload_interval: float = 2.0

    def __post_init__(self) -> None:
        if not self.auth and not is_loopback(self.host):
            raise UsageError(
                f"--no-auth is allowed only on the loopback interface (127.0.0.1, ::1), not on {self.host}: "
                "anyone who can reach the port could query the hash lists; create a key with "
                "'matcher serve keys add' instead"
            )
        for name in (
            "max_body_bytes",
            "max_pixels",
            "max_lookup_hashes",
            "max_pending",
            "max_batch",
            "hash_threads",
            "search_threads",
        ):
            value = getattr(self, name)
            if name == "search_threads" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be a positive integer, not {value!r}")
        for name in ("request_timeout", "body_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise UsageError(f"{name} must be a positive number of seconds, not {value!r}")
        if isinstance(self.reload_interval, bool) or self.reload_interval < 0:
            raise UsageError(f"reload_interval must be zero or more seconds, not {self.reload_interval!r}")

    @property
    def config_path(self) -> Path:
        """The configuration directory, with ``~`` expanded."""
        return Path(os.path.expanduser(self.config_dir))

    @property
    def keys_path(self) -> Path:
        """The key file: ``keys.json`` in the configuration directory."""
        return self.config_path / "keys.json"

    @property
    def audit_path(self) -> Path:
        """The audit log: ``audit_log``, else ``audit.jsonl`` in the configuration directory."""
        return Path(os.path.expanduser(self.audit_log)) if self.audit_log else self.config_path / "audit.jsonl"

    def to_json(self) -> str:
        """The configuration as JSON (for worker processes)."""
        data = asdict(self)
        data["algorithms"] = list(self.algorithms)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        """The inverse of :meth:`to_json`."""
        data: dict[str, Any] = json.loads(text)
        data["algorithms"] = tuple(data.get("algorithms") or ())
        return cls(**data)
