"""HTTP routes of messages and of the event log.

POST /messages sends a direct message or reply (`to`) or a team broadcast (`team`);
GET /inbox/{agent} lists an agent's messages; POST /messages/{id}/read marks one read;
GET /events?since=CURSOR reads the event log after a cursor, as a JSON list (the live
WebSocket/SSE streams read the same log through the bus). A caller with a token
speaks as the agent its token names; over the local socket the body's `sender` (or
"user") is used. Sending needs `message_send` (a broadcast also `broadcast`), marking
read `message_send`, reading `read`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from flotilla.bus.filters import EventFilter
from flotilla.bus.message import MAX_BODY, Message
from flotilla.bus.transport import EventLog
from flotilla.domain.errors import UsageError
from flotilla.domain.roles import Permission, allowed, roles_with
from flotilla.orchestrator.messaging import MessageService
from flotilla.orchestrator.service import run_blocking
from flotilla.server.auth import AuthError, Principal, require

PERSON = "user"  # who a local caller is when it names no sender
MAX_EVENTS = 5000

_send = require(Permission.MESSAGE_SEND)
_read = require(Permission.READ)


class SendBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: str = Field(min_length=1, max_length=4096)
    body: str = Field(min_length=1, max_length=MAX_BODY)
    to: str | None = Field(default=None, max_length=128)
    team: str | None = Field(default=None, max_length=128)
    sender: str | None = Field(default=None, max_length=128)
    reply_to: str | None = Field(default=None, max_length=64)


def _speaker(principal: Principal, claimed: str | None) -> str:
    """Who sends: a token's agent (it cannot speak for another), or the local caller's pick."""
    if principal.local:
        return claimed or PERSON
    if claimed is not None and claimed != principal.agent:
        raise AuthError(
            403,
            "auth.impersonation",
            f"a token for {principal.agent!r} cannot send as {claimed!r}",
        )
    return principal.agent


def _reader_may_mark(principal: Principal, agent: str) -> None:
    if not principal.local and principal.agent != agent:
        raise AuthError(403, "auth.not_recipient", f"only {agent!r} can mark its messages read")


def message_router(messages: MessageService, event_log: EventLog | None = None) -> APIRouter:
    router = APIRouter()
    log: EventLog = event_log or messages.db

    @router.post("/messages")
    async def send(body: SendBody, principal: Principal = Depends(_send)) -> dict[str, Any]:
        """A direct message (`to`, with `reply_to` for a reply) or a broadcast (`team`).
        The answer lists the stored messages with their delivery state."""
        sender = _speaker(principal, body.sender)
        if (body.to is None) == (body.team is None):
            raise UsageError("name either 'to' (an agent) or 'team' (a broadcast), not both")
        if body.team is not None:
            if not allowed(principal.role, Permission.BROADCAST):
                able = ", ".join(r.value for r in roles_with(Permission.BROADCAST))
                raise AuthError(
                    403,
                    "auth.forbidden",
                    f"role {principal.role.value!r} may not 'broadcast' (roles that may: {able})",
                )
            if body.reply_to is not None:
                raise UsageError("a broadcast cannot be a reply: drop 'reply_to' or use 'to'")
            sent = await run_blocking(
                messages.broadcast, body.project, sender, body.team, body.body
            )
            group = sent[0].broadcast_id if sent else None
        else:
            one = await run_blocking(
                messages.send, body.project, sender, body.to, body.body, body.reply_to
            )
            sent, group = [one], None
        return {"broadcast_id": group, "messages": [m.to_dict() for m in sent]}

    @router.get("/inbox/{agent}", dependencies=[Depends(_read)])
    async def inbox(
        agent: str,
        project: str,
        unread: bool = False,
        limit: int = Query(200, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        """The agent's messages, oldest first (the newest `limit`); `unread`: not read yet."""
        found = await run_blocking(
            lambda: messages.inbox(project, agent, unread_only=unread, limit=limit)
        )
        return [m.to_dict() for m in found]

    @router.get("/messages/{message_id}", dependencies=[Depends(_read)])
    async def get_message(message_id: str) -> dict[str, Any]:
        message: Message = await run_blocking(messages.get, message_id)
        return message.to_dict()

    @router.post("/messages/{message_id}/read")
    async def mark_read(message_id: str, principal: Principal = Depends(_send)) -> dict[str, Any]:
        """Only the recipient marks its message read (over the local socket: anyone)."""
        message: Message = await run_blocking(messages.get, message_id)
        _reader_may_mark(principal, message.recipient)
        marked: Message = await run_blocking(messages.mark_read, message_id)
        return marked.to_dict()

    @router.get("/events", dependencies=[Depends(_read)])
    async def events(
        since: int = Query(
            0, ge=0, le=2**63 - 1, description="The last seq seen; 0 for the whole log."
        ),
        kind: str | None = Query(None, description="Kind prefixes, comma-separated."),
        subject: str | None = None,
        team: str | None = None,
        limit: int = Query(500, ge=1, le=MAX_EVENTS),
    ) -> list[dict[str, Any]]:
        """Events after `since`, oldest first; pass the last one's `seq` as the next `since`."""
        wanted = EventFilter.of(kind, subject, team)
        found = await run_blocking(lambda: log.read(since, event_filter=wanted, limit=limit))
        return [e.to_dict() for e in found]

    return router
