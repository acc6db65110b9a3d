"""`fleet doctor`: every prerequisite checked, each problem with its fix."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from flotilla.cli.context import CliContext
from flotilla.config.loader import validate_config
from flotilla.counters import count
from flotilla.domain.errors import FlotillaError
from flotilla.executors.registry import get_executor, kinds

# Where each agent CLI keeps credentials: env variables, or files under $HOME.
CREDENTIALS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "claude": (("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"), (".claude/.credentials.json",)),
    "codex": (("OPENAI_API_KEY", "CODEX_API_KEY"), (".codex/auth.json",)),
    "gemini": (("GEMINI_API_KEY", "GOOGLE_API_KEY"), (".gemini/oauth_creds.json",)),
}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # a problem that does not stop Flotilla from working


def _version(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        count("doctor.version_probe_failed")
        return None
    text = (proc.stdout or proc.stderr).strip().splitlines()
    return text[0] if proc.returncode == 0 and text else None


def _tool(name: str, fix: str) -> Check:
    path = shutil.which(name)
    if path is None:
        return Check(name, False, "not found on PATH", fix)
    return Check(name, True, _version([path, "-V" if name == "tmux" else "--version"]) or path)


def _agent(kind: str, env: dict[str, str]) -> list[Check]:
    executor = get_executor(kind)
    if not executor.default_binary or kind in ("shell", "scripted"):
        return []
    path = shutil.which(executor.default_binary, path=env.get("PATH"))
    if path is None:
        return [
            Check(
                f"agent {kind}",
                False,
                f"'{executor.default_binary}' not on PATH",
                executor.install_hint,
                warning=True,
            )
        ]
    checks = [Check(f"agent {kind}", True, _version([path, "--version"]) or path)]
    names, files = CREDENTIALS.get(kind, ((), ()))
    home = Path(env.get("HOME", str(Path.home())))
    found = [n for n in names if env.get(n)] + [f for f in files if (home / f).exists()]
    checks.append(
        Check(
            f"credentials {kind}",
            bool(found),
            f"found {', '.join(found)}" if found else "none found",
            f"set {' or '.join(names)}, or log in with `{executor.default_binary}`",
            warning=True,
        )
    )
    return checks


def run_checks(ctx: CliContext) -> list[Check]:
    checks = [
        _tool("git", "apt-get install git"),
        _tool("tmux", "apt-get install tmux (needed for --interactive)"),
    ]
    for kind in kinds():
        checks.extend(_agent(kind, ctx.env))
    try:
        project = ctx.project()
        problems = validate_config(project, ctx.env)
        checks.append(
            Check(
                "config",
                not problems,
                "valid" if not problems else "; ".join(problems),
                "edit the file named, or `fleet config --validate`",
            )
        )
    except FlotillaError as exc:
        count("doctor.no_project")
        checks.append(
            Check("project", False, str(exc), "run inside a git repository", warning=True)
        )
    client = ctx.client
    if client.is_running():
        health = client.call("GET", "/health")
        store = health["store"]
        checks.append(Check("daemon", True, f"running (pid {client.daemon_pid()})"))
        checks.append(
            Check(
                "store", store["reachable"], store["url"], "check FLOTILLA_DATABASE_URL / store.url"
            )
        )
    else:
        checks.append(Check("daemon", True, "not running (starts on demand)", warning=True))
    return checks
