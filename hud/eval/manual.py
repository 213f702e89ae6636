"""Starting and grading single tasks by hand, across separate invocations (`hud task`).

A started task is remembered (server URL, slug, session id) in ``~/.hud/task_sessions.json`` so a
later grade resumes exactly that session (G9, G25). Without a server to attach to, a detached
server is spawned from the source and kept until the task is graded or it idles out.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hud.clients import HudClient, connect, parse_address
from hud.environment.loader import LoadError
from hud.environment.spawn import port_is_listening, spawn_detached
from hud.eval.sources import load_source
from hud.eval.task import Task
from hud.protocol import HudProtocolError
from hud.protocol.errors import HudError

DEFAULT_URL = "tcp://127.0.0.1:8765"
SPAWN_IDLE_EXIT = 3600.0
GRADE_BY_ID = "tasks.grade.id"


class ManualError(HudError):
    """A user-facing failure of `hud task` (one line; optional hint)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def _store_path() -> Path:
    return Path.home() / ".hud" / "task_sessions.json"


def _load_store() -> list[dict[str, Any]]:
    try:
        data = json.loads(_store_path().read_text())
    except (OSError, ValueError):
        return []
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def _save_store(records: list[dict[str, Any]]) -> None:
    path = _store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records[-200:], indent=1))
    tmp.replace(path)


@dataclass
class Target:
    """What a TASK argument resolved to."""

    task_id: str
    args: dict[str, Any]
    slug: str
    env_name: str | None = None
    env_target: Path | None = None


def normalize_url(url: str) -> str:
    host, port = parse_address(url)
    return f"tcp://{host}:{port}"


