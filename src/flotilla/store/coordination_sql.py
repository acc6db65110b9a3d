"""Persistence of teams, swarms, blackboard posts and checkpoints, on the SqlStore's engine.

Every method is one transaction (through the SqlStore's own, so SQLite writers of
this process queue on one lock). Moves that depend on what is stored lock first:
joining a swarm and posting to it lock the swarm's row (FOR UPDATE on PostgreSQL;
SQLite's single write lock, taken up front by BEGIN IMMEDIATE), so a swarm never
grows past its maximum size and a swarm's post ids commit in increasing order.
Bad input raises before anything is written; a lost race on a unique name is
reported like the plain duplicate it is.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from flotilla.domain.coordination import (
    Checkpoint,
    Member,
    Post,
    Swarm,
    Team,
    check_can_join,
    check_can_leave,
    check_cursor,
    check_limit,
)
from flotilla.domain.errors import NotFound, OperationFailed, UsageError
from flotilla.domain.roles import Role
from flotilla.store.base import Store
from flotilla.store.coordination_schema import (
    blackboard_posts,
    checkpoints,
    swarm_members,
    swarms,
    team_members,
    teams,
)
from flotilla.store.group_commit import GroupCommit
from flotilla.store.sql import SqlStore

_tm = team_members.c
_sw = swarms.c
_sm = swarm_members.c
_bp = blackboard_posts.c
_cp = checkpoints.c

# A post's two statements, built once (building them cost as much as running them).
_BUMP_POSTS = (
    sa.update(swarms)
    .where(_sw.name == sa.bindparam("swarm_name"))
    .values(post_count=_sw.post_count + sa.bindparam("count"))
    .returning(_sw.id)
)
_INSERT_POSTS = sa.insert(blackboard_posts).returning(_bp.id, sort_by_parameter_order=True)


class PostDraft(NamedTuple):
    """A post to write: its id comes from the store."""

    swarm: str
    author: str
    topic: str
    body: str
    at: float


def coordination_store(store: Store) -> CoordinationStore:
    """The coordination tables of `store` (which must be the SQL store)."""
    if not isinstance(store, SqlStore):
        raise OperationFailed(f"teams and swarms need the SQL store, not {type(store).__name__}")
    return CoordinationStore(store)


def _no_team(name: str) -> NotFound:
    return NotFound(f"no team named {name!r} (see `fleet team list`)")


def _no_swarm(name: str) -> NotFound:
    return NotFound(f"no swarm named {name!r} (see `fleet swarm list`)")


class CoordinationStore:
    """Coordination tables over an SqlStore (sharing its engine and its transactions)."""

    def __init__(self, store: SqlStore) -> None:
        self._sql = store
        self._pg = store.engine.dialect.name != "sqlite"

    def _tx(self, *, write: bool = False) -> Any:
        return self._sql._tx(write=write)

    # -- teams -------------------------------------------------------------------------------

    def create_team(self, team: Team) -> Team:
        """Insert a team with its first members; UsageError if the name is taken."""
        try:
            with self._tx(write=True) as conn:
                if _team_row(conn, team.name) is not None:
                    raise _team_taken(team.name)
                conn.execute(
                    sa.insert(teams).values(
                        name=team.name,
                        project=team.project,
                        created_by=team.created_by,
                        created_at=team.created_at,
                    )
                )
                for member in team.members:
                    _insert_member(conn, member)
                return _get_team(conn, team.name)
        except IntegrityError as exc:  # another creator won between our check and insert
            raise _team_taken(team.name) from exc

    def get_team(self, name: str) -> Team:
        with self._tx() as conn:
            return _get_team(conn, name)

    def list_teams(self) -> list[Team]:
        with self._tx() as conn:
            names = conn.execute(sa.select(teams.c.name).order_by(teams.c.name)).scalars()
            return [_get_team(conn, name) for name in list(names)]

    def add_member(self, member: Member) -> Member:
        """UsageError if the agent is in the team already (in any role)."""
        try:
            with self._tx(write=True) as conn:
                if _team_row(conn, member.team) is None:
                    raise _no_team(member.team)
                found = _member_row(conn, member.team, member.agent)
                if found is not None:
                    raise _member_taken(member.team, member.agent, found.role)
                _insert_member(conn, member)
                return member
        except IntegrityError as exc:
            raise _member_taken(member.team, member.agent, None) from exc

    def remove_member(self, team: str, agent: str) -> bool:
        """Whether there was such a member (a failed spawn takes its reservation back)."""
        with self._tx(write=True) as conn:
            gone = conn.execute(sa.delete(team_members).where(_tm.team == team, _tm.agent == agent))
            return bool(gone.rowcount)

    def memberships(self, agent: str) -> list[Member]:
        """The teams `agent` is in, and its role in each."""
        query = sa.select(team_members).where(_tm.agent == agent).order_by(_tm.team)
        with self._tx() as conn:
            return [_member(r._mapping) for r in conn.execute(query)]

    # -- swarms -----------------------------------------------------------------------------

    def create_swarm(self, swarm: Swarm) -> Swarm:
        try:
            with self._tx(write=True) as conn:
                if _swarm_row(conn, swarm.name) is not None:
                    raise _swarm_taken(swarm.name)
                if swarm.team is not None and _team_row(conn, swarm.team) is None:
                    raise _no_team(swarm.team)
                conn.execute(
                    sa.insert(swarms).values(
                        id=swarm.id,
                        name=swarm.name,
                        goal=swarm.goal,
                        max_size=swarm.max_size,
                        team=swarm.team,
                        post_count=0,
                        created_by=swarm.created_by,
                        created_at=swarm.created_at,
                    )
                )
                return _get_swarm(conn, swarm.name)
        except IntegrityError as exc:
            raise _swarm_taken(swarm.name) from exc

    def get_swarm(self, name: str) -> Swarm:
        with self._tx() as conn:
            return _get_swarm(conn, name)

    def list_swarms(self, team: str | None = None) -> list[Swarm]:
        query = sa.select(_sw.name).order_by(_sw.name)
        if team is not None:
            query = query.where(_sw.team == team)
        with self._tx() as conn:
            return [_get_swarm(conn, name) for name in list(conn.execute(query).scalars())]

    def join_swarm(self, name: str, agent: str, now: float) -> tuple[Swarm, bool]:
        """(the swarm, whether `agent` was added); joining twice is a no-op. UsageError when
        the swarm is full: the count and the insert happen under the swarm's row lock."""
        with self._tx(write=True) as conn:
            swarm = _get_swarm(conn, name, lock=self._pg)
            if not check_can_join(swarm, agent):
                return swarm, False
            conn.execute(
                sa.insert(swarm_members).values(swarm_id=swarm.id, agent=agent, joined_at=now)
            )
            return _get_swarm(conn, name), True

    def leave_swarm(self, name: str, agent: str) -> Swarm:
        with self._tx(write=True) as conn:
            swarm = _get_swarm(conn, name, lock=self._pg)
            check_can_leave(swarm, agent)
            conn.execute(
                sa.delete(swarm_members).where(_sm.swarm_id == swarm.id, _sm.agent == agent)
            )
            return _get_swarm(conn, name)

    # -- the blackboard ----------------------------------------------------------------------

    def post(self, swarm_name: str, author: str, topic: str, body: str, now: float) -> Post:
        """Append a post. Bumping the swarm's post count first takes its row lock, so the
        post's id (drawn after) is larger than every id of the swarm committed before it,
        and no later post of the swarm commits before this one is done."""
        with self._tx(write=True) as conn:
            return self.post_many_in(conn, [PostDraft(swarm_name, author, topic, body, now)])[0]

    def post_many_in(self, conn: Connection, drafts: Sequence[PostDraft]) -> list[Post]:
        """`post` for each draft, in order, inside the caller's write transaction (a group
        commit's): a bump per swarm and one multi-row insert, however many posts."""
        swarm_ids: dict[str, str] = {}
        for name, count in collections.Counter(d.swarm for d in drafts).items():
            bumped = conn.execute(_BUMP_POSTS, {"swarm_name": name, "count": count}).first()
            if bumped is None:
                raise _no_swarm(name)
            swarm_ids[name] = str(bumped.id)
        rows = [
            {
                "swarm_id": swarm_ids[d.swarm],
                "author": d.author,
                "topic": d.topic,
                "body": d.body,
                "created_at": d.at,
            }
            for d in drafts
        ]
        ids = conn.execute(_INSERT_POSTS, rows).scalars().all()
        return [
            Post(int(i), d.swarm, d.author, d.topic, d.body, d.at)
            for i, d in zip(ids, drafts, strict=True)
        ]

    def group_commit(self) -> GroupCommit:
        """Batches of writes (`post_in`, ...) of concurrent callers, one transaction each."""
        return GroupCommit(lambda: self._tx(write=True))

    def read(
        self, swarm_name: str, since: int = 0, limit: int = 100, topic: str | None = None
    ) -> list[Post]:
        """The swarm's posts after cursor `since`, oldest first, at most `limit`."""
        check_cursor(since)
        check_limit(limit)
        with self._tx() as conn:
            swarm = _swarm_row(conn, swarm_name)
            if swarm is None:
                raise _no_swarm(swarm_name)
            query = (
                sa.select(blackboard_posts)
                .where(_bp.swarm_id == swarm.id, _bp.id > since)
                .order_by(_bp.id)
                .limit(limit)
            )
            if topic is not None:
                query = query.where(_bp.topic == topic)
            return [
                Post(r.id, swarm_name, r.author, r.topic, r.body, r.created_at)
                for r in conn.execute(query)
            ]

    # -- checkpoints --------------------------------------------------------------------------

    def create_checkpoint(self, checkpoint: Checkpoint) -> Checkpoint:
        try:
            with self._tx(write=True) as conn:
                if _checkpoint_row(conn, checkpoint.project, checkpoint.name) is not None:
                    raise _checkpoint_taken(checkpoint.name)
                conn.execute(sa.insert(checkpoints).values(**_encode_checkpoint(checkpoint)))
                return checkpoint
        except IntegrityError as exc:
            raise _checkpoint_taken(checkpoint.name) from exc

    def find_checkpoint(self, project: str, name: str) -> Checkpoint | None:
        with self._tx() as conn:
            row = _checkpoint_row(conn, project, name)
            return None if row is None else _decode_checkpoint(row._mapping)

    def get_checkpoint(self, project: str, name: str) -> Checkpoint:
        found = self.find_checkpoint(project, name)
        if found is None:
            raise NotFound(
                f"no checkpoint named {name!r} in this project (see `fleet checkpoint list`)"
            )
        return found

    def list_checkpoints(self, project: str) -> list[Checkpoint]:
        """Oldest first."""
        query = (
            sa.select(checkpoints).where(_cp.project == project).order_by(_cp.created_at, _cp.name)
        )
        with self._tx() as conn:
            return [_decode_checkpoint(r._mapping) for r in conn.execute(query)]

    def delete_checkpoint(self, project: str, name: str) -> bool:
        with self._tx(write=True) as conn:
            gone = conn.execute(
                sa.delete(checkpoints).where(_cp.project == project, _cp.name == name)
            )
            return bool(gone.rowcount)


