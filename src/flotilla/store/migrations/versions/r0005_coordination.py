"""Coordination: teams and their members, swarms and theirs, the blackboard, checkpoints.

Blackboard posts are append-only: triggers refuse any UPDATE or DELETE of a post,
whoever issues it.

Revision ID: r0005_coordination
Revises: r0004_bus
Create Date: 2025-01-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0005_coordination"
down_revision: str | None = "r0004_bus"
branch_labels: str | None = None
depends_on: str | None = None

_REFUSAL = "blackboard posts are append-only"

_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER blackboard_posts_no_{verb.lower()}
    BEFORE {verb} ON blackboard_posts
    BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END"""
    for verb in ("UPDATE", "DELETE")
]

_PG_TRIGGERS = [
    f"""CREATE FUNCTION blackboard_posts_append_only() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION '{_REFUSAL}'; END
    $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER blackboard_posts_append_only
    BEFORE UPDATE OR DELETE ON blackboard_posts
    FOR EACH ROW EXECUTE FUNCTION blackboard_posts_append_only()""",
]


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
    )
    op.create_table(
        "team_members",
        sa.Column(
            "team",
            sa.String(64),
            sa.ForeignKey("teams.name", ondelete="CASCADE", name="fk_team_members_team"),
            primary_key=True,
        ),
        sa.Column("agent", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("joined_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_team_members_agent", "team_members", ["agent"])

    op.create_table(
        "swarms",
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
    op.create_table(
        "swarm_members",
        sa.Column(
            "swarm_id",
            sa.String(64),
            sa.ForeignKey("swarms.id", ondelete="CASCADE", name="fk_swarm_members_swarm"),
            primary_key=True,
        ),
        sa.Column("agent", sa.String(64), primary_key=True),
        sa.Column("joined_at", sa.Double(), nullable=False),
    )

    op.create_table(
        "blackboard_posts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
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
    )
    op.create_index("ix_blackboard_posts_swarm_id", "blackboard_posts", ["swarm_id", "id"])
    triggers = _SQLITE_TRIGGERS if op.get_bind().dialect.name == "sqlite" else _PG_TRIGGERS
    for statement in triggers:
        op.execute(statement)

    op.create_table(
        "checkpoints",
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


def downgrade() -> None:
    op.drop_table("checkpoints")
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP TRIGGER IF EXISTS blackboard_posts_append_only ON blackboard_posts")
        op.execute("DROP FUNCTION IF EXISTS blackboard_posts_append_only()")
    op.drop_table("blackboard_posts")  # SQLite drops a table's triggers with it
    op.drop_table("swarm_members")
    op.drop_table("swarms")
    op.drop_table("team_members")
    op.drop_table("teams")
