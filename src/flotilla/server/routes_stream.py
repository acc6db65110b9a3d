"""Live streams of the event log: a WebSocket (GET /ws) and Server-Sent Events
(GET /events/stream), with filters and a resume cursor, plus the transcript lines of
chosen workers.

Both read the bus: a subscription from cursor `since` replays the log after it, then
goes on live, in seq order, with no gap and no repeat between the two (the in-process
transport's catch-up; see bus/inprocess.py). A client that reconnects with the last
seq it saw as `since` (SSE: the `Last-Event-ID` header its EventSource sends by itself)
misses nothing. Without `since` a stream starts live, from the log's head.

Transcript lines (`worker.log`) are not events of the log: the supervisor appends them
to the worker's `events.jsonl` (orchestrator/turns.py `append_transcript`), and writing
each line to the log too would double the store's writes for no reader. A WebSocket
whose filter names `worker.log` explicitly, with `subject=WORKER_ID`, gets a tailing
task per such worker that reads that file from a byte offset (polled every
`log_poll_s`, stopped with the connection) and sends one frame per line; the frame's
`payload.offset` is the resume cursor of that worker's lines (`log_offset=N`, or
`log_offset=ID:N,ID:N` for several workers). Frames of the log and of transcripts
interleave; each is in order within its own cursor.

Protocol (WebSocket, JSON text frames; a frame with "kind" is an event):
  event       {"seq", "id", "kind", "sender", "recipient", "subject", "team", "payload",
               "created_at"}                                   (seq is null for worker.log)
  events      {"events": [event, ...]}   with batch=1: the events of the log for this
               client, at most one frame per 20 ms (up to 500 events each), so a busy stream
               costs a frame per batch, not per event (transcript lines stay frames alone)
  subscribed  {"subscribed": {"kinds", "subjects", "teams"}, "cursor": N}  (first frame,
               and after each change)
  pruned      {"pruned": {"before": N}, "cursor": C}  the log no longer holds the events
               after the client's cursor up to N (see store/bus_retention.py): they are lost
  ping        {"ping": unix_time, "cursor": N}   when nothing else was sent for heartbeat_s
  error       {"error": "...", "code": 44xx} then the close; {"error": "..."} otherwise
The client may send {"subscribe": {"kind", "subject", "team", "since", "log_offset", "batch"}}
to change its filters (from its cursor unless `since` is given), and {"ping": x}
(answered {"pong": x}). Refusals close the socket with 4000 + the HTTP status: 4401
(no or bad token), 4403 (role may not read, or a page of another origin), 4400 (bad
parameters), 4503 (tokens unavailable); 1013 if the bus is not running.

SSE sends `id: SEQ` + `data: EVENT` per event, a `: ping` comment every heartbeat, and
`data: {"pruned": {"before": N}}` (no id) once when the WebSocket would send "pruned".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flotilla.bus.envelope import Event
from flotilla.bus.filters import EventFilter
from flotilla.bus.transport import Subscription, Transport
from flotilla.counters import count
from flotilla.domain.errors import UsageError
from flotilla.domain.roles import Permission, allowed
from flotilla.server.auth import LOCAL, AuthError, Principal, Require, is_local
from flotilla.server.stream_frames import FrameCache, cursor, dumps, parse_params
from flotilla.server.ws_connection import WorkerLookup, WsConnection, refuse

HEARTBEAT_S = 15.0
LOG_POLL_S = 0.25


@dataclass
class StreamClients:
    """Open streams (for /metrics), and whether the daemon is stopping."""

    ws: int = 0
    sse: int = 0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        """End the SSE streams now: uvicorn would wait for them (WebSockets it closes)."""
        self.stopping.set()


class StreamRequire(Require):
    """`require(permission)` that also takes the token from a `token` query parameter:
    browsers' WebSocket and EventSource cannot set an Authorization header."""

    async def __call__(
        self,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(
            HTTPBearer(auto_error=False, description="A token from POST /auth.")
        ),
    ) -> Principal:
        token = request.query_params.get("token")
        if credentials is None and token:
            credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
        return await super().__call__(request, credentials)


