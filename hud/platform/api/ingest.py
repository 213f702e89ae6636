"""The §5 run-reporting routes (job enter, trace enter/exit, span upload, our batch form), the
platform's hottest: plain endpoints that authenticate, parse the body with pydantic straight
from its bytes and answer pre-encoded JSON, registered on the app itself ahead of the routers
(the app matches its own routes first). Errors are the app's: a bad body is a 422 naming the
field, a missing or revoked key a 401."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ValidationError

from hud.platform.api.deps import bearer
from hud.platform.services import Identity, Invalid

M = TypeVar("M", bound=BaseModel)


async def caller(request: Request) -> Identity:
    return await request.app.state.identity.authenticate(bearer(request))


def parse(model: type[M], raw: bytes) -> M:
    """The body as ``model``; a `Invalid` (422) naming the first fields that are wrong."""
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise Invalid(problems(exc.errors())) from None


def problems(errors: list[Any]) -> str:
    """A 422's ``detail``: the first five validation errors, each as ``field: message``."""
    out = [f"{_field(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors[:5]]
    return "; ".join(out) or "invalid request"


def _field(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body",)] or [str(p) for p in loc]
    return ".".join(parts) or "body"


def answer(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


def add_routes(app: FastAPI) -> None:
    from hud.platform.api import telemetry, v2
    from hud.platform.urls import TELEMETRY_PREFIX

    routes = [
        ("/v2/trace/job/{job_id}/enter", v2.job_enter),
        ("/v2/trace/{trace_id}/enter", v2.trace_enter),
        ("/v2/trace/{trace_id}/exit", v2.trace_exit),
        ("/v2/reports", v2.reports),
        (TELEMETRY_PREFIX + "/trace/{trace_id}/telemetry-upload", telemetry.telemetry_upload),
    ]
    for path, endpoint in routes:
        app.add_api_route(path, endpoint, methods=["POST"], include_in_schema=False)
