"""What the web viewer reads from the platform: one team's jobs and traces, with the job page's
figures (status counts, reward histogram, spread within groups) computed in SQL so that a job
of 10,000 rollouts costs a handful of indexed aggregate queries, never a 10,000-row read.

`TeamSource` implements `hud.platform.web.data.ViewSource` for one `Identity`; everything is
scoped by its team (another team's job or trace is None, shown as a 404).
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from typing import Any

from sqlalchemy import and_, case, exists, func, literal, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hud.platform.db import Database
from hud.platform.db.schema import api_keys, jobs, spans, teams, traces, users
from hud.platform.services.common import iso, run_id
from hud.platform.services.identity import Identity
from hud.platform.services.runs import ACTIVE, TERMINAL, job_status, status_counts
from hud.platform.web.data import (
    BINS,
    GROUPS_SHOWN,
    Bin,
    GroupStat,
    JobDetail,
    JobRow,
    JobsPage,
    RolloutRow,
    RolloutsPage,
    TraceView,
    bin_edges,
)
from hud.types.job import SUCCESS_THRESHOLD

STEP_SCHEMA = "hud.step.v1"


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return run_id(text)
    except (ValueError, TypeError):
        return None


class ViewService:
    """``gateway``: the `GatewayService` whose recorded calls (tokens, cost) the trace and job
    pages show; None leaves them out."""

    def __init__(self, db: Database, gateway: Any = None) -> None:
        self.db = db
        self.gateway = gateway

    def source(self, ident: Identity) -> TeamSource:
        return TeamSource(self, ident)

    async def session(self, key_id: uuid.UUID) -> tuple[Identity, str] | None:
        """The identity of an unrevoked key and a label (``email · team``), or None."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        api_keys.c.user_id,
                        api_keys.c.team_id,
                        api_keys.c.revoked_at,
                        users.c.email,
                        teams.c.name,
                    )
                    .join(users, users.c.id == api_keys.c.user_id)
                    .join(teams, teams.c.id == api_keys.c.team_id)
                    .where(api_keys.c.id == key_id)
                )
            ).first()
        if row is None or row.revoked_at is not None:
            return None
        ident = Identity(user_id=row.user_id, team_id=row.team_id, key_id=key_id)
        return ident, f"{row.email} · {row.name}"

    # -- jobs ----------------------------------------------------------------------------
    async def jobs(
        self, ident: Identity, *, query: str, status: str, offset: int, limit: int
    ) -> JobsPage:
        where: list[Any] = [jobs.c.team_id == ident.team_id]
        q = query.strip()
        if q:
            wanted = _uuid(q)
            match = func.lower(jobs.c.name).contains(q.lower(), autoescape=True)
            where.append(or_(match, jobs.c.id == wanted) if wanted else match)
        if status:
            where.append(_status_filter(status))
        async with self.db.read() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(jobs).where(*where))
            ).scalar_one()
            rows = (
                await conn.execute(
                    select(jobs.c.id, jobs.c.name, jobs.c.created_at)
                    .where(*where)
                    .order_by(jobs.c.created_at.desc(), jobs.c.id)
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
            counts = await status_counts(conn, [r.id for r in rows])
        items = [_job_row(r, counts.get(r.id)) for r in rows]
        return JobsPage(items, int(total), offset, limit)

    async def job(self, ident: Identity, job_id: str) -> JobDetail | None:
        jid = _uuid(job_id)
        if jid is None:
            return None
        scope = (traces.c.job_id == jid, traces.c.team_id == ident.team_id)
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(jobs.c.id, jobs.c.name, jobs.c.created_at, jobs.c.group_size).where(
                        jobs.c.id == jid, jobs.c.team_id == ident.team_id
                    )
                )
            ).first()
            if row is None:
                return None
            reward = traces.c.reward
            effective = func.coalesce(reward, 0.0)
            per_status = (
                await conn.execute(
                    select(
                        traces.c.status,
                        func.count(),
                        func.count(reward),
                        func.sum(reward),
                        func.sum(effective),
                        func.sum(effective * effective),
                        func.sum(case((effective > SUCCESS_THRESHOLD, 1), else_=0)),
                        func.min(reward),
                        func.max(reward),
                    )
                    .where(*scope)
                    .group_by(traces.c.status)
                )
            ).all()
            counts: dict[str, Any] = {}
            finished = rewarded = successes = 0
            total = total_eff = total_sq = 0.0
            lows: list[float] = []
            highs: list[float] = []
            for status, n, n_rewarded, s_reward, s_eff, s_sq, n_ok, low, high in per_status:
                counts[status] = int(n)
                if status not in TERMINAL:
                    continue
                finished += int(n)
                rewarded += int(n_rewarded)
                successes += int(n_ok or 0)
                total += float(s_reward or 0.0)
                total_eff += float(s_eff or 0.0)
                total_sq += float(s_sq or 0.0)
                lows += [float(low)] if low is not None else []
                highs += [float(high)] if high is not None else []
            if rewarded:
                counts["reward"] = total / rewarded
            head = _job_row(row, counts)
            mean = total_eff / finished if finished else None
            mean_sq = total_sq / finished if finished else 0.0
            lo = min(lows) if lows else None
            hi = max(highs) if highs else None
            histogram: list[Bin] = []
            edges = bin_edges(lo, hi)
            if rewarded and edges:
                index = case(
                    *[(reward < edges[i + 1], i) for i in range(len(edges) - 2)],
                    else_=len(edges) - 2,
                ).label("bin")
                binned: dict[int, int] = dict(
                    (
                        await conn.execute(
                            select(index, func.count())
                            .where(*scope, traces.c.status.in_(TERMINAL), reward.is_not(None))
                            .group_by(index)
                        )
                    ).all()
                )
                histogram = [
                    Bin(edges[i], edges[i + 1], int(binned.get(i, 0)))
                    for i in range(len(edges) - 1)
                ]
            groups, group_count, within = await _groups(conn, scope)
        std = None
        if finished and mean is not None:
            std = math.sqrt(max(0.0, mean_sq - mean**2))
        status_counts = {k: v for k, v in (counts or {}).items() if k != "reward"}
        info: dict[str, Any] = {"group": row.group_size} if row.group_size else {}
        if self.gateway is not None:
            spent = await self.gateway.job_usage(ident, str(jid))
            if spent.get("calls"):
                info["gateway_usage"] = usage_text(spent)
        return JobDetail(
            job=head,
            status_counts=status_counts,
            rewarded=rewarded,
            mean_reward=mean,
            reward_std=std,
            success_rate=(successes / finished) if finished else None,
            histogram=histogram,
            group_count=group_count,
            within_group_std=within,
            groups=groups,
            info=info,
        )

    async def rollouts(
        self, ident: Identity, job_id: str, *, status: str, sort: str, offset: int, limit: int
    ) -> RolloutsPage | None:
        jid = _uuid(job_id)
        if jid is None:
            return None
        where = [traces.c.job_id == jid, traces.c.team_id == ident.team_id]
        if status:
            where.append(traces.c.status == status)
        async with self.db.read() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(traces).where(*where))
            ).scalar_one()
            rows = (
                await conn.execute(
                    select(
                        traces.c.id,
                        traces.c.task_slug,
                        traces.c.group_id,
                        traces.c.status,
                        traces.c.reward,
                        traces.c.error,
                        traces.c.created_at,
                        traces.c.start_time,
                        traces.c.end_time,
                    )
                    .where(*where)
                    .order_by(*_rollout_order(sort))
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
        items = []
        for r in rows:
            duration = None
            if r.start_time is not None and r.end_time is not None:
                duration = (r.end_time - r.start_time).total_seconds()
            items.append(
                RolloutRow(
                    trace_id=str(r.id),
                    slug=r.task_slug,
                    group=r.group_id,
                    status=r.status,
                    reward=r.reward,
                    duration_s=duration,
                    error=r.error,
                    started_at=iso(r.start_time or r.created_at),
                )
            )
        return RolloutsPage(items, int(total), offset, limit)

    async def trace(self, ident: Identity, trace_id: str) -> TraceView | None:
        tid = _uuid(trace_id)
        if tid is None:
            return None
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(traces, jobs.c.name.label("job_name"))
                    .outerjoin(
                        jobs, and_(jobs.c.id == traces.c.job_id, jobs.c.team_id == ident.team_id)
                    )
                    .where(traces.c.id == tid, traces.c.team_id == ident.team_id)
                )
            ).first()
            if row is None:
                return None
            datas = (
                await conn.execute(
                    select(spans.c.data)
                    .where(spans.c.trace_id == tid)
                    .order_by(spans.c.start_time, spans.c.span_id)
                )
            ).all()
        steps: list[dict[str, Any]] = []
        others: list[dict[str, Any]] = []
        for (span,) in datas:
            if not isinstance(span, dict):
                continue
            attributes = span.get("attributes") or {}
            payload = attributes.get("hud.payload") if isinstance(attributes, dict) else None
            if isinstance(payload, str):
                with contextlib.suppress(ValueError):
                    payload = json.loads(payload)
            if attributes.get("hud.schema") == STEP_SCHEMA and isinstance(payload, dict):
                steps.append(payload)
            else:
                others.append(span)
        steps.sort(key=_step_number)
        m = row._mapping
        grade = m["evaluation_result"] if isinstance(m["evaluation_result"], dict) else None
        duration = None
        if m["start_time"] is not None and m["end_time"] is not None:
            duration = (m["end_time"] - m["start_time"]).total_seconds()
        setup = next(
            (
                s["task_call"]
                for s in steps
                if isinstance(s.get("task_call"), dict) and s["task_call"].get("phase") == "setup"
            ),
            None,
        )
        spent = None
        if self.gateway is not None:
            spent = await self.gateway.trace_usage(ident, str(tid))
        return TraceView(
            gateway=spent if spent and spent.get("calls") else None,
            id=str(tid),
            job_id=str(m["job_id"]) if m["job_id"] else None,
            job_name=m["job_name"],
            slug=m["task_slug"],
            status=m["status"],
            reward=m["reward"],
            error=m["error"],
            stop_reason=m["stop_reason"],
            model=m["model"],
            started_at=iso(m["start_time"] or m["created_at"]),
            finished_at=iso(m["end_time"]),
            duration_s=duration,
            grade=grade,
            args=setup.get("arguments")
            if setup and isinstance(setup.get("arguments"), dict)
            else None,
            steps=steps,
            other_spans=others,
            metadata=m["metadata"] if isinstance(m["metadata"], dict) else {},
        )


