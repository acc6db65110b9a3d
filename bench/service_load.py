"""The load side of bench/service.py: an HTTP/1.1 client, figures, and the reads and
claims parts (see service.py's docstring for what each part measures)."""

from __future__ import annotations

import array
import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from service import Context

TEAM = "bench"
WORKERS = 20


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


def per_op(cpu: dict[str, Any], ops: int) -> dict[str, Any]:
    """The daemon's CPU milliseconds per operation: what a free core would allow, 1000/x per
    second (the daemon is bound by one GIL), whatever else the machine was running."""
    return {**cpu, "daemon_ms_per_op": round(1000 * cpu["daemon_s"] / max(1, ops), 3)}


# -- HTTP ---------------------------------------------------------------------------------


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
