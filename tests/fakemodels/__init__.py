"""Fake model API servers for tests: the only fake between Flotilla and a real agent CLI.

with fake_server("claude", Script.write_then_say(path, "hi\\n")) as fake:
    cli = cli_env("claude", tmp_path / "home", fake.base_url)
    ...  # run the real CLI with cli.env; inspect fake.model_calls()
"""

from __future__ import annotations

from collections.abc import Callable

from .anthropic import AnthropicProvider, fake_anthropic
from .clienv import CliEnv, bin_dir, cli_env, launcher, missing_reason
from .gemini import GeminiProvider, fake_gemini
from .openai import OpenAIProvider, fake_openai
from .script import FinalText, Mode, Request, Script, Step, WriteFile
from .server import FakeModelServer, Provider

_PROVIDERS: dict[str, Callable[[Script], Provider]] = {
    "claude": lambda script: AnthropicProvider(),
    "codex": lambda script: OpenAIProvider(),
    "gemini": lambda script: GeminiProvider(script.retry_after),
}


def fake_server(kind: str, script: Script) -> FakeModelServer:
    """The fake model API that the agent CLI `kind` (claude, codex, gemini) talks to."""
    provider = _PROVIDERS.get(kind)
    if provider is None:
        raise ValueError(f"no fake model API for {kind!r}: choose one of {', '.join(_PROVIDERS)}")
    return FakeModelServer(provider(script), script)


__all__ = [
    "AnthropicProvider",
    "CliEnv",
    "FakeModelServer",
    "FinalText",
    "GeminiProvider",
    "Mode",
    "OpenAIProvider",
    "Provider",
    "Request",
    "Script",
    "Step",
    "WriteFile",
    "bin_dir",
    "cli_env",
    "fake_anthropic",
    "fake_gemini",
    "fake_openai",
    "fake_server",
    "launcher",
    "missing_reason",
]
