"""Jobs, traces (rollouts), spans and cancellation (spec platform.md §5, §9).

Clients report in any order: a trace may be entered before its job, spans may arrive before
the trace's enter or after its exit. Every write therefore creates what is missing (scoped to the
caller's team) and then updates it; an id already owned by another team is a `NotFound`.
Trace status: ``queued`` -> ``running`` -> ``completed`` | ``error`` | ``cancelled``; a
cancelled trace stays cancelled when its exit arrives later (its reward is still kept).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, and_, bindparam, case, func, or_, select, update
from sqlalchemy.exc import DBAPIError
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


async def status_counts(
    conn: AsyncConnection, job_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Per job: trace counts by status, and ``"reward"``: the mean over finished rewarded traces."""
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
        self._ingest = _Ingest(db)

    # -- reporting (§5) ---------------------------------------------------------------------
    # Every report goes through `_Ingest`: concurrent reports share one transaction (group
    # commit), and each caller gets its answer only once that transaction is committed.
    async def job_enter(
        self,
        ident: Identity,
        job_id: str,
        *,
        name: str | None = None,
        group: int | None = None,
        taskset_id: str | None = None,
    ) -> dict[str, Any]:
        fields = {"name": name, "group": group, "taskset_id": taskset_id}
        return await self._one(ident, _Op("job", run_id(job_id), fields))

    async def trace_enter(self, ident: Identity, trace_id: str, **fields: Any) -> dict[str, Any]:
        return await self._one(ident, _Op("enter", run_id(trace_id), fields))

    async def trace_exit(self, ident: Identity, trace_id: str, **fields: Any) -> dict[str, Any]:
        _check_exit(fields.get("status"))
        return await self._one(ident, _Op("exit", run_id(trace_id), fields))

    async def upload_spans(
        self, ident: Identity, trace_id: str, items: Iterable[dict[str, Any]]
    ) -> int:
        tid = run_id(trace_id)
        rows = _span_rows(tid, items)
        if not rows:
            return 0
        return (await self._one(ident, _Op("spans", tid, rows)))["accepted"]

    async def report(self, ident: Identity, ops: list[tuple[str, str, Any]]) -> list[Any]:
        """Many reports at once: ``(kind, id, fields)`` with kind ``job``, ``enter``, ``exit``
        or ``spans``. Returns, per op, None or the `PlatformError`."""
        results: list[Any] = [None] * len(ops)
        valid: list[_Op] = []
        where: list[int] = []
        for i, (kind, target, fields) in enumerate(ops):
            try:
                tid = run_id(target)
                if kind == "spans":
                    op = _Op(kind, tid, _span_rows(tid, fields))
                elif kind in ("job", "enter", "exit"):
                    if kind == "exit":
                        _check_exit(fields.get("status"))
                    op = _Op(kind, tid, dict(fields))
                else:
                    raise Invalid(f"kind: unknown report kind {kind!r}")
            except PlatformError as exc:
                results[i] = exc
                continue
            valid.append(op)
            where.append(i)
        if valid:
            for i, outcome in zip(where, await self._ingest.submit(ident, valid), strict=True):
                results[i] = outcome if isinstance(outcome, PlatformError) else None
        return results

    async def _one(self, ident: Identity, op: _Op) -> Any:
        (outcome,) = await self._ingest.submit(ident, [op])
        if isinstance(outcome, PlatformError):
            raise outcome
        return outcome

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
            counts = await status_counts(conn, [r.id for r in rows])
        return [_job(r, counts.get(r.id, {})) for r in rows], total

    async def get_job(self, ident: Identity, job_id: str) -> dict[str, Any]:
        jid = run_id(job_id)
        async with self.db.read() as conn:
            row = await self._job_row(conn, ident, jid, job_id)
            counts = await status_counts(conn, [jid])
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


# -- group commit ---------------------------------------------------------------------------
#: Reports one ingest transaction takes at most (more wait for the next one).
BATCH_OPS = 4000
#: Job and trace ids whose team is known (rows are never deleted nor change team, so a
#: confirmed owner stays true); past this many the memory is cleared.
OWNER_CACHE_SIZE = 200_000


@dataclass
class _Op:
    kind: str  # job | enter | exit | spans
    id: uuid.UUID
    fields: Any  # the body's fields; for spans, the rows


@dataclass
class _Submission:
    ident: Identity
    ops: list[_Op]
    future: asyncio.Future[list[Any]]


