"""Service benchmark: status reads, task claims and WebSocket fan-out of a real `fleet serve`.

Each run starts `python -m flotilla.cli serve --host 127.0.0.1 --port 0` as a
subprocess with its own state home, a fleet secret and a small git repository, on
SQLite or on a throwaway PostgreSQL database (flotilla_bench_<random>), and drives it
over loopback TCP with JWT auth (every request carries a token from POST /auth), from
50 HTTP/1.1 keep-alive connections. Parts (`--part`):

- reads:  20 finished `scripted` workers; 50 clients (a monitor token each) loop for
          --reads-s on GET /workers/{name}?project=, then for half as long on
          GET /workers?project= (the 20) and GET /health: requests/s, latency p50/p99.
- claims: --tasks tasks made with POST /tasks (50 at a time), then 50 claimers
          (worker tokens of the team) loop on POST /tasks/claim until the queue is
          empty: claims per second. No double claim, checked from the responses
          (every id once, N in all) AND from the store (every task claimed, by the
          claimer that got it, one `claimed` history entry, attempts 1).
- ws:     --subs WebSocket subscribers (`websockets`, in --sub-procs processes, offering
          permessage-deflate as browsers do) on /ws?kind=blackboard.posted; a publisher
          POSTs blackboard posts to /swarms/{swarm}/posts at --rate per second for
          --ws-s (open loop: post i is due at t0 + i/rate, 50 senders). Delay = frame
          receipt - the event's created_at (same clock), and from the post's send time;
          delivered = frames / (posts x subscribers); each subscriber's seqs are checked
          for gaps and repeats. The publish rate achieved is reported: a service that
          cannot take --rate posts/s falls behind (send lag).

The load generator (`--client raw`, the default) is a minimal HTTP/1.1 client on
asyncio streams, ~0.07 CPU-ms a request; `--client httpx` uses httpx.AsyncClient, whose
own ~1-2 CPU-ms a request made it, not the daemon, the bottleneck on 2 cores. Per part
the daemon's CPU (psutil) is reported as % of one core and as CPU-ms per operation:
the daemon is bound by one GIL, so 1000 / (CPU-ms/op) is what one free core would
allow, whatever else the shared machine was running. --profile DIR records the daemon
with py-spy (GIL holder only, collapsed stacks) during each part.

Usage: python bench/service.py [--store sqlite --store postgres] [--part reads ...]
       [--repeat N] [--json-out F] [--flotilla-src DIR] [--pg-options '-c ...']
Only loopback and local resources are used; the daemon, temp folder and database are
removed at the end, even on failure.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import itertools
import json
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil
import psycopg
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import bench_env, machine, make_repo
from workflow import PgDatabase, pg_version

TEAM = "bench"
SWARM = "bench-swarm"
WORKERS = 20
SERVE_START_S = 60.0


def pct(values: list[float] | array.array[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def ms_summary(values: list[float] | array.array[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    return {
        "p50": round(1000 * pct(values, 0.5), 2),
        "p99": round(1000 * pct(values, 0.99), 2),
        "max": round(1000 * max(values), 2),
    }


# -- the daemon -------------------------------------------------------------------------


class Serve:
    """`fleet serve` on a free loopback port, its pid, and its CPU between marks."""

    def __init__(self, env: dict[str, str], repo: Path, log: Path) -> None:
        self.log = log.open("w")
        cmd = [sys.executable, "-m", "flotilla.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
        self.proc = subprocess.Popen(
            cmd,
            cwd=repo,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.url = self._wait_url()
        self.ps = psutil.Process(self.proc.pid)

    def _wait_url(self) -> str:
        deadline = time.time() + SERVE_START_S
        assert self.proc.stdout is not None
        while time.time() < deadline:  # the first line names the url
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"fleet serve exited {self.proc.wait()}: see {self.log.name}")
            found = re.search(r"serving (http://127\.0\.0\.1:\d+)", line)
            if found:
                return found.group(1)
        raise RuntimeError(f"fleet serve printed no url within {SERVE_START_S:.0f} s")

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print("warning: fleet serve did not stop in 20 s: killed", file=sys.stderr)
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


class Profiler:
    """py-spy recording the daemon during one part (collapsed stacks), if asked for."""

    def __init__(self, folder: Path | None, pid: int, name: str, seconds: float) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).with_name("py-spy")
        cmd = [str(spy), "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
        cmd += ["--duration", str(max(1, round(seconds))), "--threads", "--gil", "--nonblocking"]
        cmd += ["-o", str(folder / f"{name}.txt")]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait(self) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Http:
    """The load generator's side of HTTP/1.1 keep-alive over `connections` connections:
    `httpx` (httpx.AsyncClient) or `raw` (a minimal client on asyncio streams, for when
    httpx's own cost per request, ~1-2 ms of CPU, would be what is measured)."""

    def __init__(self, url: str, connections: int, kind: str) -> None:
        self.kind = kind
        self.host, _, port = url.removeprefix("http://").partition(":")
        self.port = int(port)
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.httpx = httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0)
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.free = connections  # raw connections that may still be opened

    async def call(self, method: str, path: str, body: Any = None, tok: str = "") -> Any:
        """(status, JSON answer)."""
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        if self.kind == "httpx":
            reply = await self.httpx.request(method, path, json=body, headers=headers)
            return reply.status_code, reply.json()
        reused = not (self.idle.empty() and self.free > 0)
        if reused:
            conn = await self.idle.get()
        else:
            self.free -= 1
            conn = await asyncio.open_connection(self.host, self.port)
        try:
            status, data = await self._raw(conn, method, path, body, headers)
        except (asyncio.IncompleteReadError, ConnectionError):
            conn[1].close()
            self.free += 1
            if not reused:
                raise
            return await self.call(method, path, body, tok)  # closed while idle: anew
        except BaseException:
            conn[1].close()
            self.free += 1
            raise
        self.idle.put_nowait(conn)
        return status, json.loads(data)

    async def _raw(
        self, conn: Any, method: str, path: str, body: Any, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        reader, writer = conn
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        fields = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
        if "content-length" in fields:
            return status, await reader.readexactly(int(fields["content-length"]))
        chunks = []  # Transfer-Encoding: chunked
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            chunks.append(await reader.readexactly(size + 2))
        await reader.readuntil(b"\r\n")
        return status, b"".join(c[:-2] for c in chunks)

    async def close(self) -> None:
        await self.httpx.aclose()
        while not self.idle.empty():
            self.idle.get_nowait()[1].close()


async def token(http: Http, secret: str, agent: str, role: str) -> str:
    body = {"secret": secret, "agent": agent, "team": TEAM, "role": role, "ttl_s": 7200}
    status, answer = await http.call("POST", "/auth", body)
    if status != 200:
        raise RuntimeError(f"POST /auth: {status} {answer}")
    return str(answer["token"])


async def gather_limited(calls: list[Callable[[], Awaitable[Any]]], width: int) -> list[Any]:
    """Run the calls `width` at a time, in order of the list; their results in that order."""
    results: list[Any] = [None] * len(calls)
    indexes = iter(range(len(calls)))

    async def lane() -> None:
        for i in indexes:
            results[i] = await calls[i]()

    await asyncio.gather(*(lane() for _ in range(width)))
    return results


# -- part 1: status reads -----------------------------------------------------------------


async def make_workers(http: Http, lead: str, repo: Path) -> list[str]:
    names = [f"w{i:02d}" for i in range(WORKERS)]
    body = {"workers": [{"project": str(repo), "name": n, "prompt": "hi"} for n in names]}
    status, answer = await http.call("POST", "/workers/batch", body, lead)
    if status != 200 or answer["failed"]:
        raise RuntimeError(f"making the workers failed: {status} {answer}")
    deadline = time.time() + 120
    while time.time() < deadline:  # scripted agents finish at once
        _, listed = await http.call("GET", f"/workers?project={repo}", tok=lead)
        if all(w["state"] in ("succeeded", "failed", "cancelled") for w in listed):
            return names
        await asyncio.sleep(0.25)
    raise RuntimeError("the scripted workers did not finish within 120 s")


async def read_load(
    http: Http, tokens: list[str], path: Callable[[int], str], seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def one(i: int) -> None:
        nonlocal errors
        for n in itertools.count():  # until stop_at
            t = time.perf_counter()
            if t >= stop_at:
                return
            status, _ = await http.call("GET", path(i + n), tok=tokens[i])
            latencies.append(time.perf_counter() - t)
            if status != 200:
                errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(len(tokens))))
    wall = time.perf_counter() - t0
    return {
        "requests": len(latencies),
        "errors": errors,
        "wall_s": round(wall, 2),
        "per_s": round(len(latencies) / wall),
        "ms": ms_summary(latencies),
    }


