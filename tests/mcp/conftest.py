"""Fixtures of the MCP tests: a repository and a private state home (see e2e_support)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import Fleet, fleet_session


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Afterwards: agents still running killed, the daemon stopped, tmux ended."""
    with fleet_session(tmp_path) as session:
        yield session
