"""`fleet team`, `fleet swarm`, `fleet board` and `fleet checkpoint`: coordination commands.

    fleet team create NAME [--lead AGENT] | list | add TEAM AGENT [--role R] | status TEAM
    fleet team spawn TEAM NAME -p PROMPT [--role R] [--agent KIND] [--model M] [--base REF]
    fleet swarm create NAME --goal G --max N [--team T] | list | join SWARM | leave SWARM
    fleet board post SWARM TOPIC TEXT | read SWARM [--since CURSOR] [--topic T]
    fleet checkpoint save NAME [--worker W] [--notes N] | list | restore NAME NEW [-p PROMPT]

Run by an agent Flotilla launched, the commands act as that agent ($FLOTILLA_WORKER):
it is the one joining, posting, or saving a checkpoint of itself.
"""

from __future__ import annotations

from typing import Any

import typer
from rich import box
from rich.table import Table

from flotilla.cli.render import STATE_STYLE, console, print_json
from flotilla.cli.state import STATE
from flotilla.domain.coordination import check_name
from flotilla.domain.errors import UsageError

team_app = typer.Typer(name="team", help="Teams of agents, each in a role.", no_args_is_help=True)
swarm_app = typer.Typer(
    name="swarm", help="Swarms: agents grouped around a goal.", no_args_is_help=True
)
board_app = typer.Typer(
    name="board", help="A swarm's blackboard: post findings, read by cursor.", no_args_is_help=True
)
checkpoint_app = typer.Typer(
    name="checkpoint", help="Save a worker's state; continue from it later.", no_args_is_help=True
)

ROLES_HELP = "team-lead, worker, coordinator, monitor or merger"


def _me(agent: str | None) -> str | None:
    """The agent a command acts for: the one named, else the agent running this command."""
    return agent or STATE.env.get("FLOTILLA_WORKER") or None


def _path(kind: str, name: str) -> str:
    """A name that goes into a URL path: checked here, so '../x' never reaches a URL."""
    return check_name(kind, name)


def _out(data: Any, line: str) -> None:
    if STATE.json_output:
        print_json(data)
    else:
        console.print(line, highlight=False, soft_wrap=True)


def _table(*columns: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=column != "body")
    return table


# -- teams -------------------------------------------------------------------------------------


@team_app.command("create")
def team_create(
    name: str = typer.Argument(..., help="The team's name."),
    lead: str | None = typer.Option(None, "--lead", help="An agent to add as its team lead."),
) -> None:
    """Create a team whose workers work in this repository."""
    body = {"name": name, "project": str(STATE.project()), "lead": lead}
    team = STATE.client.call("POST", "/teams", json=body)
    _out(team, f"[green]created[/] team {team['name']} in {team['project']}")


@team_app.command("list")
def team_list() -> None:
    """Every team and how many members it has."""
    teams = STATE.client.call("GET", "/teams")
    if STATE.json_output:
        print_json(teams)
        return
    table = _table("team", "members", "project")
    for team in teams:
        table.add_row(team["name"], str(len(team["members"])), team["project"])
    console.print(table)


@team_app.command("add")
def team_add(
    team: str = typer.Argument(...),
    agent: str = typer.Argument(..., help="The agent's name (a worker's, or a person's)."),
    role: str = typer.Option("worker", "--role", "-r", help=ROLES_HELP),
) -> None:
    """Add an agent to a team in a role."""
    member = STATE.client.call(
        "POST", f"/teams/{_path('team', team)}/members", json={"agent": agent, "role": role}
    )
    _out(member, f"[green]added[/] {member['agent']} to team {team} as {member['role']}")


@team_app.command("status")
def team_status(team: str = typer.Argument(...)) -> None:
    """The team's members, their roles and their workers' states."""
    status = STATE.client.call("GET", f"/teams/{_path('team', team)}")
    if STATE.json_output:
        print_json(status)
        return
    table = _table("agent", "role", "state", "outcome", "agent kind", "cost")
    for member in status["members"]:
        worker = member["worker"] or {}
        state = worker.get("state", "-")
        style = STATE_STYLE.get(state)
        table.add_row(
            member["agent"],
            member["role"],
            f"[{style}]{state}[/]" if style else state,
            worker.get("outcome") or "",
            worker.get("agent", ""),
            f"${worker['cost_usd']:.4f}" if worker else "",
        )
    console.print(f"team {status['name']} ({status['project']})", highlight=False)
    console.print(table)