async def part_reads(ctx: Context) -> dict[str, Any]:
    lead = await token(ctx.http, ctx.secret, "lead", "coordinator")
    names = await make_workers(ctx.http, lead, ctx.repo)
    tokens = [
        await token(ctx.http, ctx.secret, f"mon{i}", "monitor") for i in range(ctx.args.clients)
    ]
    project = f"project={ctx.repo}"
    paths: dict[str, Callable[[int], str]] = {
        "worker": lambda n: f"/workers/{names[n % len(names)]}?{project}",
        "list": lambda n: f"/workers?{project}",
        "health": lambda n: "/health",
    }
    out: dict[str, Any] = {}
    for name, path in paths.items():
        seconds = ctx.args.reads_s if name == "worker" else ctx.args.reads_s / 2
        done = await ctx.measure(
            f"reads-{name}", seconds, read_load(ctx.http, tokens, path, seconds)
        )
        out[name] = {**done["result"], "cpu": per_op(done["cpu"], done["result"]["requests"])}
    return out


# -- part 2: claims ------------------------------------------------------------------------


async def part_claims(ctx: Context) -> dict[str, Any]:
    n = ctx.args.tasks
    lead = await token(ctx.http, ctx.secret, "lead", "team-lead")

    def create(i: int) -> Callable[[], Awaitable[int]]:
        async def call() -> int:
            body = {"team": TEAM, "title": f"task {i}", "priority": i % 3}
            return int((await ctx.http.call("POST", "/tasks", body, lead))[0])

        return call

    t0 = time.perf_counter()
    statuses = await gather_limited([create(i) for i in range(n)], ctx.args.claimers)
    created_s = time.perf_counter() - t0
    if any(s != 200 for s in statuses):
        raise RuntimeError(f"creating tasks failed: {sorted(set(statuses))}")
    claimers = [f"claimer{i:02d}" for i in range(ctx.args.claimers)]
    tokens = {c: await token(ctx.http, ctx.secret, c, "worker") for c in claimers}
    got: list[tuple[str, str]] = []  # (task id, claimer)
    latencies: list[float] = []
    errors: list[int] = []
    last_claim = [0.0]

    async def claimer(name: str) -> None:
        for _ in range(n + 1):  # at most every task, then the empty answer
            t = time.perf_counter()
            status, answer = await ctx.http.call("POST", "/tasks/claim", {}, tokens[name])
            latencies.append(time.perf_counter() - t)
            if status != 200:
                errors.append(status)
                continue
            task = answer["task"]
            if task is None:
                return
            got.append((task["id"], name))
            last_claim[0] = time.perf_counter()

    async def claim_all() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(claimer(c) for c in claimers))
        return last_claim[0] - start

    claim_s = await ctx.measure("claims", n / 1000, claim_all())
    ids = [task_id for task_id, _ in got]
    store = ctx.read_claims()
    problems = check_claims(got, store, n)
    return {
        "tasks": n,
        "create_per_s": round(n / created_s),
        "claimed": len(got),
        "claim_s": round(claim_s["result"], 2),
        "per_s": round(len(got) / claim_s["result"]),
        "distinct_ids": len(set(ids)),
        "errors": len(errors),
        "ms": ms_summary(latencies),
        "cpu": per_op(claim_s["cpu"], len(got)),
        "no_double_claim": not problems,
        "problems": problems[:10],
    }


