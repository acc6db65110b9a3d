"""Messages between agents and people: send, broadcast, inbox, read, and delivery.

A message to an agent is stored first (pending), then handed over:
- headless agent: queued as its next follow-up turn (`FleetService.prompt`, which
  resumes its session). A busy agent finishes its turn first; the message counts as
  delivered when the supervisor takes that prompt to start the turn.
- interactive agent: typed into its tmux pane, delivered once the pane shows it;
  unconfirmed means failed (with the reason), never typed a second time.
Each hand-over is compare-and-set guarded (pending -> delivering, with a lease), so two
deliverers (threads, or daemons sharing a PostgreSQL store) never deliver it twice; a
deliverer that died mid-way is taken over once its lease runs out, and the take-over
first looks whether the message had already reached the agent. Every state change is
published on the bus (`message.sent|queued|delivered|read|failed`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from flotilla import counters
from flotilla.bus.envelope import Envelope, new_id
from flotilla.bus.message import (
    Message,
    MessageKind,
    MessageState,
    agent_text,
    check_body,
    check_party,
)
from flotilla.bus.transport import Transport
from flotilla.domain.errors import FlotillaError, NotFound, UsageError
from flotilla.domain.states import WorkerState
from flotilla.domain.worker import Worker
from flotilla.orchestrator.service import FleetService
from flotilla.orchestrator.turns import tmux_session_name
from flotilla.store.base import PromptStatus, Store
from flotilla.store.bus_sql import BusStore, MessageStale, bus_store
from flotilla.store.errors import StaleState

log = logging.getLogger(__name__)

DEFAULT_TEAM = "default"  # every worker of a project is in it
LEASE_S = 60.0  # a hand-over takes at most ~2 s (pane confirmation); then it is presumed dead
S = MessageState
Members = Callable[[str, str], list[Worker]]


def team_of(worker: Worker) -> set[str]:
    """The teams a worker is in: `default`, its batch, and settings["team"] if set."""
    teams = {DEFAULT_TEAM}
    if worker.batch:
        teams.add(worker.batch)
    named = worker.settings.get("team")
    if isinstance(named, str) and named:
        teams.add(named)
    return teams


class MessageService:
    def __init__(
        self,
        store: Store,
        fleet: FleetService,
        bus: Transport,
        *,
        members: Members | None = None,
        lease_s: float = LEASE_S,
        resume_finished: bool = True,
    ) -> None:
        self.store = store
        self.fleet = fleet
        self.bus = bus
        self.db: BusStore = bus_store(store)
        self.lease_s = lease_s
        self.resume_finished = resume_finished  # a direct message resumes a finished agent
        self._members = members or self._workers_in_team
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- sending -------------------------------------------------------------------

    def send(
        self, project: str, sender: str, to_agent: str, body: str, reply_to: str | None = None
    ) -> Message:
        """Store a direct message (a reply with reply_to) and try to deliver it now."""
        check_party(sender, "sender")
        check_party(to_agent, "recipient")
        check_body(body)
        original = None
        if reply_to is not None:
            original = self.db.get_message(reply_to)
            if original.project != project:
                raise NotFound(f"no message with id {reply_to!r} in this project")
        worker = self.store.find_worker(project, to_agent)
        to_person = worker is None and original is not None and original.sender == to_agent
        if worker is None and not to_person:
            raise NotFound(f"no agent named {to_agent!r} in this project (see `fleet list`)")
        message = Message(
            id=new_id("m"),
            project=project,
            sender=sender,
            recipient=to_agent,
            kind=MessageKind.REPLY if reply_to else MessageKind.DIRECT,
            body=body,
            reply_to=reply_to,
            worker_id=None if worker is None else worker.id,
            # A person (not an agent) reads it in the inbox: it is there already.
            state=S.DELIVERED if to_person else S.PENDING,
            delivered_at=time.time() if to_person else None,
        )
        (stored,) = self.db.add_messages([message])
        self._publish("sent", stored)
        if to_person:
            self._publish("delivered", stored)
            return stored
        return self._progress(stored)

    def broadcast(self, project: str, sender: str, team: str, body: str) -> list[Message]:
        """One message per member of `team` that is not finished (a broadcast does not wake
        finished agents), the sender excepted; each delivered like a direct message."""
        check_party(sender, "sender")
        check_party(team, "team")
        check_body(body)
        members = [
            w for w in self._members(project, team) if w.name != sender and not w.state.is_terminal
        ]
        if not members:
            raise NotFound(f"team {team!r} has no running or queued agent in this project")
        group = new_id("b")
        batch = [
            Message(
                id=new_id("m"),
                project=project,
                sender=sender,
                recipient=w.name,
                kind=MessageKind.BROADCAST,
                body=body,
                team=team,
                broadcast_id=group,
                worker_id=w.id,
            )
            for w in members
        ]
        stored = self.db.add_messages(batch)
        for message in stored:
            self._publish("sent", message)
        return [self._progress(m) for m in stored]

    # -- reading --------------------------------------------------------------------

    def inbox(
        self, project: str, agent: str, *, unread_only: bool = False, limit: int = 200
    ) -> list[Message]:
        check_party(agent, "agent")
        states = [S.PENDING, S.DELIVERING, S.DELIVERED, S.FAILED] if unread_only else None
        return self.db.list_messages(project, recipient=agent, states=states, limit=limit)

    def get(self, message_id: str) -> Message:
        return self.db.get_message(message_id)

    def mark_read(self, message_id: str, reader: str | None = None) -> Message:
        """The recipient has read it (only a delivered message can be; again is a no-op)."""
        message = self.db.get_message(message_id)
        if reader is not None and reader != message.recipient:
            raise UsageError(
                f"message {message_id} is for {message.recipient}; {reader} cannot mark it read"
            )
        if message.state is S.READ:
            return message
        try:
            moved = self.db.move(message_id, expect=S.DELIVERED, to=S.READ)
        except MessageStale:
            counters.count("messaging.read_raced")
            current = self.db.get_message(message_id)
            if current.state is S.READ:
                return current
            raise
        self._publish("read", moved)
        return moved

    # -- delivering -----------------------------------------------------------------

    def deliver_pending(self, limit: int = 200) -> int:
        """One pass over the messages due (pending, or a dead deliverer's): each is handed
        over, found delivered, or left for later. Returns how many changed state."""
        changed = 0
        for message in self.db.due(time.time(), limit):
            try:
                after = self._progress(message)
            except Exception:
                counters.count("messaging.delivery_failed")
                log.exception("delivering message %s failed", message.id)
                continue
            changed += after.state is not message.state or after.prompt_id != message.prompt_id
        return changed

    def deliver(self, message_id: str) -> Message:
        return self._progress(self.db.get_message(message_id))

    def _progress(self, message: Message) -> Message:
        try:
            return self._advance(message)
        except MessageStale:
            counters.count("messaging.delivery_raced")  # another deliverer moved it first
            return self.db.get_message(message.id)

    def _advance(self, message: Message) -> Message:
        if message.state is S.DELIVERING:
            return self._take_over(message)
        if message.state is not S.PENDING:
            return message
        if message.worker_id is None:
            return message  # a person's: nothing to hand over
        with self._lock(message.worker_id):
            if message.prompt_id is not None:
                return self._check_turn(message)
            claimed = self.db.claim(message.id, lease_s=self.lease_s)
            if claimed is None:
                return self.db.get_message(message.id)  # another deliverer has it
            return self._hand_over(claimed)

    def _hand_over(self, message: Message) -> Message:
        """Deliver a message this deliverer holds (state delivering)."""
        worker = self._worker(message)
        if worker is None:
            return self._fail(message, f"agent {message.recipient} was removed before delivery")
        if worker.state is WorkerState.CANCELLED:
            return self._fail(message, f"agent {worker.name} was cancelled")
        text = agent_text(message)
        if worker.interactive:
            return self._to_pane(message, worker, text)
        if worker.state.is_terminal and not self.resume_finished:
            return self._fail(message, f"agent {worker.name} has finished ({worker.state})")
        # Other errors (the store down) propagate: the message stays held until its lease
        # runs out, and the take-over then finds out whether the prompt was queued.
        try:
            reply = self.fleet.prompt(worker, text)
            prompt_id = int(reply["id"])
        except UsageError as exc:  # refused, or lost a race after queueing the prompt
            counters.count("messaging.prompt_refused")
            prompt_id = self.db.find_prompt(worker.id, text) or 0  # queued before the error?
            if not prompt_id:
                return self._fail(message, f"agent {worker.name} cannot take it: {exc}")
        queued = self.db.move(message.id, expect=S.DELIVERING, to=S.PENDING, prompt_id=prompt_id)
        self._publish("queued", queued)
        return self._check_turn(queued)

    def _to_pane(self, message: Message, worker: Worker, text: str) -> Message:
        if worker.state in (WorkerState.QUEUED, WorkerState.STARTING):
            # Its pane is not up yet: back to pending, for the next pass.
            return self.db.move(message.id, expect=S.DELIVERING, to=S.PENDING)
        if not worker.state.is_active:
            return self._fail(message, f"interactive agent {worker.name} is not running")
        try:
            reply = self.fleet.prompt(worker, text)
        except FlotillaError as exc:
            counters.count("messaging.pane_refused")
            return self._fail(message, f"agent {worker.name} cannot take it: {exc}")
        if reply.get("status") != "delivered":
            # Maybe typed but not seen: failing is honest, typing it again could double it.
            return self._fail(
                message, f"not confirmed in {worker.name}'s pane: {reply.get('reason')}"
            )
        return self._delivered(message, expect=S.DELIVERING)

    def _check_turn(self, message: Message) -> Message:
        """A message queued as a headless agent's next turn: delivered once that turn took it."""
        assert message.prompt_id is not None
        status = self.db.prompt_status(message.prompt_id)
        if status is None:
            return self._fail(
                message, f"agent {message.recipient} was removed before its next turn", S.PENDING
            )
        if status in (PromptStatus.DELIVERING, PromptStatus.DELIVERED):
            return self._delivered(message, expect=S.PENDING)
        if status == PromptStatus.FAILED:
            return self._fail(message, "the agent's next turn failed to start", S.PENDING)
        worker = self._worker(message)
        if worker is not None and worker.state in (WorkerState.SUCCEEDED, WorkerState.FAILED):
            self._requeue_stranded(worker)
        elif worker is not None and worker.state is WorkerState.CANCELLED:
            return self._fail(message, f"agent {worker.name} was cancelled", S.PENDING)
        return message

    def _requeue_stranded(self, worker: Worker) -> None:
        """The turn ended just as the prompt was queued, so nobody started the next turn."""
        settings = dict(worker.settings)
        settings["next_turn"] = "prompt"
        try:
            self.store.update_worker(
                worker.id, expect_state=worker.state, state=WorkerState.QUEUED, settings=settings
            )
        except StaleState:
            counters.count("messaging.requeue_raced")  # it moved on by itself
            return
        counters.count("messaging.stranded_prompt_requeued")
        self.fleet.on_change()

    def _take_over(self, message: Message) -> Message:
        """A delivery whose deliverer died (its lease ran out): did it reach the agent?"""
        taken = self.db.take_over(message.id, lease_s=self.lease_s)
        if taken is None:
            return self.db.get_message(message.id)
        counters.count("messaging.delivery_taken_over")
        worker = self._worker(taken)
        if worker is None:
            return self._fail(taken, f"agent {taken.recipient} was removed before delivery")
        text = agent_text(taken)
        with self._lock(worker.id):
            if not worker.interactive:
                prompt_id = self.db.find_prompt(worker.id, text)
                if prompt_id is not None:
                    queued = self.db.move(
                        taken.id, expect=S.DELIVERING, to=S.PENDING, prompt_id=prompt_id
                    )
                    return self._check_turn(queued)
            elif self._pane_shows(worker, text):
                return self._delivered(taken, expect=S.DELIVERING)
            return self._hand_over(taken)

    def _pane_shows(self, worker: Worker, text: str) -> bool:
        probe = text.splitlines()[0][:40]
        name = tmux_session_name(worker)
        return self.fleet.tmux.session_exists(name) and probe in self.fleet.tmux.capture(
            name, lines=200
        )

    # -- helpers ------------------------------------------------------------------------

    def _delivered(self, message: Message, *, expect: MessageState) -> Message:
        moved = self.db.move(message.id, expect=expect, to=S.DELIVERED)
        self._publish("delivered", moved)
        return moved

    def _fail(self, message: Message, reason: str, expect: MessageState = S.DELIVERING) -> Message:
        counters.count("messaging.undeliverable")
        moved = self.db.move(message.id, expect=expect, to=S.FAILED, error=reason)
        self._publish("failed", moved)
        return moved

    def _worker(self, message: Message) -> Worker | None:
        if message.worker_id is None:
            return None
        try:
            return self.store.get_worker(message.worker_id)
        except NotFound:
            counters.count("messaging.recipient_gone")
            return None

    def _workers_in_team(self, project: str, team: str) -> list[Worker]:
        return [w for w in self.store.list_workers(project=project) if team in team_of(w)]

    def _lock(self, worker_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(worker_id, threading.Lock())

    def _publish(self, what: str, message: Message) -> None:
        """State changes are facts in the store already; an event lost here is counted."""
        payload: dict[str, Any] = message.to_dict()
        envelope = Envelope.new(
            f"message.{what}",
            message.sender,
            payload,
            recipient=message.recipient,
            subject=message.id,
            team=message.team,
        )
        try:
            self.bus.publish(envelope)
        except Exception:
            counters.count("messaging.publish_failed")
            log.exception("publishing message.%s of %s failed", what, message.id)
