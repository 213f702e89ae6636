"""Telemetry ingest (spec platform.md §5): span upload (Bearer) and the CLI analytics sink (no
auth, 204; events are not kept)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from hud.platform.api.ingest import parse
from hud.platform.services import Identity
from hud.platform.urls import TELEMETRY_PREFIX

router = APIRouter(prefix=TELEMETRY_PREFIX)


class Upload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    telemetry: list[dict[str, Any]]


async def telemetry_upload(
    state: Any, ident: Identity, trace_id: str | None, raw: bytes
) -> dict[str, Any]:
    """``POST /telemetry/trace/<id>/telemetry-upload`` (served by `hud.platform.api.ingest`)."""
    body = parse(Upload, raw)
    return {"accepted": await state.runs.upload_spans(ident, str(trace_id), body.telemetry)}


@router.post("/sdk-events/cli", status_code=204)
async def cli_events() -> Response:
    return Response(status_code=204)
