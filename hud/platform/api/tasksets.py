"""Tasksets and task upload under ``/v2`` (spec platform.md §4)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from hud.platform.api.deps import Caller
from hud.platform.services.tasksets import TasksetService

router = APIRouter(prefix="/v2")


def taskset_service(request: Request) -> TasksetService:
    return request.app.state.tasksets


Tasksets = Annotated[TasksetService, Depends(taskset_service)]


class TasksetCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    project_id: str | None = None


@router.get("/tasksets/by-name/{name:path}")
async def by_name(name: str, caller: Caller, service: Tasksets) -> dict[str, Any]:
    return await service.by_name(caller, name)


@router.get("/tasksets/{taskset_id}")
async def get_taskset(taskset_id: str, caller: Caller, service: Tasksets) -> dict[str, Any]:
    return await service.get(caller, taskset_id)


@router.get("/tasksets/{taskset_id}/export")
async def export(taskset_id: str, caller: Caller, service: Tasksets) -> dict[str, Any]:
    return await service.export(caller, taskset_id)


@router.post("/tasksets")
async def create(body: TasksetCreate, caller: Caller, service: Tasksets) -> dict[str, Any]:
    return await service.create(caller, body.name, body.project_id)


@router.post("/tasks/upload")
async def upload(
    caller: Caller, service: Tasksets, body: dict[str, Any] = Body(...)
) -> dict[str, Any]:
    return await service.upload(caller, body)