class _Ingest:
    """Group commit of run reports.

    Callers queue their reports and wait; one writer task takes everything queued, writes it
    with a few executemany statements (one per kind, whatever the number of reports), and only
    then answers each caller. Every statement is an idempotent upsert, so on PostgreSQL each
    commits on its own (`Database.autocommit`: no BEGIN/COMMIT round trips). While a batch is
    written, new reports queue for the next one, so under load a batch carries many reports
    and costs a few statements; a lone report still goes out at once. A report answered 2xx is
    committed. If a batch fails, each caller's reports are applied again (idempotently) in a
    transaction of their own, so one bad report fails alone; a refused report may leave the
    parts written before its failing statement (a trace without its spans, say).

    Team scoping: every upsert is guarded by ``team_id = excluded.team_id`` and returns the
    rows it touched; an id that is missing from ``RETURNING`` belongs to another team
    (`NotFound`). Confirmed owners are remembered, so a span upload for a trace this process
    has seen needs no lookup."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.pending: deque[_Submission] = deque()
        self.owners: dict[uuid.UUID, uuid.UUID] = {}
        self._task: asyncio.Task[None] | None = None
        self._statements: dict[str, _Statements] = {}

    async def submit(self, ident: Identity, ops: list[_Op]) -> list[Any]:
        """Per op: the result (a dict) or the `PlatformError`; raises what the database
        raised when the op's own transaction failed."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.pending.append(_Submission(ident, ops, future))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return await future

    async def _run(self) -> None:
        batch: list[_Submission] = []
        try:
            while self.pending:
                batch = [self.pending.popleft()]
                size = len(batch[0].ops)
                while self.pending and size + len(self.pending[0].ops) <= BATCH_OPS:
                    size += len(self.pending[0].ops)
                    batch.append(self.pending.popleft())
                outcomes: list[Any]
                try:
                    outcomes = await self._commit(batch)
                except Exception as exc:
                    if len(batch) == 1:
                        outcomes = [_refusal(exc)]
                    else:  # isolate the culprit: each submission in its own transaction
                        outcomes = []
                        for sub in batch:
                            try:
                                outcomes.extend(await self._commit([sub], atomic=True))
                            except Exception as own:
                                outcomes.append(_refusal(own))
                for sub, outcome in zip(batch, outcomes, strict=True):
                    if sub.future.done():  # the caller went away
                        continue
                    if isinstance(outcome, BaseException):
                        sub.future.set_exception(outcome)
                    else:
                        sub.future.set_result(outcome)
                batch = []
        finally:
            self._task = None
            for sub in [*batch, *self.pending]:  # only when cancelled (shutdown)
                if not sub.future.done():
                    sub.future.set_exception(RuntimeError("run reporting stopped"))
            if batch:
                self.pending.clear()

    async def _commit(self, batch: list[_Submission], *, atomic: bool = False) -> list[list[Any]]:
        outcomes: list[list[Any]] = [[None] * len(sub.ops) for sub in batch]
        groups: dict[Identity, list[tuple[list[Any], int, _Op]]] = {}
        for sub, out in zip(batch, outcomes, strict=True):
            entries = groups.setdefault(sub.ident, [])
            entries.extend((out, i, op) for i, op in enumerate(sub.ops))
        learned: dict[uuid.UUID, uuid.UUID] = {}
        connect = self.db.write(durable=False) if atomic else self.db.autocommit()
        async with connect as conn:
            statements = self._statements.get(conn.dialect.name)
            if statements is None:
                statements = self._statements[conn.dialect.name] = _Statements(conn)
            for ident, entries in groups.items():
                await self._apply(conn, statements, ident, entries, learned)
        if len(self.owners) + len(learned) > OWNER_CACHE_SIZE:
            self.owners.clear()
        self.owners.update(learned)
        return outcomes

    async def _apply(
        self,
        conn: AsyncConnection,
        st: _Statements,
        ident: Identity,
        entries: list[tuple[list[Any], int, _Op]],
        learned: dict[uuid.UUID, uuid.UUID],
    ) -> None:
        team = ident.team_id
        stamp = now()
        base = {"team_id": team, "user_id": ident.user_id, "created_at": stamp}
        named: dict[uuid.UUID, _Merged] = {}
        enters: dict[uuid.UUID, _Merged] = {}
        exits: dict[uuid.UUID, _Merged] = {}
        uploads: dict[uuid.UUID, _Merged] = {}
        for out, i, op in entries:
            if op.kind == "spans":
                merged = uploads.setdefault(op.id, _Merged())
                merged.fields.update({r["span_id"]: r for r in op.fields})
                out[i] = {"accepted": len(op.fields)}
            else:
                target = {"job": named, "enter": enters, "exit": exits}[op.kind]
                merged = target.setdefault(op.id, _Merged())
                running = merged.fields.get("status") == "running"
                merged.fields.update({k: v for k, v in op.fields.items() if v is not None})
                if op.kind == "enter" and merged.fields.get("job_id"):
                    merged.fields["job_id"] = run_id(merged.fields["job_id"])
                if op.kind == "enter" and (running or op.fields.get("status") in (None, "running")):
                    merged.fields["status"] = "running"  # an enter never moves a trace back
            merged.slots.append((out, i))

        def owner(oid: uuid.UUID) -> uuid.UUID | None:
            return learned.get(oid) or self.owners.get(oid)

        def refuse(slots: list[tuple[list[Any], int]], what: str, oid: uuid.UUID) -> None:
            for out, i in slots:
                out[i] = NotFound(f"{what} {oid} not found")

        async def upsert(stmt: Any, rows: list[dict[str, Any]]) -> dict[uuid.UUID, Any]:
            if not rows:
                return {}
            found = {row.id: row for row in await conn.execute(stmt, rows)}
            for oid in found:
                learned[oid] = team
            return found

        def answer(
            rows: list[dict[str, Any]],
            done: dict[uuid.UUID, Any],
            *reports: dict[uuid.UUID, _Merged],
        ) -> None:
            """Each written trace row's reports (enters, exits) answered; a row missing from
            ``done`` is another team's trace."""
            for row in rows:
                tid = row["id"]
                for merged in (report[tid] for report in reports):
                    if tid not in done:
                        refuse(merged.slots, "trace", tid)
                        continue
                    got = {"id": str(tid)}
                    if merged is exits.get(tid):
                        got["status"] = done[tid].status
                    for out, i in merged.slots:
                        out[i] = dict(got)

        # Jobs: those entered, and those the entered traces belong to (created when missing).
        wanted: set[uuid.UUID] = {
            jid for m in enters.values() if (jid := _job_of(m.fields)) is not None
        } - set(named)
        refused_jobs = {jid for jid in wanted if owner(jid) not in (None, team)}
        job_rows: list[dict[str, Any]] = [
            {**base, "id": jid, "name": _cut(m.fields.get("name"), 500),
             "group_size": m.fields.get("group"),
             "taskset_id": _cut(m.fields.get("taskset_id"), 64)}
            for jid, m in named.items()
        ] + [
            {**base, "id": jid, "name": None, "group_size": None, "taskset_id": None}
            for jid in wanted if owner(jid) is None
        ]  # fmt: skip
        done = await upsert(st.job, job_rows)
        for jid, merged in named.items():
            if jid in done:
                for out, i in merged.slots:
                    out[i] = {"id": str(jid)}
            else:
                refuse(merged.slots, "job", jid)
        refused_jobs |= {row["id"] for row in job_rows if row["id"] not in done}

        # Trace enters (a trace whose job belongs to another team is refused). A trace both
        # entered and exited here (a short rollout within one flush) is one row: the enter's
        # fields and the exit's, written as applying one then the other would.
        rows: list[dict[str, Any]] = []
        both: list[dict[str, Any]] = []
        for tid, merged in enters.items():
            entered_job = _job_of(merged.fields)
            if entered_job is not None and entered_job in refused_jobs:
                refuse(merged.slots, "job", entered_job)
                continue
            f = merged.fields
            running = f.get("status") == "running"
            parent = f.get("parent_trace_id")
            row: dict[str, Any] = {
                **base, "id": tid, "job_id": _job_of(f), "group_id": _cut(f.get("group_id"), 64),
                "task_slug": _cut(f.get("task_slug"), 500), "model": _cut(f.get("model"), 200),
                "parent_trace_id": run_id(parent) if parent else None,
                "status": "running" if running else "queued",
                "start_time": stamp if running else None,
            }  # fmt: skip
            if tid in exits:
                both.append({**row, **_exit_fields(exits[tid].fields, stamp)})
            else:
                rows.append(row)
        answer(rows, await upsert(st.enter, rows), enters)
        answer(both, await upsert(st.enter_exit, both), enters, exits)

        # Trace exits (those not written with their enter above).
        written = {row["id"] for row in both}
        rows = [
            {**base, "id": tid, **_exit_fields(m.fields, stamp)}
            for tid, m in exits.items()
            if tid not in written
        ]
        answer(rows, await upsert(st.exit, rows), exits)

        # Span uploads: the trace is created when missing; another team's trace is refused.
        unknown = [
            {**base, "id": tid, "status": "running"} for tid in uploads if owner(tid) is None
        ]
        await upsert(st.ensure_trace, unknown)
        span_rows: list[dict[str, Any]] = []
        for tid, merged in uploads.items():
            if owner(tid) == team:
                span_rows.extend(merged.fields.values())
            else:
                refuse(merged.slots, "trace", tid)
        for start in range(0, len(span_rows), SPAN_ROWS_PER_STATEMENT):
            await conn.execute(st.spans, span_rows[start : start + SPAN_ROWS_PER_STATEMENT])


