"""A client resuming from a cursor the event log was pruned past (store/bus_retention.py)
is told once, before the events that follow: WebSocket `{"pruned": {"before": N},
"cursor": C}`, SSE `data: {"pruned": {"before": N}}`. A client whose cursor the log still
covers, or that is live, is told nothing."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from router_support import Served, reply
from streams_support import FRAME_TIMEOUT_S, frame
from websockets.asyncio.client import ClientConnection

from flotilla.bus.envelope import Envelope
from flotilla.store.bus_retention import prune_events


def publish(served: Served, count: int, kind: str = "tick") -> None:
    for i in range(count):
        served.bus.publish(Envelope.new(kind, "me", {"i": i}))


def prune(served: Served, keep_events: int) -> int:
    return prune_events(served.store, keep_days=0, keep_events=keep_events)


async def frames_until_events(
    ws: ClientConnection, count: int, timeout: float = FRAME_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Every frame (control ones too) until `count` events came, alone or batched."""
    frames: list[dict[str, Any]] = []
    seen = 0
    deadline = time.monotonic() + timeout
    while seen < count:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got {json.dumps(frames)[:2000]}"
        received = await frame(ws, left)
        frames.append(received)
        seen += len(received["events"]) if "events" in received else int("kind" in received)
    return frames


def seqs_of(frames: list[dict[str, Any]]) -> list[int]:
    found = []
    for got in frames:
        for event in got.get("events", [got] if "kind" in got else []):
            found.append(event["seq"])
    return found


def no_pings(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Heartbeats may come between any two frames on a slow machine."""
    return [got for got in frames if "ping" not in got]


def pruned_frames(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [got for got in frames if "pruned" in got]


async def test_a_websocket_resuming_past_the_pruned_log_is_told_once_first(
    served: Served,
) -> None:
    publish(served, 30)
    assert prune(served, keep_events=10) == 20  # 21..30 are kept
    async with served.ws(since=5, kind="tick") as ws:
        hello = await frame(ws)
        assert hello["cursor"] == 5
        frames = await frames_until_events(ws, 10)
        publish(served, 3)  # live now: nothing more to announce
        assert prune(served, keep_events=5) > 0  # behind this client's cursor: not its loss
        publish(served, 2)
        later = await frames_until_events(ws, 5)
        later += [await frame(ws)]  # a heartbeat, once nothing else is sent
    assert no_pings(frames)[0] == {"pruned": {"before": 21}, "cursor": 5}
    assert seqs_of(frames) == list(range(21, 31))
    assert seqs_of(later) == list(range(31, 36))
    assert "ping" in later[-1]
    assert pruned_frames(frames + later) == [no_pings(frames)[0]]


async def test_a_batching_websocket_is_told_before_its_first_batch(served: Served) -> None:
    publish(served, 30)
    prune(served, keep_events=10)
    async with served.ws(since=0, kind="tick", batch=1) as ws:
        await frame(ws)  # subscribed
        frames = await frames_until_events(ws, 10)
    assert no_pings(frames)[0] == {"pruned": {"before": 21}, "cursor": 0}
    assert all("events" in got for got in no_pings(frames)[1:])
    assert seqs_of(frames) == list(range(21, 31))


async def test_a_filter_that_lets_no_kept_event_through_is_told_with_the_heartbeat(
    served: Served,
) -> None:
    publish(served, 10, kind="gone")
    publish(served, 10, kind="kept")
    prune(served, keep_events=10)  # every "gone" event is pruned
    async with served.ws(since=0, kind="gone") as ws:
        await frame(ws)  # subscribed
        told = await reply(ws)  # (a ping first if the log was read slowly)
        ping = await frame(ws)  # sent with it
        publish(served, 1, kind="gone")
        frames = await frames_until_events(ws, 1)
    assert told == {"pruned": {"before": 11}, "cursor": 0}
    assert "ping" in ping and ping["cursor"] == 0
    assert seqs_of(frames) == [21] and not pruned_frames(frames)


async def test_a_cursor_the_log_still_covers_is_told_nothing(served: Served) -> None:
    publish(served, 24)
    publish(served, 1, kind="rare")  # seq 25
    publish(served, 5)
    prune(served, keep_events=10)  # 21..30 are kept
    # Right at the edge: the first event this filter wants comes after a run it does not.
    async with served.ws(since=20, kind="rare") as ws:
        await frame(ws)  # subscribed
        rare = await frames_until_events(ws, 1)
        rare += [await frame(ws)]  # the heartbeat: no announcement before it either
    async with served.ws(since=22, kind="tick") as ws:
        await frame(ws)  # subscribed
        ticks = await frames_until_events(ws, 7)
    assert seqs_of(rare) == [25] and "ping" in rare[-1] and not pruned_frames(rare)
    assert seqs_of(ticks) == [23, 24, 26, 27, 28, 29, 30] and not pruned_frames(ticks)


# -- Server-Sent Events ----------------------------------------------------------------------


async def read_sse(
    served: Served, until: int, headers: dict[str, str] | None = None, **params: Any
) -> list[tuple[str, Any]]:
    """("pruned", N), ("event", seq) and ("ping", None) in the order sent, until `until`
    events came, or with until=0 the first ping after a "pruned" (or the tenth ping)."""
    found: list[tuple[str, Any]] = []
    head = {"Authorization": f"Bearer {served.token}", **(headers or {})}
    async with (
        httpx.AsyncClient(base_url=served.url, headers=head, timeout=FRAME_TIMEOUT_S) as client,
        client.stream("GET", "/events/stream", params=params) as answer,
    ):
        assert answer.status_code == 200
        async for line in answer.aiter_lines():
            if line.startswith("id: "):
                found.append(("event", int(line[4:])))
            elif line.startswith("data: ") and "pruned" in (data := json.loads(line[6:])):
                assert set(data) == {"pruned"}, data
                found.append(("pruned", data["pruned"]["before"]))
            elif line.startswith(": ping"):
                found.append(("ping", None))
            kinds = [kind for kind, _ in found]
            if until and kinds.count("event") >= until:
                break
            if not until and (kinds[-2:] == ["pruned", "ping"] or kinds.count("ping") >= 10):
                break
    return found


async def test_an_sse_client_resuming_past_the_pruned_log_is_told_once_first(
    served: Served,
) -> None:
    publish(served, 30)
    prune(served, keep_events=10)
    by_since = await read_sse(served, 10, since=3, kind="tick")
    # An EventSource's own resume (Last-Event-ID) is told the same.
    by_header = await read_sse(served, 10, {"Last-Event-ID": "3"}, since=25)
    expected = [("pruned", 21)] + [("event", seq) for seq in range(21, 31)]
    assert without_pings(by_since) == expected
    assert without_pings(by_header) == expected
    covered = await read_sse(served, 5, since=25)
    assert without_pings(covered) == [("event", seq) for seq in range(26, 31)]


def without_pings(found: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [item for item in found if item[0] != "ping"]


async def test_an_sse_filter_that_lets_no_kept_event_through_is_told_by_the_heartbeat(
    served: Served,
) -> None:
    publish(served, 10, kind="gone")
    publish(served, 10, kind="kept")
    prune(served, keep_events=10)
    found = await read_sse(served, 0, since=0, kind="gone")
    assert ("pruned", 11) in found, found
    assert found[-2:] == [("pruned", 11), ("ping", None)] and found.count(("pruned", 11)) == 1
    assert {kind for kind, _ in found[:-2]} <= {"ping"}  # (if the log was read slowly)
