"""Persistence of the bus: the event log and the messages, on the SqlStore's engine.

Every method is one transaction (through the SqlStore's own, so SQLite writers of
this process queue on one lock). Event numbers are taken from the `event_seq` row
under its row lock, held to commit, so events commit in seq order on PostgreSQL as
on SQLite and a reader by cursor never skips one. Message moves are compare-and-set:
the UPDATE names the state just read, so two deliverers never both take a message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from flotilla.bus.envelope import Envelope, Event
from flotilla.bus.filters import EventFilter
from flotilla.bus.message import Message, MessageKind, MessageState, check_move
from flotilla.domain.errors import IllegalTransition, NotFound, OperationFailed
from flotilla.store.base import Store
from flotilla.store.bus_retention import oldest_seq
from flotilla.store.bus_schema import EVENT_SEQ, events, messages
from flotilla.store.codec import dump_json
from flotilla.store.schema import prompts, sequences
from flotilla.store.sql import SqlStore

_ev = events.c
_msg = messages.c
_MOVABLE = frozenset(
    {"prompt_id", "error", "lease_expires_at", "delivered_at", "read_at", "worker_id"}
)


class MessageStale(IllegalTransition):
    """A message was not in the state the caller expected: another deliverer moved first."""


def bus_store(store: Store) -> BusStore:
    """The bus tables of `store` (which must be the SQL store)."""
    if not isinstance(store, SqlStore):
        raise OperationFailed(f"the bus needs the SQL store, not {type(store).__name__}")
    return BusStore(store)


class BusStore:
    """The event log (the EventLog protocol of flotilla.bus) and the message table."""

    def __init__(self, store: SqlStore) -> None:
        self._sql = store

    def _tx(self, *, write: bool = False) -> Any:
        return self._sql._tx(write=write)

    # -- the event log ---------------------------------------------------------------

    def append(self, envelope: Envelope) -> Event:
        try:
            with self._tx(write=True) as conn:  # a republished id: the unique index says so
                return append_in(conn, envelope)
        except IntegrityError as exc:  # the same id appended concurrently: that one stands
            with self._tx() as conn:
                found = _event_by_id(conn, envelope.id)
            if found is None:
                raise OperationFailed(f"could not store event {envelope.id}: {exc.orig}") from exc
            return found

    def read(
        self,
        after: int,
        *,
        event_filter: EventFilter | None = None,
        until: int | None = None,
        limit: int = 500,
    ) -> list[Event]:
        query = sa.select(events).where(_ev.seq > after).order_by(_ev.seq).limit(limit)
        if until is not None:
            query = query.where(_ev.seq <= until)
        if event_filter is not None:
            query = _filtered(query, event_filter)
        with self._tx() as conn:
            return [_event(row._mapping) for row in conn.execute(query)]

    def head(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(_ev.seq), 0))).scalar())

    def oldest(self) -> int:
        """The lowest seq kept (see flotilla.store.bus_retention)."""
        return oldest_seq(self._sql)

    # -- messages ------------------------------------------------------------------------

    def add_messages(self, batch: Sequence[Message]) -> list[Message]:
        """Store new messages (all of a broadcast at once), stamped now."""
        now = time.time()
        stored = []
        with self._tx(write=True) as conn:
            for message in batch:
                values = message.to_dict()
                values.update(created_at=message.created_at or now, updated_at=now)
                conn.execute(sa.insert(messages).values(**values))
                stored.append(_get(conn, message.id))
        return stored

    def get_message(self, message_id: str) -> Message:
        with self._tx() as conn:
            return _get(conn, message_id)

    def list_messages(
        self,
        project: str,
        *,
        recipient: str | None = None,
        sender: str | None = None,
        states: Iterable[MessageState] | None = None,
        limit: int = 200,
    ) -> list[Message]:
        """Oldest first (the newest `limit` of them)."""
        query = sa.select(messages).where(_msg.project == project)
        if recipient is not None:
            query = query.where(_msg.recipient == recipient)
        if sender is not None:
            query = query.where(_msg.sender == sender)
        if states is not None:
            query = query.where(_msg.state.in_(sorted(MessageState(s).value for s in states)))
        query = query.order_by(_msg.created_at.desc(), _msg.id.desc()).limit(limit)
        with self._tx() as conn:
            found = [_message(row._mapping) for row in conn.execute(query)]
        return found[::-1]

    def due(self, now: float, limit: int = 200) -> list[Message]:
        """Messages a deliverer should look at: pending ones, and deliveries whose lease ran
        out (their deliverer died), oldest first."""
        expired = sa.and_(_msg.state == MessageState.DELIVERING.value, _msg.lease_expires_at < now)
        query = (
            sa.select(messages)
            .where(sa.or_(_msg.state == MessageState.PENDING.value, expired))
            .order_by(_msg.created_at, _msg.id)
            .limit(limit)
        )
        with self._tx() as conn:
            return [_message(row._mapping) for row in conn.execute(query)]

    def claim(self, message_id: str, *, lease_s: float, now: float | None = None) -> Message | None:
        """Take a pending message for delivery (state delivering, one more attempt, a lease),
        or None if it is no longer pending or already queued as a turn: someone else has it."""
        now = time.time() if now is None else now
        with self._tx(write=True) as conn:
            taken = conn.execute(
                sa.update(messages)
                .where(_msg.id == message_id, _msg.state == MessageState.PENDING.value)
                .where(_msg.prompt_id.is_(None))
                .values(
                    state=MessageState.DELIVERING.value,
                    attempts=_msg.attempts + 1,
                    lease_expires_at=now + lease_s,
                    updated_at=now,
                )
            )
            return _get(conn, message_id) if taken.rowcount == 1 else None

    def take_over(
        self, message_id: str, *, lease_s: float, now: float | None = None
    ) -> Message | None:
        """Take a delivery whose lease ran out (its deliverer died), or None if it is gone."""
        now = time.time() if now is None else now
        with self._tx(write=True) as conn:
            taken = conn.execute(
                sa.update(messages)
                .where(_msg.id == message_id, _msg.state == MessageState.DELIVERING.value)
                .where(_msg.lease_expires_at < now)
                .values(lease_expires_at=now + lease_s, updated_at=now)
            )
            return _get(conn, message_id) if taken.rowcount == 1 else None

    def move(
        self, message_id: str, *, expect: MessageState, to: MessageState, **fields: Any
    ) -> Message:
        """Compare-and-set one message from `expect` to `to` (a legal move), with fields;
        MessageStale when it is not in `expect` any more."""
        unknown = sorted(set(fields) - _MOVABLE)
        if unknown:
            raise OperationFailed(f"cannot set message field(s) {', '.join(unknown)}")
        check_move(expect, to)
        now = time.time()
        values: dict[str, Any] = {**fields, "state": to.value, "updated_at": now}
        if to is MessageState.DELIVERED:
            values.setdefault("delivered_at", now)
        if to is MessageState.READ:
            values.setdefault("read_at", now)
        if to is not MessageState.DELIVERING:
            values.setdefault("lease_expires_at", None)
        with self._tx(write=True) as conn:
            moved = conn.execute(
                sa.update(messages)
                .where(_msg.id == message_id, _msg.state == expect.value)
                .values(**values)
            )
            current = _get(conn, message_id)
            if moved.rowcount != 1:
                raise MessageStale(
                    f"message {message_id} is {current.state}, not {expect} as expected"
                )
            return current

    # -- the follow-up prompts messages become (same database) ----------------------------

    def prompt_status(self, prompt_id: int) -> str | None:
        """The status of a worker's follow-up prompt, None if it is gone with its worker."""
        query = sa.select(prompts.c.status).where(prompts.c.id == prompt_id)
        with self._tx() as conn:
            status = conn.execute(query).scalar()
        return None if status is None else str(status)

    def find_prompt(self, worker_id: str, text: str) -> int | None:
        """The id of the worker's follow-up prompt with exactly this text, if any."""
        query = (
            sa.select(prompts.c.id)
            .where(prompts.c.worker_id == worker_id, prompts.c.text == text)
            .order_by(prompts.c.id)
            .limit(1)
        )
        with self._tx() as conn:
            found = conn.execute(query).scalar()
        return None if found is None else int(found)


