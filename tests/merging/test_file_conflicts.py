from __future__ import annotations

from pathlib import Path

import pytest
from merging_helpers import add_worker, commit_file, git

from flotilla.domain.errors import UsageError
from flotilla.workspace.conflicts import file_conflicts


def test_overlaps_committed_uncommitted_and_untracked(repo: Path) -> None:
    a = add_worker(repo, "a")
    commit_file(a.path, "README.md", "# a\n")  # committed
    commit_file(a.path, "only_a.py", "a = 1\n")
    b = add_worker(repo, "b")
    (b.path / "README.md").write_text("# b\n")  # modified, not committed
    (b.path / "shared_new.py").write_text("b = 1\n")  # untracked
    c = add_worker(repo, "c")
    commit_file(c.path, "shared_new.py", "c = 1\n")
    git(c.path, "rm", "--quiet", "app.py")  # staged deletion
    d = add_worker(repo, "d")
    (d.path / "app.py").write_text("def main():\n    return 'd'\n")
    e = add_worker(repo, "e")  # changed nothing
    before = {w.name: git(w.path, "status", "--porcelain") for w in (a, b, c, d, e)}

    found = file_conflicts(repo, [(w.name, w.path, w.base) for w in (a, b, c, d, e)])

    assert found == {
        "README.md": ["a", "b"],
        "app.py": ["c", "d"],
        "shared_new.py": ["b", "c"],
    }
    assert list(found) == sorted(found)
    # read-only: nobody's worktree was touched
    assert {w.name: git(w.path, "status", "--porcelain") for w in (a, b, c, d, e)} == before


def test_no_overlap_is_an_empty_answer(repo: Path) -> None:
    a = add_worker(repo, "a")
    commit_file(a.path, "x.py", "x = 1\n")
    b = add_worker(repo, "b")
    (b.path / "y.py").write_text("y = 1\n")
    assert file_conflicts(repo, [("a", a.path, a.base), ("b", b.path, b.base)]) == {}


def test_a_worker_based_on_an_older_commit_is_diffed_against_its_own_base(repo: Path) -> None:
    old = git(repo, "rev-parse", "HEAD")
    commit_file(repo, "README.md", "# moved on\n")
    a = add_worker(repo, "a", base=old)
    b = add_worker(repo, "b")
    commit_file(b.path, "app.py", "def main():\n    return 2\n")
    commit_file(a.path, "app.py", "def main():\n    return 3\n")
    # a's base is older than main, but main's README change is not a's change
    assert file_conflicts(repo, [("a", a.path, a.base), ("b", b.path, b.base)]) == {
        "app.py": ["a", "b"]
    }


def test_a_missing_worktree_is_named(repo: Path, tmp_path: Path) -> None:
    a = add_worker(repo, "a")
    with pytest.raises(UsageError, match="the worktree of 'gone' is gone"):
        file_conflicts(repo, [("a", a.path, a.base), ("gone", tmp_path / "nowhere", a.base)])
