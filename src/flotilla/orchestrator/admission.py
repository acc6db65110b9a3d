"""Admission: start queued workers within each project's concurrency limit, oldest first.

The supervisor calls `admit()` on every pass. Starting a turn is stored before and
after the spawn (QUEUED -> STARTING, then RUNNING with the PID and its start time,
plus an identity file beside the output), so a daemon that dies in between finds
the process again (orchestrator.adoption).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from flotilla.counters import count
from flotilla.domain.states import Outcome, WorkerState
from flotilla.domain.worker import Worker
from flotilla.orchestrator.agent_env import AgentAccess
from flotilla.orchestrator.turns import attempt_dir, start_turn
from flotilla.runtime.process import ProcessIdentity
from flotilla.store.base import Store

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.json"
RESTART_PROMPT = (
    "Continue the task where you left off. (Flotilla restarted you after a period with no output.)"
)
HOOKS_START = "hooks_start"  # where this turn's lines begin in the hooks file
SESSION_USAGE = "session_usage"  # usage the session reported so far (cumulative CLIs)


class Admission:
    def __init__(
        self,
        store: Store,
        home: Path,
        *,
        max_concurrent: Callable[[str], int],
        tmux_socket: str,
        clock: Callable[[], float] = time.time,
        on_started: Callable[[str, ProcessIdentity], None] = lambda worker_id, identity: None,
        on_failed: Callable[[Worker], None] = lambda worker: None,
        access: AgentAccess | None = None,
    ) -> None:
        self.store = store
        self.home = home
        self.max_concurrent = max_concurrent
        self.tmux_socket = tmux_socket
        self.clock = clock
        self.on_started = on_started  # the supervisor watches the new process's exit
        self.on_failed = on_failed  # a worker that could not start ended (failed)
        self.access = access  # what agents get to reach the fleet (orchestrator.agent_env)

    def admit(self) -> None:
        """Start queued workers, oldest first, while each project has room."""
        now = self.clock()
        active: dict[str, int] = {}
        for worker in self.store.list_workers(states=[WorkerState.QUEUED]):
            if worker.not_before is not None and worker.not_before > now:
                continue
            if worker.worktree == "":
                continue  # still being prepared by the service
            running = active.get(worker.project)
            if running is None:
                running = self.store.count_active(worker.project)
            limit = self.max_concurrent(worker.project)
            if running >= limit:
                active[worker.project] = running
                continue
            if self.start(worker):
                running += 1
            active[worker.project] = running

    def start(self, worker: Worker) -> bool:
        """Start the worker's next turn (first, restart, or a follow-up prompt)."""
        mode = worker.settings.get("next_turn", "initial")
        prompt, resume = worker.prompt, False
        if mode == "restart":
            prompt, resume = RESTART_PROMPT, True
        elif mode == "prompt":
            row = self.store.take_next_prompt(worker.id)
            if row is None:
                count("supervisor.prompt_missing")
                mode = "initial"
            else:
                prompt, resume = row.text, True
        worker = self.store.update_worker(
            worker.id, expect_state=WorkerState.QUEUED, state=WorkerState.STARTING
        )
        try:
            started = start_turn(
                worker,
                prompt=prompt,
                resume=resume,
                home=self.home,
                tmux_socket=self.tmux_socket,
                access=self.access,
            )
        except Exception as exc:
            count("supervisor.start_failed")
            log.exception("starting %s failed", worker.name)
            failed = self.store.update_worker(
                worker.id,
                state=WorkerState.FAILED,
                outcome=Outcome.ERROR,
                error=f"could not start the agent: {exc}",
                ended_at=self.clock(),
            )
            self.on_failed(failed)
            return False
        identity = {"pid": started.identity.pid, "started_at": started.identity.started_at}
        (attempt_dir(worker, started.attempt) / IDENTITY_FILE).write_text(json.dumps(identity))
        now = self.clock()
        settings = dict(worker.settings)
        settings.pop("next_turn", None)
        settings[HOOKS_START] = started.hooks_start
        if not resume:
            settings.pop(SESSION_USAGE, None)  # a new session counts from zero
        self.on_started(worker.id, started.identity)
        self.store.update_worker(
            worker.id,
            state=WorkerState.RUNNING,
            pid=started.identity.pid,
            pid_started_at=started.identity.started_at,
            attempt=started.attempt,
            session_id=started.session_id or worker.session_id,
            started_at=worker.started_at or now,
            last_output_at=now,
            out_offset=0,
            not_before=None,
            settings=settings,
        )
        return True
