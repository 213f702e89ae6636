"""Hosted rollouts under ``/v2`` (spec platform.md §6): ``POST /v2/rollouts/submit`` queues a
trace that a worker runs and reports; ``GET /v2/rollouts/stats`` shows the queue. Polling
(``GET /v2/trace/<id>``) and cancellation (``/v2/rollouts/cancel*``) are the run service's.

``GET /v2/rollouts/<trace id>/wait?timeout=S`` (ours, not the official platform's) is a long
poll: the trace as ``GET /v2/trace/<id>`` returns it, once it is finished or after ``S``
seconds (at most 60), so our client learns of the end at once without polling often."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from hud.platform.api.deps import Caller, bearer
from hud.platform.services.rollouts import Busy, RolloutService

router = APIRouter(prefix="/v2")


def rollout_service(request: Request) -> RolloutService:
    return request.app.state.rollouts


Rollouts = Annotated[RolloutService, Depends(rollout_service)]


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str = Field(min_length=1, max_length=100)
    config: dict[str, Any] = Field(default_factory=dict)


class Submit(BaseModel):
    model_config = ConfigDict(extra="ignore")

    trace_id: str = Field(min_length=1, max_length=100)
    job_id: str = Field(min_length=1, max_length=100)
    env: str = Field(min_length=1, max_length=200)
    task: str = Field(min_length=1, max_length=500)
    slug: str | None = Field(default=None, max_length=500)
    args: dict[str, Any] = Field(default_factory=dict)
    agent: AgentSpec
    group_id: str | None = Field(default=None, max_length=100)
    parent_trace_id: str | None = Field(default=None, max_length=100)
    runtime_config: dict[str, Any] | None = None
    verifier: dict[str, Any] | None = None
    rollout_timeout: float | None = Field(default=None, gt=0)


@router.post("/rollouts/submit")
async def submit(body: Submit, request: Request, caller: Caller, rollouts: Rollouts) -> Any:
    try:
        return await rollouts.submit(
            caller, bearer(request) or "", str(request.base_url), body.model_dump()
        )
    except Busy as exc:
        return JSONResponse({"detail": exc.message}, status_code=429, headers={"Retry-After": "5"})


@router.get("/rollouts/stats")
async def stats(_caller: Caller, rollouts: Rollouts) -> Any:
    return rollouts.stats()


@router.get("/rollouts/{trace_id}/wait")
async def wait(
    trace_id: str,
    request: Request,
    caller: Caller,
    rollouts: Rollouts,
    timeout: Annotated[float, Query(ge=0, le=60)] = 20.0,
) -> Any:
    runs = request.app.state.runs
    await runs.get_trace(caller, trace_id)  # 404 for another team's or an unknown trace
    try:
        await rollouts.wait(trace_id, timeout)
    except Busy as exc:
        return JSONResponse({"detail": exc.message}, status_code=429, headers={"Retry-After": "1"})
    return await runs.get_trace(caller, trace_id)
