"""Errors raised by the workspace part.

UsageError (flotilla.domain.errors)       bad input: exit 2, nothing created
+-- NotARepository        the path is not inside a git repository
+-- BadRef                a base ref that does not name a commit
+-- WorktreeConflict      the branch or the worktree path already exists
+-- PathEscape            a path or pattern would leave its allowed root
OperationFailed (flotilla.domain.errors)  something we tried failed: exit 1
+-- GitFailed             a git command exited non-zero (`stderr` holds its message)
+-- SetupFailed           a setup command failed (`command`, `exit_code`, `output_tail`)
"""

from __future__ import annotations

from flotilla.domain.errors import OperationFailed, UsageError


class NotARepository(UsageError):
    pass


class BadRef(UsageError):
    pass


class WorktreeConflict(UsageError):
    pass


class PathEscape(UsageError):
    pass


class GitFailed(OperationFailed):
    def __init__(self, message: str, *, argv: list[str], returncode: int, stderr: str) -> None:
        super().__init__(message)
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


class SetupFailed(OperationFailed):
    def __init__(self, message: str, *, command: str, exit_code: int, output_tail: str) -> None:
        super().__init__(message)
        self.command = command
        self.exit_code = exit_code
        self.output_tail = output_tail
