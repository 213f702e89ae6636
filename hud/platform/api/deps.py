"""Request-scoped helpers: the services on ``app.state`` and the Bearer-key identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from hud.platform.services import DeviceService, Identity, IdentityService, RunService


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def current_identity(request: Request) -> Identity:
    return await request.app.state.identity.authenticate(bearer(request))


async def identity_service(request: Request) -> IdentityService:
    return request.app.state.identity


async def run_service(request: Request) -> RunService:
    return request.app.state.runs


async def device_service(request: Request) -> DeviceService:
    return request.app.state.device


Caller = Annotated[Identity, Depends(current_identity)]
Identities = Annotated[IdentityService, Depends(identity_service)]
Runs = Annotated[RunService, Depends(run_service)]
Devices = Annotated[DeviceService, Depends(device_service)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]
