"""Coordination tasks: the tasks, their dependencies, labels, required capabilities,
and their append-only history.

Revision ID: r0003_tasks
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0003_tasks"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("team", sa.String(128), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("depends_on", sa.Text(), nullable=False),
        sa.Column("agent_kind", sa.String(64), nullable=True),
        sa.Column("requires", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("lease_expires_at", sa.Double(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("claimed_at", sa.Double(), nullable=True),
        sa.Column("heartbeat_at", sa.Double(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("open_deps", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_tasks_pick",
        "tasks",
        ["state", "open_deps", sa.text("priority DESC"), "created_at", "id"],
    )
    op.create_index(
        "ix_tasks_team_pick",
        "tasks",
        ["team", "state", "open_deps", sa.text("priority DESC"), "created_at", "id"],
    )
    op.create_index("ix_tasks_lease", "tasks", ["state", "lease_expires_at"])
    op.create_index("ix_tasks_assignee", "tasks", ["assignee"])

    op.create_table(
        "task_dependencies",
        sa.Column(
            "task_id",
            sa.String(64),
            sa.ForeignKey("tasks.id", ondelete="CASCADE", name="fk_task_dependencies_task"),
            primary_key=True,
        ),
        sa.Column(
            "depends_on",
            sa.String(64),
            sa.ForeignKey("tasks.id", name="fk_task_dependencies_depends_on"),
            primary_key=True,
        ),
    )
    op.create_index("ix_task_dependencies_depends_on", "task_dependencies", ["depends_on"])

    op.create_table(
        "task_labels",
        sa.Column(
            "task_id",
            sa.String(64),
            sa.ForeignKey("tasks.id", ondelete="CASCADE", name="fk_task_labels_task"),
            primary_key=True,
        ),
        sa.Column("label", sa.String(64), primary_key=True),
    )
    op.create_index("ix_task_labels_label", "task_labels", ["label"])

    op.create_table(
        "task_requires",
        sa.Column(
            "task_id",
            sa.String(64),
            sa.ForeignKey("tasks.id", ondelete="CASCADE", name="fk_task_requires_task"),
            primary_key=True,
        ),
        sa.Column("label", sa.String(64), primary_key=True),
    )

    op.create_table(
        "task_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "task_id",
            sa.String(64),
            sa.ForeignKey("tasks.id", ondelete="CASCADE", name="fk_task_history_task"),
            nullable=False,
        ),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_task_history_task", "task_history", ["task_id", "id"])


def downgrade() -> None:
    op.drop_table("task_history")
    op.drop_table("task_requires")
    op.drop_table("task_labels")
    op.drop_table("task_dependencies")
    op.drop_table("tasks")