@dataclass
class _Merged:
    """The reports of one id in one transaction: where to answer, and the merged fields
    (later non-null fields win, as applying them one after another would)."""

    slots: list[tuple[list[Any], int]] = field(default_factory=list)
    fields: dict[Any, Any] = field(default_factory=dict)


def _exit_fields(fields: dict[str, Any], stamp: datetime) -> dict[str, Any]:
    """A trace exit's columns."""
    return {
        "status": fields["status"], "end_time": stamp, "reward": fields.get("reward"),
        "error": fields.get("error"), "evaluation_result": fields.get("evaluation_result"),
        "stop_reason": _cut(fields.get("stop_reason"), 64), "metadata": fields.get("metadata"),
    }  # fmt: skip


def _job_of(fields: dict[str, Any]) -> uuid.UUID | None:
    job = fields.get("job_id")
    return run_id(job) if job else None  # a UUID once `_apply` has read it


def _refusal(exc: Exception) -> Exception:
    """A submission's failed transaction as its caller sees it: data the database cannot
    store (PostgreSQL refuses a NUL in text) is the report's fault, a 422 rather than a 500."""
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or ""
    if isinstance(exc, DBAPIError) and str(state).startswith("22"):  # SQLSTATE class 22: data
        return Invalid("the database cannot store this report's data (a NUL character in text?)")
    return exc


