"""One real `fleet serve` per test module (starting one costs a second or two); tests
tell their events apart by subject, team and cursor, not by an empty log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streams_support import Daemon, serving


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with serving(tmp_path_factory.mktemp("streams")) as running:
        yield running