def check_claims(got: list[tuple[str, str]], store: dict[str, Any], n: int) -> list[str]:
    problems = []
    holder: dict[str, str] = {}
    for task_id, who in got:
        if task_id in holder:
            problems.append(f"{task_id} answered to {holder[task_id]} and to {who}")
        holder[task_id] = who
    if len(holder) != n:
        problems.append(f"{len(holder)} distinct tasks claimed of {n}")
    for task_id, (state, assignee, attempts) in store["tasks"].items():
        if state != "claimed" or assignee != holder.get(task_id) or attempts != 1:
            problems.append(f"store: {task_id} {state} by {assignee} ({attempts} attempts)")
    if len(store["tasks"]) != n:
        problems.append(f"store has {len(store['tasks'])} tasks of team {TEAM}, not {n}")
    twice = {t: c for t, c in store["claims"].items() if c != 1}
    problems += [f"store: {t} has {c} 'claimed' history entries" for t, c in twice.items()]
    return problems


TASKS_SQL = f"select id, state, assignee, attempts from tasks where team = '{TEAM}'"
CLAIMS_SQL = "select task_id, count(*) from task_history where kind = 'claimed' group by task_id"


def read_claims(connect: Callable[[], Any]) -> dict[str, Any]:
    conn = connect()
    try:
        rows = conn.execute(TASKS_SQL).fetchall()
        claims = conn.execute(CLAIMS_SQL).fetchall()
    finally:
        conn.close()
    return {"tasks": {r[0]: tuple(r[1:]) for r in rows}, "claims": dict(claims)}


