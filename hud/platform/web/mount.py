"""The web pages on the platform (``/web``): sign-in, the signed session cookie, the viewer over
the signed-in team's jobs, then the platform pages of other modules and a 404 page.

**Sign-in.** ``GET /web/signin`` asks for an API key; ``POST /web/signin`` checks it and sets
the cookie ``hud_web``: ``<payload>.<mac>`` where the payload is the key's *id* and an expiry
(base64url) and the MAC is HMAC-SHA256 under a server secret kept in the data directory
(``web-secret``, mode 0600). The key itself never goes into the cookie, a page or a log. The
cookie is HttpOnly, SameSite=Strict (so no other site can make the browser act on a page),
Secure on https. Every request re-checks that the key is not revoked. ``Authorization: Bearer
<key>`` works on every page too (no cookie). Not signed in: a redirect to the sign-in page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hud.platform.api.deps import bearer
from hud.platform.services import Identity, PlatformError
from hud.platform.services.views import ViewService
from hud.platform.urls import WEB_PREFIX
from hud.platform.web.kit import SECURITY_HEADERS, Ctx
from hud.platform.web.pages import signin_page
from hud.platform.web.routes import Reply, dispatch, not_found, static_reply
from hud.protocol.errors import HudError

COOKIE = "hud_web"
#: A session lasts this long (seconds), then the key is asked again.
SESSION_SECONDS = 7 * 24 * 3600
SECRET_FILE = "web-secret"
MAX_FORM = 16 * 1024


@dataclass(frozen=True)
class WebViewer:
    """The signed-in viewer of a page: its identity and the page context."""

    ident: Identity
    ctx: Ctx


class SignInRequired(HudError):
    def __init__(self, next_url: str, error: str | None = None) -> None:
        self.next_url = next_url
        self.error = error


# -- the session token ------------------------------------------------------------------------
def load_secret(data_dir: Path) -> bytes:
    """The data directory's web secret (made on first use)."""
    path = Path(data_dir) / SECRET_FILE
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(32))
    try:
        os.link(tmp, path)  # first writer wins when two servers start at once
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, key_id: uuid.UUID, expires: int) -> str:
    payload = f"{key_id.hex}.{expires}".encode("ascii")
    mac = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(secret: bytes, token: str, *, now: float | None = None) -> uuid.UUID | None:
    """The key id of a valid, unexpired token, else None."""
    try:
        part, mac = token.split(".", 1)
        payload = _unb64(part)
        if not hmac.compare_digest(_unb64(mac), hmac.new(secret, payload, hashlib.sha256).digest()):
            return None
        key_hex, expires = payload.decode("ascii").split(".", 1)
        if int(expires) < (time.time() if now is None else now):
            return None
        return uuid.UUID(hex=key_hex)
    except (ValueError, UnicodeDecodeError):
        return None


# -- request helpers ----------------------------------------------------------------------------
def _next_of(request: Request) -> str:
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    return path


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a path under the web prefix, else the jobs page."""
    if (
        value
        and value.startswith(WEB_PREFIX + "/")
        and not value.startswith("//")
        and "\\" not in value
        and not any(ord(c) < 32 for c in value)
        and not value.startswith(WEB_PREFIX + "/signin")
    ):
        return value
    return WEB_PREFIX + "/jobs"


async def web_viewer(request: Request) -> WebViewer:
    """The signed-in viewer (Bearer header or session cookie), or `SignInRequired`."""
    views: ViewService = request.app.state.views
    key = bearer(request)
    if key:
        try:
            ident = await request.app.state.identity.authenticate(key)
        except PlatformError as exc:
            raise SignInRequired(_next_of(request), exc.message) from None
        if ident.key_id is not None:
            found = await views.session(ident.key_id)
            if found is not None:
                return WebViewer(found[0], Ctx(base=WEB_PREFIX, who=found[1]))
        raise SignInRequired(_next_of(request), "This API key cannot sign in")
    token = request.cookies.get(COOKIE)
    key_id = verify(request.app.state.web_secret, token) if token else None
    if key_id is not None:
        found = await views.session(key_id)
        if found is not None:
            return WebViewer(found[0], Ctx(base=WEB_PREFIX, who=found[1]))
        raise SignInRequired(_next_of(request), "Your session's API key was revoked: sign in again")
    raise SignInRequired(_next_of(request))


#: The dependency a platform page takes: ``async def page(viewer: Viewer) -> HTMLResponse``.
Viewer = Annotated[WebViewer, Depends(web_viewer)]


def page(text: str, status: int = 200) -> HTMLResponse:
    """An HTML page response with the pages' security headers."""
    return HTMLResponse(text, status_code=status, headers=dict(SECURITY_HEADERS))


