"""Model registry routes under ``/v2`` (spec platform.md §10): the catalog, forks, checkpoint
trees and heads; ``POST /v2/models/<id>/checkpoints`` registers a checkpoint (optionally with a
serving endpoint the gateway routes the model to while it is the head)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from hud.platform.api.deps import Caller, Limit, Offset
from hud.platform.services.models import ModelService

router = APIRouter(prefix="/v2")


def model_service(request: Request) -> ModelService:
    return request.app.state.models


Models = Annotated[ModelService, Depends(model_service)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class Fork(_Body):
    source_model_id: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=200)


class Head(_Body):
    checkpoint_id: str = Field(min_length=1)


class CheckpointCreate(_Body):
    name: str = Field(min_length=1, max_length=200)
    parent_id: str | None = None
    base_url: str | None = None
    provider: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None
    metrics: dict[str, Any] | None = None
    activate: bool = False


@router.get("/models")
async def list_models(
    caller: Caller, models: Models, limit: Limit = 100, offset: Offset = 0
) -> dict[str, Any]:
    items, total = await models.list_models(caller, limit=limit, offset=offset)
    return {"items": items, "total": total}


@router.post("/models/fork")
async def fork_model(body: Fork, caller: Caller, models: Models) -> dict[str, Any]:
    return await models.fork(caller, body.source_model_id, body.name)


@router.get("/models/{model_id}")
async def get_model(model_id: str, caller: Caller, models: Models) -> dict[str, Any]:
    return await models.get_model(caller, model_id)


@router.get("/models/{model_id}/checkpoints")
async def list_checkpoints(model_id: str, caller: Caller, models: Models) -> list[dict[str, Any]]:
    return await models.checkpoints(caller, model_id)


@router.post("/models/{model_id}/checkpoints")
async def add_checkpoint(
    model_id: str, body: CheckpointCreate, caller: Caller, models: Models
) -> dict[str, Any]:
    return await models.add_checkpoint(
        caller,
        model_id,
        name=body.name,
        parent=body.parent_id,
        base_url=body.base_url,
        provider=body.provider,
        served_model=body.model,
        api_key=body.api_key.get_secret_value() if body.api_key else None,
        metrics=body.metrics,
        activate=body.activate,
    )


@router.put("/models/{model_id}/head")
async def set_head(model_id: str, body: Head, caller: Caller, models: Models) -> dict[str, Any]:
    return await models.set_head(caller, model_id, body.checkpoint_id)
