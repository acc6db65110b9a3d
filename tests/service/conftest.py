"""Fixtures of the service tests: a repository and a private state home.

Lighter than e2e's fleet_session: these tests start no agents, so the only thing
to clean up is a daemon still running (its pid file says so).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import FLEET, Fleet, make_repo


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_") and k != "TMUX"}
    env.update(
        {
            "FLOTILLA_HOME": str(home),
            "FLOTILLA_USER_CONFIG": str(tmp_path / "user-config.toml"),
            "FLOTILLA_TMUX_SOCKET": f"flotilla-test-{os.getpid()}-{tmp_path.name}",
        }
    )
    yield Fleet(repo, home, env)
    if (home / "daemon.pid").exists():
        subprocess.run(
            [*FLEET, "daemon", "stop"], env=env, cwd=repo, capture_output=True, timeout=60
        )
