"""Run the demo: scripted agents race to fix a failing test, the tests judge."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.live import Live
from rich.table import Table

from flotilla.cli.render import console, print_json, workers_table
from flotilla.demo.sample import make_project, write_scripts
from flotilla.server.client import DaemonClient

TERMINAL = {"succeeded", "failed", "cancelled"}
DEADLINE_S = 60.0


def _results_table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="what each agent did (facts from git and the tests)")
    for column in ("agent", "outcome", "files changed", "tests", "summary (its own words)"):
        table.add_column(column)
    for worker in results:
        result = worker.get("result") or {}
        tests = result.get("tests") or {}
        verdict = (
            "-" if not tests else ("[green]pass[/]" if tests["exit_code"] == 0 else "[red]fail[/]")
        )
        files = ", ".join(f["path"] for f in result.get("files", [])) or "none"
        table.add_row(
            worker["name"],
            result.get("outcome", worker["state"]),
            files,
            verdict,
            result.get("summary", ""),
        )
    return table


def run_demo(keep: bool = False, agents: int = 4, json_output: bool = False) -> int:
    root = Path(tempfile.mkdtemp(prefix="flotilla-demo-"))
    env = dict(os.environ)
    env["FLOTILLA_HOME"] = str(root / "home")
    env.pop("FLOTILLA_DATABASE_URL", None)
    env.pop("FLOTILLA_WORKER_ID", None)
    client = DaemonClient(env)
    try:
        project = make_project(root)
        scripts = write_scripts(root)
        names = list(scripts)[:agents]
        if not json_output:
            console.print(f"sample project with a failing test: {project}", highlight=False)
        for name in names:
            body = {
                "project": str(project),
                "name": name,
                "prompt": "Make the failing test in test_calc.py pass.",
                "agent": "scripted",
                "batch": "demo",
                "env": {**env, "FLOTILLA_SCRIPT": str(scripts[name])},
            }
            client.call("POST", "/workers", json=body)
        params = {"project": str(project)}
        deadline = time.monotonic() + DEADLINE_S
        workers: list[dict[str, Any]] = client.call("GET", "/workers", params=params)
        live = Live(workers_table(workers), console=console, auto_refresh=False)
        with live if not json_output else contextlib.nullcontext():
            while time.monotonic() < deadline:
                workers = client.call("GET", "/workers", params=params)
                if not json_output:
                    live.update(workers_table(workers), refresh=True)
                if all(w["state"] in TERMINAL for w in workers):
                    break
                time.sleep(0.2)
        if json_output:
            print_json(workers)
        else:
            console.print()
            console.print(_results_table(workers))
            winners = [
                w["name"]
                for w in workers
                if ((w.get("result") or {}).get("tests") or {}).get("exit_code") == 0
            ]
            console.print(f"tests pass in: {', '.join(winners) or 'none'}", highlight=False)
        finished = all(w["state"] in TERMINAL for w in workers)
        if keep:
            console.print(f"kept: {root} (FLOTILLA_HOME={env['FLOTILLA_HOME']})", highlight=False)
        else:
            for worker in workers:
                client.call("DELETE", f"/workers/{worker['name']}", params=params)
        return 0 if finished else 1
    finally:
        if not keep:
            client.stop()
            shutil.rmtree(root, ignore_errors=True)
        client.close()
