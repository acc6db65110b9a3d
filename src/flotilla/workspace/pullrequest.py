"""Opening a pull request for a worker's branch: push, then `gh` or GitHub's REST API.

`gh` is used when it is installed and authenticated (it knows the user's
hosts and credentials); otherwise the REST API with a token from the
environment. Everything that can be checked is checked before the push, so
bad input (no remote, no token, no such branch) starts nothing. Every command
is an argv list: titles and bodies written by agents never meet a shell.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from flotilla.counters import count
from flotilla.domain.errors import OperationFailed, UsageError
from flotilla.workspace import _git
from flotilla.workspace.errors import GitFailed
from flotilla.workspace.github import DEFAULT_API_URL, GitHubClient, GitHubRepo, parse_remote_url
from flotilla.workspace.merging import current_branch, first_line, require_branch

GH_AUTH_TIMEOUT_S = 30.0
GH_CREATE_TIMEOUT_S = 120.0
TOKEN_VARS = ("GITHUB_TOKEN", "GH_TOKEN")
_PR_NUMBER = re.compile(r"/pull/(\d+)")


class NoRemote(UsageError):
    """The repository has no remote of that name."""


class RemoteUnreachable(UsageError):
    """The push could not reach the remote (wrong URL, network, credentials)."""


@dataclass(frozen=True)
class PullRequestResult:
    url: str
    number: int | None  # None only if `gh` printed a URL we could not read a number from
    via: Literal["gh", "rest"]


def remote_url(repo: Path, remote: str) -> str:
    if not remote or remote.startswith("-") or any(c in remote for c in " \0\n"):
        raise UsageError(f"{remote!r} is not a valid remote name: give e.g. origin")
    proc = _git.run(repo, ["remote", "get-url", remote], ok_codes=(0, 2, 128))
    url = _git.decode(proc.stdout).strip()
    if proc.returncode != 0 or not url:
        raise NoRemote(
            f"no remote {remote!r} is configured: add one with `git remote add {remote} URL`"
        )
    return url


def _github_repo(url: str, env: Mapping[str, str]) -> GitHubRepo | None:
    found = parse_remote_url(url)
    if found is not None:
        return found
    slug = env.get("GITHUB_REPOSITORY", "")  # owner/repo, as GitHub Actions sets it
    owner, _, name = slug.partition("/")
    if owner and name and "/" not in name:
        return GitHubRepo("github.com", owner, name)
    return None


def gh_ready(env: Mapping[str, str], host: str | None) -> str | None:
    """The path of an installed, authenticated `gh`, or None."""
    gh = shutil.which("gh", path=env.get("PATH", os.defpath))
    if gh is None:
        return None
    argv = [gh, "auth", "status", *(["--hostname", host] if host else [])]
    try:
        proc = subprocess.run(
            argv,
            env=_gh_env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GH_AUTH_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        count("workspace.pr.gh_auth_status")
        return None
    return gh if proc.returncode == 0 else None


def _gh_env(env: Mapping[str, str]) -> dict[str, str]:
    out = dict(env)
    out.update(GH_PROMPT_DISABLED="1", GH_NO_UPDATE_NOTIFIER="1", NO_COLOR="1")
    return out


def _token(env: Mapping[str, str]) -> str:
    for var in TOKEN_VARS:
        if env.get(var, "").strip():
            return env[var].strip()
    raise UsageError(
        "no GitHub token: set GITHUB_TOKEN (or GH_TOKEN) to a token allowed to open "
        "pull requests, or install `gh` and run `gh auth login`"
    )


def _push_env(repo: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Never prompt, and give up on an unanswering ssh host instead of hanging."""
    if env.get("GIT_SSH_COMMAND") or env.get("GIT_SSH"):
        return {}
    if _git.succeeds(repo, ["config", "--get", "core.sshCommand"]):
        return {}
    return {"GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=20"}


def push_branch(repo: Path, remote: str, branch: str, env: Mapping[str, str]) -> None:
    """`git push REMOTE BRANCH`; RemoteUnreachable or OperationFailed with git's message."""
    refspec = f"refs/heads/{branch}:refs/heads/{branch}"
    args = [
        "-c",
        "http.lowSpeedLimit=1",  # a stalled https push fails after a minute
        "-c",
        "http.lowSpeedTime=60",
        "push",
        "--quiet",
        remote,
        refspec,
    ]
    try:
        _git.run(repo, args, env=_push_env(repo, env))
    except GitFailed as exc:
        reason = first_line(exc.stderr) or str(exc)
        if "rejected" in exc.stderr or "non-fast-forward" in exc.stderr:
            raise OperationFailed(
                f"the push of {branch!r} to {remote!r} was rejected: {reason} "
                "(the remote branch has other commits)"
            ) from exc
        raise RemoteUnreachable(f"cannot reach remote {remote!r}: {reason}") from exc


