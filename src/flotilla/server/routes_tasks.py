"""HTTP routes of coordination tasks: a team's queue, atomic claims under leases, results.

Each route names its Permission (domain/roles.py):

    READ           GET /tasks, /tasks/{id} (with its readiness), /tasks/{id}/history
    TASK_CREATE    POST /tasks
    TASK_ASSIGN    POST /tasks/{id}/assign, /tasks/{id}/requeue, /tasks/{id}/cancel
    TASK_CLAIM     POST /tasks/claim, /tasks/{id}/heartbeat, /tasks/{id}/release
    TASK_COMPLETE  POST /tasks/{id}/complete, /tasks/{id}/fail; PATCH /tasks/{id}

Beyond the role, who may act: a token acts for its own agent and on its own team's
tasks only; a coordinator's token acts on any team and may name another agent (and
then finishes, renews or releases a task whoever holds it). A local caller (the CLI
over the Unix socket) names the agent it acts for and is then held to that agent's
claims, or names none and acts as "user" with a coordinator's reach. Only a task's
holder renews, updates, completes, fails or releases it.

Errors, each one line under `error`, counted, with nothing stored: a body over 1 MiB
is 413; a body or query that does not fit its model 422 (naming each field, with
FastAPI's `detail` list beside it); a bad value the service refuses 400; a move the
task's state forbids (already claimed, not held, finished) 409; an unknown id 404; a
refused caller 401/403.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from flotilla.counters import count
from flotilla.domain.errors import IllegalTransition, UsageError
from flotilla.domain.roles import Permission
from flotilla.domain.tasks import MAX_LABEL_LENGTH, Task, TaskState
from flotilla.orchestrator.service import run_blocking
from flotilla.orchestrator.tasks import TaskService
from flotilla.server.auth import AuthError, Principal, require
from flotilla.server.fastlane import FastRoute
from flotilla.server.task_access import acting, claim_team, must_hold, on_team
from flotilla.server.task_bodies import (
    NAME,
    AssignBody,
    ClaimBody,
    CompleteBody,
    CreateBody,
    FailBody,
    HeartbeatBody,
    ReasonBody,
    UpdateBody,
)

P = Permission
DEFAULT_LIST_LIMIT = 500
MAX_LIST_LIMIT = 5000

TaskId = Path(min_length=1, max_length=NAME, description="The task's id (t-...).")


# -- errors as one line ----------------------------------------------------------------------


def describe_invalid(exc: RequestValidationError) -> str:
    """'bad request: title: String should have at most 200 characters; priority: ...'."""
    problems = []
    for error in exc.errors():
        loc = error.get("loc", ())
        if error.get("type") == "json_invalid":  # loc is ("body", offset)
            why = error.get("ctx", {}).get("error", "")
            problems.append(f"body: JSON decode error ({why} at character {loc[-1]})")
            continue
        where = ".".join(str(part) for part in loc[1:]) or "body"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return "bad request: " + "; ".join(problems)


class TaskRoute(APIRoute):
    """Answers, with one line under `error` (as every other Flotilla error) and counted: a
    request that does not fit its model (422) and a move the task's state forbids (409).
    Oversized bodies never get here (server/limits.py refuses them for every route)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                count("api.tasks.bad_request")
                detail = [
                    {"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": e["type"]}
                    for e in exc.errors()
                ]
                body = {"error": describe_invalid(exc), "exit_code": 2, "detail": detail}
                return JSONResponse(body, status_code=422)
            except IllegalTransition as exc:
                count(f"api.tasks.conflict.{type(exc).__name__}")
                return JSONResponse({"error": str(exc), "exit_code": exc.exit_code}, 409)

        return handle


# -- the routes --------------------------------------------------------------------------------


