"""The jobs, job and trace pages, and the sign-in page: data in, HTML out (no I/O)."""

from __future__ import annotations

import json
import re
from typing import Any

from hud.platform.web.data import (
    JobDetail,
    JobsPage,
    RolloutsPage,
    TraceView,
)
from hud.platform.web.kit import (
    Ctx,
    attr,
    badge,
    bar_chart,
    cut,
    esc,
    fmt_duration,
    fmt_pct,
    fmt_reward,
    fmt_time,
    json_block,
    kv,
    layout,
    link,
    pager,
    range_chart,
    seconds_between,
    stats,
    table,
)

#: Seconds between refreshes of a running view.
LIVE_SECONDS = 3
#: Characters of one text block shown (a page stays bounded whatever a tool printed).
TEXT_LIMIT = 100_000
#: Groups listed under the spread plot (the widest first).
GROUP_ROWS = 10
#: Orders of the rollouts table: (value, label).
ROLLOUT_SORTS = {
    "": "run order",
    "reward": "lowest reward first",
    "-reward": "highest reward first",
}
ROLLOUT_STATUSES = ("completed", "error", "cancelled", "running", "queued")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")


def short(value: Any, size: int = 8) -> str:
    return str(value or "").replace("-", "")[:size]


# -- jobs ------------------------------------------------------------------------------------
def jobs_page(
    ctx: Ctx, page: JobsPage, *, query: str = "", status: str = "", statuses: tuple[str, ...] = ()
) -> str:
    options = ['<option value="">any status</option>'] + [
        f'<option value="{attr(s)}"{" selected" if s == status else ""}>{esc(s)}</option>'
        for s in statuses
    ]
    form = (
        f'<form class="filters" method="get" action="{attr(ctx.base)}/jobs">'
        f'<input type="search" name="q" value="{attr(query)}" placeholder="Search name or id"'
        ' aria-label="Search jobs">'
        f'<select name="status" aria-label="Status">{"".join(options)}</select>'
        '<button type="submit">Filter</button></form>'
    )
    rows = []
    for job in page.items:
        runs = f"{job.runs:,}" + (f" / {job.total:,}" if job.total else "")
        rows.append(
            [
                link(ctx.url(f"/jobs/{job.id}"), job.name or short(job.id), cls="job"),
                badge(job.status),
                runs,
                f'<span class="err">{job.errors:,}</span>' if job.errors else "0",
                fmt_reward(job.reward),
                fmt_time(job.created_at),
                f'<span class="mono sub">{esc(short(job.id))}</span>',
            ]
        )
    grid = table(
        [
            "Job",
            "Status",
            ("Rollouts", "num"),
            ("Errors", "num"),
            ("Reward", "num"),
            "Created",
            "Id",
        ],
        rows,
        empty="No jobs match." if (query or status) else "No jobs yet: run `hud eval`.",
        cls="grid jobs",
    )
    live = any(job.status == "running" for job in page.items)
    note = '<p class="live">Live: refreshing while jobs run.</p>' if live else ""
    more = pager(
        ctx, "/jobs", offset=page.offset, limit=page.limit, total=page.total,
        query={"q": query, "status": status},
    )  # fmt: skip
    body = f"<h1>Jobs</h1>{form}{note}{grid}{more}"
    return layout(ctx, "Jobs", body, active="jobs", live=LIVE_SECONDS if live else None)


