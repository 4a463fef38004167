"""The audit log: one JSON line per request (:class:`AuditLog`).

Each line holds ``time`` (UTC, ISO 8601 with milliseconds), ``key`` (the API key's id; ``null``
without auth or when no valid key was shown), ``client`` (address), ``method``, ``route``,
``status`` (the HTTP status), ``result`` (what the answer said: ``match``, ``no_match``,
``known_good``, ``error``, ``unauthorized``, ...), ``hashes`` (the hashes asked about or computed,
as ``algorithm:hex``, and the upload's SHA-256 when there was one), ``matches`` (the matched record
ids), ``generation`` (the index generation that answered), ``ms`` (time taken) and ``message``
for an error. Never the uploaded bytes. Each line is written whole with one
``write`` to a file opened for appending, under a lock, so that lines of other threads or other
worker processes never tear it.
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
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Lock()

    def write(self, **fields: Any) -> None:
        """Append one line: ``time`` first, then ``fields``."""
        now = datetime.now(UTC)
        line = json.dumps(
            {"time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z", **fields},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        data = (line + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                raise ValueError(f"{self.path}: the audit log is closed")
            written = os.write(self._fd, data)  # one append: whole lines even with several worker processes
            while written < len(data):  # a short write (disk nearly full): the rest follows at once
                written += os.write(self._fd, data[written:])

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
