"""One WebSocket client of GET /ws (routes_stream.py, which documents the protocol):
the tasks that serve it, each sending under one lock, and the refusal that closes it.

A connection has an event pump (its bus subscription; with batch=1 several events per
frame, at most one frame per BATCH_EVERY_S), a tail per worker whose transcript lines it
asked for, a heartbeat that also announces a pruned cursor no event would reveal, and a
receiver for the client's filter changes and pings. A filter change replaces the pump
and tails between two frames; the end of any task ends the connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from flotilla.bus.transport import Subscription, Transport
from flotilla.counters import count
from flotilla.domain.errors import OperationFailed, UsageError
from flotilla.domain.worker import Worker
from flotilla.orchestrator.turns import TRANSCRIPT_FILE
from flotilla.server.stream_frames import (
    FrameCache,
    Params,
    dumps,
    log_frame,
    parse_params,
    read_transcript,
)

log = logging.getLogger(__name__)

MAX_CLIENT_FRAME = 64 * 1024
MAX_BATCH = 500  # events per frame at most, with batch=1
BATCH_EVERY_S = 0.02  # with batch=1: frames at most this often (events wait up to that)
_REASON_BYTES = 120  # a close reason is at most 123 bytes of UTF-8

WorkerLookup = Callable[[str], Worker]


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
                await refuse(self.ws, 1013, str(exc))
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
                text = self.frames.batch(sub.filter, events) if batch else self.frames.text(event)
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


async def refuse(websocket: WebSocket, code: int, message: str) -> None:
    """Say why in a frame (close reasons are short), then close with `code`."""
    try:
        await websocket.send_text(dumps({"error": message, "code": code}))
    except (OSError, RuntimeError, WebSocketDisconnect):  # the client went away first
        count("stream.ws_refusal_unsent")
    await _close(websocket, code, message)
