from __future__ import annotations

from pathlib import Path

import pytest
from workspace_helpers import GitRunner

from flotilla.domain.errors import UsageError
from flotilla.workspace import (
    BadRef,
    NotARepository,
    branch_exists,
    current_worktree_root,
    find_project,
    is_valid_branch_name,
    repo_has_commits,
    resolve_ref,
)


def test_find_project_from_root_and_subdir(repo: Path) -> None:
    assert find_project(repo) == repo.resolve()
    assert find_project(repo / "src") == repo.resolve()


def test_find_project_from_linked_worktree(repo: Path, tmp_path: Path, git: GitRunner) -> None:
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "--quiet", "-b", "side", str(linked))
    (linked / "deep" / "er").mkdir(parents=True)
    assert find_project(linked / "deep" / "er") == repo.resolve()
    assert current_worktree_root(linked / "deep") == linked.resolve()
    assert current_worktree_root(repo / "src") == repo.resolve()


def test_find_project_with_separate_git_dir(tmp_path: Path, git: GitRunner) -> None:
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "--quiet", "--separate-git-dir", str(tmp_path / "gitdir"))
    assert find_project(work) == work.resolve()


def test_not_a_repository_is_a_usage_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(NotARepository) as info:
        find_project(plain)
    assert isinstance(info.value, UsageError)
    message = str(info.value)
    assert message.startswith(f"not a git repository: {plain}")
    assert "git init" in message
    assert "\n" not in message
    with pytest.raises(NotARepository):
        find_project(tmp_path / "missing")


def test_resolve_ref(repo: Path, git: GitRunner) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    assert resolve_ref(repo, "HEAD") == head
    assert resolve_ref(repo, "main") == head
    assert resolve_ref(repo, head[:8]) == head
    git(repo, "tag", "-a", "v1", "-m", "tag")  # an annotated tag peels to its commit
    assert resolve_ref(repo, "v1") == head


@pytest.mark.parametrize("ref", ["nope", "--all", "", "HEAD~5"])
def test_bad_ref(repo: Path, ref: str) -> None:
    with pytest.raises(BadRef) as info:
        resolve_ref(repo, ref)
    assert repr(ref) in str(info.value)


def test_bad_ref_message(repo: Path) -> None:
    with pytest.raises(BadRef, match=rf"^base ref 'nope' does not exist in {repo}$"):
        resolve_ref(repo, "nope")


def test_repo_without_commits(tmp_path: Path, git: GitRunner) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "--quiet")
    assert not repo_has_commits(empty)
    with pytest.raises(BadRef, match="no commits yet"):
        resolve_ref(empty, "HEAD")


def test_branch_exists(repo: Path, git: GitRunner) -> None:
    assert branch_exists(repo, "main")
    assert not branch_exists(repo, "other")
    git(repo, "branch", "other")
    assert branch_exists(repo, "other")
    assert repo_has_commits(repo)


@pytest.mark.parametrize("name", ["fix-login", "fleet/fix-login", "a.b_c", "x1"])
def test_valid_branch_names(name: str) -> None:
    assert is_valid_branch_name(name)


@pytest.mark.parametrize(
    "name", ["", "-x", "a..b", "a b", "x.lock", "@{-1}", "HEAD", "a~1", "a:b", "/a", "a/"]
)
def test_invalid_branch_names(name: str) -> None:
    assert not is_valid_branch_name(name)
