"""The fleet secret: $FLOTILLA_SECRET, else a file (mode 0600) made on first use.

Tokens are signed with a key derived from it (server/auth.py); it is never logged
or returned.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from flotilla.counters import count
from flotilla.domain.errors import UsageError

log = logging.getLogger("flotilla.auth")

SECRET_ENV = "FLOTILLA_SECRET"
SECRET_FILE_ENV = "FLOTILLA_SECRET_FILE"
MIN_SECRET_CHARS = 16


def secret_path(home: Path, env: Mapping[str, str]) -> Path:
    explicit = env.get(SECRET_FILE_ENV, "")
    return Path(explicit).expanduser().absolute() if explicit else home / "secret"


def load_secret(home: Path, env: Mapping[str, str]) -> tuple[str, str]:
    """(secret, where it came from): $FLOTILLA_SECRET, else the secret file, made on first use."""
    value = env.get(SECRET_ENV, "")
    if value:
        _check_length(value, f"${SECRET_ENV}")
        return value, f"${SECRET_ENV}"
    path = secret_path(home, env)
    if not path.exists():
        _create_secret(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise UsageError(
            f"the secret file {path} can be read by others (mode {mode:04o}): run chmod 600 {path}"
        )
    text = path.read_text().strip()
    _check_length(text, str(path))
    return text, str(path)


def _check_length(secret: str, origin: str) -> None:
    if len(secret) < MIN_SECRET_CHARS:
        raise UsageError(
            f"the fleet secret from {origin} is shorter than {MIN_SECRET_CHARS} characters: "
            "use a long random value (or remove it and let Flotilla make one)"
        )


def _create_secret(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        count("auth.secret_made_concurrently")  # another process made it first: use theirs
        return
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32) + "\n")
    log.info("generated a fleet secret in %s", path)
