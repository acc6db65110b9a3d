from __future__ import annotations

import os
from pathlib import Path

import pytest
from merging_helpers import Worker, add_worker, commit_file, git, snapshot

from flotilla.domain.errors import UsageError
from flotilla.workspace.merge_queue import QueueItem, merge_queue

# The project's "test suite": fails when a file named BROKEN exists, prints pytest-like counts.
TESTS = 'if [ -e BROKEN ]; then echo "1 failed, 3 passed"; exit 1; fi; echo "4 passed"'


def item(w: Worker) -> QueueItem:
    return QueueItem(w.name, w.branch, w.path)


def tree(repo: Path, rev: str) -> list[str]:
    return git(repo, "ls-tree", "-r", "--name-only", rev).splitlines()


@pytest.fixture
def candidates(repo: Path) -> list[Worker]:
    good1 = add_worker(repo, "good1")
    commit_file(good1.path, "README.md", "# good1\n\nline two\n")
    commit_file(good1.path, "one.py", "one = 1\n")
    breaker = add_worker(repo, "breaker")
    commit_file(breaker.path, "BROKEN", "this breaks the tests\n")
    commit_file(breaker.path, "nice_looking.py", "x = 1\n")
    conflicter = add_worker(repo, "conflicter")
    commit_file(conflicter.path, "README.md", "# conflicter\n\nline two\n")
    good2 = add_worker(repo, "good2")
    (good2.path / "two.py").write_text("two = 2\n")  # left uncommitted by the agent
    return [good1, breaker, conflicter, good2]


def test_queue_merges_the_good_and_skips_the_breaking_and_the_conflicting(
    repo: Path, candidates: list[Worker]
) -> None:
    start = git(repo, "rev-parse", "main")
    (repo / "user_notes.txt").write_text("untracked, must survive\n")

    outcomes = merge_queue(
        repo, [item(w) for w in candidates], test_command=TESTS, env=dict(os.environ), timeout=30
    )

    assert [(o.name, o.status) for o in outcomes] == [
        ("good1", "merged"),
        ("breaker", "tests_failed"),
        ("conflicter", "conflict"),
        ("good2", "merged"),
    ]
    good1, breaker, conflicter, good2 = outcomes
    assert good1.tests is not None and good1.tests.passed == 4
    assert "tests passed" in good1.detail
    assert breaker.tests is not None and breaker.tests.exit_code == 1
    assert breaker.tests.failed == 1
    assert "merge undone" in breaker.detail
    assert conflicter.files == ["README.md"]
    assert "README.md" in conflicter.detail
    assert good2.files == ["two.py"]

    # The target holds exactly the good candidates, merged in order.
    head = git(repo, "rev-parse", "main")
    assert head == good2.commit
    assert git(repo, "rev-parse", "main^1") == good1.commit
    assert git(repo, "rev-parse", "main^1^1") == start
    files = tree(repo, "main")
    assert {"one.py", "two.py"} <= set(files)
    assert "BROKEN" not in files and "nice_looking.py" not in files
    assert git(repo, "show", "main:README.md") == "# good1\n\nline two"
    # The checked-out main followed, and the user's untracked file is still there.
    assert (repo / "two.py").exists() and not (repo / "BROKEN").exists()
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    assert (repo / "user_notes.txt").exists()
    # No scratch worktree is left behind.
    assert len(git(repo, "worktree", "list").splitlines()) == 1 + len(candidates)


def test_queue_without_tests_and_into_a_branch_not_checked_out(
    repo: Path, candidates: list[Worker]
) -> None:
    git(repo, "branch", "integration")
    before = snapshot(repo)
    outcomes = merge_queue(repo, [item(w) for w in candidates], into="integration")
    assert [o.status for o in outcomes] == ["merged", "merged", "conflict", "merged"]
    assert "BROKEN" in tree(repo, "integration")
    after = snapshot(repo)
    assert after.head == before.head and after.status == before.status  # main untouched


def test_queue_skips_missing_and_already_merged_branches(repo: Path) -> None:
    w = add_worker(repo, "w")
    commit_file(w.path, "w.py", "w = 1\n")
    outcomes = merge_queue(
        repo,
        [
            QueueItem("w", w.branch),
            QueueItem("ghost", "fleet/ghost"),
            QueueItem("again", w.branch),
            QueueItem("self", "main"),
        ],
    )
    assert [o.status for o in outcomes] == ["merged", "skipped", "skipped", "skipped"]
    assert "does not exist" in outcomes[1].detail
    assert "already in 'main'" in outcomes[2].detail
    assert "is the target" in outcomes[3].detail


def test_ff_only_queue_skips_what_can_no_longer_fast_forward(repo: Path) -> None:
    a = add_worker(repo, "a")
    commit_file(a.path, "a.py", "a = 1\n")
    b = add_worker(repo, "b")
    commit_file(b.path, "b.py", "b = 1\n")
    outcomes = merge_queue(repo, [item(a), item(b)], strategy="ff-only")
    assert [o.status for o in outcomes] == ["merged", "skipped"]
    assert "cannot fast-forward" in outcomes[1].detail
    assert git(repo, "rev-parse", "main") == git(repo, "rev-parse", a.branch)


def test_squash_queue_with_tests(repo: Path, candidates: list[Worker]) -> None:
    start = git(repo, "rev-parse", "main")
    outcomes = merge_queue(
        repo, [item(w) for w in candidates], strategy="squash", test_command=TESTS
    )
    assert [o.status for o in outcomes] == ["merged", "tests_failed", "conflict", "merged"]
    assert git(repo, "rev-list", "--count", f"{start}..main") == "2"  # one commit per good one


def test_queue_refuses_a_dirty_target_and_duplicate_names(repo: Path) -> None:
    w = add_worker(repo, "w")
    with pytest.raises(UsageError, match="names a worker twice"):
        merge_queue(repo, [item(w), item(w)])
    (repo / "README.md").write_text("dirty\n")
    with pytest.raises(UsageError, match="uncommitted changes"):
        merge_queue(repo, [item(w)])
