"""Team-scoped reads behind the platform's own web pages: tasksets with their tasks and
leaderboards, environments with their builds and build logs.

Everything is scoped to the caller's team; another team's object is a `NotFound`, as in the
API. Leaderboards are aggregated in SQL (one ``GROUP BY`` per agent and task over the traces of
the jobs that ran the taskset) and turned into statistics by `hud.eval.stats`.

What a leaderboard counts: the finished traces (``completed`` or ``error``; a missing reward
counts 0) that name a task, of the jobs whose ``taskset_id`` is the taskset. The *agent* is the
trace's ``model`` (what the client reports: the agent's model string).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select

from hud.eval import stats
from hud.platform.db import Database
from hud.platform.db.deploy_schema import builds, environments, tasks, tasksets
from hud.platform.db.schema import jobs, traces
from hud.platform.services.builds import BuildService, normalize_env_name
from hud.platform.services.common import iso, parse_uuid
from hud.platform.services.errors import NotFound
from hud.platform.services.identity import Identity

#: The pass@k values a leaderboard shows.
PASS_KS = (1, 3, 5)
#: The name shown for traces reported without a model.
NO_MODEL = "(no model)"
#: A build log page shows at most this many of its last lines (and reads at most this much).
LOG_LINES = 2000
LOG_BYTES = 512 * 1024
FINISHED = ("completed", "error")


def column_text(value: Any) -> str:
    """A custom column's value as the pages show and filter it: text as is, else JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _id_forms(ids: Iterable[uuid.UUID]) -> list[str]:
    """The spellings a client may have reported a taskset id in (dashed, 32 hex)."""
    out: list[str] = []
    for value in ids:
        out += [str(value), value.hex]
    return out


@dataclass(frozen=True)
class TaskCounts:
    """One agent on one task: attempts, summed reward, successes."""

    attempts: int
    reward_sum: float
    successes: int

    @property
    def mean(self) -> float:
        return self.reward_sum / self.attempts


@dataclass(frozen=True)
class AgentRow:
    """One agent's line on a leaderboard."""

    agent: str
    tasks: int
    attempts: int
    mean: stats.Estimate
    success: stats.Estimate
    pass_at: dict[int, tuple[float, int] | None]
    jobs: int
    last_run: str | None


@dataclass(frozen=True)
class Leaderboard:
    """Agents on a taskset, best mean reward first; ``counts[agent][task]`` the raw counts."""

    taskset: dict[str, Any]
    rows: list[AgentRow]
    counts: dict[str, dict[str, TaskCounts]] = field(repr=False)
    threshold: float = stats.SUCCESS
    ks: tuple[int, ...] = PASS_KS

    @property
    def agents(self) -> list[str]:
        return [r.agent for r in self.rows]

    def compare(self, a: str, b: str, level: float = 0.95) -> stats.Paired | None:
        """Agent ``a`` against agent ``b`` on the tasks both ran (None: unknown or no overlap)."""
        if a not in self.counts or b not in self.counts:
            return None
        return stats.paired_means(
            {t: c.mean for t, c in self.counts[a].items()},
            {t: c.mean for t, c in self.counts[b].items()},
            level=level,
        )

    def task_totals(self) -> dict[str, TaskCounts]:
        """Per task, every agent's attempts together."""
        out: dict[str, TaskCounts] = {}
        for per_task in self.counts.values():
            for task, c in per_task.items():
                old = out.get(task)
                out[task] = (
                    c
                    if old is None
                    else TaskCounts(
                        old.attempts + c.attempts,
                        old.reward_sum + c.reward_sum,
                        old.successes + c.successes,
                    )
                )
        return out


def leaderboard_rows(
    counts: dict[str, dict[str, TaskCounts]],
    jobs_of: dict[str, tuple[int, str | None]],
    *,
    ks: tuple[int, ...] = PASS_KS,
    level: float = 0.95,
) -> list[AgentRow]:
    """The rows of a leaderboard from per agent, per task counts (best mean reward first)."""
    rows = []
    for agent, per_task in counts.items():
        if not per_task:
            continue
        attempts = sum(c.attempts for c in per_task.values())
        successes = sum(c.successes for c in per_task.values())
        pairs = [(c.attempts, c.successes) for c in per_task.values()]
        n_jobs, last = jobs_of.get(agent, (0, None))
        rows.append(
            AgentRow(
                agent=agent,
                tasks=len(per_task),
                attempts=attempts,
                mean=stats.mean_ci([c.mean for c in per_task.values()], level),
                success=stats.wilson(successes, attempts, level),
                pass_at={k: stats.pass_at_k_counts(pairs, k) for k in ks},
                jobs=n_jobs,
                last_run=last,
            )
        )
    rows.sort(key=lambda r: (-r.mean.value, -r.success.value, r.agent))
    return rows


