"""Messages between agents (and people): kinds, delivery states and their legal moves.

Pure. One Message is one recipient's copy: a team broadcast is one Message per
member, sharing a `broadcast_id`. Delivery moves are guarded so a message is
handed to its agent once at most:

    pending --claim--> delivering --confirmed--> delivered --> read
       ^                   |   \\--handed to the next turn--> pending (prompt_id set)
       |                   |                                     |
       +----retry----------+             the turn started ------>+--> delivered
    any of pending/delivering --> failed (with the reason)

A headless agent gets a message as a follow-up turn: it is queued as the worker's
next prompt (`prompt_id`) and counts as delivered once that turn takes it. An
interactive agent gets it typed into its pane, delivered once the pane shows it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from flotilla.domain.errors import IllegalTransition, UsageError

MAX_BODY = 64 * 1024  # characters: a message is a note, not a file transfer


class MessageKind(StrEnum):
    DIRECT = "direct"
    BROADCAST = "broadcast"
    REPLY = "reply"


class MessageState(StrEnum):
    PENDING = "pending"  # not yet with the agent (maybe queued as its next turn)
    DELIVERING = "delivering"  # one deliverer holds it (a lease) and is handing it over
    DELIVERED = "delivered"  # the agent has it: its turn started, or its pane shows it
    READ = "read"  # the recipient read it in its inbox
    FAILED = "failed"  # it cannot be delivered; `error` says why

    @property
    def is_final(self) -> bool:
        return self in (MessageState.READ, MessageState.FAILED)


_M = MessageState
MESSAGE_MOVES: dict[MessageState, frozenset[MessageState]] = {
    _M.PENDING: frozenset({_M.DELIVERING, _M.DELIVERED, _M.FAILED}),
    _M.DELIVERING: frozenset({_M.DELIVERED, _M.PENDING, _M.FAILED}),
    _M.DELIVERED: frozenset({_M.READ}),
    _M.READ: frozenset(),
    _M.FAILED: frozenset(),
}


def check_move(current: MessageState, target: MessageState) -> MessageState:
    if target not in MESSAGE_MOVES[current]:
        if target is MessageState.READ:
            raise IllegalTransition(
                f"a {current} message cannot be marked read: it is not delivered"
            )
        raise IllegalTransition(f"a {current} message cannot become {target}")
    return target


@dataclass(frozen=True)
class Message:
    id: str
    project: str
    sender: str
    recipient: str
    kind: MessageKind
    body: str
    state: MessageState = MessageState.PENDING
    team: str | None = None
    reply_to: str | None = None
    broadcast_id: str | None = None
    worker_id: str | None = None
    prompt_id: int | None = None
    attempts: int = 0
    error: str | None = None
    lease_expires_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    delivered_at: float | None = None
    read_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind.value
        out["state"] = self.state.value
        return out

    @property
    def queued_for_turn(self) -> bool:
        """Handed to a headless worker as its next prompt, waiting for that turn."""
        return self.state is MessageState.PENDING and self.prompt_id is not None


def check_body(body: str) -> str:
    if not isinstance(body, str) or not body.strip():
        raise UsageError('the message is empty: give its text, e.g. fleet send AGENT "hello"')
    if len(body) > MAX_BODY:
        raise UsageError(f"the message is {len(body)} characters long; the limit is {MAX_BODY}")
    return body


def check_party(name: str, what: str) -> str:
    """A sender or recipient: 1-128 characters, no surrounding spaces, no control chars."""
    if not isinstance(name, str) or not name or name != name.strip() or len(name) > 128:
        raise UsageError(f"the {what} {name!r} is not valid: give a name of 1 to 128 characters")
    if any(ord(c) < 32 for c in name):
        raise UsageError(f"the {what} {name!r} contains control characters")
    return name


def agent_text(message: Message) -> str:
    """What the agent reads: who wrote, how to answer, then the body. The id in the first
    line also lets a restarted deliverer recognise a message it had already handed over."""
    about = f" (a reply to {message.reply_to})" if message.reply_to else ""
    if message.kind is MessageKind.BROADCAST:
        about = f" (to team {message.team})"
    return (
        f"[flotilla message {message.id} from {message.sender}{about}]\n"
        f"{message.body}\n"
        f'[to answer: fleet send {message.sender} "..." --reply-to {message.id}]'
    )
