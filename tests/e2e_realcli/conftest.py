"""Fixtures for driving the real agent CLIs through Flotilla (the `fleet` CLI + daemon).

Reuses tests/e2e/e2e_support (a real git repository, a private state home, the CLI as
a subprocess) and tests/fakemodels (the fake model APIs), both imported by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import Fleet, fleet_session

from fakemodels.clienv import bin_dir

# A developer's real credentials or endpoints must never reach a test agent.
_PROVIDER_PREFIXES = ("ANTHROPIC_", "CLAUDE_", "OPENAI_", "CODEX_", "GEMINI_", "GOOGLE_")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """A repository and a private Flotilla home; the CLI launchers on the fleet's PATH."""
    with fleet_session(
        tmp_path, drop_env_prefixes=_PROVIDER_PREFIXES, path_first=bin_dir()
    ) as session:
        yield session
