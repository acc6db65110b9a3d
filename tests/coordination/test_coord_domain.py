"""The pure rules of teams, swarms, posts and checkpoints: no I/O."""

from __future__ import annotations

import pytest

from flotilla.domain.coordination import (
    MAX_POST_CHARS,
    MAX_SWARM_SIZE,
    Checkpoint,
    Swarm,
    check_can_join,
    check_can_leave,
    check_cursor,
    check_limit,
    check_name,
    check_post,
    new_member,
    new_swarm,
    new_team,
    restore_prompt,
)
from flotilla.domain.errors import InvalidName, UsageError
from flotilla.domain.roles import Role


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", "", "-x", "x.lock", "a b", "x" * 65])
def test_names_that_could_escape_or_break_refs_are_refused(bad: str) -> None:
    with pytest.raises(InvalidName, match="team name") as caught:
        check_name("team", bad)
    assert "worker name" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_team_with_a_lead_starts_with_that_member() -> None:
    team = new_team("alpha", "/repo", 10.0, lead="boss", created_by="me")
    assert [(m.agent, m.role) for m in team.members] == [("boss", Role.TEAM_LEAD)]
    assert team.to_dict()["members"][0]["role"] == "team-lead"
    assert new_team("beta", "/repo", 1.0).members == ()


def test_a_team_needs_a_project() -> None:
    with pytest.raises(UsageError, match="needs a project"):
        new_team("alpha", "", 1.0)


@pytest.mark.parametrize("role", ["team-lead", "worker", "coordinator", "monitor", "merger"])
def test_every_role_of_the_matrix_is_a_member_role(role: str) -> None:
    team = new_team("alpha", "/repo", 1.0)
    assert new_member(team, "a1", role, 2.0).role.value == role


def test_unknown_roles_and_second_memberships_are_refused() -> None:
    team = new_team("alpha", "/repo", 1.0, lead="boss")
    with pytest.raises(UsageError, match="unknown role 'admin': use one of"):
        new_member(team, "a1", "admin", 2.0)
    with pytest.raises(UsageError, match="'boss' is already in team 'alpha' as team-lead"):
        new_member(team, "boss", "worker", 2.0)


@pytest.mark.parametrize("size", [0, -1, MAX_SWARM_SIZE + 1])
def test_swarm_sizes_out_of_range_are_refused(size: int) -> None:
    with pytest.raises(UsageError, match="maximum size must be between 1 and"):
        new_swarm("id", "s", "goal", size, 1.0)


def test_a_swarm_needs_a_goal() -> None:
    with pytest.raises(UsageError, match="goal is empty"):
        new_swarm("id", "s", "   ", 3, 1.0)


def test_joining_a_full_swarm_says_so_and_members_join_again_harmlessly() -> None:
    swarm = Swarm("id", "hive", "find bugs", 2, 1.0, members=("a", "b"))
    assert swarm.full
    assert check_can_join(swarm, "a") is False  # already a member: nothing to do
    with pytest.raises(UsageError, match=r"swarm 'hive' is full \(2 of 2 members\)"):
        check_can_join(swarm, "c")
    assert check_can_join(Swarm("id", "hive", "g", 3, 1.0, members=("a",)), "c") is True


def test_leaving_a_swarm_one_is_not_in_is_refused() -> None:
    with pytest.raises(UsageError, match="'z' is not a member of swarm 'hive'"):
        check_can_leave(Swarm("id", "hive", "g", 2, 1.0, members=("a",)), "z")


def test_posts_need_a_valid_author_topic_and_a_body_within_limits() -> None:
    assert check_post("a1", "findings", "x") == ("a1", "findings", "x")
    with pytest.raises(InvalidName, match="topic name"):
        check_post("a1", "../etc", "x")
    with pytest.raises(UsageError, match="post is empty"):
        check_post("a1", "t", " \n")
    with pytest.raises(UsageError, match=f"keep it under {MAX_POST_CHARS}"):
        check_post("a1", "t", "x" * (MAX_POST_CHARS + 1))


def test_cursors_and_limits_are_checked() -> None:
    assert check_cursor(0) == 0
    with pytest.raises(UsageError, match="cursor"):
        check_cursor(-1)
    with pytest.raises(UsageError, match="read limit"):
        check_limit(0)


def _checkpoint(summary: str = "did half", notes: str = "try b next") -> Checkpoint:
    return Checkpoint(
        id="c1",
        project="/repo",
        name="half",
        worker="w1",
        agent="claude",
        model=None,
        branch="flotilla/w1",
        commit="0123456789abcdef" * 2 + "01234567",
        session_id="s-1",
        summary=summary,
        notes=notes,
        created_at=1.0,
    )


def test_a_resumed_session_gets_the_prompt_alone() -> None:
    assert restore_prompt(_checkpoint(), "go on", resumed=True) == "go on"


def test_a_fresh_session_is_told_what_the_checkpoint_holds() -> None:
    text = restore_prompt(_checkpoint(), "go on", resumed=False)
    assert "checkpoint 'half' of worker 'w1'" in text
    assert "commit 0123456789ab" in text
    assert "did half" in text and "try b next" in text
    assert text.endswith("Task:\ngo on")
    bare = restore_prompt(_checkpoint(summary="", notes=""), "go on", resumed=False)
    assert "Summary" not in bare and "Notes" not in bare
