"""Helpers of the coordination tests: real git repositories."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ID = {
    "GIT_AUTHOR_NAME": "Flotilla Test",
    "GIT_AUTHOR_EMAIL": "test@flotilla.invalid",
    "GIT_COMMITTER_NAME": "Flotilla Test",
    "GIT_COMMITTER_EMAIL": "test@flotilla.invalid",
}


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_ID},
    )
    return proc.stdout


def make_repo(path: Path, config: str) -> Path:
    """A repository with one commit and the project config `config`."""
    (path / ".flotilla").mkdir(parents=True)
    (path / ".flotilla" / "config.toml").write_text(config)
    (path / "app.py").write_text("def answer():\n    return 41\n")
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path
