"""Tables and small formatting helpers shared by the commands."""

from __future__ import annotations

import json
import time
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)

STATE_STYLE = {
    "queued": "dim",
    "starting": "cyan",
    "running": "bold cyan",
    "waiting": "yellow",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def compact(number: int) -> str:
    """1234 -> 1.2k, 2500000 -> 2.5M: tables stay narrow."""
    if number < 1000:
        return str(number)
    if number < 1_000_000:
        return f"{number / 1000:.1f}k"
    return f"{number / 1_000_000:.1f}M"


def megabytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 1_048_576:.0f}M"


def runtime_of(worker: dict[str, Any]) -> float | None:
    start = worker.get("started_at")
    if not start:
        return None
    return float((worker.get("ended_at") or time.time()) - start)


def workers_table(workers: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(
        title=title,
        expand=False,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    longest = max((len(w["name"]) for w in workers), default=4)
    table.add_column("name", no_wrap=True, min_width=longest)
    table.add_column("agent", no_wrap=True)
    table.add_column("state", no_wrap=True, min_width=9)
    for column in ("outcome", "cpu", "ram", "runtime", "tokens", "cost", "batch"):
        table.add_column(
            column, justify="right" if column in ("cpu", "ram", "tokens", "cost") else "left"
        )
    for w in workers:
        state = w["state"]
        cpu = w.get("cpu_percent")
        table.add_row(
            w["name"],
            w["agent"],
            f"[{STATE_STYLE.get(state, '')}]{state}[/]",
            w.get("outcome") or "",
            "-" if cpu is None else f"{cpu:.0f}%",
            megabytes(w.get("rss_bytes")),
            duration(runtime_of(w)),
            compact(w["input_tokens"] + w["output_tokens"]),
            f"${w['cost_usd']:.4f}",
            w.get("batch") or "",
        )
    return table
