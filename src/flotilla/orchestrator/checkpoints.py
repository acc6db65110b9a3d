"""Checkpoints: save where a worker is (branch, commit, agent session, summary, notes) under
a name, and later start a new worker that continues from there.

Saving commits whatever the worker left uncommitted first (as `fleet merge` does),
so the checkpoint's commit holds every file. The commit is pinned by a ref of its
own, `refs/flotilla/checkpoints/<name>`, so it outlives the worker's branch
(`fleet kill` deletes that) and git's garbage collection.

Restoring creates a new worker (a new branch) whose worktree starts at the
checkpoint's commit. When the agent kind can resume sessions and the checkpoint
has one, the new worker's first turn resumes that session with the prompt, the
way a follow-up prompt does (a queued prompt row and `next_turn = "prompt"`, set
before the worktree is published, so the supervisor's first start of the worker
is already that resumed turn). Otherwise the agent starts a new session whose
prompt carries the checkpoint's summary and notes.

The real CLIs look sessions up by working folder (claude, gemini) and the new worker
runs in a new worktree, so before anything is created the executor files a copy of the
session where its CLI will look for the new worktree (`Executor.carry_session`). When it
cannot (the session is gone from the agent's store), the restore falls back to a new
session with the summary and notes, and counts `checkpoints.session_not_carried`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flotilla import counters
from flotilla.domain.coordination import (
    DEFAULT_RESTORE_PROMPT,
    MAX_NOTES_CHARS,
    MAX_PROMPT_CHARS,
    Checkpoint,
    check_name,
    check_text,
    restore_prompt,
)
from flotilla.domain.errors import UsageError
from flotilla.domain.worker import Worker
from flotilla.executors.base import SessionPlace
from flotilla.executors.registry import get_executor
from flotilla.orchestrator.coordination import OnEvent
from flotilla.orchestrator.creation import (
    CreateRequest,
    make_workspace,
    plan_worker,
    publish_worker,
    undo_worker,
)
from flotilla.orchestrator.service import FleetService
from flotilla.orchestrator.snapshot import RunSettings
from flotilla.orchestrator.turns import load_env
from flotilla.store.coordination_sql import CoordinationStore, coordination_store
from flotilla.workspace import _git
from flotilla.workspace.errors import BadRef
from flotilla.workspace.merging import save_source_work
from flotilla.workspace.repo import resolve_ref

log = logging.getLogger(__name__)

REF_PREFIX = "refs/flotilla/checkpoints/"


def checkpoint_ref(name: str) -> str:
    return REF_PREFIX + check_name("checkpoint", name)


def _pin(repo: Path, name: str, commit: str) -> None:
    # A ref is the one thing git keeps reachable for good. (workspace has no public
    # function for refs outside refs/heads yet; this is its only user.)
    _git.run(repo, ["update-ref", checkpoint_ref(name), commit])


class Checkpoints:
    """Save, list and restore the checkpoints of a FleetService's workers."""

    def __init__(
        self,
        service: FleetService,
        *,
        clock: Callable[[], float] = time.time,
        on_event: OnEvent | None = None,
    ) -> None:
        self.service = service
        self.store: CoordinationStore = coordination_store(service.store)
        self.clock = clock
        self.on_event = on_event

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(kind, payload)
        except Exception:  # stored already; a listener's failure must not undo it
            counters.count("checkpoints.event_failed")
            log.exception("publishing %s failed", kind)

    # -- saving -------------------------------------------------------------------------------

    def create(
        self,
        project: str,
        worker_name: str,
        name: str,
        *,
        notes: str = "",
        created_by: str | None = None,
    ) -> dict[str, Any]:
        """Checkpoint `worker_name` as `name`: its uncommitted work is committed first.

        A running worker may be checkpointed too (an agent saving its own progress):
        its work so far is committed on its branch, and it goes on from there."""
        name = check_name("checkpoint", name)
        notes = check_text("notes", notes, MAX_NOTES_CHARS, required=False)
        if self.store.find_checkpoint(project, name) is not None:
            raise UsageError(
                f"a checkpoint named {name!r} already exists in this project: pick another name"
            )
        worker = self.service.get_worker(project, worker_name)
        worktree = Path(worker.worktree) if worker.worktree else None
        if worktree is None or not worktree.is_dir() or not worker.branch:
            raise UsageError(
                f"worker {worker.name!r} has no worktree (it is not ready, or was removed): "
                "there is nothing to checkpoint"
            )
        repo = Path(worker.project)
        save_source_work(repo, worker.branch, worktree)
        checkpoint = Checkpoint(
            id=uuid.uuid4().hex,
            project=worker.project,
            name=name,
            worker=worker.name,
            agent=worker.agent,
            model=worker.model,
            branch=worker.branch,
            commit=resolve_ref(worktree, "HEAD"),
            session_id=worker.session_id,
            summary=str((worker.result or {}).get("summary") or ""),
            notes=notes,
            created_at=self.clock(),
            created_by=created_by,
        )
        self.store.create_checkpoint(checkpoint)
        try:
            _pin(repo, name, checkpoint.commit)
        except BaseException:
            counters.count("checkpoints.pin_failed")
            self.store.delete_checkpoint(checkpoint.project, name)
            raise
        self._emit("checkpoint.created", checkpoint.to_dict())
        return checkpoint.to_dict()

    def list_checkpoints(self, project: str) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self.store.list_checkpoints(project)]

    def get(self, project: str, name: str) -> dict[str, Any]:
        return self.store.get_checkpoint(project, check_name("checkpoint", name)).to_dict()

    # -- restoring -----------------------------------------------------------------------------

    def restore(
        self,
        project: str,
        name: str,
        new_name: str,
        prompt: str | None = None,
        *,
        agent: str | None = None,
        model: str | None = None,
        env: Mapping[str, str] | None = None,
        resume: bool = True,
        depth: int = 0,
        parent: str | None = None,
    ) -> dict[str, Any]:
        """A new worker `new_name` on a new branch, starting at the checkpoint's commit; its
        first turn resumes the checkpoint's session when it can (see the module's doc)."""
        checkpoint = self.store.get_checkpoint(project, check_name("checkpoint", name))
        text = check_text("prompt", prompt or DEFAULT_RESTORE_PROMPT, MAX_PROMPT_CHARS)
        try:
            resolve_ref(Path(project), checkpoint.commit)
        except BadRef as exc:
            raise UsageError(
                f"the commit {checkpoint.commit[:12]} of checkpoint {checkpoint.name!r} is no "
                "longer in the repository: it cannot be restored"
            ) from exc
        kind = agent or checkpoint.agent
        same_agent = kind == checkpoint.agent
        session = checkpoint.session_id if resume and same_agent else None
        if session is not None and not get_executor(kind).supports_resume:
            session = None
        request = CreateRequest(
            project=project,
            name=new_name,
            prompt=restore_prompt(checkpoint, text, resumed=session is not None),
            agent=kind,
            model=model or (checkpoint.model if same_agent else None),
            base_ref=checkpoint.commit,
            env=dict(env or {}),
            depth=depth,
            parent=parent,
        )
        worker = None
        if session is not None:
            source = self._source_place(checkpoint.project, checkpoint.worker)
            worker = create_resuming(self.service, request, session, source)
            if worker is None:
                counters.count("checkpoints.session_not_carried")
                log.warning(
                    "session %s of checkpoint %s cannot be resumed in a new worktree: "
                    "%s starts a new session",
                    session,
                    checkpoint.name,
                    new_name,
                )
                session = None
                request.prompt = restore_prompt(checkpoint, text, resumed=False)
        if worker is None:
            worker = self.service.create_worker(request)
        self._emit(
            "checkpoint.restored",
            {"checkpoint": checkpoint.name, "worker": worker.name, "resumed_session": session},
        )
        return {
            "checkpoint": checkpoint.to_dict(),
            "worker": worker.to_dict(),
            "resumed_session": session,
        }

    def _source_place(self, project: str, worker_name: str) -> SessionPlace | None:
        """Where the checkpointed worker's turns ran, if it is still known."""
        worker = self.service.store.find_worker(project, worker_name)
        if worker is None:
            return None
        folder = worker.worktree or worker.settings.get("worktree_path")
        if not isinstance(folder, str) or not folder:
            return None
        return SessionPlace(Path(folder), agent_env(worker, load_env(Path(worker.run_dir))))


