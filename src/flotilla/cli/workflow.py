"""`fleet workflow`: run DAGs of agent stages, watch them, and bring back their result.

    fleet workflow run FILE|TEMPLATE [-p TASK] [--param k=v ...] [--watch] [--merge]
    fleet workflow status ID [--watch] | list | result ID | cancel ID | resume ID | cleanup ID

A workflow file is read and parsed here (its syntax errors name the line and
column); the daemon checks everything else, and every problem is printed
before anything starts (exit 2).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.live import Live

from flotilla.cli.render import console, err_console, print_json
from flotilla.cli.state import STATE
from flotilla.cli.workflow_render import result_view, workflow_tree, workflows_table
from flotilla.domain.errors import UsageError
from flotilla.orchestrator.workflow_files import FORMATS, builtin_names, parse_text

WATCH_INTERVAL_S = 0.5
TERMINAL = ("succeeded", "failed", "cancelled")

app = typer.Typer(
    name="workflow",
    help="Run workflows: DAGs of agent stages (write-review-refine, compete, judge, ...).",
    no_args_is_help=True,
)


def _params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {item!r} is not KEY=VALUE: write e.g. --param count=3")
        params[key.strip()] = value
    return params


def _definition(ref: str) -> dict[str, Any]:
    """A template's name, or a workflow file read and parsed (syntax errors with line:col)."""
    if ref in builtin_names():
        return {"template": ref}
    path = Path(ref)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None and not path.exists():
        raise UsageError(
            f"unknown workflow {ref!r}: give a workflow file (.toml, .yaml, .json) "
            f"or a template: {', '.join(builtin_names())}"
        )
    if fmt is None:
        raise UsageError(
            f"workflow file {path} has an unknown extension: use .toml, .yaml or .json"
        )
    if not path.is_file():
        raise UsageError(f"workflow file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"workflow file {path} cannot be read: {exc}") from exc
    return {"workflow": parse_text(text, fmt, str(path)), "source": str(path)}


def _prompt(prompt: str | None, prompt_file: Path | None) -> str | None:
    if prompt is not None and prompt_file is not None:
        raise UsageError("give either -p TASK or --prompt-file FILE, not both")
    if prompt_file is not None:
        if not prompt_file.is_file():
            raise UsageError(f"prompt file {prompt_file} does not exist")
        return prompt_file.read_text()
    return prompt


def _fail_on_problems(body: dict[str, Any]) -> None:
    checked = STATE.client.call("POST", "/workflows/validate", json=body)
    problems: list[str] = checked["problems"]
    if not problems:
        return
    if STATE.json_output:
        print_json({"error": "invalid workflow", "name": checked["name"], "problems": problems})
    else:
        noun = "problem" if len(problems) == 1 else "problems"
        err_console.print(
            f"[red]error:[/] workflow {checked['name']!r} has {len(problems)} {noun}:",
            highlight=False,
        )
        for problem in problems:
            err_console.print(f"  - {problem}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _watch(workflow_id: str) -> dict[str, Any]:
    """Follow a workflow until it ends; live tree on a terminal, the last view otherwise."""
    path = f"/workflows/{workflow_id}"
    params = STATE.params()
    data: dict[str, Any] = STATE.client.call("GET", path, params=params)
    if STATE.json_output or not console.is_terminal:
        while data["state"] not in TERMINAL:
            time.sleep(WATCH_INTERVAL_S)
            data = STATE.client.call("GET", path, params=params)
        return data
    with Live(workflow_tree(data), console=console, refresh_per_second=4) as live:
        while data["state"] not in TERMINAL:
            time.sleep(WATCH_INTERVAL_S)
            data = STATE.client.call("GET", path, params=params)
            live.update(workflow_tree(data))
    return data


def _show(data: dict[str, Any], watched: bool) -> None:
    if STATE.json_output:
        print_json(data)
    elif watched and console.is_terminal:
        pass  # the live view already shows the last state
    else:
        console.print(workflow_tree(data))
    if watched and data["state"] != "succeeded":
        raise typer.Exit(1)


@app.command()
def run(
    ref: str = typer.Argument(..., metavar="FILE|TEMPLATE", help="A workflow file or template."),
    prompt: str | None = typer.Option(None, "-p", "--prompt", help="The task ({task_prompt})."),
    prompt_file: Path | None = typer.Option(None, "--prompt-file", help="Read the task here."),
    param: list[str] = typer.Option([], "--param", help="Set a parameter: KEY=VALUE."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Follow it until it ends."),
    merge: bool = typer.Option(False, "--merge", help="Merge the result when it succeeds."),
    into: str | None = typer.Option(None, "--into", help="Merge into this branch."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Cancel the rest on a failure."),
    max_cost: float | None = typer.Option(None, "--max-cost", help="Budget in US dollars."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Budget in tokens."),
    delete_loser_branches: bool = typer.Option(
        False, "--delete-loser-branches", help="Delete the branches of candidates that lost."
    ),
) -> None:
    """Run a workflow file or a built-in template."""
    depth, parent = STATE.spawn_depth()
    body: dict[str, Any] = {
        "project": str(STATE.project()),
        **_definition(ref),
        "depth": depth,
        "parent": parent,
        "params": _params(param),
        "task_prompt": _prompt(prompt, prompt_file),
        "fail_fast": fail_fast,
        "max_cost_usd": max_cost,
        "max_tokens": max_tokens,
        "merge": merge,
        "into": into,
        "keep_loser_branches": not delete_loser_branches,
        "env": STATE.env,
    }
    _fail_on_problems(body)
    data = STATE.client.call("POST", "/workflows", json=body)
    if watch:
        _show(_watch(data["id"]), watched=True)
    elif STATE.json_output:
        print_json(data)
    else:
        console.print(
            f"[green]started[/] workflow {data['name']} [bold]{data['id']}[/] "
            f"({len(data['stages'])} stages); follow it with "
            f"`fleet workflow status {data['id']} --watch`",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def validate(
    ref: str = typer.Argument(..., metavar="FILE|TEMPLATE"),
    prompt: str | None = typer.Option(None, "-p", "--prompt"),
    param: list[str] = typer.Option([], "--param"),
) -> None:
    """Check a workflow without running it: every problem at once (exit 2 if any)."""
    body = {
        "project": str(STATE.project()),
        **_definition(ref),
        "params": _params(param),
        "task_prompt": prompt,
        "env": STATE.env,
    }
    _fail_on_problems(body)
    if STATE.json_output:
        print_json({"problems": []})
    else:
        console.print(f"{ref}: no problems", highlight=False)


@app.command()
def status(
    workflow_id: str = typer.Argument(..., metavar="ID"),
    watch: bool = typer.Option(False, "--watch", "-w", help="Follow it until it ends."),
) -> None:
    """A workflow's stages: state, agent, time, tokens, cost; and its progress."""
    if watch:
        _show(_watch(workflow_id), watched=True)
        return
    _show(STATE.client.call("GET", f"/workflows/{workflow_id}", params=STATE.params()), False)


@app.command("list")
def list_cmd() -> None:
    """The workflows of this project, oldest first."""
    rows = STATE.client.call("GET", "/workflows", params=STATE.params())
    if STATE.json_output:
        print_json(rows)
    elif not rows:
        console.print("no workflows in this project (start one with `fleet workflow run`)")
    else:
        console.print(workflows_table(rows))


@app.command()
def result(workflow_id: str = typer.Argument(..., metavar="ID")) -> None:
    """What a workflow produced: stage summaries and files, rankings, the winner, merges."""
    data = STATE.client.call("GET", f"/workflows/{workflow_id}/result", params=STATE.params())
    if STATE.json_output:
        print_json(data)
    else:
        console.print(result_view(data))


@app.command()
def cancel(workflow_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Stop every agent of a workflow; worktrees stay until `cleanup`."""
    data = STATE.client.call("POST", f"/workflows/{workflow_id}/cancel", params=STATE.params())
    if STATE.json_output:
        print_json(data)
    else:
        console.print(f"[magenta]cancelled[/] workflow {data['id']}", highlight=False)


@app.command()
def resume(
    workflow_id: str = typer.Argument(..., metavar="ID"),
    max_cost: float | None = typer.Option(None, "--max-cost", help="A new budget in dollars."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="A new token budget."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Follow it until it ends."),
) -> None:
    """Run a failed or cancelled workflow's failed stages again, once you fixed the cause."""
    body = {"max_cost_usd": max_cost, "max_tokens": max_tokens}
    data = STATE.client.call(
        "POST", f"/workflows/{workflow_id}/resume", params=STATE.params(), json=body
    )
    if watch:
        _show(_watch(data["id"]), watched=True)
    elif STATE.json_output:
        print_json(data)
    else:
        console.print(f"[green]resumed[/] workflow {data['id']}", highlight=False)


@app.command()
def cleanup(
    workflow_id: str = typer.Argument(..., metavar="ID"),
    delete_branches: bool = typer.Option(
        False, "--delete-branches", help="Delete the branches too (default: kept)."
    ),
) -> None:
    """Remove the worktrees of a finished workflow's agents (its record stays)."""
    body = {"delete_branches": delete_branches}
    data = STATE.client.call(
        "POST", f"/workflows/{workflow_id}/cleanup", params=STATE.params(), json=body
    )
    if STATE.json_output:
        print_json(data)
    else:
        kept = " (branches kept)" if data["branches_kept"] else ""
        console.print(
            f"removed {len(data['removed'])} worktrees of workflow {data['id']}{kept}",
            highlight=False,
        )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="workflow")