def parse_args_json(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ManualError(
            f"--args is not valid JSON: {exc}", hint="pass an object, e.g. --args '{\"n\": 3}'"
        ) from None
    if not isinstance(value, dict):
        raise ManualError("--args must be a JSON object", hint="e.g. --args '{\"n\": 3}'")
    return value


def list_rows(source: str) -> list[Task]:
    try:
        return list(load_source(source).taskset)
    except LoadError as exc:
        raise ManualError(str(exc)) from None


def resolve(task: str, source: str | None, args: dict[str, Any] | None, *, attach: bool) -> Target:
    """Find TASK (slug, id or index) in the source; when attaching, fall back to TASK as id."""
    explicit = source is not None
    try:
        loaded = load_source(source or ".")
    except LoadError as exc:
        if explicit or not attach:
            raise ManualError(str(exc)) from None
        loaded = None
    if loaded is not None:
        try:
            row = loaded.taskset.find(task)
        except (KeyError, ValueError) as exc:
            if explicit or not attach:
                raise ManualError(str(exc), hint="see `hud task list`") from None
        else:
            row_args = args if args is not None else dict(row.args)
            slug = row.slug if args is None else Task(env=row.env, id=row.id, args=row_args).slug
            return Target(row.id, row_args, slug, row.env, loaded.env_target)
    row_args = args or {}
    return Target(task, row_args, Task(env="x", id=task, args=row_args).slug)


async def _server_url(url: str | None, source: str | None) -> str | None:
    """An explicit URL, or a server already on 127.0.0.1:8765 when no source was named."""
    if url:
        return normalize_url(url)
    if source is None and await port_is_listening("127.0.0.1", 8765):
        return DEFAULT_URL
    return None


def _spawn(target: Target) -> tuple[str, int]:
    if target.env_target is None:
        raise ManualError(f"no source to start task {target.task_id!r} from")
    log_dir = Path.home() / ".hud" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        pid, port = spawn_detached(
            target.env_target,
            env_name=target.env_name,
            extra=["--idle-exit", str(SPAWN_IDLE_EXIT), "--session-ttl", str(SPAWN_IDLE_EXIT)],
            log_path=log_dir / "task-server.log",
        )
    except RuntimeError as exc:
        hint = f"see {log_dir / 'task-server.log'}"
        raise ManualError(str(exc).splitlines()[0], hint=hint) from None
    return f"tcp://127.0.0.1:{port}", pid


def _stop_spawned(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)


@dataclass
class StartResult:
    frame: dict[str, Any]
    url: str
    session_id: str | None
    spawned: bool


async def start(task: str, *, source: str | None, url: str | None, args: str | None) -> StartResult:
    """Start TASK and leave it parked for a later `grade`."""
    server = await _server_url(url, source)
    target = resolve(task, source, parse_args_json(args), attach=server is not None)
    pid = None
    if server is None:
        server, pid = _spawn(target)
    try:
        async with connect(server, ready_timeout=10, heartbeat=None) as client:
            frame = await client.start(target.task_id, target.args)
            session_id = client.session_id
    except BaseException:
        _stop_spawned(pid)
        raise
    records = []
    for r in _load_store():
        if r.get("slug") != target.slug:
            records.append(r)
        elif r.get("pid") and r.get("url") != server:
            # An earlier spawned start of this task is superseded: stop its server (if it is
            # still up: don't signal a reused pid) instead of leaking it until it idles out.
            with contextlib.suppress(ValueError):
                if await port_is_listening(*parse_address(r["url"])):
                    _stop_spawned(r["pid"])
        elif r.get("url") != server:
            records.append(r)
    records.append(
        {
            "url": server,
            "slug": target.slug,
            "task_id": target.task_id,
            "session_id": session_id,
            "pid": pid,
            "started_at": time.time(),
        }
    )
    _save_store(records)
    return StartResult(frame, server, session_id, spawned=pid is not None)


def _remembered(target: Target, url: str | None) -> list[dict[str, Any]]:
    found = [r for r in _load_store() if r.get("slug") == target.slug]
    if url:
        found = [r for r in found if r.get("url") == url]
    return list(reversed(found))


def _forget(record: dict[str, Any]) -> None:
    _save_store([r for r in _load_store() if r != record])


async def _grade_remembered(record: dict[str, Any], target: Target, answer: Any) -> dict | None:
    try:
        async with connect(record["url"], ready_timeout=2, heartbeat=None) as client:
            try:
                await client.hello(record["session_id"])
            except HudProtocolError:
                return None
            return await client.grade(answer, task_id=target.task_id)
    except (OSError, TimeoutError, EOFError):
        return None


async def _start_and_grade(client: HudClient, target: Target, answer: Any) -> dict[str, Any]:
    await client.start(target.task_id, target.args)
    return await client.grade(answer, task_id=target.task_id)


async def grade(
    task: str, answer: Any, *, source: str | None, url: str | None, args: str | None
) -> dict[str, Any]:
    """Grade TASK: resume the session `start` left, else start it afresh and grade."""
    explicit_url = normalize_url(url) if url else None
    parsed = parse_args_json(args)
    attachable = explicit_url is not None or bool(_remembered_any(task))
    target = resolve(task, source, parsed, attach=attachable or source is None)
    for record in _remembered(target, explicit_url):
        try:
            frame = await _grade_remembered(record, target, answer)
        except HudProtocolError:
            # The grade itself failed (the session resumed, so its task is consumed): forget
            # it and stop its spawned server rather than leave it running.
            _forget(record)
            _stop_spawned(record.get("pid"))
            raise
        _forget(record)
        if frame is not None:
            _stop_spawned(record.get("pid"))
            return frame
    server = await _server_url(url, source)
    pid = None
    if server is None:
        if target.env_target is None:
            raise ManualError(f"no task matching {task!r} and no server to attach to")
        server, pid = _spawn(target)
    try:
        async with connect(server, ready_timeout=10, heartbeat=None) as client:
            if GRADE_BY_ID in client.features:
                try:
                    return await client.grade(answer, task_id=target.task_id, args=target.args)
                except HudProtocolError as exc:
                    if exc.code != -32600:
                        raise
            return await _start_and_grade(client, target, answer)
    finally:
        _stop_spawned(pid)


def _remembered_any(task: str) -> list[dict[str, Any]]:
    return [r for r in _load_store() if task in (r.get("slug"), r.get("task_id"))]
