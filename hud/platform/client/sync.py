"""`hud sync env` and `hud sync tasks` without the CLI (spec platform.md §1, §3.1, §4, §13).

Rows are compared by slug and signature (the compact, key-sorted JSON of the portable row minus
its slug), so a second sync of the same rows plans nothing, and an edited row is an update.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hud.platform.client.api import PlatformAPI, PlatformAPIError
from hud.platform.client.link import Link, scope_for
from hud.protocol.errors import HudError

EXTRA_FIELDS = ("validation", "agent_config", "columns", "runtime_config", "verifier")


class SyncError(HudError):
    """A sync that cannot go on; ``lines`` lists one problem per row when rows are bad."""

    def __init__(self, message: str, lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.lines = lines or []


def normalize_name(name: str) -> str:
    import re

    text = re.sub(r"[\s_]+", "-", name.strip().lower())
    text = re.sub(r"[^a-z0-9.-]", "", text)
    return re.sub(r"-{2,}", "-", text).strip("-.")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None and not (k == "args" and v == {})}


def signature(row: dict[str, Any]) -> str:
    body = _clean({k: v for k, v in row.items() if k != "slug"})
    body.setdefault("args", {})
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)


def record_to_row(record: dict[str, Any]) -> dict[str, Any] | None:
    """An export record as a portable row (None when it lacks env, scenario or name)."""
    env, scenario, name = record.get("env"), record.get("scenario"), record.get("name")
    if not (isinstance(env, str) and env and isinstance(scenario, str) and scenario and name):
        return None
    row: dict[str, Any] = {"env": env, "id": scenario, "args": record.get("args") or {}}
    row["slug"] = str(name)
    for key in EXTRA_FIELDS:
        if record.get(key) is not None:
            row[key] = record[key]
    return row


def row_to_item(row: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": row["slug"],
        "env": {"name": row["env"]},
        "task_id": row["id"],
        "args": row.get("args") or {},
    }
    for key in EXTRA_FIELDS:
        if row.get(key) is not None:
            item[key] = row[key]
    return item


def local_rows(source: Path) -> list[dict[str, Any]]:
    """Portable rows of a task source (a tasks.py, a directory, a .json/.jsonl file)."""
    from hud.eval.sources import load_source

    try:
        loaded = load_source(source)
    except Exception as exc:
        raise SyncError(f"cannot load tasks from {source}: {exc}") from None
    rows = []
    for task in loaded.taskset:
        rows.append(_clean(json.loads(json.dumps(task.to_row(), default=str))))
    return rows


@dataclass
class Plan:
    taskset: str
    taskset_id: str | None
    create: list[dict[str, Any]] = field(default_factory=list)
    update: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    remote_only: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "taskset": self.taskset,
            "taskset_id": self.taskset_id,
            "create": [r["slug"] for r in self.create],
            "update": [r["slug"] for r in self.update],
            "unchanged": list(self.unchanged),
            "remote_only": list(self.remote_only),
        }


def diff(
    taskset: str, taskset_id: str | None, local: list[dict[str, Any]], remote: list[dict[str, Any]]
) -> Plan:
    plan = Plan(taskset=taskset, taskset_id=taskset_id)
    by_slug = {r["slug"]: r for r in remote}
    seen: set[str] = set()
    for row in local:
        slug = row["slug"]
        if slug in seen:
            raise SyncError(
                f"task slug {slug!r} appears twice in the source; give each row a unique slug"
            )
        seen.add(slug)
        old = by_slug.get(slug)
        if old is None:
            plan.create.append(row)
        elif signature(old) != signature(row):
            plan.update.append(row)
        else:
            plan.unchanged.append(slug)
    plan.remote_only = [s for s in by_slug if s not in seen]
    return plan


def check_against_manifest(
    rows: list[dict[str, Any]], env_name: str, manifest: dict[str, Any]
) -> list[str]:
    """One line per row of ``env_name`` that its manifest rejects (see the platform's check)."""
    from hud.platform.client.checks import check_rows

    items = [row_to_item(r) for r in rows if normalize_name(r["env"]) == normalize_name(env_name)]
    return check_rows(items, {item["env"]["name"]: manifest for item in items})


class Syncer:
    """One command's session with the platform and the directory's link."""

    def __init__(self, api_url: str, api_key: str, directory: Path) -> None:
        self.api_url = api_url
        self.api = PlatformAPI(api_url, api_key, timeout=600)
        self.link = Link.load(directory)
        self.scope: dict[str, str] = {}

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Syncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return self.api.request(method, path, **kwargs)
        except PlatformAPIError as exc:
            raise SyncError(f"Request failed: {exc.message}") from None

    def begin(self) -> None:
        self.scope = scope_for(self.api_url, self._call("GET", "/auth/me"))
        from hud.platform.client.link import LinkError

        try:
            self.link.check(self.scope)
        except LinkError as exc:
            raise SyncError(str(exc)) from None

    # -- environments --------------------------------------------------------------------
    def find_environment(self, ref: str) -> dict[str, Any]:
        if _is_uuid(ref):
            try:
                return self.api.request("GET", f"/registry/{ref}")
            except PlatformAPIError as exc:
                if exc.status == 404:
                    raise SyncError(f"Environment {ref} is inaccessible or deleted") from None
                raise SyncError(f"Request failed: {exc.message}") from None
        wanted = normalize_name(ref)
        page = self._call("GET", "/registry", params={"search": wanted, "limit": 500})
        matches = [e for e in page.get("items") or [] if e.get("name") == wanted]
        if not matches:
            raise SyncError(
                f"environment {ref!r} not found on {self.api_url}; "
                "deploy it first with `hud deploy`"
            )
        return matches[0]

    def link_environment(self, ref: str) -> dict[str, Any]:
        env = self.find_environment(ref)
        self.link.save(self.scope, registry_id=str(env["id"]))
        return env

    def linked_environment(self) -> dict[str, Any] | None:
        env_id = self.link.get("registry_id")
        if not env_id:
            return None
        return self.find_environment(env_id)

    # -- tasksets --------------------------------------------------------------------------
    def resolve_taskset(self, ref: str | None) -> tuple[str, str | None]:
        """(name, id or None when the name is new)."""
        if not ref:
            linked = self.link.get("taskset_id")
            if not linked:
                raise SyncError(
                    "no taskset given and this directory is not linked to one: pass its name"
                )
            ref = linked
        if _is_uuid(ref):
            info = self._call("GET", f"/tasksets/{ref}")
            return str(info.get("name") or ref), str(info["id"])
        try:
            found = self.api.request("GET", f"/tasksets/by-name/{quote(ref, safe='')}")
        except PlatformAPIError as exc:
            if exc.status == 404:
                return ref, None
            raise SyncError(f"Request failed: {exc.message}") from None
        return str(found.get("name") or ref), str(found["taskset_id"])

    def remote_rows(self, taskset_id: str | None) -> tuple[str | None, list[dict[str, Any]]]:
        if not taskset_id:
            return None, []
        try:
            exported = self.api.request("GET", f"/tasksets/{taskset_id}/export")
        except PlatformAPIError as exc:
            if exc.status == 404:
                return None, []
            raise SyncError(f"Request failed: {exc.message}") from None
        rows = [r for r in map(record_to_row, exported.get("tasks") or []) if r is not None]
        return exported.get("name"), rows

    def plan(self, ref: str | None, source: Path) -> tuple[Plan, list[str]]:
        """The plan, and warnings (e.g. rows of another environment than the linked one)."""
        warnings: list[str] = []
        rows = local_rows(source)
        env = self.linked_environment()
        if env is not None:
            env_name = str(env.get("name") or "")
            others = sorted({r["env"] for r in rows if normalize_name(r["env"]) != env_name})
            if others:
                warnings.append(
                    f"this directory is linked to environment {env_name!r}; rows also name "
                    f"{', '.join(others)}"
                )
            manifest = ((env.get("latest_build") or {}) or {}).get("manifest")
            if manifest:
                problems = check_against_manifest(rows, env_name, manifest)
                if problems:
                    raise SyncError(
                        f"{len(problems)} task(s) do not fit environment {env_name!r}", problems
                    )
        if env is None and self.link.get("taskset_id") is None and not ref:
            raise SyncError("no taskset given: pass a taskset name")
        name, taskset_id = self.resolve_taskset(ref)
        if taskset_id:
            self._call("GET", f"/tasksets/{taskset_id}")
        _, remote = self.remote_rows(taskset_id)
        return diff(name, taskset_id, rows, remote), warnings

    def apply(self, plan: Plan) -> dict[str, Any]:
        changed = plan.create + plan.update
        body: dict[str, Any] = {
            "taskset_name": plan.taskset,
            "tasks": [row_to_item(r) for r in changed],
        }
        if plan.taskset_id:
            body["taskset_id"] = plan.taskset_id
        if self.link.get("project_id"):
            body["project_id"] = self.link.get("project_id")
        try:
            reply = self.api.request("POST", "/tasks/upload", json=body)
        except PlatformAPIError as exc:
            lines = exc.message.splitlines()
            if exc.status == 422 and lines and lines[0].startswith("task "):
                raise SyncError(f"the platform rejected {len(lines)} task(s)", lines) from None
            raise SyncError(f"Request failed: {exc.message}") from None
        taskset_id = str(reply.get("taskset_id") or plan.taskset_id or "")
        if taskset_id:
            self.link.save(self.scope, taskset_id=taskset_id)
        return reply

    def export(self, ref: str | None, out: Path) -> int:
        name, taskset_id = self.resolve_taskset(ref)
        if not taskset_id:
            raise SyncError(f"taskset {name!r} not found")
        _, rows = self.remote_rows(taskset_id)
        write_rows(rows, out)
        return len(rows)


def write_rows(rows: list[dict[str, Any]], out: Path) -> None:
    suffix = out.suffix.lower()
    if suffix == ".json":
        text = json.dumps(rows, indent=2) + "\n"
    elif suffix == ".jsonl":
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    elif suffix == ".csv":
        keys = ["slug", "env", "id", "args", *EXTRA_FIELDS]
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(keys)
        for r in rows:
            writer.writerow(
                [
                    r.get(k)
                    if isinstance(r.get(k), str)
                    else ("" if r.get(k) is None else json.dumps(r.get(k), sort_keys=True))
                    for k in keys
                ]
            )
        text = buf.getvalue()
    else:
        raise SyncError(f"--export {out}: use a .json, .jsonl or .csv file name")
    out.write_text(text, encoding="utf-8")
