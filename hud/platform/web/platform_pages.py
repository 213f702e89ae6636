"""The platform's own pages: tasksets with their leaderboard, environments with their builds
and logs, models with their checkpoint tree, API keys, and the device-login approval page.

Data in, HTML out (no I/O), built with the page kit (`hud.platform.web.kit`); every piece of
data goes through ``esc``/``attr``. Forms are plain HTML (GET for filters and the comparison
picker, POST for actions), so every page works without JavaScript. Routes:
`hud.platform.web.platform_routes`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hud.eval import stats as st
from hud.platform.web.kit import (
    Ctx,
    attr,
    badge,
    cut,
    esc,
    fmt_duration,
    fmt_pct,
    fmt_reward,
    fmt_time,
    kv,
    layout,
    link,
    pager,
    seconds_between,
    stats,
    table,
)

if TYPE_CHECKING:
    from hud.platform.services.catalog import Leaderboard

METHODS = (
    "Mean reward: the mean of each task's mean reward (a task attempted several times counts"
    " once), with a 95% Student t interval over tasks. Success: reward ≥ {threshold:g}, with a"
    " 95% Wilson interval over attempts. pass@k: the unbiased estimator 1 − C(n−c, k)/C(n, k)"
    " averaged over the tasks with at least k attempts. Counted: finished rollouts (completed or"
    " error; a missing reward is 0) of the jobs that ran this taskset; the agent is the model"
    " the rollout reported."
)
#: Build statuses whose page refreshes itself (the log grows).
BUILDING = ("PENDING", "IN_PROGRESS", "MIGRATING", "CANCELLING")
PAIRED_METHODS = (
    "Per shared task, d = A's mean reward − B's. Mean of d with a 95% Student t interval; wins,"
    " ties and losses by the sign of d; p-values: exact two-sided sign test (ties dropped) and"
    " two-sided paired permutation test (sign flips of d)."
)


def _h(title: str, crumbs: Sequence[tuple[str, str]], extra: str = "") -> str:
    trail = " / ".join(link(href, text) for href, text in crumbs)
    return f'<p class="sub">{trail}</p><h1>{esc(title)}{extra}</h1>'


def _tabs(ctx: Ctx, path: str, current: str, tabs: Sequence[tuple[str, str]]) -> str:
    items = []
    for key, label in tabs:
        href = ctx.url(path, tab=key if key != tabs[0][0] else "")
        on = ' class="on" aria-current="page"' if key == current else ""
        items.append(f'<a href="{attr(href)}"{on}>{esc(label)}</a>')
    return f'<nav class="tabs">{"".join(items)}</nav>'


def _search(
    ctx: Ctx, path: str, query: str, placeholder: str, hidden: Mapping[str, str] = {}
) -> str:
    keep = "".join(
        f'<input type="hidden" name="{attr(k)}" value="{attr(v)}">' for k, v in hidden.items() if v
    )
    return (
        f'<form class="filters" method="get" action="{attr(ctx.url(path))}">{keep}'
        f'<input type="search" name="q" value="{attr(query)}" placeholder="{attr(placeholder)}"'
        f' aria-label="{attr(placeholder)}"><button type="submit">Search</button></form>'
    )


def _ci(est: st.Estimate, fmt: Any = fmt_reward) -> str:
    if est.low is None or est.high is None:
        return f'{fmt(est.value)} <span class="sub">(n={est.n})</span>'
    return f'{fmt(est.value)} <span class="sub ci">[{fmt(est.low)}, {fmt(est.high)}]</span>'


def _pm(est: st.Estimate) -> str:
    half = est.half_width
    if half is None:
        return fmt_reward(est.value)
    return f"{fmt_reward(est.value)} ± {half:.3f}"


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 0.001:
        return "&lt; 0.001"
    return f"{value:.3f}"


def _column_link(ctx: Ctx, path: str, name: str, text: str | None) -> str:
    """A custom column's value (text, as the service gives it) linking to the tasks showing it."""
    if not text:
        return ""
    href = ctx.url(path, tab="tasks", col=name, val=text)
    return f'<a class="colval" href="{attr(href)}">{esc(cut(text, 40))}</a>'


def short_json(value: Any, size: int = 80) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return cut(text, size)


