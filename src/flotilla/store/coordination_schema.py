"""The coordination tables (teams, swarms, the blackboard, checkpoints) as SQLAlchemy Core
objects on the store's one `metadata`.

A swarm row counts its posts (`post_count`): a poster bumps it first, which locks
the swarm's row until the post is committed, so a swarm's post ids are handed out
and committed in the same order and a reader's cursor never skips a post that
commits late. Blackboard posts are append-only: migration r0005_coordination adds
triggers that refuse UPDATE and DELETE. Migration r0005 builds the same tables;
the drift test compares.
"""

from __future__ import annotations

import sqlalchemy as sa

from flotilla.store.schema import metadata

teams = sa.Table(
    "teams",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("project", sa.Text(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=True),
    sa.Column("created_at", sa.Double(), nullable=False),
)

team_members = sa.Table(
    "team_members",
    metadata,
    sa.Column(
        "team",
        sa.String(64),
        sa.ForeignKey("teams.name", ondelete="CASCADE", name="fk_team_members_team"),
        primary_key=True,
    ),
    sa.Column("agent", sa.String(64), primary_key=True),  # one role per agent and team
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("joined_at", sa.Double(), nullable=False),
    sa.Index("ix_team_members_agent", "agent"),
)

swarms = sa.Table(
    "swarms",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("goal", sa.Text(), nullable=False),
    sa.Column("max_size", sa.Integer(), nullable=False),
    sa.Column(
        "team",
        sa.String(64),
        sa.ForeignKey("teams.name", name="fk_swarms_team"),
        nullable=True,
    ),
    sa.Column("post_count", sa.BigInteger(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=True),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.UniqueConstraint("name", name="uq_swarms_name"),
)

swarm_members = sa.Table(
    "swarm_members",
    metadata,
    sa.Column(
        "swarm_id",
        sa.String(64),
        sa.ForeignKey("swarms.id", ondelete="CASCADE", name="fk_swarm_members_swarm"),
        primary_key=True,
    ),
    sa.Column("agent", sa.String(64), primary_key=True),
    sa.Column("joined_at", sa.Double(), nullable=False),
)

blackboard_posts = sa.Table(
    "blackboard_posts",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),  # the cursor
    sa.Column(
        "swarm_id",
        sa.String(64),
        sa.ForeignKey("swarms.id", name="fk_blackboard_posts_swarm"),
        nullable=False,
    ),
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Index("ix_blackboard_posts_swarm_id", "swarm_id", "id"),
)

checkpoints = sa.Table(
    "checkpoints",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("project", sa.Text(), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("worker", sa.String(64), nullable=False),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("model", sa.String(128), nullable=True),
    sa.Column("branch", sa.Text(), nullable=False),
    sa.Column("commit_sha", sa.String(64), nullable=False),
    sa.Column("session_id", sa.Text(), nullable=True),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("notes", sa.Text(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=True),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.UniqueConstraint("project", "name", name="uq_checkpoints_project_name"),
)
