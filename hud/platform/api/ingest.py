"""The §5 run-reporting routes (job enter, trace enter/exit, span upload, our batch form), the
platform's hottest. Their POSTs are answered by `FastIngest`, a plain ASGI layer in front of the
app's routing: it matches the five paths, authenticates, reads the body, validates it with
pydantic and sends pre-encoded JSON, skipping the framework's
per-request machinery (route search, request objects, dependency solving, response classes).
The same handlers are also registered as ordinary routes, so any other method on these paths
is answered by the app as usual (405). Errors are the app's: a bad body is a 422 naming the
field, a missing or revoked key a 401, an unexpected failure the app's logged 500."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from hud.platform.api.deps import bearer
from hud.platform.services import (
    Conflict,
    Forbidden,
    Identity,
    Invalid,
    NotFound,
    PlatformError,
    Unauthorized,
)

M = TypeVar("M", bound=BaseModel)

#: A report handler: the app state, the caller, the path's id (or None), the raw body.
Handler = Callable[[Any, Identity, "str | None", bytes], Awaitable[dict[str, Any]]]

_STATUS = {Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409, Invalid: 422}


def status_of(exc: PlatformError) -> int:
    """The HTTP status of a service error (§0.4)."""
    return next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)


async def caller(request: Request) -> Identity:
    return await request.app.state.identity.authenticate(bearer(request))


def parse(model: type[M], raw: bytes) -> M:
    """The body as ``model``; a `Invalid` (422) naming the first fields that are wrong.

    The standard library's parser reads the body (a batch of reports is megabytes of spans,
    and it builds their objects a quarter quicker than pydantic's JSON mode, with the same
    values), then pydantic validates the objects; a body it cannot read goes to pydantic's own
    parser, for its error."""
    try:
        try:
            data = json.loads(raw or b"null")
        except (ValueError, RecursionError):  # not JSON (or nested past the stack)
            return model.model_validate_json(raw or b"null")
        return model.model_validate(data)
    except ValidationError as exc:
        raise Invalid(problems(exc.errors())) from None


def problems(errors: list[Any]) -> str:
    """A 422's ``detail``: the first five validation errors, each as ``field: message``."""
    out = [f"{_field(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors[:5]]
    return "; ".join(out) or "invalid request"


def _field(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body",)] or [str(p) for p in loc]
    return ".".join(parts) or "body"


def _dumps(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def answer(body: dict[str, Any]) -> Response:
    return Response(_dumps(body), media_type="application/json")


def _routes() -> list[tuple[str, re.Pattern[str], Handler]]:
    """(path template, matcher, handler) per report route, in matching order."""
    from hud.platform.api import telemetry, v2
    from hud.platform.urls import TELEMETRY_PREFIX

    table: list[tuple[str, Handler]] = [
        ("/v2/trace/job/{job_id}/enter", v2.job_enter),
        ("/v2/trace/{trace_id}/enter", v2.trace_enter),
        ("/v2/trace/{trace_id}/exit", v2.trace_exit),
        ("/v2/reports", v2.reports),
        (TELEMETRY_PREFIX + "/trace/{trace_id}/telemetry-upload", telemetry.telemetry_upload),
    ]
    out: list[tuple[str, re.Pattern[str], Handler]] = []
    for path, handler in table:
        pattern = re.sub(r"\\\{\w+\\\}", "([^/]+)", re.escape(path))
        out.append((path, re.compile(pattern), handler))
    return out


def add_routes(app: FastAPI) -> None:
    """Serve the report routes: `FastIngest` answers their POSTs; the same handlers as app
    routes answer the rest (another method: 405)."""
    routes = _routes()
    for path, _pattern, handler in routes:
        app.add_api_route(path, _endpoint(handler), methods=["POST"], include_in_schema=False)
    app.add_middleware(FastIngest, state=app.state, routes=routes)


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        target = next(iter(request.path_params.values()), None)
        ident = await caller(request)
        return answer(await handler(request.app.state, ident, target, await request.body()))

    return endpoint


class FastIngest:
    """ASGI middleware answering POSTs to the report routes without the framework's routing.

    It sits inside the app's error handling (an exception it does not expect becomes the app's
    logged 500) and inside `hud.platform.api.app.BodyLimit` (a body over the limit is a 413)."""

    def __init__(
        self, app: ASGIApp, state: Any, routes: list[tuple[str, re.Pattern[str], Handler]]
    ) -> None:
        self.app = app
        self.state = state
        self.routes = [(pattern, handler) for _path, pattern, handler in routes]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            for pattern, handler in self.routes:
                match = pattern.fullmatch(path)
                if match is not None:
                    await self._serve(handler, match, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(
        self, handler: Handler, match: re.Match[str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
        try:
            ident = await self.state.identity.authenticate(_bearer(scope))
            raw = await _read_body(receive)
            if raw is None:  # the client went away
                return
            target = match.group(1) if match.re.groups else None
            status, body = 200, _dumps(await handler(self.state, ident, target, raw))
        except PlatformError as exc:
            status, body = status_of(exc), _dumps({"detail": exc.message})
            if status == 401:
                headers.append((b"www-authenticate", b"Bearer"))
        headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
