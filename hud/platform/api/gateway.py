"""The inference gateway under ``/gateway`` (``HUD_GATEWAY_URL``; spec platform.md §8): the
providers' own wire formats, proxied to the upstream a model name routes to.

| path | wire format | auth |
|---|---|---|
| ``POST /v1/messages`` | Anthropic Messages | ``Authorization: Bearer`` or ``x-api-key`` |
| ``POST /responses``, ``POST /chat/completions`` (also under ``/v1``) | OpenAI | Bearer |
| ``POST /v1beta/models/<m>:generateContent`` (+ stream) | Gemini | ``x-goog-api-key`` |

A thin httpx proxy: the request body goes upstream as received (re-encoded only when the
upstream knows the model by another name), the upstream key replaces the caller's HUD key, and
the reply is passed back as it arrives — server-sent events chunk by chunk, with token usage
read from the events that carry it. Calls failing with 429/5xx are retried before any byte is
returned, honouring ``Retry-After``. Upstream keys never appear in replies or logs: error
bodies are scrubbed and an upstream's 401/403 becomes a 502 naming the upstream.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from hud.platform.services import Identity, NotFound, PlatformError, Unauthorized
from hud.platform.services.gateway import FAMILY, GatewayService, LimitExceeded, Target
from hud.platform.urls import GATEWAY_PREFIX

log = logging.getLogger("hud.platform.gateway")

router = APIRouter(prefix=GATEWAY_PREFIX)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
RETRIES = 3
RETRY_AFTER_CAP = 20.0
#: A server-sent-events line longer than this is passed on but not scanned for usage.
MAX_LINE = 1 << 20
FORWARD = frozenset({"content-type", "accept", "anthropic-version", "anthropic-beta",
                     "openai-beta", "x-goog-api-client"})  # fmt: skip
GEMINI_VERSIONS = frozenset({"v1beta", "v1", "v1alpha"})
GEMINI_ACTIONS = frozenset({"generateContent", "streamGenerateContent"})
PASS_BACK = ("content-type", "retry-after", "request-id", "x-request-id")


# -- the upstream client and caller auth -------------------------------------------------------
def _http(request: Request) -> httpx.AsyncClient:
    client = getattr(request.app.state, "gateway_http", None)
    if client is None:
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=128)
        # A request goes out as head then body: without TCP_NODELAY the body waits for the
        # upstream's delayed ACK of the head.
        transport = httpx.AsyncHTTPTransport(
            limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        )
        client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(600.0, connect=15.0),
            follow_redirects=False,
            trust_env=False,
        )
        request.app.state.gateway_http = client
    return client


def _caller_key(request: Request) -> str | None:
    header = request.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for name in ("x-goog-api-key", "x-api-key"):
        value = (request.headers.get(name) or "").strip()
        if value:
            return value
    return request.query_params.get("key") or None


async def _authenticate(request: Request) -> Identity:
    """The caller's identity (the identity service trusts a verified key briefly, so a call
    costs no query and a revocation still takes effect within a second)."""
    key = _caller_key(request)
    if not key:
        raise Unauthorized(
            "Missing API key: send 'Authorization: Bearer <HUD_API_KEY>' "
            "(or 'x-goog-api-key' for Gemini)"
        )
    return await request.app.state.identity.authenticate(key)


# -- provider-shaped errors ---------------------------------------------------------------------
_GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 402: "RESOURCE_EXHAUSTED",
                  403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  429: "RESOURCE_EXHAUSTED"}  # fmt: skip
_ANTHROPIC_TYPE = {400: "invalid_request_error", 401: "authentication_error",
                   402: "billing_error", 403: "permission_error", 404: "not_found_error",
                   429: "rate_limit_error"}  # fmt: skip


def error(
    family: str, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """An error in the caller's wire format (its SDK then reports ``message``)."""
    if family == "anthropic":
        body: dict[str, Any] = {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPE.get(status, "api_error"), "message": message},
        }
    elif family == "gemini":
        body = {
            "error": {
                "code": status,
                "message": message,
                "status": _GEMINI_STATUS.get(status, "INTERNAL"),
            }
        }
    else:
        kind = "invalid_request_error" if status < 500 else "server_error"
        body = {"error": {"message": message, "type": kind, "code": None, "param": None}}
    return JSONResponse(body, status_code=status, headers=headers)


