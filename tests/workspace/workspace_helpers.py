"""Helpers shared by the workspace tests (a unique module name: tests have no packages)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

GitRunner = Callable[..., str]


def run_git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    run_git(path, "init", "--quiet")
    (path / "README.md").write_text("# demo\n")
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text("def main():\n    return 1\n")
    (path / ".gitignore").write_text("*.log\n")
    run_git(path, "add", "-A")
    run_git(path, "commit", "--quiet", "-m", "first")
    return path
