"""The merge queue's order for `fleet merge --all --order`: a pure function of the records."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla.domain.errors import UsageError
from flotilla.domain.worker import Worker
from flotilla.orchestrator.integration import Order, check_order, order_candidates


def worker(name: str, seq: int, tests: dict[str, Any] | None, changed: int = 1) -> Worker:
    result = {"tests": tests, "insertions": changed, "deletions": 0}
    return Worker(
        id=name, name=name, project="/p", agent="scripted", prompt="", seq=seq, result=result
    )


def test_orders() -> None:
    ws = [
        worker("d-untested", 1, None),
        worker("c-failing", 2, {"exit_code": 1, "passed": 9, "failed": 1}),
        worker("b-pass-big", 3, {"exit_code": 0, "passed": 5, "failed": 0}, changed=50),
        worker("a-pass-more", 4, {"exit_code": 0, "passed": 7, "failed": 0}),
        worker("e-pass-small", 5, {"exit_code": 0, "passed": 5, "failed": 0}, changed=2),
    ]

    def names(order: Order) -> list[str]:
        return [w.name for w in order_candidates(ws, order)]

    assert names("seq") == ["d-untested", "c-failing", "b-pass-big", "a-pass-more", "e-pass-small"]
    assert names("name") == sorted(w.name for w in ws)
    assert names("tests") == [
        "a-pass-more",
        "e-pass-small",
        "b-pass-big",
        "d-untested",
        "c-failing",
    ]


def test_unknown_order_is_bad_input() -> None:
    with pytest.raises(UsageError, match="seq, tests, name"):
        check_order("random")
