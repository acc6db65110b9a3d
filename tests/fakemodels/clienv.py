"""One place that knows how to point each real agent CLI at a fake model server.

`cli_env(kind, home, base_url)` returns the environment (a complete one: nothing of the
test process leaks in, so a developer's real API keys are never used) and the extra
argv flags a run needs. Tests that drive the CLIs directly and tests that go through
Flotilla's executors (`AgentSettings(env=..., extra_flags=...)`) both use it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BIN = Path.home() / ".cache" / "flotilla" / "npm" / "node_modules" / ".bin"
KINDS = ("claude", "codex", "gemini")
MODELS = {"claude": "claude-sonnet-4-5", "codex": "gpt-5.5", "gemini": "gemini-2.5-pro"}


@dataclass(frozen=True)
class CliEnv:
    env: dict[str, str]  # the whole environment of the CLI process
    extra_flags: tuple[str, ...]  # put before the prompt (codex: the provider config)
    home: Path


def bin_dir() -> Path:
    """Where the launchers are: $FLOTILLA_CLI_BIN, else the default npm cache."""
    configured = os.environ.get("FLOTILLA_CLI_BIN")
    return Path(configured) if configured else DEFAULT_BIN


def launcher(kind: str) -> Path | None:
    """The CLI's launcher, or None when it is not installed."""
    path = bin_dir() / kind
    return path if path.exists() and os.access(path, os.X_OK) else None


def missing_reason(kind: str) -> str | None:
    """Why `kind` cannot run here (for pytest.skip), or None when it can."""
    if launcher(kind) is None:
        return (
            f"{kind} launcher not found in {bin_dir()}: run scripts/install-agent-clis.sh "
            "or set FLOTILLA_CLI_BIN"
        )
    if shutil.which("node") is None:
        return "node not found in PATH (the agent CLIs need Node.js >= 20)"
    return None


def cli_env(kind: str, home: Path, base_url: str, max_attempts: int = 1) -> CliEnv:
    """Create `home` (HOME, TMPDIR, the CLI's config) and return the run's env and flags.

    `max_attempts` caps the CLI's own retries of a failed model call (1: no retry;
    codex has no retries at all in tests).
    """
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    node = shutil.which("node")
    path_dirs = [str(bin_dir())]
    if node:
        path_dirs.append(str(Path(node).parent))
    path_dirs += ["/usr/local/bin", "/usr/bin", "/bin"]
    env = {
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "PATH": os.pathsep.join(dict.fromkeys(path_dirs)),
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
        "GIT_AUTHOR_NAME": "Fake",
        "GIT_AUTHOR_EMAIL": "fake@example.invalid",
        "GIT_COMMITTER_NAME": "Fake",
        "GIT_COMMITTER_EMAIL": "fake@example.invalid",
    }
    if kind == "claude":
        env.update(_claude(base_url, max_attempts))
        return CliEnv(env, (), home)
    if kind == "codex":
        env.update(_codex(home))
        return CliEnv(env, _codex_flags(base_url), home)
    if kind == "gemini":
        env.update(_gemini(home, base_url, max_attempts))
        return CliEnv(env, (), home)
    raise ValueError(f"unknown agent CLI {kind!r}: choose one of {', '.join(KINDS)}")


def _claude(base_url: str, max_attempts: int) -> dict[str, str]:
    return {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "sk-ant-fake",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        # retries after the first attempt; 0 would mean the SDK default
        "CLAUDE_CODE_MAX_RETRIES": str(max(max_attempts - 1, 0)),
        "IS_SANDBOX": "1",  # lets --dangerously-skip-permissions run as root
    }


def _codex(home: Path) -> dict[str, str]:
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    return {"CODEX_HOME": str(codex_home), "OPENAI_API_KEY": "sk-fake"}


def _codex_flags(base_url: str) -> tuple[str, ...]:
    provider = (
        f'{{name="local",base_url="{base_url}/v1",env_key="OPENAI_API_KEY",'
        'wire_api="responses",request_max_retries=0,stream_max_retries=0}'
    )
    return ("-c", "model_provider=local", "-c", f"model_providers.local={provider}")


def _gemini(home: Path, base_url: str, max_attempts: int) -> dict[str, str]:
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"maxAttempts": max_attempts},
    }
    gemini_dir = home / ".gemini"
    gemini_dir.mkdir(parents=True, exist_ok=True)
    (gemini_dir / "settings.json").write_text(json.dumps(settings, indent=2))
    return {
        "GOOGLE_GEMINI_BASE_URL": base_url,
        "GEMINI_API_KEY": "fake-gemini-key",
        "GEMINI_CLI_NO_RELAUNCH": "true",
    }