# -- tasksets ------------------------------------------------------------------------------------
def tasksets_page(
    ctx: Ctx, items: Sequence[Mapping[str, Any]], *, total: int, query: str, offset: int, limit: int
) -> str:
    rows = [
        [
            link(ctx.url(f"/tasksets/{t['id']}"), t["name"], cls="taskset"),
            f"{t['task_count']:,}",
            f"{t['jobs']:,}",
            fmt_time(t.get("last_run")) if t.get("last_run") else "–",
            fmt_time(t.get("created_at")),
        ]
        for t in items
    ]
    grid = table(
        ["Taskset", ("Tasks", "num"), ("Jobs", "num"), "Last run", "Created"],
        rows,
        empty="No tasksets match."
        if query
        else "No tasksets yet: upload some with `hud sync tasks`.",
        cls="grid tasksets",
    )
    more = pager(ctx, "/tasksets", offset=offset, limit=limit, total=total, query={"q": query})
    body = f"<h1>Tasksets</h1>{_search(ctx, '/tasksets', query, 'Search tasksets')}{grid}{more}"
    return layout(ctx, "Tasksets", body, active="tasksets")


def taskset_page(
    ctx: Ctx,
    taskset: Mapping[str, Any],
    board: Leaderboard,
    *,
    tab: str,
    tasks: Sequence[Mapping[str, Any]] = (),
    tasks_total: int = 0,
    query: str = "",
    offset: int = 0,
    limit: int = 50,
    a: str = "",
    b: str = "",
    jobs: Sequence[Mapping[str, Any]] = (),
    column: tuple[str, str] | None = None,
) -> str:
    path = f"/tasksets/{taskset['id']}"
    head = _h(taskset["name"], [(ctx.url("/tasksets"), "Tasksets")])
    facts = kv(
        [
            ("Id", f'<span class="mono">{esc(taskset["id"])}</span>'),
            ("Tasks", f"{taskset['task_count']:,} uploaded, {len(board.task_totals()):,} run"),
            ("Jobs", f"{taskset['jobs']:,}"),
            ("Last run", fmt_time(taskset["last_run"]) if taskset.get("last_run") else "–"),
            ("Created", fmt_time(taskset.get("created_at"))),
        ]
    )
    tabs = _tabs(ctx, path, tab, [("leaderboard", "Leaderboard"), ("tasks", "Tasks")])
    if tab == "tasks":
        content = _tasks(ctx, path, board, tasks, tasks_total, query, offset, limit, column)
    else:
        content = _leaderboard(ctx, path, board, a, b, jobs)
    body = f"{head}{facts}{tabs}{content}"
    return layout(ctx, taskset["name"], body, active="tasksets")


def _leaderboard(
    ctx: Ctx,
    path: str,
    board: Leaderboard,
    a: str,
    b: str,
    jobs: Sequence[Mapping[str, Any]],
) -> str:
    if not board.rows:
        return (
            '<section id="leaderboard"><p class="sub">No finished rollouts of this taskset yet:'
            " run <code>hud eval &lt;taskset&gt; &lt;agent&gt;</code> and the agents appear here."
            "</p></section>"
        )
    heads: list[str | tuple[str, str]] = [
        ("#", "num"),
        "Agent / model",
        ("Mean reward ± 95% CI", "num"),
        ("Success rate [95% CI]", "num"),
        *[(f"pass@{k}", "num") for k in board.ks],
        ("Tasks", "num"),
        ("Attempts", "num"),
        ("Jobs", "num"),
        "Last run",
    ]
    rows = []
    for i, row in enumerate(board.rows, 1):
        passes = []
        for k in board.ks:
            found = row.pass_at.get(k)
            passes.append(
                "–"
                if found is None
                else f'{fmt_pct(found[0])} <span class="sub">({found[1]})</span>'
            )
        rows.append(
            [
                str(i),
                f'<span class="agent">{esc(row.agent)}</span>',
                _pm(row.mean),
                _ci(row.success, fmt_pct),
                *passes,
                f"{row.tasks:,}",
                f"{row.attempts:,}",
                f"{row.jobs:,}",
                fmt_time(row.last_run) if row.last_run else "–",
            ]
        )
    grid = table(heads, rows, cls="grid leaderboard")
    chart = forest_plot(
        [(r.agent, r.mean.low, r.mean.value, r.mean.high) for r in board.rows[:30]],
        title="Mean reward with 95% confidence intervals",
    )
    plot = (
        f'<div class="card plot" id="leaderboard-plot"><h2>Mean reward, 95% CI</h2>{chart}'
        '<p class="sub">Each line is an agent\'s 95% interval, the dot its mean, in rank order'
        " (no line: a single task).</p></div>"
    )
    methods = f'<p class="sub methods">{esc(METHODS.format(threshold=board.threshold))}</p>'
    compare = _compare(ctx, path, board, a, b)
    recent = _runs_over_time(ctx, jobs) if jobs else ""
    return (
        f'<section id="leaderboard">{grid}{methods}'
        f'<div class="two">{plot}{compare}</div>{recent}</section>'
    )


