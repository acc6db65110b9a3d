"""What a worker changed, from git: committed and uncommitted work relative to its base.

Read-only: the worktree's index is never touched (no `git add -N`), so this
can run while the agent is still working. Untracked files are found with
`git ls-files --others --exclude-standard` and their lines counted here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flotilla.domain.worker import FileChange
from flotilla.workspace import _git

_STATUS = {
    "A": "added",
    "C": "added",
    "D": "deleted",
    "M": "modified",
    "R": "renamed",
    "T": "modified",
    "U": "modified",
}
_DIFF = ["diff", "--no-color", "--no-ext-diff", "-M"]
_BINARY_SNIFF = 8000  # git's own heuristic: a NUL byte in the first 8000 bytes


@dataclass
class Changes:
    files: list[FileChange] = field(default_factory=list)
    insertions: int = 0
    deletions: int = 0
    commits: list[str] = field(default_factory=list)  # "sha subject", oldest first
    has_changes: bool = False  # False when the net diff is empty, even with commits


def _split_z(data: bytes) -> list[str]:
    return [_git.decode(t) for t in data.split(b"\0")]


def _numstat(worktree: Path, base: str) -> dict[str, tuple[int, int]]:
    tokens = _split_z(_git.run(worktree, [*_DIFF, "--numstat", "-z", base, "--"]).stdout)
    counts: dict[str, tuple[int, int]] = {}
    i = 0
    while i < len(tokens):
        fields = tokens[i].split("\t", 2)
        i += 1
        if len(fields) < 3:
            continue
        added, deleted, path = fields
        if not path:  # a rename: the old and new paths follow as their own tokens
            path = tokens[i + 1]
            i += 2
        counts[path] = (0 if added == "-" else int(added), 0 if deleted == "-" else int(deleted))
    return counts


def _name_status(worktree: Path, base: str) -> list[tuple[str, str]]:
    tokens = _split_z(_git.run(worktree, [*_DIFF, "--name-status", "-z", base, "--"]).stdout)
    pairs = []
    i = 0
    while i < len(tokens) and tokens[i]:
        letter = tokens[i][0]
        if letter in "RC":
            pairs.append((_STATUS[letter], tokens[i + 2]))
            i += 3
        else:
            pairs.append((_STATUS.get(letter, "modified"), tokens[i + 1]))
            i += 2
    return pairs


def untracked_files(worktree: Path) -> list[str]:
    """Untracked, not ignored paths; a nested repository shows as one 'dir/' entry."""
    out = _git.run(worktree, ["ls-files", "--others", "--exclude-standard", "-z"]).stdout
    return [p for p in _split_z(out) if p]


def count_lines(path: Path) -> int | None:
    """Lines as git's numstat counts them; None for a binary file."""
    if path.is_symlink():
        return 1  # git diffs a symlink as its one-line target
    if path.is_dir():
        return 0
    lines = 0
    last = b""
    with open(path, "rb") as handle:
        first = True
        while chunk := handle.read(1 << 16):
            if first and b"\0" in chunk[:_BINARY_SNIFF]:
                return None
            first = False
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (1 if last and last != b"\n" else 0)


def commits_since(worktree: Path, base: str) -> list[str]:
    out = _git.out(worktree, ["log", "--reverse", "--format=%H %s", f"{base}..HEAD", "--"])
    return [line for line in out.splitlines() if line]


def collect_changes(worktree: Path, base_commit: str) -> Changes:
    """Files changed since `base_commit`: committed, staged, unstaged and untracked."""
    worktree = Path(worktree)
    counts = _numstat(worktree, base_commit)
    files = [
        FileChange(path, status, *counts.get(path, (0, 0)))
        for status, path in _name_status(worktree, base_commit)
    ]
    for path in untracked_files(worktree):
        lines = count_lines(worktree / path)
        files.append(FileChange(path.rstrip("/"), "untracked", lines or 0, 0))
    return Changes(
        files=files,
        insertions=sum(f.insertions for f in files),
        deletions=sum(f.deletions for f in files),
        commits=commits_since(worktree, base_commit),
        has_changes=bool(files),
    )


def render_stat(changes: Changes) -> str:
    """A `git diff --stat`-like summary that includes untracked files."""
    if not changes.files:
        return ""
    width = max(len(f.path) for f in changes.files)
    lines = []
    for f in changes.files:
        total = f.insertions + f.deletions
        marks = "+" * min(f.insertions, 40) + "-" * min(f.deletions, 40)
        note = f" ({f.status})" if f.status in ("untracked", "renamed") else ""
        lines.append(f" {f.path.ljust(width)} | {total:>4} {marks}{note}".rstrip())
    n = len(changes.files)
    lines.append(
        f" {n} file{'s' if n != 1 else ''} changed, "
        f"{changes.insertions} insertions(+), {changes.deletions} deletions(-)"
    )
    return "\n".join(lines) + "\n"


def diff_text(worktree: Path, base_commit: str, stat: bool = False) -> str:
    """The full patch from `base_commit` to the working tree, untracked files included."""
    worktree = Path(worktree)
    if stat:
        return render_stat(collect_changes(worktree, base_commit))
    parts = [_git.run(worktree, [*_DIFF, base_commit, "--"]).stdout]
    for path in untracked_files(worktree):
        if path.endswith("/"):
            continue  # a nested repository: its files are its own business
        proc = _git.run(worktree, [*_DIFF, "--no-index", "--", "/dev/null", path], ok_codes=(0, 1))
        parts.append(proc.stdout)
    return b"".join(parts).decode("utf-8", errors="replace")