# -- one job -----------------------------------------------------------------------------------
def job_page(
    ctx: Ctx, detail: JobDetail, rollouts: RolloutsPage, *, status: str = "", sort: str = ""
) -> str:
    job = detail.job
    title = job.name or f"Job {short(job.id)}"
    runs = f"{job.runs:,}" + (f" / {job.total:,}" if job.total else "")
    head = (
        f'<p class="sub">{link(ctx.url("/jobs"), "Jobs")} / '
        f'<span class="mono">{esc(job.id)}</span></p><h1>{esc(title)} {badge(job.status)}</h1>'
    )
    cards = stats(
        [
            ("Rollouts", esc(runs)),
            ("Mean reward", fmt_reward(detail.mean_reward)),
            ("Excl. errors", fmt_reward(job.reward)),
            ("Std dev", fmt_reward(detail.reward_std)),
            ("Success rate", fmt_pct(detail.success_rate)),
            ("Errors", f'<span class="err">{job.errors:,}</span>' if job.errors else "0"),
            *([("In flight", f"{detail.in_flight:,}")] if detail.in_flight else []),
        ]
    )
    facts = [("Created", fmt_time(job.created_at))]
    facts += [(k.replace("_", " ").capitalize(), esc(v)) for k, v in detail.info.items()]
    if detail.status_counts:
        facts.append(
            (
                "Statuses",
                " ".join(f"{badge(s)} {n:,}" for s, n in sorted(detail.status_counts.items())),
            )
        )
    live = '<p class="live">Live: this job is running.</p>' if detail.live else ""
    body = [
        head,
        live,
        cards,
        kv(facts),
        _plots(detail),
        _rollouts(ctx, job.id, rollouts, status, sort),
    ]
    return layout(
        ctx, title, "".join(body), active="jobs", live=LIVE_SECONDS if detail.live else None
    )


def _plots(detail: JobDetail) -> str:
    bars = [(f"{b.lo:.2g}–{b.hi:.2g}", float(b.count)) for b in detail.histogram]
    if bars:
        hist = bar_chart(
            bars, label="reward", title=f"Reward distribution of {detail.rewarded:,} rollouts"
        )
        left = (
            f'<div class="card plot" id="reward-plot"><h2>Reward distribution</h2>{hist}'
            f'<p class="sub">{detail.rewarded:,} graded rollouts (errored ones left out)</p></div>'
        )
    else:
        left = (
            '<div class="card plot" id="reward-plot"><h2>Reward distribution</h2>'
            '<p class="sub">No graded rollouts yet.</p></div>'
        )
    multi = [g for g in detail.groups if g.n > 1]
    if multi:
        shown = sorted(multi, key=lambda g: g.mean)
        lo = min(0.0, min(g.lo for g in shown))
        hi = max(1.0, max(g.hi for g in shown))
        chart = range_chart(
            [(g.label, g.lo, g.mean, g.hi) for g in shown],
            lo=lo,
            hi=hi,
            title="Spread within groups",
        )
        rows = [
            [
                esc(cut(g.label, 60)),
                f"{g.n:,}",
                fmt_reward(g.mean),
                fmt_reward(g.lo),
                fmt_reward(g.hi),
                fmt_reward(g.std),
            ]
            for g in multi[:GROUP_ROWS]
        ]
        grid = table(
            [
                "Group",
                ("n", "num"),
                ("Mean", "num"),
                ("Min", "num"),
                ("Max", "num"),
                ("Std", "num"),
            ],
            rows,
            cls="grid groups",
        )
        note = (
            f"{detail.group_count:,} groups; pooled std within groups "
            f"{fmt_reward(detail.within_group_std)}. Each line is a group's min–max, the dot its"
            " mean (sorted by mean)."
        )
        right = (
            f'<div class="card plot" id="spread-plot"><h2>Spread within groups</h2>{chart}'
            f'<p class="sub">{esc(note)}</p></div>'
        )
        below = f"<h2>Widest groups</h2>{grid}"
    else:
        right = (
            '<div class="card plot" id="spread-plot"><h2>Spread within groups</h2>'
            '<p class="sub">Every task ran once (no groups of two or more): run with'
            " <code>--group N</code> to see the spread.</p></div>"
        )
        below = ""
    return f'<h2>Rewards</h2><div class="two">{left}{right}</div>{below}'


