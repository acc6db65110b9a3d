"""Fixtures for the interactive end-to-end tests: the `fleet` of tests/e2e plus real tmux.

Each test gets its own tmux socket (env FLOTILLA_TMUX_SOCKET), whose server is killed
at teardown together with the daemon. A missing tmux skips these tests, except under
CI=true, where it fails them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_E2E = str(Path(__file__).resolve().parents[1] / "e2e")
if _E2E not in sys.path:
    sys.path.insert(0, _E2E)

from e2e_support import FLEET, Fleet, make_repo  # noqa: E402

from flotilla.runtime.tmux import TmuxSession  # noqa: E402


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
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOTILLA_")}
    env.pop("TMUX", None)  # a developer's own tmux must not be the one the tests talk to
    env.update(
        {
            "FLOTILLA_HOME": str(home),
            "FLOTILLA_USER_CONFIG": str(tmp_path / "user-config.toml"),
            "FLOTILLA_TMUX_SOCKET": f"flotilla-ti-{os.getpid()}-{tmp_path.name}",
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
    TmuxSession(env["FLOTILLA_TMUX_SOCKET"]).kill_server()  # also removes the socket file
