"""How workflows look in the terminal: a live tree of stages, ranking tables, the list."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from flotilla.cli.render import compact, duration

STAGE_STYLE = {
    "pending": "dim",
    "ready": "cyan",
    "running": "bold cyan",
    "succeeded": "green",
    "failed": "red",
    "skipped": "dim italic",
    "cancelled": "magenta",
    "planned": "dim",
    "queued": "dim",
    "starting": "cyan",
    "waiting": "yellow",
}
MARK = {
    "succeeded": "✓",
    "failed": "✗",
    "cancelled": "■",
    "skipped": "↷",
    "running": "▶",
    "pending": "·",
}


# A worker in one of these states has a tmux session a person can attach to.
LIVE_WORKER_STATES = ("starting", "running", "waiting")


def _styled(state: str) -> str:
    return f"[{STAGE_STYLE.get(state, '')}]{state}[/]"


def _usage(item: dict[str, Any]) -> str:
    tokens = int(item.get("input_tokens") or 0) + int(item.get("output_tokens") or 0)
    return f"{compact(tokens)} tok  ${float(item.get('cost_usd') or 0):.4f}"


def _stage_line(stage: dict[str, Any]) -> Text:
    state = stage["state"]
    agents = ", ".join(stage["agents"])
    count = len(
        [
            w
            for w in stage["workers"]
            if w["role"] == "candidate" and w["attempt"] == stage["attempt"]
        ]
    )
    fan = f" x{count}" if count > 1 else ""
    if stage.get("interactive"):
        fan += " interactive"
    attempt = f"  attempt {stage['attempt']}" if stage["attempt"] > 1 else ""
    outcome = f" ({stage['outcome']})" if stage.get("outcome") else ""
    winner = f"  winner [bold]{stage['winner']}[/]" if stage.get("winner") else ""
    markup = (
        f"{MARK.get(state, '?')} [bold]{stage['name']}[/] [dim]{agents}{fan}[/]  "
        f"{_styled(state)}{outcome}  {duration(stage.get('elapsed_s'))}  {_usage(stage)}"
        f"{attempt}{winner}"
    )
    text = Text.from_markup(markup)
    if stage.get("error") and state in ("failed", "cancelled", "running"):
        text.append(f"\n  {stage['error']}", style="red" if state == "failed" else "dim")
    return text


def _worker_line(worker: dict[str, Any]) -> Text:
    state = worker["state"]
    outcome = f" ({worker['outcome']})" if worker.get("outcome") else ""
    role = " [dim]judge[/]" if worker["role"] == "judge" else ""
    part = f" [dim]part: {worker['part']}[/]" if worker.get("part") else ""
    return Text.from_markup(
        f"{worker['name']} [dim]{worker['agent']}[/]{role}  {_styled(state)}{outcome}  "
        f"{duration(worker.get('elapsed_s'))}  {_usage(worker)}{part}"
    )


def _attach_hint(worker: dict[str, Any]) -> Text | None:
    """How to reach a running interactive worker, and what ends it."""
    if not worker.get("tmux_session") or worker["state"] not in LIVE_WORKER_STATES:
        return None
    return Text(
        f"attach: fleet attach {worker['name']}  (tmux session {worker['tmux_session']}; "
        "the stage goes on when the agent exits)",
        style="yellow",
    )


def workflow_tree(data: dict[str, Any]) -> RenderableType:
    """The live view of `status --watch`: stages (and their workers), then a progress bar."""
    head = Text.from_markup(
        f"[bold]{data['name']}[/] [dim]{data['id']}[/]  {_styled(data['state'])}  "
        f"{duration(data.get('elapsed_s'))}  {_usage(data)}"
    )
    tree = Tree(head)
    for stage in data["stages"]:
        node = tree.add(_stage_line(stage))
        workers = [w for w in stage["workers"] if w["attempt"] == stage["attempt"]]
        if len(workers) > 1 or stage["attempt"] > 1:
            for worker in workers:
                node.add(_worker_line(worker))
        for worker in workers:
            hint = _attach_hint(worker)
            if hint is not None:
                node.add(hint)
        ranking = (data.get("ranking") or {}).get(stage["name"])
        if ranking:
            for row in ranking.get("rows", []):
                node.add(Text(f"{row['place']}. {row['name']}: {row['reason']}", style="dim"))
    progress = data["progress"]
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(progress["total"], 1), completed=progress["done"], width=40),
        Text(f"{progress['done']}/{progress['total']} stages"),
    )
    parts: list[RenderableType] = [tree, bar]
    if data.get("error"):
        parts.append(Text(data["error"], style="red" if data["state"] == "failed" else "yellow"))
    return Group(*parts)


def workflows_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for column in ("id", "name", "state", "runtime", "tokens", "cost", "winner"):
        table.add_column(column, justify="right" if column in ("tokens", "cost") else "left")
    for row in rows:
        table.add_row(
            row["id"],
            row["name"],
            _styled(row["state"]),
            duration(row.get("elapsed_s")),
            compact(int(row["input_tokens"]) + int(row["output_tokens"])),
            f"${row['cost_usd']:.4f}",
            row.get("winner") or "",
        )
    return table


def ranking_table(stage: str, record: dict[str, Any]) -> Table:
    table = Table(title=f"ranking of {stage}", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("place", justify="right")
    table.add_column("candidate")
    table.add_column("reason")
    for row in record.get("rows", []):
        table.add_row(str(row["place"]), row["name"], row["reason"])
    return table


def result_view(data: dict[str, Any]) -> RenderableType:
    parts: list[RenderableType] = [
        Text.from_markup(
            f"[bold]{data['name']}[/] [dim]{data['id']}[/]  "
            f"{_styled(data['state'])}  {_usage(data)}"
        )
    ]
    if data.get("error"):
        parts.append(Text(data["error"], style="red"))
    for name, stage in data["stages"].items():
        lines = [f"[bold]{name}[/]  {_styled(stage['state'])}"]
        if stage.get("outcome"):
            lines[0] += f" ({stage['outcome']})"
        if stage.get("winner"):
            lines[0] += f"  winner [bold]{stage['winner']}[/]"
        if stage.get("summary"):
            lines.append(stage["summary"].strip())
        if stage.get("files"):
            lines.append("files: " + ", ".join(stage["files"]))
        if stage.get("tests"):
            lines.append(stage["tests"])
        parts.append(Text.from_markup("\n".join(lines[:1])))
        if len(lines) > 1:
            parts.append(Text("\n".join(lines[1:])))
    for stage, record in (data.get("ranking") or {}).items():
        parts.append(ranking_table(stage, record))
    if data.get("winner"):
        parts.append(Text.from_markup(f"winner: [bold]{data['winner']}[/]"))
    for merged in data.get("merged") or []:
        what = "merged" if merged.get("changed") else "already in"
        parts.append(
            Text(f"{what} {merged['branch']} -> {merged['into']} ({str(merged['commit'])[:12]})")
        )
    return Group(*parts)
