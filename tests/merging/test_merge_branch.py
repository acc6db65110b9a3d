from __future__ import annotations

from pathlib import Path

import pytest
from merging_helpers import add_worker, commit_file, git, snapshot

from flotilla.domain.errors import OperationFailed, UsageError
from flotilla.workspace.merging import (
    SAVE_MESSAGE,
    CannotFastForward,
    MergeConflict,
    merge_branch,
)


def parents(repo: Path, rev: str) -> list[str]:
    return git(repo, "rev-list", "--parents", "-n", "1", rev).split()[1:]


def show(repo: Path, rev: str, path: str) -> str:
    return git(repo, "show", f"{rev}:{path}")


def test_merge_into_a_branch_not_checked_out_leaves_the_main_checkout_alone(repo: Path) -> None:
    git(repo, "branch", "release")
    (repo / "notes.txt").write_text("the user's own untracked file\n")
    w = add_worker(repo, "w1")
    worker_head = commit_file(w.path, "feature.py", "x = 1\n")
    before_main = snapshot(repo)
    old_release = git(repo, "rev-parse", "release")

    result = merge_branch(repo, w.branch, into="release", strategy="merge")

    assert result.into == "release"
    assert result.previous == old_release
    assert result.commit == git(repo, "rev-parse", "release")
    assert parents(repo, "release") == [old_release, worker_head]  # a real merge commit
    assert (
        git(repo, "log", "-1", "--format=%s", "release")
        == f"Merge branch '{w.branch}' into release"
    )
    assert result.files == ["feature.py"]
    assert show(repo, "release", "feature.py") == "x = 1"
    # main (checked out, another branch) is exactly as it was, and no scratch worktree is left
    after_main = snapshot(repo)
    assert after_main.head == before_main.head
    assert after_main.status == before_main.status
    assert after_main.worktrees == before_main.worktrees


def test_default_target_is_the_current_branch_and_its_checkout_follows(repo: Path) -> None:
    w = add_worker(repo, "w1")
    commit_file(w.path, "feature.py", "x = 1\n")
    old = git(repo, "rev-parse", "HEAD")

    result = merge_branch(repo, w.branch, message="bring in w1")

    assert result.into == "main"
    assert git(repo, "rev-parse", "main") == result.commit != old
    assert git(repo, "log", "-1", "--format=%s") == "bring in w1"
    assert (repo / "feature.py").read_text() == "x = 1\n"  # the checkout's files followed
    assert git(repo, "status", "--porcelain") == ""


def test_squash_makes_one_commit_with_one_parent(repo: Path) -> None:
    w = add_worker(repo, "w1")
    commit_file(w.path, "a.py", "a = 1\n")
    commit_file(w.path, "b.py", "b = 1\n")
    old = git(repo, "rev-parse", "main")

    result = merge_branch(repo, w.branch, strategy="squash", message="w1: two files")

    assert parents(repo, "main") == [old]
    assert git(repo, "log", "-1", "--format=%s", "main") == "w1: two files"
    assert sorted(result.files) == ["a.py", "b.py"]
    assert (repo / "a.py").exists() and (repo / "b.py").exists()
    assert result.strategy == "squash"


def test_rebase_replays_onto_a_moved_target_and_keeps_the_worker_branch(repo: Path) -> None:
    w = add_worker(repo, "w1")
    commit_file(w.path, "a.py", "a = 1\n", "add a")
    commit_file(w.path, "b.py", "b = 1\n", "add b")
    worker_head = git(repo, "rev-parse", w.branch)
    moved = commit_file(repo, "other.py", "o = 1\n", "meanwhile on main")

    result = merge_branch(repo, w.branch, strategy="rebase")

    assert git(repo, "rev-list", "--count", f"{moved}..main") == "2"
    assert git(repo, "rev-parse", "main~2") == moved  # linear: the worker's commits on top
    assert git(repo, "log", "--format=%s", "-2", "main").splitlines() == ["add b", "add a"]
    assert all(len(parents(repo, rev)) == 1 for rev in ("main", "main~1"))
    assert git(repo, "rev-parse", w.branch) == worker_head  # not rewritten
    assert sorted(result.files) == ["a.py", "b.py"]
    assert (repo / "a.py").exists()


def test_ff_only_fast_forwards(repo: Path) -> None:
    git(repo, "branch", "release")
    w = add_worker(repo, "w1")
    head = commit_file(w.path, "a.py", "a = 1\n")

    result = merge_branch(repo, w.branch, into="release", strategy="ff-only")

    assert git(repo, "rev-parse", "release") == head == result.commit


def test_ff_only_refuses_diverged_branches(repo: Path) -> None:
    w = add_worker(repo, "w1")
    commit_file(w.path, "a.py", "a = 1\n")
    commit_file(repo, "other.py", "o = 1\n")
    before = snapshot(repo)

    with pytest.raises(CannotFastForward, match="cannot fast-forward 'main' to 'fleet/w1'"):
        merge_branch(repo, w.branch, strategy="ff-only")
    assert snapshot(repo) == before


