"""Where Flotilla keeps its files: the state home, per-project folders, the socket, the database.

Every function takes an optional `env` mapping (default: the process environment)
so that callers and tests can resolve paths for another environment without
changing this process's.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

USER_CONFIG_ENV = "FLOTILLA_USER_CONFIG"
HOME_ENV = "FLOTILLA_HOME"
PROJECT_CONFIG = Path(".flotilla") / "config.toml"

# sun_path is 108 bytes on Linux (104 on macOS); keep a margin for the NUL byte.
_MAX_SOCKET_PATH = 100


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME")
    return Path(home) if home else Path.home()


def _xdg(env: Mapping[str, str], name: str, fallback: str) -> Path:
    # The XDG spec: an unset or empty variable, or a relative path, means "use the default".
    value = env.get(name, "")
    if value and os.path.isabs(value):
        return Path(value)
    return _home(env) / fallback


def state_home(env: Mapping[str, str] | None = None) -> Path:
    """FLOTILLA_HOME, else $XDG_DATA_HOME/flotilla, else ~/.local/share/flotilla."""
    env = _env(env)
    explicit = env.get(HOME_ENV, "")
    if explicit:
        return Path(explicit).expanduser().absolute()
    return _xdg(env, "XDG_DATA_HOME", ".local/share") / "flotilla"


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """FLOTILLA_USER_CONFIG, else $XDG_CONFIG_HOME/flotilla/config.toml, else ~/.config/..."""
    env = _env(env)
    explicit = env.get(USER_CONFIG_ENV, "")
    if explicit:
        return Path(explicit).expanduser().absolute()
    return _xdg(env, "XDG_CONFIG_HOME", ".config") / "flotilla" / "config.toml"


def project_config_path(repo: Path) -> Path:
    """The committable project file, `<repo>/.flotilla/config.toml`."""
    return repo.absolute() / PROJECT_CONFIG


def project_slug(repo: Path) -> str:
    """`<name>-<hash>`: readable, yet two clones with the same folder name never share state."""
    resolved = repo.expanduser().resolve()
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", resolved.name).strip("-.") or "repo"
    digest = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:10]
    return f"{name}-{digest}"


def default_worktree_root(repo: Path, env: Mapping[str, str] | None = None) -> Path:
    """Where worktrees of `repo` go when `project.worktree_root` is empty."""
    return state_home(env) / "worktrees" / project_slug(repo)


def runs_dir(env: Mapping[str, str] | None = None) -> Path:
    """Parent of every worker's folder (logs, events, result.json)."""
    return state_home(env) / "runs"


def socket_path(env: Mapping[str, str] | None = None) -> Path:
    """The daemon's Unix socket: in the state home, or in /tmp when that path is too long."""
    path = state_home(env) / "daemon.sock"
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:12]
    return Path("/tmp") / f"flotilla-{os.getuid()}-{digest}.sock"


def database_path(env: Mapping[str, str] | None = None) -> Path:
    return state_home(env) / "flotilla.db"


def database_url_default(env: Mapping[str, str] | None = None) -> str:
    """SQLAlchemy URL of the default store, a SQLite file in the state home."""
    return f"sqlite:///{database_path(env)}"


def daemon_file(name: str, env: Mapping[str, str] | None = None) -> Path:
    """The daemon's lock, pid and log files (`daemon.lock`, `daemon.pid`, `daemon.log`)."""
    return state_home(env) / f"daemon.{name}"
