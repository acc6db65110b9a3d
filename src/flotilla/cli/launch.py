"""Commands that start, talk to, and stop agents: create, fanout, multi, prompt, kill."""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from typing import Any

import typer

from flotilla.cli.render import console, err_console, print_json
from flotilla.cli.state import STATE
from flotilla.domain.errors import UsageError
from flotilla.domain.names import batch_names, validate_name


def _read_prompt(prompt: str | None, prompt_file: Path | None) -> str:
    if prompt is not None and prompt_file is not None:
        raise UsageError("give either -p PROMPT or --prompt-file FILE, not both")
    if prompt_file is not None:
        if not prompt_file.is_file():
            raise UsageError(f"prompt file {prompt_file} does not exist")
        prompt = prompt_file.read_text()
    if prompt is None or not prompt.strip():
        raise UsageError("the prompt is empty: pass -p 'what to do' or --prompt-file FILE")
    return prompt


def _create_all(specs: list[dict[str, Any]], batch: str | None) -> list[dict[str, Any]]:
    """Create the workers: one request, so the daemon makes their worktrees in parallel.

    Bad input anywhere creates nothing (exit 2). A worker whose set-up fails is
    reported and undone while the others go ahead; then the command exits 1.
    """
    depth, parent = STATE.spawn_depth()
    base_default = STATE.default_base()
    project = str(STATE.project())
    bodies = [
        {
            "project": project,
            "batch": batch,
            "depth": depth,
            "parent": parent,
            "env": STATE.env,
            **spec,
            "base_ref": spec.get("base_ref") or base_default,
        }
        for spec in specs
    ]
    if len(bodies) == 1:
        return [STATE.client.call("POST", "/workers", json=bodies[0])]
    with (
        err_console.status(f"creating {len(bodies)} worktrees", spinner="dots")
        if not STATE.json_output
        else contextlib.nullcontext()
    ):
        reply = STATE.client.call("POST", "/workers/batch", json={"workers": bodies})
    created: list[dict[str, Any]] = reply["created"]
    for failure in reply["failed"]:
        err_console.print(
            f"[red]could not create[/] {failure['name']}: {failure['error']}", highlight=False
        )
    if reply["failed"]:
        _report(created)
        raise typer.Exit(1)
    return created


def _report(created: list[dict[str, Any]]) -> None:
    if STATE.json_output:
        print_json(created)
        return
    for worker in created:
        console.print(
            f"[green]created[/] {worker['name']} ([bold]{worker['agent']}[/]) on branch "
            f"{worker['branch']} in {worker['worktree']}",
            highlight=False,
        )
    if created and created[0].get("batch"):
        console.print(f"batch: {created[0]['batch']}", highlight=False)


def _batch_id() -> str:
    return secrets.token_hex(3)


def create(
    name: str = typer.Argument(..., help="Worker name; also its branch <prefix>/<name>."),
    prompt: str | None = typer.Option(None, "-p", "--prompt", help="What the agent should do."),
    prompt_file: Path | None = typer.Option(None, "--prompt-file", help="Read the prompt here."),
    agent: str | None = typer.Option(None, "--agent", "-a", help="Agent kind (default: config)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model for the agent."),
    base: str | None = typer.Option(None, "--base", help="Start from this ref (default HEAD)."),
    quick: bool = typer.Option(False, "--quick", help="Skip setup_commands (run quick_setup)."),
    interactive: bool = typer.Option(
        False, "--interactive", "-i", help="Run the agent's own TUI in tmux."
    ),
) -> None:
    """Launch one agent in a new worktree."""
    text = _read_prompt(prompt, prompt_file)
    spec = {
        "name": validate_name(name),
        "prompt": text,
        "agent": agent,
        "model": model,
        "base_ref": base,
        "quick": quick,
        "interactive": interactive,
    }
    _report(_create_all([spec], None))


