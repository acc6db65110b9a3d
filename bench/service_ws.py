"""The WebSocket part of bench/service.py: subscribers in their own processes, a publisher
of blackboard posts at a fixed rate, and the delivery figures."""

from __future__ import annotations

import array
import asyncio
import json
import multiprocessing
import time
from typing import TYPE_CHECKING, Any

import orjson
import websockets
from service_load import ms_summary, per_op, token

if TYPE_CHECKING:
    from service import Context

SWARM = "bench-swarm"


def subscriber_proc(url: str, tok: str, n: int, options: dict[str, Any], pipe: Any) -> None:
    """One process of `n` subscribers; says 'ready', gets (expected, deadline), sends stats."""
    asyncio.run(_subscribers(url, tok, n, options, pipe))


async def _subscribers(url: str, tok: str, n: int, options: dict[str, Any], pipe: Any) -> None:
    ws_url = url.replace("http://", "ws://") + f"/ws?kind=blackboard.posted&token={tok}"
    if options["batch"]:
        ws_url += "&batch=1"  # frames of {"events": [...]} (an experiment: see BENCHMARKS.md)
    delays: array.array[float] = array.array("d")
    e2e: array.array[float] = array.array("d")
    counts = [0] * n
    bad = [0] * n  # a seq not above the last one seen: a repeat or disorder
    expected = [10**9]
    compression = "deflate" if options["compression"] else None
    sockets = [
        await websockets.connect(ws_url, max_size=2**24, compression=compression) for _ in range(n)
    ]
    for ws in sockets:
        hello = json.loads(await ws.recv())
        if "subscribed" not in hello:
            raise RuntimeError(f"no subscription: {hello}")

    async def read(i: int, ws: Any) -> None:
        last = 0
        async for text in ws:
            now = time.time()
            frame = orjson.loads(text)  # the client's parsing shares the daemon's 2 cores
            for event in frame.get("events", [frame]):
                if "kind" not in event:
                    continue  # a ping
                delays.append(now - event["created_at"])
                e2e.append(now - float(event["payload"]["body"].split()[1]))
                counts[i] += 1
                if event["seq"] <= last:
                    bad[i] += 1
                last = event["seq"]
            if counts[i] >= expected[0]:
                return

    readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets)]
    cpu0 = time.process_time()
    pipe.send("ready")
    loop = asyncio.get_running_loop()
    expected[0], deadline = await loop.run_in_executor(None, pipe.recv)
    if not all(c >= expected[0] for c in counts):
        await asyncio.wait(readers, timeout=max(0.1, deadline - time.time()))
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    cpu = round(time.process_time() - cpu0, 2)
    stats = {"counts": counts, "bad": bad, "cpu_s": cpu}
    pipe.send({**stats, "delays": delays.tobytes(), "e2e": e2e.tobytes()})  # then close
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


async def publish(ctx: Context, tok: str, rate: float, seconds: float) -> dict[str, Any]:
    total = round(rate * seconds)
    indexes = iter(range(total))
    lags: list[float] = []
    failed = [0]
    t0 = time.time() + 0.2

    async def sender() -> None:
        for i in indexes:
            due = t0 + i / rate
            wait = due - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            sent = time.time()
            lags.append(sent - due)
            body = {"topic": "bench", "body": f"{i} {sent:.6f}"}
            status, _ = await ctx.http.call("POST", f"/swarms/{SWARM}/posts", body, tok)
            if status != 200:
                failed[0] += 1

    await asyncio.gather(*(sender() for _ in range(ctx.args.clients)))
    wall = time.time() - t0
    return {
        "posts": total - failed[0],
        "failed": failed[0],
        "wall_s": round(wall, 2),
        "per_s": round((total - failed[0]) / wall),
        "send_lag_ms": ms_summary(lags),
    }


async def part_ws(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    lead = await token(ctx.http, ctx.secret, "lead", "team-lead")
    swarm = {"name": SWARM, "goal": "bench", "max_size": 10}
    status, answer = await ctx.http.call("POST", "/swarms", swarm, lead)
    if status != 200:
        raise RuntimeError(f"POST /swarms: {status} {answer}")
    pub = await token(ctx.http, ctx.secret, "pub", "worker")
    mon = await token(ctx.http, ctx.secret, "watch", "monitor")
    spawn = multiprocessing.get_context("spawn")
    procs, pipes = [], []
    per = [
        args.subs // args.sub_procs + (i < args.subs % args.sub_procs)
        for i in range(args.sub_procs)
    ]
    options = {"compression": args.ws_compression, "batch": args.ws_batch}
    try:
        for n in per:
            mine, theirs = spawn.Pipe()
            proc = spawn.Process(target=subscriber_proc, args=(ctx.url, mon, n, options, theirs))
            proc.start()
            procs.append(proc)
            pipes.append(mine)
        for pipe in pipes:
            if not pipe.poll(120) or pipe.recv() != "ready":
                raise RuntimeError("the subscribers did not connect within 120 s")

        async def publish_and_drain() -> tuple[dict[str, Any], list[Any]]:
            sent = await publish(ctx, pub, args.rate, args.ws_s)
            deadline = time.time() + args.drain_s
            for pipe in pipes:
                pipe.send((sent["posts"], deadline))
            wait = args.drain_s + 60

            def figures(pipe: Any) -> Any:
                return pipe.recv() if pipe.poll(wait) else None

            stats = [await asyncio.to_thread(figures, pipe) for pipe in pipes]
            return sent, stats

        done = await ctx.measure("ws", args.ws_s + args.drain_s, publish_and_drain())
        sent, stats = done["result"]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    if any(s is None for s in stats):
        raise RuntimeError("a subscriber process sent no figures")
    delays, e2e = array.array("d"), array.array("d")
    counts, bad = [], 0
    for s in stats:
        delays.frombytes(s["delays"])
        e2e.frombytes(s["e2e"])
        counts += s["counts"]
        bad += sum(s["bad"])
    posts = sent["posts"]
    cpu = per_op(done["cpu"], posts)
    cpu["daemon_us_per_frame"] = round(1e6 * cpu["daemon_s"] / max(1, sum(counts)), 1)
    return {
        "subs": args.subs,
        "rate": args.rate,
        "compression": args.ws_compression,
        "batch": args.ws_batch,
        "publish": sent,
        "delivered": sum(counts),
        "expected": posts * args.subs,
        "delivered_frac": round(sum(counts) / max(1, posts * args.subs), 4),
        "subs_complete": sum(1 for c in counts if c >= posts),
        "repeats_or_disorder": bad,
        "delay_ms": ms_summary(delays),
        "from_send_ms": ms_summary(e2e),
        "cpu": cpu,
        "subscriber_cpu_s": [s["cpu_s"] for s in stats],
    }
