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
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.websockets import WebSocketDisconnect, WebSocketState

from flotilla.bus.envelope import Event
from flotilla.bus.filters import EventFilter
from flotilla.bus.transport import Subscription, Transport
from flotilla.counters import count
from flotilla.domain.errors import OperationFailed, UsageError
from flotilla.domain.roles import Permission, allowed
from flotilla.domain.worker import Worker
from flotilla.orchestrator.turns import TRANSCRIPT_FILE
from flotilla.server.auth import LOCAL, AuthError, Principal, Require, is_local
from flotilla.server.stream_frames import (
    FrameCache,
    Params,
    batch_text,
    cursor,
    dumps,
    log_frame,
    parse_params,
    read_transcript,
)

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
LOG_POLL_S = 0.25
MAX_CLIENT_FRAME = 64 * 1024
MAX_BATCH = 500  # events per frame at most, with batch=1
BATCH_EVERY_S = 0.02  # with batch=1: frames at most this often (events wait up to that)
_REASON_BYTES = 120  # a close reason is at most 123 bytes of UTF-8

WorkerLookup = Callable[[str], Worker]


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


# -- one WebSocket connection ---------------------------------------------------------------


class WsConnection:
    """The tasks of one client: the event pump, transcript tails, heartbeat, receiver.
    Every send holds `lock`, so frames never interleave and a filter change happens
    between two frames."""

    def __init__(
        self,
        websocket: WebSocket,
        bus: Transport,
        frames: FrameCache,
        workers: WorkerLookup | None,
        heartbeat_s: float,
        log_poll_s: float,
    ) -> None:
        self.ws = websocket
        self.bus = bus
        self.frames = frames
        self.workers = workers
        self.heartbeat_s = heartbeat_s
        self.log_poll_s = log_poll_s
        self.lock = asyncio.Lock()
        self.done = asyncio.Event()
        self.cursor = 0  # the seq of the last event sent
        self.offsets: dict[str, int] = {}  # worker id -> transcript bytes sent
        self.last_sent = time.monotonic()
        self.sub: Subscription | None = None
        self.pruned_announced: int | None = None
        self.tasks: set[asyncio.Task[None]] = set()  # pump and tails: replaced on a change

    async def run(self, params: Params) -> None:
        async with self.lock:
            try:
                await self._subscribe(params)
            except OperationFailed as exc:  # the bus is not running (the daemon is stopping)
                count("stream.bus_unavailable")
                await _refuse(self.ws, 1013, str(exc))
                return
        others = {
            asyncio.create_task(self._guard(self._receive(), "stream.ws_receive_failed")),
            asyncio.create_task(self._guard(self._heartbeat(), "stream.ws_heartbeat_failed")),
        }
        try:
            await self.done.wait()
        finally:
            await _cancel(others | self.tasks)
            if self.sub is not None:
                await self.sub.close()
            await _close(self.ws, 1000, "")

    async def _guard(self, work: Any, counter: str) -> None:
        """Any end of one task ends the connection; a failure is counted."""
        try:
            await work
        except asyncio.CancelledError:
            raise  # replaced by a filter change, or the connection is ending anyway
        except Exception:
            count(counter)  # mostly a client gone while we sent
            log.debug("stream task failed", exc_info=True)
        self.done.set()

    async def send(self, value: Any) -> None:
        async with self.lock:
            await self._send_locked(dumps(value))

    async def _send_locked(self, text: str) -> None:
        await self.ws.send_text(text)
        self.last_sent = time.monotonic()

    async def _subscribe(self, params: Params) -> None:
        """(Re)start the pump and tails for `params`; the caller holds the lock."""
        await _cancel(self.tasks)
        self.tasks = set()
        if self.sub is not None:
            await self.sub.close()
        since = params.since
        if since is None and self.sub is not None:
            since = self.cursor  # a filter change goes on from where the client is
        self.sub = self.bus.subscribe(params.event_filter, since=since)
        self.cursor = self.sub.cursor
        pump = self._pump(self.sub, params.batch)
        self.tasks.add(asyncio.create_task(self._guard(pump, "stream.ws_failed")))
        hello = {"subscribed": params.event_filter.to_dict(), "cursor": self.cursor}
        await self._send_locked(dumps(hello))
        if params.wants_logs:
            await self._start_tails(params)

    async def _start_tails(self, params: Params) -> None:
        for worker_id in sorted(params.event_filter.subjects):
            worker = await self._worker(worker_id)
            if worker is None or not worker.run_dir:
                await self._send_locked(dumps({"error": f"no worker with id {worker_id!r}"}))
                continue
            team = worker.settings.get("team")
            if params.event_filter.teams and team not in params.event_filter.teams:
                continue
            if worker_id in params.log_offsets:
                self.offsets[worker_id] = params.log_offsets[worker_id]
            elif params.log_offset_all is not None or worker_id not in self.offsets:
                self.offsets[worker_id] = params.log_offset_all or 0
            tail = self._guard(self._tail(worker), "stream.log_tail_failed")
            self.tasks.add(asyncio.create_task(tail))

    async def _worker(self, worker_id: str) -> Worker | None:
        if self.workers is None:
            return None
        try:
            return await asyncio.to_thread(self.workers, worker_id)
        except UsageError:  # NotFound: a subject that is a task or message, or a typo
            count("stream.log_subject_not_a_worker")
            return None

    async def _pump(self, sub: Subscription, batch: bool) -> None:
        async for event in sub:
            if batch:  # at most a frame per BATCH_EVERY_S: what came meanwhile goes along
                lull = self.last_sent + BATCH_EVERY_S - time.monotonic()
                if lull > 0:
                    await asyncio.sleep(lull)
            events = [event, *sub.take_ready(MAX_BATCH - 1)] if batch else [event]
            async with self.lock:
                await self._announce_pruned(sub)
                text = batch_text(self.frames, events) if batch else self.frames.text(event)
                await self._send_locked(text)
                self.cursor = events[-1].seq
        await _close(self.ws, 1012, "the event bus stopped: reconnect with since=cursor")

    async def _announce_pruned(self, sub: Subscription) -> None:
        """Say so once when the log had pruned events this client had not seen yet."""
        before = sub.pruned_before
        if before is not None and before != self.pruned_announced:
            self.pruned_announced = before
            await self._send_locked(dumps({"pruned": {"before": before}, "cursor": self.cursor}))

    async def _tail(self, worker: Worker) -> None:
        path = Path(worker.run_dir) / TRANSCRIPT_FILE
        while True:  # until the connection ends (or its filter changes)
            lines, _ = await asyncio.to_thread(read_transcript, path, self.offsets[worker.id])
            for record, offset in lines:
                async with self.lock:
                    await self._send_locked(dumps(log_frame(worker, record, offset)))
                    self.offsets[worker.id] = offset
            if not lines:
                await asyncio.sleep(self.log_poll_s)

    async def _heartbeat(self) -> None:
        while True:  # until the connection ends
            idle = time.monotonic() - self.last_sent
            if idle >= self.heartbeat_s:
                async with self.lock:
                    if self.sub is not None:  # a filter may let no event after a gap through
                        await self._announce_pruned(self.sub)
                    ping = {"ping": round(time.time(), 3), "cursor": self.cursor}
                    await self._send_locked(dumps(ping))
                idle = 0.0
            await asyncio.sleep(self.heartbeat_s - idle)

    async def _receive(self) -> None:
        while True:  # until the client disconnects
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", errors="replace")
            await self._control(text)

    async def _control(self, text: str) -> None:
        """A client frame: a filter change or a ping; a bad one is answered, not fatal."""
        try:
            if len(text) > MAX_CLIENT_FRAME:
                raise UsageError(f"a client frame is at most {MAX_CLIENT_FRAME} bytes")
            try:
                request = json.loads(text)
            except ValueError as exc:
                raise UsageError(f"a client frame is a JSON object: {exc}") from None
            if isinstance(request, dict) and "ping" in request:
                await self.send({"pong": request["ping"]})
                return
            wanted = request.get("subscribe") if isinstance(request, dict) else None
            if not isinstance(wanted, dict):
                raise UsageError('send {"subscribe": {"kind": ..., "subject": ..., "team": ...}}')
            params = parse_params(wanted)
        except UsageError as exc:
            count("stream.ws_bad_client_frame")
            await self.send({"error": str(exc)})
            return
        async with self.lock:
            await self._subscribe(params)


