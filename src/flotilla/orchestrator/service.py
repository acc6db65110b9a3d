"""The service layer: what the CLI, the HTTP API and (later) MCP can ask of the fleet.

Every front end calls these methods; none reaches into the store or the runtime
itself.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from flotilla.config.loader import LoadedConfig, load_config
from flotilla.counters import count
from flotilla.domain.errors import IllegalTransition, NotFound, UsageError
from flotilla.domain.states import Outcome, WorkerState
from flotilla.domain.worker import Worker
from flotilla.orchestrator.creation import (
    BatchOutcome,
    CreateRequest,
    create_batch,
    plan_worker,
    prepare_worker,
)
from flotilla.orchestrator.followups import requeue_for_prompt
from flotilla.orchestrator.pooling import PoolKeeper, pool_dir_for
from flotilla.orchestrator.snapshot import RunSettings
from flotilla.orchestrator.turns import TRANSCRIPT_FILE, attempt_dir, tmux_session_name
from flotilla.runtime.process import ProcessIdentity, is_alive, kill_tree, tree_usage
from flotilla.runtime.tmux import TmuxSession
from flotilla.store.base import Store
from flotilla.workspace.diffing import diff_text
from flotilla.workspace.repo import find_project
from flotilla.workspace.worktrees import commit_all, list_worktrees, remove_worktree

ACTIVE = (WorkerState.STARTING, WorkerState.RUNNING, WorkerState.WAITING)


@dataclass
class WorkerView:
    """A worker plus what is measured live (CPU and RAM of its process tree)."""

    worker: Worker
    cpu_percent: float | None = None
    rss_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = self.worker.to_dict()
        out["cpu_percent"] = self.cpu_percent
        out["rss_bytes"] = self.rss_bytes
        return out


class FleetService:
    def __init__(
        self,
        store: Store,
        home: Path,
        *,
        tmux_socket: str = "flotilla",
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.home = home
        self.tmux = TmuxSession(tmux_socket)
        self.on_change = on_change  # wakes the supervisor
        self._configs: dict[str, tuple[float, LoadedConfig]] = {}
        self.pools = PoolKeeper()  # warm worktrees of projects with limits.worktree_pool > 0

    # -- config ----------------------------------------------------------------

    def config_for(self, project: str, env: dict[str, str] | None = None) -> LoadedConfig:
        """Project config, cached until its file changes."""
        path = Path(project) / ".flotilla" / "config.toml"
        mtime = path.stat().st_mtime if path.exists() else 0.0
        cached = self._configs.get(project)
        if cached and cached[0] == mtime and env is None:
            return cached[1]
        loaded = load_config(Path(project), env) if env is not None else load_config(Path(project))
        self._configs[project] = (mtime, loaded)
        return loaded

    def max_concurrent(self, project: str) -> int:
        try:
            return int(self.config_for(project).config.limits.max_concurrent)
        except UsageError:
            count("service.config_unreadable")
            return 1

    # -- workers -----------------------------------------------------------------

    def create_worker(self, request: CreateRequest) -> Worker:
        loaded = self.config_for(request.project, request.env)
        worker = plan_worker(request, loaded, self.store, runs=self.home / "runs")
        repo = Path(request.project)
        pool = self.pools.pool(loaded, repo)
        worker = prepare_worker(worker, request, loaded, self.store, pool=pool)
        self.on_change()
        self.pools.refill_later(loaded, repo)
        return worker

    def create_workers(self, requests: list[CreateRequest]) -> BatchOutcome:
        """Many workers in one call: all validated first, worktrees made concurrently,
        each released to the supervisor as soon as it is ready (in request order)."""
        loaded: dict[tuple[str, tuple[tuple[str, str], ...]], LoadedConfig] = {}

        def loaded_for(request: CreateRequest) -> LoadedConfig:
            key = (request.project, tuple(sorted(request.env.items())))
            if key not in loaded:
                loaded[key] = self.config_for(request.project, request.env)
            return loaded[key]

        outcome = create_batch(
            requests,
            loaded_for,
            self.store,
            pool_for=lambda request, config: self.pools.pool(config, Path(request.project)),
            on_ready=lambda _: self.on_change(),
            runs=self.home / "runs",
        )
        for (project, _), config in loaded.items():
            self.pools.refill_later(config, Path(project))
        return outcome

    def cached_worker(self, project: str, name: str) -> Worker | None:
        """The worker if the store has it in memory: no I/O, so fine on the event loop."""
        return self.store.cached_worker(project, name)

    def get_worker(self, project: str, name: str) -> Worker:
        worker = self.store.find_worker(project, name)
        if worker is None:
            raise NotFound(f"no worker named {name!r} in this project (see `fleet list`)")
        return worker

    def list_workers(
        self,
        project: str | None = None,
        states: list[WorkerState] | None = None,
        batch: str | None = None,
        pattern: str | None = None,
        measure: bool = True,
    ) -> list[WorkerView]:
        views = []
        for worker in self.store.list_workers(project=project, states=states, batch=batch):
            if pattern and not fnmatch.fnmatchcase(worker.name, pattern):
                continue
            view = WorkerView(worker)
            if measure and worker.state in ACTIVE and worker.pid:
                usage = tree_usage(ProcessIdentity(worker.pid, worker.pid_started_at or 0))
                if usage is not None:
                    view.cpu_percent = usage.cpu_percent
                    view.rss_bytes = usage.rss_bytes
            views.append(view)
        return views

    def select(self, project: str, pattern: str | None, batch: str | None = None) -> list[Worker]:
        """Workers matching a glob and/or a batch; NotFound if none."""
        workers = [
            v.worker
            for v in self.list_workers(project, batch=batch, pattern=pattern, measure=False)
        ]
        if not workers:
            what = f"matching {pattern!r}" if pattern else f"in batch {batch!r}"
            raise NotFound(f"no worker {what} in this project (see `fleet list`)")
        return workers

    def kill(self, worker: Worker, *, keep_branch: bool = False) -> Worker:
        """Stop the process tree, then remove worktree, branch and record.

        With keep_branch, uncommitted work is committed to the branch first, so
        nothing is lost.
        """
        if worker.state in ACTIVE or worker.state is WorkerState.QUEUED:
            worker = self.store.update_worker(
                worker.id,
                state=WorkerState.CANCELLED,
                outcome=Outcome.CANCELLED,
                ended_at=time.time(),
            )
        if worker.interactive:
            self.tmux.kill_session(tmux_session_name(worker))
        if worker.pid:
            kill_tree(ProcessIdentity(worker.pid, worker.pid_started_at or 0))
        worktree = Path(worker.worktree) if worker.worktree else None
        if worktree is not None and self._shares_worktree(worker):
            worktree = None  # a workflow stage continues in it: the last one out removes it
        if worktree is not None and worktree.is_dir() and keep_branch:
            commit_all(worktree, f"flotilla: uncommitted work of {worker.name}")
        if worktree is not None:
            remove_worktree(
                Path(worker.project), worktree, delete_branch=worker.branch, keep_branch=keep_branch
            )
        shutil.rmtree(worker.run_dir, ignore_errors=True)
        self.store.delete_worker(worker.id)
        self.on_change()
        return worker

    def _shares_worktree(self, worker: Worker) -> bool:
        """Another worker record works in the same worktree (workflow worktree "inherit")."""
        return any(
            other.id != worker.id and other.worktree == worker.worktree
            for other in self.store.list_workers(project=worker.project)
        )

    def prompt(self, worker: Worker, text: str) -> dict[str, Any]:
        """A follow-up. Headless: queued and delivered as the next turn (session resume).
        Interactive: typed into the pane, then confirmed from the pane's transcript."""
        if not text.strip():
            raise UsageError("the message is empty: give the text to send")
        if worker.state is WorkerState.CANCELLED:
            raise UsageError(f"worker {worker.name!r} was cancelled; create a new one")
        if worker.interactive:
            return self._prompt_pane(worker, text)
        prompt_id = self.store.add_prompt(worker.id, text)
        current = self.store.get_worker(worker.id)  # its turn may have ended meanwhile
        if current.state.is_terminal:
            requeue_for_prompt(self.store, current)
            status = "queued"
        else:
            status = "queued until the current turn ends"
        self.on_change()
        return {"id": prompt_id, "status": status}

    def _prompt_pane(self, worker: Worker, text: str) -> dict[str, Any]:
        name = tmux_session_name(worker)
        if worker.state not in ACTIVE or not self.tmux.session_exists(name):
            return {"status": "not delivered", "reason": "the agent's tmux session is not running"}
        self.tmux.send_text(name, text)
        probe = text.strip().splitlines()[0][:40]
        for _ in range(20):  # confirm within ~2 s
            if probe in self.tmux.capture(name, lines=200):
                # It works again: watch it for staleness from now on.
                fields: dict[str, Any] = {"last_output_at": time.time()}
                if worker.state is WorkerState.WAITING:
                    fields["state"] = WorkerState.RUNNING
                self.store.update_worker(worker.id, **fields)
                return {"status": "delivered"}
            time.sleep(0.1)
        count("service.pane_prompt_unconfirmed")
        return {"status": "not delivered", "reason": "the text did not appear in the agent's pane"}

    # -- reading results ----------------------------------------------------------

    def result(self, worker: Worker) -> dict[str, Any]:
        if worker.result is None:
            raise UsageError(f"worker {worker.name!r} is {worker.state}: it has no result yet")
        return worker.result

    def diff(self, worker: Worker, stat: bool = False) -> str:
        if not worker.worktree or not Path(worker.worktree).is_dir():
            raise UsageError(f"worker {worker.name!r} has no worktree")
        base = RunSettings.from_dict(worker.settings).base_commit
        return diff_text(Path(worker.worktree), base, stat=stat)

    def transcript(self, worker: Worker, lines: int | None = None) -> list[dict[str, Any]]:
        path = Path(worker.run_dir) / TRANSCRIPT_FILE
        if not path.exists():
            return []
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return records[-lines:] if lines else records

    def raw_output(self, worker: Worker) -> str:
        chunks = []
        for attempt in range(1, worker.attempt + 1):
            path = attempt_dir(worker, attempt) / "stdout"
            if path.exists():
                chunks.append(path.read_text(errors="replace"))
        return "".join(chunks)

    # -- repair ----------------------------------------------------------------------

    def repair(self, project: str) -> list[str]:
        """Reconcile the store with reality: processes, tmux sessions, worktrees on disk."""
        fixed: list[str] = []
        find_project(Path(project))  # NotARepository (400), not a git failure (500)
        for worker in self.store.list_workers(project=project):
            if worker.state in ACTIVE and worker.pid:
                alive = is_alive(ProcessIdentity(worker.pid, worker.pid_started_at or 0))
                if not alive and not (attempt_dir(worker) / "exit").exists():
                    try:
                        self.store.update_worker(
                            worker.id,
                            expect_state=worker.state,
                            state=WorkerState.FAILED,
                            outcome=Outcome.ERROR,
                            error="agent process is gone (found by repair)",
                            ended_at=time.time(),
                        )
                        fixed.append(f"{worker.name}: process gone, marked failed")
                    except IllegalTransition:  # the supervisor ended the turn meanwhile
                        count("service.repair_raced_supervisor")
            if worker.worktree and not Path(worker.worktree).is_dir():
                fixed.append(f"{worker.name}: worktree missing on disk, record removed")
                self.store.delete_worker(worker.id)
        # Workers still being prepared own their worktree path already; pool entries
        # are Flotilla's own spares.
        known = {
            w.worktree or w.settings.get("worktree_path", "")
            for w in self.store.list_workers(project=project)
        }
        pool = pool_dir_for(self.config_for(project), Path(project)).resolve()
        for entry in list_worktrees(Path(project)):
            path, branch = str(entry[0]), entry[1]
            if Path(path).resolve().is_relative_to(pool):
                continue
            if branch and branch.startswith(self._prefix(project)) and path not in known:
                remove_worktree(Path(project), Path(path), delete_branch=branch, keep_branch=True)
                fixed.append(f"{path}: orphan worktree removed (branch {branch} kept)")
        prefix = "flotilla-"
        names = {tmux_session_name(w) for w in self.store.list_workers()}
        for session in self.tmux.list_sessions(prefix):
            if session not in names:
                self.tmux.kill_session(session)
                fixed.append(f"tmux session {session}: orphan, killed")
        self.on_change()
        return fixed

    def _prefix(self, project: str) -> str:
        return f"{self.config_for(project).config.project.branch_prefix}/"


T = TypeVar("T")


async def run_blocking(func: Callable[..., T], *args: Any) -> T:
    """Service calls do file and process I/O: keep them off the event loop."""
    return await asyncio.to_thread(func, *args)
