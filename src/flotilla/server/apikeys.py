"""API keys: long-lived credentials bound to one agent, team and role, for tools and CI.

The file `<state home>/api-keys.json` (mode 0600) holds only SHA-256 hashes of
the keys (a key is 256 random bits, so a fast hash is enough), so reading the
file does not give a key away. `fleet api-key add|list|revoke` edits it; the
daemon reads it on every POST /auth, so an added or revoked key counts at once
(tokens already issued stay valid until they expire).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from flotilla.counters import count
from flotilla.domain.errors import NotFound, UsageError
from flotilla.domain.roles import Role

KEY_PREFIX = "flk_"


@dataclass(frozen=True)
class ApiKey:
    id: str  # public: the first 12 hex digits of the hash
    sha256: str
    agent: str
    team: str
    role: str
    created_at: float


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def at(cls, home: Path) -> ApiKeys:
        return cls(home / "api-keys.json")

    def entries(self) -> list[ApiKey]:
        if not self.path.exists():
            return []
        try:
            rows = json.loads(self.path.read_text())["keys"]
            return [ApiKey(**row) for row in rows]
        except (ValueError, KeyError, TypeError) as exc:
            count("auth.api_keys_unreadable")
            raise UsageError(
                f"{self.path} is not a valid API key file ({exc}): fix it or remove it"
            ) from exc

    def match(self, key: str) -> ApiKey | None:
        digest = _digest(key)
        found = None
        for entry in self.entries():  # no early exit: the time taken says nothing
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return found

    def add(self, agent: str, team: str, role: Role) -> tuple[str, ApiKey]:
        """A new key (shown once, never stored) and its entry."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        digest = _digest(key)
        entry = ApiKey(digest[:12], digest, agent, team, role.value, round(time.time(), 3))
        with self._locked():
            self._write([*self.entries(), entry])
        return key, entry

    def revoke(self, key_id: str) -> ApiKey:
        with self._locked():
            keys = self.entries()
            gone = [k for k in keys if k.id == key_id]
            if not gone:
                raise NotFound(f"no API key with id {key_id!r}: see `fleet api-key list`")
            self._write([k for k in keys if k.id != key_id])
        return gone[0]

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_suffix(".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write(self, keys: list[ApiKey]) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"keys": [asdict(k) for k in keys]}, out, indent=1)
        os.replace(tmp, self.path)
