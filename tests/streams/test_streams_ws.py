"""The WebSocket stream of a real `fleet serve`: a scripted worker's states, filters,
resuming after a disconnect, refusals, and a worker's transcript lines."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
import websockets
from streams_support import Daemon, events_until, frame, ws_connect
from websockets.asyncio.client import connect, unix_connect

pytestmark = pytest.mark.slow


def make_tasks(daemon: Daemon, team: str, count: int) -> list[str]:
    made = []
    for i in range(count):
        task = daemon.call("POST", "/tasks", json={"team": team, "title": f"{team} task {i}"})
        made.append(task["id"])
    return made


def log_seqs(daemon: Daemon, since: int, **filters: str) -> list[int]:
    found = daemon.call("GET", "/events", params={"since": since, "limit": 5000, **filters})
    return [e["seq"] for e in found]


async def test_a_scripted_workers_states_arrive_in_order(daemon: Daemon) -> None:
    async with ws_connect(daemon, kind="worker.state", token=daemon.token("monitor")) as ws:
        hello = await frame(ws)
        assert hello["subscribed"]["kinds"] == ["worker.state"]
        worker = await asyncio.to_thread(daemon.create_worker, "states")
        events = await events_until(
            ws,
            lambda got: any(
                e["subject"] == worker["id"] and e["payload"]["to"] == "succeeded" for e in got
            ),
            timeout=60,
        )
    mine = [e for e in events if e["subject"] == worker["id"]]
    moves = [e["payload"]["to"] for e in mine]
    assert moves[0] == "queued" and moves[-1] == "succeeded", moves
    assert "running" in moves
    assert moves.index("queued") < moves.index("running") < moves.index("succeeded")
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)) and seqs[0] > hello["cursor"]
    first = mine[0]
    assert set(first) == {
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
    assert first["kind"] == "worker.state" and first["payload"]["name"] == "states"


async def test_filters_narrow_by_kind_subject_and_team(daemon: Daemon) -> None:
    start = log_seqs(daemon, 0)[-1] if log_seqs(daemon, 0) else 0
    red = make_tasks(daemon, "red", 2)
    blue = make_tasks(daemon, "blue", 2)
    token = daemon.token("monitor")
    async with ws_connect(daemon, since=start, kind="task", team="red", token=token) as ws:
        reds = await events_until(ws, lambda got: len(got) >= 2)
        assert not await _more(ws)
    assert [e["subject"] for e in reds] == red
    assert {e["team"] for e in reds} == {"red"} and {e["kind"] for e in reds} == {"task.created"}
    async with ws_connect(daemon, since=start, subject=blue[1], token=token) as ws:
        [one] = await events_until(ws, lambda got: len(got) >= 1)
        assert not await _more(ws)
    assert one["subject"] == blue[1] and one["team"] == "blue"
    # A kind prefix matches whole segments only: `tas` is not `task`.
    async with ws_connect(daemon, since=start, kind="tas,worker.nothing", token=token) as ws:
        assert not await _more(ws)


async def _more(ws: Any, wait_s: float = 1.0) -> bool:
    """Whether another event frame comes within `wait_s`."""
    try:
        while True:
            got = await frame(ws, wait_s)
            if "kind" in got:
                return True
    except TimeoutError:
        return False


async def test_a_reconnecting_client_misses_nothing_and_gets_nothing_twice(
    daemon: Daemon,
) -> None:
    token = daemon.token("monitor")
    make_tasks(daemon, "resume", 3)
    async with ws_connect(daemon, since=0, kind="task", team="resume", token=token) as ws:
        first = await events_until(ws, lambda got: len(got) >= 3)
    cursor = first[-1]["seq"]
    make_tasks(daemon, "resume", 5)  # published while nobody listens

    # More are published while the client reconnects and replays: the replay/live seam.
    more = threading.Thread(target=make_tasks, args=(daemon, "resume", 10))
    more.start()
    try:
        async with ws_connect(daemon, since=cursor, kind="task", team="resume", token=token) as ws:
            second = await events_until(ws, lambda got: len(got) >= 15)
            more.join()
            assert not await _more(ws)
    finally:
        more.join()
    seqs = [e["seq"] for e in first + second]
    assert seqs == sorted(set(seqs)), "a repeat or a reordering"
    assert seqs == log_seqs(daemon, 0, kind="task", team="resume"), "a gap"


async def test_a_client_may_change_its_filters_on_the_way(daemon: Daemon) -> None:
    token = daemon.token("monitor")
    async with ws_connect(daemon, kind="task", team="left", token=token) as ws:
        await frame(ws)  # subscribed
        make_tasks(daemon, "left", 1)
        [left] = await events_until(ws, lambda got: len(got) >= 1)
        await ws.send(json.dumps({"subscribe": {"kind": "task", "team": "right"}}))
        changed = await frame(ws)
        assert changed["subscribed"]["teams"] == ["right"]
        assert changed["cursor"] == left["seq"]
        make_tasks(daemon, "left", 1)
        right = make_tasks(daemon, "right", 1)
        [got] = await events_until(ws, lambda got: len(got) >= 1)
        assert got["subject"] == right[0]
        await ws.send("not json")
        assert "JSON" in (await frame(ws))["error"]
        await ws.send(json.dumps({"ping": 7}))
        assert await frame(ws) == {"pong": 7}


@pytest.mark.parametrize(
    ("token", "counter"),
    [(None, "auth.missing_token"), ("not.a.token", "auth.invalid_token")],
)
async def test_no_or_a_bad_token_is_closed_4401_and_counted(
    daemon: Daemon, token: str | None, counter: str
) -> None:
    before = daemon.call("GET", "/health")["errors"].get(counter, 0)
    async with ws_connect(daemon, token=token) as ws:
        refusal = await frame(ws)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await frame(ws)
    assert refusal["code"] == 4401 and "POST /auth" in refusal["error"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert "token" in closed.value.rcvd.reason
    assert daemon.call("GET", "/health")["errors"][counter] == before + 1


async def test_a_bad_parameter_is_closed_4400_with_the_reason(daemon: Daemon) -> None:
    async with ws_connect(daemon, since="yesterday", token=daemon.token("monitor")) as ws:
        refusal = await frame(ws)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await frame(ws)
    assert refusal["code"] == 4400 and "'since' must be a whole number" in refusal["error"]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


async def test_a_workers_transcript_lines_stream_and_resume_by_offset(daemon: Daemon) -> None:
    token = daemon.token("monitor")
    worker = await asyncio.to_thread(daemon.create_worker, "talker")
    params = {"kind": "worker.log,worker.state", "subject": worker["id"], "token": token}
    async with ws_connect(daemon, **params) as ws:
        streamed = await events_until(
            ws,
            lambda got: any(
                e["kind"] == "worker.log" and e["payload"]["line"]["kind"] == "result" for e in got
            ),
            timeout=60,
        )
    lines = [e for e in streamed if e["kind"] == "worker.log"]
    await asyncio.to_thread(daemon.wait_worker, "talker", {"succeeded"})
    transcript = daemon.call(
        "GET", "/workers/talker/transcript", params={"project": str(daemon.repo)}
    )
    assert [e["payload"]["line"] for e in lines] == transcript[: len(lines)]
    said = [e["payload"]["line"].get("text") for e in lines]
    assert {"line one", "line two", "line three"} <= set(said)
    offsets = [e["payload"]["offset"] for e in lines]
    assert offsets == sorted(set(offsets)) and all(e["seq"] is None for e in lines)
    assert {e["subject"] for e in lines} == {worker["id"]}

    # Resume after the second line: the rest, from the third on, exactly once.
    again = {**params, "kind": "worker.log", "log_offset": offsets[1]}
    async with ws_connect(daemon, **again) as ws:
        rest = await events_until(ws, lambda got: len(got) >= len(transcript) - 2)
        assert not await _more(ws)
    assert [e["payload"]["line"] for e in rest] == transcript[2:]


async def test_worker_log_without_a_worker_says_how_to_name_one(daemon: Daemon) -> None:
    async with ws_connect(daemon, kind="worker.log", token=daemon.token("monitor")) as ws:
        refusal = await frame(ws)
    assert refusal["code"] == 4400 and "subject=ID" in refusal["error"]


async def test_the_local_socket_is_trusted_and_a_header_token_works(daemon: Daemon) -> None:
    sock = str(daemon.home / "daemon.sock")
    async with unix_connect(sock, "ws://flotilla/ws?kind=task&team=local") as ws:
        assert (await frame(ws))["subscribed"]["teams"] == ["local"]
        [task] = make_tasks(daemon, "local", 1)
        [event] = await events_until(ws, lambda got: len(got) >= 1)
    assert event["subject"] == task
    header = {"Authorization": f"Bearer {daemon.token('monitor')}"}
    async with connect(daemon.ws_url, additional_headers=header, open_timeout=20) as ws:
        assert "subscribed" in await frame(ws)
