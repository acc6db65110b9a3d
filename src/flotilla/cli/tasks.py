"""`fleet task`: a team's queue of tasks, claimed atomically under leases.

    fleet task add TITLE [--team T] [--label L]... [--priority N] [--after ID]...
    fleet task list [--team T] [--state S] [--label L] [--assignee A]
    fleet task show ID                    the task, its readiness and its history
    fleet task claim [--as AGENT]         the best claimable task, held under a lease
    fleet task done ID [--result TEXT]    fail ID REASON    release ID

Run by an agent Flotilla launched, the commands act as that agent ($FLOTILLA_WORKER)
in its team ($FLOTILLA_TEAM): it claims, and it may finish only what it holds. Run by
a person, they act as "user", who may finish any task (the local user coordinates).
"""

from __future__ import annotations

import re
import time
from typing import Any

import typer
from rich import box
from rich.table import Table

from flotilla.cli.render import console, duration, print_json
from flotilla.cli.state import STATE
from flotilla.domain.errors import UsageError

task_app = typer.Typer(
    name="task", help="Tasks: a team's queue, claimed atomically.", no_args_is_help=True
)

DEFAULT_TEAM = "default"
WORKER_ENV = "FLOTILLA_WORKER"
TEAM_ENV = "FLOTILLA_TEAM"
_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TASK_STYLE = {
    "queued": "dim",
    "claimed": "bold cyan",
    "done": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def _me(agent: str | None) -> str | None:
    """Who acts: the agent named, else the agent running this command, else nobody named."""
    return agent or STATE.env.get(WORKER_ENV) or None


def _team(team: str | None) -> str:
    return team or STATE.env.get(TEAM_ENV) or DEFAULT_TEAM


def _task_path(task_id: str, *rest: str) -> str:
    """The URL of a task: its id checked here, so '../x' never reaches a URL."""
    if not _TASK_ID.match(task_id):
        raise UsageError(f"{task_id!r} is not a task id: task ids look like t-0123456789")
    return "/".join(("/tasks", task_id, *rest))


def _styled(state: str) -> str:
    style = TASK_STYLE.get(state)
    return f"[{style}]{state}[/]" if style else state


def _say(data: Any, line: str) -> None:
    if STATE.json_output:
        print_json(data)
    else:
        console.print(line, highlight=False, soft_wrap=True)


def _one_line(task: dict[str, Any]) -> str:
    holder = f" by {task['assignee']}" if task.get("assignee") else ""
    return f"{task['id']} {_styled(task['state'])}{holder}: {task['title']}"


@task_app.command("add")
def add(
    title: str = typer.Argument(..., help="What is to be done, in one line."),
    team: str | None = typer.Option(None, "--team", "-t", help="The team's queue."),
    label: list[str] = typer.Option([], "--label", "-l", help="A label (repeatable)."),
    priority: int = typer.Option(0, "--priority", "-p", help="Higher is claimed first."),
    after: list[str] = typer.Option([], "--after", help="A task that must be done first."),
    description: str = typer.Option("", "--description", "-d", help="Details."),
    agent_kind: str | None = typer.Option(
        None, "--kind", help="Only this agent kind may claim it."
    ),
    requires: list[str] = typer.Option(
        [], "--requires", help="A capability its claimer must have (repeatable)."
    ),
) -> None:
    """Add a task to a team's queue (default: $FLOTILLA_TEAM, else 'default')."""
    body = {
        "team": _team(team),
        "title": title,
        "description": description,
        "labels": label,
        "priority": priority,
        "depends_on": after,
        "agent_kind": agent_kind,
        "requires": requires,
    }
    task = STATE.client.call("POST", "/tasks", json=body)
    waits = f", after {', '.join(task['depends_on'])}" if task["depends_on"] else ""
    _say(task, f"[green]added[/] {task['id']} to team {task['team']}{waits}: {task['title']}")


@task_app.command("list")
def list_tasks(
    team: str | None = typer.Option(None, "--team", "-t", help="Only this team's tasks."),
    state: str | None = typer.Option(
        None, "--state", "-s", help="Only these states, comma-separated (queued,claimed,...)."
    ),
    label: str | None = typer.Option(None, "--label", "-l", help="Only tasks with this label."),
    assignee: str | None = typer.Option(None, "--assignee", help="Only tasks this agent holds."),
    limit: int = typer.Option(500, "--limit", help="At most this many, the oldest."),
) -> None:
    """Tasks, oldest first, with their state and holder."""
    params = {"team": team, "state": state, "label": label, "assignee": assignee, "limit": limit}
    found: list[dict[str, Any]] = STATE.client.call(
        "GET", "/tasks", params={k: v for k, v in params.items() if v is not None}
    )
    if STATE.json_output:
        print_json(found)
        return
    if not found:
        console.print("no tasks", highlight=False)
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("id", "state", "pri", "team", "holder", "labels", "age"):
        table.add_column(column, no_wrap=True, justify="right" if column == "pri" else "left")
    table.add_column("title", overflow="fold")
    now = time.time()
    for task in found:
        table.add_row(
            task["id"],
            _styled(task["state"]),
            str(task["priority"]),
            task["team"],
            task["assignee"] or "",
            ",".join(task["labels"]),
            duration(now - task["created_at"]),
            task["title"],
        )
    console.print(table)


@task_app.command("show")
def show(task_id: str = typer.Argument(..., help="The task's id.")) -> None:
    """A task, whether it can be claimed, and its history."""
    task = STATE.client.call("GET", _task_path(task_id))
    history = STATE.client.call("GET", _task_path(task_id, "history"))
    if STATE.json_output:
        print_json({**task, "history": history})
        return
    console.print(_one_line(task), highlight=False, soft_wrap=True)
    facts = [
        ("team", task["team"]),
        ("priority", str(task["priority"])),
        ("labels", ", ".join(task["labels"])),
        ("requires", ", ".join(task["requires"])),
        ("agent kind", task["agent_kind"] or ""),
        ("attempts", str(task["attempts"])),
    ]
    if task["depends_on"]:
        states = task["dependency_states"]
        deps = ", ".join(f"{d} ({states.get(d, 'unknown')})" for d in task["depends_on"])
        facts.append(("after", f"{deps}: {task['readiness']}"))
    if task["state"] == "claimed" and task["lease_expires_at"]:
        facts.append(("lease", f"{duration(task['lease_expires_at'] - time.time())} left"))
    if task["error"]:
        facts.append(("error", task["error"]))
    if task["result"] is not None:
        facts.append(("result", str(task["result"])))
    if task["description"]:
        facts.append(("description", task["description"]))
    for name, value in facts:
        if value:
            console.print(f"  {name}: {value}", highlight=False, soft_wrap=True)
    console.print("history:", highlight=False)
    for event in history:
        stamp = time.strftime("%H:%M:%S", time.localtime(event["at"]))
        console.print(f"  {stamp} {event['kind']:<13} {event['message']}", highlight=False)


@task_app.command("claim")
def claim(
    agent: str | None = typer.Option(
        None, "--as", help="Claim for this agent (default: $FLOTILLA_WORKER, else 'user')."
    ),
    team: str | None = typer.Option(None, "--team", "-t", help="From this team's queue."),
    kind: str | None = typer.Option(None, "--kind", help="Your agent kind."),
    label: list[str] = typer.Option([], "--label", "-l", help="A capability you have."),
    lease: float | None = typer.Option(
        None, "--lease", help="Seconds to hold it before it must be renewed."
    ),
) -> None:
    """Claim the best claimable task: highest priority, then oldest, its dependencies done."""
    body = {
        "claimer": _me(agent),
        "team": team or STATE.env.get(TEAM_ENV),
        "agent_kind": kind,
        "labels": label,
        "lease_s": lease,
    }
    answer = STATE.client.call(
        "POST", "/tasks/claim", json={k: v for k, v in body.items() if v is not None}
    )
    task = answer["task"]
    if task is None:
        _say(answer, "nothing to claim")
        return
    lease_left = duration(task["lease_expires_at"] - time.time())
    _say(answer, f"[green]claimed[/] {_one_line(task)} (lease {lease_left})")


@task_app.command("done")
def done(
    task_id: str = typer.Argument(..., help="The task's id."),
    result: str | None = typer.Option(None, "--result", "-r", help="What came of it."),
    agent: str | None = typer.Option(None, "--as", help="Act as this agent."),
) -> None:
    """Mark a task you hold done, with its result."""
    body = {"result": result, "actor": _me(agent)}
    task = STATE.client.call("POST", _task_path(task_id, "complete"), json=body)
    _say(task, f"[green]done[/] {_one_line(task)}")


@task_app.command("fail")
def fail(
    task_id: str = typer.Argument(..., help="The task's id."),
    reason: str = typer.Argument(..., help="Why it failed."),
    agent: str | None = typer.Option(None, "--as", help="Act as this agent."),
) -> None:
    """Mark a task you hold failed, saying why."""
    body = {"reason": reason, "actor": _me(agent)}
    task = STATE.client.call("POST", _task_path(task_id, "fail"), json=body)
    _say(task, f"[red]failed[/] {_one_line(task)}: {task['error']}")


@task_app.command("release")
def release(
    task_id: str = typer.Argument(..., help="The task's id."),
    reason: str | None = typer.Option(None, "--reason", help="Why you give it back."),
    agent: str | None = typer.Option(None, "--as", help="Act as this agent."),
) -> None:
    """Give a task you hold back to the queue."""
    body = {"reason": reason, "actor": _me(agent)}
    task = STATE.client.call("POST", _task_path(task_id, "release"), json=body)
    _say(task, f"[yellow]released[/] {_one_line(task)}")


def register(root: typer.Typer) -> None:
    root.add_typer(task_app)
