"""The viewer's routes, independent of the HTTP server: `dispatch` maps a path under the web
prefix and its query to a `Reply`. The platform (FastAPI, after sign-in, with the team's
source) and ``hud view`` (a stdlib server, with a `LocalSource`) both serve through it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from hud.platform.web.data import ViewSource
from hud.platform.web.kit import SECURITY_HEADERS, Ctx, asset, message_page
from hud.platform.web.pages import (
    ROLLOUT_SORTS,
    ROLLOUT_STATUSES,
    job_page,
    jobs_page,
    trace_page,
)

#: Rows a jobs or rollouts page shows.
PAGE_SIZE = 50
#: Ids in paths: uuids (dashed or not), hex, simple names; never path separators.
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def html_reply(text: str, status: int = 200) -> Reply:
    return Reply(status, text.encode("utf-8"), headers=dict(SECURITY_HEADERS))


def not_found(ctx: Ctx, what: str = "page") -> Reply:
    return html_reply(
        message_page(ctx, "Not found", f"No such {what} (or it belongs to another team)."), 404
    )


def static_reply(name: str) -> Reply | None:
    found = asset(name)
    if found is None:
        return None
    body, kind = found
    return Reply(
        200,
        body,
        kind,
        {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


def query_int(query: Mapping[str, str], name: str) -> int:
    """An integer query parameter clamped to [0, 10**9] (0 when missing or not a number)."""
    try:
        return max(0, min(int(query.get(name) or 0), 10**9))
    except ValueError:
        return 0


async def dispatch(source: ViewSource, ctx: Ctx, path: str, query: Mapping[str, str]) -> Reply:
    """The reply to ``GET <base><path>?<query>`` (``path`` starts with ``/``)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return Reply(302, b"", headers={"Location": ctx.base + "/jobs"})
    if parts[0] == "static" and len(parts) == 2:
        return static_reply(parts[1]) or not_found(ctx, "file")
    if parts == ["jobs"]:
        q = (query.get("q") or "")[:200]
        status = query.get("status") or ""
        if status not in source.statuses:
            status = ""
        page = await source.jobs(
            query=q, status=status, offset=query_int(query, "offset"), limit=PAGE_SIZE
        )
        return html_reply(
            jobs_page(ctx, page, query=q, status=status, statuses=tuple(source.statuses))
        )
    if len(parts) == 2 and parts[0] in ("jobs", "job") and _ID.match(parts[1]):
        detail = await source.job(parts[1])
        if detail is None:
            return not_found(ctx, "job")
        status = query.get("status") or ""
        if status not in ROLLOUT_STATUSES:
            status = ""
        sort = query.get("sort") or ""
        if sort not in ROLLOUT_SORTS:
            sort = ""
        rollouts = await source.rollouts(
            parts[1], status=status, sort=sort, offset=query_int(query, "offset"), limit=PAGE_SIZE
        )
        if rollouts is None:
            return not_found(ctx, "job")
        return html_reply(job_page(ctx, detail, rollouts, status=status, sort=sort))
    if len(parts) == 2 and parts[0] in ("trace", "traces") and _ID.match(parts[1]):
        trace = await source.trace(parts[1])
        if trace is None:
            return not_found(ctx, "trace")
        return html_reply(trace_page(ctx, trace))
    return not_found(ctx)
