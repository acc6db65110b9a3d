"""Commands that look at agents: list, logs, attach, diff, result."""

from __future__ import annotations

import json
import os
import shutil
import time
from itertools import groupby
from typing import Any

import typer
from rich.console import Group
from rich.live import Live

from flotilla.cli.render import console, print_json, workers_table
from flotilla.cli.state import STATE
from flotilla.cli.transcript import format_record
from flotilla.domain.errors import UsageError
from flotilla.domain.states import WorkerState

TERMINAL = {s.value for s in WorkerState if s.is_terminal}


def _fetch(state: str | None, batch: str | None) -> list[dict[str, Any]]:
    if state:
        for name in state.split(","):
            if name not in {s.value for s in WorkerState}:
                choices = ", ".join(s.value for s in WorkerState)
                raise UsageError(f"unknown state {name!r}: choose from {choices}")
    workers: list[dict[str, Any]] = STATE.client.call(
        "GET", "/workers", params=STATE.params(state=state, batch=batch)
    )
    return workers


def _tables(workers: list[dict[str, Any]], grouped: bool) -> Group:
    if not grouped:
        return Group(workers_table(workers))
    ordered = sorted(workers, key=lambda w: w.get("batch") or "")
    return Group(
        *(
            workers_table(list(group), title=f"batch {key or '(none)'}")
            for key, group in groupby(ordered, key=lambda w: w.get("batch") or "")
        )
    )


def list_cmd(
    state: str | None = typer.Option(None, "--state", help="Only these states (comma list)."),
    batch: str | None = typer.Option(None, "--batch", help="Only this batch."),
    grouped: bool = typer.Option(False, "--grouped", help="One table per batch."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh live until Ctrl-C."),
    repair: bool = typer.Option(
        False, "--repair", help="Reconcile the store with processes, tmux and worktrees."
    ),
) -> None:
    """List workers: state, CPU/RAM, runtime, tokens, cost, batch."""
    if repair:
        fixed = STATE.client.call("POST", "/repair", params=STATE.params())
        if STATE.json_output:
            print_json(fixed)
        else:
            for line in fixed or ["nothing to repair"]:
                console.print(line, highlight=False)
        return
    if STATE.json_output:
        print_json(_fetch(state, batch))
        return
    if not watch:
        console.print(_tables(_fetch(state, batch), grouped))
        return
    with Live(_tables(_fetch(state, batch), grouped), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(1.0)
            live.update(_tables(_fetch(state, batch), grouped), refresh=True)


def logs(
    name: str = typer.Argument(...),
    lines: int | None = typer.Option(None, "-n", "--lines", help="Only the last N entries."),
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new entries."),
    raw: bool = typer.Option(False, "--raw", help="The agent's own output, unparsed."),
) -> None:
    """Show an agent's transcript (readable), or its raw output."""
    params = STATE.params()
    if raw:
        text = STATE.client.call("GET", f"/workers/{name}/raw", params=params)
        out = text.splitlines()
        print("\n".join(out[-lines:] if lines else out))
        return
    records = STATE.client.call(
        "GET", f"/workers/{name}/transcript", params=STATE.params(lines=lines)
    )
    _print_records(records)
    if not follow:
        return
    seen = len(STATE.client.call("GET", f"/workers/{name}/transcript", params=params))
    while True:
        worker = STATE.client.call("GET", f"/workers/{name}", params=params)
        records = STATE.client.call("GET", f"/workers/{name}/transcript", params=params)
        _print_records(records[seen:])
        seen = len(records)
        if worker["state"] in TERMINAL:
            return
        time.sleep(0.5)


def _print_records(records: list[dict[str, Any]]) -> None:
    for record in records:
        if STATE.json_output:
            print(json.dumps(record), flush=True)  # one object per line, like the file
        else:
            console.print(format_record(record), highlight=False, markup=False)


def attach(name: str = typer.Argument(...)) -> None:
    """Interactive agents: attach to their tmux session. Headless: follow the transcript."""
    worker = STATE.client.call("GET", f"/workers/{name}", params=STATE.params())
    if worker["interactive"]:
        tmux = shutil.which("tmux")
        if tmux is None:
            raise UsageError("tmux is not installed: apt-get install tmux")
        session = worker["tmux_session"]
        socket = STATE.env.get("FLOTILLA_TMUX_SOCKET", "flotilla")
        os.execv(tmux, [tmux, "-L", socket, "attach-session", "-t", session])
    logs(name, lines=None, follow=True, raw=False)


def diff(
    name: str = typer.Argument(...),
    stat: bool = typer.Option(False, "--stat", help="Only the summary of changes."),
) -> None:
    """What the agent changed, committed or not, against its base."""
    text = STATE.client.call("GET", f"/workers/{name}/diff", params=STATE.params(stat=stat))
    print(text, end="" if text.endswith("\n") else "\n")


def result(name: str = typer.Argument(...)) -> None:
    """The facts of a finished run: outcome, files, tests, tokens, cost."""
    data = STATE.client.call("GET", f"/workers/{name}/result", params=STATE.params())
    if STATE.json_output:
        print_json(data)
        return
    console.print(f"[bold]{name}[/]: {data['outcome']}", highlight=False)
    if data.get("error"):
        console.print(f"error: {data['error']}", highlight=False)
    if data.get("summary"):
        console.print(f"summary (the agent's own words): {data['summary']}", highlight=False)
    files = data.get("files", [])
    console.print(
        f"files changed: {len(files)} (+{data['insertions']} -{data['deletions']})",
        highlight=False,
    )
    for change in files:
        console.print(
            f"  {change['status']:<10} {change['path']} "
            f"(+{change['insertions']} -{change['deletions']})",
            highlight=False,
        )
    for commit in data.get("commits", []):
        console.print(f"  commit {commit}", highlight=False)
    tests = data.get("tests")
    if tests:
        counts = ""
        if tests.get("passed") is not None or tests.get("failed") is not None:
            counts = f" ({tests.get('passed') or 0} passed, {tests.get('failed') or 0} failed)"
        verdict = "passed" if tests["exit_code"] == 0 else f"failed (exit {tests['exit_code']})"
        console.print(f"tests: {verdict}{counts}", highlight=False)
    console.print(
        f"tokens: {data['input_tokens']:,} in / {data['output_tokens']:,} out, "
        f"cost ${data['cost_usd']:.4f}, {data['duration_s']:.1f}s, "
        f"session {data.get('session_id') or '-'}",
        highlight=False,
    )
    for step in data.get("next_steps", []):
        console.print(f"  next: {step}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("list")(list_cmd)
    app.command("ls", hidden=True)(list_cmd)
    app.command()(logs)
    app.command()(attach)
    app.command()(diff)
    app.command()(result)