# Built once and run with parameters: building the statements per call (and their cache
# keys) cost ~3x what running them does (BENCHMARKS.md, "Service").
_NEXT_SEQS = (
    sa.update(sequences)
    .where(sequences.c.name == EVENT_SEQ)
    .values(value=sequences.c.value + sa.bindparam("count"))
    .returning(sequences.c.value)
)
_INSERT_EVENT = events.insert()


def append_in(conn: Connection, envelope: Envelope) -> Event:
    """Append `envelope` to the event log inside the caller's write transaction."""
    return append_many_in(conn, [envelope])[0]


def append_many_in(conn: Connection, envelopes: Sequence[Envelope]) -> list[Event]:
    """Append the envelopes, in order, inside the caller's write transaction: one bump of
    the sequence and one (multi-row) insert however many there are."""
    if not envelopes:
        return []
    # The row lock taken here is held to commit: events commit in the order of their seq.
    last = int(conn.execute(_NEXT_SEQS, {"count": len(envelopes)}).scalar_one())
    first = last - len(envelopes) + 1
    rows = [_event_row(seq, envelope) for seq, envelope in enumerate(envelopes, first)]
    conn.execute(_INSERT_EVENT, rows)
    return [Event(seq, envelope) for seq, envelope in enumerate(envelopes, first)]


