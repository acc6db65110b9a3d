"""Commands that bring work back: merge (one worker or a batch), conflicts, pr.

Exit codes as everywhere: 2 for bad input (nothing done), 1 when a merge
conflicts or a push fails; `merge --all` also exits 1 when any worker of the
batch was not merged because of a conflict or failing tests (after printing
the whole report).
"""

from __future__ import annotations

from typing import Any

import typer

from flotilla.cli.render import console, print_json
from flotilla.cli.state import STATE
from flotilla.domain.errors import UsageError

ORDERS = ("seq", "tests", "name")
STATUS_STYLE = {"merged": "green", "conflict": "red", "tests_failed": "red", "skipped": "yellow"}


def _strategy(squash: bool, rebase: bool, ff_only: bool) -> str:
    flags = (("squash", squash), ("rebase", rebase), ("ff-only", ff_only))
    picked = [name for name, on in flags if on]
    if len(picked) > 1:
        given = ", ".join(f"--{p}" for p in picked)
        raise UsageError(f"give at most one of --squash, --rebase, --ff-only (got {given})")
    return picked[0] if picked else "merge"


def merge(
    name: str | None = typer.Argument(None, help="The worker whose branch to merge."),
    all_batch: str | None = typer.Option(
        None,
        "--all",
        metavar="BATCH",
        help="Merge every finished worker of this batch, one at a time, testing after each.",
    ),
    into: str | None = typer.Option(
        None, "--into", help="Target branch (default: the branch checked out in the repository)."
    ),
    squash: bool = typer.Option(False, "--squash", help="One new commit on the target."),
    rebase: bool = typer.Option(
        False, "--rebase", help="Replay the worker's commits onto the target."
    ),
    ff_only: bool = typer.Option(False, "--ff-only", help="Fast-forward only; refuse otherwise."),
    order: str | None = typer.Option(
        None,
        "--order",
        help="With --all: seq (creation order), tests (best test results first) or name.",
    ),
) -> None:
    """Merge a worker's branch into the target; uncommitted work is committed first.

    A conflict aborts cleanly: the target stays exactly as it was, and the
    conflicting files are listed. With --all BATCH, the project's test_command
    runs after each merge and a merge that breaks it is undone and reported.
    """
    strategy = _strategy(squash, rebase, ff_only)
    if (name is None) == (all_batch is None):
        raise UsageError("name one worker (fleet merge NAME) or a batch (fleet merge --all BATCH)")
    if order is not None and all_batch is None:
        raise UsageError("--order only applies to --all BATCH")
    if order is not None and order not in ORDERS:
        raise UsageError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}")
    if all_batch is not None:
        _merge_batch(all_batch, into, strategy, order or "seq")
        return
    body = {"into": into, "strategy": strategy}
    data = STATE.client.call("POST", f"/workers/{name}/merge", params=STATE.params(), json=body)
    if STATE.json_output:
        print_json(data)
    elif not data["changed"]:
        console.print(
            f"nothing to merge: {data['branch']} is already in {data['into']}", highlight=False
        )
    else:
        files = data["files"]
        console.print(
            f"[green]merged[/] {data['name']} ({data['branch']}) into {data['into']} "
            f"as {data['commit'][:12]} ({data['strategy']}, {len(files)} "
            f"file{'s' if len(files) != 1 else ''})",
            highlight=False,
            soft_wrap=True,
        )


def _merge_batch(batch: str, into: str | None, strategy: str, order: str) -> None:
    body = {"into": into, "strategy": strategy, "order": order, "env": STATE.env}
    data: dict[str, Any] = STATE.client.call(
        "POST", f"/batches/{batch}/merge", params=STATE.params(), json=body
    )
    outcomes = data["outcomes"]
    if STATE.json_output:
        print_json(data)
    else:
        width = max((len(o["name"]) for o in outcomes), default=4)
        for o in outcomes:
            style = STATUS_STYLE.get(o["status"], "")
            console.print(
                f"[{style}]{o['status']:<12}[/] {o['name']:<{width}}  {o['detail']}",
                highlight=False,
                soft_wrap=True,
            )
        tested = f", testing with `{data['test_command']}`" if data["test_command"] else ""
        console.print(
            f"merged {data['merged']} of {len(outcomes)} workers of batch {batch} "
            f"into {data['into']} (order {data['order']}{tested})",
            highlight=False,
            soft_wrap=True,
        )
    if any(o["status"] in ("conflict", "tests_failed") for o in outcomes):
        raise typer.Exit(1)


def conflicts(
    batch: str | None = typer.Argument(None, help="Only this batch (default: every worker)."),
) -> None:
    """Files that two or more running or finished workers changed, before anyone merges."""
    data = STATE.client.call("GET", "/conflicts", params=STATE.params(batch=batch))
    if STATE.json_output:
        print_json(data)
        return
    for entry in data["conflicts"]:
        console.print(
            f"{entry['path']}: {', '.join(entry['workers'])}", highlight=False, soft_wrap=True
        )
    checked = len(data["checked"])
    if not data["conflicts"]:
        console.print(
            f"no file was changed by two or more workers ({checked} checked)", highlight=False
        )
    for left in data["left_out"]:
        console.print(
            f"  (left out {left['name']}: {left['reason']})", highlight=False, soft_wrap=True
        )


def pr(
    name: str = typer.Argument(..., help="The worker whose branch to propose."),
    base: str | None = typer.Option(
        None, "--base", help="Branch to merge into (default: the checked-out branch)."
    ),
    remote: str = typer.Option("origin", "--remote", help="Remote to push the branch to."),
    draft: bool = typer.Option(False, "--draft", help="Open it as a draft."),
) -> None:
    """Push a worker's branch and open a pull request (gh if logged in, else GITHUB_TOKEN).

    Title and body come from the worker's result: summary, files, tests.
    """
    body = {"base": base, "remote": remote, "draft": draft, "env": STATE.env}
    data = STATE.client.call("POST", f"/workers/{name}/pr", params=STATE.params(), json=body)
    if STATE.json_output:
        print_json(data)
        return
    number = f" #{data['number']}" if data.get("number") is not None else ""
    console.print(
        f"[green]opened[/] pull request{number} for {data['branch']} into {data['base']}: "
        f"{data['url']} (via {data['via']})",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command()(merge)
    app.command()(conflicts)
    app.command()(pr)
