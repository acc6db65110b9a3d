"""Assemble a finished worker's Result from facts: git, the test run, token usage."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from flotilla.domain.states import Outcome
from flotilla.domain.worker import Result, Worker
from flotilla.orchestrator.policy import TurnVerdict
from flotilla.orchestrator.snapshot import RunSettings
from flotilla.orchestrator.turns import load_env
from flotilla.workspace.diffing import collect_changes
from flotilla.workspace.testing import run_test_command

RESULT_FILE = "result.json"


def assemble_result(worker: Worker, verdict: TurnVerdict, exit_code: int | None) -> Result:
    """Facts over claims: files come from git, test results from running the tests."""
    settings = RunSettings.from_dict(worker.settings)
    outcome = verdict.outcome
    result = Result(
        outcome=outcome,
        summary=verdict.summary,
        error=verdict.error,
        input_tokens=worker.input_tokens,
        output_tokens=worker.output_tokens,
        cost_usd=round(worker.cost_usd, 6),
        duration_s=round(time.time() - (worker.started_at or worker.created_at), 3),
        session_id=worker.session_id,
        exit_code=exit_code,
        next_steps=list(verdict.next_steps),
    )
    worktree = Path(worker.worktree)
    if not worktree.is_dir():
        return result
    changes = collect_changes(worktree, settings.base_commit)
    result.files = changes.files
    result.insertions = changes.insertions
    result.deletions = changes.deletions
    result.commits = changes.commits
    if outcome is Outcome.SUCCESS and not changes.has_changes:
        result.outcome = Outcome.NO_CHANGES
    if settings.test_command and outcome in (Outcome.SUCCESS, Outcome.BLOCKED):
        env = load_env(Path(worker.run_dir))
        result.tests = run_test_command(
            worktree, settings.test_command, env, settings.test_timeout_s
        )
        if not result.tests.ok and result.outcome is Outcome.SUCCESS:
            result.outcome = Outcome.TESTS_FAILED
    return result


def write_result(run_dir: Path, result: Result) -> None:
    """Atomically, so a reader never sees half a file."""
    path = run_dir / RESULT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2))
    os.replace(tmp, path)
