"""One real `fleet serve` per test module (starting one costs a second or two); tests
tell their events apart by subject, team and cursor, not by an empty log. The router
tests get the stream routes alone, fresh per test (`served`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from router_support import Served, serve_streams
from streams_support import Daemon, serving


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with serving(tmp_path_factory.mktemp("streams")) as running:
        yield running


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serve_streams(tmp_path) as running:
        yield running
