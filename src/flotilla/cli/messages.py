"""Commands to talk to agents: send, broadcast, inbox.

The sender is the agent running the command (env FLOTILLA_WORKER, set for every agent
Flotilla starts), else `--from`, else "user". Reading your own inbox marks its
delivered messages read.
"""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.table import Table

from flotilla.cli.render import console, print_json
from flotilla.cli.state import STATE

PERSON = "user"
_STATE_STYLE = {
    "pending": "yellow",
    "delivering": "yellow",
    "delivered": "green",
    "read": "dim",
    "failed": "red",
}


def _me(sender: str | None) -> str:
    return sender or STATE.env.get("FLOTILLA_WORKER") or PERSON


def _explain(message: dict[str, Any]) -> str:
    state = message["state"]
    if state == "pending" and message.get("prompt_id"):
        return "pending: queued as the agent's next turn"
    if state == "pending":
        return "pending: the agent is not ready yet; delivered when it is"
    if state == "failed":
        return f"failed: {message.get('error')}"
    return str(state)


def _report_sent(reply: dict[str, Any]) -> None:
    sent = reply["messages"]
    if STATE.json_output:
        print_json(reply)
    else:
        for message in sent:
            style = _STATE_STYLE.get(message["state"], "")
            console.print(
                f"{message['id']} to {message['recipient']}: [{style}]{_explain(message)}[/]",
                highlight=False,
            )
    if any(m["state"] == "failed" for m in sent):
        raise typer.Exit(1)


def send(
    agent: str = typer.Argument(..., help="The agent (worker name) to send to."),
    message: str = typer.Argument(..., help="The message."),
    reply_to: str | None = typer.Option(None, "--reply-to", help="The id of the message answered."),
    sender: str | None = typer.Option(None, "--from", help="Send as this name (default: you)."),
) -> None:
    """Send a message to an agent: a headless one gets it as its next turn, an interactive
    one in its pane."""
    body = {"to": agent, "body": message, "sender": _me(sender), "reply_to": reply_to}
    reply = STATE.client.call("POST", "/messages", json={**STATE.params(), **body})
    _report_sent(reply)


def broadcast(
    team: str = typer.Argument(..., help="The team ('default' is every agent of the project)."),
    message: str = typer.Argument(..., help="The message."),
    sender: str | None = typer.Option(None, "--from", help="Send as this name (default: you)."),
) -> None:
    """Send a message to every running or queued agent of a team."""
    body = {"team": team, "body": message, "sender": _me(sender)}
    reply = STATE.client.call("POST", "/messages", json={**STATE.params(), **body})
    _report_sent(reply)


def inbox(
    agent: str = typer.Argument(..., help="Whose messages (a worker name, or 'user')."),
    unread: bool = typer.Option(False, "--unread", help="Only messages not read yet."),
    limit: int = typer.Option(200, "--limit", help="At most this many, the newest."),
) -> None:
    """An agent's messages, oldest first, with their delivery state."""
    params = STATE.params(unread=str(unread).lower(), limit=limit)
    found: list[dict[str, Any]] = STATE.client.call("GET", f"/inbox/{agent}", params=params)
    if _me(None) == agent:
        for message in found:
            if message["state"] == "delivered":
                message.update(STATE.client.call("POST", f"/messages/{message['id']}/read"))
    if STATE.json_output:
        print_json(found)
        return
    if not found:
        console.print(f"no {'unread ' if unread else ''}messages for {agent}", highlight=False)
        return
    table = Table(title=f"inbox of {agent}", title_justify="left")
    table.add_column("id", no_wrap=True, min_width=22)  # ids are what --reply-to takes
    for column in ("from", "kind", "state", "age"):
        table.add_column(column)
    table.add_column("message", overflow="fold")
    now = time.time()
    for message in found:
        style = _STATE_STYLE.get(message["state"], "")
        state = message["state"] + (f" ({message['error']})" if message.get("error") else "")
        first = message["body"].strip().splitlines()[0] if message["body"].strip() else ""
        table.add_row(
            message["id"],
            message["sender"],
            message["kind"] + (f" {message['team']}" if message.get("team") else ""),
            f"[{style}]{state}[/]",
            f"{max(0, int(now - message['created_at']))}s",
            first[:200],
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(send)
    app.command()(broadcast)
    app.command()(inbox)