def to_response(reply: Reply) -> Response:
    return Response(
        reply.body, status_code=reply.status, media_type=reply.content_type, headers=reply.headers
    )


def same_origin(request: Request) -> bool:
    """A form post from this site's own page, or from a client that is not a browser (no
    ``Sec-Fetch-Site``/``Origin``): a page on another site cannot sign a browser in or out.
    Hosts are compared (not schemes), so a TLS-terminating proxy that keeps ``Host`` works."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if not origin:
        return True
    return urlsplit(origin).netloc.lower() == (request.headers.get("host") or "").lower()


# -- routes ------------------------------------------------------------------------------------
def _signin_ctx() -> Ctx:
    return Ctx(base=WEB_PREFIX, who=None)


def _router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get(WEB_PREFIX + "/static/{name}")
    async def static(name: str) -> Response:
        reply = static_reply(name)
        return to_response(reply or not_found(_signin_ctx(), "file"))

    @router.get(WEB_PREFIX + "/signin")
    async def signin_form(next: str = "") -> HTMLResponse:
        return page(signin_page(_signin_ctx(), next_url=safe_next(next)))

    @router.post(WEB_PREFIX + "/signin", response_model=None)
    async def signin(request: Request) -> Response:
        if not same_origin(request):
            return page(signin_page(_signin_ctx(), error="Sign in from this site's own page"), 403)
        body = await request.body()
        form = parse_qs(body[:MAX_FORM].decode("utf-8", "replace")) if len(body) <= MAX_FORM else {}
        key = (form.get("key") or [""])[0].strip()
        target = safe_next((form.get("next") or [""])[0])
        try:
            ident = await request.app.state.identity.authenticate(key or None)
        except PlatformError as exc:
            return page(signin_page(_signin_ctx(), error=exc.message, next_url=target), 401)
        if ident.key_id is None:
            return page(
                signin_page(_signin_ctx(), error="This key cannot sign in", next_url=target), 401
            )
        expires = int(time.time()) + SESSION_SECONDS
        reply = RedirectResponse(target, status_code=303)
        reply.set_cookie(
            COOKIE,
            sign(request.app.state.web_secret, ident.key_id, expires),
            max_age=SESSION_SECONDS,
            path=WEB_PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return reply

    @router.post(WEB_PREFIX + "/signout", response_model=None)
    async def signout(request: Request) -> Response:
        if not same_origin(request):
            return to_response(not_found(_signin_ctx()))
        reply = RedirectResponse(WEB_PREFIX + "/signin", status_code=303)
        reply.delete_cookie(COOKIE, path=WEB_PREFIX, httponly=True, samesite="strict")
        return reply

    return router


def _viewer_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get(WEB_PREFIX, response_model=None)
    async def home() -> Response:
        return RedirectResponse(WEB_PREFIX + "/jobs", status_code=302)

    @router.get(WEB_PREFIX + "/{path:path}", response_model=None)
    async def view(path: str, request: Request, viewer: Viewer) -> Response:
        source = request.app.state.views.source(viewer.ident)
        reply = await dispatch(source, viewer.ctx, "/" + path, dict(request.query_params))
        return to_response(reply)

    @router.api_route(
        WEB_PREFIX + "/{path:path}", methods=["POST", "PUT", "PATCH", "DELETE"], response_model=None
    )
    async def other(path: str) -> Response:
        return to_response(not_found(_signin_ctx()))

    return router


def mount(app: FastAPI, data_dir: Path, *routers: APIRouter) -> None:
    """Serve the web pages on ``app``: sign-in and assets, ``routers`` (platform pages of other
    modules, matched first), then the viewer and the 404 page for every other ``/web`` path.
    Call it after every other router is included (its catch-all comes last)."""
    app.state.views = ViewService(app.state.db, getattr(app.state, "gateway", None))
    app.state.web_secret = load_secret(data_dir)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        if exc.error:
            return page(
                signin_page(_signin_ctx(), error=exc.error, next_url=safe_next(exc.next_url)), 401
            )
        target = WEB_PREFIX + "/signin?next=" + quote(safe_next(exc.next_url), safe="")
        return RedirectResponse(target, status_code=303)

    app.include_router(_router())
    for router in routers:
        app.include_router(router)
    app.include_router(_viewer_router())


__all__ = ["Viewer", "WebViewer", "mount", "page", "safe_next", "sign", "verify", "web_viewer"]
