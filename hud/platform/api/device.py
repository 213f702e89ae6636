"""Device-flow login (RFC 8628): the two client endpoints on the API origin (no ``/v2``, no
auth). The verification page they point at (``/web/device``) is a web page
(`hud.platform.web.platform_routes`): it works without JavaScript, the user signs in with an
existing API key (a form field, an ``Authorization: Bearer`` header or the web session) and
approves or denies with an HTML form POST."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from hud.platform.api.deps import Devices
from hud.platform.services import DeviceFlowError
from hud.platform.urls import WEB_PREFIX, client_urls

router = APIRouter()


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    client_name: str = ""
    client_version: str = ""


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    device_code: str


def verification_uri(request: Request) -> str:
    return str(request.base_url).rstrip("/") + WEB_PREFIX + "/device"


@router.post("/auth/device/code")
async def device_code(body: CodeRequest, request: Request, devices: Devices) -> dict[str, Any]:
    grant = await devices.start(body.client_name, body.client_version)
    uri = verification_uri(request)
    return {
        **grant,
        "verification_uri": uri,
        "verification_uri_complete": f"{uri}?code={grant['user_code']}",
    }


@router.post("/auth/device/token", response_model=None)
async def device_token(body: TokenRequest, request: Request, devices: Devices) -> Any:
    try:
        granted = await devices.poll(body.device_code)
        return {**granted, "settings": client_urls(str(request.base_url))}
    except DeviceFlowError as exc:
        return JSONResponse(
            {
                "error": exc.code,
                "error_description": exc.message,
                "detail": {"error": exc.code, "message": exc.message},
            },
            status_code=400,
        )