@pytest.mark.parametrize("strategy", ["merge", "squash", "rebase"])
@pytest.mark.parametrize("checked_out", [True, False])
def test_conflict_aborts_and_leaves_the_target_exactly_as_before(
    repo: Path, strategy: str, checked_out: bool
) -> None:
    if not checked_out:
        git(repo, "branch", "release")
    w = add_worker(repo, "w1")
    commit_file(w.path, "README.md", "# worker\n")
    commit_file(w.path, "app.py", "def main():\n    return 2\n")
    commit_file(w.path, "clean.py", "ok = 1\n")
    into = "main" if checked_out else "release"
    if checked_out:
        commit_file(repo, "README.md", "# main\n")
        commit_file(repo, "app.py", "def main():\n    return 3\n")
    else:
        wt = add_worker(repo, "rel-editor", base="release")
        commit_file(wt.path, "README.md", "# release\n")
        commit_file(wt.path, "app.py", "def main():\n    return 3\n")
        git(repo, "branch", "-f", "release", wt.branch)
    (repo / "scratch.log").write_text("ignored file of the user\n")
    (repo / "untracked.txt").write_text("untracked file of the user\n")
    before = snapshot(repo)
    target_before = git(repo, "rev-parse", into)

    with pytest.raises(MergeConflict) as info:
        merge_branch(repo, w.branch, into=into, strategy=strategy)

    assert info.value.files == ["README.md", "app.py"]
    assert "README.md, app.py" in str(info.value)
    assert isinstance(info.value, OperationFailed)
    assert git(repo, "rev-parse", into) == target_before
    after = snapshot(repo)
    assert after == before
    assert not after.merge_head
    assert (repo / "README.md").read_text() == (
        "# main\n" if checked_out else "# demo\n\nline two\n"
    )
    assert (repo / "scratch.log").exists() and (repo / "untracked.txt").exists()


def test_uncommitted_work_is_committed_before_merging(repo: Path) -> None:
    w = add_worker(repo, "w1")
    commit_file(w.path, "a.py", "a = 1\n")
    (w.path / "app.py").write_text("def main():\n    return 42\n")  # modified, not staged
    (w.path / "new_module.py").write_text("fresh = True\n")  # untracked

    result = merge_branch(repo, w.branch, worktree=w.path)

    assert git(w.path, "status", "--porcelain") == ""
    assert git(repo, "log", "-1", "--format=%s", w.branch) == SAVE_MESSAGE
    assert sorted(result.files) == ["a.py", "app.py", "new_module.py"]
    assert (repo / "new_module.py").read_text() == "fresh = True\n"
    assert (repo / "app.py").read_text() == "def main():\n    return 42\n"


def test_uncommitted_work_is_found_without_naming_the_worktree(repo: Path) -> None:
    w = add_worker(repo, "w1")
    (w.path / "only_here.py").write_text("x = 1\n")

    result = merge_branch(repo, w.branch)

    assert result.files == ["only_here.py"]
    assert git(w.path, "status", "--porcelain") == ""


def test_merge_into_a_branch_that_does_not_exist(repo: Path) -> None:
    w = add_worker(repo, "w1")
    (w.path / "pending.py").write_text("x = 1\n")
    before = snapshot(repo)
    with pytest.raises(UsageError, match="branch 'nope' does not exist"):
        merge_branch(repo, w.branch, into="nope")
    assert snapshot(repo) == before
    assert git(w.path, "status", "--porcelain") == "?? pending.py"  # nothing was started


def test_merge_of_a_source_that_does_not_exist(repo: Path) -> None:
    with pytest.raises(UsageError, match="branch 'fleet/ghost' does not exist"):
        merge_branch(repo, "fleet/ghost")


def test_a_dirty_checked_out_target_is_refused(repo: Path) -> None:
    w = add_worker(repo, "w1")
    commit_file(w.path, "a.py", "a = 1\n")
    (w.path / "pending.py").write_text("x = 1\n")
    (repo / "app.py").write_text("def main():\n    return 'user edit'\n")
    before = snapshot(repo)

    with pytest.raises(UsageError, match=r"checked out in .* with uncommitted changes"):
        merge_branch(repo, w.branch)

    assert snapshot(repo) == before
    assert (repo / "app.py").read_text() == "def main():\n    return 'user edit'\n"
    assert "pending.py" in git(w.path, "status", "--porcelain")  # the worker was not touched


def test_a_dirty_target_checked_out_in_another_worktree_is_refused(repo: Path) -> None:
    other = add_worker(repo, "other")
    (other.path / "app.py").write_text("edited\n")
    w = add_worker(repo, "w1")
    commit_file(w.path, "a.py", "a = 1\n")
    with pytest.raises(UsageError, match=f"'{other.branch}' is checked out in"):
        merge_branch(repo, w.branch, into=other.branch)


def test_a_clean_target_checked_out_in_another_worktree_follows(repo: Path) -> None:
    other = add_worker(repo, "other")
    w = add_worker(repo, "w1")
    commit_file(w.path, "a.py", "a = 1\n")
    result = merge_branch(repo, w.branch, into=other.branch)
    assert git(other.path, "rev-parse", "HEAD") == result.commit
    assert (other.path / "a.py").exists()
    assert git(other.path, "status", "--porcelain") == ""


def test_already_merged_is_not_an_error(repo: Path) -> None:
    w = add_worker(repo, "w1")
    commit_file(w.path, "a.py", "a = 1\n")
    first = merge_branch(repo, w.branch)
    again = merge_branch(repo, w.branch)
    assert first.changed and not again.changed
    assert again.commit == first.commit and again.files == []


def test_bad_strategy_self_merge_and_detached_head(repo: Path) -> None:
    w = add_worker(repo, "w1")
    with pytest.raises(UsageError, match="unknown merge strategy 'octopus'"):
        merge_branch(repo, w.branch, strategy="octopus")
    with pytest.raises(UsageError, match="into itself"):
        merge_branch(repo, "main")
    git(repo, "checkout", "--quiet", "--detach")
    with pytest.raises(UsageError, match="detached HEAD"):
        merge_branch(repo, w.branch)