def forest_plot(
    rows: Sequence[tuple[str, float | None, float, float | None]],
    *,
    width: int = 520,
    lo: float = 0.0,
    hi: float = 1.0,
    title: str = "",
) -> str:
    """A horizontal interval plot, one row per item: (label, low, mean, high). Each interval
    is a ``<line class="range">``, each mean a ``<circle class="mean">`` with a hover title."""
    values = [v for _, a, m, b in rows for v in (a, m, b) if v is not None]
    lo, hi = min([lo, *values]), max([hi, *values])
    span = (hi - lo) or 1.0
    pad_l, pad_r, row_h, pad_t, pad_b = 150, 56, 24, 8, 26
    height = pad_t + row_h * max(len(rows), 1) + pad_b
    plot_w = width - pad_l - pad_r

    def x(v: float) -> float:
        return pad_l + plot_w * (v - lo) / span

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" role="img" aria-label="{attr(title)}">'
    ]
    base = height - pad_b
    for i in range(5):
        v = lo + span * i / 4
        out.append(
            f'<line class="grid-line" x1="{x(v):.1f}" y1="{pad_t}" x2="{x(v):.1f}" y2="{base}"/>'
            f'<text x="{x(v):.1f}" y="{base + 16}" text-anchor="middle">{v:.2g}</text>'
        )
    out.append(f'<line class="axis" x1="{pad_l}" y1="{base}" x2="{width - pad_r}" y2="{base}"/>')
    for i, (name, a, m, b) in enumerate(rows):
        cy = pad_t + row_h * i + row_h / 2
        tip = f"{name}: mean {m:.3f}" + (
            f", 95% CI [{a:.3f}, {b:.3f}]" if a is not None and b is not None else ""
        )
        line = (
            f'<line class="range" x1="{x(a):.1f}" y1="{cy:.1f}" x2="{x(b):.1f}" y2="{cy:.1f}"/>'
            if a is not None and b is not None
            else ""
        )
        out.append(
            f"<g><title>{esc(tip)}</title>"
            f'<text x="{pad_l - 8}" y="{cy + 4:.1f}" text-anchor="end">{esc(cut(name, 22))}</text>'
            f'{line}<circle class="mean" cx="{x(m):.1f}" cy="{cy:.1f}" r="4"/>'
            f'<text x="{width - pad_r + 6}" y="{cy + 4:.1f}">{m:.3f}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def _runs_over_time(ctx: Ctx, jobs: Sequence[Mapping[str, Any]]) -> str:
    """The newest jobs, oldest first: each agent's mean reward per job, plotted and listed."""
    ordered = list(reversed(jobs))
    series: dict[str, list[tuple[int, float, str]]] = {}
    rows = []
    for i, job in enumerate(ordered):
        label = job.get("name") or job["id"]
        for run in job.get("runs") or []:
            series.setdefault(run["agent"], []).append((i, run["mean"], label))
    for job in jobs:
        runs = job.get("runs") or [{"agent": "–", "rollouts": 0, "mean": None}]
        for run in runs:
            rows.append(
                [
                    link(ctx.url(f"/jobs/{job['id']}"), cut(job.get("name") or job["id"], 60)),
                    fmt_time(job.get("created_at")),
                    f'<span class="agent">{esc(run["agent"])}</span>',
                    f"{run['rollouts']:,}",
                    fmt_reward(run["mean"]),
                ]
            )
    grid = table(
        ["Job", "Created", "Agent / model", ("Rollouts", "num"), ("Mean reward", "num")],
        rows,
        cls="grid jobs",
    )
    plot = ""
    if len(ordered) > 1 and series:
        plot = (
            '<div class="card plot" id="trend-plot"><h2>Mean reward per job, over time</h2>'
            f'{trend_plot(series, len(ordered))}<p class="sub">Each point: an agent\'s mean reward'
            " over its finished rollouts in one job; the newest jobs, oldest first.</p></div>"
        )
    return f"<h2>Runs over time</h2>{plot}<details open><summary>Jobs</summary>{grid}</details>"


def trend_plot(
    series: Mapping[str, Sequence[tuple[int, float, str]]],
    slots: int,
    *,
    width: int = 720,
    height: int = 180,
) -> str:
    """One polyline per agent through its (slot, value, hover label) points; slots are jobs in
    time order. Series take the classes ``s0``…``s5`` (colours), a legend follows."""
    pad_l, pad_r, pad_t, pad_b = 40, 16, 10, 24
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    top = max([1.0, *(v for points in series.values() for _, v, _ in points)])

    def x(i: int) -> float:
        return pad_l + (plot_w * i / (slots - 1) if slots > 1 else plot_w / 2)

    def y(v: float) -> float:
        return pad_t + plot_h * (1 - v / top)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" role="img" aria-label="Mean reward per job over time">'
    ]
    for v in (0.0, top / 2, top):
        out.append(
            f'<line class="grid-line" x1="{pad_l}" y1="{y(v):.1f}" x2="{width - pad_r}"'
            f' y2="{y(v):.1f}"/><text x="{pad_l - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
            f"{v:.2g}</text>"
        )
    legend = []
    for n, (agent, points) in enumerate(list(series.items())[:6]):
        klass = f"s{n}"
        path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v, _ in points)
        out.append(f'<polyline class="trend {klass}" points="{path}"/>')
        for i, v, label in points:
            out.append(
                f'<circle class="trend {klass}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5">'
                f"<title>{esc(agent)} · {esc(cut(label, 60))}: {v:.3f}</title></circle>"
            )
        legend.append(f'<span class="key {klass}">{esc(agent)}</span>')
    out.append("</svg>")
    return "".join(out) + f'<p class="legend">{" ".join(legend)}</p>'


