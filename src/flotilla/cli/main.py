"""`fleet`: run fleets of coding agents, each in its own git worktree.

Exit codes: 0 success, 1 a failure, 2 bad input (usage), 130 interrupted.
"""

from __future__ import annotations

import sys

import typer

from flotilla import __version__
from flotilla.cli import admin, coordination, inspect, integrate, launch, serve, tasks, workflow
from flotilla.cli import mcp as mcp_cli
from flotilla.cli import messages as messages_cli
from flotilla.cli.render import err_console
from flotilla.cli.state import STATE
from flotilla.counters import count
from flotilla.domain.errors import FlotillaError

app = typer.Typer(
    name="fleet",
    help="Run fleets of AI coding agents in parallel, each in its own git worktree.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"flotilla {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    json_output: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    STATE.json_output = json_output


launch.register(app)
inspect.register(app)
admin.register(app)
integrate.register(app)
workflow.register(app)
serve.register(app)
coordination.register(app)
messages_cli.register(app)
mcp_cli.register(app)
tasks.register(app)


def _hoist_json(argv: list[str]) -> list[str]:
    """Accept `--json` anywhere before `--` (`fleet list --json` as well as `fleet --json list`)."""
    end = argv.index("--") if "--" in argv else len(argv)
    if "--json" not in argv[:end]:
        return argv
    rest = [a for a in argv[:end] if a != "--json"] + argv[end:]
    return ["--json", *rest]


def run() -> None:
    """Console-script entry: map Flotilla's errors to one line and an exit code."""
    try:
        app(args=_hoist_json(sys.argv[1:]), prog_name="fleet")
    except FlotillaError as exc:
        count(f"cli.{type(exc).__name__}")
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        count("cli.interrupted")
        err_console.print("interrupted")
        sys.exit(130)
    finally:
        STATE.close()
