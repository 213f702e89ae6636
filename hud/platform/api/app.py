"""The platform's ASGI app: every service on one origin, each under its own path prefix.

| prefix | setting | served |
|---|---|---|
| ``/v2`` | ``HUD_API_URL`` (origin) | REST API |
| ``/auth/device/*`` | ``HUD_API_URL`` | device-flow login |
| ``/telemetry`` | ``HUD_TELEMETRY_URL`` | span ingest, CLI analytics |
| ``/gateway`` | ``HUD_GATEWAY_URL`` | the inference gateway (`hud.platform.api.gateway`) |
| ``/runtime`` | ``HUD_RUNTIME_URL`` (origin) | runtime sessions, tunnels (`api.runtime`) |
| ``/web`` | ``HUD_WEB_URL`` | web pages (`hud.platform.web`), device verification page |

Errors are ``{"detail": "<text>"}`` with the status the client turns into hints (§0.4); a bad
body is a 422 naming the field; an unexpected failure is a logged 500 with no internals.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hud.platform.db import Database
from hud.platform.services import (
    DeviceService,
    IdentityService,
    PlatformError,
    RunService,
)

log = logging.getLogger("hud.platform")

#: Largest request body accepted (span batches are at most ~4 MiB).
MAX_BODY = 32 * 1024 * 1024


class BodyLimit:
    """Answer 413 to bodies over ``limit`` bytes, declared or streamed, before they are read."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("method") == "PUT" and scope.get("path", "").endswith("/upload"):
            await self.app(scope, receive, send)  # build contexts: the service caps their size
            return
        for name, value in scope.get("headers") or []:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _too_large(send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send) -> None:
    body = b'{"detail":"request body too large"}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(
    db: Database,
    *,
    device_interval: int = 5,
    data_dir: Path | None = None,
    registry: str | None = None,
    rollout_options: dict[str, Any] | None = None,
) -> FastAPI:
    from hud.platform.api import (
        builds,
        device,
        gateway,
        ingest,
        models,
        rollouts,
        runtime,
        tasksets,
        telemetry,
        v2,
    )
    from hud.platform.services.builds import BuildService
    from hud.platform.services.gateway import GatewayService
    from hud.platform.services.models import ModelService
    from hud.platform.services.rollouts import DEFAULT_CONCURRENCY, RolloutService
    from hud.platform.services.sessions import SessionService
    from hud.platform.services.tasksets import TasksetService

    app = FastAPI(title="HUD platform", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.db = db
    app.state.identity = IdentityService(db)
    app.state.runs = RunService(db)
    app.state.device = DeviceService(db, app.state.identity, interval=device_interval)
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="hud-platform-"))
    app.state.builds = BuildService(db, data_dir, registry=registry)
    app.state.tasksets = TasksetService(db, app.state.builds)
    app.state.gateway = GatewayService(db, data_dir)
    app.state.models = ModelService(db, app.state.gateway)
    options = dict(rollout_options or {})
    idle = options.get("session_idle")
    app.state.sessions = (
        SessionService(app.state.builds, idle=float(idle))
        if idle
        else SessionService(app.state.builds)
    )
    executor = None
    if options.get("ray"):
        from hud.platform.workers.ray import RayExecutor

        executor = RayExecutor(str(options["ray"]))
    app.state.rollouts = RolloutService(
        db,
        app.state.runs,
        app.state.builds,
        executor,
        concurrency=options.get("workers") or DEFAULT_CONCURRENCY,
        per_team=options.get("per_team"),
        max_queue=options.get("max_queue"),
        prime_idle=options.get("prime_idle"),
        data_dir=data_dir,
        instance=options.get("instance"),
    )

    @app.exception_handler(PlatformError)
    async def _platform_error(_request: Request, exc: PlatformError) -> JSONResponse:
        status = ingest.status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": exc.message}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": ingest.problems(list(exc.errors()))}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return JSONResponse({"detail": "Internal server error"}, status_code=500)

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    ingest.add_routes(app)
    app.include_router(v2.router)
    app.include_router(builds.router)
    app.include_router(tasksets.router)
    app.include_router(telemetry.router)
    app.include_router(device.router)
    app.include_router(models.router)
    app.include_router(gateway.router)
    app.include_router(runtime.router)
    app.include_router(rollouts.router)

    from hud.platform.web.mount import mount
    from hud.platform.web.platform_routes import router as platform_pages

    # the web pages; last: its catch-all answers every other /web path
    mount(app, data_dir, platform_pages())

    app.add_middleware(BodyLimit)
    return app
