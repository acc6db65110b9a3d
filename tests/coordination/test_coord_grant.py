"""Who may grant which role to a team member: never more than the granter has."""

from __future__ import annotations

import pytest

from flotilla.domain.roles import Role
from flotilla.server.auth import LOCAL, AuthError, Principal
from flotilla.server.routes_coordination import _may_grant


def _as(role: Role) -> Principal:
    return Principal(agent="someone", team="red", role=role, token_id="t")


@pytest.mark.parametrize("granted", ["coordinator", "merger"])
def test_a_team_lead_cannot_grant_a_role_with_more_than_its_own(granted: str) -> None:
    with pytest.raises(AuthError) as refused:
        _may_grant(_as(Role.TEAM_LEAD), granted)
    assert refused.value.status == 403 and refused.value.counter == "auth.forbidden_role"
    assert f"may not grant the role {granted!r}" in str(refused.value)


@pytest.mark.parametrize("granted", ["worker", "monitor", "team-lead"])
def test_a_team_lead_may_grant_roles_within_its_own(granted: str) -> None:
    _may_grant(_as(Role.TEAM_LEAD), granted)


def test_a_coordinator_and_the_local_user_may_grant_any_role() -> None:
    for who in (_as(Role.COORDINATOR), LOCAL):
        _may_grant(who, "coordinator")