def _options(agents: Sequence[str], chosen: str) -> str:
    return "".join(
        f'<option value="{attr(x)}"{" selected" if x == chosen else ""}>{esc(x)}</option>'
        for x in agents
    )


def _compare(ctx: Ctx, path: str, board: Leaderboard, a: str, b: str) -> str:
    agents = board.agents
    if len(agents) < 2:
        return (
            '<div class="card" id="compare"><h2>Paired comparison</h2><p class="sub">Needs two'
            " agents that ran this taskset.</p></div>"
        )
    a = a if a in agents else agents[0]
    b = b if b in agents and b != a else next(x for x in agents if x != a)
    form = (
        f'<form class="filters" method="get" action="{attr(ctx.url(path))}#compare">'
        f'<select name="a" aria-label="Agent A">{_options(agents, a)}</select>'
        '<span class="sub">vs</span>'
        f'<select name="b" aria-label="Agent B">{_options(agents, b)}</select>'
        '<button type="submit">Compare</button></form>'
    )
    result = board.compare(a, b)
    if result is None:
        out = '<p class="sub">These two agents share no task.</p>'
    else:
        d = result.difference
        interval = "–" if d.low is None or d.high is None else f"[{d.low:+.3f}, {d.high:+.3f}]"
        verdict = _verdict(a, b, result)
        out = (
            stats(
                [
                    ("Shared tasks", f"{result.n:,}"),
                    ("Mean difference", f"{d.value:+.3f}"),
                    ("95% CI", esc(interval)),
                    ("Wins / ties / losses", f"{result.wins} / {result.ties} / {result.losses}"),
                    ("Sign test p", _p(result.sign_p)),
                    ("Permutation p", _p(result.permutation_p)),
                ]
            )
            + f'<p class="verdict">{esc(verdict)}</p>'
            + _paired_rows(board, a, b)
            + f'<p class="sub methods">{esc(PAIRED_METHODS)}</p>'
        )
    return f'<div class="card" id="compare"><h2>Paired comparison</h2>{form}{out}</div>'


def _verdict(a: str, b: str, result: st.Paired) -> str:
    d = result.difference
    if d.low is not None and d.low > 0:
        return f"{a} scores higher than {b} on the shared tasks (the 95% interval excludes 0)."
    if d.high is not None and d.high < 0:
        return f"{b} scores higher than {a} on the shared tasks (the 95% interval excludes 0)."
    return f"No clear difference between {a} and {b} on the shared tasks at 95%."