def _create_with_gh(
    gh: str,
    repo: Path,
    target: GitHubRepo | None,
    *,
    branch: str,
    base: str,
    title: str,
    body: str,
    draft: bool,
    env: Mapping[str, str],
) -> PullRequestResult:
    argv = [gh, "pr", "create", "--title", title, "--body", body, "--base", base, "--head", branch]
    if target is not None:
        prefix = "" if target.host == "github.com" else f"{target.host}/"
        argv += ["--repo", f"{prefix}{target.slug}"]
    if draft:
        argv.append("--draft")
    try:
        proc = subprocess.run(
            argv,
            cwd=repo,
            env=_gh_env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=GH_CREATE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OperationFailed(f"`gh pr create` did not run to the end: {exc}") from exc
    if proc.returncode != 0:
        reason = first_line(proc.stderr) or first_line(proc.stdout) or f"exit {proc.returncode}"
        raise OperationFailed(f"`gh pr create` failed: {reason}")
    urls = [w for w in proc.stdout.split() if w.startswith(("https://", "http://"))]
    if not urls:
        raise OperationFailed(f"`gh pr create` printed no pull request URL: {proc.stdout[:200]}")
    match = _PR_NUMBER.search(urls[-1])
    return PullRequestResult(urls[-1], int(match[1]) if match else None, "gh")


def open_pull_request(
    repo: Path,
    branch: str,
    title: str,
    body: str,
    base: str | None = None,
    *,
    remote: str = "origin",
    env: Mapping[str, str] | None = None,
    draft: bool = False,
) -> PullRequestResult:
    """Push `branch` to `remote` and open a pull request into `base`.

    `base` defaults to the main worktree's current branch. `env` (default:
    this process's environment) is where PATH (to find `gh`), GITHUB_TOKEN /
    GH_TOKEN, GITHUB_API_URL and GITHUB_REPOSITORY are read, and `gh`'s
    environment.
    """
    repo = Path(repo)
    env = dict(os.environ if env is None else env)
    if not title.strip():
        raise UsageError("a pull request needs a title: give one")
    require_branch(repo, branch)
    base = base or current_branch(repo)
    if base == branch:
        raise UsageError(f"branch {branch!r} cannot be its own base: give another base branch")
    url = remote_url(repo, remote)
    target = _github_repo(url, env)
    gh = gh_ready(env, target.host if target else None)
    if gh is not None:
        push_branch(repo, remote, branch, env)
        return _create_with_gh(
            gh,
            repo,
            target,
            branch=branch,
            base=base,
            title=title,
            body=body,
            draft=draft,
            env=env,
        )
    token = _token(env)
    if target is None:
        raise UsageError(
            f"cannot tell the GitHub repository from remote {remote!r} ({url}): "
            "set GITHUB_REPOSITORY=owner/repo"
        )
    push_branch(repo, remote, branch, env)
    with GitHubClient(token, env.get("GITHUB_API_URL") or DEFAULT_API_URL) as client:
        created = client.create_pull(
            target, head=branch, base=base, title=title, body=body, draft=draft
        )
    return PullRequestResult(created.url, created.number, "rest")


def _title_from(result: Mapping[str, Any]) -> str:
    for text in (str(result.get("summary") or ""), *(result.get("commits") or [])):
        for line in str(text).splitlines():
            line = line.strip().lstrip("#").strip()
            if not line:
                continue
            if re.fullmatch(r"[0-9a-f]{7,40} .+", line):  # "sha subject" from commits
                line = line.split(" ", 1)[1]
            return line if len(line) <= 72 else line[:71].rstrip() + "…"
    return "Changes by a Flotilla worker"


def _tests_lines(tests: Any) -> list[str]:
    if not isinstance(tests, Mapping):
        return ["Not run."]
    code = tests.get("exit_code")
    verdict = "passed" if code == 0 else f"failed (exit code {code})"
    counts = [f"{tests[k]} {k}" for k in ("passed", "failed") if isinstance(tests.get(k), int)]
    line = f"`{tests.get('command', '?')}`: {verdict}"
    return [line + (f", {', '.join(counts)}" if counts else "") + "."]


def pr_title_and_body(result: Mapping[str, Any]) -> tuple[str, str]:
    """A title and a Markdown body from a worker's result dict (Result.to_dict()).

    Facts are labelled by where they come from: the agent's own summary as
    such, files from git, test results from Flotilla's run of the tests.
    """
    title = _title_from(result)
    summary = str(result.get("summary") or "").strip() or "(the agent gave no summary)"
    body = [
        "## Summary (the agent's own words)",
        "",
        summary,
        "",
        "## Files changed (from git)",
        "",
    ]
    files = [f for f in result.get("files") or [] if isinstance(f, Mapping)]
    for f in files:
        stat = f"+{f.get('insertions', 0)} -{f.get('deletions', 0)}"
        body.append(f"- `{f.get('path', '?')}` ({f.get('status', 'modified')}, {stat})")
    if files:
        body += [
            "",
            f"{len(files)} file{'s' if len(files) != 1 else ''} changed, "
            f"+{result.get('insertions', 0)} -{result.get('deletions', 0)}.",
        ]
    else:
        body.append("No files changed.")
    body += ["", "## Tests (run by Flotilla)", "", *_tests_lines(result.get("tests"))]
    commits = [str(c) for c in result.get("commits") or []]
    if commits:
        body += ["", "## Commits", "", *(f"- {c}" for c in commits)]
    body += ["", "---", "Opened by Flotilla."]
    return title, "\n".join(body) + "\n"
