"""Commands that bring work back: merge (a worker, a workflow stage or a batch), conflicts, pr.

Exit codes as everywhere: 2 for bad input (nothing done), 1 when a merge
conflicts or a push fails; `merge --all` and `merge STAGE` also exit 1 when
any of their workers was not merged because of a conflict (or, for --all,
failing tests), after printing the whole report.
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
    name: str | None = typer.Argument(
        None,
        metavar="NAME|STAGE|WORKFLOW/STAGE",
        help="A worker, or a workflow stage: STAGE (in the newest workflow that has one) or "
        "WORKFLOW/STAGE (an id or unique prefix). A worker's name wins over a stage's.",
    ),
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
    """Merge a worker's branch, or a workflow stage's result, into the target.

    Uncommitted work is committed first. A conflict aborts cleanly: the target
    stays exactly as it was, and the conflicting files are listed.

    A stage must have succeeded; its result is a ranked stage's winner, else
    each of its workers that changed files (an inherit stage shares its
    upstream's branch, so either brings that branch). A stage that changed no
    files has nothing to merge: said so, exit 0. List a workflow's stages with
    `fleet workflow status ID`.

    With --all BATCH, the project's test_command runs after each merge and a
    merge that breaks it is undone and reported.
    """
    strategy = _strategy(squash, rebase, ff_only)
    if (name is None) == (all_batch is None):
        raise UsageError(
            "name one worker or stage (fleet merge NAME|STAGE) or a batch (fleet merge --all BATCH)"
        )
    if order is not None and all_batch is None:
        raise UsageError("--order only applies to --all BATCH")
    if order is not None and order not in ORDERS:
        raise UsageError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}")
    if all_batch is not None:
        _merge_batch(all_batch, into, strategy, order or "seq")
        return
    body = {"ref": name, "into": into, "strategy": strategy}
    data = STATE.client.call("POST", "/merge", params=STATE.params(), json=body)
    if STATE.json_output:
        print_json(data)
    elif data["kind"] == "worker":
        _print_merged(data)
    else:
        _print_stage(data)
    if data.get("failed"):
        raise typer.Exit(1)


def _print_merged(data: dict[str, Any]) -> None:
    if not data["changed"]:
        console.print(
            f"nothing to merge: {data['branch']} is already in {data['into']}", highlight=False
        )
        return
    files = data["files"]
    console.print(
        f"[green]merged[/] {data['name']} ({data['branch']}) into {data['into']} "
        f"as {data['commit'][:12]} ({data['strategy']}, {len(files)} "
        f"file{'s' if len(files) != 1 else ''})",
        highlight=False,
        soft_wrap=True,
    )


def _print_stage(data: dict[str, Any]) -> None:
    where = f"stage {data['stage']} of workflow {data['workflow']}"
    if not data["targets"]:
        console.print(f"nothing to merge: {where} changed no files", highlight=False)
        return
    for merged in data["merged"]:
        _print_merged(merged)
    for failed in data["failed"]:
        console.print(
            f"[red]not merged[/] {failed['name']}: {failed['error']}",
            highlight=False,
            soft_wrap=True,
        )
    total = len(data["targets"])
    console.print(
        f"merged {len(data['merged'])} of {total} worker{'s' if total != 1 else ''} "
        f"of {where} into {data['into']}",
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
