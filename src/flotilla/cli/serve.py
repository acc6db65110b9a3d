"""`fleet serve`, `fleet token`, `fleet api-key`: the daemon over TCP, and its credentials.

`fleet serve` is the daemon itself, in the foreground: the API on its Unix socket
(the CLI keeps using it) and on TCP. Auth is on unless `--no-auth`, which only
loopback allows. A background daemon of the same state home is stopped first
(its agents keep running and are re-adopted); a second `fleet serve` is refused.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from typing import TextIO

import typer

from flotilla.cli.render import console, print_json
from flotilla.cli.state import STATE
from flotilla.config.paths import socket_path, state_home
from flotilla.counters import count
from flotilla.domain.errors import OperationFailed, UsageError
from flotilla.domain.roles import parse_role
from flotilla.server.apikeys import ApiKeys
from flotilla.server.auth import DEFAULT_TEAM, DEFAULT_TTL_S, Authority

DEFAULT_PORT = 8855
TAKEOVER_TRIES = 3

api_key_app = typer.Typer(help="API keys: credentials bound to an agent, team and role.")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        count("serve.host_not_an_address")
        return False  # a name we would have to resolve: not known to be loopback


def check_bind(host: str, auth: bool) -> None:
    """Refuse, before anything starts, to open the fleet to a network without auth."""
    if not auth and not is_loopback(host):
        raise UsageError(
            f"--no-auth is only allowed on loopback, not on {host!r}: "
            "drop --no-auth (callers then need a token) or use --host 127.0.0.1"
        )


def _listen(host: str, port: int) -> tuple[socket.socket, str]:
    address = "127.0.0.1" if host == "localhost" else host
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        sock = socket.create_server((address, port), family=family)
    except OSError as exc:
        count("serve.bind_failed")
        raise OperationFailed(
            f"cannot listen on {address}:{port}: {exc.strerror or exc}; "
            "choose another --port (0 picks a free one)"
        ) from exc
    # Accepted connections inherit TCP_NODELAY; asyncio sets it only on sockets whose
    # proto is IPPROTO_TCP (create_server's is 0): without it each answer waits ~40 ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bound = sock.getsockname()[1]
    shown = f"[{address}]" if family == socket.AF_INET6 else address
    return sock, f"http://{shown}:{bound}"


def _refuse_if_serving() -> None:
    from flotilla.server import daemon

    info = daemon.running_info()
    if info.get("url"):
        raise OperationFailed(
            f"fleet serve is already running for this state home at {info['url']} "
            f"(pid {info.get('pid')}): stop it with `fleet daemon stop` first"
        )


def _take_lock() -> tuple[TextIO, bool]:
    """The daemon lock, stopping the background daemon that holds it; (lock, stopped one)."""
    from flotilla.server import daemon

    stopped = False
    for _ in range(TAKEOVER_TRIES):
        _refuse_if_serving()
        stopped = STATE.client.stop() or stopped
        lock = daemon.try_lock()
        if lock is not None:
            return lock, stopped
        time.sleep(0.5)  # a daemon still starting: it answers (and can be stopped) soon
    raise OperationFailed(
        "another flotilla daemon keeps holding this state home's lock: "
        "run `fleet daemon stop` and try again"
    )


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(
        DEFAULT_PORT, "--port", min=0, max=65535, help="TCP port (0: a free one)."
    ),
    auth: bool = typer.Option(
        True, "--auth/--no-auth", help="Require a token over TCP (--no-auth: loopback only)."
    ),
) -> None:
    """Run the daemon in the foreground, reachable over TCP too (Ctrl-C stops it; agents go on)."""
    check_bind(host, auth)
    from flotilla.server import daemon  # the whole daemon: only this command needs it

    daemon.setup_logging()
    home = state_home()
    env = dict(os.environ)
    authority = Authority.load(home, env) if auth else Authority.tolerant(home, env)
    authority.tcp_auth = auth
    lock = daemon.try_lock()
    if lock is None:
        _refuse_if_serving()  # before binding: "already running" says more than "port in use"
    sock, url = _listen(host, port)
    stopped = False
    if lock is None:
        lock, stopped = _take_lock()
    if stopped:
        console.print("stopped the background daemon (its agents keep running)")
    how = (
        f"auth on: POST {url}/auth with the secret from {authority.secret_origin}"
        if auth
        else "auth OFF: anyone who can reach this address is a coordinator"
    )
    print(f"serving {url} ({how}); local socket {socket_path()}", flush=True)
    raise typer.Exit(daemon.run_locked(lock, authority, tcp=sock, url=url))


def token(
    role: str = typer.Option(..., "--role", help="coordinator, team-lead, worker, monitor, merger"),
    agent: str = typer.Option("local", "--agent", help="The agent the token names."),
    team: str = typer.Option(DEFAULT_TEAM, "--team", help="The team the token names."),
    ttl: int = typer.Option(DEFAULT_TTL_S, "--ttl", min=1, help="Seconds (at most 24 h)."),
) -> None:
    """Print a token for the API over TCP (asked of the daemon on its local socket)."""
    body = {"agent": agent, "team": team, "role": parse_role(role).value, "ttl_s": ttl}
    answer = STATE.client.call("POST", "/auth", json=body)
    if STATE.json_output:
        print_json(answer)
    else:
        print(answer["token"])


@api_key_app.command("add")
def api_key_add(
    role: str = typer.Option(..., "--role", help="coordinator, team-lead, worker, monitor, merger"),
    agent: str = typer.Option(..., "--agent", help="The agent its tokens name."),
    team: str = typer.Option(DEFAULT_TEAM, "--team", help="The team its tokens name."),
) -> None:
    """Make a key; it is shown once (only its hash is kept)."""
    key, entry = ApiKeys.at(state_home(STATE.env)).add(agent, team, parse_role(role))
    if STATE.json_output:
        print_json({"key": key, "id": entry.id, "agent": agent, "team": team, "role": entry.role})
    else:
        console.print(f"api key {entry.id} ({entry.role}, {agent}@{team}); shown once:")
        print(key)


@api_key_app.command("list")
def api_key_list() -> None:
    """The keys (ids, agents, teams, roles; never the keys)."""
    entries = ApiKeys.at(state_home(STATE.env)).entries()
    rows = [{"id": e.id, "agent": e.agent, "team": e.team, "role": e.role} for e in entries]
    if STATE.json_output:
        print_json(rows)
        return
    for row in rows:
        console.print(f"{row['id']}  {row['role']:<12} {row['agent']}@{row['team']}")


@api_key_app.command("revoke")
def api_key_revoke(
    key_id: str = typer.Argument(..., help="The id `fleet api-key list` shows."),
) -> None:
    """Remove a key: it gets no new tokens (tokens it already got run out by themselves)."""
    entry = ApiKeys.at(state_home(STATE.env)).revoke(key_id)
    console.print(f"revoked {entry.id} ({entry.role}, {entry.agent}@{entry.team})")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(token)
    app.add_typer(api_key_app, name="api-key")
