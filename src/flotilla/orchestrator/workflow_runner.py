"""The daemon's workflow loop: advance a workflow when one of its workers ends, when a
request changes it, and every few seconds for every active one (which is also how a
restarted daemon picks up where the previous one died).

Advancing does git and file work, so it runs in threads; one workflow is advanced
by one thread at a time, and a workflow poked while it advances runs again after.
"""

from __future__ import annotations

import asyncio
import logging
import time

from flotilla.counters import count
from flotilla.domain.errors import NotFound
from flotilla.domain.worker import Worker
from flotilla.orchestrator.workflow_engine import WorkflowEngine

log = logging.getLogger(__name__)

SWEEP_S = 2.0


class WorkflowRunner:
    def __init__(self, engine: WorkflowEngine, *, sweep_s: float = SWEEP_S) -> None:
        self.engine = engine
        self.sweep_s = sweep_s
        self._dirty: set[str] = set()
        self._known: set[str] = set()  # active workflows: whose workers' ends matter
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        engine.on_change = self.poke

    def poke(self, workflow_id: str) -> None:
        """Advance this workflow soon. Safe from any thread."""
        self._known.add(workflow_id)
        self._dirty.add(workflow_id)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def worker_ended(self, worker: Worker) -> None:
        """The supervisor's hook: a worker reached a terminal state."""
        if worker.batch is not None and worker.batch in self._known:
            self.poke(worker.batch)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        last_sweep = float("-inf")
        while not stop.is_set():
            if time.monotonic() - last_sweep >= self.sweep_s:
                last_sweep = time.monotonic()
                await self._sweep()
            self._launch()
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            left = self.sweep_s - (time.monotonic() - last_sweep)
            await asyncio.wait(
                {waiter, stopper}, timeout=max(0.0, left), return_when="FIRST_COMPLETED"
            )
            waiter.cancel()
            stopper.cancel()
            self._wake.clear()
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _sweep(self) -> None:
        try:
            active = await asyncio.to_thread(self.engine.active_ids)
        except Exception:
            count("workflow.sweep_failed")
            log.exception("listing active workflows failed")
            return
        self._known = set(active) | {k for k in self._known if k in self._running}
        self._dirty.update(active)

    def _launch(self) -> None:
        for workflow_id in list(self._dirty):
            if workflow_id in self._running:
                continue  # it runs again when the current pass ends
            self._dirty.discard(workflow_id)
            task = asyncio.get_running_loop().create_task(self._advance(workflow_id))
            self._running[workflow_id] = task

    async def _advance(self, workflow_id: str) -> None:
        try:
            row = await asyncio.to_thread(self.engine.advance, workflow_id)
            if row.state.is_terminal:
                self._known.discard(workflow_id)
        except NotFound:
            count("workflow.advance_unknown")
            self._known.discard(workflow_id)
        except Exception:
            count("workflow.advance_failed")
            log.exception("advancing workflow %s failed", workflow_id)
        finally:
            self._running.pop(workflow_id, None)
            if workflow_id in self._dirty:
                self._wake.set()
