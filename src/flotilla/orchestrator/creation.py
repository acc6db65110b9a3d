"""Creating a worker: validate everything first, then make its worktree; undo on failure.

Nothing is left half-made: a launch that fails at any step removes the worktree,
the branch and the store row it made, and says why.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from flotilla.config.loader import LoadedConfig
from flotilla.config.paths import runs_dir
from flotilla.counters import count
from flotilla.domain.errors import FlotillaError, UsageError
from flotilla.domain.names import validate_name
from flotilla.domain.states import WorkerState
from flotilla.domain.worker import Worker
from flotilla.executors.pricing import find_price
from flotilla.executors.registry import get_executor
from flotilla.orchestrator.policy import RetryPolicy
from flotilla.orchestrator.pooling import worktree_root
from flotilla.orchestrator.snapshot import RunSettings
from flotilla.orchestrator.turns import save_env
from flotilla.store.base import Store
from flotilla.workspace.pool import WorktreePool
from flotilla.workspace.repo import is_valid_branch_name, resolve_ref
from flotilla.workspace.setup import copy_credential_files, run_setup_commands
from flotilla.workspace.worktrees import create_worktree, remove_worktree

log = logging.getLogger(__name__)

# settings key: the worker continues in another worker's worktree (a workflow stage with
# worktree "inherit"), so undoing or killing it must not remove that worktree.
INHERITED = "inherited_worktree"


@dataclass
class CreateRequest:
    project: str  # the repository's main root
    name: str
    prompt: str
    agent: str | None = None
    model: str | None = None
    base_ref: str | None = None
    quick: bool = False
    interactive: bool = False
    batch: str | None = None
    depth: int = 0
    parent: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # Workflow stages (flotilla.orchestrator.workflow_engine):
    extra_flags: tuple[str, ...] = ()  # added after the agent's configured extra_flags
    timeout_s: float | None = None  # None: limits.timeout_s
    inherit_worktree: str | None = None  # continue in this existing worktree...
    inherit_branch: str | None = None  # ...on its branch (both or neither)


def _require_binary(agent: str, binary: str | None, env: dict[str, str]) -> None:
    executor = get_executor(agent)
    name = binary or executor.default_binary
    if name and shutil.which(name, path=env.get("PATH")) is None:
        raise UsageError(
            f"the {agent} agent CLI '{name}' is not installed or not on PATH: "
            f"{executor.install_hint}"
        )


def plan_worker(
    request: CreateRequest,
    loaded: LoadedConfig,
    store: Store,
    *,
    base_commit: str | None = None,
    runs: Path | None = None,
) -> Worker:
    """Every check that needs no side effect, so bad input creates nothing.

    `base_commit`: the base ref already resolved (a batch resolves it once for all).
    `runs`: the daemon's folder of worker folders (else the request environment's).
    """
    config = loaded.config
    repo = Path(request.project)
    name = validate_name(request.name)
    branch = request.inherit_branch or f"{config.project.branch_prefix}/{name}"
    if not is_valid_branch_name(branch):
        raise UsageError(f"worker name {name!r} does not make a valid branch name ({branch})")
    if not request.prompt.strip():
        raise UsageError("the prompt is empty: pass -p 'what to do' or --prompt-file FILE")
    if not config.project.allows_repository(repo):
        raise UsageError(
            f"repository {repo} is not in project.allowed_repositories: add it to your user config"
        )
    agent = request.agent or config.project.default_agent
    get_executor(agent)  # raises on an unknown kind
    if request.depth > config.limits.max_spawn_depth:
        raise UsageError(
            f"spawn depth {request.depth} is past limits.max_spawn_depth "
            f"({config.limits.max_spawn_depth}): this agent may not create more agents"
        )
    agent_settings = config.agent_settings(agent)
    if request.extra_flags:
        flags = (*agent_settings.extra_flags, *request.extra_flags)
        agent_settings = replace(agent_settings, extra_flags=flags)
    _require_binary(agent, agent_settings.binary, request.env)
    if base_commit is None:
        base_commit = resolve_ref(repo, request.base_ref or config.project.base_ref)
    if store.find_worker(str(repo), name) is not None:
        raise UsageError(
            f"a worker named {name!r} already exists in this project "
            f"(pick another name or `fleet kill {name}` first)"
        )
    root = worktree_root(loaded, repo)
    model = request.model or agent_settings.model
    price = find_price(model, loaded.prices()) if model else None
    limits = config.limits
    settings = RunSettings(
        agent=agent_settings,
        timeout_s=request.timeout_s or limits.timeout_s,
        stale_timeout_s=limits.stale_timeout_s,
        max_restarts=limits.max_restarts,
        retry=RetryPolicy(**config.retry.model_dump()),
        test_command=config.project.test_command,
        test_timeout_s=limits.test_timeout_s,
        base_commit=base_commit,
        price=price.to_dict() if price else None,
    )
    worker_id = uuid.uuid4().hex
    return Worker(
        id=worker_id,
        name=name,
        project=str(repo),
        agent=agent,
        prompt=request.prompt,
        state=WorkerState.QUEUED,
        batch=request.batch,
        model=model,
        base_ref=request.base_ref or config.project.base_ref,
        branch=branch,
        worktree="",  # set once the worktree is ready; the supervisor skips it until then
        run_dir=str((runs or runs_dir(request.env)) / worker_id),
        interactive=request.interactive,
        quick=request.quick,
        depth=request.depth,
        parent=request.parent,
        created_at=time.time(),
        settings={
            **settings.to_dict(),
            "worktree_path": request.inherit_worktree or str(root / name),
            **({INHERITED: True} if request.inherit_worktree else {}),
        },
    )


def prepare_worker(
    worker: Worker,
    request: CreateRequest,
    loaded: LoadedConfig,
    store: Store,
    *,
    pool: WorktreePool | None = None,
) -> Worker:
    """Store the row, make the worktree, copy credentials, run setup. Undo all on failure.

    With a pool, the worktree is claimed from it (a rename, not a checkout).
    """
    worker = store.create_worker(worker)
    make_workspace(worker, request, loaded, store, pool=pool)
    return publish_worker(worker, store)


def make_workspace(
    worker: Worker,
    request: CreateRequest,
    loaded: LoadedConfig,
    store: Store,
    *,
    pool: WorktreePool | None = None,
) -> None:
    """The worktree of a stored worker, with credentials and setup; on failure, the
    worktree, branch, run folder and row are removed and the error re-raised."""
    config = loaded.config
    repo = Path(worker.project)
    worktree = Path(worker.settings["worktree_path"])
    run_dir = Path(worker.run_dir)
    made_worktree = False
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_env(run_dir, request.env)
        if worker.settings.get(INHERITED):
            if not worktree.is_dir():
                raise UsageError(f"the worktree {worktree} to continue in no longer exists")
            return  # an upstream worker's worktree, already set up
        base = worker.settings["base_commit"]
        if pool is not None:
            pool.claim(worker.branch, base, worktree)
        else:
            create_worktree(repo, worktree, worker.branch, base)
        made_worktree = True
        if config.project.credential_files:
            copy_credential_files(repo, worktree, list(config.project.credential_files))
        commands = config.project.quick_setup if request.quick else config.project.setup_commands
        if commands:
            run_setup_commands(
                worktree,
                list(commands),
                env=request.env,
                timeout=config.limits.setup_timeout_s,
                log_path=run_dir / "setup.log",
            )
    except BaseException:
        count("service.launch_rolled_back")
        undo_worker(worker, made_worktree, store)
        raise


def publish_worker(worker: Worker, store: Store) -> Worker:
    """Make a prepared worker admissible: the supervisor starts rows that name a worktree."""
    return store.update_worker(worker.id, worktree=worker.settings["worktree_path"])


def undo_worker(worker: Worker, made_worktree: bool, store: Store) -> None:
    """Remove what a failed or abandoned launch made."""
    if made_worktree and not worker.settings.get(INHERITED):
        worktree = Path(worker.settings["worktree_path"])
        remove_worktree(
            Path(worker.project), worktree, delete_branch=worker.branch, keep_branch=False
        )
    shutil.rmtree(worker.run_dir, ignore_errors=True)
    store.delete_worker(worker.id)


# -- batches -------------------------------------------------------------------------

BATCH_THREADS = 4  # worktrees made at once: git is mostly process start-up and file writes


@dataclass
class BatchOutcome:
    """What a batch made, in request order, and what failed (each failure undone)."""

    created: list[Worker] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, one-line reason)


def create_batch(
    requests: Sequence[CreateRequest],
    loaded_for: Callable[[CreateRequest], LoadedConfig],
    store: Store,
    *,
    pool_for: Callable[[CreateRequest, LoadedConfig], WorktreePool | None] = lambda r, c: None,
    on_ready: Callable[[Worker], None] = lambda w: None,
    threads: int = BATCH_THREADS,
    runs: Path | None = None,
) -> BatchOutcome:
    """Many workers at once: validate all first (bad input creates nothing), store the rows
    in request order, make the worktrees concurrently, and release each worker to the
    supervisor as soon as it and every worker before it is ready, so admission keeps
    the request order. A worker whose worktree or setup fails is undone and listed in
    `failed`; the others go ahead."""
    seen = Counter((r.project, r.name) for r in requests)
    twice = sorted(name for (_, name), times in seen.items() if times > 1)
    if twice:
        raise UsageError(f"the batch names {twice[0]!r} twice: give each worker its own name")
    configs = [loaded_for(r) for r in requests]
    keys = [
        (r.project, r.base_ref or c.config.project.base_ref)
        for r, c in zip(requests, configs, strict=True)
    ]
    bases = {key: resolve_ref(Path(key[0]), key[1]) for key in dict.fromkeys(keys)}

    def plan(request: CreateRequest, loaded: LoadedConfig, key: tuple[str, str]) -> Worker:
        return plan_worker(request, loaded, store, base_commit=bases[key], runs=runs)

    width = max(1, min(threads, len(requests)))
    with ThreadPoolExecutor(width, thread_name_prefix="create") as executor:
        plans = list(executor.map(plan, requests, configs, keys))
        outcome = BatchOutcome()
        stored: list[tuple[Worker, CreateRequest, LoadedConfig]] = []
        for worker, request, loaded in zip(plans, requests, configs, strict=True):
            try:
                stored.append((store.create_worker(worker), request, loaded))
            except FlotillaError as exc:
                count("service.batch_worker_failed")
                outcome.failed.append((worker.name, str(exc)))
        futures = [
            executor.submit(
                make_workspace, worker, request, loaded, store, pool=pool_for(request, loaded)
            )
            for worker, request, loaded in stored
        ]
        for (worker, _, _), future in zip(stored, futures, strict=True):
            try:
                future.result()
                ready = publish_worker(worker, store)
            except Exception as exc:  # one worker's failure is not the batch's
                count("service.batch_worker_failed")
                log.exception("creating worker %s failed", worker.name)
                outcome.failed.append((worker.name, str(exc) or type(exc).__name__))
                continue
            outcome.created.append(ready)
            on_ready(ready)
    return outcome
