"""Support for running a workflow across several real agent CLIs, each on its own fake API.

Two things the single-worker helpers (realfleet) do not cover:

- a project config with *several* agents, each pointed at its own fake model server;
- one fake server answering *several* runs of the same CLI with different scripts. The
  fake picks a step by how many model turns a conversation holds, so a second, fresh
  session of the same CLI (a later workflow stage) would replay the first one's script.
  `RoutedProvider` picks the script by a marker in the request instead (text that only
  that stage's prompt holds), then answers as the wrapped provider would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e_support import Fleet

from fakemodels import (
    AnthropicProvider,
    FakeModelServer,
    OpenAIProvider,
    Provider,
    Request,
    Script,
    Step,
    cli_env,
)
from fakemodels.clienv import MODELS
from fakemodels.server import Answer

# The price put in config for codex, which prints no cost (claude prints its own).
CODEX_PRICE = (3.0, 15.0)  # dollars per million input, output tokens


@dataclass(frozen=True)
class Route:
    """Requests whose body contains `marker` get `script` ("" matches every request)."""

    marker: str
    script: Script


class RoutedProvider:
    """A provider whose script is chosen per request, by the first route that matches."""

    def __init__(self, base: Provider, routes: Sequence[Route]) -> None:
        self.base = base
        self.routes = tuple(routes)
        self.name = base.name

    def route(self, body: Any) -> Route:
        text = json.dumps(body)
        for candidate in self.routes:
            if candidate.marker in text:
                return candidate
        raise AssertionError(f"no route of the fake {self.name} matches {text[:300]!r}")

    def is_model_call(self, method: str, path: str) -> bool:
        return self.base.is_model_call(method, path)

    def model_turns(self, body: Any) -> int:
        return self.base.model_turns(body)

    def answer(self, step: Step, turn: int, body: Any, path: str) -> Answer:
        # `step` came from the server's own (empty) script: the route's script decides.
        return self.base.answer(self.route(body).script.step(turn), turn, body, path)

    def error_body(self, status: int) -> dict[str, Any]:
        return self.base.error_body(status)

    def other(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        return self.base.other(method, path, body)


_PROVIDERS: dict[str, type[AnthropicProvider] | type[OpenAIProvider]] = {
    "claude": AnthropicProvider,
    "codex": OpenAIProvider,
}


@contextmanager
def routed_servers(routes: Mapping[str, Sequence[Route]]) -> Iterator[dict[str, FakeModelServer]]:
    """One started fake model server per agent kind, answering by `routes[kind]`."""
    with ExitStack() as stack:
        servers = {
            kind: stack.enter_context(
                FakeModelServer(RoutedProvider(_PROVIDERS[kind](), kind_routes), Script(()))
            )
            for kind, kind_routes in routes.items()
        }
        yield servers


def calls_with(server: FakeModelServer, marker: str) -> list[Request]:
    """The model calls whose body holds `marker` (one stage's conversation)."""
    return [r for r in server.model_calls() if marker in json.dumps(r.body)]


def user_text(request: Request) -> str:
    """The text of the user's messages in a model call (Anthropic or OpenAI Responses),
    without the CLI's system prompt or tool definitions: what the prompt put there."""
    body = request.body if isinstance(request.body, dict) else {}
    texts: list[str] = []
    for message in [*body.get("messages", ()), *body.get("input", ())]:
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                texts.append(block["text"])
    return "\n".join(texts)


def configure_agents(fleet: Fleet, servers: dict[str, FakeModelServer], default: str) -> Path:
    """`.flotilla/config.toml` with one `[agents.<kind>]` per server; the worktree root."""
    root = fleet.repo.parent / "worktrees"
    lines = [
        "[project]",
        f"default_agent = {json.dumps(default)}",
        f"worktree_root = {json.dumps(str(root))}",
        "",
        "[limits]",
        "timeout_s = 120.0",
        "",
        "[retry]",
        "max_retries = 0",
    ]
    for kind, server in sorted(servers.items()):
        cli = cli_env(kind, fleet.repo.parent / f"{kind}-home", server.base_url, max_attempts=1)
        lines += [
            "",
            f"[agents.{kind}]",
            f"model = {json.dumps(MODELS[kind])}",
            f"extra_flags = [{', '.join(json.dumps(f) for f in cli.extra_flags)}]",
            "",
            f"[agents.{kind}.env]",
            *(f"{name} = {json.dumps(value)}" for name, value in sorted(cli.env.items())),
        ]
    if "codex" in servers:
        lines += [
            "",
            f"[prices.{json.dumps(MODELS['codex'])}]",
            f"input_per_mtok = {CODEX_PRICE[0]!r}",
            f"output_per_mtok = {CODEX_PRICE[1]!r}",
        ]
    folder = fleet.repo / ".flotilla"
    folder.mkdir(exist_ok=True)
    (folder / "config.toml").write_text("\n".join(lines) + "\n")
    return root


def codex_cost(tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * CODEX_PRICE[0] + tokens_out * CODEX_PRICE[1]) / 1_000_000


def describe_workflow(fleet: Fleet, data: dict[str, Any]) -> str:
    """What to show when a workflow assertion fails: its status and each worker's output."""
    parts = [json.dumps(data, indent=1)[-6000:]]
    for stage in data.get("stages", []):
        for worker in stage.get("workers", []):
            name = worker["name"]
            raw = fleet.run("logs", name, "--raw", check=False).stdout[-2500:]
            parts.append(f"--- {name} raw output:\n{raw}")
            shown = fleet.run("--json", "list", check=False).stdout
            run_dirs = [w.get("run_dir") for w in json.loads(shown or "[]") if w["name"] == name]
            for run_dir in filter(None, run_dirs):
                for path in sorted(Path(run_dir).glob("attempt-*/stderr")):
                    parts.append(f"--- {path}:\n{path.read_text(errors='replace')[-2000:]}")
    return "\n".join(parts)
