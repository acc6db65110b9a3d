"""The Worker (one agent run, possibly several attempts) and its Result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from flotilla.domain.states import Outcome, WorkerState


@dataclass(frozen=True)
class Worker:
    """One row of the `workers` table. The store is the truth for every field. Frozen: the
    daemon's store hands the same object to every reader (store/worker_cache.py)."""

    id: str
    name: str
    project: str  # absolute path of the repository's main worktree
    agent: str
    prompt: str
    state: WorkerState = WorkerState.QUEUED
    batch: str | None = None
    model: str | None = None
    base_ref: str = "HEAD"
    branch: str = ""
    worktree: str = ""
    run_dir: str = ""  # the worker's folder: logs, events, exit status, result.json
    interactive: bool = False
    quick: bool = False
    depth: int = 0  # spawn depth: children of an agent are one level deeper
    parent: str | None = None
    session_id: str | None = None
    pid: int | None = None
    pid_started_at: float | None = None  # process create time, to tell PID reuse apart
    attempt: int = 0  # how many times the agent process was started
    restarts: int = 0  # stale restarts used
    retries: int = 0  # rate-limit retries used
    not_before: float | None = None  # queued for a retry: do not start before this time
    seq: int = 0  # admission order
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    last_output_at: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    outcome: Outcome | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # agent settings frozen at launch
    out_offset: int = 0  # bytes of the raw output already read by the daemon's tailer

    def to_dict(self) -> dict[str, Any]:
        """A new dict; `result` and `settings` copied one level deep (asdict's deep copy
        cost 25 us a worker: most of the daemon's time on GET /workers)."""
        out = {name: getattr(self, name) for name in _FIELDS}
        out["result"] = None if self.result is None else dict(self.result)
        out["settings"] = dict(self.settings)
        out["state"] = self.state.value
        out["outcome"] = self.outcome.value if self.outcome else None
        return out


_FIELDS = tuple(f.name for f in fields(Worker))


@dataclass
class FileChange:
    path: str
    status: str  # added, modified, deleted, renamed, untracked
    insertions: int = 0
    deletions: int = 0


@dataclass
class TestReport:
    command: str
    exit_code: int
    passed: int | None = None
    failed: int | None = None
    output_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class Result:
    """Facts about a finished run: from git and the test run, not the agent's claims."""

    outcome: Outcome
    summary: str = ""  # the agent's own final text, shown as its summary, nothing more
    files: list[FileChange] = field(default_factory=list)
    insertions: int = 0
    deletions: int = 0
    commits: list[str] = field(default_factory=list)
    tests: TestReport | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    duration_s: float = 0.0
    session_id: str | None = None
    exit_code: int | None = None
    error: str | None = None
    next_steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["outcome"] = self.outcome.value
        return out