async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state is not WebSocketState.CONNECTED:
        return
    if websocket.client_state is not WebSocketState.CONNECTED:
        return
    short = reason.encode()[:_REASON_BYTES].decode("utf-8", errors="ignore")
    try:
        await websocket.close(code, short)
    except (OSError, RuntimeError, WebSocketDisconnect):  # the client went away first
        count("stream.ws_close_failed")


async def _refuse(websocket: WebSocket, code: int, message: str) -> None:
    """Say why in a frame (close reasons are short), then close with `code`."""
    try:
        await websocket.send_text(dumps({"error": message, "code": code}))
    except (OSError, RuntimeError, WebSocketDisconnect):  # the client went away first
        count("stream.ws_refusal_unsent")
    await _close(websocket, code, message)


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
            await _refuse(websocket, 4000 + exc.status, str(exc))
            return
        except UsageError as exc:
            count("stream.ws_bad_request")
            await _refuse(websocket, 4400, str(exc))
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
                yield f": ping {round(time.time(), 3)}\n\n"
                done, _ = await asyncio.wait(
                    {step, stopping}, timeout=heartbeat_s, return_when=first
                )
            if stopping.done() or step.exception() is not None:
                return  # the daemon or its bus stops (StopAsyncIteration): clients reconnect
            event = step.result()
            if sub.pruned_before is not None and sub.pruned_before != announced:
                announced = sub.pruned_before  # events after the cursor were pruned: lost
                yield f"data: {dumps({'pruned': {'before': announced}})}\n\n"
            yield f"id: {event.seq}\ndata: {frames.text(event)}\n\n"
    finally:
        for waiting in (step, stopping):
            if waiting is not None and not waiting.done():
                waiting.cancel()
        clients.sse -= 1
        await sub.close()
