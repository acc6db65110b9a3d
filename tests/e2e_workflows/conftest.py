"""Fixtures for the workflow end-to-end tests (see e2e_support and workflow_support)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import Fleet, fleet_session
from workflow_support import Agents, setup_agents


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with fleet_session(tmp_path) as session:
        yield session


@pytest.fixture
def agents(fleet: Fleet) -> Agents:
    """Scripted agents whose behaviour each test sets per stage (see Agents.on)."""
    return setup_agents(fleet)
