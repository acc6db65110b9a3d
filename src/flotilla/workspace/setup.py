"""Preparing a fresh worktree: copy the untracked credential files, run the setup commands."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from flotilla.counters import count
from flotilla.workspace.errors import PathEscape, SetupFailed
from flotilla.workspace.shell import LineCallback, run_shell
from flotilla.workspace.worktrees import list_worktrees

_GLOB_CHARS = frozenset("*?[")


def _check_pattern(pattern: str) -> None:
    parts = PurePosixPath(pattern).parts
    if not pattern.strip() or PurePosixPath(pattern).is_absolute() or ".." in parts:
        raise PathEscape(
            f"credential file {pattern!r} must be a path relative to the repository root, "
            "without '..'"
        )


def _matches(repo: Path, pattern: str, excluded: list[Path]) -> list[Path]:
    if _GLOB_CHARS & set(pattern):
        found = sorted(repo.glob(pattern))
    else:
        candidate = repo / pattern
        found = [candidate] if candidate.exists() else []
    return [
        path for path in found if not any(path == ex or path.is_relative_to(ex) for ex in excluded)
    ]


def _copy_one(src: Path, dst: Path, worktree: Path) -> str | None:
    """Copy `src` to `dst`; a warning if that cannot be done safely, else None."""
    # A tracked symlink (file or parent folder) in the worktree must not make us
    # write outside it.
    if not dst.parent.resolve().is_relative_to(worktree):
        return (
            f"credential file {dst.relative_to(worktree)} would land outside the worktree: skipped"
        )
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink():
            dst.unlink()
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)  # copy2 keeps the mode: a 0600 secret stays 0600
    except OSError as exc:
        count("workspace.credential_copy_failed")
        return f"credential file {src} could not be copied: {exc.strerror or type(exc).__name__}"
    return None


def copy_credential_files(repo: Path, worktree: Path, files: Sequence[str]) -> list[str]:
    """Copy untracked files (`.env`, keys) from the repository root into the worktree.

    `files` are paths or globs relative to the repository root; each lands at
    the same relative place. Missing files are skipped: the returned list holds
    one warning for each. Contents are never logged.
    """
    repo = Path(repo).resolve()
    worktree = Path(worktree).resolve()
    # Never pick up copies from inside worktrees that live under the repository.
    excluded = [repo / ".git", worktree]
    excluded += [e.path.resolve() for e in list_worktrees(repo)[1:]]
    warnings = []
    for pattern in files:
        _check_pattern(pattern)
        matches = _matches(repo, pattern, excluded)
        if not matches:
            warnings.append(f"credential file {pattern!r} not found in {repo}: skipped")
        for src in matches:
            warning = _copy_one(src, worktree / src.relative_to(repo), worktree)
            if warning:
                warnings.append(warning)
    return warnings


def run_setup_commands(
    worktree: Path,
    commands: Sequence[str],
    env: Mapping[str, str],
    timeout: float | None,
    on_output: LineCallback | None = None,
    *,
    log_path: Path | None = None,
) -> None:
    """Run `commands` in order in `worktree`; stop at the first failure with SetupFailed.

    `env` is the complete environment of the commands; `timeout` applies to
    each command. Output goes to `log_path` (appended) and to `on_output`.
    """
    for command in commands:
        run = run_shell(
            command,
            cwd=Path(worktree),
            env=env,
            timeout=timeout,
            log_path=log_path,
            on_output=on_output,
        )
        if run.exit_code == 0:
            continue
        if run.timed_out:
            message = f"setup command timed out after {timeout}s: {command}"
        else:
            message = f"setup command failed with exit code {run.exit_code}: {command}"
        raise SetupFailed(
            message, command=command, exit_code=run.exit_code, output_tail=run.output_tail
        )