def ws_principal(websocket: WebSocket) -> Principal:
    """The caller of a WebSocket, as `Require(READ)` decides for HTTP; AuthError if refused.

    Browsers let any page open a WebSocket to any host (no CORS), so one sent by a page
    of another origin is refused: with auth off on loopback it would read the fleet."""
    origin = websocket.headers.get("origin")
    if origin and urlsplit(origin).netloc != websocket.headers.get("host"):
        raise AuthError(403, "auth.cross_origin", f"a WebSocket from a page of {origin} is refused")
    authority = websocket.app.state.authority
    token = websocket.query_params.get("token")
    header = websocket.headers.get("authorization", "")
    if not token and header.lower().startswith("bearer "):
        token = header[7:].strip()
    if not token:
        if is_local(websocket.scope) or not authority.tcp_auth:
            return LOCAL
        raise AuthError(
            401,
            "auth.missing_token",
            "no token: pass ?token=<token> or the header 'Authorization: Bearer <token>' "
            "(get one with POST /auth)",
        )
    principal: Principal = authority.require_tokens().verify(token)
    if not allowed(principal.role, Permission.READ):
        raise AuthError(403, "auth.forbidden", f"role {principal.role.value!r} may not 'read'")
    return principal


# -- the router -----------------------------------------------------------------------------


def stream_router(
    bus: Transport,
    *,
    workers: WorkerLookup | None = None,
    clients: StreamClients | None = None,
    heartbeat_s: float = HEARTBEAT_S,
    log_poll_s: float = LOG_POLL_S,
) -> APIRouter:
    """GET /ws and GET /events/stream over `bus`; `workers` finds a worker by id (for
    worker.log), `clients` counts open streams."""
    router = APIRouter()
    frames = FrameCache()
    open_streams = clients or StreamClients()

    @router.websocket("/ws")
    async def websocket_stream(websocket: WebSocket) -> None:
        await websocket.accept()  # first: a close code reaches only an accepted client
        try:
            ws_principal(websocket)
            params = parse_params(websocket.query_params)
        except AuthError as exc:
            count(exc.counter)
            await refuse(websocket, 4000 + exc.status, str(exc))
            return
        except UsageError as exc:
            count("stream.ws_bad_request")
            await refuse(websocket, 4400, str(exc))
            return
        connection = WsConnection(websocket, bus, frames, workers, heartbeat_s, log_poll_s)
        open_streams.ws += 1
        try:
            await connection.run(params)
        finally:
            open_streams.ws -= 1

    @router.get(
        "/events/stream",
        dependencies=[Depends(StreamRequire(Permission.READ))],
        response_class=StreamingResponse,
    )
    async def event_stream(
        since: int | None = Query(None, ge=0, description="The last seq seen (none: live)."),
        kind: str | None = Query(None, description="Kind prefixes, comma-separated."),
        subject: str | None = None,
        team: str | None = None,
        last_event_id: str | None = Header(None, description="Resume: wins over `since`."),
    ) -> StreamingResponse:
        """Server-Sent Events: `id: SEQ` and `data: EVENT` per event, a comment every
        heartbeat. An EventSource resumes by itself (it sends Last-Event-ID)."""
        if last_event_id is not None and last_event_id.strip():
            since = cursor(last_event_id.strip(), "Last-Event-ID")
        sub = bus.subscribe(EventFilter.of(kind, subject, team), since=since)
        body = _sse(sub, frames, heartbeat_s, open_streams)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    return router


async def _sse(
    sub: Subscription, frames: FrameCache, heartbeat_s: float, clients: StreamClients
) -> AsyncIterator[str]:
    clients.sse += 1
    events = sub.__aiter__()
    stopping = asyncio.ensure_future(clients.stopping.wait())
    step: asyncio.Future[Event] | None = None
    announced: int | None = None
    first = asyncio.FIRST_COMPLETED
    try:
        yield f"retry: 2000\n: cursor {sub.cursor}\n\n"
        while True:  # until the client goes (the response is cancelled) or the bus stops
            step = asyncio.ensure_future(events.__anext__())
            done, _ = await asyncio.wait({step, stopping}, timeout=heartbeat_s, return_when=first)
            while not done:
                if (before := sub.pruned_before) is not None and before != announced:
                    announced = before  # told now: the filter may let no event through
                    yield _pruned(before)
                yield f": ping {round(time.time(), 3)}\n\n"
                done, _ = await asyncio.wait(
                    {step, stopping}, timeout=heartbeat_s, return_when=first
                )
            if stopping.done() or step.exception() is not None:
                return  # the daemon or its bus stops (StopAsyncIteration): clients reconnect
            event = step.result()
            if (before := sub.pruned_before) is not None and before != announced:
                announced = before  # events after the cursor were pruned: lost
                yield _pruned(before)
            yield f"id: {event.seq}\ndata: {frames.text(event)}\n\n"
    finally:
        for waiting in (step, stopping):
            if waiting is not None and not waiting.done():
                waiting.cancel()
        clients.sse -= 1
        await sub.close()


def _pruned(before: int) -> str:
    return f"data: {dumps({'pruned': {'before': before}})}\n\n"
