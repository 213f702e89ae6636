"""Routes of the platform's own pages (`hud.platform.web.platform_pages`) under ``/web``:
tasksets and their leaderboards, environments and build logs, models and checkpoint trees, API
keys, and the ``hud login`` device approval page.

Each page takes the signed-in viewer (`hud.platform.web.mount.Viewer`: a session cookie or
``Authorization: Bearer``) and reads the services with its identity, so another team's object
is a 404 page. The device page is the exception: it also serves visitors who are not signed in
(its form takes an API key). Actions are HTML form POSTs answered with a page or a 303
redirect, so nothing needs JavaScript; a post from another site's page is refused (the session
cookie is SameSite=Strict too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hud.platform.api.deps import bearer
from hud.platform.services import Identity, NotFound, PlatformError, Unauthorized
from hud.platform.services.catalog import CatalogService
from hud.platform.urls import WEB_PREFIX
from hud.platform.web.kit import Ctx, message_page
from hud.platform.web.mount import (
    SignInRequired,
    Viewer,
    WebViewer,
    page,
    same_origin,
    web_viewer,
)
from hud.platform.web.platform_pages import (
    device_page,
    device_result_page,
    environment_page,
    environments_page,
    keys_page,
    model_page,
    models_page,
    taskset_page,
    tasksets_page,
)
from hud.platform.web.routes import query_int

PAGE_SIZE = 50
MAX_FORM = 16 * 1024


def _text(query: Mapping[str, str], name: str, size: int = 200) -> str:
    return (query.get(name) or "").strip()[:size]


def _catalog(request: Request) -> CatalogService:
    catalog = getattr(request.app.state, "catalog", None)
    if catalog is None:
        catalog = request.app.state.catalog = CatalogService(
            request.app.state.db, request.app.state.builds
        )
    return catalog


def _missing(ctx: Ctx, what: str, active: str) -> HTMLResponse:
    text = f"No such {what} (or it belongs to another team)."
    return page(message_page(ctx, "Not found", text, active=active), 404)


def _cross_site(ctx: Ctx) -> HTMLResponse:
    text = "This form was posted from another site; use the form on this site's page."
    return page(message_page(ctx, "Refused", text), 403)


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items() if v}


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)

    # -- tasksets ---------------------------------------------------------------------------
    @r.get(WEB_PREFIX + "/tasksets")
    async def tasksets(request: Request, viewer: Viewer) -> HTMLResponse:
        q, offset = _text(request.query_params, "q"), query_int(request.query_params, "offset")
        items, total = await _catalog(request).list_tasksets(
            viewer.ident, search=q, limit=PAGE_SIZE, offset=offset
        )
        return page(
            tasksets_page(viewer.ctx, items, total=total, query=q, offset=offset, limit=PAGE_SIZE)
        )

    @r.get(WEB_PREFIX + "/tasksets/{taskset_id}")
    async def taskset(taskset_id: str, request: Request, viewer: Viewer) -> HTMLResponse:
        query = request.query_params
        catalog = _catalog(request)
        tab = "tasks" if query.get("tab") == "tasks" else "leaderboard"
        q, offset = _text(query, "q"), query_int(query, "offset")
        try:
            board = await catalog.leaderboard(viewer.ident, taskset_id)
            items: list[dict[str, Any]] = []
            total = 0
            recent: list[dict[str, Any]] = []
            name, value = _text(query, "col", 200), query.get("val", "")[:2000]
            column = (name, value) if name and value else None
            if tab == "tasks":
                items, total = await catalog.taskset_tasks(
                    viewer.ident, taskset_id, search=q, column=column, limit=PAGE_SIZE,
                    offset=offset,
                )  # fmt: skip
            else:
                recent = await catalog.taskset_jobs(viewer.ident, taskset_id, limit=10)
        except NotFound:
            return _missing(viewer.ctx, "taskset", "tasksets")
        html = taskset_page(
            viewer.ctx, board.taskset, board, tab=tab, tasks=items, tasks_total=total,
            query=q, offset=offset, limit=PAGE_SIZE, a=_text(query, "a", 200),
            b=_text(query, "b", 200), jobs=recent, column=column,
        )  # fmt: skip
        return page(html)

    # -- environments -----------------------------------------------------------------------
    @r.get(WEB_PREFIX + "/environments")
    async def environments(request: Request, viewer: Viewer) -> HTMLResponse:
        q, offset = _text(request.query_params, "q"), query_int(request.query_params, "offset")
        items, total = await _catalog(request).list_environments(
            viewer.ident, search=q, limit=PAGE_SIZE, offset=offset
        )
        return page(
            environments_page(
                viewer.ctx, items, total=total, query=q, offset=offset, limit=PAGE_SIZE
            )
        )

    @r.get(WEB_PREFIX + "/environments/{env_ref}")
    async def environment(env_ref: str, request: Request, viewer: Viewer) -> HTMLResponse:
        query = request.query_params
        catalog = _catalog(request)
        offset = query_int(query, "offset")
        try:
            env = await catalog.get_environment(viewer.ident, env_ref)
            items, total = await catalog.environment_builds(
                viewer.ident, env["id"], limit=PAGE_SIZE, offset=offset
            )
            wanted = _text(query, "build", 64)
            shown = None
            if wanted:
                shown = await catalog.build(viewer.ident, env["id"], wanted)
            elif items:
                shown = items[0]
            log, cut = (
                await catalog.build_log(viewer.ident, env["id"], shown["id"])
                if shown is not None
                else ([], False)
            )
        except NotFound:
            return _missing(viewer.ctx, "environment or build", "environments")
        html = environment_page(
            viewer.ctx, env, items, total=total, offset=offset, limit=PAGE_SIZE, shown=shown,
            log=log, log_cut=cut,
        )  # fmt: skip
        return page(html)

    # -- models -----------------------------------------------------------------------------
    @r.get(WEB_PREFIX + "/models")
    async def models(request: Request, viewer: Viewer) -> HTMLResponse:
        offset = query_int(request.query_params, "offset")
        items, total = await request.app.state.models.list_models(
            viewer.ident, limit=PAGE_SIZE, offset=offset
        )
        return page(models_page(viewer.ctx, items, total=total, offset=offset, limit=PAGE_SIZE))

    @r.get(WEB_PREFIX + "/models/{model_id}")
    async def model(model_id: str, request: Request, viewer: Viewer) -> HTMLResponse:
        service = request.app.state.models
        tab = "checkpoints" if request.query_params.get("tab") == "checkpoints" else "overview"
        try:
            found = await service.get_model(viewer.ident, model_id)
            checkpoints = await service.checkpoints(viewer.ident, found["id"])
        except NotFound:
            return _missing(viewer.ctx, "model", "models")
        return page(model_page(viewer.ctx, found, checkpoints, tab=tab))

    # -- API keys ---------------------------------------------------------------------------
    async def _keys_page(
        request: Request,
        viewer: WebViewer,
        *,
        created: tuple[str, dict[str, Any]] | None = None,
        error: str = "",
        status: int = 200,
    ) -> HTMLResponse:
        keys = await request.app.state.identity.own_keys(viewer.ident)
        revoked = _text(request.query_params, "revoked", 16)
        notice = f"Revoked {revoked}…" if revoked and not created and not error else ""
        html = keys_page(viewer.ctx, keys, created=created, notice=notice, error=error)
        return page(html, status)

    @r.get(WEB_PREFIX + "/keys")
    async def keys(request: Request, viewer: Viewer) -> HTMLResponse:
        return await _keys_page(request, viewer)

    @r.post(WEB_PREFIX + "/keys")
    async def create_key(request: Request, viewer: Viewer) -> HTMLResponse:
        if not same_origin(request):
            return _cross_site(viewer.ctx)
        form = await _form(request)
        try:
            created = await request.app.state.identity.create_own_key(
                viewer.ident, form.get("name", "")
            )
        except PlatformError as exc:
            return await _keys_page(request, viewer, error=exc.message, status=422)
        return await _keys_page(request, viewer, created=created)

    @r.post(WEB_PREFIX + "/keys/{key_id}/revoke", response_model=None)
    async def revoke_key(key_id: str, request: Request, viewer: Viewer) -> Response:
        if not same_origin(request):
            return _cross_site(viewer.ctx)
        try:
            done = await request.app.state.identity.revoke_own_key(viewer.ident, key_id)
        except NotFound:
            return _missing(viewer.ctx, "API key", "keys")
        return RedirectResponse(viewer.ctx.url("/keys", revoked=done["prefix"]), status_code=303)

    # -- device login (RFC 8628) ------------------------------------------------------------
    async def _maybe_viewer(request: Request) -> WebViewer | None:
        try:
            return await web_viewer(request)
        except SignInRequired:
            return None

    def _plain_ctx() -> Ctx:
        return Ctx(base=WEB_PREFIX, who=None)

    @r.get(WEB_PREFIX + "/device")
    async def device(request: Request) -> HTMLResponse:
        viewer = await _maybe_viewer(request)
        ctx = viewer.ctx if viewer else _plain_ctx()
        who = viewer.ctx.who if viewer else None
        code = _text(request.query_params, "code", 32)
        if code:
            try:
                info = await request.app.state.device.describe(code)
            except NotFound as exc:
                return page(device_page(ctx, who=who, error=exc.message), 404)
            return page(
                device_page(ctx, code=info["user_code"], client=info["client_name"], who=who)
            )
        return page(device_page(ctx, who=who))

    @r.post(WEB_PREFIX + "/device")
    async def device_decide(request: Request) -> HTMLResponse:
        if not same_origin(request):
            return _cross_site(_plain_ctx())
        form = await _form(request)
        code = form.get("user_code", "")[:32]
        key = form.get("api_key") or bearer(request)
        ident: Identity
        if key:
            try:
                ident = await request.app.state.identity.authenticate(key)
            except Unauthorized as exc:
                return page(device_page(_plain_ctx(), code=code, error=exc.message), 401)
            who = await _label(request, ident)
            ctx = _plain_ctx()
        else:
            viewer = await _maybe_viewer(request)
            if viewer is None:
                text = "Sign in with an API key to approve"
                return page(device_page(_plain_ctx(), code=code, error=text), 401)
            ident, who, ctx = viewer.ident, viewer.ctx.who or "", viewer.ctx
        try:
            status = await request.app.state.device.decide(
                ident, code, approve=form.get("action") != "deny"
            )
        except NotFound as exc:
            return page(device_page(ctx, who=who, error=exc.message), 404)
        if status == "approved":
            text = f"Signed in as {who}. Return to your terminal; you can close this window."
            return page(device_result_page(ctx, "Device approved", text))
        if status == "denied":
            return page(device_result_page(ctx, "Request denied", "The device was not signed in."))
        return page(
            device_result_page(ctx, "Code already used", "This code was already approved or used."),
            409,
        )

    return r


async def _label(request: Request, ident: Identity) -> str:
    identities = request.app.state.identity
    email = await identities.user_email(ident.user_id)
    team = await identities.team_name(ident.team_id)
    return f"{email} (team {team})"


__all__ = ["router"]
