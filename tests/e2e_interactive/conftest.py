"""Fixtures for the interactive end-to-end tests: the `fleet` of tests/e2e plus real tmux.

Each test gets its own tmux socket (env FLOTILLA_TMUX_SOCKET), whose server is killed
at teardown together with the daemon. A missing tmux skips these tests, except under
CI=true, where it fails them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import Fleet, fleet_session


def require_tmux() -> str:
    tmux = shutil.which("tmux")
    if tmux is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("tmux is not installed, and CI must run the tmux tests")
        pytest.skip("tmux is not installed")
    return tmux


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    require_tmux()
    with fleet_session(tmp_path) as session:
        yield session