def _rollouts(ctx: Ctx, job_id: str, page: RolloutsPage, status: str, sort: str) -> str:
    path = f"/jobs/{job_id}"
    options = ['<option value="">any status</option>'] + [
        f'<option value="{attr(s)}"{" selected" if s == status else ""}>{esc(s)}</option>'
        for s in ROLLOUT_STATUSES
    ]
    orders = [
        f'<option value="{attr(k)}"{" selected" if k == sort else ""}>{esc(v)}</option>'
        for k, v in ROLLOUT_SORTS.items()
    ]
    form = (
        f'<form class="filters" method="get" action="{attr(ctx.url(path))}">'
        f'<select name="status" aria-label="Rollout status">{"".join(options)}</select>'
        f'<select name="sort" aria-label="Order">{"".join(orders)}</select>'
        '<button type="submit">Show</button></form>'
    )
    rows = []
    for r in page.items:
        err = ""
        if r.error:
            tip = attr(cut(r.error, 500))
            err = f'<span class="err" title="{tip}">{esc(cut(r.error, 80))}</span>'
        rows.append(
            [
                link(ctx.url(f"/trace/{r.trace_id}"), short(r.trace_id), cls="trace mono"),
                esc(r.slug or ""),
                "" if r.group_index is None else str(r.group_index),
                badge(r.status),
                fmt_reward(r.reward),
                fmt_duration(r.duration_s),
                err,
            ]
        )
    headers: list[str | tuple[str, str]] = [
        "Trace", "Task", ("#", "num"), "Status", ("Reward", "num"), ("Duration", "num"), "Error",
    ]  # fmt: skip
    if all(r.group_index is None for r in page.items):
        headers.pop(2)
        rows = [row[:2] + row[3:] for row in rows]
    grid = table(
        headers,
        rows,
        empty="No rollouts match." if status else "No finished rollouts yet.",
        cls="grid rollouts",
    )
    more = pager(
        ctx,
        path,
        offset=page.offset,
        limit=page.limit,
        total=page.total,
        query={"status": status, "sort": sort},
    )
    return f'<h2 id="rollouts">Rollouts ({page.total:,})</h2>{form}{grid}{more}'


# -- one trace -------------------------------------------------------------------------------
def trace_page(ctx: Ctx, trace: TraceView) -> str:
    title = trace.slug or f"Trace {short(trace.id)}"
    crumbs = [link(ctx.url("/jobs"), "Jobs")]
    if trace.job_id:
        crumbs.append(link(ctx.url(f"/jobs/{trace.job_id}"), trace.job_name or short(trace.job_id)))
    head = (
        f'<p class="sub">{" / ".join(crumbs)} / <span class="mono">{esc(trace.id)}</span></p>'
        f"<h1>{esc(title)} {badge(trace.status or 'running')}</h1>"
    )
    steps = trace.steps
    agent = [s for s in steps if s.get("source") == "agent"]
    tools = [s for s in steps if s.get("source") == "tool"]
    usage = _usage(agent)
    duration = trace.duration_s
    if duration is None and steps:
        duration = seconds_between(steps[0].get("started_at"), steps[-1].get("ended_at"))
    cards = stats(
        [
            ("Reward", fmt_reward(trace.reward)),
            ("Agent turns", f"{len(agent):,}"),
            ("Tool calls", f"{len(tools):,}"),
            ("Duration", fmt_duration(duration)),
            ("Tokens in / out", esc(_tokens(usage))),
            *([("Cost", f"${usage['cost_usd']:.4f}")] if usage.get("cost_usd") else []),
        ]
    )
    facts = []
    if trace.model:
        facts.append(("Model", esc(trace.model)))
    if trace.args:
        facts.append(
            (
                "Arguments",
                f'<span class="mono">{esc(cut(json.dumps(trace.args, default=str), 300))}</span>',
            )
        )
    if trace.stop_reason:
        facts.append(("Stop reason", esc(trace.stop_reason)))
    if trace.gateway:
        g = trace.gateway
        latency = fmt_duration(float(g.get("latency_ms") or 0) / 1000)
        text = (
            f"{g.get('calls', 0):,} calls · {g.get('input_tokens', 0):,} in / "
            f"{g.get('output_tokens', 0):,} out tokens · {latency} in the provider"
        )
        if g.get("cost") is not None:
            text += f" · ${g['cost']:.4f}"
        facts.append(("Gateway", esc(text)))
    facts.append(
        ("Started", fmt_time(trace.started_at or (steps[0].get("started_at") if steps else None)))
    )
    if trace.error:
        facts.append(("Error", f'<pre class="err">{esc(trace.error)}</pre>'))
    if trace.metadata:
        facts.append(("Metadata", json_block(trace.metadata)))
    frame, answer = _evaluation(steps)
    grade = trace.grade or frame
    answer = trace.answer if trace.answer is not None else answer
    parts = [head, cards, kv(facts)]
    if grade is not None:
        parts.append(f'<h2>Grade</h2><div class="card grade">{_grade(grade, answer)}</div>')
    parts.append(f"<h2>Timeline ({len(steps):,} steps)</h2>")
    parts.append(
        '<div class="replay" hidden>'
        '<button type="button" data-act="first" title="First step">«</button>'
        '<button type="button" data-act="prev" title="Previous step">◀</button>'
        '<button type="button" data-act="play" class="primary">Play</button>'
        '<button type="button" data-act="next" title="Next step">▶</button>'
        '<button type="button" data-act="last" title="Last step">»</button>'
        '<input type="range" min="1" value="1" aria-label="Step">'
        '<span class="pos sub"></span></div>'
    )
    t0 = steps[0].get("started_at") if steps else None
    items = "".join(_step(s, t0) for s in steps)
    parts.append(
        f'<ol class="timeline">{items}</ol>' if items else '<p class="sub">No steps recorded.</p>'
    )
    if trace.other_spans:
        spans = "".join(
            f"<details><summary>{esc(s.get('name') or 'span')} · "
            f"{fmt_time(s.get('start_time'))}</summary>"
            f"{json_block(s)}</details>"
            for s in trace.other_spans
        )
        parts.append(
            f'<h2>Other spans ({len(trace.other_spans):,})</h2><div class="card">{spans}</div>'
        )
    if trace.live:
        parts.insert(1, '<p class="live">Live: this rollout is running.</p>')
    return layout(
        ctx, title, "".join(parts), active="jobs", live=LIVE_SECONDS if trace.live else None
    )


