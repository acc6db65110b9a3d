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
import asyncio
import json
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
from service_load import Http, part_claims, part_reads, read_claims
from service_ws import part_ws
from workflow import PgDatabase, pg_version

SERVE_START_S = 60.0


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