def _event_row(seq: int, envelope: Envelope) -> dict[str, Any]:
    return {
        "seq": seq,
        "id": envelope.id,
        "kind": envelope.kind,
        "sender": envelope.sender,
        "recipient": envelope.recipient,
        "subject": envelope.subject,
        "team": envelope.team,
        "payload": dump_json(dict(envelope.payload)),
        "created_at": envelope.created_at,
        "signature": envelope.signature,
    }


def _event_by_id(conn: Connection, event_id: str) -> Event | None:
    row = conn.execute(sa.select(events).where(_ev.id == event_id)).first()
    return None if row is None else _event(row._mapping)


def _filtered(query: Any, event_filter: EventFilter) -> Any:
    if event_filter.kinds:
        clauses = []
        for prefix in event_filter.kinds:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append(_ev.kind == prefix)
            clauses.append(_ev.kind.like(f"{escaped}.%", escape="\\"))
        query = query.where(sa.or_(*clauses))
    if event_filter.subjects:
        query = query.where(_ev.subject.in_(sorted(event_filter.subjects)))
    if event_filter.teams:
        query = query.where(_ev.team.in_(sorted(event_filter.teams)))
    return query


def _event(row: Mapping[Any, Any]) -> Event:
    envelope = Envelope(
        id=row["id"],
        sender=row["sender"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        recipient=row["recipient"],
        subject=row["subject"],
        team=row["team"],
        created_at=row["created_at"],
        signature=row["signature"],
    )
    return Event(int(row["seq"]), envelope)


def _get(conn: Connection, message_id: str) -> Message:
    row = conn.execute(sa.select(messages).where(_msg.id == message_id)).first()
    if row is None:
        raise NotFound(f"no message with id {message_id!r} (see `fleet inbox AGENT`)")
    return _message(row._mapping)


def _message(row: Mapping[Any, Any]) -> Message:
    return Message(
        id=row["id"],
        project=row["project"],
        sender=row["sender"],
        recipient=row["recipient"],
        kind=MessageKind(row["kind"]),
        body=row["body"],
        state=MessageState(row["state"]),
        team=row["team"],
        reply_to=row["reply_to"],
        broadcast_id=row["broadcast_id"],
        worker_id=row["worker_id"],
        prompt_id=row["prompt_id"],
        attempts=row["attempts"],
        error=row["error"],
        lease_expires_at=row["lease_expires_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        delivered_at=row["delivered_at"],
        read_at=row["read_at"],
    )
