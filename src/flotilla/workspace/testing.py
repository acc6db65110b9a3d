"""Running the project's test command in a worktree: facts about a worker's result."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from flotilla.domain.worker import TestReport
from flotilla.workspace.shell import LineCallback, run_shell
from flotilla.workspace.testparse import TestCountParser


def run_test_command(
    worktree: Path,
    command: str,
    env: Mapping[str, str],
    timeout: float | None,
    *,
    log_path: Path | None = None,
    on_output: LineCallback | None = None,
) -> TestReport:
    """Run `command` through the shell in `worktree`; exit code, counts and output tail.

    `env` is the complete environment. A timeout kills the command's process
    group and reports exit code 124 with a note at the end of `output_tail`.
    """
    parser = TestCountParser()
    run = run_shell(
        command,
        cwd=Path(worktree),
        env=env,
        timeout=timeout,
        log_path=log_path,
        on_output=on_output,
        extra_callbacks=[parser.feed],
    )
    passed, failed = parser.result()
    return TestReport(
        command=command,
        exit_code=run.exit_code,
        passed=passed,
        failed=failed,
        output_tail=run.output_tail,
    )
