"""The page kit: layout, escaping, formatting, tables, pagers and server-side SVG plots.

Every function is pure (values in, HTML text out) and standard library only. Anything that
reaches HTML from data goes through `esc` (or `attr` for attribute values); helpers that take
``html`` arguments expect markup already built from escaped pieces.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

STATIC_DIR = Path(__file__).with_name("static")
#: Assets served under ``<base>/static/`` (name -> content type).
ASSETS = {"hud.css": "text/css; charset=utf-8", "hud.js": "text/javascript; charset=utf-8"}


def _asset_version() -> str:
    digest = hashlib.sha256()
    for name in sorted(ASSETS):
        digest.update((STATIC_DIR / name).read_bytes())
    return digest.hexdigest()[:10]


ASSET_VERSION = _asset_version()

#: Pages of the top navigation: (key, path under the base, label, platform only).
NAV: tuple[tuple[str, str, str, bool], ...] = (
    ("jobs", "/jobs", "Jobs", False),
    ("tasksets", "/tasksets", "Tasksets", True),
    ("environments", "/environments", "Environments", True),
    ("models", "/models", "Models", True),
    ("keys", "/keys", "API keys", True),
)


@dataclass(frozen=True)
class Ctx:
    """What every page needs to know about where it is served.

    ``base``: the URL prefix of the pages (``/web`` on the platform and in ``hud view``);
    ``who``: the signed-in team/user label (None: no sign-in, as in ``hud view``);
    ``platform``: show the platform-only navigation; ``title``: the product name in the bar.
    """

    base: str = "/web"
    who: str | None = None
    platform: bool = True
    title: str = "hud"
    extra_nav: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)

    def url(self, path: str, **query: Any) -> str:
        """``base + path`` with the non-empty ``query`` items (already a safe URL; escape it
        with `attr` when it goes into an attribute)."""
        items = {k: v for k, v in query.items() if v not in (None, "", 0)}
        return self.base + path + (("?" + urlencode(items)) if items else "")


# -- escaping ----------------------------------------------------------------------------
def esc(value: Any) -> str:
    """Text for HTML element content (None is empty)."""
    return "" if value is None else html.escape(str(value), quote=False)


def attr(value: Any) -> str:
    """Text for a double-quoted HTML attribute value."""
    return "" if value is None else html.escape(str(value), quote=True)


def link(href: str, text: Any, *, cls: str | None = None) -> str:
    klass = f' class="{attr(cls)}"' if cls else ""
    return f'<a href="{attr(href)}"{klass}>{esc(text)}</a>'


def json_block(value: Any, *, limit: int = 20000) -> str:
    """A value as indented JSON in a ``<pre>`` (cut at ``limit`` characters)."""
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit} more characters)"
    return f"<pre>{esc(text)}</pre>"


# -- formatting ----------------------------------------------------------------------------
def fmt_reward(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def fmt_pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0 or math.isnan(seconds):
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 120:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def parse_time(text: Any) -> datetime | None:
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=UTC)
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def fmt_time(text: Any) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS`` UTC (the raw text when unparsable)."""
    value = parse_time(text)
    if value is None:
        return esc(text) if text else "–"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def seconds_between(start: Any, end: Any) -> float | None:
    a, b = parse_time(start), parse_time(end)
    return None if a is None or b is None else (b - a).total_seconds()


def cut(text: Any, size: int) -> str:
    value = "" if text is None else str(text)
    return value if len(value) <= size else value[: size - 1] + "…"


def badge(status: Any) -> str:
    label = str(status or "unknown")
    klass = "".join(c for c in label.lower() if c.isalnum() or c == "-")
    return f'<span class="badge {klass}">{esc(label)}</span>'


