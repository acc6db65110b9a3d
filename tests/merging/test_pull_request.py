from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_github_api import FakeGitHub, fake_github
from merging_helpers import add_worker, commit_file, git

from flotilla.domain import worker as dw
from flotilla.domain.errors import OperationFailed, UsageError
from flotilla.domain.states import Outcome
from flotilla.workspace.github import parse_remote_url
from flotilla.workspace.pullrequest import (
    NoRemote,
    RemoteUnreachable,
    open_pull_request,
    pr_title_and_body,
)

GITHUB_URL = "https://github.com/acme/widgets.git"
NASTY = "fix: $(touch PWNED) `touch PWNED2`; rm -rf \"$HOME\" && echo 'q' | cat > x"


@pytest.fixture
def api() -> Iterator[FakeGitHub]:
    with fake_github() as state:
        yield state


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", str(path))
    return path


@pytest.fixture
def no_gh_bin(tmp_path: Path) -> Path:
    """A PATH for `gh` lookups with no gh in it (whether or not this machine has one)."""
    path = tmp_path / "empty-bin"
    path.mkdir()
    return path


@pytest.fixture
def origin(repo: Path, bare: Path) -> Path:
    """origin's URL names GitHub; its push URL is the local bare repository."""
    git(repo, "remote", "add", "origin", GITHUB_URL)
    git(repo, "remote", "set-url", "--push", "origin", str(bare))
    return bare


def env_for(api: FakeGitHub, bin_dir: Path, token: str | None = "good-token") -> dict[str, str]:
    env = {"PATH": str(bin_dir), "GITHUB_API_URL": api.url, "HOME": os.environ["HOME"]}
    if token is not None:
        env["GITHUB_TOKEN"] = token
    return env


def remote_heads(bare: Path) -> dict[str, str]:
    out = git(bare, "ls-remote", str(bare))
    return {ref: sha for sha, ref in (line.split("\t") for line in out.splitlines())}


def worker_branch(repo: Path) -> tuple[str, str]:
    w = add_worker(repo, "w1")
    head = commit_file(w.path, "feature.py", "x = 1\n")
    return w.branch, head


def test_rest_path_pushes_and_opens_the_pull_request(
    repo: Path, origin: Path, api: FakeGitHub, no_gh_bin: Path, tmp_path: Path
) -> None:
    branch, head = worker_branch(repo)

    result = open_pull_request(
        repo, branch, NASTY, "body\nwith lines", "main", env=env_for(api, no_gh_bin)
    )

    assert result.via == "rest"
    assert result.number == 1
    assert result.url == "https://github.com/acme/widgets/pull/1"
    assert remote_heads(origin) == {f"refs/heads/{branch}": head}
    [request] = api.requests
    assert request.method == "POST"
    assert request.path == "/repos/acme/widgets/pulls"
    assert request.headers["authorization"] == "Bearer good-token"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.body == {
        "title": NASTY,
        "body": "body\nwith lines",
        "head": branch,
        "base": "main",
        "draft": False,
    }
    assert not list(repo.glob("PWNED*")) and not list(tmp_path.glob("PWNED*"))


def test_base_defaults_to_the_current_branch_and_gh_token_works(
    repo: Path, origin: Path, api: FakeGitHub, no_gh_bin: Path
) -> None:
    branch, _ = worker_branch(repo)
    env = env_for(api, no_gh_bin, token=None)
    env["GH_TOKEN"] = "good-token"
    result = open_pull_request(repo, branch, "title", "body", env=env)
    assert result.via == "rest"
    assert api.requests[0].body["base"] == "main"


def test_an_existing_pull_request_is_githubs_422_message(
    repo: Path, origin: Path, api: FakeGitHub, no_gh_bin: Path
) -> None:
    branch, _ = worker_branch(repo)
    env = env_for(api, no_gh_bin)
    open_pull_request(repo, branch, "t", "b", "main", env=env)
    with pytest.raises(OperationFailed, match=r"422.*A pull request already exists for acme:"):
        open_pull_request(repo, branch, "t", "b", "main", env=env)


