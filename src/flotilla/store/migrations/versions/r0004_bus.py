"""The bus: the event log (its sequence number is every subscriber's resume cursor) and
the messages between agents, with their delivery state.

Revision ID: r0004_bus
Revises: r0003_tasks
Create Date: 2025-01-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0004_bus"
down_revision: str | None = "r0003_tasks"
branch_labels: str | None = None
depends_on: str | None = None

EVENT_SEQ = "event_seq"


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(128), nullable=False),
        sa.Column("recipient", sa.String(128), nullable=True),
        sa.Column("subject", sa.String(128), nullable=True),
        sa.Column("team", sa.String(128), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.UniqueConstraint("id", name="uq_events_id"),
    )
    op.create_index("ix_events_kind", "events", ["kind", "seq"])
    op.create_index("ix_events_subject", "events", ["subject", "seq"])

    op.create_table(
        "messages",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project", sa.Text(), nullable=False),
        sa.Column("sender", sa.String(128), nullable=False),
        sa.Column("recipient", sa.String(128), nullable=False),
        sa.Column("team", sa.String(128), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reply_to", sa.String(64), nullable=True),
        sa.Column("broadcast_id", sa.String(64), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("worker_id", sa.String(64), nullable=True),
        sa.Column("prompt_id", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", sa.Double(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("delivered_at", sa.Double(), nullable=True),
        sa.Column("read_at", sa.Double(), nullable=True),
    )
    op.create_index("ix_messages_inbox", "messages", ["project", "recipient", "created_at"])
    op.create_index("ix_messages_state", "messages", ["state", "created_at"])

    sequences = sa.table("sequences", sa.column("name", sa.String), sa.column("value", sa.Integer))
    op.bulk_insert(sequences, [{"name": EVENT_SEQ, "value": 0}])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM sequences WHERE name = :name").bindparams(name=EVENT_SEQ))
    op.drop_table("messages")
    op.drop_table("events")
