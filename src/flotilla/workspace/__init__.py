"""Everything Flotilla does with git: worktrees, diffs, setup and test commands.

Knows nothing of agents or the store: functions take explicit paths and lists.
"""

from __future__ import annotations

from flotilla.workspace.diffing import Changes, collect_changes, diff_text
from flotilla.workspace.errors import (
    BadRef,
    GitFailed,
    NotARepository,
    PathEscape,
    SetupFailed,
    WorktreeConflict,
)
from flotilla.workspace.pool import WorktreePool
from flotilla.workspace.project_type import ProjectType, defaults_for, detect_project_type
from flotilla.workspace.repo import (
    branch_exists,
    current_worktree_root,
    find_project,
    is_valid_branch_name,
    repo_has_commits,
    resolve_ref,
)
from flotilla.workspace.setup import copy_credential_files, run_setup_commands
from flotilla.workspace.testing import run_test_command
from flotilla.workspace.testparse import parse_test_counts
from flotilla.workspace.worktrees import (
    WorktreeEntry,
    WorktreeInfo,
    commit_all,
    create_worktree,
    list_worktrees,
    remove_worktree,
)

__all__ = [
    "BadRef",
    "Changes",
    "GitFailed",
    "NotARepository",
    "PathEscape",
    "ProjectType",
    "SetupFailed",
    "WorktreeConflict",
    "WorktreeEntry",
    "WorktreeInfo",
    "WorktreePool",
    "branch_exists",
    "collect_changes",
    "commit_all",
    "copy_credential_files",
    "create_worktree",
    "current_worktree_root",
    "defaults_for",
    "detect_project_type",
    "diff_text",
    "find_project",
    "is_valid_branch_name",
    "list_worktrees",
    "parse_test_counts",
    "remove_worktree",
    "repo_has_commits",
    "resolve_ref",
    "run_setup_commands",
    "run_test_command",
]
