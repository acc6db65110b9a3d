"""Which hosts `fleet serve --no-auth` accepts: loopback only, names other than localhost not."""

from __future__ import annotations

import pytest

from flotilla.cli.serve import check_bind, is_loopback
from flotilla.domain.errors import UsageError


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("fleet.example.org", False),
    ],
)
def test_loopback_and_auth(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    check_bind(host, auth=True)  # with auth any address is fine
    if loopback:
        check_bind(host, auth=False)
    else:
        with pytest.raises(
            UsageError, match=f"--no-auth is only allowed on loopback, not on '{host}'"
        ):
            check_bind(host, auth=False)