class TeamSource:
    """`ViewSource` over one team's jobs."""

    statuses = ("running", "completed", "error", "cancelled", "created")

    def __init__(self, service: ViewService, ident: Identity) -> None:
        self.service = service
        self.ident = ident

    async def jobs(
        self, *, query: str = "", status: str = "", offset: int = 0, limit: int = 50
    ) -> JobsPage:
        return await self.service.jobs(
            self.ident, query=query, status=status, offset=offset, limit=limit
        )

    async def job(self, job_id: str) -> JobDetail | None:
        return await self.service.job(self.ident, job_id)

    async def rollouts(
        self,
        job_id: str,
        *,
        status: str = "",
        sort: str = "",
        offset: int = 0,
        limit: int = 50,
    ) -> RolloutsPage | None:
        return await self.service.rollouts(
            self.ident, job_id, status=status, sort=sort, offset=offset, limit=limit
        )

    async def trace(self, trace_id: str) -> TraceView | None:
        return await self.service.trace(self.ident, trace_id)


# -- helpers -------------------------------------------------------------------------------
def usage_text(spent: dict[str, Any]) -> str:
    """``N calls · X in / Y out tokens · $C`` from gateway totals."""
    text = (
        f"{spent.get('calls', 0):,} calls · {spent.get('input_tokens', 0):,} in / "
        f"{spent.get('output_tokens', 0):,} out tokens"
    )
    if spent.get("cost") is not None:
        text += f" · ${spent['cost']:.4f}"
    return text