# -- part 3: WebSocket fan-out ------------------------------------------------------------


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
            frame = json.loads(text)
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


# -- one run ---------------------------------------------------------------------------------


class Context:
    def __init__(
        self,
        args: argparse.Namespace,
        serve: Serve,
        repo: Path,
        secret: str,
        read_claims: Callable[[], dict[str, Any]],
        label: str,
    ) -> None:
        self.args, self.serve, self.repo, self.secret = args, serve, repo, secret
        self.url = serve.url
        self.http = Http(serve.url, args.clients, args.client)
        self.read_claims = read_claims
        self.label = label

    async def measure(self, name: str, seconds: float, work: Awaitable[Any]) -> dict[str, Any]:
        """`work`'s result with the daemon's and this process's CPU while it ran."""
        spy = Profiler(self.args.profile, self.serve.proc.pid, f"{self.label}-{name}", seconds)
        d0, c0, t0 = self.serve.cpu(), time.process_time(), time.perf_counter()
        result = await work
        wall = time.perf_counter() - t0
        cpu = {
            "daemon_s": round(self.serve.cpu() - d0, 2),
            "generator_s": round(time.process_time() - c0, 2),
        }
        cpu["daemon_pct"] = round(100 * cpu["daemon_s"] / wall)
        spy.wait()
        return {"result": result, "cpu": cpu}


def per_op(cpu: dict[str, Any], ops: int) -> dict[str, Any]:
    """The daemon's CPU milliseconds per operation: what a free core would allow, 1000/x per
    second (the daemon is bound by one GIL), whatever else the machine was running."""
    return {**cpu, "daemon_ms_per_op": round(1000 * cpu["daemon_s"] / max(1, ops), 3)}


PARTS = {"reads": part_reads, "claims": part_claims, "ws": part_ws}


def run_once(root: Path, store: str, args: argparse.Namespace, index: int) -> dict[str, Any]:
    run_root = Path(tempfile.mkdtemp(prefix=f"svc-{store}-", dir=root))
    env = bench_env(run_root, 0.0)
    secret = secrets.token_urlsafe(32)
    env["FLOTILLA_SECRET"] = secret
    repo = make_repo(run_root, 20)
    (repo / ".flotilla").mkdir()
    (repo / ".flotilla" / "config.toml").write_text(
        '[project]\ndefault_agent = "scripted"\n[limits]\nmax_concurrent = 20\n'
    )
    pg = PgDatabase() if store == "postgres" else None
    figures: dict[str, Any] = {"store": store, "client": args.client, "pg_options": args.pg_options}
    serve = None
    try:
        if pg is not None:
            pg.__enter__()
            options = f"?options={quote(args.pg_options)}" if args.pg_options else ""
            env["FLOTILLA_DATABASE_URL"] = pg.url + options
            db_url = pg.url
            claims = lambda: read_claims(lambda: psycopg.connect(db_url))  # noqa: E731
        else:
            db = run_root / "home" / "flotilla.db"
            claims = lambda: read_claims(lambda: sqlite3.connect(f"file:{db}?mode=ro", uri=True))  # noqa: E731
        serve = Serve(env, repo, run_root / "serve.log")
        ctx = Context(args, serve, repo, secret, claims, f"{store}{index}")
        figures["load_before"] = [round(x, 2) for x in os.getloadavg()]

        async def parts() -> None:
            try:
                for part in args.part:
                    figures[part] = await PARTS[part](ctx)
                    print_part(store, part, figures[part])
            finally:
                await ctx.http.close()

        asyncio.run(parts())
        figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
        figures["daemon_rss_mb"] = round(serve.ps.memory_info().rss / 2**20)
    finally:
        if serve is not None:
            serve.stop()
        if pg is not None:
            pg.__exit__(None, None, None)
        shutil.rmtree(run_root, ignore_errors=True)
    print(f"  load {figures['load_before']} -> {figures['load_after']}", flush=True)
    return figures


