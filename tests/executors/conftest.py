"""Fixtures of the executor tests: real git repositories, run folders, a stand-in binary."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture
def git() -> Callable[..., str]:
    return _git


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A real repository with one commit and a local identity."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "Test")
    _git(repo, "config", "user.email", "test@example.invalid")
    (repo / "README.md").write_text("# demo\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path


@pytest.fixture
def argv_dumper(tmp_path: Path) -> Path:
    """A stand-in agent binary printing its argv and cwd as JSON: shows what a real CLI gets."""
    path = tmp_path / "bin" / "dump-argv"
    path.parent.mkdir()
    body = "import json, os, sys\nprint(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd()}))\n"
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path