@team_app.command("spawn")
def team_spawn(
    team: str = typer.Argument(...),
    name: str = typer.Argument(..., help="The new worker's name."),
    prompt: str = typer.Option(..., "-p", "--prompt", help="What the agent should do."),
    role: str = typer.Option("worker", "--role", "-r", help=ROLES_HELP),
    agent: str | None = typer.Option(None, "--agent", "-a", help="Agent kind (default: config)."),
    model: str | None = typer.Option(None, "--model", "-m"),
    base: str | None = typer.Option(None, "--base", help="Start from this ref."),
) -> None:
    """Launch a worker in the team's repository as a member of the team."""
    depth, parent = STATE.spawn_depth()
    body = {
        "name": name,
        "prompt": prompt,
        "role": role,
        "agent": agent,
        "model": model,
        "base_ref": base,
        "env": STATE.env,
        "depth": depth,
        "parent": parent,
    }
    made = STATE.client.call("POST", f"/teams/{_path('team', team)}/spawn", json=body)
    worker = made["worker"]
    _out(made, f"[green]spawned[/] {worker['name']} in team {team} on branch {worker['branch']}")


# -- swarms ------------------------------------------------------------------------------------


@swarm_app.command("create")
def swarm_create(
    name: str = typer.Argument(...),
    goal: str = typer.Option(..., "--goal", "-g", help="What the swarm works towards."),
    max_size: int = typer.Option(..., "--max", help="How many agents it may hold."),
    team: str | None = typer.Option(None, "--team", help="The team it belongs to."),
) -> None:
    """Create a swarm (and its blackboard)."""
    body = {"name": name, "goal": goal, "max_size": max_size, "team": team}
    swarm = STATE.client.call("POST", "/swarms", json=body)
    _out(swarm, f"[green]created[/] swarm {swarm['name']} (at most {swarm['max_size']} agents)")


@swarm_app.command("list")
def swarm_list(team: str | None = typer.Option(None, "--team")) -> None:
    swarms = STATE.client.call("GET", "/swarms", params={"team": team} if team else None)
    if STATE.json_output:
        print_json(swarms)
        return
    table = _table("swarm", "size", "posts", "team", "goal")
    for s in swarms:
        table.add_row(
            s["name"], f"{s['size']}/{s['max_size']}", str(s["posts"]), s["team"] or "", s["goal"]
        )
    console.print(table)


@swarm_app.command("join")
def swarm_join(
    swarm: str = typer.Argument(...),
    agent: str | None = typer.Option(None, "--agent", help="Default: the agent running this."),
) -> None:
    """Join a swarm (refused when it is full)."""
    data = STATE.client.call(
        "POST", f"/swarms/{_path('swarm', swarm)}/join", json={"agent": _me(agent)}
    )
    _out(data, f"in swarm {data['name']}: {', '.join(data['members'])}")


@swarm_app.command("leave")
def swarm_leave(
    swarm: str = typer.Argument(...),
    agent: str | None = typer.Option(None, "--agent", help="Default: the agent running this."),
) -> None:
    data = STATE.client.call(
        "POST", f"/swarms/{_path('swarm', swarm)}/leave", json={"agent": _me(agent)}
    )
    _out(data, f"left swarm {data['name']}")


# -- the blackboard --------------------------------------------------------------------------------


@board_app.command("post")
def board_post(
    swarm: str = typer.Argument(...),
    topic: str = typer.Argument(..., help="A one-word topic, e.g. findings."),
    text: str = typer.Argument(..., help="The post."),
    author: str | None = typer.Option(None, "--as", help="Default: the agent running this."),
) -> None:
    """Append a post to the swarm's blackboard."""
    body = {"topic": topic, "body": text, "author": _me(author)}
    post = STATE.client.call("POST", f"/swarms/{_path('swarm', swarm)}/posts", json=body)
    _out(post, f"posted #{post['id']} to {swarm}/{post['topic']}")


