from __future__ import annotations

import hashlib
from pathlib import Path

from workspace_helpers import GitRunner

from flotilla.domain.worker import FileChange
from flotilla.workspace import collect_changes, create_worktree, diff_text
from flotilla.workspace.diffing import count_lines

OLD_TEXT = "".join(f"line {i}\n" for i in range(20))


def busy_worktree(repo: Path, wt_root: Path, git: GitRunner) -> tuple[Path, str]:
    """A worktree with every kind of change relative to its base."""
    (repo / "gone.txt").write_text("bye\n")
    (repo / "old.txt").write_text(OLD_TEXT)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "more files")
    info = create_worktree(repo, wt_root / "busy", "busy", "HEAD")
    wt = info.path
    # committed by the agent
    (wt / "src" / "app.py").write_text("def main():\n    return 1\n\n# extra\n")
    (wt / "committed.txt").write_text("a\nb\n")
    (wt / "data.bin").write_bytes(b"\x00\x01\x02binary\x00")
    git(wt, "add", "-A")
    git(wt, "commit", "-qm", "agent work")
    git(wt, "commit", "-q", "--allow-empty", "-m", "second commit")
    # staged, not committed
    (wt / "staged.txt").write_text("staged\n")
    git(wt, "add", "staged.txt")
    git(wt, "mv", "old.txt", "new.txt")
    # unstaged
    (wt / "README.md").write_text("# demo, edited\n")
    (wt / "gone.txt").unlink()
    # untracked, one binary, one without a final newline; one ignored
    (wt / "notes").mkdir()
    (wt / "notes" / "todo.md").write_text("one\ntwo\nthree")
    (wt / "image.png").write_bytes(b"\x89PNG\x00\x00data")
    (wt / "build.log").write_text("ignored\n")
    return wt, info.base_commit


def index_fingerprint(git: GitRunner, wt: Path) -> tuple[str, str, str]:
    gitdir = Path(git(wt, "rev-parse", "--absolute-git-dir").strip())
    digest = hashlib.sha256((gitdir / "index").read_bytes()).hexdigest()
    return digest, git(wt, "status", "--porcelain"), git(wt, "ls-files")


def test_collect_changes_sees_everything(repo: Path, wt_root: Path, git: GitRunner) -> None:
    wt, base = busy_worktree(repo, wt_root, git)
    before = index_fingerprint(git, wt)
    changes = collect_changes(wt, base)
    assert index_fingerprint(git, wt) == before  # read-only: no `git add -N`

    by_path = {f.path: f for f in changes.files}
    assert by_path == {
        "README.md": FileChange("README.md", "modified", 1, 1),
        "committed.txt": FileChange("committed.txt", "added", 2, 0),
        "data.bin": FileChange("data.bin", "added", 0, 0),
        "gone.txt": FileChange("gone.txt", "deleted", 0, 1),
        "new.txt": FileChange("new.txt", "renamed", 0, 0),
        "src/app.py": FileChange("src/app.py", "modified", 2, 0),
        "staged.txt": FileChange("staged.txt", "added", 1, 0),
        "notes/todo.md": FileChange("notes/todo.md", "untracked", 3, 0),
        "image.png": FileChange("image.png", "untracked", 0, 0),
    }
    assert len(changes.files) == len(by_path)
    assert changes.insertions == 1 + 2 + 2 + 1 + 3
    assert changes.deletions == 1 + 1
    assert changes.has_changes
    assert [c.split(" ", 1)[1] for c in changes.commits] == ["agent work", "second commit"]
    head = git(wt, "rev-parse", "HEAD").strip()
    assert changes.commits[-1].split(" ", 1)[0] == head


def test_no_changes(repo: Path, wt_root: Path) -> None:
    info = create_worktree(repo, wt_root / "idle", "idle", "HEAD")
    changes = collect_changes(info.path, info.base_commit)
    assert changes.files == []
    assert changes.commits == []
    assert not changes.has_changes
    assert diff_text(info.path, info.base_commit) == ""


def test_diff_text_includes_untracked_files(repo: Path, wt_root: Path, git: GitRunner) -> None:
    wt, base = busy_worktree(repo, wt_root, git)
    before = index_fingerprint(git, wt)
    patch = diff_text(wt, base)
    assert index_fingerprint(git, wt) == before
    assert "+++ b/notes/todo.md" in patch
    assert "+three\n\\ No newline at end of file" in patch
    assert "rename from old.txt" in patch and "rename to new.txt" in patch
    assert "-bye" in patch
    assert "+# extra" in patch
    assert "Binary files /dev/null and b/image.png differ" in patch
    assert "build.log" not in patch
    # the patch applies to the base and reproduces the working tree's text files
    check = wt_root / "check"
    git(repo, "worktree", "add", "--quiet", "--detach", str(check), base)
    chunks = patch.split("diff --git ")[1:]
    text_only = "".join("diff --git " + c for c in chunks if "Binary files" not in c)
    (check / "p.diff").write_text(text_only)
    git(check, "apply", "--exclude=p.diff", "p.diff")
    assert (check / "notes" / "todo.md").read_text() == "one\ntwo\nthree"
    for name in ("README.md", "new.txt", "src/app.py", "staged.txt", "committed.txt"):
        assert (check / name).read_bytes() == (wt / name).read_bytes()
    assert not (check / "gone.txt").exists()
    assert not (check / "old.txt").exists()


def test_diff_stat(repo: Path, wt_root: Path, git: GitRunner) -> None:
    wt, base = busy_worktree(repo, wt_root, git)
    stat = diff_text(wt, base, stat=True)
    lines = stat.splitlines()
    assert any(line.strip().startswith("notes/todo.md") and "(untracked)" in line for line in lines)
    assert lines[-1] == " 9 files changed, 9 insertions(+), 2 deletions(-)"


def test_count_lines(tmp_path: Path) -> None:
    cases = {"a": b"", "b": b"x", "c": b"x\n", "d": b"x\ny", "e": b"x\n\n", "f": b"a\0b\n"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    counts = {name: count_lines(tmp_path / name) for name in cases}
    assert counts == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 2, "f": None}
