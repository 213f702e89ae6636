"""Runtime sessions and their tunnels under ``/runtime`` (``HUD_RUNTIME_URL``, spec platform.md
§7): ``POST /runtime/sessions``, ``DELETE /runtime/sessions/<id>`` and the WebSocket
``/runtime/tunnels/<id>``, which carries raw bytes (binary frames, text frames UTF-8 encoded)
to a new TCP connection to the session container's control port, one per WebSocket."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field

from hud.platform.api.deps import Caller
from hud.platform.api.splice import EXTENSION, Upstream
from hud.platform.services import NotFound, PlatformError
from hud.platform.services.sessions import MAX_FIRST_FRAME, SessionService, with_token

router = APIRouter(prefix="/runtime")


def session_service(request: Request) -> SessionService:
    return request.app.state.sessions


Sessions = Annotated[SessionService, Depends(session_service)]


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    environment: str = Field(min_length=1, max_length=200)
    trace_id: str | None = Field(default=None, max_length=100)


@router.post("/sessions")
async def create_session(body: SessionCreate, caller: Caller, sessions: Sessions) -> Any:
    return await sessions.create(caller, body.environment, body.trace_id)


@router.get("/sessions/{session_id}")
async def get_session(session_id: str, caller: Caller, sessions: Sessions) -> Any:
    return sessions.get(caller, session_id).public()


@router.delete("/sessions/{session_id}")
async def delete_session(session_id: str, caller: Caller, sessions: Sessions) -> Any:
    return await sessions.delete(caller, session_id)


@router.websocket("/tunnels/{session_id}")
async def tunnel(websocket: WebSocket, session_id: str) -> None:
    app = websocket.app
    header = websocket.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    service: SessionService = app.state.sessions
    try:
        ident = await app.state.identity.authenticate(
            token.strip() if scheme.lower() == "bearer" else None
        )
        session, upstream = await service.open_tunnel(
            ident, session_id, lambda: Upstream(max_first=MAX_FIRST_FRAME)
        )
    except PlatformError as exc:
        await websocket.close(code=4004 if isinstance(exc, NotFound) else 4003)
        return
    except OSError:  # the container is still booting: the client retries
        await websocket.accept()
        await websocket.close(code=1013)
        return
    token_ = session.token  # the container's control token, added for it alone
    upstream.first_line = lambda line: with_token(line, token_)
    try:
        await websocket.accept()
        splice = (websocket.scope.get("extensions") or {}).get(EXTENSION)
        # frames go transport to transport (api/splice.py), else through ASGI messages
        if splice is None or not await splice["splice"](upstream):
            await upstream.pump(websocket)
    finally:
        upstream.close()
        with contextlib.suppress(Exception, WebSocketDisconnect):
            await websocket.close()
        service.tunnel_closed(session)