def _paired_rows(board: Leaderboard, a: str, b: str, limit: int = 20) -> str:
    ca, cb = board.counts.get(a, {}), board.counts.get(b, {})
    shared = sorted(set(ca) & set(cb), key=lambda t: (-abs(ca[t].mean - cb[t].mean), t))
    rows = [
        [
            esc(cut(t, 60)),
            fmt_reward(ca[t].mean),
            fmt_reward(cb[t].mean),
            f"{ca[t].mean - cb[t].mean:+.3f}",
        ]
        for t in shared[:limit]
    ]
    note = (
        f'<p class="sub">The {limit} largest of {len(shared):,} differences.</p>'
        if len(shared) > limit
        else ""
    )
    grid = table(
        ["Task", ("A mean", "num"), ("B mean", "num"), ("A − B", "num")], rows, cls="grid paired"
    )
    return f"<details><summary>Per task</summary>{grid}{note}</details>"


def _tasks(
    ctx: Ctx,
    path: str,
    board: Leaderboard,
    items: Sequence[Mapping[str, Any]],
    total: int,
    query: str,
    offset: int,
    limit: int,
    column: tuple[str, str] | None = None,
) -> str:
    totals = board.task_totals()
    column_names: list[str] = []
    for t in items:
        for name in t.get("columns") or {}:
            if name not in column_names and len(column_names) < 4:
                column_names.append(name)
    rows = []
    for t in items:
        c = totals.get(t["name"])
        rows.append(
            [
                f'<span class="mono">{esc(t["name"])}</span>',
                link(ctx.url(f"/environments/{t['env']}"), t["env"]),
                esc(t["task_id"]),
                f'<span class="mono sub">{esc(short_json(t.get("args") or {}))}</span>',
                *[
                    _column_link(ctx, path, n, (t.get("columns") or {}).get(n))
                    for n in column_names
                ],
                f"{c.attempts:,}" if c else "0",
                fmt_reward(c.mean) if c else "–",
                str(t.get("version") or 1),
            ]
        )
    grid = table(
        [
            "Task",
            "Environment",
            "Template",
            "Args",
            *column_names,
            ("Attempts", "num"),
            ("Mean reward", "num"),
            ("Version", "num"),
        ],
        rows,
        empty="No tasks match."
        if query or column
        else "No tasks yet: upload some with `hud sync tasks`.",
        cls="grid tasks",
    )
    keep = {"q": query, "tab": "tasks"}
    hidden = {"tab": "tasks"}
    note = ""
    if column is not None:
        keep.update(col=column[0], val=column[1])
        hidden.update(col=column[0], val=column[1])
        clear = link(ctx.url(path, tab="tasks", q=query), "show all")
        note = (
            f'<p class="filter">Only tasks whose <b>{esc(column[0])}</b> is'
            f" <b>{esc(cut(column[1], 60))}</b> ({clear}).</p>"
        )
    more = pager(ctx, path, offset=offset, limit=limit, total=total, query=keep)
    search = _search(ctx, path, query, "Search tasks", hidden)
    return f'<section id="tasks">{search}{note}{grid}{more}</section>'


# -- environments --------------------------------------------------------------------------------
def environments_page(
    ctx: Ctx, items: Sequence[Mapping[str, Any]], *, total: int, query: str, offset: int, limit: int
) -> str:
    rows = []
    for e in items:
        latest = e.get("latest_build") or {}
        rows.append(
            [
                link(ctx.url(f"/environments/{e['id']}"), e["name"], cls="environment"),
                esc(latest.get("version") or "–"),
                f"{e.get('build_count', 0):,}",
                f"{len((latest.get('manifest') or {}).get('tasks') or []):,}",
                f'<span class="mono sub">{esc(cut(latest.get("uri") or "", 60))}</span>',
                fmt_time(e.get("last_build")) if e.get("last_build") else "–",
            ]
        )
    grid = table(
        ["Environment", ("Version", "num"), ("Builds", "num"), ("Templates", "num"), "Image",
         "Last build"],
        rows,
        empty="No environments match." if query else "No environments yet: run `hud deploy`.",
        cls="grid environments",
    )  # fmt: skip
    more = pager(ctx, "/environments", offset=offset, limit=limit, total=total, query={"q": query})
    search = _search(ctx, "/environments", query, "Search environments")
    return layout(
        ctx, "Environments", f"<h1>Environments</h1>{search}{grid}{more}", active="environments"
    )


