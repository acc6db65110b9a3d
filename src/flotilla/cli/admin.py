"""Set-up and housekeeping commands: init, config, doctor, daemon, demo."""

from __future__ import annotations

import shlex
import subprocess

import typer

from flotilla.cli.doctor import run_checks
from flotilla.cli.render import console, err_console, print_json
from flotilla.cli.state import STATE
from flotilla.config.init import init_project
from flotilla.config.loader import load_config, validate_config
from flotilla.config.paths import project_config_path
from flotilla.config.render import render_config
from flotilla.domain.errors import UsageError

daemon_app = typer.Typer(help="Manage the background daemon (agents outlive it).")


def init(
    project_type: str = typer.Option(
        "auto", "--type", help="python, node, rails, go, rust, generic, or auto to detect."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing config."),
) -> None:
    """Create .flotilla/config.toml with defaults for this project's type."""
    path = init_project(STATE.project(), project_type=project_type, force=force)
    if STATE.json_output:
        print_json({"path": str(path)})
    else:
        console.print(f"wrote {path} (commit it to share it)", highlight=False)


def config(
    show_origin: bool = typer.Option(False, "--show-origin", help="Where each value came from."),
    validate: bool = typer.Option(False, "--validate", help="Report every problem at once."),
    edit: bool = typer.Option(False, "--edit", help="Open the project file in $EDITOR."),
) -> None:
    """Show the merged configuration (defaults < user file < project file < environment)."""
    project = STATE.project()
    if edit:
        path = project_config_path(project)
        if not path.exists():
            raise UsageError(f"{path} does not exist: run `fleet init` first")
        editor = STATE.env.get("VISUAL") or STATE.env.get("EDITOR") or "vi"
        subprocess.run([*shlex.split(editor), str(path)], check=False)
        problems = validate_config(project, STATE.env)
        for problem in problems:
            err_console.print(f"[red]problem:[/] {problem}", highlight=False)
        raise typer.Exit(2 if problems else 0)
    if validate:
        problems = validate_config(project, STATE.env)
        if STATE.json_output:
            print_json({"valid": not problems, "problems": problems})
        elif problems:
            for problem in problems:
                err_console.print(f"[red]problem:[/] {problem}", highlight=False)
        else:
            console.print("config is valid")
        raise typer.Exit(2 if problems else 0)
    loaded = load_config(project, STATE.env)
    if STATE.json_output:
        print_json(loaded.to_dict(show_origin=show_origin))
    else:
        print(render_config(loaded, show_origin=show_origin), end="")


def doctor() -> None:
    """Check git, tmux, agent CLIs, credentials, config, store and daemon; say how to fix."""
    checks = run_checks(STATE)
    if STATE.json_output:
        print_json([c.__dict__ for c in checks])
    else:
        for check in checks:
            mark = (
                "[green]ok[/]  "
                if check.ok
                else ("[yellow]warn[/]" if check.warning else "[red]FAIL[/]")
            )
            line = f"{mark} {check.name}: {check.detail}"
            if not check.ok and check.fix:
                line += f"\n       fix: {check.fix}"
            console.print(line, highlight=False)
    if any(not c.ok and not c.warning for c in checks):
        raise typer.Exit(1)


@daemon_app.command("start")
def daemon_start() -> None:
    """Start the daemon (the CLI also starts it when needed)."""
    STATE.client.ensure_running()
    console.print(f"daemon running (pid {STATE.client.daemon_pid()})", highlight=False)


@daemon_app.command("stop")
def daemon_stop() -> None:
    """Stop the daemon. Running agents keep running and are re-adopted on next start."""
    stopped = STATE.client.stop()
    console.print("daemon stopped" if stopped else "daemon was not running")


@daemon_app.command("status")
def daemon_status() -> None:
    """Is the daemon running, and how is it?"""
    client = STATE.client
    running = client.is_running()
    info = {"running": running, "pid": client.daemon_pid(), "socket": str(client.socket)}
    if running:
        info["health"] = client.call("GET", "/health")
    if STATE.json_output:
        print_json(info)
    else:
        console.print(
            f"daemon {'running' if running else 'not running'}"
            + (f" (pid {info['pid']}, socket {info['socket']})" if running else ""),
            highlight=False,
        )
    if not running:
        raise typer.Exit(1)


def demo(
    keep: bool = typer.Option(False, "--keep", help="Keep the sample project and worktrees."),
    agents: int = typer.Option(4, "--agents", "-n", min=1, max=4, help="How many agents."),
) -> None:
    """Offline demo: scripted agents race to fix a failing test in a sample project."""
    from flotilla.demo.run import run_demo

    raise typer.Exit(run_demo(keep=keep, agents=agents, json_output=STATE.json_output))


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(config)
    app.command()(doctor)
    app.command()(demo)
    app.add_typer(daemon_app, name="daemon")