def test_a_bad_token_is_githubs_401_message(
    repo: Path, origin: Path, api: FakeGitHub, no_gh_bin: Path
) -> None:
    branch, _ = worker_branch(repo)
    with pytest.raises(OperationFailed, match=r"\(401\): Bad credentials \(check GITHUB_TOKEN\)"):
        open_pull_request(repo, branch, "t", "b", "main", env=env_for(api, no_gh_bin, "wrong"))


def test_no_remote_is_a_clear_usage_error(repo: Path, api: FakeGitHub, no_gh_bin: Path) -> None:
    branch, _ = worker_branch(repo)
    with pytest.raises(NoRemote) as info:
        open_pull_request(repo, branch, "t", "b", "main", env=env_for(api, no_gh_bin))
    assert str(info.value) == (
        "no remote 'origin' is configured: add one with `git remote add origin URL`"
    )
    assert isinstance(info.value, UsageError)
    assert api.requests == []


def test_an_unreachable_remote_is_a_clear_usage_error(
    repo: Path, api: FakeGitHub, no_gh_bin: Path, tmp_path: Path
) -> None:
    git(repo, "remote", "add", "origin", GITHUB_URL)
    git(repo, "remote", "set-url", "--push", "origin", str(tmp_path / "no-such-remote.git"))
    branch, _ = worker_branch(repo)
    with pytest.raises(RemoteUnreachable, match=r"^cannot reach remote 'origin': .*no-such-remote"):
        open_pull_request(repo, branch, "t", "b", "main", env=env_for(api, no_gh_bin))
    assert api.requests == []


def test_a_missing_token_is_named_and_nothing_is_pushed(
    repo: Path, origin: Path, api: FakeGitHub, no_gh_bin: Path
) -> None:
    branch, _ = worker_branch(repo)
    with pytest.raises(UsageError, match="no GitHub token: set GITHUB_TOKEN"):
        open_pull_request(repo, branch, "t", "b", "main", env=env_for(api, no_gh_bin, None))
    assert remote_heads(origin) == {}
    assert api.requests == []


def test_a_remote_that_is_not_on_github_needs_github_repository(
    repo: Path, bare: Path, api: FakeGitHub, no_gh_bin: Path
) -> None:
    git(repo, "remote", "add", "origin", str(bare))
    branch, _ = worker_branch(repo)
    env = env_for(api, no_gh_bin)
    with pytest.raises(UsageError, match="set GITHUB_REPOSITORY=owner/repo"):
        open_pull_request(repo, branch, "t", "b", "main", env=env)
    env["GITHUB_REPOSITORY"] = "acme/other"
    assert open_pull_request(repo, branch, "t", "b", "main", env=env).via == "rest"
    assert api.requests[0].path == "/repos/acme/other/pulls"


def test_bad_input(repo: Path, origin: Path, api: FakeGitHub, no_gh_bin: Path) -> None:
    env = env_for(api, no_gh_bin)
    with pytest.raises(UsageError, match="branch 'fleet/ghost' does not exist"):
        open_pull_request(repo, "fleet/ghost", "t", "b", "main", env=env)
    with pytest.raises(UsageError, match="needs a title"):
        open_pull_request(repo, "main", "  ", "b", "main", env=env)
    with pytest.raises(UsageError, match="its own base"):
        open_pull_request(repo, "main", "t", "b", "main", env=env)
    assert api.requests == []


def fake_gh(bin_dir: Path, log: Path) -> None:
    """A stand-in `gh` at the process boundary: records its argv, answers like gh."""
    script = bin_dir / "gh"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "if sys.argv[1:3] == ['auth', 'status']:\n"
        "    sys.exit(0 if os.environ.get('FAKE_GH_AUTHED') == '1' else 1)\n"
        "if sys.argv[1:3] == ['pr', 'create']:\n"
        "    print('https://github.com/acme/widgets/pull/7')\n"
        "    sys.exit(0)\n"
        "sys.exit(2)\n"
    )
    script.chmod(0o755)