def environment_page(
    ctx: Ctx,
    env: Mapping[str, Any],
    builds: Sequence[Mapping[str, Any]],
    *,
    total: int,
    offset: int,
    limit: int,
    shown: Mapping[str, Any] | None,
    log: Sequence[tuple[int | None, str]],
    log_cut: bool,
) -> str:
    path = f"/environments/{env['id']}"
    latest = env.get("latest_build") or {}
    head = _h(env["name"], [(ctx.url("/environments"), "Environments")])
    facts = kv(
        [
            ("Registry id", f'<span class="mono">{esc(env["id"])}</span>'),
            ("Latest version", esc(latest.get("version") or "–")),
            ("Image", f'<span class="mono">{esc(latest.get("uri") or "–")}</span>'),
            ("Runtime", esc(env.get("runtime_provider") or "default")),
            ("Secrets", esc(", ".join(env.get("secret_names") or []) or "none")
             + ' <span class="sub">(names only)</span>'),
            ("Created", fmt_time(env.get("created_at"))),
        ]
    )  # fmt: skip
    manifest = latest.get("manifest") or {}
    templates = [
        [
            f'<span class="mono">{esc(t.get("id") or t.get("name"))}</span>',
            esc(cut(t.get("description") or "", 120)),
            f'<span class="mono sub">{esc(short_json(_arg_names(t), 100))}</span>',
        ]
        for t in manifest.get("tasks") or []
        if isinstance(t, dict)
    ]
    caps = [
        esc(c.get("name") if isinstance(c, dict) else c) for c in manifest.get("capabilities") or []
    ]
    parts = [head, facts, "<h2>Templates (latest version)</h2>"]
    parts.append(
        table(["Template", "Description", "Arguments"], templates,
              empty="No successful build yet.", cls="grid templates")
    )  # fmt: skip
    if caps:
        parts.append(f'<p class="sub">Capabilities: {", ".join(caps)}</p>')
    rows = []
    for build in builds:
        selected = shown is not None and build["id"] == shown["id"]
        rows.append(
            [
                f"v{esc(build['version'])}" if build.get("version") is not None else "–",
                badge(build["status"]),
                fmt_time(build.get("created_at")),
                fmt_duration(seconds_between(build.get("started_at"), build.get("finished_at"))),
                f"{build.get('tasks', 0):,}",
                f'<span class="err">{esc(cut(build.get("error_message") or "", 80))}</span>',
                "showing" if selected else link(ctx.url(path, build=build["id"]) + "#log", "log"),
            ]
        )
    parts.append("<h2>Builds</h2>")
    parts.append(
        table(["Version", "Status", "Started", ("Took", "num"), ("Templates", "num"), "Error",
               "Log"], rows, empty="No builds yet.", cls="grid builds")
    )  # fmt: skip
    parts.append(pager(ctx, path, offset=offset, limit=limit, total=total))
    if shown is not None:
        parts.append(_log(shown, log, log_cut))
    building = shown is not None and shown.get("status") in BUILDING
    if building:
        parts.insert(1, '<p class="live">Live: this build is running; its log follows.</p>')
    return layout(
        ctx, env["name"], "".join(parts), active="environments", live=3 if building else None
    )


def _arg_names(template: Mapping[str, Any]) -> Any:
    schema = template.get("args") or template.get("arguments") or template.get("input_schema")
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
        return sorted(schema["properties"])
    return schema or {}


def _log(build: Mapping[str, Any], lines: Sequence[tuple[int | None, str]], cut_: bool) -> str:
    from datetime import UTC, datetime

    text = []
    for stamp, message in lines:
        when = (
            datetime.fromtimestamp(stamp / 1000, UTC).strftime("%H:%M:%S ")
            if stamp is not None
            else ""
        )
        text.append(f"{when}{message}")
    note = '<p class="sub">Earlier lines left out.</p>' if cut_ else ""
    body = esc("\n".join(text)) if text else "(no log lines)"
    version = f"v{build['version']}" if build.get("version") is not None else build["id"]
    return (
        f'<section id="log"><h2>Build log: {esc(version)} {badge(build["status"])}</h2>'
        f'{note}<pre class="log">{body}</pre></section>'
    )


# -- models ----------------------------------------------------------------------------------------
def models_page(
    ctx: Ctx, items: Sequence[Mapping[str, Any]], *, total: int, offset: int, limit: int
) -> str:
    rows = [
        [
            link(ctx.url(f"/models/{m['id']}"), m["name"], cls="model"),
            f'<span class="mono">{esc(m["model_name"])}</span>',
            esc((m.get("provider") or {}).get("name") or "–"),
            esc(m.get("sdk_agent_type") or "–"),
            "yes" if m.get("is_trainable") else "no",
            "fork" if m.get("source_model_id") else "shared",
            fmt_time(m.get("created_at")),
        ]
        for m in items
    ]
    grid = table(
        ["Name", "Model", "Provider", "Agent", "Trainable", "Kind", "Created"],
        rows,
        empty="No models yet: add an upstream (`hud platform upstream add`).",
        cls="grid models",
    )
    more = pager(ctx, "/models", offset=offset, limit=limit, total=total)
    return layout(ctx, "Models", f"<h1>Models</h1>{grid}{more}", active="models")


