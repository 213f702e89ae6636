"""Device-flow login (RFC 8628): the two client endpoints on the API origin (no ``/v2``, no
auth) and the verification page under the web prefix. The page works without JavaScript: the
user signs in with an existing API key (a form field, or an ``Authorization: Bearer`` header)
and approves or denies with an HTML form POST."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict

from hud.platform.api.deps import Devices, bearer
from hud.platform.services import DeviceFlowError, Identity, NotFound, Unauthorized
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


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
    "input{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box;margin:.3rem 0 1rem}"
    "button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.5rem}.code{font-size:1.6rem;"
    "letter-spacing:.2rem;font-family:monospace}.err{color:#b00}"
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    text = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(text, status_code=status, headers={"Cache-Control": "no-store"})


def _form(code: str, *, signed_in: str | None, error: str | None = None) -> str:
    parts = []
    if error:
        parts.append(f"<p class='err'>{html.escape(error)}</p>")
    parts.append(f"<form method='post' action='{WEB_PREFIX}/device'>")
    parts.append(
        "<label>Code shown by <code>hud login</code>"
        f"<input name='user_code' value='{html.escape(code)}' autocomplete='off' required></label>"
    )
    if signed_in:
        parts.append(f"<p>Signed in as {html.escape(signed_in)}.</p>")
    else:
        parts.append(
            "<label>Sign in with an existing API key"
            "<input name='api_key' type='password' autocomplete='off' required></label>"
        )
    parts.append(
        "<button name='action' value='approve' type='submit'>Approve</button>"
        "<button name='action' value='deny' type='submit'>Deny</button></form>"
    )
    return "".join(parts)


async def _signed_in(request: Request, key: str | None) -> tuple[Identity, str]:
    identities = request.app.state.identity
    ident = await identities.authenticate(key)
    email = await identities.user_email(ident.user_id)
    team = await identities.team_name(ident.team_id)
    return ident, f"{email} (team {team})"


@router.get(WEB_PREFIX + "/device")
async def verification_page(request: Request, devices: Devices, code: str = "") -> HTMLResponse:
    who = None
    if bearer(request):
        try:
            _, who = await _signed_in(request, bearer(request))
        except Unauthorized:
            who = None
    if code:
        try:
            info = await devices.describe(code)
        except NotFound as exc:
            return _page("Sign in to hud", _form("", signed_in=who, error=exc.message), 404)
        intro = (
            f"<p><b>{html.escape(info['client_name'] or 'A device')}</b> asks to sign in as you."
            f" Check that it shows this code:</p><p class='code'>{info['user_code']}</p>"
        )
        return _page("Sign in to hud", intro + _form(info["user_code"], signed_in=who))
    return _page("Sign in to hud", _form("", signed_in=who))


@router.post(WEB_PREFIX + "/device")
async def verification_submit(request: Request, devices: Devices) -> HTMLResponse:
    raw = await request.body()
    form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items() if v}
    code = form.get("user_code", "")
    key = form.get("api_key") or bearer(request)
    try:
        ident, who = await _signed_in(request, key)
    except Unauthorized as exc:
        return _page("Sign in to hud", _form(code, signed_in=None, error=exc.message), 401)
    try:
        status = await devices.decide(ident, code, approve=form.get("action") != "deny")
    except NotFound as exc:
        return _page("Sign in to hud", _form("", signed_in=who, error=exc.message), 404)
    if status == "approved":
        return _page(
            "Device approved",
            f"<p>Signed in as {html.escape(who)}. Return to your terminal; "
            "you can close this window.</p>",
        )
    if status == "denied":
        return _page("Request denied", "<p>The device was not signed in.</p>")
    return _page("Code already used", "<p>This code was already approved or used.</p>", 409)
