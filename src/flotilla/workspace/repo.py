"""Questions about a repository: its root, what a ref names, what a branch may be called."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from flotilla.workspace import _git
from flotilla.workspace.errors import BadRef, GitFailed, NotARepository


def _not_a_repo(start: Path) -> NotARepository:
    return NotARepository(
        f"not a git repository: {start} (run inside a git repository, or `git init` one)"
    )


def _query(start: Path, args: list[str]) -> str:
    start = Path(start)
    if not start.is_dir():
        raise _not_a_repo(start)
    try:
        return _git.out(start, args)
    except GitFailed as exc:
        if "not a git repository" in exc.stderr:
            raise _not_a_repo(start) from exc
        raise


def find_project(start: Path) -> Path:
    """The main worktree's root, from any folder of the repository or of a linked worktree.

    Branch names and worktrees belong to the repository, not to whichever
    worktree the user stands in, so every worker is keyed by the main root.
    """
    common, gitdir, bare = _query(
        start,
        [
            "rev-parse",
            "--path-format=absolute",
            "--git-common-dir",
            "--git-dir",
            "--is-bare-repository",
        ],
    ).splitlines()
    if bare == "true":
        raise NotARepository(f"{start} is a bare repository: run inside a checked-out repository")
    if Path(common).name == ".git":
        return Path(common).parent.resolve()
    if common == gitdir:  # the main worktree of a repository made with --separate-git-dir
        return current_worktree_root(start)
    # git itself does not record where such a repository's main worktree is.
    raise NotARepository(
        f"{start} is a linked worktree of {common}, whose main worktree git does not record: "
        "run inside the main worktree"
    )


def current_worktree_root(start: Path) -> Path:
    """The root of the worktree (main or linked) that contains `start`."""
    top = _query(start, ["rev-parse", "--show-toplevel"])
    if not top:
        raise _not_a_repo(start)
    return Path(top).resolve()


def repo_has_commits(repo: Path) -> bool:
    return _git.succeeds(repo, ["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])


def resolve_ref(repo: Path, ref: str) -> str:
    """The full commit sha that `ref` names in `repo`; BadRef if it names none."""
    if not ref or ref.startswith("-") or any(c in ref for c in "\0\n"):
        raise BadRef(f"base ref {ref!r} is not a valid ref: give a branch, tag or commit")
    if not Path(repo).is_dir():
        raise _not_a_repo(repo)
    proc = _git.run(
        repo,
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
        ok_codes=(0, 1, 128),
    )
    sha = _git.decode(proc.stdout).strip()
    if proc.returncode == 0 and sha:
        return sha
    if proc.returncode == 128 and "not a git repository" in _git.decode(proc.stderr):
        raise _not_a_repo(repo)
    if not repo_has_commits(repo):
        raise BadRef(
            f"base ref {ref!r} does not exist in {repo}: the repository has no commits yet "
            "(make a first commit)"
        )
    raise BadRef(f"base ref {ref!r} does not exist in {repo}")


def branch_exists(repo: Path, branch: str) -> bool:
    return _git.succeeds(repo, ["show-ref", "--verify", "--quiet", f"refs/heads/{branch}"])


@functools.lru_cache(maxsize=4096)
def is_valid_branch_name(name: str) -> bool:
    """What `git branch NAME` would accept, minus the `@{-N}` shorthands and options.

    Pure syntax, so cached: a launch asks twice (when planned, when its worktree is made).
    """
    if not name or name.startswith("-") or "@{" in name or name == "HEAD" or "\0" in name:
        return False
    # Run outside any repository: with the shorthands excluded this is pure syntax.
    cwd = Path(tempfile.gettempdir())
    proc = _git.run(cwd, ["check-ref-format", "--branch", name], ok_codes=(0, 1, 128))
    return proc.returncode == 0
