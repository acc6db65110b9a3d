"""Starting a workflow: resolve the definition, find every problem before anything starts,
then store it (all stages pending) for the engine to run.

Problems are reported all at once (WorkflowInvalid, exit 2): the graph's (cycles,
unknown stages, templates...) and the machine's (an agent CLI that is not
installed, a merge target branch that does not exist).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flotilla.counters import count
from flotilla.domain import dag
from flotilla.domain.errors import UsageError
from flotilla.domain.workflow import WorkflowInvalid, WorkflowSpec
from flotilla.executors.registry import get_executor, kinds
from flotilla.orchestrator.workflow_codec import spec_to_dict
from flotilla.orchestrator.workflow_context import Deps
from flotilla.orchestrator.workflow_files import load_builtin, parse_workflow
from flotilla.store.workflow_rows import WorkflowRow
from flotilla.workspace.merging import current_branch
from flotilla.workspace.repo import branch_exists, resolve_ref

ID_BYTES = 4  # 8 hex digits: short enough for worker names, checked unique on insert


@dataclass
class WorkflowRequest:
    """`fleet workflow run` (and POST /workflows): what to run and how."""

    project: str
    template: str | None = None  # a built-in template's name...
    workflow: dict[str, Any] | None = None  # ...or a workflow file's parsed contents
    source: str = "workflow"  # the file it came from, for messages
    params: dict[str, Any] = field(default_factory=dict)
    task_prompt: str | None = None
    fail_fast: bool = False
    max_cost_usd: float | None = None
    max_tokens: int | None = None
    merge: bool = False  # merge the result into `into` when the workflow succeeds
    into: str | None = None  # default: the branch checked out in the repository
    keep_loser_branches: bool = True
    env: dict[str, str] = field(default_factory=dict)
    depth: int = 0  # spawn depth of its workers (an agent that runs a workflow: one deeper)
    parent: str | None = None


def resolve_spec(request: WorkflowRequest) -> WorkflowSpec:
    """The WorkflowSpec a request names, with its command-line overrides applied."""
    if (request.template is None) == (request.workflow is None):
        raise UsageError("give either a workflow template or a workflow definition")
    if request.template is not None:
        spec = load_builtin(request.template, request.params, task_prompt=request.task_prompt)
    else:
        assert request.workflow is not None
        default = Path(request.source).stem or "workflow"
        spec = parse_workflow(
            request.workflow, request.source, request.params, default_name=default
        )
        if request.task_prompt is not None:
            spec = dataclasses.replace(spec, task_prompt=request.task_prompt)
    overrides: dict[str, Any] = {}
    if request.fail_fast:
        overrides["fail_fast"] = True
    if request.max_cost_usd is not None:
        overrides["max_cost_usd"] = request.max_cost_usd
    if request.max_tokens is not None:
        overrides["max_tokens"] = request.max_tokens
    return dataclasses.replace(spec, **overrides) if overrides else spec


def machine_problems(deps: Deps, spec: WorkflowSpec, request: WorkflowRequest) -> list[str]:
    """Problems of this machine and repository, not of the definition."""
    problems: list[str] = []
    config = deps.service.config_for(request.project).config
    path = request.env.get("PATH") if request.env else None
    known = set(kinds())
    used: dict[str, str] = {}
    for stage in spec.stages:
        for kind in (*stage.agent_kinds, *([stage.judge] if stage.judge else [])):
            used.setdefault(kind, stage.name)
    for kind, stage_name in used.items():
        if kind not in known:
            continue  # reported by dag.validate
        executor = get_executor(kind)
        binary = config.agent_settings(kind).binary or executor.default_binary
        if binary and shutil.which(binary, path=path) is None:
            problems.append(
                f"stage {stage_name!r} uses agent {kind!r}, whose CLI {binary!r} is not "
                f"installed or not on PATH: {executor.install_hint}"
            )
    if request.depth > config.limits.max_spawn_depth:
        problems.append(
            f"spawn depth {request.depth} is past limits.max_spawn_depth "
            f"({config.limits.max_spawn_depth}): this agent may not start a workflow"
        )
    repo = Path(request.project)
    if request.into is not None and not branch_exists(repo, request.into):
        problems.append(f"--into names branch {request.into!r}, which does not exist in {repo}")
    elif request.merge and request.into is None:
        try:
            current_branch(repo)
        except UsageError as exc:
            count("workflow.merge_target_missing")
            problems.append(f"--merge has no target: {exc}")
    return problems


def problems_of(deps: Deps, request: WorkflowRequest) -> tuple[WorkflowSpec, list[str]]:
    """The spec and every problem found, without starting anything."""
    spec = resolve_spec(request)
    problems = dag.validate(spec, set(kinds()))
    problems += machine_problems(deps, spec, request)
    return spec, problems


def create(deps: Deps, request: WorkflowRequest) -> WorkflowRow:
    """Validate, then store the workflow with every stage pending. Nothing runs yet."""
    spec, problems = problems_of(deps, request)
    if problems:
        raise WorkflowInvalid(spec.name or "?", problems)
    config = deps.service.config_for(request.project).config
    base_commit = resolve_ref(Path(request.project), config.project.base_ref)
    options = {
        "merge": request.merge,
        "into": request.into,
        "keep_loser_branches": request.keep_loser_branches,
        "base_commit": base_commit,
        "source": request.template or request.source,
        "depth": request.depth,
        "parent": request.parent,
    }
    workflow_id = secrets.token_hex(ID_BYTES)
    deps.save_env(workflow_id, request.env or dict(os.environ))
    row = WorkflowRow(
        id=workflow_id,
        name=spec.name,
        project=request.project,
        spec=spec_to_dict(spec),
        task_prompt=spec.task_prompt,
        options=options,
    )
    return deps.workflows.create_workflow(row, spec.stage_names)