# -- rows ------------------------------------------------------------------------------------


def _team_taken(name: str) -> UsageError:
    return UsageError(f"a team named {name!r} already exists: pick another name")


def _swarm_taken(name: str) -> UsageError:
    return UsageError(f"a swarm named {name!r} already exists: pick another name")


def _checkpoint_taken(name: str) -> UsageError:
    return UsageError(
        f"a checkpoint named {name!r} already exists in this project: pick another name"
    )


def _member_taken(team: str, agent: str, role: str | None) -> UsageError:
    where = f" as {role}" if role else ""
    return UsageError(f"agent {agent!r} is already in team {team!r}{where}")


def _team_row(conn: Connection, name: str) -> Any:
    return conn.execute(sa.select(teams).where(teams.c.name == name)).first()


def _member_row(conn: Connection, team: str, agent: str) -> Any:
    query = sa.select(team_members).where(_tm.team == team, _tm.agent == agent)
    return conn.execute(query).first()


def _member(row: Mapping[Any, Any]) -> Member:
    return Member(row["team"], row["agent"], Role(row["role"]), row["joined_at"])


def _insert_member(conn: Connection, member: Member) -> None:
    conn.execute(
        sa.insert(team_members).values(
            team=member.team, agent=member.agent, role=member.role.value, joined_at=member.joined_at
        )
    )


