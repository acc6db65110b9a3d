"""The bus tables as SQLAlchemy Core objects, on the store's one `metadata`.

`events` is the log every subscriber reads: its `seq` is the resume cursor. The
numbers come from the `event_seq` row of `sequences`, taken under that row's lock,
so on PostgreSQL too events become visible in `seq` order: a reader that saw
`seq = N` never later finds a new event below N. `messages` holds one row per
recipient (a broadcast is one row per member, sharing `broadcast_id`). Migration
r0004_bus builds the same tables; the drift test compares.
"""

from __future__ import annotations

import sqlalchemy as sa

from flotilla.store.schema import metadata

EVENT_SEQ = "event_seq"  # the row of `sequences` that numbers events

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("id", sa.String(64), nullable=False),  # the envelope's id: publishing is idempotent
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("sender", sa.String(128), nullable=False),
    sa.Column("recipient", sa.String(128), nullable=True),
    sa.Column("subject", sa.String(128), nullable=True),  # a worker, task or message id
    sa.Column("team", sa.String(128), nullable=True),
    sa.Column("payload", sa.Text(), nullable=False),  # JSON object
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("signature", sa.Text(), nullable=True),
    sa.UniqueConstraint("id", name="uq_events_id"),
    sa.Index("ix_events_kind", "kind", "seq"),
    sa.Index("ix_events_subject", "subject", "seq"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("project", sa.Text(), nullable=False),
    sa.Column("sender", sa.String(128), nullable=False),
    sa.Column("recipient", sa.String(128), nullable=False),  # an agent (worker) name
    sa.Column("team", sa.String(128), nullable=True),  # set on a broadcast's rows
    sa.Column("kind", sa.String(16), nullable=False),  # direct, broadcast, reply
    sa.Column("reply_to", sa.String(64), nullable=True),
    sa.Column("broadcast_id", sa.String(64), nullable=True),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("worker_id", sa.String(64), nullable=True),  # the recipient when it was sent
    sa.Column("prompt_id", sa.Integer(), nullable=True),  # the follow-up turn it became
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("lease_expires_at", sa.Double(), nullable=True),  # of a delivery in progress
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.Column("delivered_at", sa.Double(), nullable=True),
    sa.Column("read_at", sa.Double(), nullable=True),
    sa.Index("ix_messages_inbox", "project", "recipient", "created_at"),
    sa.Index("ix_messages_state", "state", "created_at"),
)