class CatalogService:
    def __init__(self, db: Database, builds: BuildService) -> None:
        self.db = db
        self.builds = builds

    # -- tasksets -----------------------------------------------------------------------------
    async def list_tasksets(
        self, ident: Identity, *, search: str = "", limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """The team's tasksets (newest first) with their task count, jobs and last run."""
        where = [tasksets.c.team_id == ident.team_id]
        if search:
            where.append(tasksets.c.name.contains(search, autoescape=True))
        counted = (
            select(tasks.c.taskset_id, func.count().label("n"))
            .group_by(tasks.c.taskset_id)
            .subquery()
        )
        async with self.db.read() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(tasksets).where(*where))
            ).scalar_one()
            rows = (
                await conn.execute(
                    select(tasksets, func.coalesce(counted.c.n, 0).label("task_count"))
                    .outerjoin(counted, counted.c.taskset_id == tasksets.c.id)
                    .where(*where)
                    .order_by(tasksets.c.created_at.desc(), tasksets.c.name)
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
            runs = await self._runs_of(conn, ident, [r.id for r in rows])
        items = []
        for r in rows:
            n_jobs, last = runs.get(r.id, (0, None))
            items.append(
                {
                    "id": str(r.id),
                    "name": r.name,
                    "task_count": int(r.task_count),
                    "jobs": n_jobs,
                    "last_run": last,
                    "created_at": iso(r.created_at),
                }
            )
        return items, int(total)

    async def _runs_of(
        self, conn: Any, ident: Identity, ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[int, str | None]]:
        if not ids:
            return {}
        by_form = {form: tid for tid in ids for form in _id_forms([tid])}
        rows = (
            await conn.execute(
                select(jobs.c.taskset_id, func.count(), func.max(jobs.c.created_at))
                .where(jobs.c.team_id == ident.team_id, jobs.c.taskset_id.in_(list(by_form)))
                .group_by(jobs.c.taskset_id)
            )
        ).all()
        out: dict[uuid.UUID, tuple[int, str | None]] = {}
        for form, n, last in rows:
            tid = by_form[form]
            old_n, old_last = out.get(tid, (0, None))
            stamp = iso(last)
            out[tid] = (old_n + int(n), max(filter(None, (old_last, stamp)), default=None))
        return out

    async def get_taskset(self, ident: Identity, taskset_id: str) -> dict[str, Any]:
        tid = parse_uuid(taskset_id, "taskset")
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(tasksets).where(
                        tasksets.c.id == tid, tasksets.c.team_id == ident.team_id
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"taskset {taskset_id} not found")
            count = (
                await conn.execute(
                    select(func.count()).select_from(tasks).where(tasks.c.taskset_id == tid)
                )
            ).scalar_one()
            n_jobs, last = (await self._runs_of(conn, ident, [tid])).get(tid, (0, None))
        return {
            "id": str(row.id),
            "name": row.name,
            "project_id": str(row.project_id) if row.project_id else None,
            "task_count": int(count),
            "jobs": n_jobs,
            "last_run": last,
            "created_at": iso(row.created_at),
        }

    async def taskset_tasks(
        self,
        ident: Identity,
        taskset_id: str,
        *,
        search: str = "",
        column: tuple[str, str] | None = None,
        limit: int,
        offset: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the taskset's tasks in upload order (``search``: in the slug; ``column``:
        only tasks whose custom column ``name`` shows ``value``, compared as text)."""
        ts = await self.get_taskset(ident, taskset_id)
        where = [tasks.c.taskset_id == uuid.UUID(ts["id"])]
        if search:
            where.append(tasks.c.name.contains(search, autoescape=True))
        query = select(tasks).where(*where).order_by(tasks.c.created_at, tasks.c.name)
        async with self.db.read() as conn:
            if column is None:
                total = (
                    await conn.execute(select(func.count()).select_from(tasks).where(*where))
                ).scalar_one()
                rows = list((await conn.execute(query.limit(limit).offset(offset))).all())
            else:
                # JSON paths differ by dialect; a taskset holds at most MAX_TASKS rows
                name, value = column
                every = (await conn.execute(query)).all()
                matched = [
                    r
                    for r in every
                    if column_text(((r.extra or {}).get("columns") or {}).get(name)) == value
                ]
                total, rows = len(matched), matched[offset : offset + limit]
        items = [
            {
                "id": str(r.id),
                "name": r.name,
                "env": r.env,
                "task_id": r.task_id,
                "args": r.args or {},
                "columns": {
                    k: column_text(v) for k, v in ((r.extra or {}).get("columns") or {}).items()
                },
                "version": r.version,
                "updated_at": iso(r.updated_at),
            }
            for r in rows
        ]
        return items, int(total)

    async def taskset_jobs(
        self, ident: Identity, taskset_id: str, *, limit: int = 20
    ) -> list[dict[str, Any]]:
        """The newest jobs that ran the taskset, each with ``runs``: per agent, its finished
        rollouts and their mean reward (counted as the leaderboard counts them)."""
        tid = parse_uuid(taskset_id, "taskset")
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(jobs.c.id, jobs.c.name, jobs.c.created_at)
                    .where(jobs.c.team_id == ident.team_id, jobs.c.taskset_id.in_(_id_forms([tid])))
                    .order_by(jobs.c.created_at.desc(), jobs.c.id)
                    .limit(limit)
                )
            ).all()
            runs: dict[uuid.UUID, list[dict[str, Any]]] = {}
            if rows:
                grouped = (
                    await conn.execute(
                        select(
                            traces.c.job_id,
                            traces.c.model,
                            func.count(),
                            func.avg(func.coalesce(traces.c.reward, 0.0)),
                        )
                        .where(
                            traces.c.job_id.in_([r.id for r in rows]),
                            traces.c.team_id == ident.team_id,
                            traces.c.status.in_(FINISHED),
                            traces.c.task_slug.is_not(None),
                        )
                        .group_by(traces.c.job_id, traces.c.model)
                        .order_by(traces.c.job_id, traces.c.model)
                    )
                ).all()
                for job, model, n, mean in grouped:
                    runs.setdefault(job, []).append(
                        {"agent": model or NO_MODEL, "rollouts": int(n), "mean": float(mean or 0.0)}
                    )
        return [
            {
                "id": str(r.id),
                "name": r.name,
                "created_at": iso(r.created_at),
                "runs": runs.get(r.id, []),
            }
            for r in rows
        ]

    async def leaderboard(
        self, ident: Identity, taskset_id: str, *, threshold: float = stats.SUCCESS
    ) -> Leaderboard:
        """The agents that ran the taskset, with their statistics (`hud.eval.stats`)."""
        ts = await self.get_taskset(ident, taskset_id)
        forms = _id_forms([uuid.UUID(ts["id"])])
        reward = func.coalesce(traces.c.reward, 0.0)
        success = case((reward >= threshold - stats.EPSILON, 1), else_=0)
        scope = (
            jobs.c.team_id == ident.team_id,
            jobs.c.taskset_id.in_(forms),
            traces.c.team_id == ident.team_id,
            traces.c.status.in_(FINISHED),
            traces.c.task_slug.is_not(None),
        )
        joined = traces.join(jobs, jobs.c.id == traces.c.job_id)
        async with self.db.read() as conn:
            grouped = (
                await conn.execute(
                    select(
                        traces.c.model,
                        traces.c.task_slug,
                        func.count(),
                        func.sum(reward),
                        func.sum(success),
                    )
                    .select_from(joined)
                    .where(*scope)
                    .group_by(traces.c.model, traces.c.task_slug)
                )
            ).all()
            per_agent = (
                await conn.execute(
                    select(
                        traces.c.model,
                        func.count(func.distinct(traces.c.job_id)),
                        func.max(traces.c.created_at),
                    )
                    .select_from(joined)
                    .where(*scope)
                    .group_by(traces.c.model)
                )
            ).all()
        counts: dict[str, dict[str, TaskCounts]] = {}
        for model, slug, n, total, won in grouped:
            agent = model or NO_MODEL
            old = counts.setdefault(agent, {}).get(slug)
            c = TaskCounts(int(n), float(total or 0.0), int(won or 0))
            if old is not None:  # a null model and the literal NO_MODEL
                c = TaskCounts(
                    old.attempts + c.attempts,
                    old.reward_sum + c.reward_sum,
                    old.successes + c.successes,
                )
            counts[agent][slug] = c
        jobs_of: dict[str, tuple[int, str | None]] = {}
        for model, n, last in per_agent:
            agent = model or NO_MODEL
            old_n, old_last = jobs_of.get(agent, (0, None))
            stamp = iso(last)
            jobs_of[agent] = (old_n + int(n), max(filter(None, (old_last, stamp)), default=None))
        return Leaderboard(ts, leaderboard_rows(counts, jobs_of), counts, threshold)

    # -- environments -----------------------------------------------------------------------
    async def list_environments(
        self, ident: Identity, *, search: str = "", limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """The team's environments (by name) with their latest successful build and counts."""
        items, total = await self.builds.list_environments(
            ident, search=search or None, limit=limit, offset=offset, sort_by=None
        )
        ids = [uuid.UUID(e["id"]) for e in items]
        if ids:
            async with self.db.read() as conn:
                rows = (
                    await conn.execute(
                        select(
                            builds.c.environment_id,
                            func.count(),
                            func.max(builds.c.created_at),
                        )
                        .where(builds.c.team_id == ident.team_id, builds.c.environment_id.in_(ids))
                        .group_by(builds.c.environment_id)
                    )
                ).all()
            summary = {env: (int(n), iso(last)) for env, n, last in rows}
            for item in items:
                n, last = summary.get(uuid.UUID(item["id"]), (0, None))
                item["build_count"] = n
                item["last_build"] = last
        return items, total

    async def get_environment(self, ident: Identity, env_ref: str) -> dict[str, Any]:
        """An environment by registry id (or by name, for links from task rows)."""
        try:
            uuid.UUID(str(env_ref))
        except ValueError:
            async with self.db.read() as conn:
                row = (
                    await conn.execute(
                        select(environments.c.id).where(
                            environments.c.team_id == ident.team_id,
                            environments.c.name == normalize_env_name(env_ref),
                        )
                    )
                ).first()
            if row is None:
                raise NotFound(f"environment {env_ref} not found") from None
            env_ref = str(row.id)
        return await self.builds.get_environment(ident, env_ref)

    async def environment_builds(
        self, ident: Identity, env_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """The environment's builds, newest version first."""
        eid = parse_uuid(env_id, "environment")
        await self.builds.get_environment(ident, str(eid))
        where = (builds.c.team_id == ident.team_id, builds.c.environment_id == eid)
        async with self.db.read() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(builds).where(*where))
            ).scalar_one()
            rows = (
                await conn.execute(
                    select(builds)
                    .where(*where)
                    .order_by(builds.c.version.desc(), builds.c.created_at.desc())
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
        return [_build(r) for r in rows], int(total)

    async def build(self, ident: Identity, env_id: str, build_id: str) -> dict[str, Any]:
        """One build of the environment (its status settled as the API reports it)."""
        eid = parse_uuid(env_id, "environment")
        info = await self.builds.status(ident, build_id)
        if info.get("registry_id") != str(eid):
            raise NotFound(f"build {build_id} not found")
        bid = parse_uuid(build_id, "build")
        async with self.db.read() as conn:
            row = (await conn.execute(select(builds).where(builds.c.id == bid))).one()
        return _build(row)

    async def build_log(
        self, ident: Identity, env_id: str, build_id: str, *, lines: int = LOG_LINES
    ) -> tuple[list[tuple[int | None, str]], bool]:
        """The last ``lines`` lines of a build's log as ``(ms timestamp, text)``, and whether
        earlier lines were left out. Secrets were masked when the log was written."""
        await self.build(ident, env_id, build_id)
        path = self.builds.log_path(parse_uuid(build_id, "build"))
        try:
            with open(path, "rb") as fh:
                fh.seek(0, 2)
                size = fh.tell()
                fh.seek(max(0, size - LOG_BYTES))
                data = fh.read()
        except FileNotFoundError:
            return [], False
        raw = data.split(b"\n")
        cut = size > LOG_BYTES
        if cut:
            raw = raw[1:]  # the first line may be partial
        out: list[tuple[int | None, str]] = []
        for line in raw:
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            stamp = entry.get("t")
            out.append((stamp if isinstance(stamp, int) else None, str(entry.get("m", ""))))
        if len(out) > lines:
            out, cut = out[-lines:], True
        return out, cut


def _build(row: Any) -> dict[str, Any]:
    manifest = row.manifest or {}
    return {
        "id": str(row.id),
        "status": row.status if row.status != "UPLOADING" else "PENDING",
        "version": row.version,
        "name": row.name,
        "uri": row.uri,
        "error_message": row.error_message,
        "no_cache": bool(row.no_cache),
        "tasks": len(manifest.get("tasks") or []),
        "capabilities": len(manifest.get("capabilities") or []),
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
    }


__all__ = ["AgentRow", "CatalogService", "Leaderboard", "TaskCounts", "leaderboard_rows"]
