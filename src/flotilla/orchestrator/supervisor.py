"""The supervisor: admits queued workers, follows running ones, and ends their turns.

One asyncio task in the daemon. Each pass reads new output of every active worker,
notices exits, stale and timed-out agents, and starts queued workers within the
concurrency limit. Work that can take long (git diff, the project's tests) runs in
threads so the loop keeps following everyone else. The store is the truth: the
supervisor keeps only caches that a restart rebuilds (trackers).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flotilla.counters import count
from flotilla.domain.errors import NotFound
from flotilla.domain.events import AgentEvent, EventKind
from flotilla.domain.states import Outcome, WorkerState
from flotilla.domain.worker import Worker
from flotilla.executors.pricing import Price
from flotilla.executors.registry import get_executor
from flotilla.orchestrator.admission import (
    HOOKS_START,
    IDENTITY_FILE,
    SESSION_USAGE,
    Admission,
)
from flotilla.orchestrator.adoption import Start, unrecorded_start
from flotilla.orchestrator.agent_env import AgentAccess
from flotilla.orchestrator.exitwatch import ExitWatches
from flotilla.orchestrator.followups import requeue_for_prompt
from flotilla.orchestrator.policy import TurnVerdict, backoff_delay, judge_turn
from flotilla.orchestrator.results import assemble_result, write_result
from flotilla.orchestrator.snapshot import RunSettings
from flotilla.orchestrator.turns import (
    TurnTracker,
    UsageDelta,
    append_transcript,
    attempt_dir,
    tmux_session_name,
)
from flotilla.runtime.process import ProcessIdentity, is_alive, kill_tree
from flotilla.runtime.tailer import read_exit
from flotilla.runtime.tmux import TmuxSession
from flotilla.store.base import Store

log = logging.getLogger(__name__)

ACTIVE = (WorkerState.STARTING, WorkerState.RUNNING, WorkerState.WAITING)
VANISHED = -1  # exit code recorded when the process died without leaving its exit status


class Supervisor:
    def __init__(
        self,
        store: Store,
        home: Path,
        *,
        max_concurrent: Callable[[str], int],
        tmux_socket: str = "flotilla",
        tick_s: float = 0.2,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        access: AgentAccess | None = None,  # the fleet's URL, socket and tokens, for agents
    ) -> None:
        self.store = store
        self.home = home
        self.max_concurrent = max_concurrent
        self.tmux_socket = tmux_socket
        self.tick_s = tick_s
        self.clock = clock
        self.rng = rng or random.Random()
        self.wake = asyncio.Event()
        self._trackers: dict[str, TurnTracker] = {}
        self._ending: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._exits = ExitWatches(on_exit=self.wake.set)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Called (from a thread) once a worker reached a terminal state: workflows advance.
        self.on_worker_end: Callable[[Worker], None] = lambda worker: None
        self._admission = Admission(
            store,
            home,
            max_concurrent=max_concurrent,
            tmux_socket=tmux_socket,
            clock=clock,
            on_started=self._watch_exit,
            on_failed=self._ended,
            access=access,
        )

    # -- the loop ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """A full pass every tick_s; in between, a wake-up (a launch, a kill, an agent's
        exit) only ends the turns of agents that exited and admits queued workers, so a
        burst of wake-ups does not re-read every running agent each time."""
        self._loop = asyncio.get_running_loop()
        last_full = float("-inf")
        while not stop.is_set():
            if time.monotonic() - last_full >= self.tick_s:
                last_full = time.monotonic()
                await self.tick()
            else:
                self._quick_pass()
            waiter = asyncio.ensure_future(self.wake.wait())
            left = self.tick_s - (time.monotonic() - last_full)
            await asyncio.wait({waiter}, timeout=max(0.0, left))
            waiter.cancel()
            self.wake.clear()
        self._exits.close()
        await self.drain()

    def notify(self) -> None:
        """Wake the loop from any thread (the service runs in worker threads)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.wake.set()
        else:
            loop.call_soon_threadsafe(self.wake.set)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def tick(self) -> None:
        for worker in self.store.list_workers(states=list(ACTIVE)):
            if worker.id in self._ending:
                continue
            try:
                self._watch(worker)
            except Exception:
                count("supervisor.watch_failed")
                log.exception("following worker %s failed", worker.name)
        self._exits.take_exited()  # all seen by this pass
        self._admit_all()

    def _quick_pass(self) -> None:
        for worker_id in self._exits.take_exited():
            if worker_id in self._ending:
                continue
            try:
                worker = self.store.get_worker(worker_id)
                if worker.state in ACTIVE:
                    self._watch(worker)
            except NotFound:
                count("supervisor.exited_worker_gone")  # killed: its row is gone
                self._forget(worker_id)
            except Exception:
                count("supervisor.watch_failed")
                log.exception("following worker %s failed", worker_id)
        self._admit_all()

    def _admit_all(self) -> None:
        try:
            self._admission.admit()
        except Exception:
            count("supervisor.admit_failed")
            log.exception("admission pass failed")

    def _watch_exit(self, worker_id: str, identity: ProcessIdentity) -> None:
        """Be woken when the agent's shim exits, not at the next periodic pass."""
        if self._loop is not None:
            self._exits.watch(worker_id, identity)

    def _forget(self, worker_id: str) -> None:
        self._trackers.pop(worker_id, None)
        self._exits.forget(worker_id)

    # -- following running workers ---------------------------------------------

    def _tracker(self, worker: Worker) -> TurnTracker:
        tracker = self._trackers.get(worker.id)
        if tracker is None:
            raw_price = RunSettings.from_dict(worker.settings).price
            tracker = TurnTracker(
                get_executor(worker.agent),
                attempt_dir(worker),
                worker.interactive,
                offset=worker.out_offset,
                price=Price.from_dict(raw_price) if raw_price else None,
                session_base=UsageDelta.from_dict(worker.settings.get(SESSION_USAGE)),
                hooks_start=int(worker.settings.get(HOOKS_START, 0)),
            )
            self._trackers[worker.id] = tracker
            if worker.pid is not None:
                self._watch_exit(worker.id, ProcessIdentity(worker.pid, worker.pid_started_at or 0))
        return tracker

    def _watch(self, worker: Worker) -> None:
        if worker.pid is None:
            self._adopt_unrecorded_start(worker)
            return
        tracker = self._tracker(worker)
        events = tracker.poll()
        now = self.clock()
        if events or tracker.activity:
            self._record_events(worker, events, tracker, now)
        exit_code = read_exit(attempt_dir(worker))
        if exit_code is None and not is_alive(
            ProcessIdentity(worker.pid, worker.pid_started_at or 0)
        ):
            exit_code = read_exit(attempt_dir(worker))  # it may have just been written
            if exit_code is None:
                count("supervisor.agent_vanished")
                exit_code = VANISHED
        if exit_code is not None:
            self._begin_end(worker, tracker, exit_code)
            return
        settings = RunSettings.from_dict(worker.settings)
        last_sign = max(worker.last_output_at or 0.0, worker.started_at or 0.0)
        if worker.state is not WorkerState.WAITING and now - last_sign > settings.stale_timeout_s:
            error = f"no output for {settings.stale_timeout_s:g}s"
            self._begin_end(worker, None, None, TurnVerdict(Outcome.STALE, error=error), kill=True)
        elif now - (worker.pid_started_at or now) > settings.timeout_s:  # this turn's age
            error = f"timed out after {settings.timeout_s:g}s"
            verdict = TurnVerdict(Outcome.TIMED_OUT, error=error)
            self._begin_end(worker, tracker, None, verdict, kill=True)

    def _record_events(
        self, worker: Worker, events: list[AgentEvent], tracker: TurnTracker, now: float
    ) -> None:
        append_transcript(Path(worker.run_dir), worker.attempt, events)
        fields: dict[str, Any] = {"out_offset": tracker.offset, "last_output_at": now}
        fields.update(_usage_fields(worker, tracker.account(events)))
        for event in events:
            if event.kind is EventKind.SESSION_STARTED and event.session_id:
                fields["session_id"] = event.session_id
        # An interactive agent that ended its turn sits at its prompt waiting for a person.
        idle = (EventKind.WAITING, EventKind.RESULT) if worker.interactive else (EventKind.WAITING,)
        if events and events[-1].kind in idle:
            if worker.state is not WorkerState.WAITING:
                fields["state"] = WorkerState.WAITING
        elif events and worker.state is not WorkerState.RUNNING:
            fields["state"] = WorkerState.RUNNING
        updated = self.store.update_worker(worker.id, **fields)
        worker.__dict__.update(updated.__dict__)

    def _stop_process(self, worker: Worker) -> None:
        if worker.interactive:
            TmuxSession(self.tmux_socket).kill_session(tmux_session_name(worker))
        if worker.pid is not None:
            kill_tree(ProcessIdentity(worker.pid, worker.pid_started_at or 0))

    def _adopt_unrecorded_start(self, worker: Worker) -> None:
        """The daemon died between starting a process and storing its PID."""
        if worker.state is not WorkerState.STARTING:
            self._end_adopted(worker)  # found ended before the last restart
            return
        folder = attempt_dir(worker, worker.attempt + 1)
        ident = folder / IDENTITY_FILE
        if ident.exists():
            raw = json.loads(ident.read_text())
            self.store.update_worker(
                worker.id,
                state=WorkerState.RUNNING,
                pid=raw["pid"],
                pid_started_at=raw["started_at"],
                attempt=worker.attempt + 1,
                out_offset=0,
            )
        else:  # no identity written: find the shim, or its traces (orchestrator.adoption)
            self._adopt_without_identity(worker, folder)

    def _end_adopted(self, worker: Worker) -> None:
        """A turn found ended without a recorded PID (RUNNING, pid None): end it."""
        exit_code = read_exit(attempt_dir(worker))
        code = VANISHED if exit_code is None else exit_code
        self._begin_end(worker, self._tracker(worker), code)

    def _adopt_without_identity(self, worker: Worker, folder: Path) -> None:
        found = unrecorded_start(folder)
        if isinstance(found, ProcessIdentity):
            count("supervisor.start_found_running")
            self.store.update_worker(
                worker.id,
                state=WorkerState.RUNNING,
                pid=found.pid,
                pid_started_at=found.started_at,
                attempt=worker.attempt + 1,
                out_offset=0,
            )
        elif found is Start.ENDED:  # it ran while no daemon watched: end its turn
            count("supervisor.start_found_ended")
            adopted = self.store.update_worker(
                worker.id, state=WorkerState.RUNNING, attempt=worker.attempt + 1, out_offset=0
            )
            self._end_adopted(adopted)
        else:
            count("supervisor.start_not_recorded")
            self.store.update_worker(worker.id, state=WorkerState.QUEUED)

    # -- ending a turn -----------------------------------------------------------

    def _begin_end(
        self,
        worker: Worker,
        tracker: TurnTracker | None,
        exit_code: int | None,
        verdict: TurnVerdict | None = None,
        kill: bool = False,
    ) -> None:
        """End a turn off the event loop: killing, git and tests can take a while."""
        self._ending.add(worker.id)
        task = asyncio.get_running_loop().create_task(
            self._end_turn(worker, tracker, exit_code, verdict, kill)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _end_turn(
        self,
        worker: Worker,
        tracker: TurnTracker | None,
        exit_code: int | None,
        verdict: TurnVerdict | None,
        kill: bool,
    ) -> None:
        try:
            await asyncio.to_thread(self._finish_turn, worker, tracker, exit_code, verdict, kill)
        except Exception:
            count("supervisor.end_turn_failed")
            log.exception("ending the turn of %s failed", worker.name)
        finally:
            self._ending.discard(worker.id)
            self._forget(worker.id)
            self.wake.set()

    def _finish_turn(
        self,
        worker: Worker,
        tracker: TurnTracker | None,
        exit_code: int | None,
        verdict: TurnVerdict | None,
        kill: bool = False,
    ) -> None:
        if kill:
            self._stop_process(worker)
        if tracker is not None and exit_code is not None:
            final = tracker.finish(exit_code)
            append_transcript(Path(worker.run_dir), worker.attempt, final)
            fields = _usage_fields(worker, tracker.account(final)) if final else {}
            if tracker.session_totals is not None:
                kept = dict(worker.settings)
                kept[SESSION_USAGE] = tracker.session_totals.to_dict()
                fields["settings"] = kept
            if fields:
                worker = self.store.update_worker(worker.id, **fields)
            verdict = verdict or judge_turn(tracker.events, exit_code)
            if exit_code == VANISHED:
                verdict = TurnVerdict(
                    Outcome.ERROR, verdict.summary, "agent process ended without an exit status"
                )
        assert verdict is not None
        current = self.store.get_worker(worker.id)
        if current.state not in ACTIVE:
            return  # cancelled or requeued while we were finishing
        settings = RunSettings.from_dict(current.settings)
        if verdict.outcome is Outcome.STALE and current.restarts < settings.max_restarts:
            count("supervisor.stale_restarts")
            self._requeue(current, "restart", restarts=current.restarts + 1)
            return
        if verdict.retryable and current.retries < settings.retry.max_retries:
            delay = backoff_delay(
                current.retries + 1, settings.retry, verdict.retry_after, self.rng
            )
            count("supervisor.rate_limit_retries")
            self._requeue(
                current,
                "retry",
                retries=current.retries + 1,
                not_before=self.clock() + delay,
                error=verdict.error,
            )
            return
        if verdict.outcome is not Outcome.AUTH_FAILED and self.store.pending_prompts(current.id):
            self._requeue(current, "prompt")
            return
        result = assemble_result(current, verdict, exit_code)
        write_result(Path(current.run_dir), result)
        ended = self.store.update_worker(
            current.id,
            state=result.outcome.final_state,
            outcome=result.outcome,
            result=result.to_dict(),
            error=result.error,
            ended_at=self.clock(),
        )
        if verdict.outcome is not Outcome.AUTH_FAILED and self.store.pending_prompts(ended.id):
            count("supervisor.prompt_crossed_turn_end")  # it came while this turn ended
            requeue_for_prompt(self.store, ended)
            return
        self._ended(ended)

    def _ended(self, worker: Worker) -> None:
        try:
            self.on_worker_end(worker)
        except Exception:
            count("supervisor.on_worker_end_failed")
            log.exception("reacting to the end of %s failed", worker.name)

    def _requeue(self, worker: Worker, mode: str, **fields: Any) -> None:
        settings = dict(worker.settings)
        settings["next_turn"] = mode
        self.store.update_worker(
            worker.id, state=WorkerState.QUEUED, settings=settings, pid=None, **fields
        )


def _usage_fields(worker: Worker, added: UsageDelta) -> dict[str, Any]:
    if added == UsageDelta():
        return {}
    return {
        "input_tokens": worker.input_tokens + added.input_tokens,
        "output_tokens": worker.output_tokens + added.output_tokens,
        "cost_usd": worker.cost_usd + added.cost_usd,
    }