# -- building blocks ---------------------------------------------------------------------
def table(
    headers: Sequence[str | tuple[str, str]],
    rows: Iterable[Sequence[str]],
    *,
    empty: str = "Nothing here yet.",
    cls: str = "grid",
) -> str:
    """A table; ``headers`` items are a label or (label, css class) (``num`` right-aligns);
    ``rows`` cells are HTML (escape data with `esc`). A row's cells take their header's class."""
    heads = [(h, "") if isinstance(h, str) else h for h in headers]
    head = "".join(
        f'<th class="{attr(c)}">{esc(h)}</th>' if c else f"<th>{esc(h)}</th>" for h, c in heads
    )
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            c = heads[i][1] if i < len(heads) else ""
            cells.append(f'<td class="{attr(c)}">{cell}</td>' if c else f"<td>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(heads)}" class="sub">{esc(empty)}</td></tr>')
    rows_html = "".join(body)
    return (
        f'<table class="{attr(cls)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows_html}</tbody></table>"
    )


def stats(items: Iterable[tuple[str, str]]) -> str:
    """A row of stat cards: (label, value HTML)."""
    cards = "".join(
        f'<div class="card stat"><div class="k">{esc(k)}</div><div class="v">{v}</div></div>'
        for k, v in items
    )
    return f'<div class="cards">{cards}</div>'


def kv(items: Iterable[tuple[str, str]]) -> str:
    """A definition list: (label, value HTML)."""
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="kv">{rows}</dl>'


def pager(
    ctx: Ctx,
    path: str,
    *,
    offset: int,
    limit: int,
    total: int,
    query: Mapping[str, Any] | None = None,
    param: str = "offset",
) -> str:
    """« Previous / Next » links over ``total`` items shown ``limit`` at a time."""
    if total <= limit and offset == 0:
        return ""
    q = dict(query or {})
    first = min(offset + 1, total) if total else 0
    last = min(offset + limit, total)
    parts = [f"<span>{first:,}–{last:,} of {total:,}</span>"]
    if offset > 0:
        parts.append(link(ctx.url(path, **{**q, param: max(0, offset - limit)}), "« Previous"))
    if offset + limit < total:
        parts.append(link(ctx.url(path, **{**q, param: offset + limit}), "Next »"))
    return f'<div class="pager">{"".join(parts)}</div>'


# -- plots (server-side SVG) ---------------------------------------------------------------
def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    width: int = 520,
    height: int = 200,
    label: str = "",
    title: str = "",
) -> str:
    """A vertical bar chart: (x label, value) per bar. Each bar is ``<rect class="bar">`` with
    a ``<title>`` (hover text) and ``data-value``; the SVG has ``role="img"``."""
    pad_l, pad_r, pad_t, pad_b = 40, 10, 12, 34
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    top = max((v for _, v in bars), default=0) or 1
    n = max(len(bars), 1)
    slot = plot_w / n
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" role="img" aria-label="{attr(title or label)}">'
    ]
    base = pad_t + plot_h
    out.append(f'<line class="axis" x1="{pad_l}" y1="{base}" x2="{width - pad_r}" y2="{base}"/>')
    for frac in (0.5, 1.0):
        y = base - plot_h * frac
        out.append(
            f'<text x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end">{_num(top * frac)}</text>'
        )
    every = max(1, math.ceil(n / 12))
    for i, (name, value) in enumerate(bars):
        h = plot_h * (value / top) if value > 0 else 0
        x = pad_l + i * slot + slot * 0.1
        out.append(
            f'<rect class="bar" x="{x:.1f}" y="{base - h:.1f}" width="{slot * 0.8:.1f}"'
            f' height="{h:.1f}" data-value="{_num(value)}">'
            f"<title>{esc(name)}: {_num(value)}</title></rect>"
        )
        if i % every == 0:
            cx = pad_l + i * slot + slot / 2
            out.append(
                f'<text x="{cx:.1f}" y="{base + 14}" text-anchor="middle">{esc(name)}</text>'
            )
    if label:
        out.append(
            f'<text x="{pad_l + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">'
            f"{esc(label)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def range_chart(
    rows: Sequence[tuple[str, float, float, float]],
    *,
    width: int = 520,
    height: int = 200,
    lo: float = 0.0,
    hi: float = 1.0,
    title: str = "",
) -> str:
    """Per item a vertical min–max line with a dot at the mean: (label, min, mean, max). Lines
    are ``<line class="range">``, dots ``<circle class="mean">``."""
    pad_l, pad_r, pad_t, pad_b = 40, 10, 12, 20
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    span = (hi - lo) or 1.0
    n = max(len(rows), 1)
    slot = plot_w / n

    def y(v: float) -> float:
        return pad_t + plot_h * (1 - (v - lo) / span)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" role="img" aria-label="{attr(title)}">'
    ]
    base = pad_t + plot_h
    out.append(f'<line class="axis" x1="{pad_l}" y1="{base}" x2="{width - pad_r}" y2="{base}"/>')
    for v in (lo, (lo + hi) / 2, hi):
        out.append(f'<text x="{pad_l - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{_num(v)}</text>')
    for i, (name, a, m, b) in enumerate(rows):
        cx = pad_l + i * slot + slot / 2
        tip = f"{name}: mean {_num(m)}, min {_num(a)}, max {_num(b)}"
        out.append(
            f'<g><title>{esc(tip)}</title><line class="range" x1="{cx:.1f}" y1="{y(a):.1f}"'
            f' x2="{cx:.1f}" y2="{y(b):.1f}"/><circle class="mean" cx="{cx:.1f}" cy="{y(m):.1f}"'
            f' r="{max(1.5, min(4.0, slot / 3)):.1f}"/></g>'
        )
    out.append("</svg>")
    return "".join(out)


