"""Telemetry ingest (spec platform.md §5): span upload (Bearer) and the CLI analytics sink (no
auth, 204; events are not kept)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from hud.platform.api.deps import Caller, Runs
from hud.platform.urls import TELEMETRY_PREFIX

router = APIRouter(prefix=TELEMETRY_PREFIX)


class Upload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    telemetry: list[dict[str, Any]]


@router.post("/trace/{trace_id}/telemetry-upload")
async def telemetry_upload(trace_id: str, body: Upload, caller: Caller, runs: Runs) -> dict:
    return {"accepted": await runs.upload_spans(caller, trace_id, body.telemetry)}


@router.post("/sdk-events/cli", status_code=204)
async def cli_events() -> Response:
    return Response(status_code=204)
