"""Hosted rollouts (spec platform.md §6, §9): ``POST /v2/rollouts/submit`` queues a trace; a
scheduler hands queued rollouts to an executor — worker processes on this machine
(`hud.platform.workers.local`) or Ray tasks on a cluster (`hud.platform.workers.ray`) — each
running `hud.platform.workers.rollout`, which reports the trace like a local eval does.

Back-pressure: at most ``max_queue`` rollouts wait (a submit past that is refused with 429 and
a ``Retry-After``), at most ``concurrency`` run at once, and at most ``per_team`` of one team.
Cancellation is read from the traces themselves (``/v2/rollouts/cancel*`` mark them
``cancelled``): a queued rollout is dropped, a running one's worker is stopped, which removes
its container. A rollout whose worker was lost (its node died) runs again, at most
``retries`` times, and its trace's metadata says so; one that cannot run again errors.

Every queued or running rollout has a row in ``hosted_rollouts`` (deleted when it ends), so a
platform that restarts on the same data (after a crash or a SIGKILL) picks them up again
(`RolloutService.recover`): queued rollouts run, rollouts that were running run again (their
trace says they were retried, and why) or, past ``retries``, end ``error`` with the reason; the
containers the platform's workers had started (labelled ``io.hud.session=hud-platform:<data
dir instance>:…``) are removed. Worker processes die with the platform (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import delete, select, update

from hud.platform.db.rollouts_schema import hosted_rollouts
from hud.platform.db.schema import traces
from hud.platform.services.common import now, run_id
from hud.platform.services.errors import NotFound, PlatformError
from hud.platform.services.identity import Identity

log = logging.getLogger("hud.platform.rollouts")

#: Hosted rollouts running at once (``--workers``).
DEFAULT_CONCURRENCY = int(os.environ.get("HUD_PLATFORM_WORKERS", "8"))
#: Hosted rollouts of one team running at once (``--per-team``; 0: as many as ``--workers``).
DEFAULT_PER_TEAM = int(os.environ.get("HUD_PLATFORM_PER_TEAM", "0"))
#: Hosted rollouts waiting at most (``--max-queue``); a submit past it gets a 429.
DEFAULT_MAX_QUEUE = int(os.environ.get("HUD_PLATFORM_MAX_QUEUE", "10000"))
#: The ``io.hud.session`` label value of the containers of this platform's workers and
#: sessions starts with it, then the data dir's instance id.
CONTAINER_LABEL_PREFIX = "hud-platform:"
RESTARTED = "the platform restarted while it ran"
#: How often the scheduler looks for cancelled traces (seconds).
CANCEL_POLL = 0.5
#: How often the long poll (`RolloutService.wait`) reads the waited traces' statuses.
WATCH_EVERY = 0.05
#: Traces waited on at once at most (memory stays bounded).
MAX_WAITERS = 10_000
TERMINAL = ("completed", "error", "cancelled")


class Busy(PlatformError):
    """The queue is full: retry later (HTTP 429)."""


@dataclass
class Outcome:
    """How a worker ended: ``lost`` when its node or process vanished before reporting."""

    code: int | None
    lost: bool = False
    detail: str = ""


class Handle(Protocol):
    async def wait(self) -> Outcome: ...

    async def cancel(self) -> None: ...


class Executor(Protocol):
    name: str

    async def launch(self, spec: dict[str, Any], env: dict[str, str]) -> Handle: ...

    async def aclose(self) -> None: ...


@dataclass
class Pending:
    trace_id: uuid.UUID
    team_id: uuid.UUID
    ident: Identity
    spec: dict[str, Any]
    env: dict[str, str]
    attempts: int = 0
    queued_at: float = field(default_factory=time.monotonic)
    handle: Handle | None = None
    cancelled: bool = False
    #: Its trace is finished: its slot is free while its worker tears down (container
    #: removal, process exit).
    reported: bool = False


class RolloutService:
    def __init__(
        self,
        db: Any,
        runs: Any,
        builds: Any,
        executor: Executor | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        per_team: int | None = None,
        max_queue: int | None = None,
        retries: int = 2,
        data_dir: Path | None = None,
        instance: str | None = None,
        prime_idle: float | None = None,
    ) -> None:
        from hud.platform.services.vault import Vault

        self.db = db
        self.runs = runs
        self.builds = builds
        self._executor = executor
        self.concurrency = max(1, concurrency)
        self.per_team = min(per_team or DEFAULT_PER_TEAM or self.concurrency, self.concurrency)
        self.max_queue = max(1, max_queue or DEFAULT_MAX_QUEUE)
        self.retries = retries
        self.instance = instance or uuid.uuid4().hex
        self.prime_idle = prime_idle
        self.vault = Vault(data_dir or Path(tempfile.mkdtemp(prefix="hud-rollouts-")))
        self.queue: deque[Pending] = deque()
        self.running: dict[uuid.UUID, Pending] = {}
        self._wake = asyncio.Event()
        #: Traces someone waits on (`wait`), each set once the trace is finished.
        self._waiters: dict[uuid.UUID, asyncio.Event] = {}
        self._watch_task: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            from hud.platform.workers.local import LocalExecutor

            warm = min(self.concurrency, 8)
            # primed workers only when asked for (`--prime-idle S`): on a machine short of
            # CPU the containers they boot ahead slow the running rollouts more than the
            # boot they save (bench/README.md)
            prime_idle = self.prime_idle or 0.0
            self._executor = LocalExecutor(warm=warm, prime=prime_idle > 0, prime_idle=prime_idle)
        return self._executor

    # -- submit ----------------------------------------------------------------------------
    async def submit(
        self, ident: Identity, key: str, base_url: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        if len(self.queue) >= self.max_queue:
            raise Busy(f"the rollout queue is full ({self.max_queue} waiting); retry later")
        tid = run_id(str(body["trace_id"]))
        latest = await self.builds.latest_build(ident, str(body["env"]))
        if latest is None:
            raise NotFound(
                f"environment {body['env']!r} has no successful build: run `hud deploy` first"
            )
        runtime = await self.builds.runtime(ident, latest["registry_id"])
        config = runtime.get("runtime_config") or {"image": runtime["image"]}
        extra = body.get("runtime_config") or {}
        for name in ("resources", "limits"):
            if isinstance(extra, dict) and name in extra:
                config = {**config, name: extra[name]}
        agent = body.get("agent") or {}
        model = (agent.get("config") or {}).get("model")
        await self.runs.trace_enter(
            ident,
            tid.hex,
            job_id=body.get("job_id"),
            group_id=body.get("group_id"),
            task_slug=body.get("slug") or body.get("task"),
            model=model if isinstance(model, str) else None,
            parent_trace_id=body.get("parent_trace_id"),
            status="queued",
        )
        spec: dict[str, Any] = {
            "trace_id": tid.hex,
            "job_id": str(body["job_id"]),
            "group_id": body.get("group_id"),
            "env": runtime["name"],
            "task": body["task"],
            "slug": body.get("slug"),
            "args": body.get("args") or {},
            "agent": agent,
            "runtime": {
                "runtime_config": config,
                "environment_variables": runtime.get("environment_variables") or {},
            },
            "rollout_timeout": body.get("rollout_timeout"),
        }
        stored = {**spec, "runtime": {"runtime_config": config}}  # no secrets in the row
        stamp = now()
        async with self.db.write() as conn:
            await conn.execute(
                hosted_rollouts.insert().values(
                    trace_id=tid,
                    team_id=ident.team_id,
                    user_id=ident.user_id,
                    job_id=run_id(str(body["job_id"])),
                    state="queued",
                    attempts=0,
                    spec=stored,
                    registry_id=str(runtime.get("registry_id") or latest["registry_id"]),
                    key_enc=self.vault.seal(key),
                    base_url=base_url,
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
        env = worker_env(base_url, key, self.container_label(tid))
        self.queue.append(Pending(tid, ident.team_id, ident, spec, env))
        self._ensure_loop()
        self._wake.set()
        return {"trace_id": str(tid), "status": "queued"}

    def stats(self) -> dict[str, Any]:
        return {
            "executor": self.executor.name,
            "queued": len(self.queue),
            "running": len(self._active()),
            "finishing": len(self.running) - len(self._active()),
            "concurrency": self.concurrency,
            "per_team": self.per_team,
            "max_queue": self.max_queue,
        }

    def container_label(self, trace_id: uuid.UUID | None = None) -> str:
        """The ``io.hud.session`` label of a rollout's (or, without one, a session's)
        containers: the startup sweep removes this platform's leftovers by it."""
        what = trace_id.hex if trace_id is not None else "session"
        return f"{CONTAINER_LABEL_PREFIX}{self.instance}:{what}"

    async def _set_state(self, item: Pending, state: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(hosted_rollouts)
                .where(hosted_rollouts.c.trace_id == item.trace_id)
                .values(
                    state=state,
                    attempts=item.attempts,
                    spec={**item.spec, "runtime": {"runtime_config": _config(item.spec)}},
                    updated_at=now(),
                )
            )

    async def _forget(self, ids: list[uuid.UUID]) -> None:
        if ids:
            async with self.db.write() as conn:
                await conn.execute(
                    delete(hosted_rollouts).where(hosted_rollouts.c.trace_id.in_(ids))
                )

    # -- after a restart -------------------------------------------------------------------
    async def recover(self) -> dict[str, int]:
        """The startup sweep (a platform restarted on the same data): this platform's
        leftover containers are removed, rollouts that were running run again (or error past
        ``retries``), queued ones are queued again, in submission order."""
        removed = await asyncio.to_thread(remove_containers, CONTAINER_LABEL_PREFIX + self.instance)
        async with self.db.read() as conn:
            rows = (
                await conn.execute(select(hosted_rollouts).order_by(hosted_rollouts.c.created_at))
            ).all()
        counts = {"containers": removed, "queued": 0, "retried": 0, "failed": 0}
        for row in rows:
            ident = Identity(user_id=row.user_id, team_id=row.team_id)
            spec = dict(row.spec)
            attempts = int(row.attempts)
            try:
                if row.state == "running" and attempts > self.retries:
                    await self.runs.trace_exit(
                        ident,
                        row.trace_id.hex,
                        status="error",
                        reward=0.0,
                        error=f"{RESTARTED}, {attempts} time(s); not run again",
                        metadata={"attempts": attempts},
                    )
                    await self._forget([row.trace_id])
                    counts["failed"] += 1
                    continue
                status = (await self._statuses([row.trace_id])).get(row.trace_id)
                if status in TERMINAL:  # finished (or cancelled) just before the crash
                    await self._forget([row.trace_id])
                    continue
                secrets: dict[str, str] = {}
                if row.registry_id:
                    runtime = await self.builds.runtime(ident, row.registry_id)
                    secrets = runtime.get("environment_variables") or {}
                spec["runtime"] = {**(spec.get("runtime") or {}), "environment_variables": secrets}
                key = self.vault.open(row.key_enc)
            except Exception as exc:
                log.error("rollout %s cannot run again: %s", row.trace_id, exc)
                with contextlib.suppress(Exception):
                    await self.runs.trace_exit(
                        ident,
                        row.trace_id.hex,
                        status="error",
                        reward=0.0,
                        error=f"could not be run again after a platform restart: {exc}",
                    )
                await self._forget([row.trace_id])
                counts["failed"] += 1
                continue
            item = Pending(
                row.trace_id,
                row.team_id,
                ident,
                spec,
                worker_env(row.base_url, key, self.container_label(row.trace_id)),
                attempts=attempts,
            )
            if row.state == "running":
                item.spec["_lost"] = RESTARTED
                await self._mark_retry(item)
                counts["retried"] += 1
            else:
                counts["queued"] += 1
            self.queue.append(item)
        if self.queue:
            self._ensure_loop()
            self._wake.set()
        return counts

    async def _mark_retry(self, item: Pending) -> None:
        """The trace of a rollout about to run again says so (and is queued) at once."""
        meta = {"attempts": item.attempts, "retried": True, "retry_reason": item.spec["_lost"]}
        async with self.db.write() as conn:
            await conn.execute(
                update(traces)
                .where(traces.c.id == item.trace_id, traces.c.status.in_(("queued", "running")))
                .values(status="queued", metadata=meta)
            )
        await self._set_state(item, "queued")

    # -- waiting ---------------------------------------------------------------------------
    async def wait(self, trace_id: str, timeout: float) -> None:
        """Return once the trace is finished (or unknown), or after ``timeout`` seconds: the
        long poll behind ``GET /v2/rollouts/<id>/wait``. One watcher reads the statuses of
        every waited trace in one query every `WATCH_EVERY` seconds, however many wait."""
        tid = run_id(trace_id)
        if tid not in self._waiters and len(self._waiters) >= MAX_WAITERS:
            raise Busy("too many rollouts waited on at once; poll GET /v2/trace/<id> instead")
        event = self._waiters.setdefault(tid, asyncio.Event())
        self._ensure_watch()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    def _ensure_watch(self) -> None:
        if self._watch_task is None or self._watch_task.done():
            self._watch_task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        """Every `WATCH_EVERY` s, one query for the statuses of the waited traces and of the
        running rollouts: waiters of finished traces return, and a running rollout whose
        trace is finished gives its slot to the next one at once (its worker still tears
        down; `_dispatch` bounds how many may)."""
        while True:
            running = [i for i in self.running.values() if not i.reported]
            waited = list(self._waiters)
            if not running and not waited:
                return
            try:
                statuses = await self._statuses(waited + [i.trace_id for i in running])
            except Exception as exc:  # the database hiccuped: look again next round
                log.warning("reading rollout statuses failed: %s", exc)
                statuses = {}
            else:
                for tid in waited:
                    if statuses.get(tid, "completed") in TERMINAL and tid in self._waiters:
                        self._waiters.pop(tid).set()
                for item in running:
                    if statuses.get(item.trace_id) in TERMINAL:
                        item.reported = True
                        self._wake.set()
            await asyncio.sleep(WATCH_EVERY)

    # -- scheduling ------------------------------------------------------------------------
    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        checked = 0.0
        while self.queue or self.running:
            # cancellations are read every CANCEL_POLL s; a submit or a rollout's end in
            # between dispatches at once, without a read first
            if time.monotonic() - checked >= CANCEL_POLL:
                checked = time.monotonic()
                await self._drop_cancelled()
            self._dispatch()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), CANCEL_POLL)

    def _active(self) -> list[Pending]:
        """Running rollouts whose trace is not finished yet (those count against limits)."""
        return [i for i in self.running.values() if not i.reported]

    def _dispatch(self) -> None:
        per_team: dict[uuid.UUID, int] = {}
        active = self._active()
        for item in active:
            per_team[item.team_id] = per_team.get(item.team_id, 0) + 1
        busy = len(active)
        skipped: list[Pending] = []
        # at most `concurrency` unfinished, and as many again tearing down
        while self.queue and busy < self.concurrency and len(self.running) < 2 * self.concurrency:
            item = self.queue.popleft()
            if per_team.get(item.team_id, 0) >= self.per_team:
                skipped.append(item)
                continue
            per_team[item.team_id] = per_team.get(item.team_id, 0) + 1
            busy += 1
            item.reported = False
            self.running[item.trace_id] = item
            task = asyncio.get_running_loop().create_task(self._run(item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.queue.extendleft(reversed(skipped))
        if self.running:
            self._ensure_watch()

    async def _statuses(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not ids:
            return {}
        async with self.db.read() as conn:
            rows = (
                await conn.execute(select(traces.c.id, traces.c.status).where(traces.c.id.in_(ids)))
            ).all()
        return {r.id: r.status for r in rows}

    async def _drop_cancelled(self) -> None:
        ids = [p.trace_id for p in self.queue] + list(self.running)
        try:
            statuses = await self._statuses(ids)
        except Exception as exc:  # the database hiccuped: look again next round
            log.warning("reading rollout statuses failed: %s", exc)
            return
        dropped = [p.trace_id for p in self.queue if statuses.get(p.trace_id) == "cancelled"]
        if dropped:
            self.queue = deque(p for p in self.queue if statuses.get(p.trace_id) != "cancelled")
            try:
                await self._forget(dropped)
            except Exception as exc:  # the next start's sweep sees they were cancelled
                log.warning("forgetting cancelled rollouts failed: %s", exc)
        for item in list(self.running.values()):
            if statuses.get(item.trace_id) == "cancelled" and not item.cancelled:
                item.cancelled = True
                if item.handle is not None:
                    task = asyncio.get_running_loop().create_task(item.handle.cancel())
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _run(self, item: Pending) -> None:
        requeued = False
        try:
            item.attempts += 1
            if item.attempts > 1:
                item.spec["metadata"] = {
                    "attempts": item.attempts,
                    "retried": True,
                    "retry_reason": item.spec.get("_lost", "worker lost"),
                }
            spec = {k: v for k, v in item.spec.items() if not k.startswith("_")}
            # the worker starts while the rollout's row and trace say it runs
            launching = asyncio.ensure_future(self.executor.launch(spec, item.env))
            try:
                await asyncio.gather(
                    self._set_state(item, "running"),
                    self.runs.trace_enter(item.ident, item.trace_id.hex, status="running"),
                )
            except BaseException:
                with contextlib.suppress(BaseException):
                    handle = await launching
                    await handle.cancel()
                    await handle.wait()
                raise
            item.handle = await launching
            if item.cancelled:
                await item.handle.cancel()
            outcome = await item.handle.wait()
            status = (await self._statuses([item.trace_id])).get(item.trace_id)
            if status in TERMINAL:
                return
            if outcome.lost and not item.cancelled and item.attempts <= self.retries:
                log.warning("rollout %s lost (%s); running it again", item.trace_id, outcome.detail)
                item.spec["_lost"] = outcome.detail or "worker lost"
                item.handle = None
                await self._set_state(item, "queued")
                self.queue.appendleft(item)
                requeued = True
                return
            error = (
                f"worker lost: {outcome.detail}"
                if outcome.lost
                else f"worker exited with status {outcome.code} before reporting"
            )
            await self.runs.trace_exit(
                item.ident,
                item.trace_id.hex,
                status="cancelled" if item.cancelled else "error",
                reward=0.0,
                error=error,
                metadata={"attempts": item.attempts},
            )
        except Exception as exc:
            log.error("rollout %s failed to run: %s", item.trace_id, exc)
            with contextlib.suppress(Exception):
                await self.runs.trace_exit(
                    item.ident, item.trace_id.hex, status="error", reward=0.0, error=str(exc)
                )
        finally:
            if not requeued or self.running.get(item.trace_id) is item:
                self.running.pop(item.trace_id, None)
            if not requeued:
                try:
                    await self._forget([item.trace_id])
                except Exception as exc:  # the next start's sweep finds its trace finished
                    log.warning("forgetting rollout %s failed: %s", item.trace_id, exc)
            self._wake.set()

    async def aclose(self) -> None:
        for item in list(self.running.values()):
            if item.handle is not None:
                with contextlib.suppress(Exception):
                    await item.handle.cancel()
        if self._loop_task is not None:
            self._loop_task.cancel()
        with contextlib.suppress(Exception):
            await self.executor.aclose()


def _config(spec: dict[str, Any]) -> Any:
    return (spec.get("runtime") or {}).get("runtime_config")


def remove_containers(prefix: str) -> int:
    """Remove the containers (and networks) whose ``io.hud.session`` label starts with
    ``prefix``: this platform's leftovers after a crash. None without a Docker daemon."""
    from hud.eval.runtimes.docker import SESSION_LABEL, remove_labelled

    return remove_labelled(lambda labels: str(labels.get(SESSION_LABEL, "")).startswith(prefix))


def worker_env(base_url: str, key: str, label: str | None = None) -> dict[str, str]:
    """What a worker process sees: the platform's URLs and the team's key, nothing else of
    this process's environment beyond what Python and Docker need (no provider keys), and
    the label its containers carry (``label``)."""
    from hud.eval.runtimes.docker import SESSION_ENV

    base = base_url.rstrip("/")
    env = {
        "HUD_API_URL": base,
        "HUD_TELEMETRY_URL": f"{base}/telemetry",
        "HUD_GATEWAY_URL": f"{base}/gateway",
        "HUD_RUNTIME_URL": base,
        "HUD_API_KEY": key,
        "HUD_TELEMETRY_ENABLED": "1",
        "HUD_CLI_ANALYTICS_ENABLED": "0",
    }
    if label:
        env[SESSION_ENV] = label
    for name in ("PATH", "HOME", "PYTHONPATH", "DOCKER_HOST", "DOCKER_CONFIG", "TMPDIR", "LANG"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env
