"""One way to run git: argv lists, no shell, a predictable environment, clear errors."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from flotilla.domain.errors import OperationFailed
from flotilla.workspace.errors import GitFailed

# Variables that would point git at another repository than the one we name.
# They leak in when Flotilla itself runs from a git hook or an agent's shell.
_REPO_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_VARS}
    # No prompts, stable English messages, and no optional index.lock writes by
    # read-only commands (status/diff) that would race an agent's own git calls.
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_OPTIONAL_LOCKS="0",
        GIT_EDITOR="true",
        LC_ALL="C",
    )
    if extra:
        env.update(extra)
    return env


def decode(data: bytes) -> str:
    """Paths are bytes to git; surrogateescape keeps non-UTF-8 names round-trippable."""
    return data.decode("utf-8", errors="surrogateescape")


def run(
    cwd: Path,
    args: Sequence[str],
    *,
    ok_codes: Sequence[int] = (0,),
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `git ARGS` in `cwd`; raise GitFailed unless the exit code is in `ok_codes`."""
    argv = ["git", *args]
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=git_env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError as exc:
        if not Path(cwd).is_dir():
            raise OperationFailed(f"directory does not exist: {cwd}") from exc
        raise OperationFailed("git is not installed or not on PATH: install git") from exc
    if proc.returncode not in ok_codes:
        stderr = decode(proc.stderr).strip()
        first = stderr.splitlines()[0] if stderr else f"exit code {proc.returncode}"
        raise GitFailed(
            f"git {args[0]} failed in {cwd}: {first}",
            argv=argv,
            returncode=proc.returncode,
            stderr=stderr,
        )
    return proc


def out(cwd: Path, args: Sequence[str], *, env: Mapping[str, str] | None = None) -> str:
    """Stdout of a successful git command, without the trailing newline."""
    return decode(run(cwd, args, env=env).stdout).rstrip("\n")


def succeeds(cwd: Path, args: Sequence[str]) -> bool:
    """True if git exits 0, False if it exits 1 (the usual 'no' of query commands)."""
    return run(cwd, args, ok_codes=(0, 1)).returncode == 0