def _get_team(conn: Connection, name: str) -> Team:
    row = _team_row(conn, name)
    if row is None:
        raise _no_team(name)
    query = sa.select(team_members).where(_tm.team == name).order_by(_tm.joined_at, _tm.agent)
    members = tuple(_member(r._mapping) for r in conn.execute(query))
    return Team(row.name, row.project, row.created_at, row.created_by, members)


def _swarm_row(conn: Connection, name: str, *, lock: bool = False) -> Any:
    query = sa.select(swarms).where(_sw.name == name)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).first()


def _get_swarm(conn: Connection, name: str, *, lock: bool = False) -> Swarm:
    row = _swarm_row(conn, name, lock=lock)
    if row is None:
        raise _no_swarm(name)
    query = sa.select(_sm.agent).where(_sm.swarm_id == row.id).order_by(_sm.joined_at, _sm.agent)
    members = tuple(conn.execute(query).scalars())
    return Swarm(
        id=row.id,
        name=row.name,
        goal=row.goal,
        max_size=row.max_size,
        created_at=row.created_at,
        team=row.team,
        created_by=row.created_by,
        members=members,
        posts=int(row.post_count),
    )


def _checkpoint_row(conn: Connection, project: str, name: str) -> Any:
    query = sa.select(checkpoints).where(_cp.project == project, _cp.name == name)
    return conn.execute(query).first()


def _encode_checkpoint(checkpoint: Checkpoint) -> dict[str, Any]:
    values = checkpoint.to_dict()
    values["commit_sha"] = values.pop("commit")
    values["created_at"] = checkpoint.created_at or time.time()
    return values


def _decode_checkpoint(row: Mapping[Any, Any]) -> Checkpoint:
    values = dict(row)
    values["commit"] = values.pop("commit_sha")
    return Checkpoint(**values)