def gh_calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_gh_is_used_when_installed_and_authenticated(
    repo: Path, origin: Path, api: FakeGitHub, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "gh-bin"
    bin_dir.mkdir()
    log = tmp_path / "gh.log"
    fake_gh(bin_dir, log)
    branch, head = worker_branch(repo)
    env = env_for(api, bin_dir, token=None)
    env["FAKE_GH_AUTHED"] = "1"

    result = open_pull_request(repo, branch, NASTY, "the body", "main", env=env)

    assert (result.via, result.number, result.url) == (
        "gh",
        7,
        "https://github.com/acme/widgets/pull/7",
    )
    assert gh_calls(log) == [
        ["auth", "status", "--hostname", "github.com"],
        [
            "pr",
            "create",
            "--title",
            NASTY,
            "--body",
            "the body",
            "--base",
            "main",
            "--head",
            branch,
            "--repo",
            "acme/widgets",
        ],
    ]
    assert remote_heads(origin) == {f"refs/heads/{branch}": head}
    assert api.requests == []
    assert not list(repo.glob("PWNED*")) and not list(tmp_path.glob("PWNED*"))


def test_gh_that_is_not_authenticated_falls_back_to_rest(
    repo: Path, origin: Path, api: FakeGitHub, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "gh-bin"
    bin_dir.mkdir()
    log = tmp_path / "gh.log"
    fake_gh(bin_dir, log)
    branch, _ = worker_branch(repo)

    result = open_pull_request(repo, branch, "t", "b", "main", env=env_for(api, bin_dir))

    assert result.via == "rest"
    assert gh_calls(log) == [["auth", "status", "--hostname", "github.com"]]
    assert len(api.requests) == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme/widgets.git", ("github.com", "acme", "widgets")),
        ("https://github.com/acme/widgets", ("github.com", "acme", "widgets")),
        ("https://user:tok@github.com/acme/widgets.git/", ("github.com", "acme", "widgets")),
        ("git@github.com:acme/widgets.git", ("github.com", "acme", "widgets")),
        ("github.com:acme/widgets", ("github.com", "acme", "widgets")),
        ("ssh://git@github.com/acme/widgets.git", ("github.com", "acme", "widgets")),
        ("ssh://git@GHE.example.com:2222/acme/w.x.git", ("ghe.example.com", "acme", "w.x")),
        ("/srv/git/widgets.git", None),
        ("file:///srv/git/acme/widgets.git", None),
        ("https://github.com/acme", None),
        ("https://gitlab.com/group/sub/widgets.git", None),
    ],
)
def test_parse_remote_url(url: str, expected: tuple[str, str, str] | None) -> None:
    found = parse_remote_url(url)
    assert (None if found is None else (found.host, found.owner, found.name)) == expected


def test_title_and_body_from_a_worker_result() -> None:
    result = dw.Result(
        outcome=Outcome.SUCCESS,
        summary="# Add retry to the HTTP client\n\nRetries 429s with backoff.",
        files=[
            dw.FileChange("client.py", "modified", 10, 2),
            dw.FileChange("test_c.py", "added", 20),
        ],
        insertions=30,
        deletions=2,
        commits=["abc1234 add retry"],
        tests=dw.TestReport("pytest -q", 0, passed=12, failed=0),
    ).to_dict()

    title, body = pr_title_and_body(result)

    assert title == "Add retry to the HTTP client"
    assert "## Summary (the agent's own words)\n\n# Add retry" in body
    assert "- `client.py` (modified, +10 -2)" in body
    assert "- `test_c.py` (added, +20 -0)" in body
    assert "2 files changed, +30 -2." in body
    assert "## Tests (run by Flotilla)\n\n`pytest -q`: passed, 12 passed, 0 failed." in body
    assert "- abc1234 add retry" in body


def test_title_and_body_with_failing_tests_and_no_summary() -> None:
    result = dw.Result(
        outcome=Outcome.TESTS_FAILED,
        commits=["abc1234 " + "x" * 100],
        tests=dw.TestReport("npm test", 1),
    ).to_dict()
    title, body = pr_title_and_body(result)
    assert title == "x" * 71 + "…"
    assert "(the agent gave no summary)" in body
    assert "No files changed." in body
    assert "`npm test`: failed (exit code 1)." in body
    assert pr_title_and_body({})[0] == "Changes by a Flotilla worker"
    assert "Not run." in pr_title_and_body({})[1]
