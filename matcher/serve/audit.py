"""The audit log: one JSON line per request (:class:`AuditLog`).

Each line holds ``time`` (UTC, ISO 8601 with milliseconds), ``key`` (the API key's id; ``null``
without auth or when no valid key was shown), ``client`` (address), ``method``, ``route``,
``status`` (the HTTP status), ``result`` (what the answer said: ``match``, ``no_match``,
``known_good``, ``error``, ``unauthorized``, ...), ``hashes`` (the hashes asked about or computed,
as ``algorithm:hex``, and the upload's SHA-256 when there was one), ``matches`` (the matched record
ids), ``generation`` (the index generation that answered), ``ms`` (time taken) and ``message``
for an error. Never the uploaded bytes. Lines are written whole and flushed one by one, under a
lock, so a line is never torn by another thread's.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["AuditLog"]


class AuditLog:
    """Appends JSON lines to ``path`` (created with mode 0600, its directory as needed)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._handle = os.fdopen(fd, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, **fields: Any) -> None:
        """Append one line: ``time`` first, then ``fields``."""
        now = datetime.now(UTC)
        line = json.dumps(
            {"time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z", **fields},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._handle.close()
