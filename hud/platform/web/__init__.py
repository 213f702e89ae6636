"""The web pages: jobs, a job, the trace viewer (and the platform's own pages), server-rendered.

No Node, no third-party JavaScript or CSS: pages are HTML strings built by pure functions, one
hand-written stylesheet and one small script (``static/hud.css``, ``static/hud.js``: live
refresh of running views, trace replay), plots drawn as SVG on the server. Everything here
except `mount` imports with the standard library and pydantic only, so ``hud view`` runs on
the base install.

Modules
-------
``kit``     the page kit (stable interface for every page, including the platform-only ones):

            - ``Ctx(base="/web", who=None, platform=True)``: where a page is served; ``ctx.url(path,
              **query)`` builds links under the base.
            - ``layout(ctx, title, body_html, active="jobs", live=None) -> str``: a whole page
              (top bar with `NAV`, sign-out when ``ctx.who``); ``live=N`` re-fetches the page every
              N s and swaps its ``<main>`` while the server keeps marking it live.
            - ``esc(text)`` / ``attr(text)``: escape for element content / attribute values; every
              piece of data goes through one of them. ``link(href, text)``.
            - ``table(headers, rows, empty=...)``, ``stats([(label, html)])``,
              ``kv([(label, html)])``, ``pager(ctx, path, offset=, limit=, total=, query=)``,
              ``badge(status)``,
              ``json_block(value)``, ``message_page(ctx, title, text)``.
            - ``fmt_reward``, ``fmt_pct``, ``fmt_duration``, ``fmt_time``, ``cut``.
            - ``bar_chart([(label, value)])`` and ``range_chart([(label, lo, mean, hi)])``: SVG.
``data``    the shapes the viewer shows (`JobRow`, `JobDetail`, `RolloutsPage`, `TraceView`, …)
            and the `ViewSource` protocol that supplies them.
``local``   `LocalSource`: job records under ``.hud/jobs``.
``pages``   ``jobs_page``, ``job_page``, ``trace_page``, ``signin_page``.
``routes``  ``dispatch(source, ctx, path, query) -> Reply``: the viewer's routes, server-neutral.
``server``  `ViewServer`: ``hud view`` (asyncio, standard library).
``mount``   the platform side (imports FastAPI; only `hud.platform.api.app` imports it):
            ``mount(app, data_dir, *routers)`` serves ``/web``: sign-in (an API key, or
            ``Authorization: Bearer``) -> an HttpOnly, SameSite=Strict cookie holding an
            HMAC-signed (key id, expiry) token; the viewer over the team's jobs; then
            ``routers`` (platform pages of other modules), then a 404 page for the rest.
            A platform page is a route on an ``APIRouter`` taking ``viewer: Viewer`` (the
            signed-in `WebViewer`: ``.ident`` the `Identity`, ``.ctx`` the `Ctx`) and
            returning ``page(html)``; not signed in, it redirects to the sign-in page.
"""

from __future__ import annotations

from hud.platform.web.kit import Ctx, attr, esc, layout

__all__ = ["Ctx", "attr", "esc", "layout"]
