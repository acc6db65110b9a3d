"""Helpers for the merging tests (a unique module name: tests have no packages)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def git_ok(cwd: Path, *args: str) -> bool:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False).returncode == 0


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "--quiet")
    (path / "README.md").write_text("# demo\n\nline two\n")
    (path / "app.py").write_text("def main():\n    return 1\n")
    (path / ".gitignore").write_text("*.log\n")
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "-m", "first")
    return path


@dataclass(frozen=True)
class Worker:
    name: str
    path: Path
    branch: str
    base: str


def add_worker(repo: Path, name: str, base: str = "HEAD") -> Worker:
    """A worktree on a new branch, as Flotilla makes one for a worker."""
    path = repo.parent / "worktrees" / name
    branch = f"fleet/{name}"
    git(repo, "worktree", "add", "--quiet", "-b", branch, str(path), base)
    return Worker(name, path, branch, git(path, "rev-parse", "HEAD"))


def commit_file(cwd: Path, rel: str, text: str, message: str | None = None) -> str:
    target = cwd / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    git(cwd, "add", "--", rel)
    git(cwd, "commit", "--quiet", "-m", message or f"change {rel}")
    return git(cwd, "rev-parse", "HEAD")


@dataclass(frozen=True)
class Snapshot:
    """Everything a merge must leave untouched in a checkout and its branches."""

    head: str
    branches: str
    status: str
    merge_head: bool
    worktrees: str


def snapshot(repo: Path, checkout: Path | None = None) -> Snapshot:
    where = checkout or repo
    return Snapshot(
        head=git(where, "rev-parse", "HEAD"),
        branches=git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads"),
        status=git(where, "status", "--porcelain", "--untracked-files=all"),
        merge_head=git_ok(where, "rev-parse", "-q", "--verify", "MERGE_HEAD"),
        worktrees=git(repo, "worktree", "list", "--porcelain"),
    )