def fanout(
    count_: int = typer.Argument(..., metavar="N", help="How many agents."),
    prefix: str | None = typer.Argument(None, help="Name prefix (names PREFIX-A, PREFIX-B...)."),
    prompt: str | None = typer.Option(None, "-p", "--prompt"),
    prompt_file: Path | None = typer.Option(None, "--prompt-file"),
    agent: str | None = typer.Option(None, "--agent", "-a"),
    agents: str | None = typer.Option(
        None, "--agents", help="Spread across kinds, e.g. claude,codex,gemini."
    ),
    model: str | None = typer.Option(None, "--model", "-m"),
    base: str | None = typer.Option(None, "--base"),
    quick: bool = typer.Option(False, "--quick"),
) -> None:
    """N agents, same prompt, one batch."""
    if count_ < 1:
        raise UsageError(f"N must be at least 1, got {count_}")
    if agent and agents:
        raise UsageError("give --agent or --agents, not both")
    text = _read_prompt(prompt, prompt_file)
    batch = _batch_id()
    names = batch_names(count_, validate_name(prefix or f"fan-{batch}"))
    kinds = [k.strip() for k in agents.split(",") if k.strip()] if agents else [agent]
    specs = [
        {
            "name": name,
            "prompt": text,
            "agent": kinds[i % len(kinds)],
            "model": model,
            "base_ref": base,
            "quick": quick,
        }
        for i, name in enumerate(names)
    ]
    _report(_create_all(specs, batch))


def multi(
    tasks: list[str] = typer.Argument(..., help='NAME:"prompt" pairs, one per agent.'),
    agent: str | None = typer.Option(None, "--agent", "-a"),
    model: str | None = typer.Option(None, "--model", "-m"),
    base: str | None = typer.Option(None, "--base"),
    quick: bool = typer.Option(False, "--quick"),
) -> None:
    """Different tasks, one batch."""
    specs = []
    for item in tasks:
        name, sep, text = item.partition(":")
        if not sep or not text.strip():
            raise UsageError(f'{item!r} is not NAME:"prompt": write e.g. fix-login:"fix the login"')
        specs.append(
            {
                "name": validate_name(name),
                "prompt": text,
                "agent": agent,
                "model": model,
                "base_ref": base,
                "quick": quick,
            }
        )
    if len({s["name"] for s in specs}) != len(specs):
        raise UsageError("two tasks have the same name: give each a different NAME")
    _report(_create_all(specs, _batch_id()))


def prompt_cmd(
    name: str = typer.Argument(...),
    message: str = typer.Argument(..., help="The follow-up message."),
) -> None:
    """Send a follow-up prompt to an agent."""
    reply = STATE.client.call(
        "POST", f"/workers/{name}/prompt", params=STATE.params(), json={"text": message}
    )
    if STATE.json_output:
        print_json(reply)
    elif reply.get("status") == "not delivered":
        err_console.print(f"[red]not delivered:[/] {reply.get('reason')}")
        raise typer.Exit(1)
    else:
        console.print(f"{name}: {reply['status']}", highlight=False)


def kill(
    pattern: str | None = typer.Argument(None, help="Worker name or glob (e.g. 'fan-*')."),
    batch: str | None = typer.Option(None, "--batch", help="Every worker of this batch."),
    keep_branch: bool = typer.Option(
        False, "--keep-branch", help="Keep the branch (uncommitted work is committed first)."
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Do not ask before killing many."),
) -> None:
    """Stop agents and remove their worktrees and branches."""
    if not pattern and not batch:
        raise UsageError("name a worker (or a glob), or give --batch ID")
    workers = STATE.client.call(
        "GET", "/workers", params=STATE.params(pattern=pattern, batch=batch)
    )
    if not workers:
        what = f"matching {pattern!r}" if pattern else f"in batch {batch!r}"
        raise UsageError(f"no worker {what} in this project (see `fleet list`)")
    if len(workers) > 1 and not force:
        names = ", ".join(w["name"] for w in workers)
        if not typer.confirm(f"kill {len(workers)} workers ({names})?"):
            raise typer.Exit(1)
    killed = []
    for worker in workers:
        killed.append(
            STATE.client.call(
                "DELETE",
                f"/workers/{worker['name']}",
                params=STATE.params(keep_branch=str(keep_branch).lower()),
            )
        )
    if STATE.json_output:
        print_json(killed)
    else:
        for worker in killed:
            kept = f" (branch {worker['branch']} kept)" if keep_branch else ""
            console.print(f"[magenta]killed[/] {worker['name']}{kept}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(create)
    app.command()(fanout)
    app.command()(multi)
    app.command("prompt")(prompt_cmd)
    app.command()(kill)
