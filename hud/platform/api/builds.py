"""Registry and builds under ``/v2`` (spec platform.md §3): upload slot, the unauthenticated PUT
of the context, trigger, status polling and the build-log WebSocket (key in ``?api_key=``)."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field

from hud.platform.api.deps import Caller, Limit, Offset
from hud.platform.services import PlatformError
from hud.platform.services.builds import BuildService

router = APIRouter(prefix="/v2")


def build_service(request: Request) -> BuildService:
    return request.app.state.builds


Builds = Annotated[BuildService, Depends(build_service)]


class Trigger(BaseModel):
    model_config = ConfigDict(extra="ignore")

    build_id: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=200)
    source: str | None = None
    no_cache: bool = False
    registry_id: str | None = None
    project_id: str | None = None
    runtime_provider: str | None = None
    runtime_config: dict[str, Any] | None = None
    environment_variables: dict[str, str] | None = None
    build_args: dict[str, str] | None = None
    build_secrets: dict[str, str] | None = None


def _page(items: list[dict[str, Any]], total: int) -> dict[str, Any]:
    return {"items": items, "total": total}


@router.get("/registry")
async def list_registry(
    caller: Caller,
    builds: Builds,
    search: str | None = None,
    sort_by: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    return _page(
        *await builds.list_environments(
            caller, search=search, limit=limit, offset=offset, sort_by=sort_by
        )
    )


@router.get("/registry/{env_id}")
async def get_registry(env_id: str, caller: Caller, builds: Builds) -> dict[str, Any]:
    return await builds.get_environment(caller, env_id)


class RuntimeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    #: Opt-in: the environment's secrets in clear, to run it on the caller's machine.
    include_secrets: bool = False


@router.post("/registry/{env_id}/runtime")
async def registry_runtime(
    env_id: str,
    caller: Caller,
    builds: Builds,
    body: RuntimeRequest | None = Body(default=None),
) -> dict[str, Any]:
    """The image to run the environment with; its secrets' values only when asked for."""
    wanted = body.include_secrets if body is not None else False
    return await builds.runtime(caller, env_id, include_secrets=wanted)


@router.post("/builds/upload-url")
async def upload_url(
    request: Request,
    caller: Caller,
    builds: Builds,
    _body: dict[str, Any] | None = Body(default=None),
) -> dict[str, Any]:
    return await builds.upload_url(caller, str(request.base_url))


@router.put("/builds/{build_id}/upload")
async def upload(
    build_id: str, request: Request, builds: Builds, token: str | None = None
) -> dict[str, Any]:
    size = await builds.receive_upload(build_id, token, request.stream())
    return {"build_id": build_id, "size": size}


@router.post("/builds/trigger")
async def trigger(body: Trigger, caller: Caller, builds: Builds) -> dict[str, Any]:
    return await builds.trigger(caller, body.model_dump())


@router.get("/builds/{build_id}/status")
async def status(build_id: str, caller: Caller, builds: Builds) -> dict[str, Any]:
    return await builds.status(caller, build_id)


@router.get("/builds/{build_id}")
async def get_build(build_id: str, caller: Caller, builds: Builds) -> dict[str, Any]:
    return await builds.status(caller, build_id)


@router.websocket("/builds/{build_id}/logs")
async def logs(
    websocket: WebSocket, build_id: str, api_key: Annotated[str | None, Query()] = None
) -> None:
    app = websocket.app
    try:
        caller = await app.state.identity.authenticate(api_key)
        await app.state.builds.check_access(caller, build_id)
    except PlatformError as exc:
        await websocket.accept()
        await websocket.close(code=4003, reason=exc.message[:120])
        return
    await websocket.accept()
    try:
        async for frame in app.state.builds.follow(caller, build_id):
            await websocket.send_json(frame)
    except (WebSocketDisconnect, RuntimeError):
        return
    with contextlib.suppress(Exception):
        await websocket.close(code=1000)