def agent_env(worker: Worker, env: Mapping[str, str]) -> dict[str, str]:
    """The environment `worker`'s agent runs with, as far as where it keeps sessions goes:
    `env` (the one it was created with) under its agent settings' env (orchestrator.turns)."""
    return {**env, **RunSettings.from_dict(worker.settings).agent.env}


def carry(
    worker: Worker, session_id: str, source: SessionPlace | None, env: Mapping[str, str]
) -> bool:
    """Make `session_id` resumable in the planned `worker`'s worktree (not made yet: the CLIs
    file sessions by path); False when it cannot be. `source` None: the checkpointed worker
    is gone, and the executor finds the session by its id alone."""
    target = SessionPlace(Path(worker.settings["worktree_path"]), agent_env(worker, env))
    try:
        return get_executor(worker.agent).carry_session(session_id, source or target, target)
    except OSError:
        counters.count("checkpoints.session_carry_failed")
        log.exception("carrying session %s to %s failed", session_id, target.folder)
        return False


def create_resuming(
    service: FleetService,
    request: CreateRequest,
    session_id: str,
    source: SessionPlace | None = None,
) -> Worker | None:
    """FleetService.create_worker, but the worker's first turn resumes `session_id` with
    `request.prompt` as a follow-up (CreateRequest has no field for it; see the module doc).
    None, with nothing created, when the session cannot be carried to the new worktree."""
    loaded = service.config_for(request.project, request.env)
    planned = plan_worker(request, loaded, service.store, runs=service.home / "runs")
    if not carry(planned, session_id, source, request.env):
        return None
    settings = {**planned.settings, "next_turn": "prompt"}
    worker = service.store.create_worker(
        dataclasses.replace(planned, session_id=session_id, settings=settings)
    )
    try:
        service.store.add_prompt(worker.id, request.prompt)
    except BaseException:
        counters.count("checkpoints.restore_rolled_back")
        undo_worker(worker, False, service.store)
        raise
    repo = Path(request.project)
    make_workspace(worker, request, loaded, service.store, pool=service.pools.pool(loaded, repo))
    ready = publish_worker(worker, service.store)
    service.on_change()
    service.pools.refill_later(loaded, repo)
    return ready
