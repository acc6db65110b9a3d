"""Real git repositories in tmp_path, isolated from the user's and the system's git config."""

from __future__ import annotations

from pathlib import Path

import pytest
from merging_helpers import make_repo


@pytest.fixture(autouse=True)
def _isolated(isolated_git: None) -> None:
    """Every test here runs with git isolated from the user's configuration."""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")