def model_page(
    ctx: Ctx, model: Mapping[str, Any], checkpoints: Sequence[Mapping[str, Any]], *, tab: str
) -> str:
    path = f"/models/{model['id']}"
    head = _h(model["name"], [(ctx.url("/models"), "Models")])
    tabs = _tabs(ctx, path, tab, [("overview", "Overview"), ("checkpoints", "Checkpoints")])
    if tab == "checkpoints":
        content = _checkpoints(checkpoints)
    else:
        head_cp = next((c for c in checkpoints if c.get("is_active")), None)
        content = kv(
            [
                ("Id", f'<span class="mono">{esc(model["id"])}</span>'),
                ("Model name", f'<span class="mono">{esc(model["model_name"])}</span>'),
                ("Provider", esc((model.get("provider") or {}).get("name") or "–")),
                ("Agent type", esc(model.get("sdk_agent_type") or "–")),
                ("Trainable", "yes" if model.get("is_trainable") else "no"),
                ("Forked from", esc(model.get("source_model_id") or "–")),
                ("Checkpoints", f"{len(checkpoints):,}"),
                ("Head", esc(head_cp["name"]) if head_cp else "–"),
                ("Created", fmt_time(model.get("created_at"))),
            ]
        )
    return layout(ctx, model["name"], f"{head}{tabs}{content}", active="models")


def _checkpoints(checkpoints: Sequence[Mapping[str, Any]]) -> str:
    if not checkpoints:
        return (
            '<section id="checkpoints"><p class="sub">No checkpoints: a fork gets them from'
            " training or <code>POST /v2/models/&lt;id&gt;/checkpoints</code>.</p></section>"
        )
    by_id = {c["id"]: c for c in checkpoints}
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for c in checkpoints:
        parent = c.get("prev_model_checkpoint_id")
        children.setdefault(parent if parent in by_id else None, []).append(c)

    def node(c: Mapping[str, Any], depth: int) -> str:
        head = ' <span class="badge ok">head</span>' if c.get("is_active") else ""
        serving = ' <span class="badge">serving</span>' if c.get("serving") else ""
        metrics = {
            k: v
            for k, v in (c.get("metrics") or {}).items()
            if isinstance(v, (int, float, str)) and not isinstance(v, bool)
        }
        facts = " · ".join(f"{esc(k)} {esc(_metric(v))}" for k, v in list(metrics.items())[:6])
        kids = children.get(c["id"], []) if depth < 200 else []
        inner = "".join(node(k, depth + 1) for k in kids)
        return (
            f'<li class="checkpoint" data-id="{attr(c["id"])}"><span class="mono">'
            f"{esc(c.get('name') or c['id'])}</span>{head}{serving}"
            f' <span class="sub">{fmt_time(c.get("created_at"))}'
            f"{' · ' + facts if facts else ''}</span>"
            f"{'<ul>' + inner + '</ul>' if inner else ''}</li>"
        )

    tree = "".join(node(c, 0) for c in children.get(None, []))
    rows = [
        [
            f'<span class="mono">{esc(c.get("name") or c["id"])}</span>',
            esc((by_id.get(c.get("prev_model_checkpoint_id") or "") or {}).get("name") or "–"),
            "head" if c.get("is_active") else "",
            fmt_reward(c.get("mean_reward")) if c.get("mean_reward") is not None else "–",
            esc(_metric(c.get("num_traces"))),
            esc(_metric(c.get("learning_rate"))),
            fmt_time(c.get("created_at")),
        ]
        for c in checkpoints
    ]
    grid = table(
        ["Checkpoint", "Parent", "Head", ("Mean reward", "num"), ("Traces", "num"),
         ("Learning rate", "num"), "Created"],
        rows,
        cls="grid checkpoints",
    )  # fmt: skip
    return (
        f'<section id="checkpoints"><h2>Checkpoint tree</h2><ul class="tree">{tree}</ul>'
        f"<h2>All checkpoints</h2>{grid}</section>"
    )