def _num(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.3g}"


# -- the layout ----------------------------------------------------------------------------
def layout(
    ctx: Ctx,
    title: str,
    body: str,
    *,
    active: str | None = None,
    live: int | None = None,
) -> str:
    """A whole page: top bar (navigation, who is signed in, sign-out), ``<main>`` holding
    ``body``. ``live``: seconds between refreshes of ``<main>`` while the view changes (a
    running job); None for a static view."""
    nav = []
    entries = [(k, p, label) for k, p, label, only in NAV if ctx.platform or not only]
    for key, path, label in (*entries, *ctx.extra_nav):
        klass = ' class="on"' if key == active else ""
        nav.append(f'<a href="{attr(ctx.base + path)}"{klass}>{esc(label)}</a>')
    who = ""
    if ctx.who:
        who = (
            f'<div class="who"><span>{esc(ctx.who)}</span>'
            f'<form method="post" action="{attr(ctx.base)}/signout">'
            '<button type="submit">Sign out</button></form></div>'
        )
    live_attr = f' data-live="{int(live)}"' if live else ""
    static = ctx.base + "/static/"
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · {esc(ctx.title)}</title>"
        f'<link rel="stylesheet" href="{attr(static)}hud.css?v={ASSET_VERSION}">'
        f'<script src="{attr(static)}hud.js?v={ASSET_VERSION}" defer></script>'
        "</head><body>"
        f'<header class="top"><a class="brand" href="{attr(ctx.base)}/jobs">{esc(ctx.title)}</a>'
        f"<nav>{''.join(nav)}</nav>{who}</header>"
        f"<main{live_attr}>{body}</main></body></html>\n"
    )


def message_page(ctx: Ctx, title: str, text: str, *, active: str | None = None) -> str:
    """A page saying one thing (errors, not found)."""
    return layout(ctx, title, f'<h1>{esc(title)}</h1><p class="sub">{esc(text)}</p>', active=active)


def asset(name: str) -> tuple[bytes, str] | None:
    """The bytes and content type of a static asset, or None."""
    kind = ASSETS.get(name)
    if kind is None:
        return None
    return (STATIC_DIR / name).read_bytes(), kind


#: Headers every page response carries: no inline script or style, images from the page or
#: ``data:`` URIs (screenshots), no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
