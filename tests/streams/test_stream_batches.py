"""Batched WebSocket frames (`batch=1`, or "batch" in a subscribe frame) on the stream
routes alone: a burst comes in fewer frames than events, each event once and in seq
order, no frame over MAX_BATCH; a batching client that reconnects with its cursor misses
nothing; without batch=1 every event is its own frame; bad values are refused."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import websockets
from router_support import Served, reply
from streams_support import FRAME_TIMEOUT_S, events_until, frame
from websockets.asyncio.client import ClientConnection

from flotilla.bus.envelope import Envelope
from flotilla.orchestrator.turns import TRANSCRIPT_FILE
from flotilla.server.ws_connection import MAX_BATCH


def publish(served: Served, count: int, label: str = "", **fields: Any) -> None:
    for i in range(count):
        served.bus.publish(Envelope.new("burst", "me", {"i": i, "label": label}, **fields))


async def batches_until(
    ws: ClientConnection, total: int, timeout: float = FRAME_TIMEOUT_S
) -> list[list[dict[str, Any]]]:
    """The event frames of a batching stream, each as its list of events, until `total`
    events came; control frames are skipped, an event frame alone fails the test."""
    batches: list[list[dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    while sum(len(batch) for batch in batches) < total:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out; got {json.dumps(batches)[:2000]}")
        received = await frame(ws, left)
        assert "kind" not in received, f"an event alone in a batching stream: {received}"
        if "events" in received:
            assert set(received) == {"events"}, received
            batches.append(received["events"])
    return batches


def flat(batches: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [event for batch in batches for event in batch]


async def next_batch_is_only(ws: ClientConnection, served: Served, marker: str) -> None:
    """Nothing more is on its way: an event published now is the whole next frame."""
    publish(served, 1, marker)
    [batch] = await batches_until(ws, 1)
    assert [e["payload"]["label"] for e in batch] == [marker]


async def test_a_burst_comes_in_fewer_frames_each_event_once_in_order(served: Served) -> None:
    async with served.ws(batch=1, kind="burst") as ws:
        hello = await frame(ws)
        assert hello["subscribed"]["kinds"] == ["burst"]
        publish(served, 300, "burst")
        batches = await batches_until(ws, 300)
        await next_batch_is_only(ws, served, "after")
    events = flat(batches)
    assert len(batches) < 300, "a frame per event: nothing was batched"
    assert all(1 <= len(batch) <= MAX_BATCH for batch in batches)
    assert [e["payload"]["i"] for e in events] == list(range(300))
    start = hello["cursor"]
    assert [e["seq"] for e in events] == list(range(start + 1, start + 301))
    assert set(events[0]) == {
        "seq",
        "id",
        "kind",
        "sender",
        "recipient",
        "subject",
        "team",
        "payload",
        "created_at",
    }


async def test_no_frame_holds_more_than_max_batch_events(served: Served) -> None:
    """More than a subscriber's queue holds at once: it reads the log instead, and its
    frames still stop at MAX_BATCH."""
    total = 2 * MAX_BATCH + 200
    async with served.ws(batch=1, kind="burst") as ws:
        hello = await frame(ws)
        publish(served, total, "big")
        batches = await batches_until(ws, total)
        await next_batch_is_only(ws, served, "after")
    assert max(len(batch) for batch in batches) <= MAX_BATCH
    assert len(batches) >= 3
    start = hello["cursor"]
    assert [e["seq"] for e in flat(batches)] == list(range(start + 1, start + total + 1))


async def test_a_batching_client_that_reconnects_with_its_cursor_misses_nothing(
    served: Served,
) -> None:
    async with served.ws(batch=1, kind="burst", since=0) as ws:
        await frame(ws)  # subscribed
        publish(served, 100, "first")
        first = flat(await batches_until(ws, 100))
    cursor = first[-1]["seq"]
    publish(served, 150, "away")  # while nobody listens

    # More are published while the client reconnects and replays: the replay/live seam.
    more = threading.Thread(target=publish, args=(served, 200, "seam"))
    more.start()
    try:
        async with served.ws(batch=1, kind="burst", since=cursor) as ws:
            hello = await frame(ws)
            assert hello["cursor"] == cursor
            second = flat(await batches_until(ws, 350))
            more.join()
            await next_batch_is_only(ws, served, "after")
    finally:
        more.join()
    seqs = [e["seq"] for e in first + second]
    logged = [e.seq for e in served.bus.log.read(0, limit=10_000) if e.envelope.kind == "burst"]
    assert seqs == logged[:-1], "a gap, a repeat or a reordering"  # (the last: "after")
    labels = [e["payload"]["label"] for e in second]
    assert labels[:150] == ["away"] * 150 and sorted(labels[150:]) == ["seam"] * 200


@pytest.mark.parametrize("batch", [None, "0", "false"])
async def test_without_batch_every_event_is_a_frame_of_its_own(
    served: Served, batch: str | None
) -> None:
    params = {"kind": "burst"} if batch is None else {"kind": "burst", "batch": batch}
    async with served.ws(**params) as ws:
        hello = await frame(ws)
        publish(served, 50, "single")
        got: list[dict[str, Any]] = []
        while len(got) < 50:
            received = await frame(ws)
            assert "events" not in received, received
            if "kind" in received:
                got.append(received)
    start = hello["cursor"]
    assert [e["seq"] for e in got] == list(range(start + 1, start + 51))


@pytest.mark.parametrize("on", [True, 1, "1", "true"])
async def test_a_subscribe_frame_turns_batching_on_and_off(served: Served, on: Any) -> None:
    async with served.ws(kind="burst") as ws:
        await frame(ws)  # subscribed
        await ws.send(json.dumps({"subscribe": {"kind": "burst", "batch": on}}))
        assert "subscribed" in await reply(ws)
        publish(served, 40, "on")
        batched = flat(await batches_until(ws, 40))
        await ws.send(json.dumps({"subscribe": {"kind": "burst", "batch": False}}))
        changed = await reply(ws)
        assert changed["cursor"] == batched[-1]["seq"]  # from where the client is
        publish(served, 5, "off")
        singles = await events_until(ws, lambda got: len(got) >= 5)
    assert [e["payload"]["label"] for e in batched] == ["on"] * 40
    assert [e["payload"]["label"] for e in singles] == ["off"] * 5


async def test_transcript_lines_stay_frames_alone_beside_batches(served: Served) -> None:
    path = served.run_dir / TRANSCRIPT_FILE
    async with served.ws(batch=1, kind="burst,worker.log", subject="w-1") as ws:
        await frame(ws)  # subscribed
        path.write_text("".join(json.dumps({"t": 1.0, "n": n}) + "\n" for n in range(3)))
        publish(served, 20, "mine", subject="w-1")
        lines: list[dict[str, Any]] = []
        batches: list[list[dict[str, Any]]] = []
        while len(lines) < 3 or sum(len(b) for b in batches) < 20:
            received = await frame(ws)
            if "kind" in received:
                lines.append(received)
            elif "events" in received:
                batches.append(received["events"])
    assert [e["kind"] for e in lines] == ["worker.log"] * 3
    assert [e["payload"]["line"]["n"] for e in lines] == [0, 1, 2]
    events = flat(batches)
    assert {e["kind"] for e in events} == {"burst"} and len(events) == 20


@pytest.mark.parametrize("bad", ["2", "yes"])
async def test_a_bad_batch_value_is_refused_4400_with_the_reason(served: Served, bad: str) -> None:
    async with served.ws(batch=bad) as ws:
        refusal = await frame(ws)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await frame(ws)
    assert refusal["code"] == 4400
    assert refusal["error"] == f"'batch' is 1 or 0 (true or false), not {bad!r}"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    assert "'batch' is 1 or 0" in closed.value.rcvd.reason


@pytest.mark.parametrize("bad", [2, "yes", [1]])
async def test_a_bad_batch_in_a_subscribe_frame_is_answered_not_fatal(
    served: Served, bad: Any
) -> None:
    async with served.ws(kind="burst") as ws:
        await frame(ws)  # subscribed
        await ws.send(json.dumps({"subscribe": {"kind": "burst", "batch": bad}}))
        answer = await reply(ws)
        assert answer == {"error": f"'batch' is 1 or 0 (true or false), not {bad!r}"}
        publish(served, 2, "still")  # the old subscription goes on: one frame each
        got = await events_until(ws, lambda got: len(got) >= 2)
    assert [e["payload"]["label"] for e in got] == ["still", "still"]