def _usage(agent_steps: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for step in agent_steps:
        usage = step.get("usage")
        if not isinstance(usage, dict):
            continue
        for key in ("prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd"):
            value = usage.get(key)
            if isinstance(value, (int, float)):
                out[key] = out.get(key, 0) + value
    return out


def _tokens(usage: dict[str, float]) -> str:
    if "prompt_tokens" not in usage and "completion_tokens" not in usage:
        return "–"
    return f"{int(usage.get('prompt_tokens', 0)):,} / {int(usage.get('completion_tokens', 0)):,}"


def _evaluation(steps: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, Any]:
    """The grade frame and the answer of the last evaluate step."""
    for step in reversed(steps):
        call = step.get("task_call")
        if isinstance(call, dict) and call.get("phase") == "evaluate":
            result = call.get("result")
            args = call.get("arguments")
            answer = args.get("answer") if isinstance(args, dict) else None
            return (result if isinstance(result, dict) else None), answer
    return None, None


def _grade(frame: dict[str, Any], answer: Any = None) -> str:
    score = frame.get("score")
    facts = [("Score", fmt_reward(float(score)) if isinstance(score, (int, float)) else esc(score))]
    if frame.get("isError"):
        facts.append(("Error", '<span class="err">the grader reported an error</span>'))
    if answer not in (None, ""):
        facts.append(
            (
                "Answer",
                f"<pre>{esc(_text(answer))}</pre>",
            )
        )
    content = frame.get("content")
    if content:
        facts.append(
            (
                "Explanation",
                f"<pre>{esc(_text(content))}</pre>",
            )
        )
    out = kv(facts)
    subs = frame.get("subscores")
    if isinstance(subs, list) and subs:
        rows = []
        for sub in subs:
            if not isinstance(sub, dict):
                continue
            value = sub.get("value", sub.get("score"))
            rest = {k: v for k, v in sub.items() if k not in ("name", "weight", "value", "score")}
            rows.append(
                [
                    esc(sub.get("name", "")),
                    esc(sub.get("weight", "")),
                    fmt_reward(float(value)) if isinstance(value, (int, float)) else esc(value),
                    esc(cut(json.dumps(rest, default=str), 200)) if rest else "",
                ]
            )
        out += "<h2>Subscores</h2>" + table(
            ["Name", ("Weight", "num"), ("Value", "num"), "Details"], rows, cls="grid subscores"
        )
    info = frame.get("info")
    if info:
        out += f"<details><summary>Grader info</summary>{json_block(info)}</details>"
    return out


def _step(step: dict[str, Any], t0: Any) -> str:
    source = str(step.get("source") or "system")
    call = step.get("task_call") if isinstance(step.get("task_call"), dict) else None
    kind = source
    if source == "task" and call is not None:
        kind = "grade" if call.get("phase") == "evaluate" else "task"
    label = {
        "task": "Task setup",
        "grade": "Grade",
        "user": "Prompt",
        "agent": "Agent",
        "tool": "Tool",
        "system": "System",
        "subagent": "Subagent",
    }.get(kind, kind)
    when = seconds_between(t0, step.get("started_at"))
    took = seconds_between(step.get("started_at"), step.get("ended_at"))
    timing = (f"+{fmt_duration(when)}" if when is not None else "") + (
        f" · {fmt_duration(took)}" if took and took >= 0.001 else ""
    )
    body = _step_body(source, kind, step, call)
    error = step.get("error")
    if error:
        body += f'<pre class="err">{esc(error)}</pre>'
    klass = kind + (" haserr" if error else "")
    num = step.get("step_id")
    return (
        f'<li class="{attr(klass)}" data-step="{attr(num)}"><div class="step-head">'
        f'<span class="kind">{esc(label)}</span><span class="sub">#{esc(num)}</span>'
        f'<span class="t">{esc(timing)}</span></div>{body}</li>'
    )


def _step_body(source: str, kind: str, step: dict[str, Any], call: dict[str, Any] | None) -> str:
    if kind == "task" and call is not None:
        out = f'<div class="call"><span class="name">{esc(call.get("name"))}</span>'
        args = call.get("arguments")
        if args:
            out += f' <span class="mono sub">{esc(cut(json.dumps(args, default=str), 400))}</span>'
        out += "</div>"
        result = call.get("result")
        if isinstance(result, dict) and isinstance(result.get("prompt"), str):
            out += f"<pre>{esc(result['prompt'])}</pre>"
        if result is not None:
            out += f"<details><summary>Start frame</summary>{json_block(result)}</details>"
        return out
    if kind == "grade" and call is not None:
        result = call.get("result")
        answer = (call.get("arguments") or {}).get("answer")
        return _grade(result, answer) if isinstance(result, dict) else json_block(result)
    if source == "user":
        return _messages(step.get("messages"))
    if source == "agent":
        out = ""
        if step.get("reasoning"):
            reasoning = esc(step["reasoning"])
            out += f"<details><summary>Reasoning</summary><pre>{reasoning}</pre></details>"
        if step.get("content"):
            out += f"<pre>{esc(_bounded(step['content']))}</pre>"
        for item in step.get("tool_calls") or []:
            if isinstance(item, dict):
                out += _call(item.get("name"), item.get("arguments"))
        meta = []
        if step.get("model"):
            meta.append(f"model {step['model']}")
        if step.get("finish_reason"):
            meta.append(f"finish {step['finish_reason']}")
        usage = step.get("usage")
        if isinstance(usage, dict):
            meta.extend(
                f"{k.replace('_', ' ')} {v}"
                for k, v in usage.items()
                if isinstance(v, (int, float))
            )
        if meta:
            out += f'<div class="sub">{esc(" · ".join(meta))}</div>'
        if step.get("raw") is not None:
            out += (
                f"<details><summary>Provider response</summary>{json_block(step['raw'])}</details>"
            )
        return out or '<span class="sub">(no text)</span>'
    if source == "tool":
        call_ = step.get("call")
        tc: dict[str, Any] = call_ if isinstance(call_, dict) else {}
        out = _call(tc.get("name"), tc.get("arguments"))
        result = step.get("result")
        if isinstance(result, dict):
            if result.get("isError"):
                out += '<div class="err">the tool reported an error</div>'
            out += _blocks(result.get("content"))
            if result.get("structuredContent") is not None:
                shown = json_block(result["structuredContent"])
                out += f"<details><summary>Structured result</summary>{shown}</details>"
        return out
    if source == "system":
        extra = step.get("extra") or {}
        report = extra.get("filetracking") if isinstance(extra, dict) else None
        if isinstance(report, dict):
            return _diff(report)
        return _messages(step.get("messages"))
    if source == "subagent":
        sub = step.get("subagent") or {}
        inner = sub.get("steps") or []
        return (
            f'<div class="sub">trace {esc(sub.get("trace_id"))} · {len(inner)} steps</div>'
            f"<details><summary>Steps</summary>{json_block(inner)}</details>"
        )
    return json_block(step)


def _bounded(text: Any, limit: int = TEXT_LIMIT) -> str:
    value = "" if text is None else str(text)
    if len(value) <= limit:
        return value
    return value[:limit] + f"\n… ({len(value) - limit:,} more characters not shown)"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _call(name: Any, arguments: Any) -> str:
    args = ""
    if arguments:
        text = json.dumps(arguments, indent=2, ensure_ascii=False, default=str)
        args = f"<pre>{esc(cut(text, 8000))}</pre>"
    return f'<div class="call">→ <span class="name">{esc(name)}</span>{args}</div>'


def _messages(messages: Any) -> str:
    out = []
    for turn in messages or []:
        if not isinstance(turn, dict):
            continue
        content = turn.get("content")
        blocks = content if isinstance(content, list) else [content]
        role = turn.get("role")
        inner = _blocks(blocks)
        out.append(
            f'<div class="sub">{esc(role)}</div>{inner}'
            if role not in ("user", "system")
            else inner
        )
    return "".join(out)


def _blocks(blocks: Any) -> str:
    out = []
    for block in blocks or []:
        if isinstance(block, str):
            out.append(f"<pre>{esc(_bounded(block))}</pre>")
        elif not isinstance(block, dict):
            continue
        elif block.get("type") == "text":
            out.append(f"<pre>{esc(_bounded(block.get('text', '')))}</pre>")
        elif block.get("type") == "image":
            out.append(_image(block))
        else:
            out.append(
                f"<details><summary>{esc(block.get('type', 'content'))}</summary>"
                f"{json_block(block)}</details>"
            )
    return "".join(out)


def _image(block: dict[str, Any]) -> str:
    mime = str(block.get("mimeType") or block.get("mime_type") or "image/png").lower()
    data = block.get("data")
    if mime not in IMAGE_TYPES or not isinstance(data, str) or not _BASE64.match(data):
        return '<span class="sub">[image]</span>'
    clean = "".join(data.split())
    return f'<img class="shot" alt="screenshot" src="data:{mime};base64,{attr(clean)}">'


def _diff(report: dict[str, Any]) -> str:
    patches = [p for p in report.get("patches") or [] if isinstance(p, dict)]
    if not patches:
        return '<div class="sub">No changes in the workspace.</div>'
    marks = {"added": "+", "deleted": "−", "modified": "~"}
    out = [f'<div class="sub">{len(patches)} file(s) changed in the workspace</div>']
    for p in patches:
        head = f"{marks.get(str(p.get('status')), '?')} {p.get('path')}" + (
            " (binary)" if p.get("binary") else ""
        )
        lines = []
        for line in str(p.get("patch") or "").splitlines():
            if line.startswith("+") and not line.startswith("+++"):
                cls = "add"
            elif line.startswith("-") and not line.startswith("---"):
                cls = "del"
            elif line.startswith("@@"):
                cls = "hunk"
            else:
                cls = ""
            lines.append(f'<span class="{cls}">{esc(line)}</span>' if cls else esc(line) + "\n")
        out.append(
            f'<details class="diff" open><summary class="mono">{esc(head)}</summary>'
            f"<pre>{''.join(lines)}</pre></details>"
        )
    return "".join(out)


# -- sign-in -----------------------------------------------------------------------------------
def signin_page(ctx: Ctx, *, error: str | None = None, next_url: str = "") -> str:
    problem = f'<p class="err">{esc(error)}</p>' if error else ""
    body = (
        '<div class="signin card"><h1>Sign in</h1>'
        '<p class="sub">Paste an API key of this platform (<code>hud platform key create</code>'
        " makes one). The key is checked and then forgotten: the browser keeps a signed"
        " session cookie, never the key.</p>"
        f"{problem}"
        f'<form method="post" action="{attr(ctx.base)}/signin">'
        f'<input type="hidden" name="next" value="{attr(next_url)}">'
        '<label for="key">API key</label>'
        '<input id="key" type="password" name="key" autocomplete="off" required autofocus>'
        '<button type="submit" class="primary">Sign in</button></form></div>'
    )
    return layout(ctx, "Sign in", body)
