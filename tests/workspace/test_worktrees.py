from __future__ import annotations

import os
from pathlib import Path

import pytest
from workspace_helpers import GitRunner

from flotilla.domain.errors import UsageError
from flotilla.workspace import (
    BadRef,
    PathEscape,
    WorktreeConflict,
    branch_exists,
    commit_all,
    create_worktree,
    list_worktrees,
    remove_worktree,
)


def worktree_paths(git: GitRunner, repo: Path) -> list[str]:
    out = git(repo, "worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("worktree ")]


def test_create_then_remove_leaves_nothing(repo: Path, wt_root: Path, git: GitRunner) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    info = create_worktree(repo, wt_root / "w1", "fleet/w1", "HEAD", root=wt_root)
    assert info.path == (wt_root / "w1").resolve()
    assert info.branch == "fleet/w1"
    assert info.base_commit == head
    assert (info.path / "src" / "app.py").read_text() == "def main():\n    return 1\n"
    assert git(info.path, "branch", "--show-current").strip() == "fleet/w1"
    assert git(info.path, "rev-parse", "HEAD").strip() == head
    # no upstream is configured for the new branch
    assert "fleet/w1" not in git(repo, "config", "--list")
    assert len(worktree_paths(git, repo)) == 2

    (info.path / "scratch.txt").write_text("uncommitted\n")
    (info.path / "debug.log").write_text("ignored\n")
    remove_worktree(repo, info.path)
    assert not info.path.exists()
    assert worktree_paths(git, repo) == [str(repo)]
    assert git(repo, "branch", "--list", "fleet/w1") == ""
    assert not (repo / ".git" / "worktrees").exists() or not any(
        (repo / ".git" / "worktrees").iterdir()
    )


def test_create_at_an_older_base(repo: Path, wt_root: Path, git: GitRunner) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    (repo / "README.md").write_text("# changed\n")
    git(repo, "commit", "-qam", "second")
    info = create_worktree(repo, wt_root / "old", "old", first)
    assert info.base_commit == first
    assert (info.path / "README.md").read_text() == "# demo\n"


def test_remove_is_idempotent(repo: Path, wt_root: Path, git: GitRunner) -> None:
    info = create_worktree(repo, wt_root / "w", "w", "HEAD")
    remove_worktree(repo, info.path, delete_branch="w")
    remove_worktree(repo, info.path, delete_branch="w")
    remove_worktree(repo, wt_root / "never-existed", delete_branch="never-existed")
    assert git(repo, "branch", "--list", "w") == ""


def test_remove_after_the_folder_was_deleted_by_hand(
    repo: Path, wt_root: Path, git: GitRunner
) -> None:
    info = create_worktree(repo, wt_root / "w", "w", "HEAD")
    # simulate `rm -rf` by the user
    for dirpath, _dirs, files in os.walk(info.path, topdown=False):
        for name in files:
            os.unlink(os.path.join(dirpath, name))
        os.rmdir(dirpath)
    remove_worktree(repo, info.path, delete_branch="w")
    assert worktree_paths(git, repo) == [str(repo)]
    assert not branch_exists(repo, "w")


def test_keep_branch_commits_uncommitted_work(repo: Path, wt_root: Path, git: GitRunner) -> None:
    info = create_worktree(repo, wt_root / "k", "keep-me", "HEAD")
    (info.path / "new.txt").write_text("new work\n")
    (info.path / "README.md").write_text("# edited\n")
    remove_worktree(repo, info.path, keep_branch=True)
    assert not info.path.exists()
    assert branch_exists(repo, "keep-me")
    assert git(repo, "show", "keep-me:new.txt") == "new work\n"
    assert git(repo, "show", "keep-me:README.md") == "# edited\n"
    assert git(repo, "rev-list", "--count", f"{info.base_commit}..keep-me").strip() == "1"


def test_keep_branch_with_clean_worktree_adds_no_commit(
    repo: Path, wt_root: Path, git: GitRunner
) -> None:
    info = create_worktree(repo, wt_root / "k", "clean", "HEAD")
    remove_worktree(repo, info.path, keep_branch=True)
    assert git(repo, "rev-parse", "clean").strip() == info.base_commit


def test_branch_conflict(repo: Path, wt_root: Path, git: GitRunner) -> None:
    git(repo, "branch", "taken")
    with pytest.raises(WorktreeConflict, match="branch 'taken' already exists"):
        create_worktree(repo, wt_root / "t", "taken", "HEAD")
    assert not (wt_root / "t").exists()
    assert git(repo, "rev-parse", "taken").strip() == git(repo, "rev-parse", "HEAD").strip()


def test_path_conflict(repo: Path, wt_root: Path) -> None:
    (wt_root / "busy").mkdir(parents=True)
    with pytest.raises(WorktreeConflict, match="already exists"):
        create_worktree(repo, wt_root / "busy", "busy", "HEAD")
    assert not branch_exists(repo, "busy")


@pytest.mark.parametrize("relative", ["../escape", "a/../../escape", "."])
def test_path_escapes_are_rejected(repo: Path, wt_root: Path, relative: str) -> None:
    with pytest.raises(PathEscape):
        create_worktree(repo, wt_root / relative, "esc", "HEAD", root=wt_root)
    assert not branch_exists(repo, "esc")
    assert not (wt_root.parent / "escape").exists()


def test_absolute_path_outside_root_is_rejected(repo: Path, wt_root: Path, tmp_path: Path) -> None:
    with pytest.raises(PathEscape, match="outside"):
        create_worktree(repo, tmp_path / "elsewhere", "esc", "HEAD", root=wt_root)


def test_symlink_escape_is_rejected(repo: Path, wt_root: Path, tmp_path: Path) -> None:
    wt_root.mkdir()
    (tmp_path / "outside").mkdir()
    (wt_root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(PathEscape):
        create_worktree(repo, wt_root / "link" / "w", "esc", "HEAD", root=wt_root)


def test_bad_base_ref_leaves_nothing(repo: Path, wt_root: Path, git: GitRunner) -> None:
    with pytest.raises(BadRef, match="base ref 'no-such-ref' does not exist"):
        create_worktree(repo, wt_root / "b", "b", "no-such-ref")
    assert not (wt_root / "b").exists()
    assert not branch_exists(repo, "b")
    assert worktree_paths(git, repo) == [str(repo)]


def test_invalid_branch_name(repo: Path, wt_root: Path) -> None:
    with pytest.raises(UsageError, match="not a valid git branch name"):
        create_worktree(repo, wt_root / "x", "bad..name", "HEAD")


def test_refuses_to_remove_main_or_foreign_folders(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="main worktree"):
        remove_worktree(repo, repo)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "precious.txt").write_text("keep\n")
    with pytest.raises(UsageError, match="not a worktree"):
        remove_worktree(repo, stranger)
    assert (stranger / "precious.txt").exists()
    assert (repo / "README.md").exists()


def test_list_worktrees(repo: Path, wt_root: Path, git: GitRunner) -> None:
    info = create_worktree(repo, wt_root / "a", "a", "HEAD")
    git(repo, "worktree", "add", "--quiet", "--detach", str(wt_root / "d"))
    entries = list_worktrees(repo)
    assert [e.path for e in entries] == [repo, info.path, wt_root / "d"]
    main, linked, detached = entries
    assert main.branch == "main"
    assert linked.branch == "a"
    assert linked.head == info.base_commit
    assert detached.branch is None
    path, branch, head = linked  # plain tuples too
    assert (path, branch, head) == (info.path, "a", info.base_commit)


def test_commit_all(repo: Path, wt_root: Path, git: GitRunner) -> None:
    info = create_worktree(repo, wt_root / "c", "c", "HEAD")
    assert commit_all(info.path, "nothing") is None
    (info.path / "sub").mkdir()
    (info.path / "sub" / "file.txt").write_text("x\n")
    (info.path / "src" / "app.py").unlink()
    (info.path / "skip.log").write_text("ignored\n")
    sha = commit_all(info.path, "work")
    assert sha == git(info.path, "rev-parse", "HEAD").strip()
    files = git(info.path, "show", "--name-status", "--format=%s", "HEAD").split()
    assert files == ["work", "D", "src/app.py", "A", "sub/file.txt"]
    assert git(info.path, "status", "--porcelain") == ""


def test_commit_all_without_configured_identity(
    repo: Path, wt_root: Path, git: GitRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.delenv(f"GIT_{role}_NAME")
        monkeypatch.delenv(f"GIT_{role}_EMAIL")
    git(repo, "config", "user.useConfigOnly", "true")  # git would refuse to guess
    info = create_worktree(repo, wt_root / "i", "i", "HEAD")
    (info.path / "f.txt").write_text("f\n")
    assert commit_all(info.path, "anonymous") is not None
    assert git(info.path, "log", "-1", "--format=%an <%ae>").strip() == (
        "Flotilla <flotilla@localhost>"
    )


def test_commit_all_skips_failing_hooks(repo: Path, wt_root: Path, git: GitRunner) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    info = create_worktree(repo, wt_root / "h", "h", "HEAD")
    (info.path / "f.txt").write_text("f\n")
    assert commit_all(info.path, "saved") is not None


def test_remove_a_worktree_with_an_initialized_submodule(
    repo: Path, tmp_path: Path, wt_root: Path, git: GitRunner
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    git(lib, "init", "--quiet")
    (lib / "lib.txt").write_text("lib\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-qm", "lib")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "--quiet", str(lib), "lib")
    git(repo, "commit", "-qm", "add submodule")
    info = create_worktree(repo, wt_root / "s", "s", "HEAD")
    git(info.path, "-c", "protocol.file.allow=always", "submodule", "update", "--init", "--quiet")
    assert (info.path / "lib" / "lib.txt").exists()
    remove_worktree(repo, info.path)  # git needs --force twice for submodules
    assert not info.path.exists()
    assert worktree_paths(git, repo) == [str(repo)]
    assert not branch_exists(repo, "s")
