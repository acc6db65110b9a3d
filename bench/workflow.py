"""Workflow benchmark: orchestration overhead per stage transition of a 100-stage DAG.

A workflow of WIDTH x DEPTH stages of `scripted` agents (no script: a dry run that
writes one file and exits at once) runs through a real, private daemon (own state
home and socket) on a small git repository, with the store on SQLite or on a
throwaway PostgreSQL database. Dependencies (`--pattern`):

- full: stage (d, w) depends on all WIDTH stages of depth d-1 (WIDTH**2 edges a layer);
- pair: stage (d, w) depends on (d-1, w) and (d-1, (w+1) % WIDTH).

After the run the timestamps are read from the store. For every dependant stage X
(depth >= 1), with U the upstream stage of X that ended last (the one that made
X ready):

- notice:  U's last worker ended (workers.ended_at) -> U marked ended (workflow_stages.ended_at)
- running: U marked ended -> X marked running (workflow_stages.started_at)
- made:    U marked ended -> X's worker row stored (workers.created_at: before its worktree)
- agent:   U marked ended -> X's agent process started (workers.started_at)
- total:   U's last worker ended -> X's agent process started

Usage: python bench/workflow.py [--store sqlite --store postgres] [--pattern full]
Only local resources are used; the daemon, the temp folder and the database are
removed at the end, even on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import _prefill, _stop_daemon, bench_env, fleet, machine, make_repo

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PROMPT = "Note who you are."
MEASURES = ("notice", "running", "made", "agent", "total")


def stage_name(depth: int, col: int) -> str:
    return f"d{depth}w{col}"


def upstream(depth: int, col: int, width: int, pattern: str) -> list[str]:
    if depth == 0:
        return []
    if pattern == "full":
        return [stage_name(depth - 1, c) for c in range(width)]
    return sorted({stage_name(depth - 1, col), stage_name(depth - 1, (col + 1) % width)})


def definition(width: int, depth: int, pattern: str) -> dict[str, Any]:
    stages = [
        {
            "name": stage_name(d, w),
            "agent": "scripted",
            "prompt": "{task_prompt}",
            "depends_on": upstream(d, w, width, pattern),
        }
        for d in range(depth)
        for w in range(width)
    ]
    return {"name": "bench-dag", "task_prompt": PROMPT, "stages": stages}


def write_config(repo: Path, concurrent: int, pool: int) -> None:
    folder = repo / ".flotilla"
    folder.mkdir(exist_ok=True)
    (folder / "config.toml").write_text(
        '[project]\ndefault_agent = "scripted"\n'
        f"[limits]\nmax_concurrent = {concurrent}\n" + (f"worktree_pool = {pool}\n" if pool else "")
    )
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b.invalid"}
    env.update(GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b.invalid")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "config"], check=True, env=env)


# -- the store ----------------------------------------------------------------------------


class PgDatabase:
    """A throwaway database flotilla_bench_<random>, dropped on exit."""

    def __init__(self) -> None:
        self.name = f"flotilla_bench_{secrets.token_hex(4)}"
        self.url = f"postgresql://postgres@127.0.0.1:5432/{self.name}"

    def __enter__(self) -> PgDatabase:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'create database "{self.name}"')
        return self

    def __exit__(self, *exc: object) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{self.name}" with (force)')


def pg_version() -> str:
    with psycopg.connect(PG_ADMIN) as conn:
        row = conn.execute("show server_version").fetchone()
    return str(row[0]) if row else "?"


STAGES_SQL = "select name, state, started_at, ended_at from workflow_stages"
WORKERS_SQL = (
    "select sw.stage, w.state, w.started_at, w.ended_at, w.created_at"
    " from workflow_stage_workers sw join workers w on w.id = sw.worker_id"
)
WORKFLOW_SQL = "select state, started_at, ended_at, error from workflows"


def read_store(connect: Any) -> tuple[list[Any], list[Any], list[Any]]:
    conn = connect()
    try:
        out = []
        for sql in (STAGES_SQL, WORKERS_SQL, WORKFLOW_SQL):
            out.append(list(conn.execute(sql).fetchall()))
        return out[0], out[1], out[2]
    finally:
        conn.close()


# -- one run ------------------------------------------------------------------------------


def wait_done(client: Any, wf_id: str, deadline_s: float) -> dict[str, Any]:
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        status: dict[str, Any] = client.call("GET", f"/workflows/{wf_id}")
        if status["state"] in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(0.25)
    raise RuntimeError(f"workflow {wf_id} not done within {deadline_s:.0f} s")


def transitions(
    stages: list[Any], workers: list[Any], width: int, depth: int, pattern: str
) -> dict[str, list[float]]:
    """Milliseconds per measure, one value per dependant stage."""
    stage = {name: (state, started, ended) for name, state, started, ended in stages}
    by_stage: dict[str, list[Any]] = {}
    for name, state, started, ended, created in workers:
        by_stage.setdefault(name, []).append((state, started, ended, created))
    out: dict[str, list[float]] = {m: [] for m in MEASURES}
    for d in range(1, depth):
        for w in range(width):
            x = stage_name(d, w)
            u = max(upstream(d, w, width, pattern), key=lambda n: stage[n][2])
            u_end = stage[u][2]
            u_worker_end = max(row[2] for row in by_stage[u])
            x_agent = min(row[1] for row in by_stage[x])
            out["notice"].append(1000 * (u_end - u_worker_end))
            out["running"].append(1000 * (stage[x][1] - u_end))
            out["made"].append(1000 * (min(row[3] for row in by_stage[x]) - u_end))
            out["agent"].append(1000 * (x_agent - u_end))
            out["total"].append(1000 * (x_agent - u_worker_end))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "p99": round(pct(values, 0.99), 1),
        "max": round(max(values), 1),
    }


def run_once(root: Path, store: str, args: argparse.Namespace) -> dict[str, Any]:
    run_root = Path(tempfile.mkdtemp(prefix=f"wf-{store}-", dir=root))
    env = bench_env(run_root, 0.0)
    repo = make_repo(run_root, args.files)
    write_config(repo, args.width, args.pool)
    pg = PgDatabase() if store == "postgres" else None
    if pg is not None:
        pg.__enter__()
        env["FLOTILLA_DATABASE_URL"] = pg.url
    figures: dict[str, Any] = {"store": store, "pattern": args.pattern, "pool": args.pool}
    from flotilla.server.client import DaemonClient

    client = None
    try:
        fleet(env, repo, "daemon", "start")
        client = DaemonClient(env)
        if args.pool:
            _prefill(repo, env, args.pool)
        time.sleep(1.0)
        figures["load_before"] = [round(x, 2) for x in os.getloadavg()]
        body = {
            "project": str(repo),
            "workflow": definition(args.width, args.depth, args.pattern),
            "env": env,
        }
        t0 = time.time()
        created = client.call("POST", "/workflows", json=body)
        status = wait_done(client, created["id"], args.deadline)
        figures["wall_s"] = round(time.time() - t0, 2)
        figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
        if pg is not None:
            stages, workers, wfs = read_store(lambda: psycopg.connect(pg.url))
        else:
            db = run_root / "home" / "flotilla.db"
            stages, workers, wfs = read_store(
                lambda: sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            )
        figures["workflow_state"] = status["state"]
        figures["stages_succeeded"] = sum(1 for s in stages if s[1] == "succeeded")
        figures["workers"] = len(workers)
        run_s = wfs[0][2] - wfs[0][1] if wfs and wfs[0][1] and wfs[0][2] else 0.0
        figures["workflow_run_s"] = round(run_s, 2)
        if status["state"] != "succeeded":
            figures["error"] = wfs[0][3] if wfs else "?"
            return figures
        values = transitions(stages, workers, args.width, args.depth, args.pattern)
        figures["ms"] = {m: summary(v) for m, v in values.items()}
        figures["n_transitions"] = len(values["running"])
    finally:
        if client is not None:
            client.close()
        _stop_daemon(env, repo)
        if pg is not None:
            pg.__exit__(None, None, None)
        shutil.rmtree(run_root, ignore_errors=True)
    return figures


def print_figures(figures: dict[str, Any]) -> None:
    head = (
        f"{figures['store']:8} {figures['pattern']:4} pool={figures['pool']} "
        f"state={figures['workflow_state']} stages_ok={figures['stages_succeeded']} "
        f"workers={figures['workers']} wall={figures.get('wall_s')}s "
        f"run={figures['workflow_run_s']}s load={figures['load_before']}->"
        f"{figures['load_after']}"
    )
    print(head, flush=True)
    if "error" in figures:
        print(f"  error: {figures['error']}", flush=True)
    for measure, s in figures.get("ms", {}).items():
        print(
            f"  {measure:8} median {s['median']:8.1f} ms  p99 {s['p99']:8.1f} ms  "
            f"max {s['max']:8.1f} ms",
            flush=True,
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), action="append")
    parser.add_argument("--pattern", choices=("full", "pair"), default="full")
    parser.add_argument("--width", type=int, default=10)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--pool", type=int, default=0, help="limits.worktree_pool (pre-filled)")
    parser.add_argument("--files", type=int, default=20, help="files in the repository")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    args.store = args.store or ["sqlite", "postgres"]
    if not (1 <= args.width <= 50 and 2 <= args.depth <= 50 and 1 <= args.repeat <= 10):
        parser.error("--width 1..50, --depth 2..50, --repeat 1..10")
    return args


def main() -> int:
    args = parse_args()
    info = machine()
    info["postgresql"] = pg_version() if "postgres" in args.store else None
    print(json.dumps(info), flush=True)
    root = Path(tempfile.mkdtemp(prefix="flotilla-wfbench-"))
    results = []
    try:
        for store in args.store:
            for _ in range(args.repeat):
                figures = run_once(root, store, args)
                print_figures(figures)
                results.append(figures)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json_out:
        args.json_out.write_text(json.dumps({"machine": info, "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
