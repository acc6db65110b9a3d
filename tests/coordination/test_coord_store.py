"""The coordination tables on SQLite and PostgreSQL: teams, swarms, posts, checkpoints."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import DBAPIError

from flotilla.domain.coordination import Checkpoint, Member, new_swarm, new_team
from flotilla.domain.errors import NotFound, UsageError
from flotilla.domain.roles import Role
from flotilla.store import SqlStore
from flotilla.store.base import Store
from flotilla.store.coordination_schema import blackboard_posts
from flotilla.store.coordination_sql import CoordinationStore, coordination_store
from flotilla.store.schema import metadata

OURS = {"teams", "team_members", "swarms", "swarm_members", "blackboard_posts", "checkpoints"}


@pytest.fixture
def coord(store: Store) -> CoordinationStore:
    return coordination_store(store)


def _table_of(diff: Any) -> str | None:
    """The table one compare_metadata entry is about (modify_* entries come in a list)."""
    entry = diff[0] if isinstance(diff, list) else diff
    for part in entry[1:]:
        if isinstance(part, sa.Table):
            return str(part.name)
        table = getattr(part, "table", None)
        if isinstance(table, sa.Table):
            return str(table.name)
    return entry[2] if len(entry) > 2 and isinstance(entry[2], str) else None


def test_the_migration_builds_exactly_these_tables(store: Store) -> None:
    assert isinstance(store, SqlStore)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        tables = set(sa.inspect(conn).get_table_names())
    assert tables >= OURS
    assert [d for d in diff if _table_of(d) in OURS] == []


# -- teams ----------------------------------------------------------------------------------


def test_teams_and_members(coord: CoordinationStore) -> None:
    team = coord.create_team(new_team("alpha", "/repo", 1.0, lead="boss", created_by="me"))
    assert team.created_by == "me" and [m.agent for m in team.members] == ["boss"]
    coord.add_member(Member("alpha", "w1", Role.WORKER, 2.0))
    coord.add_member(Member("alpha", "m1", Role.MONITOR, 3.0))
    again = coord.get_team("alpha")
    assert [(m.agent, m.role) for m in again.members] == [
        ("boss", Role.TEAM_LEAD),
        ("w1", Role.WORKER),
        ("m1", Role.MONITOR),
    ]
    coord.create_team(new_team("beta", "/repo", 4.0))
    coord.add_member(Member("beta", "w1", Role.MERGER, 5.0))
    assert [t.name for t in coord.list_teams()] == ["alpha", "beta"]
    assert [(m.team, m.role) for m in coord.memberships("w1")] == [
        ("alpha", Role.WORKER),
        ("beta", Role.MERGER),
    ]
    assert coord.remove_member("beta", "w1") is True
    assert coord.remove_member("beta", "w1") is False


def test_duplicate_teams_and_members_are_refused_and_nothing_changes(
    coord: CoordinationStore,
) -> None:
    coord.create_team(new_team("alpha", "/repo", 1.0, lead="boss"))
    with pytest.raises(UsageError, match="a team named 'alpha' already exists"):
        coord.create_team(new_team("alpha", "/other", 2.0, lead="intruder"))
    with pytest.raises(UsageError, match="'boss' is already in team 'alpha' as team-lead"):
        coord.add_member(Member("alpha", "boss", Role.WORKER, 3.0))
    team = coord.get_team("alpha")
    assert team.project == "/repo"
    assert [(m.agent, m.role) for m in team.members] == [("boss", Role.TEAM_LEAD)]


def test_unknown_teams_are_not_found(coord: CoordinationStore) -> None:
    with pytest.raises(NotFound, match="no team named 'ghost'"):
        coord.get_team("ghost")
    with pytest.raises(NotFound, match="no team named 'ghost'"):
        coord.add_member(Member("ghost", "w1", Role.WORKER, 1.0))
    assert coord.memberships("w1") == []


# -- swarms ----------------------------------------------------------------------------------


def test_swarms_join_leave_and_refuse_when_full(coord: CoordinationStore) -> None:
    coord.create_team(new_team("alpha", "/repo", 1.0))
    coord.create_swarm(new_swarm("s1", "hive", "find the bug", 2, 1.0, team="alpha"))
    swarm, joined = coord.join_swarm("hive", "a", 2.0)
    assert joined and swarm.members == ("a",)
    swarm, joined = coord.join_swarm("hive", "a", 3.0)
    assert not joined and swarm.members == ("a",)
    coord.join_swarm("hive", "b", 4.0)
    with pytest.raises(UsageError, match=r"swarm 'hive' is full \(2 of 2 members\)"):
        coord.join_swarm("hive", "c", 5.0)
    assert coord.get_swarm("hive").members == ("a", "b")
    assert coord.leave_swarm("hive", "a").members == ("b",)
    with pytest.raises(UsageError, match="'a' is not a member"):
        coord.leave_swarm("hive", "a")
    assert coord.join_swarm("hive", "c", 6.0)[0].members == ("b", "c")
    assert [s.name for s in coord.list_swarms("alpha")] == ["hive"]
    assert coord.list_swarms("beta") == []


def test_bad_swarms_store_nothing(coord: CoordinationStore) -> None:
    with pytest.raises(NotFound, match="no team named 'ghost'"):
        coord.create_swarm(new_swarm("s1", "hive", "goal", 2, 1.0, team="ghost"))
    assert coord.list_swarms() == []
    coord.create_swarm(new_swarm("s1", "hive", "goal", 2, 1.0))
    with pytest.raises(UsageError, match="a swarm named 'hive' already exists"):
        coord.create_swarm(new_swarm("s2", "hive", "other goal", 9, 1.0))
    assert [(s.id, s.goal) for s in coord.list_swarms()] == [("s1", "goal")]
    with pytest.raises(NotFound, match="no swarm named 'nest'"):
        coord.join_swarm("nest", "a", 1.0)


# -- the blackboard ----------------------------------------------------------------------------


def test_posts_are_read_by_cursor_topic_and_limit(coord: CoordinationStore) -> None:
    coord.create_swarm(new_swarm("s1", "hive", "goal", 5, 1.0))
    coord.create_swarm(new_swarm("s2", "nest", "goal", 5, 1.0))
    made = [
        coord.post("hive", "a", "bugs" if i % 2 else "ideas", f"post {i}", float(i))
        for i in range(6)
    ]
    coord.post("nest", "b", "bugs", "elsewhere", 9.0)
    ids = [p.id for p in made]
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert [p.body for p in coord.read("hive")] == [f"post {i}" for i in range(6)]
    after = coord.read("hive", since=ids[2])
    assert [p.id for p in after] == ids[3:]
    assert [p.id for p in coord.read("hive", since=ids[1], limit=2)] == ids[2:4]
    assert [p.body for p in coord.read("hive", topic="bugs")] == ["post 1", "post 3", "post 5"]
    assert coord.read("hive", since=ids[-1]) == []
    assert [p.body for p in coord.read("nest")] == ["elsewhere"]
    assert coord.get_swarm("hive").posts == 6


def test_posting_to_an_unknown_swarm_stores_nothing(coord: CoordinationStore) -> None:
    with pytest.raises(NotFound, match="no swarm named 'ghost'"):
        coord.post("ghost", "a", "t", "hello", 1.0)
    with pytest.raises(NotFound, match="no swarm named 'ghost'"):
        coord.read("ghost")
    with pytest.raises(UsageError, match="cursor"):
        coord.read("ghost", since=-5)
    assert isinstance(coord._sql, SqlStore)
    with coord._sql.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(blackboard_posts)).scalar() == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE blackboard_posts SET body = 'rewritten'",
        "DELETE FROM blackboard_posts",
    ],
)
def test_posts_are_append_only_in_the_database_itself(
    store: Store, coord: CoordinationStore, statement: str
) -> None:
    coord.create_swarm(new_swarm("s1", "hive", "goal", 5, 1.0))
    coord.post("hive", "a", "t", "original", 1.0)
    assert isinstance(store, SqlStore)
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(sa.text(statement))
    assert [p.body for p in coord.read("hive")] == ["original"]


# -- checkpoints ------------------------------------------------------------------------------


def _checkpoint(name: str, project: str = "/repo", at: float = 1.0) -> Checkpoint:
    return Checkpoint(
        id=f"{project}-{name}".replace("/", "_"),
        project=project,
        name=name,
        worker="w1",
        agent="scripted",
        model=None,
        branch="flotilla/w1",
        commit="a" * 40,
        session_id="s-1",
        summary="half done",
        notes="",
        created_at=at,
        created_by="boss",
    )


def test_checkpoints_are_unique_per_project(coord: CoordinationStore) -> None:
    first = coord.create_checkpoint(_checkpoint("half", at=2.0))
    coord.create_checkpoint(_checkpoint("early", at=1.0))
    coord.create_checkpoint(_checkpoint("half", project="/other"))
    with pytest.raises(UsageError, match="a checkpoint named 'half' already exists"):
        coord.create_checkpoint(_checkpoint("half", at=3.0))
    assert coord.get_checkpoint("/repo", "half") == first
    assert [c.name for c in coord.list_checkpoints("/repo")] == ["early", "half"]
    assert [c.name for c in coord.list_checkpoints("/other")] == ["half"]
    with pytest.raises(NotFound, match="no checkpoint named 'late'"):
        coord.get_checkpoint("/repo", "late")
    assert coord.delete_checkpoint("/other", "half") is True
    assert coord.find_checkpoint("/other", "half") is None