# -- usage in replies -------------------------------------------------------------------------
class Usage:
    """Token counts read from a reply (streams report running totals: keep the largest)."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.tokens_in = 0
        self.tokens_out = 0
        self._tail = b""

    def read(self, obj: Any) -> None:
        if not isinstance(obj, dict):
            return
        tin = tout = 0
        if self.family == "anthropic":
            message = obj.get("message")
            found = message.get("usage") if isinstance(message, dict) else obj.get("usage")
            if isinstance(found, dict):
                tin = sum(
                    int(found.get(k) or 0)
                    for k in (
                        "input_tokens",
                        "cache_creation_input_tokens",
                        "cache_read_input_tokens",
                    )
                )
                tout = int(found.get("output_tokens") or 0)
        elif self.family == "gemini":
            found = obj.get("usageMetadata")
            if isinstance(found, dict):
                tin = int(found.get("promptTokenCount") or 0)
                tout = int(found.get("candidatesTokenCount") or 0) + int(
                    found.get("thoughtsTokenCount") or 0
                )
        else:
            found = obj.get("usage")
            if not isinstance(found, dict) and isinstance(obj.get("response"), dict):
                found = obj["response"].get("usage")
            if isinstance(found, dict):
                tin = int(found.get("prompt_tokens") or found.get("input_tokens") or 0)
                tout = int(found.get("completion_tokens") or found.get("output_tokens") or 0)
        self.tokens_in = max(self.tokens_in, tin)
        self.tokens_out = max(self.tokens_out, tout)

    def feed(self, chunk: bytes) -> None:
        """Scan server-sent events as they pass; only ``data:`` lines naming usage are parsed."""
        data = self._tail + chunk if self._tail else chunk
        lines = data.split(b"\n")
        tail = lines.pop()
        self._tail = tail if len(tail) <= MAX_LINE else b""
        for line in lines:
            if line.startswith(b"data:") and b"sage" in line:
                try:
                    self.read(json.loads(line[5:]))
                except ValueError:
                    continue

    def finish(self) -> None:
        if self._tail:
            self.feed(b"\n")


# -- the proxy ------------------------------------------------------------------------------------
def _retry_delay(reply: httpx.Response, attempt: int) -> float:
    value = (reply.headers.get("retry-after") or "").strip()
    if value:
        try:
            return min(max(float(value), 0.0), RETRY_AFTER_CAP)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value) if value else None
            if when is not None:
                return min(max(when.timestamp() - time.time(), 0.0), RETRY_AFTER_CAP)
    return min(0.5 * 2**attempt, RETRY_AFTER_CAP)


def _upstream_headers(request: Request, target: Target) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k in FORWARD}
    headers["accept-encoding"] = "identity"
    key = target.api_key
    if target.provider == "anthropic":
        headers.setdefault("anthropic-version", "2023-06-01")
        if key:
            headers["x-api-key"] = key
    elif target.provider == "gemini":
        if key:
            headers["x-goog-api-key"] = key
    elif key:
        headers["authorization"] = f"Bearer {key}"
    return headers


async def _send(
    client: httpx.AsyncClient, url: str, params: Any, headers: dict[str, str], body: bytes
) -> httpx.Response:
    """POST upstream, retrying 429/5xx and connection failures before any byte is relayed."""
    attempt = 0
    while True:
        upstream = client.build_request("POST", url, params=params, headers=headers, content=body)
        try:
            reply = await client.send(upstream, stream=True)
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            if attempt >= RETRIES:
                raise
            log.info("gateway: upstream unreachable (%s), retrying", type(exc).__name__)
            await asyncio.sleep(min(0.5 * 2**attempt, RETRY_AFTER_CAP))
            attempt += 1
            continue
        if reply.status_code in RETRY_STATUSES and attempt < RETRIES:
            delay = _retry_delay(reply, attempt)
            await reply.aclose()
            await asyncio.sleep(delay)
            attempt += 1
            continue
        return reply


def _scrub(data: bytes, target: Target) -> bytes:
    if target.api_key:
        data = data.replace(target.api_key.encode(), b"***")
    return data


async def proxy(
    request: Request, family: str, path: str, *, model: str | None = None, stream: bool = False
) -> Response:
    started = time.perf_counter()
    gateway: GatewayService = request.app.state.gateway
    try:
        ident = await _authenticate(request)
    except Unauthorized as exc:
        return error(family, 401, exc.message, {"WWW-Authenticate": "Bearer"})
    raw = await request.body()
    body: Any = None
    checkpoint: str | None = None
    if family != "gemini":
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return error(family, 400, "the request body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return error(family, 400, 'the request body needs a "model" string')
        model = body["model"]
        stream = body.get("stream") is True
        if isinstance(body.get("checkpoint"), str) and family == "openai":
            checkpoint = body.pop("checkpoint")  # routed here; providers reject the field
            raw = b""  # re-encoded below
    assert model is not None
    trace_id = request.headers.get("trace-id")
    target: Target | None = None
    try:
        target = await gateway.resolve(ident, model, checkpoint)
        if FAMILY[target.provider] != family:
            return error(
                family,
                400,
                f"model {model!r} is served by a {target.provider} upstream: call it with that "
                "provider's API",
            )
        await gateway.admit(ident)
    except LimitExceeded as exc:
        headers = {"Retry-After": str(int(exc.retry_after) + 1)} if exc.retry_after else None
        return error(family, exc.status, exc.message, headers)
    except NotFound as exc:
        return error(family, 404, exc.message)
    except PlatformError as exc:
        return error(family, 400, exc.message)
    except ValueError as exc:  # an undecryptable stored key
        log.error("gateway: %s", exc)
        return error(family, 502, f"the gateway cannot use the upstream for {model!r}")

    if family == "gemini":
        upstream_path = path.replace("{model}", target.model)
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "key"]
    else:
        upstream_path = path
        params = None
        if target.model != model or not raw:
            body["model"] = target.model
            raw = json.dumps(body).encode()
    url = target.base_url + upstream_path

    def done(status: int, usage: Usage | None) -> None:
        gateway.record(
            ident,
            trace_id=trace_id,
            model=model,
            target=target,
            status=status,
            stream=stream,
            tokens_in=usage.tokens_in if usage else 0,
            tokens_out=usage.tokens_out if usage else 0,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    try:
        reply = await _send(_http(request), url, params, _upstream_headers(request, target), raw)
    except httpx.HTTPError as exc:
        done(502, None)
        return error(
            family, 502, f"upstream {target.upstream} is unreachable ({type(exc).__name__})"
        )
    status = reply.status_code
    headers = {k: reply.headers[k] for k in PASS_BACK if k in reply.headers}
    if status >= 400:
        data = _scrub(await reply.aread(), target)
        await reply.aclose()
        done(status, None)
        if status in (401, 403):
            log.warning(
                "gateway: upstream %s refused its credentials (%d)", target.upstream, status
            )
            return error(
                family, 502, f"upstream {target.upstream} rejected the gateway's credentials"
            )
        return Response(data, status_code=status, headers=headers)

    usage = Usage(family)
    if "text/event-stream" not in reply.headers.get("content-type", ""):
        data = await reply.aread()
        await reply.aclose()
        try:
            usage.read(json.loads(data))
        except ValueError:
            pass
        done(status, usage)
        return Response(data, status_code=status, headers=headers)

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in reply.aiter_bytes():
                yield chunk
                usage.feed(chunk)
            usage.finish()
        finally:
            await reply.aclose()
            done(status, usage)

    headers.setdefault("cache-control", "no-cache")
    return StreamingResponse(relay(), status_code=status, headers=headers)


# -- routes ----------------------------------------------------------------------------------
@router.post("/v1/messages")
async def anthropic_messages(request: Request) -> Response:
    return await proxy(request, "anthropic", "/v1/messages")


@router.post("/responses")
@router.post("/v1/responses")
async def openai_responses(request: Request) -> Response:
    return await proxy(request, "openai", "/responses")


@router.post("/chat/completions")
@router.post("/v1/chat/completions")
async def openai_chat(request: Request) -> Response:
    return await proxy(request, "openai", "/chat/completions")


@router.post("/{version}/models/{target:path}")
async def gemini(version: str, target: str, request: Request) -> Response:
    model, sep, action = target.rpartition(":")
    if version not in GEMINI_VERSIONS or not sep or action not in GEMINI_ACTIONS:
        return error("gemini", 404, f"the gateway serves /v1beta/models/<model>:generateContent "
                     f"and :streamGenerateContent, not /{version}/models/{target}")  # fmt: skip
    return await proxy(
        request,
        "gemini",
        f"/{version}/models/{{model}}:{action}",
        model=model,
        stream=action == "streamGenerateContent",
    )


@router.get("/models")
@router.get("/v1/models")
async def openai_models(request: Request) -> Response:
    """The routed models in OpenAI's list shape (for OpenAI-compatible tools)."""
    try:
        ident = await _authenticate(request)
    except Unauthorized as exc:
        return error("openai", 401, exc.message)
    names = await request.app.state.gateway.model_names(ident)
    return JSONResponse(
        {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "hud"} for n in names]}
    )


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def unknown(rest: str) -> Response:
    return JSONResponse(
        {
            "detail": f"the gateway does not serve /{rest}: it serves /v1/messages, /responses, "
            "/chat/completions and /v1beta/models/<model>:generateContent"
        },
        status_code=404,
    )


async def close(app: Any) -> None:
    client = getattr(app.state, "gateway_http", None)
    if client is not None:
        await client.aclose()