def cpu_text(cpu: dict[str, Any]) -> str:
    return (
        f"daemon {cpu['daemon_pct']}% of a core, {cpu['daemon_ms_per_op']} CPU-ms/op; "
        f"generator {cpu['generator_s']} CPU-s"
    )


def print_part(store: str, part: str, f: dict[str, Any]) -> None:
    head = f"{store:8} {part:6}"
    if part == "reads":
        for name, r in f.items():
            print(
                f"{head} {name:6} {r['per_s']:6}/s  p50 {r['ms']['p50']:6.1f} ms  p99 "
                f"{r['ms']['p99']:6.1f} ms  errors {r['errors']}  {cpu_text(r['cpu'])}",
                flush=True,
            )
    elif part == "claims":
        print(
            f"{head} {f['per_s']:6}/s  ({f['claimed']} of {f['tasks']} in {f['claim_s']} s; "
            f"create {f['create_per_s']}/s)  p50 {f['ms']['p50']} ms  p99 {f['ms']['p99']} ms  "
            f"no double claim: {f['no_double_claim']}  {cpu_text(f['cpu'])}",
            flush=True,
        )
        for problem in f["problems"]:
            print(f"  PROBLEM {problem}", flush=True)
    else:
        p = f["publish"]
        print(
            f"{head} {f['subs']} subs x {p['per_s']}/s posted (asked {f['rate']}/s): delivered "
            f"{f['delivered']}/{f['expected']} ({100 * f['delivered_frac']:.1f} %), delay p50 "
            f"{f['delay_ms']['p50']} p99 {f['delay_ms']['p99']} max {f['delay_ms']['max']} ms; "
            f"from send p99 {f['from_send_ms']['p99']} ms; send lag p99 {p['send_lag_ms']['p99']} "
            f"ms; repeats {f['repeats_or_disorder']}; {cpu_text(f['cpu'])} "
            f"({f['cpu']['daemon_us_per_frame']} us/frame); subscribers' CPU s "
            f"{f['subscriber_cpu_s']}",
            flush=True,
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), action="append")
    parser.add_argument("--part", choices=tuple(PARTS), action="append")
    parser.add_argument("--clients", type=int, default=50, help="connections and readers")
    parser.add_argument("--reads-s", type=float, default=10.0)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--claimers", type=int, default=50)
    parser.add_argument("--subs", type=int, default=200)
    parser.add_argument("--sub-procs", type=int, default=2, help="processes of subscribers")
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--ws-s", type=float, default=5.0)
    parser.add_argument("--drain-s", type=float, default=15.0, help="wait for late frames")
    parser.add_argument(
        "--ws-compression",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="offer permessage-deflate, as browsers do",
    )
    parser.add_argument(
        "--ws-batch",
        action="store_true",
        help="ask for batched frames (?batch=1, an experiment; a daemon without it ignores it)",
    )
    parser.add_argument("--client", choices=("httpx", "raw"), default="raw")
    parser.add_argument(
        "--pg-options",
        default="",
        help="libpq options for the daemon's PostgreSQL sessions, e.g. "
        "'-c synchronous_commit=off' (in the store URL: no code change)",
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="py-spy collapsed stacks of the daemon here")
    parser.add_argument("--flotilla-src", type=Path, help="run the daemon of another checkout")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    args.store = args.store or ["sqlite", "postgres"]
    args.part = args.part or list(PARTS)
    if not (1 <= args.clients <= 500 and 1 <= args.subs <= 2000 and 1 <= args.repeat <= 10):
        parser.error("--clients 1..500, --subs 1..2000, --repeat 1..10")
    if not (1 <= args.sub_procs <= args.subs and 1 <= args.tasks <= 10**6 and args.rate > 0):
        parser.error("--sub-procs 1..subs, --tasks 1..1e6, --rate > 0")
    return args


def main() -> int:
    args = parse_args()
    import fanout  # its bench_env reads --flotilla-src from its own ARGS

    fanout.ARGS.flotilla_src = args.flotilla_src
    info = machine()
    info["postgresql"] = pg_version() if "postgres" in args.store else None
    info["versions"] = {m.__name__: m.__version__ for m in (httpx, websockets)}
    print(json.dumps(info), flush=True)
    root = Path(tempfile.mkdtemp(prefix="flotilla-svcbench-"))
    results = []
    try:
        for i in range(args.repeat):
            for store in args.store:
                results.append(run_once(root, store, args, i))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    info["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json_out:
        args.json_out.write_text(json.dumps({"machine": info, "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