class _Statements:
    """The ingest statements of one dialect, built once: fixed statements executed with a
    list of parameter sets (executemany), so SQLAlchemy compiles each once and sends a
    batch as one multi-row statement."""

    def __init__(self, conn: AsyncConnection) -> None:
        json_ = JSON(none_as_null=True)

        stmt = insert(conn, jobs)
        self.job = stmt.on_conflict_do_update(
            index_elements=[jobs.c.id],
            set_={
                k: func.coalesce(stmt.excluded[k], jobs.c[k])
                for k in ("name", "group_size", "taskset_id")
            },
            where=jobs.c.team_id == stmt.excluded.team_id,
        ).returning(jobs.c.id)

        stmt = insert(conn, traces)
        keys = ("job_id", "group_id", "task_slug", "model", "parent_trace_id")
        set_: dict[str, Any] = {k: func.coalesce(stmt.excluded[k], traces.c[k]) for k in keys}
        active = or_(*(traces.c.status == s for s in ACTIVE))
        set_["status"] = case(
            (and_(stmt.excluded.status == "running", active), "running"), else_=traces.c.status
        )
        set_["start_time"] = func.coalesce(traces.c.start_time, stmt.excluded.start_time)
        self.enter = stmt.on_conflict_do_update(
            index_elements=[traces.c.id], set_=set_, where=traces.c.team_id == stmt.excluded.team_id
        ).returning(traces.c.id)

        def exit_upsert(enter: bool) -> Any:
            """A trace exit's upsert: the exit's coalesced columns, its status (a cancelled
            trace stays cancelled) and end time; with ``enter``, also an enter's coalesced
            fields and start time (an enter and an exit of one trace in one batch)."""
            stmt = insert(conn, traces).values(  # None is SQL NULL in these, not JSON null
                evaluation_result=bindparam("evaluation_result", type_=json_),
                metadata=bindparam("metadata", type_=json_),
            )
            exit_keys = ("reward", "error", "evaluation_result", "stop_reason", "metadata")
            names = (*keys, *exit_keys) if enter else exit_keys
            set_: dict[str, Any] = {k: func.coalesce(stmt.excluded[k], traces.c[k]) for k in names}
            if enter:
                set_["start_time"] = func.coalesce(traces.c.start_time, stmt.excluded.start_time)
            set_["status"] = case(
                (traces.c.status == "cancelled", "cancelled"), else_=stmt.excluded.status
            )
            set_["end_time"] = stmt.excluded.end_time
            return stmt.on_conflict_do_update(
                index_elements=[traces.c.id],
                set_=set_,
                where=traces.c.team_id == stmt.excluded.team_id,
            ).returning(traces.c.id, traces.c.status)

        self.exit = exit_upsert(enter=False)
        self.enter_exit = exit_upsert(enter=True)

        stmt = insert(conn, traces)
        self.ensure_trace = stmt.on_conflict_do_update(
            index_elements=[traces.c.id],
            set_={"status": traces.c.status},
            where=traces.c.team_id == stmt.excluded.team_id,
        ).returning(traces.c.id)

        stmt = insert(conn, spans)
        self.spans = stmt.on_conflict_do_update(
            index_elements=[spans.c.trace_id, spans.c.span_id],
            set_={"data": stmt.excluded.data, "start_time": stmt.excluded.start_time},
        )


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
