"""Fixtures for the runtime tests: real processes, a throwaway tmux server per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest

from flotilla.runtime.tmux import TmuxSession


@pytest.fixture
def base_env() -> dict[str, str]:
    return dict(os.environ)


@pytest.fixture
def tmux() -> Iterator[TmuxSession]:
    """A TmuxSession on a socket of its own; its server is killed at teardown."""
    if shutil.which("tmux") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tmux is not installed, and CI must run the tmux tests")
        pytest.skip("tmux is not installed")
    session = TmuxSession(socket=f"flotilla-test-{uuid.uuid4().hex[:10]}")
    yield session
    session.kill_server()