@board_app.command("read")
def board_read(
    swarm: str = typer.Argument(...),
    since: int = typer.Option(0, "--since", help="The cursor printed by the last read."),
    topic: str | None = typer.Option(None, "--topic", "-t"),
    limit: int = typer.Option(100, "--limit"),
) -> None:
    """Posts after the cursor, oldest first, then the cursor to pass next time."""
    params: dict[str, Any] = {"since": since, "limit": limit}
    if topic is not None:
        params["topic"] = topic
    page = STATE.client.call("GET", f"/swarms/{_path('swarm', swarm)}/posts", params=params)
    if STATE.json_output:
        print_json(page)
        return
    table = _table("#", "author", "topic", "body")
    for post in page["posts"]:
        table.add_row(str(post["id"]), post["author"], post["topic"], post["body"])
    if page["posts"]:
        console.print(table)
    console.print(f"cursor: {page['cursor']} (next: --since {page['cursor']})", highlight=False)


# -- checkpoints ---------------------------------------------------------------------------------


@checkpoint_app.command("save")
def checkpoint_save(
    name: str = typer.Argument(..., help="The checkpoint's name, unique in this repository."),
    worker: str | None = typer.Option(
        None, "--worker", "-w", help="Default: the worker running this."
    ),
    notes: str = typer.Option("", "--notes", help="What the one who restores it should know."),
) -> None:
    """Save a worker's branch, commit, session and summary (uncommitted work is committed)."""
    target = _me(worker)
    if target is None:
        raise UsageError("name the worker to checkpoint: fleet checkpoint save NAME --worker W")
    body = {"name": name, "worker": target, "notes": notes}
    saved = STATE.client.call("POST", "/checkpoints", params=STATE.params(), json=body)
    _out(saved, f"[green]saved[/] checkpoint {name} of {target} at {saved['commit'][:12]}")


@checkpoint_app.command("list")
def checkpoint_list() -> None:
    saved = STATE.client.call("GET", "/checkpoints", params=STATE.params())
    if STATE.json_output:
        print_json(saved)
        return
    table = _table("checkpoint", "worker", "agent", "commit", "session", "summary")
    for c in saved:
        summary = c["summary"].splitlines()[0][:60] if c["summary"] else ""
        table.add_row(
            c["name"], c["worker"], c["agent"], c["commit"][:12], c["session_id"] or "", summary
        )
    console.print(table)


@checkpoint_app.command("restore")
def checkpoint_restore(
    name: str = typer.Argument(...),
    new_worker: str = typer.Argument(..., help="The name of the worker that continues."),
    prompt: str | None = typer.Option(None, "-p", "--prompt", help="What to do next."),
    agent: str | None = typer.Option(None, "--agent", "-a", help="Default: the checkpoint's."),
    model: str | None = typer.Option(None, "--model", "-m"),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Resume the checkpoint's agent session, if it can."
    ),
) -> None:
    """Start a new worker from the checkpoint's commit, resuming its session if it can."""
    depth, parent = STATE.spawn_depth()
    body = {
        "name": new_worker,
        "prompt": prompt,
        "agent": agent,
        "model": model,
        "resume": resume,
        "env": STATE.env,
        "depth": depth,
        "parent": parent,
    }
    done = STATE.client.call(
        "POST",
        f"/checkpoints/{_path('checkpoint', name)}/restore",
        params=STATE.params(),
        json=body,
    )
    worker = done["worker"]
    how = "resuming its session" if done["resumed_session"] else "in a new session"
    _out(done, f"[green]restored[/] {name} into {worker['name']} ({worker['branch']}), {how}")


def register(root: typer.Typer) -> None:
    for sub in (team_app, swarm_app, board_app, checkpoint_app):
        root.add_typer(sub)
