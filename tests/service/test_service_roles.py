"""The permission matrix, cell by cell, against a table written out here by hand."""

from __future__ import annotations

import pytest

from flotilla.domain.errors import UsageError
from flotilla.domain.roles import MATRIX, Permission, Role, allowed, parse_role, roles_with

# x = allowed. Columns: coordinator, team-lead, worker, monitor, merger.
EXPECTED_TABLE = """
permission       coord lead worker monitor merger
read             x     x    x      x       x
spawn            x     x    .      .       .
kill             x     x    .      .       .
prompt           x     x    .      .       .
merge            x     x    .      .       x
push             x     .    .      .       x
workflow_run     x     .    .      .       .
task_create      x     x    .      .       .
task_assign      x     x    .      .       .
task_claim       x     .    x      .       .
task_complete    x     .    x      .       .
message_send     x     x    x      .       .
broadcast        x     x    .      .       .
blackboard_post  x     x    x      .       .
checkpoint       x     x    .      .       .
admin            x     .    .      .       .
"""
COLUMNS = [Role.COORDINATOR, Role.TEAM_LEAD, Role.WORKER, Role.MONITOR, Role.MERGER]


def _expected() -> dict[tuple[Role, Permission], bool]:
    lines = [line.split() for line in EXPECTED_TABLE.strip().splitlines()[1:]]
    return {
        (role, Permission(cells[0])): mark == "x"
        for cells in lines
        for role, mark in zip(COLUMNS, cells[1:], strict=True)
    }


EXPECTED = _expected()


def test_the_table_names_every_role_and_permission() -> None:
    assert {p for _, p in EXPECTED} == set(Permission)
    assert {r for r, _ in EXPECTED} == set(Role) == set(MATRIX)


@pytest.mark.parametrize(("role", "permission"), sorted(EXPECTED, key=str))
def test_cell(role: Role, permission: Permission) -> None:
    assert allowed(role, permission) is EXPECTED[(role, permission)]


def test_monitor_only_reads_and_coordinator_does_everything() -> None:
    assert MATRIX[Role.MONITOR] == {Permission.READ}
    assert MATRIX[Role.COORDINATOR] == set(Permission)


def test_roles_with_lists_the_roles_that_may() -> None:
    assert roles_with(Permission.PUSH) == [Role.COORDINATOR, Role.MERGER]
    assert roles_with(Permission.ADMIN) == [Role.COORDINATOR]


def test_parse_role_names_the_choices() -> None:
    assert parse_role("team-lead") is Role.TEAM_LEAD
    with pytest.raises(UsageError, match="unknown role 'boss': use one of coordinator, team-lead"):
        parse_role("boss")
