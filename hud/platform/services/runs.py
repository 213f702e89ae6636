"""Jobs, traces (rollouts), spans and cancellation (spec platform.md §5, §9).

Clients report in any order: a trace may be entered before its job, spans may arrive before
the trace's enter or after its exit. Every write therefore creates what is missing (scoped to the
caller's team) and then updates it; an id already owned by another team is a `NotFound`.
Trace status: ``queued`` -> ``running`` -> ``completed`` | ``error`` | ``cancelled``; a
cancelled trace stays cancelled when its exit arrives later (its reward is still kept).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, null, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hud.platform.db import Database
from hud.platform.db.schema import jobs, spans, traces
from hud.platform.services.common import insert, iso, now, run_id
from hud.platform.services.errors import Invalid, NotFound, PlatformError
from hud.platform.services.identity import Identity

ACTIVE = ("queued", "running")
#: Rows per multi-row span insert (PostgreSQL takes at most 32767 parameters a statement).
SPAN_ROWS_PER_STATEMENT = 2000
TERMINAL = ("completed", "error", "cancelled")


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _refuse(
    group: dict[uuid.UUID, Any], accepted: set[uuid.UUID], results: list[Any], what: str
) -> None:
    for tid, (slots, _rows) in group.items():
        if tid not in accepted:
            for i in slots:
                results[i] = NotFound(f"{what} {tid} not found")


def _enter_row(fields: dict[str, Any], jid: uuid.UUID | None) -> dict[str, Any]:
    parent = fields.get("parent_trace_id")
    return {
        "job_id": jid,
        "group_id": _cut(fields.get("group_id"), 64),
        "task_slug": _cut(fields.get("task_slug"), 500),
        "model": _cut(fields.get("model"), 200),
        "parent_trace_id": run_id(parent) if parent else None,
    }


def _exit_row(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": fields.get("status"),
        "reward": fields.get("reward"),
        "error": fields.get("error"),
        "evaluation_result": fields.get("evaluation_result"),
        "stop_reason": _cut(fields.get("stop_reason"), 64),
        "metadata": fields.get("metadata"),
    }


def _cut(value: str | None, size: int) -> str | None:
    return value[:size] if isinstance(value, str) else value


def _check_exit(status: Any) -> None:
    if status not in TERMINAL:
        raise Invalid(f"status: must be one of {', '.join(TERMINAL)}, got {status!r}")


def _span_rows(tid: uuid.UUID, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for span in items:
        span_id = span.get("span_id") if isinstance(span, dict) else None
        if not isinstance(span_id, str) or not span_id:
            raise Invalid("telemetry: every span needs a string span_id")
        start = span.get("start_time")
        rows[span_id[:64]] = {
            "trace_id": tid,
            "span_id": span_id[:64],
            "start_time": start[:40] if isinstance(start, str) else None,
            "data": span,
        }
    return list(rows.values())


def job_status(counts: dict[str, int]) -> str:
    """A job's status from its traces' statuses."""
    if not counts:
        return "created"
    if any(counts.get(s) for s in ACTIVE):
        return "running"
    if counts.get("cancelled"):
        return "cancelled"
    if counts.get("error") and not counts.get("completed"):
        return "error"
    return "completed"


class RunService:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reporting (§5) ---------------------------------------------------------------------
    # Each report is one or two statements: an upsert guarded by the team (``RETURNING`` no
    # row = the id belongs to another team) and, where a parent must exist, a lookup first.
    async def job_enter(
        self,
        ident: Identity,
        job_id: str,
        *,
        name: str | None = None,
        group: int | None = None,
        taskset_id: str | None = None,
    ) -> dict[str, Any]:
        async with self.db.write(durable=False) as conn:
            return await self._job_enter(conn, ident, job_id, name, group, taskset_id)

    async def trace_enter(self, ident: Identity, trace_id: str, **fields: Any) -> dict[str, Any]:
        async with self.db.write(durable=False) as conn:
            return await self._trace_enter(conn, ident, trace_id, **fields)

    async def trace_exit(self, ident: Identity, trace_id: str, **fields: Any) -> dict[str, Any]:
        _check_exit(fields.get("status"))
        async with self.db.write(durable=False) as conn:
            return await self._trace_exit(conn, ident, trace_id, **fields)

    async def upload_spans(
        self, ident: Identity, trace_id: str, items: Iterable[dict[str, Any]]
    ) -> int:
        rows = _span_rows(run_id(trace_id), items)
        if not rows:
            return 0
        async with self.db.write(durable=False) as conn:
            return await self._upload_spans(conn, ident, trace_id, rows)

    async def report(self, ident: Identity, ops: list[tuple[str, str, Any]]) -> list[Any]:
        """Many reports in one transaction: ``(kind, id, fields)`` with kind ``job``,
        ``enter``, ``exit`` or ``spans``. Returns, per op, None or the `PlatformError`.

        Enters, exits and span uploads are written in bulk (one guarded multi-row upsert per
        kind, ids missing from ``RETURNING`` belong to another team), so a batch costs a few
        statements whatever its size."""
        results: list[Any] = [None] * len(ops)
        enters: dict[uuid.UUID, tuple[list[int], dict[str, Any]]] = {}
        exits: dict[uuid.UUID, tuple[list[int], dict[str, Any]]] = {}
        uploads: dict[uuid.UUID, tuple[list[int], dict[str, dict[str, Any]]]] = {}
        jobs_wanted: dict[uuid.UUID, list[int]] = {}
        async with self.db.write(durable=False) as conn:
            for i, (kind, target, fields) in enumerate(ops):
                try:
                    tid = run_id(target)
                    if kind == "job":
                        await self._job_enter(conn, ident, target, **fields)
                    elif kind == "enter":
                        jid = run_id(fields["job_id"]) if fields.get("job_id") else None
                        if jid is not None:
                            jobs_wanted.setdefault(jid, []).append(i)
                        row = _enter_row(fields, jid)
                        slots, merged = enters.setdefault(tid, ([], {}))
                        slots.append(i)
                        merged.update({k: v for k, v in row.items() if v is not None})
                    elif kind == "exit":
                        _check_exit(fields.get("status"))
                        slots, merged = exits.setdefault(tid, ([], {}))
                        slots.append(i)
                        merged.update({k: v for k, v in _exit_row(fields).items() if v is not None})
                    elif kind == "spans":
                        slots, spans_of = uploads.setdefault(tid, ([], {}))
                        slots.append(i)
                        spans_of.update({r["span_id"]: r for r in _span_rows(tid, fields)})
                    else:
                        raise Invalid(f"kind: unknown report kind {kind!r}")
                except PlatformError as exc:
                    results[i] = exc
            refused = await self._ensure_jobs(conn, ident, list(jobs_wanted))
            for jid in refused:
                for i in jobs_wanted[jid]:
                    results[i] = NotFound(f"job {jid} not found")
            for tid, (_slots, merged) in list(enters.items()):
                if merged.get("job_id") in refused:
                    del enters[tid]
            await self._bulk_traces(conn, ident, enters, exits, uploads, results)
        return results

    async def _ensure_jobs(
        self, conn: AsyncConnection, ident: Identity, job_ids: list[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Create the missing jobs; return the ids that belong to another team."""
        if not job_ids:
            return set()
        stamp = now()
        await conn.execute(
            insert(conn, jobs)
            .values(
                [
                    {
                        "id": j,
                        "team_id": ident.team_id,
                        "user_id": ident.user_id,
                        "created_at": stamp,
                    }
                    for j in job_ids
                ]
            )
            .on_conflict_do_nothing()
        )
        owners = await conn.execute(select(jobs.c.id, jobs.c.team_id).where(jobs.c.id.in_(job_ids)))
        return {row.id for row in owners if row.team_id != ident.team_id}

    async def _bulk_traces(
        self,
        conn: AsyncConnection,
        ident: Identity,
        enters: dict[uuid.UUID, tuple[list[int], dict[str, Any]]],
        exits: dict[uuid.UUID, tuple[list[int], dict[str, Any]]],
        uploads: dict[uuid.UUID, tuple[list[int], dict[str, dict[str, Any]]]],
        results: list[Any],
    ) -> None:
        stamp = now()
        base = {"team_id": ident.team_id, "user_id": ident.user_id, "created_at": stamp}
        if enters:
            keys = ("job_id", "group_id", "task_slug", "model", "parent_trace_id")
            rows = [
                {**base, "id": tid, "status": "running", "start_time": stamp,
                 **{k: merged.get(k) for k in keys}}
                for tid, (_slots, merged) in enters.items()
            ]  # fmt: skip
            stmt = insert(conn, traces).values(rows)
            set_: dict[str, Any] = {k: func.coalesce(stmt.excluded[k], traces.c[k]) for k in keys}
            set_["status"] = case((traces.c.status.in_(ACTIVE), "running"), else_=traces.c.status)
            set_["start_time"] = func.coalesce(traces.c.start_time, stmt.excluded.start_time)
            stmt = stmt.on_conflict_do_update(
                index_elements=[traces.c.id], set_=set_, where=traces.c.team_id == ident.team_id
            ).returning(traces.c.id)
            done = {row.id for row in await conn.execute(stmt)}
            _refuse(enters, done, results, "trace")
        if exits:
            keys = ("reward", "error", "evaluation_result", "stop_reason", "metadata")
            rows = [
                {**base, "id": tid, "status": merged["status"], "end_time": stamp,
                 **{k: merged.get(k, null()) for k in keys}}
                for tid, (_slots, merged) in exits.items()
            ]  # fmt: skip
            stmt = insert(conn, traces).values(rows)
            set_ = {k: func.coalesce(stmt.excluded[k], traces.c[k]) for k in keys}
            set_["status"] = case(
                (traces.c.status == "cancelled", "cancelled"), else_=stmt.excluded.status
            )
            set_["end_time"] = stmt.excluded.end_time
            stmt = stmt.on_conflict_do_update(
                index_elements=[traces.c.id], set_=set_, where=traces.c.team_id == ident.team_id
            ).returning(traces.c.id)
            done = {row.id for row in await conn.execute(stmt)}
            _refuse(exits, done, results, "trace")
        if uploads:
            ids = list(uploads)
            await conn.execute(
                insert(conn, traces)
                .values([{**base, "id": tid, "status": "running"} for tid in ids])
                .on_conflict_do_nothing()
            )
            owners = await conn.execute(
                select(traces.c.id, traces.c.team_id).where(traces.c.id.in_(ids))
            )
            mine = {row.id for row in owners if row.team_id == ident.team_id}
            _refuse(uploads, mine, results, "trace")
            rows = [r for tid in mine for r in uploads[tid][1].values()]
            for start in range(0, len(rows), SPAN_ROWS_PER_STATEMENT):
                stmt = insert(conn, spans).values(rows[start : start + SPAN_ROWS_PER_STATEMENT])
                stmt = stmt.on_conflict_do_update(
                    index_elements=[spans.c.trace_id, spans.c.span_id],
                    set_={"data": stmt.excluded.data, "start_time": stmt.excluded.start_time},
                )
                await conn.execute(stmt)

    async def _job_enter(
        self,
        conn: AsyncConnection,
        ident: Identity,
        job_id: str,
        name: str | None = None,
        group: int | None = None,
        taskset_id: str | None = None,
    ) -> dict[str, Any]:
        jid = run_id(job_id)
        stmt = insert(conn, jobs).values(
            id=jid,
            team_id=ident.team_id,
            user_id=ident.user_id,
            name=_cut(name, 500),
            group_size=group,
            taskset_id=_cut(taskset_id, 64),
            created_at=now(),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[jobs.c.id],
            set_={
                "name": func.coalesce(stmt.excluded.name, jobs.c.name),
                "group_size": func.coalesce(stmt.excluded.group_size, jobs.c.group_size),
                "taskset_id": func.coalesce(stmt.excluded.taskset_id, jobs.c.taskset_id),
            },
            where=jobs.c.team_id == ident.team_id,
        ).returning(jobs.c.id)
        if (await conn.execute(stmt)).first() is None:
            raise NotFound(f"job {jid} not found")
        return {"id": str(jid)}

    async def _trace_enter(
        self,
        conn: AsyncConnection,
        ident: Identity,
        trace_id: str,
        *,
        job_id: str | None = None,
        group_id: str | None = None,
        task_slug: str | None = None,
        model: str | None = None,
        parent_trace_id: str | None = None,
        status: str = "running",
    ) -> dict[str, Any]:
        tid = run_id(trace_id)
        jid = run_id(job_id) if job_id else None
        if jid is not None:
            await self._ensure_job(conn, ident, jid)
        fields = {
            "job_id": jid,
            "group_id": _cut(group_id, 64),
            "task_slug": _cut(task_slug, 500),
            "model": _cut(model, 200),
            "parent_trace_id": run_id(parent_trace_id) if parent_trace_id else None,
        }
        fields = {k: v for k, v in fields.items() if v is not None}
        stamp = now()
        stmt = insert(conn, traces).values(
            id=tid,
            team_id=ident.team_id,
            user_id=ident.user_id,
            status=status,
            created_at=stamp,
            start_time=stamp if status == "running" else None,
            **fields,
        )
        set_: dict[str, Any] = {k: stmt.excluded[k] for k in fields}
        if status == "running":
            set_["status"] = case((traces.c.status.in_(ACTIVE), "running"), else_=traces.c.status)
            set_["start_time"] = func.coalesce(traces.c.start_time, stmt.excluded.start_time)
        else:
            set_["status"] = traces.c.status
        stmt = stmt.on_conflict_do_update(
            index_elements=[traces.c.id], set_=set_, where=traces.c.team_id == ident.team_id
        ).returning(traces.c.id)
        if (await conn.execute(stmt)).first() is None:
            raise NotFound(f"trace {tid} not found")
        return {"id": str(tid)}

    async def _trace_exit(
        self,
        conn: AsyncConnection,
        ident: Identity,
        trace_id: str,
        *,
        status: str,
        reward: float | None = None,
        error: str | None = None,
        evaluation_result: Any = None,
        stop_reason: str | None = None,
        metadata: Any = None,
    ) -> dict[str, Any]:
        tid = run_id(trace_id)
        fields = {
            "reward": reward,
            "error": error,
            "evaluation_result": evaluation_result,
            "stop_reason": _cut(stop_reason, 64),
            "metadata": metadata,
        }
        fields = {k: v for k, v in fields.items() if v is not None}
        stamp = now()
        stmt = insert(conn, traces).values(
            id=tid,
            team_id=ident.team_id,
            user_id=ident.user_id,
            status=status,
            created_at=stamp,
            end_time=stamp,
            **fields,
        )
        set_: dict[str, Any] = {k: stmt.excluded[k] for k in fields}
        set_["status"] = case(
            (traces.c.status == "cancelled", "cancelled"), else_=stmt.excluded.status
        )
        set_["end_time"] = stmt.excluded.end_time
        stmt = stmt.on_conflict_do_update(
            index_elements=[traces.c.id], set_=set_, where=traces.c.team_id == ident.team_id
        ).returning(traces.c.status)
        row = (await conn.execute(stmt)).first()
        if row is None:
            raise NotFound(f"trace {tid} not found")
        return {"id": str(tid), "status": row.status}

    async def _upload_spans(
        self, conn: AsyncConnection, ident: Identity, trace_id: str, rows: list[dict[str, Any]]
    ) -> int:
        tid = run_id(trace_id)
        await self._ensure_trace(conn, ident, tid, status="running")
        stmt = insert(conn, spans).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=[spans.c.trace_id, spans.c.span_id],
            set_={"data": stmt.excluded.data, "start_time": stmt.excluded.start_time},
        )
        await conn.execute(stmt)
        return len(rows)

    # -- reading (§9) -----------------------------------------------------------------------
    async def list_jobs(
        self, ident: Identity, *, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        where = jobs.c.team_id == ident.team_id
        async with self.db.read() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(jobs).where(where))
            ).scalar_one()
            rows = (
                await conn.execute(
                    select(jobs)
                    .where(where)
                    .order_by(jobs.c.created_at.desc(), jobs.c.id)
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
            counts = await self._status_counts(conn, [r.id for r in rows])
        return [_job(r, counts.get(r.id, {})) for r in rows], total

    async def get_job(self, ident: Identity, job_id: str) -> dict[str, Any]:
        jid = run_id(job_id)
        async with self.db.read() as conn:
            row = await self._job_row(conn, ident, jid, job_id)
            counts = await self._status_counts(conn, [jid])
        return _job(row, counts.get(jid, {}))

    async def job_traces(
        self, ident: Identity, job_id: str, *, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        jid = run_id(job_id)
        where = (traces.c.job_id == jid, traces.c.team_id == ident.team_id)
        async with self.db.read() as conn:
            await self._job_row(conn, ident, jid, job_id)
            total = (
                await conn.execute(select(func.count()).select_from(traces).where(*where))
            ).scalar_one()
            rows = (
                await conn.execute(
                    select(traces)
                    .where(*where)
                    .order_by(traces.c.created_at, traces.c.id)
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
        return [_trace(r) for r in rows], total

    async def get_trace(self, ident: Identity, trace_id: str) -> dict[str, Any]:
        tid = run_id(trace_id)
        async with self.db.read() as conn:
            row = await self._trace_row(conn, ident, tid)
            count = (
                await conn.execute(
                    select(func.count()).select_from(spans).where(spans.c.trace_id == tid)
                )
            ).scalar_one()
        return {**_trace(row), "span_count": count}

    async def trace_spans(self, ident: Identity, trace_id: str) -> list[dict[str, Any]]:
        tid = run_id(trace_id)
        async with self.db.read() as conn:
            await self._trace_row(conn, ident, tid)
            rows = (
                await conn.execute(
                    select(spans.c.data)
                    .where(spans.c.trace_id == tid)
                    .order_by(spans.c.start_time, spans.c.span_id)
                )
            ).all()
        return [r.data for r in rows]

    async def trace_events(self, ident: Identity, trace_id: str) -> dict[str, Any]:
        """The trace and its events derived from its step spans (the kinds `hud trace`
        renders: ``agent_message``, ``tool_call``, ``prompt``, ``system``, ``grade``…)."""
        from hud.eval.records import trace_events

        trace = await self.get_trace(ident, trace_id)
        steps = []
        for span in await self.trace_spans(ident, trace_id):
            attributes = span.get("attributes") or {}
            payload = attributes.get("hud.payload")
            if attributes.get("hud.schema") == "hud.step.v1" and isinstance(payload, dict):
                steps.append(payload)
        try:
            events = trace_events({"steps": steps})
        except Exception:  # a malformed payload must not break the read
            events = []
        return {"trace": trace, "events": events}

    # -- cancellation (§9) ------------------------------------------------------------------
    async def cancel_job(self, ident: Identity, job_id: str) -> int:
        jid = run_id(job_id)
        async with self.db.write() as conn:
            await self._job_row(conn, ident, jid, job_id)
            result = await conn.execute(
                update(traces)
                .where(
                    traces.c.job_id == jid,
                    traces.c.team_id == ident.team_id,
                    traces.c.status.in_(ACTIVE),
                )
                .values(status="cancelled", end_time=now())
            )
        return result.rowcount or 0

    async def cancel_trace(self, ident: Identity, trace_id: str, job_id: str | None = None) -> bool:
        try:
            tid = run_id(trace_id)
        except ValueError:
            return False
        where = [traces.c.id == tid, traces.c.team_id == ident.team_id]
        where.append(traces.c.status.in_(ACTIVE))
        if job_id:
            where.append(traces.c.job_id == run_id(job_id))
        async with self.db.write() as conn:
            result = await conn.execute(
                update(traces).where(*where).values(status="cancelled", end_time=now())
            )
        return bool(result.rowcount)

    async def cancel_user_jobs(self, ident: Identity) -> dict[str, Any]:
        where = (
            traces.c.team_id == ident.team_id,
            traces.c.user_id == ident.user_id,
            traces.c.status.in_(ACTIVE),
        )
        async with self.db.write() as conn:
            rows = (
                await conn.execute(
                    select(traces.c.job_id, func.count()).where(*where).group_by(traces.c.job_id)
                )
            ).all()
            await conn.execute(
                update(traces).where(*where).values(status="cancelled", end_time=now())
            )
        details = [{"job_id": str(job) if job else None, "cancelled": int(n)} for job, n in rows]
        return {
            "jobs_cancelled": sum(1 for d in details if d["job_id"]),
            "total_tasks_cancelled": sum(d["cancelled"] for d in details),
            "job_details": details,
        }

    # -- internals --------------------------------------------------------------------------
    async def _ensure_job(self, conn: AsyncConnection, ident: Identity, jid: uuid.UUID) -> None:
        owner = (await conn.execute(select(jobs.c.team_id).where(jobs.c.id == jid))).first()
        if owner is None:
            await conn.execute(
                insert(conn, jobs)
                .values(id=jid, team_id=ident.team_id, user_id=ident.user_id, created_at=now())
                .on_conflict_do_nothing()
            )
            owner = (await conn.execute(select(jobs.c.team_id).where(jobs.c.id == jid))).one()
        if owner.team_id != ident.team_id:
            raise NotFound(f"job {jid} not found")

    async def _ensure_trace(
        self, conn: AsyncConnection, ident: Identity, tid: uuid.UUID, *, status: str
    ) -> str:
        """Create the trace row when missing; return its current status."""
        query = select(traces.c.team_id, traces.c.status).where(traces.c.id == tid)
        row = (await conn.execute(query)).first()
        if row is None:
            await conn.execute(
                insert(conn, traces)
                .values(
                    id=tid,
                    team_id=ident.team_id,
                    user_id=ident.user_id,
                    status=status,
                    created_at=now(),
                )
                .on_conflict_do_nothing()
            )
            row = (await conn.execute(query)).one()
        if row.team_id != ident.team_id:
            raise NotFound(f"trace {tid} not found")
        return row.status

    async def _job_row(
        self, conn: AsyncConnection, ident: Identity, jid: uuid.UUID, label: str | None = None
    ) -> Any:
        row = (
            await conn.execute(
                select(jobs).where(jobs.c.id == jid, jobs.c.team_id == ident.team_id)
            )
        ).first()
        if row is None:
            raise NotFound(f"Job {label or jid} not found")
        return row

    async def _trace_row(self, conn: AsyncConnection, ident: Identity, tid: uuid.UUID) -> Any:
        row = (
            await conn.execute(
                select(traces).where(traces.c.id == tid, traces.c.team_id == ident.team_id)
            )
        ).first()
        if row is None:
            raise NotFound(f"Trace {tid} not found")
        return row

    async def _status_counts(
        self, conn: AsyncConnection, job_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, Any]]:
        """Per job: trace counts by status, and ``"reward"``: the mean over finished traces."""
        if not job_ids:
            return {}
        rows = (
            await conn.execute(
                select(
                    traces.c.job_id,
                    traces.c.status,
                    func.count(),
                    func.sum(traces.c.reward),
                    func.count(traces.c.reward),
                )
                .where(traces.c.job_id.in_(job_ids))
                .group_by(traces.c.job_id, traces.c.status)
            )
        ).all()
        out: dict[uuid.UUID, dict[str, Any]] = {}
        sums: dict[uuid.UUID, tuple[float, int]] = {}
        for job, status, n, total, rewarded in rows:
            out.setdefault(job, {})[status] = int(n)
            if status in TERMINAL and rewarded:
                s, c = sums.get(job, (0.0, 0))
                sums[job] = (s + float(total), c + int(rewarded))
        for job, (s, c) in sums.items():
            out[job]["reward"] = s / c
        return out


def _job(row: Any, counts: dict[str, Any]) -> dict[str, Any]:
    counts = dict(counts)
    reward = counts.pop("reward", None)
    return {
        "id": str(row.id),
        "name": row.name,
        "taskset_id": row.taskset_id,
        "taskset_name": None,
        "group": row.group_size,
        "status": job_status(counts),
        "trace_count": sum(counts.values()),
        "status_counts": counts,
        "reward": reward,
        "created_at": iso(row.created_at),
    }


def _trace(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "job_id": str(row.job_id) if row.job_id else None,
        "group_id": row.group_id,
        "task_slug": row.task_slug,
        "model": row.model,
        "parent_trace_id": str(row.parent_trace_id) if row.parent_trace_id else None,
        "status": row.status,
        "reward": row.reward,
        "error": row.error,
        "evaluation_result": row.evaluation_result,
        "stop_reason": row.stop_reason,
        "metadata": row._mapping["metadata"],
        "created_at": iso(row.created_at),
        "start_time": iso(row.start_time),
        "end_time": iso(row.end_time),
    }