def task_router(tasks: TaskService) -> APIRouter:
    router = APIRouter(route_class=TaskRoute, tags=["tasks"])

    async def in_team(task_id: str, principal: Principal) -> Task:
        task: Task = await run_blocking(lambda: tasks.get(task_id))
        on_team(principal, task.team)
        return task

    async def held(task_id: str, principal: Principal, named: str | None, doing: str) -> Any:
        """(task, actor, override) for a move on `task_id` by `principal` as `named`."""
        actor, override = acting(principal, named)
        task = await in_team(task_id, principal)
        must_hold(task, actor, override, doing)
        return task, actor, override

    @router.post("/tasks")
    async def create(
        body: CreateBody, principal: Principal = Depends(require(P.TASK_CREATE))
    ) -> dict[str, Any]:
        """Add a task to a team's queue; it can be claimed once its dependencies are done."""
        on_team(principal, body.team)
        creator = None if principal.local else principal.agent
        task = await run_blocking(lambda: tasks.create(created_by=creator, **body.model_dump()))
        return task.to_dict()

    @router.get("/tasks", dependencies=[Depends(require(P.READ))])
    async def list_tasks(
        team: str | None = Query(None, max_length=NAME),
        state: str | None = Query(None, max_length=200, description="States, comma-separated."),
        label: str | None = Query(None, max_length=MAX_LABEL_LENGTH),
        assignee: str | None = Query(None, max_length=NAME),
        limit: int = Query(DEFAULT_LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT),
    ) -> list[dict[str, Any]]:
        """Tasks oldest first, filtered by team, state(s), label and holder."""
        states = [s.strip() for s in state.split(",") if s.strip()] if state else None
        found = await run_blocking(
            lambda: tasks.list(team=team, state=states, label=label, assignee=assignee, limit=limit)
        )
        return [t.to_dict() for t in found]

    @router.post("/tasks/claim")
    async def claim(
        body: ClaimBody, principal: Principal = Depends(require(P.TASK_CLAIM))
    ) -> dict[str, Any]:
        """Atomically claim the best claimable task (highest priority, then oldest, its
        dependencies done, its needs met); `{"task": null}` when there is none."""
        return await claim_as(tasks, principal, body)

    @router.get("/tasks/{task_id}", dependencies=[Depends(require(P.READ))])
    async def get_task(task_id: str = TaskId) -> dict[str, Any]:
        """The task, whether its dependencies let it be claimed, and the state of each."""
        task: Task = await run_blocking(lambda: tasks.get(task_id))
        ready, states = await run_blocking(lambda: tasks.readiness(task_id))
        return {
            **task.to_dict(),
            "readiness": ready.value,
            "dependency_states": {dep: s.value for dep, s in states.items()},
        }

    @router.get("/tasks/{task_id}/history", dependencies=[Depends(require(P.READ))])
    async def history(task_id: str = TaskId) -> list[dict[str, Any]]:
        """Every move of the task, oldest first, each in one readable line."""
        return [e.to_dict() for e in await run_blocking(lambda: tasks.history(task_id))]

    @router.patch("/tasks/{task_id}")
    async def update(
        body: UpdateBody,
        task_id: str = TaskId,
        principal: Principal = Depends(require(P.TASK_COMPLETE)),
    ) -> dict[str, Any]:
        """Change the given fields and/or add a note to the history (its holder, or a
        coordinator). Dependencies and capability needs change only while it is queued."""
        task, actor, override = await held(task_id, principal, body.actor, "update")
        if not override and task.state is not TaskState.CLAIMED:
            raise AuthError(
                403,
                "auth.not_holder",
                f"task {task_id} is {task.state}, held by nobody: only a coordinator "
                "may update it now",
            )
        given = body.model_fields_set - {"actor", "note", "expect_version"}
        for field in sorted(given - {"agent_kind"}):
            if getattr(body, field) is None:
                raise UsageError(f"'{field}' cannot be null: leave it out to keep it as it is")
        changes = body.model_dump(include=given)  # the rest stay as they are
        version = body.expect_version
        moved = await run_blocking(
            lambda: tasks.update(
                task_id, actor=actor, note=body.note, expect_version=version, **changes
            )
        )
        return moved.to_dict()

    @router.post("/tasks/{task_id}/assign")
    async def assign(
        body: AssignBody,
        task_id: str = TaskId,
        principal: Principal = Depends(require(P.TASK_ASSIGN)),
    ) -> dict[str, Any]:
        """Claim a task on behalf of `assignee` (a lead handing out work). Taking a claimed
        task from its holder (`reassign`) is a coordinator's decision."""
        actor, override = acting(principal, None)
        await in_team(task_id, principal)
        if body.reassign and not override:
            raise AuthError(
                403,
                "auth.forbidden",
                f"role {principal.role.value!r} may not reassign a claimed task "
                "(only a coordinator may)",
            )
        moved = await run_blocking(lambda: tasks.assign(task_id, actor=actor, **body.model_dump()))
        return moved.to_dict()

    @router.post("/tasks/{task_id}/heartbeat")
    async def heartbeat(
        body: HeartbeatBody,
        task_id: str = TaskId,
        principal: Principal = Depends(require(P.TASK_CLAIM)),
    ) -> dict[str, Any]:
        """Renew the holder's lease to now + lease_s (a coordinator renews whoever holds it)."""
        task, actor, override = await held(task_id, principal, body.holder, "renew")
        holder = task.assignee if override and body.holder is None and task.assignee else actor
        moved = await run_blocking(lambda: tasks.heartbeat(task_id, holder, lease_s=body.lease_s))
        return moved.to_dict()

    @router.post("/tasks/{task_id}/complete")
    async def complete(
        body: CompleteBody,
        task_id: str = TaskId,
        principal: Principal = Depends(require(P.TASK_COMPLETE)),
    ) -> dict[str, Any]:
        """Mark a claimed task done with its result (any JSON value)."""
        _, actor, override = await held(task_id, principal, body.actor, "complete")
        moved = await run_blocking(
            lambda: tasks.complete(task_id, actor, body.result, coordinator=override)
        )
        return moved.to_dict()

    @router.post("/tasks/{task_id}/fail")
    async def fail(
        body: FailBody,
        task_id: str = TaskId,
        principal: Principal = Depends(require(P.TASK_COMPLETE)),
    ) -> dict[str, Any]:
        """Mark a claimed task failed, saying why."""
        _, actor, override = await held(task_id, principal, body.actor, "fail")
        moved = await run_blocking(
            lambda: tasks.fail(
                task_id, actor, body.reason, result=body.result, coordinator=override
            )
        )
        return moved.to_dict()

    @router.post("/tasks/{task_id}/release")
    async def release(
        body: ReasonBody,
        task_id: str = TaskId,
        principal: Principal = Depends(require(P.TASK_CLAIM)),
    ) -> dict[str, Any]:
        """Give a claimed task back to the queue."""
        _, actor, override = await held(task_id, principal, body.actor, "release")
        moved = await run_blocking(
            lambda: tasks.release(task_id, actor, reason=body.reason, coordinator=override)
        )
        return moved.to_dict()

    @router.post("/tasks/{task_id}/requeue")
    async def requeue(
        body: ReasonBody,
        task_id: str = TaskId,
        principal: Principal = Depends(require(P.TASK_ASSIGN)),
    ) -> dict[str, Any]:
        """Put a failed task back in the queue to be tried again."""
        actor, _ = acting(principal, body.actor)
        await in_team(task_id, principal)
        moved = await run_blocking(lambda: tasks.requeue(task_id, actor, reason=body.reason))
        return moved.to_dict()

    @router.post("/tasks/{task_id}/cancel")
    async def cancel(
        body: ReasonBody,
        task_id: str = TaskId,
        principal: Principal = Depends(require(P.TASK_ASSIGN)),
    ) -> dict[str, Any]:
        """Cancel a task that is not finished; its dependants become blocked."""
        actor, _ = acting(principal, body.actor)
        await in_team(task_id, principal)
        moved = await run_blocking(lambda: tasks.cancel(task_id, actor, reason=body.reason))
        return moved.to_dict()

    return router


async def claim_as(tasks: TaskService, principal: Principal, body: ClaimBody) -> dict[str, Any]:
    """POST /tasks/claim, for the route and the fast lane alike."""
    claimer, _ = acting(principal, body.claimer)
    team = claim_team(principal, body.team)
    needs = body.model_dump(exclude={"claimer", "team"})
    task = await tasks.claim_soon(claimer, team=team, **needs)
    return {"task": None if task is None else task.to_dict()}


def task_fast_routes(tasks: TaskService) -> list[FastRoute]:
    """The claim in the fast lane (server/fastlane.py): agents claim often."""

    async def claim(who: Principal, _: dict[str, str], __: dict[str, str], body: Any) -> Any:
        return await claim_as(tasks, who, body)

    return [FastRoute("POST", "/tasks/claim", claim, ClaimBody)]
