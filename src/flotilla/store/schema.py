"""The tables as SQLAlchemy Core objects: what the queries use.

Migrations in migrations/versions/ build the same tables by their own frozen
code; a test compares the migrated database with this metadata so the two
cannot drift apart.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

WORKER_SEQ = "worker_seq"  # the row of `sequences` that numbers admissions

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("project", sa.Text(), nullable=False),
    sa.Column("agent", sa.String(64), nullable=False),
    sa.Column("prompt", sa.Text(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("batch", sa.String(128), nullable=True),
    sa.Column("model", sa.String(128), nullable=True),
    sa.Column("base_ref", sa.Text(), nullable=False),
    sa.Column("branch", sa.Text(), nullable=False),
    sa.Column("worktree", sa.Text(), nullable=False),
    sa.Column("run_dir", sa.Text(), nullable=False),
    sa.Column("interactive", sa.Boolean(), nullable=False),
    sa.Column("quick", sa.Boolean(), nullable=False),
    sa.Column("depth", sa.Integer(), nullable=False),
    sa.Column("parent", sa.String(64), nullable=True),
    sa.Column("session_id", sa.Text(), nullable=True),
    sa.Column("pid", sa.Integer(), nullable=True),
    sa.Column("pid_started_at", sa.Double(), nullable=True),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("restarts", sa.Integer(), nullable=False),
    sa.Column("retries", sa.Integer(), nullable=False),
    sa.Column("not_before", sa.Double(), nullable=True),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("started_at", sa.Double(), nullable=True),
    sa.Column("ended_at", sa.Double(), nullable=True),
    sa.Column("last_output_at", sa.Double(), nullable=True),
    sa.Column("input_tokens", sa.BigInteger(), nullable=False),
    sa.Column("output_tokens", sa.BigInteger(), nullable=False),
    sa.Column("cost_usd", sa.Double(), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("result", sa.Text(), nullable=True),  # JSON
    sa.Column("settings", sa.Text(), nullable=False),  # JSON
    sa.Column("out_offset", sa.BigInteger(), nullable=False),
    # Serves lookups by project too (its leading column), so no separate index.
    sa.UniqueConstraint("project", "name", name="uq_workers_project_name"),
    sa.UniqueConstraint("seq", name="uq_workers_seq"),
    sa.Index("ix_workers_state", "state"),
    sa.Index("ix_workers_batch", "batch"),
)

prompts = sa.Table(
    "prompts",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column(
        "worker_id",
        sa.String(64),
        sa.ForeignKey("workers.id", ondelete="CASCADE", name="fk_prompts_worker"),
        nullable=False,
    ),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("delivered_at", sa.Double(), nullable=True),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Index("ix_prompts_worker_status", "worker_id", "status"),
)

worker_events = sa.Table(
    "worker_events",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column(
        "worker_id",
        sa.String(64),
        sa.ForeignKey("workers.id", ondelete="CASCADE", name="fk_worker_events_worker"),
        nullable=False,
    ),
    sa.Column("at", sa.Double(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text(), nullable=False),  # JSON
    sa.Index("ix_worker_events_worker", "worker_id"),
)

sequences = sa.Table(
    "sequences",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger(), nullable=False),
)