def _metric(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# -- API keys --------------------------------------------------------------------------------------
def keys_page(
    ctx: Ctx,
    keys: Sequence[Mapping[str, Any]],
    *,
    created: tuple[str, Mapping[str, Any]] | None = None,
    notice: str = "",
    error: str = "",
) -> str:
    parts = ["<h1>API keys</h1>"]
    parts.append(
        '<p class="sub">Your keys in this team. A key is shown once, when it is made; the platform'
        " keeps only its hash. Revoking a key stops it at once (and signs out the sessions it"
        " started).</p>"
    )
    if error:
        parts.append(f'<p class="err">{esc(error)}</p>')
    if notice:
        parts.append(f'<p class="notice">{esc(notice)}</p>')
    if created is not None:
        key, info = created
        parts.append(
            '<div class="card newkey" id="new-key"><h2>New key'
            f"{' “' + esc(info.get('name')) + '”' if info.get('name') else ''}</h2>"
            "<p>Copy it now: it will not be shown again.</p>"
            f'<pre class="key"><code>{esc(key)}</code></pre>'
            '<p class="sub">Use it as <code>HUD_API_KEY</code> (or run <code>hud login</code>).'
            "</p></div>"
        )
    parts.append(
        f'<form class="filters" method="post" action="{attr(ctx.url("/keys"))}">'
        '<input type="text" name="name" maxlength="200" placeholder="Name (optional)"'
        ' aria-label="Key name"><button type="submit" class="primary">Create key</button></form>'
    )
    rows = []
    for k in keys:
        if k.get("revoked_at"):
            state = f'<span class="badge cancelled">revoked</span> {fmt_time(k["revoked_at"])}'
            action = ""
        else:
            state = '<span class="badge ok">active</span>'
            note = " (signs you out)" if k.get("current") else ""
            target = ctx.url(f"/keys/{k['id']}/revoke")
            action = (
                f'<form method="post" action="{attr(target)}">'
                f'<button type="submit" aria-label="Revoke {attr(k["prefix"])}">Revoke{note}'
                "</button></form>"
            )
        rows.append(
            [
                f'<span class="mono">{esc(k["prefix"])}…</span>'
                + (' <span class="sub">(this session)</span>' if k.get("current") else ""),
                esc(k.get("name") or ""),
                fmt_time(k.get("created_at")),
                state,
                action,
            ]
        )
    parts.append(
        table(["Key", "Name", "Created", "State", ""], rows, empty="No keys.", cls="grid keys")
    )
    return layout(ctx, "API keys", "".join(parts), active="keys")


# -- device login ----------------------------------------------------------------------------------
def device_page(
    ctx: Ctx,
    *,
    code: str = "",
    client: str | None = None,
    who: str | None = None,
    error: str | None = None,
) -> str:
    """The approval form of ``hud login`` (RFC 8628): a plain HTML form POST, no script needed."""
    parts = ['<div class="signin card device"><h1>Sign in to hud</h1>']
    if error:
        parts.append(f'<p class="err">{esc(error)}</p>')
    if client is not None and code:
        parts.append(
            f"<p><b>{esc(client or 'A device')}</b> asks to sign in as you. Check that it shows"
            f' this code:</p><p class="code">{esc(code)}</p>'
        )
    parts.append(f'<form method="post" action="{attr(ctx.url("/device"))}">')
    parts.append(
        '<label for="user_code">Code shown by <code>hud login</code></label>'
        f'<input id="user_code" type="text" name="user_code" value="{attr(code)}"'
        ' autocomplete="off" required>'
    )
    if who:
        parts.append(f'<p class="sub">Signed in as {esc(who)}.</p>')
    else:
        parts.append(
            '<label for="api_key">Sign in with an existing API key</label>'
            '<input id="api_key" type="password" name="api_key" autocomplete="off" required>'
        )
    parts.append(
        '<button name="action" value="approve" type="submit" class="primary">Approve</button> '
        '<button name="action" value="deny" type="submit">Deny</button></form></div>'
    )
    return layout(ctx, "Sign in to hud", "".join(parts))


def device_result_page(ctx: Ctx, title: str, text: str) -> str:
    body = f'<div class="signin card device"><h1>{esc(title)}</h1><p>{esc(text)}</p></div>'
    return layout(ctx, title, body)


__all__ = [
    "device_page",
    "device_result_page",
    "environment_page",
    "environments_page",
    "keys_page",
    "model_page",
    "models_page",
    "taskset_page",
    "tasksets_page",
]
