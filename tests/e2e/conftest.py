"""Fixtures for end-to-end tests (see e2e_support)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import FLEET, Fleet, make_repo


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
    env.update(
        {
            "FLOTILLA_HOME": str(home),
            "FLOTILLA_USER_CONFIG": str(tmp_path / "user-config.toml"),
            "FLOTILLA_TMUX_SOCKET": f"flotilla-test-{os.getpid()}-{tmp_path.name}",
            "GIT_AUTHOR_NAME": "Flotilla Test",
            "GIT_AUTHOR_EMAIL": "test@flotilla.invalid",
            "GIT_COMMITTER_NAME": "Flotilla Test",
            "GIT_COMMITTER_EMAIL": "test@flotilla.invalid",
        }
    )
    fl = Fleet(repo, home, env)
    yield fl
    subprocess.run(
        [*FLEET, "daemon", "stop"], env=env, capture_output=True, timeout=60, cwd=repo, check=False
    )
    if shutil.which("tmux"):
        subprocess.run(
            ["tmux", "-L", env["FLOTILLA_TMUX_SOCKET"], "kill-server"],
            capture_output=True,
            check=False,
        )
