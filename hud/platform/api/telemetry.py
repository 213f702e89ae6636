"""Telemetry ingest (spec platform.md §5): span upload (Bearer) and the CLI analytics sink (no
auth, 204; events are not kept)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from hud.platform.api.ingest import answer, caller, parse
from hud.platform.urls import TELEMETRY_PREFIX

router = APIRouter(prefix=TELEMETRY_PREFIX)


class Upload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    telemetry: list[dict[str, Any]]


async def telemetry_upload(request: Request) -> Response:
    """``POST /telemetry/trace/<id>/telemetry-upload`` (registered on the app by
    `hud.platform.api.ingest.add_routes`)."""
    trace_id = request.path_params["trace_id"]
    ident = await caller(request)
    body = parse(Upload, await request.body())
    return answer(
        {"accepted": await request.app.state.runs.upload_spans(ident, trace_id, body.telemetry)}
    )


@router.post("/sdk-events/cli", status_code=204)
async def cli_events() -> Response:
    return Response(status_code=204)
