"""API keys, stored hashed: :class:`KeyStore` (``matcher serve keys add/list/revoke``).

A key is ``mk_<id>_<secret>``: ``id`` (8 hex digits) names it in the key file, the audit log and
``keys list``; ``secret`` is 32 random bytes (URL-safe base64). The key file (``keys.json`` in the
service's configuration directory, mode 0600) holds, per key, its id, a name, when it was created
and revoked, and the SHA-256 of the whole key, never the key itself: the key is shown once, when it
is added. A salted slow hash is not needed: the secret is 256 random bits, not a password.

The service re-reads the file when it changes (its size or modification time), so a key added or
revoked takes effect on the next request without a restart. Writes replace the file atomically.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = ["ApiKey", "KeyStore", "KEY_PREFIX"]

#: Every key starts with this (so that it is recognisable in a secret scanner).
KEY_PREFIX = "mk_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key as stored: ``id``, ``name``, ``digest`` (SHA-256 hex of the key), ``created_at`` and
    ``revoked_at`` (ISO 8601 UTC; ``None``: in force)."""

    id: str
    name: str
    digest: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields."""
        return {
            "id": self.id,
            "name": self.name,
            "digest": self.digest,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


class KeyStore:
    """The key file at ``path`` (``keys.json``); safe to use from several threads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, ApiKey] = {}

    # -- reading -----------------------------------------------------------------------------------

    def _load(self) -> dict[str, ApiKey]:
        """The keys, re-read when the file changed since the last read."""
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            with self._lock:
                self._stamp, self._keys = None, {}
            return {}
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot read the key file ({exc.strerror})") from None
        stamp = (status.st_ino, status.st_size, status.st_mtime_ns)
        with self._lock:
            if stamp == self._stamp:
                return self._keys
        try:
            data = json.loads(self.path.read_text("utf-8"))
            keys = {item["id"]: ApiKey(**item) for item in data.get("keys", [])}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise UsageError(f"{self.path}: not a readable key file ({exc})") from None
        with self._lock:
            self._stamp, self._keys = stamp, keys
        return keys

    def keys(self) -> list[ApiKey]:
        """Every key, revoked ones too, in creation order."""
        return list(self._load().values())

    def active_count(self) -> int:
        """Keys in force."""
        return sum(key.active for key in self._load().values())

    def check(self, presented: str) -> ApiKey | None:
        """The key in force that ``presented`` is, or ``None`` (unknown, malformed or revoked).
        The digest comparison takes the same time whatever the key."""
        if not presented.startswith(KEY_PREFIX):
            return None
        key_id = presented[len(KEY_PREFIX) :].split("_", 1)[0]
        stored = self._load().get(key_id)
        wanted = stored.digest if stored is not None else "0" * 64
        same = hmac.compare_digest(_digest(presented), wanted)
        if stored is None or not same or not stored.active:
            return None
        return stored

    # -- writing -----------------------------------------------------------------------------------

    def _write(self, keys: dict[str, ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"keys": [key.to_dict() for key in keys.values()]}, indent=2) + "\n"
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def add(self, name: str) -> tuple[ApiKey, str]:
        """A new key named ``name``: its stored form and the key itself (shown once, never stored)."""
        keys = dict(self._load())
        key_id = secrets.token_hex(4)
        while key_id in keys:
            key_id = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        stored = ApiKey(key_id, name, _digest(key), _now())
        keys[key_id] = stored
        self._write(keys)
        return stored, key

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke the key with this id (it stays listed, revoked); :class:`UsageError` for an unknown id."""
        keys = dict(self._load())
        stored = keys.get(key_id)
        if stored is None:
            raise UsageError(f"no key with id {key_id!r} in {self.path} (see 'matcher serve keys list')")
        if stored.active:
            stored = ApiKey(stored.id, stored.name, stored.digest, stored.created_at, _now())
            keys[key_id] = stored
            self._write(keys)
        return stored
