"""Real git repositories in tmp_path, isolated from the user's and the system's git config."""

from __future__ import annotations

from pathlib import Path

import pytest
from workspace_helpers import GitRunner, make_repo, run_git


@pytest.fixture(autouse=True)
def _isolated(isolated_git: None) -> None:
    """Every test here runs with git isolated from the user's configuration."""


@pytest.fixture
def git() -> GitRunner:
    return run_git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def wt_root(tmp_path: Path) -> Path:
    """Where worktrees go: a folder outside the repository."""
    return tmp_path / "worktrees"
