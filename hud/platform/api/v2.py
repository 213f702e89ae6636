"""REST API under ``/v2`` (spec platform.md §1, §2, §5, §9): identity, projects, run
reporting, jobs, traces and cancellation. Thin: parse, call a service, answer."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hud.platform.api.deps import Caller, Identities, Limit, Offset, Runs
from hud.platform.api.ingest import parse, problems
from hud.platform.api.telemetry import Upload
from hud.platform.services import Identity, NotFound, PlatformError, RunService

router = APIRouter(prefix="/v2")


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class JobEnter(_Body):
    name: str | None = None
    group: int | None = None
    taskset_id: str | None = None


class TraceEnter(_Body):
    job_id: str | None = None
    group_id: str | None = None
    task_slug: str | None = None
    model: str | None = None
    parent_trace_id: str | None = None


class TraceExit(_Body):
    status: Literal["completed", "error", "cancelled"]
    reward: float | None = None
    error: str | None = None
    evaluation_result: Any = None
    stop_reason: str | None = None
    metadata: dict[str, Any] | None = None


class ProjectCreate(_Body):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None


class CancelJob(_Body):
    job_id: str


class CancelTrace(_Body):
    trace_id: str
    job_id: str | None = None


class ReportItem(_Body):
    kind: Literal["job", "enter", "exit", "spans"]
    id: str = Field(min_length=1, max_length=200)
    body: Any = None


class Reports(_Body):
    items: list[ReportItem] = Field(max_length=2000)


_REPORT_BODIES: dict[str, type[BaseModel]] = {
    "job": JobEnter,
    "enter": TraceEnter,
    "exit": TraceExit,
}


def page(items: list[dict[str, Any]], total: int) -> dict[str, Any]:
    return {"items": items, "total": total}


@router.get("/auth/me")
async def auth_me(caller: Caller, identities: Identities) -> dict[str, Any]:
    return await identities.me(caller)


@router.get("/projects")
async def list_projects(
    caller: Caller,
    identities: Identities,
    search: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    return page(*await identities.list_projects(caller, search=search, limit=limit, offset=offset))


@router.get("/projects/{project_id}")
async def get_project(project_id: str, caller: Caller, identities: Identities) -> dict[str, Any]:
    return await identities.get_project(caller, project_id)


@router.post("/projects")
async def create_project(
    body: ProjectCreate, caller: Caller, identities: Identities
) -> dict[str, Any]:
    return await identities.create_project(caller, body.name, body.description)


# -- run reporting (§5): served by `hud.platform.api.ingest` ------------------------------
# Each handler takes the app state, the caller, the path's id and the raw body.
async def job_enter(state: Any, ident: Identity, job_id: str | None, raw: bytes) -> dict[str, Any]:
    body = parse(JobEnter, raw)
    runs: RunService = state.runs
    return await runs.job_enter(
        ident, str(job_id), name=body.name, group=body.group, taskset_id=body.taskset_id
    )


async def trace_enter(
    state: Any, ident: Identity, trace_id: str | None, raw: bytes
) -> dict[str, Any]:
    body = parse(TraceEnter, raw)
    runs: RunService = state.runs
    return await runs.trace_enter(ident, str(trace_id), **body.model_dump())


async def trace_exit(
    state: Any, ident: Identity, trace_id: str | None, raw: bytes
) -> dict[str, Any]:
    body = parse(TraceExit, raw)
    runs: RunService = state.runs
    return await runs.trace_exit(ident, str(trace_id), **body.model_dump())


async def reports(state: Any, ident: Identity, _target: str | None, raw: bytes) -> dict[str, Any]:
    """Many §5 reports in one request (our reporter's batched form of job enter, trace
    enter/exit and span upload); one result per item, in order."""
    body = parse(Reports, raw)
    runs: RunService = state.runs
    results: list[dict[str, Any] | None] = [None] * len(body.items)
    ops: list[tuple[str, str, Any]] = []
    where: list[int] = []
    for i, item in enumerate(body.items):
        try:
            if item.kind == "spans":
                fields: Any = item.body
                if not isinstance(fields, list) or not all(isinstance(x, dict) for x in fields):
                    fields = Upload.model_validate({"telemetry": item.body}).telemetry
            else:
                model = _REPORT_BODIES[item.kind].model_validate(item.body or {})
                fields = model.model_dump()
        except ValidationError as exc:
            results[i] = {"status": 422, "detail": problems(exc.errors()[:1])}
            continue
        ops.append((item.kind, item.id, fields))
        where.append(i)
    for i, outcome in zip(where, await runs.report(ident, ops), strict=True):
        if isinstance(outcome, PlatformError):
            status = 404 if isinstance(outcome, NotFound) else 422
            results[i] = {"status": status, "detail": outcome.message}
        else:
            results[i] = {"status": 200}
    return {"results": results}


@router.get("/trace/{trace_id}")
async def get_trace(trace_id: str, caller: Caller, runs: Runs, request: Request) -> dict[str, Any]:
    trace = await runs.get_trace(caller, trace_id)
    return {**trace, "usage": await request.app.state.gateway.trace_usage(caller, trace_id)}


@router.get("/trace/{trace_id}/events")
async def trace_events(trace_id: str, caller: Caller, runs: Runs) -> dict[str, Any]:
    return await runs.trace_events(caller, trace_id)


@router.get("/trace/{trace_id}/spans")
async def trace_spans(trace_id: str, caller: Caller, runs: Runs) -> dict[str, Any]:
    items = await runs.trace_spans(caller, trace_id)
    return page(items, len(items))


@router.get("/jobs")
async def list_jobs(
    caller: Caller, runs: Runs, limit: Limit = 20, offset: Offset = 0
) -> dict[str, Any]:
    return page(*await runs.list_jobs(caller, limit=limit, offset=offset))


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, caller: Caller, runs: Runs, request: Request) -> dict[str, Any]:
    job = await runs.get_job(caller, job_id)
    return {**job, "usage": await request.app.state.gateway.job_usage(caller, job_id)}


@router.get("/jobs/{job_id}/traces")
async def job_traces(
    job_id: str, caller: Caller, runs: Runs, limit: Limit = 20, offset: Offset = 0
) -> dict[str, Any]:
    return page(*await runs.job_traces(caller, job_id, limit=limit, offset=offset))


@router.post("/rollouts/cancel_job")
async def cancel_job(body: CancelJob, caller: Caller, runs: Runs) -> dict[str, Any]:
    return {"cancelled": await runs.cancel_job(caller, body.job_id)}


@router.post("/rollouts/cancel")
async def cancel_trace(body: CancelTrace, caller: Caller, runs: Runs) -> dict[str, Any]:
    accepted = await runs.cancel_trace(caller, body.trace_id, body.job_id)
    return {"status": "accepted" if accepted else "not_found"}


@router.post("/rollouts/cancel_user_jobs")
async def cancel_user_jobs(
    caller: Caller, runs: Runs, _body: dict[str, Any] | None = Body(default=None)
) -> dict[str, Any]:
    return await runs.cancel_user_jobs(caller)