def _rollout_order(sort: str) -> list[Any]:
    """ORDER BY of the rollouts table: run order, or by reward with unrewarded ones last."""
    reward = traces.c.reward
    if sort == "reward":
        return [reward.is_(None), reward, traces.c.created_at, traces.c.id]
    if sort == "-reward":
        return [reward.is_(None), reward.desc(), traces.c.created_at, traces.c.id]
    return [traces.c.created_at, traces.c.id]


def _step_number(step: dict[str, Any]) -> int:
    value = step.get("step_id")
    return value if isinstance(value, int) else 0


def _has(*statuses: str) -> Any:
    cond = [traces.c.job_id == jobs.c.id]
    if statuses:
        cond.append(traces.c.status.in_(statuses))
    return exists(select(literal(1)).where(*cond))


def _status_filter(status: str) -> Any:
    """A job's derived status (`runs.job_status`) as a condition on its traces."""
    idle = not_(_has(*ACTIVE))
    if status == "running":
        return _has(*ACTIVE)
    if status == "created":
        return not_(_has())
    if status == "cancelled":
        return and_(idle, _has("cancelled"))
    if status == "error":
        return and_(idle, not_(_has("cancelled")), _has("error"), not_(_has("completed")))
    if status == "completed":
        return and_(
            idle, not_(_has("cancelled")), _has(), or_(_has("completed"), not_(_has("error")))
        )
    return literal(True)


