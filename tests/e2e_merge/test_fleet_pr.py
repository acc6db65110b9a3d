"""`fleet pr` against a fake GitHub REST API on 127.0.0.1 and a bare repository as origin."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import Fleet, git
from merge_support import COMMIT_AND_LEAVE, scripted, status

from merging.fake_github_api import FakeGitHub, fake_github


@pytest.fixture
def api() -> Iterator[FakeGitHub]:
    with fake_github() as state:
        yield state


def no_gh(tmp_path: Path) -> Path:
    """A `gh` that is not logged in, first on PATH: the REST path is taken on any machine."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text("#!/bin/sh\necho 'You are not logged into any GitHub hosts.' >&2\nexit 1\n")
    gh.chmod(0o755)
    return bin_dir


def test_pr_pushes_the_branch_and_opens_it_with_the_result(
    fleet: Fleet, api: FakeGitHub, tmp_path: Path
) -> None:
    scripted(fleet, COMMIT_AND_LEAVE)
    fleet.run("create", "feat", "-p", "add a feature")
    worker = fleet.wait_terminal("feat")["feat"]
    worktree = Path(worker["worktree"])
    env = {
        "PATH": os.pathsep.join([str(no_gh(tmp_path)), os.environ.get("PATH", "/usr/bin:/bin")]),
        "GITHUB_API_URL": api.url,
        "GITHUB_TOKEN": api.token,
        "GITHUB_REPOSITORY": "acme/widgets",  # the bare remote's URL names no GitHub repo
    }

    missing = fleet.run("pr", "feat", env=env, check=False)
    assert missing.returncode == 2, missing.stderr
    assert "no remote 'origin' is configured" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    assert "?? notes.md" in status(worktree) and not api.requests  # nothing started

    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(fleet.repo, "remote", "add", "origin", str(bare))
    opened = fleet.json("pr", "feat", "--draft", env=env)

    assert opened["via"] == "rest" and opened["number"] == 1
    assert opened["url"] == "https://github.com/acme/widgets/pull/1"
    pushed = git(bare, "ls-remote", str(bare), "refs/heads/flotilla/feat").split()
    assert pushed and pushed[0] == git(fleet.repo, "rev-parse", "flotilla/feat").strip()
    assert git(bare, "show", "flotilla/feat:notes.md") == "uncommitted\n"  # leftover committed
    [request] = api.requests
    assert request.path == "/repos/acme/widgets/pulls"
    assert request.headers["authorization"] == f"Bearer {api.token}"
    body = request.body
    assert body["title"] == "Added the feature."
    assert body["head"] == "flotilla/feat" and body["base"] == "main" and body["draft"] is True
    assert "Added the feature." in body["body"]
    assert "`feature.txt`" in body["body"] and "`notes.md`" in body["body"]

    again = fleet.run("pr", "feat", env=env, check=False)  # GitHub: one PR per head
    assert again.returncode == 1 and "already exists" in again.stderr
