"""Retention of the bus's event log: old events are deleted in small batches.

Pruning deletes from the lowest seq up and stops at the first event it must keep, so
what is kept is always one run of seqs, `oldest_seq(store)` to the head: a reader whose
cursor `c` has `c + 1 < oldest_seq(store)` missed the events from c + 1 up to it. An
event goes when its seq is at or below `head - keep_events`, or when it and every event
before it are older than `keep_days` (an envelope made long before it was appended does
not take younger events with it). The newest event is never deleted: the head survives,
so `max(seq)` (which the transports start from) never goes back.

Deleting never renumbers: seqs come from the `event_seq` row of `sequences`, which
pruning does not touch (seq is not an autoincrement column on either database).

Each batch is its own short write transaction, so appends (and, on SQLite, every other
writer) wait for at most one batch; one call runs at most `max_batches` of them, and the
next call goes on where it stopped.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flotilla.domain.errors import OperationFailed, UsageError
from flotilla.store.base import Store
from flotilla.store.bus_schema import EVENT_SEQ, events
from flotilla.store.schema import sequences
from flotilla.store.sql import SqlStore

DAY_S = 86_400.0
BATCH = 5_000
MAX_BATCHES = 200  # one call deletes at most BATCH * MAX_BATCHES events (a million)

_ev = events.c


def prune_events(
    store: Store,
    *,
    keep_days: int,
    keep_events: int,
    now: float | None = None,
    batch: int = BATCH,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Delete events older than `keep_days` days (before `now`) or beyond the newest
    `keep_events` (0 turns either limit off); the number deleted."""
    if keep_days < 0 or keep_events < 0:
        raise UsageError(f"keep_days and keep_events must be >= 0, got {keep_days}, {keep_events}")
    if batch < 1 or max_batches < 1:
        raise UsageError(f"batch and max_batches must be >= 1, got {batch}, {max_batches}")
    sql = _sql(store)
    if keep_days == 0 and keep_events == 0:
        return 0
    now = time.time() if now is None else now
    older_than = now - keep_days * DAY_S if keep_days else None
    with sql._tx() as conn:
        head = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(_ev.seq), 0))).scalar_one())
    by_count = head - keep_events if keep_events else 0  # at or below: gone whatever their age
    deleted = 0
    for _ in range(max_batches):
        with sql._tx(write=True) as conn:
            removed, finished = _prune_batch(conn, head - 1, by_count, older_than, batch)
        deleted += removed
        if finished:
            break
    return deleted


def oldest_seq(store: Store) -> int:
    """The lowest seq kept; for an empty log, the seq the next event will get (every
    event below it is gone, or never was)."""
    with _sql(store)._tx() as conn:
        # The counter first: an event appended between the two reads is then above it.
        last = conn.execute(
            sa.select(sequences.c.value).where(sequences.c.name == EVENT_SEQ)
        ).scalar()
        low = conn.execute(sa.select(sa.func.min(_ev.seq))).scalar()
    return int(low) if low is not None else int(last or 0) + 1


def _prune_batch(
    conn: Connection, upto: int, by_count: int, older_than: float | None, batch: int
) -> tuple[int, bool]:
    """Delete the deletable prefix of the next `batch` events at or below `upto`:
    (how many went, whether pruning is done)."""
    rows = conn.execute(
        sa.select(_ev.seq, _ev.created_at).where(_ev.seq <= upto).order_by(_ev.seq).limit(batch)
    ).all()
    last = None
    for seq, created_at in rows:
        if seq > by_count and (older_than is None or created_at >= older_than):
            break  # the first event to keep: everything after it stays too
        last = seq
    if last is None:
        return 0, True
    removed = conn.execute(sa.delete(events).where(_ev.seq <= last)).rowcount
    return int(removed), last != rows[-1].seq or len(rows) < batch


def _sql(store: Store) -> SqlStore:
    if not isinstance(store, SqlStore):
        raise OperationFailed(f"the event log needs the SQL store, not {type(store).__name__}")
    return store