def _job_row(row: Any, counts: dict[str, Any] | None) -> JobRow:
    counts = dict(counts or {})
    reward = counts.pop("reward", None)
    finished = sum(n for s, n in counts.items() if s in TERMINAL)
    return JobRow(
        id=str(row.id),
        name=row.name or "",
        status=job_status(counts),
        created_at=iso(row.created_at),
        runs=finished,
        total=sum(counts.values()) or None,
        errors=int(counts.get("error", 0)),
        reward=reward,
    )


async def _groups(
    conn: AsyncConnection, scope: tuple[Any, ...]
) -> tuple[list[GroupStat], int, float | None]:
    """The widest groups (two or more rewarded rollouts), the number of such groups and the
    pooled standard deviation within them."""
    reward = traces.c.reward
    key = func.coalesce(traces.c.group_id, traces.c.task_slug, "").label("key")
    per = (
        select(
            key,
            func.min(traces.c.task_slug).label("label"),
            func.count().label("n"),
            func.avg(reward).label("mean"),
            func.min(reward).label("lo"),
            func.max(reward).label("hi"),
            (func.avg(reward * reward) - func.avg(reward) * func.avg(reward)).label("var"),
        )
        .where(*scope, traces.c.status.in_(TERMINAL), reward.is_not(None))
        .group_by(key)
        .having(func.count() > 1)
    ).subquery()
    count, mean_var = (
        await conn.execute(select(func.count(), func.avg(per.c.var)).select_from(per))
    ).one()
    rows = (
        await conn.execute(
            select(per)
            .order_by((per.c.hi - per.c.lo).desc(), per.c.var.desc(), per.c.key)
            .limit(GROUPS_SHOWN)
        )
    ).all()
    stats = [
        GroupStat(
            key=str(r.key),
            label=str(r.label or r.key),
            n=int(r.n),
            mean=float(r.mean),
            lo=float(r.lo),
            hi=float(r.hi),
            std=math.sqrt(max(0.0, float(r.var or 0.0))),
        )
        for r in rows
    ]
    within = math.sqrt(max(0.0, float(mean_var))) if mean_var is not None else None
    return stats, int(count or 0), within


__all__ = ["BINS", "TeamSource", "ViewService"]
