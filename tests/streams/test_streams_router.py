"""The stream routes alone, on real uvicorn in the test's event loop over a real SQLite
event log: heartbeats, transcript tailing of a file written in pieces, subscriptions
released when clients go, and the pure helpers (parameters, transcript reading)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from router_support import HEARTBEAT_S, Served
from streams_support import events_until, frame
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from flotilla.bus.envelope import Envelope
from flotilla.domain.errors import UsageError
from flotilla.orchestrator.turns import TRANSCRIPT_FILE
from flotilla.server.stream_frames import parse_params, read_transcript


async def _settle(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_an_idle_stream_gets_heartbeats_with_its_cursor(served: Served) -> None:
    served.bus.publish(Envelope.new("x.one", "me"))
    async with served.ws(since=0) as ws:
        assert "subscribed" in await frame(ws)
        assert (await frame(ws))["kind"] == "x.one"
        started = time.monotonic()
        ping = await frame(ws, 5)
        waited = time.monotonic() - started
    assert ping["cursor"] == 1 and isinstance(ping["ping"], float)
    assert HEARTBEAT_S * 0.8 <= waited < HEARTBEAT_S * 5


async def test_a_transcript_written_in_pieces_streams_whole_lines(served: Served) -> None:
    path = served.run_dir / TRANSCRIPT_FILE
    async with served.ws(kind="worker.log", subject="w-1,t-9") as ws:
        assert "subscribed" in await frame(ws)
        assert "no worker with id 't-9'" in (await frame(ws))["error"]
        with path.open("a") as out:
            out.write(json.dumps({"t": 1.5, "kind": "text", "text": "a"}) + "\n")
            out.write('{"t": 2.0, "kind": "te')  # half a line: not sent yet
            out.flush()
            [first] = await events_until(ws, lambda got: len(got) >= 1)
            await asyncio.sleep(0.2)
            out.write('xt", "text": "b"}\nnot json\n')
        rest = await events_until(ws, lambda got: len(got) >= 2)
    assert first["payload"]["line"] == {"t": 1.5, "kind": "text", "text": "a"}
    assert first["created_at"] == 1.5 and first["payload"]["name"] == "one"
    assert rest[0]["payload"]["line"]["text"] == "b"
    assert rest[1]["payload"]["line"] == {"text": "not json"}
    assert rest[1]["payload"]["offset"] == path.stat().st_size


async def test_clients_that_go_release_their_subscriptions(served: Served) -> None:
    async with served.ws() as ws:
        await frame(ws)
        assert served.bus.subscribers == 1 and served.clients.ws == 1
    await _settle(lambda: served.bus.subscribers == 0 and served.clients.ws == 0)

    headers = {"Authorization": f"Bearer {served.token}"}
    async with (
        httpx.AsyncClient(base_url=served.url, headers=headers, timeout=10) as client,
        client.stream("GET", "/events/stream") as answer,
    ):
        async for line in answer.aiter_lines():
            if line.startswith(": cursor"):
                break
        assert served.clients.sse == 1
    await _settle(lambda: served.bus.subscribers == 0 and served.clients.sse == 0)


async def test_many_events_in_a_burst_arrive_in_order_once(served: Served) -> None:
    async with served.ws(since=0, kind="burst") as ws:
        await frame(ws)
        for i in range(300):
            served.bus.publish(Envelope.new("burst", "me", {"i": i}))
        got = await events_until(ws, lambda got: len(got) >= 300)
    assert [e["payload"]["i"] for e in got] == list(range(300))


async def test_a_page_of_another_origin_is_refused_4403(served: Served) -> None:
    async with connect(
        f"{served.url.replace('http', 'ws')}/ws?token={served.token}", origin="http://evil.test"
    ) as ws:
        refusal = await frame(ws)
        with pytest.raises(ConnectionClosed) as closed:
            await frame(ws)
    assert refusal["code"] == 4403 and "evil.test" in refusal["error"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    own = served.url  # a page the fleet serves itself (the dashboard)
    async with connect(f"{own.replace('http', 'ws')}/ws?token={served.token}", origin=own) as ws:
        assert "subscribed" in await frame(ws)


def test_parameters_are_checked_with_a_clear_line() -> None:
    params = parse_params({"kind": "worker.log", "subject": "a,b", "log_offset": "a:10,b:0"})
    assert params.wants_logs and params.log_offsets == {"a": 10, "b": 0}
    assert parse_params({"since": "5", "log_offset": "7"}).log_offset_all == 7
    for raw, message in [
        ({"since": "-1"}, "'since' must be >= 0"),
        ({"since": True}, "'since' must be a whole number"),
        ({"log_offset": "a:x"}, "'log_offset' must be a whole number"),
        ({"kind": "worker.log"}, "subject=ID"),
        ({"kind": 5}, "'kind' is a comma-separated text"),
    ]:
        with pytest.raises(UsageError, match=message):
            parse_params(raw)


def test_read_transcript_starts_over_when_the_file_was_replaced(tmp_path: Path) -> None:
    path = tmp_path / TRANSCRIPT_FILE
    assert read_transcript(path, 0) == ([], 0)
    path.write_text('{"n": 1}\n{"n": 2}\n')
    lines, end = read_transcript(path, 0)
    assert [r for r, _ in lines] == [{"n": 1}, {"n": 2}] and end == path.stat().st_size
    path.write_text('{"n": 3}\n')  # shorter than what was read: a new file
    assert [r for r, _ in read_transcript(path, end)[0]] == [{"n": 3}]
