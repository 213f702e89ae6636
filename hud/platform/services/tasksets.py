"""Tasksets and their tasks (spec platform.md §4, §14).

Tasks are upserted by (taskset, slug ``name``); tasks missing from an upload stay. Every row of
an upload is checked against its environment's latest successful build manifest (the template
exists, the arguments fit its schema) before anything is written: one line per bad row, and a
rejected upload writes nothing. Export returns each task as uploaded, so a client's diff of
export against its rows is stable.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import func, select, update

from hud.platform.client.checks import check_rows
from hud.platform.db import Database
from hud.platform.db.deploy_schema import tasks, tasksets
from hud.platform.services.builds import BuildService
from hud.platform.services.common import iso, now, parse_uuid
from hud.platform.services.errors import Conflict, Invalid, NotFound
from hud.platform.services.identity import Identity

EXTRA_FIELDS = ("validation", "agent_config", "columns", "runtime_config", "verifier")
MAX_TASKS = 10_000


def _signature(env: str, task_id: str, args: Any, extra: dict[str, Any]) -> str:
    return json.dumps(
        {"env": env, "task_id": task_id, "args": args, **extra}, sort_keys=True, default=str
    )


class TasksetService:
    def __init__(self, db: Database, builds: BuildService) -> None:
        self.db = db
        self.builds = builds

    async def by_name(self, ident: Identity, name: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(tasksets).where(
                        tasksets.c.team_id == ident.team_id, tasksets.c.name == name
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"taskset {name!r} not found")
        return {"taskset_id": str(row.id), "name": row.name}

    async def get(self, ident: Identity, taskset_id: str) -> dict[str, Any]:
        row = await self._row(ident, taskset_id)
        async with self.db.read() as conn:
            count = (
                await conn.execute(
                    select(func.count()).select_from(tasks).where(tasks.c.taskset_id == row.id)
                )
            ).scalar_one()
        return _taskset(row, count)

    async def _row(self, ident: Identity, taskset_id: str) -> Any:
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
        return row

    async def create(
        self, ident: Identity, name: str, project_id: str | None = None
    ) -> dict[str, Any]:
        name = name.strip()
        if not name:
            raise Invalid("name: the taskset needs a name")
        async with self.db.write() as conn:
            exists = await conn.execute(
                select(tasksets.c.id).where(
                    tasksets.c.team_id == ident.team_id, tasksets.c.name == name
                )
            )
            if exists.first() is not None:
                raise Conflict(f"taskset {name!r} already exists")
            tid = uuid.uuid4()
            await conn.execute(
                tasksets.insert().values(
                    id=tid,
                    team_id=ident.team_id,
                    project_id=parse_uuid(project_id, "project") if project_id else None,
                    name=name,
                    created_at=now(),
                )
            )
        return await self.get(ident, str(tid))

    async def export(self, ident: Identity, taskset_id: str) -> dict[str, Any]:
        row = await self._row(ident, taskset_id)
        async with self.db.read() as conn:
            items = (
                await conn.execute(
                    select(tasks).where(tasks.c.taskset_id == row.id).order_by(tasks.c.created_at)
                )
            ).all()
        out = []
        for t in items:
            record: dict[str, Any] = {
                "env": t.env,
                "scenario": t.task_id,
                "args": t.args or {},
                "name": t.name,
                "version": t.version,
            }
            record.update({k: v for k, v in (t.extra or {}).items() if v is not None})
            out.append(record)
        return {"id": str(row.id), "name": row.name, "tasks": out}

    async def upload(self, ident: Identity, body: dict[str, Any]) -> dict[str, Any]:
        items = body.get("tasks")
        if not isinstance(items, list):
            raise Invalid("tasks: expected a list of tasks")
        if len(items) > MAX_TASKS:
            raise Invalid(f"tasks: at most {MAX_TASKS} tasks per upload")
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise Invalid(f"tasks.{i}: expected an object")
            slug = item.get("name")
            env = item.get("env")
            env_name = env.get("name") if isinstance(env, dict) else env
            template = item.get("task_id")
            args = item.get("args") if item.get("args") is not None else {}
            if not isinstance(slug, str) or not slug:
                raise Invalid(f"tasks.{i}.name: every task needs a name (its slug)")
            if slug in seen:
                raise Invalid(f"tasks.{i}.name: {slug!r} appears twice in the upload")
            seen.add(slug)
            if not isinstance(env_name, str) or not env_name:
                raise Invalid(f"tasks.{i}.env.name: task {slug} names no environment")
            if not isinstance(template, str) or not template:
                raise Invalid(f"tasks.{i}.task_id: task {slug} names no template")
            if not isinstance(args, dict):
                raise Invalid(f"tasks.{i}.args: task {slug}'s args must be an object")
            extra = {k: item[k] for k in EXTRA_FIELDS if item.get(k) is not None}
            rows.append(
                {
                    "name": slug,
                    "env": {"name": env_name},
                    "task_id": template,
                    "args": args,
                    "extra": extra,
                }
            )
        manifests: dict[str, dict[str, Any] | None] = {}
        for env_name in {r["env"]["name"] for r in rows}:
            latest = await self.builds.latest_build(ident, env_name)
            manifests[env_name] = (latest or {}).get("manifest") if latest else None
        problems = check_rows(rows, manifests)
        if problems:
            raise Invalid("\n".join(problems))

        taskset_id = body.get("taskset_id")
        name = body.get("taskset_name")
        created = updated = unchanged = 0
        async with self.db.write() as conn:
            if taskset_id:
                ts = (
                    await conn.execute(
                        select(tasksets).where(
                            tasksets.c.id == parse_uuid(taskset_id, "taskset"),
                            tasksets.c.team_id == ident.team_id,
                        )
                    )
                ).first()
                if ts is None:
                    raise NotFound(f"taskset {taskset_id} not found")
                tid = ts.id
            else:
                if not isinstance(name, str) or not name.strip():
                    raise Invalid("taskset_name: give a taskset name or taskset_id")
                ts = (
                    await conn.execute(
                        select(tasksets).where(
                            tasksets.c.team_id == ident.team_id, tasksets.c.name == name.strip()
                        )
                    )
                ).first()
                if ts is not None:
                    tid = ts.id
                else:
                    tid = uuid.uuid4()
                    project_id = body.get("project_id")
                    await conn.execute(
                        tasksets.insert().values(
                            id=tid,
                            team_id=ident.team_id,
                            project_id=parse_uuid(project_id, "project") if project_id else None,
                            name=name.strip(),
                            created_at=now(),
                        )
                    )
            existing = {
                t.name: t
                for t in (await conn.execute(select(tasks).where(tasks.c.taskset_id == tid))).all()
            }
            stamp = now()
            for row in rows:
                env_name = row["env"]["name"]
                sig = _signature(env_name, row["task_id"], row["args"], row["extra"])
                old = existing.get(row["name"])
                if old is None:
                    await conn.execute(
                        tasks.insert().values(
                            id=uuid.uuid4(),
                            taskset_id=tid,
                            name=row["name"],
                            env=env_name,
                            task_id=row["task_id"],
                            args=row["args"],
                            extra=row["extra"] or None,
                            version=1,
                            created_at=stamp,
                            updated_at=stamp,
                        )
                    )
                    created += 1
                elif _signature(old.env, old.task_id, old.args, old.extra or {}) == sig:
                    unchanged += 1
                else:
                    await conn.execute(
                        update(tasks)
                        .where(tasks.c.id == old.id)
                        .values(
                            env=env_name,
                            task_id=row["task_id"],
                            args=row["args"],
                            extra=row["extra"] or None,
                            version=old.version + 1,
                            updated_at=stamp,
                        )
                    )
                    updated += 1
        return {
            "taskset_id": str(tid),
            "tasks_created": created,
            "tasks_updated": updated,
            "tasks_unchanged": unchanged,
        }


def _taskset(row: Any, count: int) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "project_id": str(row.project_id) if row.project_id else None,
        "can_edit": True,
        "task_count": count,
        "created_at": iso(row.created_at),
    }
