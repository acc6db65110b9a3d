"""Fixtures for driving the real agent CLIs through Flotilla (the `fleet` CLI + daemon).

Reuses tests/e2e/e2e_support (a real git repository, a private state home, the CLI as
a subprocess) and tests/fakemodels (the fake model APIs), both imported by name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parents[1]
for _folder in (_TESTS, _TESTS / "e2e"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from e2e_support import FLEET, Fleet, make_repo  # noqa: E402

from fakemodels.clienv import bin_dir  # noqa: E402

# A developer's real credentials or endpoints must never reach a test agent.
_PROVIDER_PREFIXES = ("ANTHROPIC_", "CLAUDE_", "OPENAI_", "CODEX_", "GEMINI_", "GOOGLE_")
_TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """A repository and a private Flotilla home; the CLI launchers on the fleet's PATH."""
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("FLOTILLA_", *_PROVIDER_PREFIXES))
    }
    env.update(
        {
            "PATH": os.pathsep.join([str(bin_dir()), env.get("PATH", "/usr/bin:/bin")]),
            "FLOTILLA_HOME": str(home),
            "FLOTILLA_USER_CONFIG": str(tmp_path / "user-config.toml"),
            "FLOTILLA_TMUX_SOCKET": f"flotilla-rc-{os.getpid()}-{tmp_path.name}",
            "GIT_AUTHOR_NAME": "Flotilla Test",
            "GIT_AUTHOR_EMAIL": "test@flotilla.invalid",
            "GIT_COMMITTER_NAME": "Flotilla Test",
            "GIT_COMMITTER_EMAIL": "test@flotilla.invalid",
        }
    )
    fl = Fleet(repo, home, env)
    yield fl
    _stop_leftover_agents(fl)
    subprocess.run(
        [*FLEET, "daemon", "stop"], env=env, capture_output=True, timeout=60, cwd=repo, check=False
    )
    if shutil.which("tmux"):
        subprocess.run(
            ["tmux", "-L", env["FLOTILLA_TMUX_SOCKET"], "kill-server"],
            capture_output=True,
            check=False,
        )


def _stop_leftover_agents(fl: Fleet) -> None:
    """A failed test may leave an agent running (agents outlive the daemon): kill it."""
    if not fl.home.exists():
        return  # the daemon never started
    listed = fl.run("--json", "list", check=False, timeout=30)
    if listed.returncode != 0:
        return
    for worker in json.loads(listed.stdout or "[]"):
        if worker["state"] not in _TERMINAL:
            fl.run("kill", worker["name"], "--force", check=False, timeout=60)
