"""The embedded executor of ``hud platform serve``: hosted rollouts in worker processes on
this machine (`hud.platform.workers.rollout --serve`), one rollout at a time each, specs on
stdin; a worker serves again only rollouts of the team it served."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from hud.eval.runtimes.docker import SESSION_ENV
from hud.platform.services.rollouts import Outcome
from hud.platform.workers.ray import die_with_parent
from hud.platform.workers.zygote import ForkedProcess, Zygote

log = logging.getLogger("hud.platform.workers")

#: Seconds a cancelled worker gets to remove its container before it is killed (its
#: containers are then removed by the Docker watchdog).
GRACE = 4.0
#: Seconds a worker that served a team stays idle for that team's next rollout before it
#: exits.
REUSE_IDLE = 60.0
#: Seconds a rollout waits at most for a worker of its team that is tearing down its last
#: rollout (its trace completed) when no idle one is left, before it starts a new process.
HANDOFF_WAIT = 5.0
#: Seconds after a zygote failed to start during which workers are started as processes.
ZYGOTE_RETRY = 60.0


def team_of(env: dict[str, str]) -> str:
    """Which reusable workers may run a rollout with ``env``: a hash of its team's key (a
    worker never runs a rollout of another key after it ran one)."""
    return hashlib.sha256(str(env.get("HUD_API_KEY") or "").encode()).hexdigest()


@dataclass(eq=False)
class Worker:
    """A ``--serve`` worker process; ``team`` once it ran a rollout (`team_of`)."""

    proc: asyncio.subprocess.Process | ForkedProcess
    team: str | None = None
    idle_since: float = 0.0
    #: Its rollout's trace completed; it is removing the rollout's containers.
    ending: bool = False

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None


class LocalHandle:
    """One rollout on a `Worker`: done when the worker says so (``DONE`` on its stdout, its
    containers removed) or exits."""

    def __init__(self, executor: LocalExecutor, worker: Worker) -> None:
        self.executor = executor
        self.worker = worker
        self.proc = worker.proc
        self.cancelled = False
        self._ended = False

    async def wait(self) -> Outcome:
        from hud.platform.workers.rollout import DONE, ENDING

        assert self.proc.stdout is not None
        try:
            while True:
                line = await self.proc.stdout.readline()
                if not line:  # it exited (or was killed) mid-rollout
                    break
                parts = line.decode(errors="replace").split()
                if parts == [ENDING]:
                    self.worker.ending = True
                elif len(parts) == 3 and parts[0] == DONE:
                    code, reusable = int(parts[1]), parts[2] == "1"
                    self._end(reusable and not self.cancelled)
                    return Outcome(code)
        except (ValueError, OSError):  # a garbled protocol: not reused
            pass
        self._end(False)
        code = await self.proc.wait()
        lost = code < 0 and not self.cancelled  # killed from outside (OOM killer, ...)
        return Outcome(code, lost=lost, detail=f"worker process killed by signal {-code}")

    def _end(self, reusable: bool) -> None:
        if not self._ended:
            self._ended = True
            self.executor._finished(self.worker, reusable)

    async def cancel(self) -> None:
        """SIGTERM: the worker removes its container, reports the trace cancelled and exits
        (a cancelled worker is never reused); killed after `GRACE` seconds."""
        self.cancelled = True
        if self._ended or self.proc.returncode is not None:
            return  # its rollout is over: the process may serve another one now
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        _close(self.proc)
        try:
            await asyncio.wait_for(self.proc.wait(), GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


class LocalExecutor:
    """Worker processes on this machine (``python -m hud.platform.workers.rollout --serve``),
    one rollout at a time each.

    ``warm`` of them are started ahead of need (Python, hud, the Docker client and the
    model SDK loaded), so a rollout does not wait for an interpreter to start. With ``fork``
    (the default) they are forked by a zygote (`hud.platform.workers.zygote`, started on
    first need: it has loaded all that once), so a fresh worker costs a fork, not an
    interpreter's start; when the zygote cannot start or fork, workers are started as
    processes, and a zygote that died is started again on next need. A fresh
    worker holds nothing secret: the spec, the team's key and the environment's secrets
    arrive on its stdin when it is used. After a rollout that completed, its worker (its
    containers removed, its environment back to the base) waits for the next rollout *of
    the same team key* (`team_of`): it never runs another team's. Workers that served a
    team wait ``reuse_idle`` seconds at most, at most ``warm`` of them in all (the longest
    idle close first). A worker whose rollout was cancelled, failed, timed out or crashed
    is not reused: it exits.

    With ``prime`` (``hud platform serve --prime-idle S``), once a rollout of an environment
    ran, up to ``warm`` processes are also *primed* for the
    same environment, team key and runtime config: each starts one fresh container at once
    (`hud.platform.workers.rollout.run_primed`), so the next rollouts of a job do not wait
    for a container to boot (as `DockerRuntime`'s warm pool spares a local run). A primed
    container serves exactly one rollout; primed processes unused for ``prime_idle`` seconds
    are closed (their containers removed)."""

    name = "local"

    def __init__(
        self,
        warm: int = 4,
        *,
        prime: bool = True,
        prime_idle: float = 20.0,
        reuse_idle: float = REUSE_IDLE,
        fork: bool = True,
    ) -> None:
        self.warm = warm
        self.fork = fork
        self.prime = prime and warm > 0
        self.prime_idle = prime_idle
        self.reuse_idle = reuse_idle
        self._idle: list[Worker] = []  # fresh: never ran a rollout
        self._teams: dict[str, list[Worker]] = {}  # idle, each served that team before
        self._primed: dict[str, list[Worker]] = {}
        self._used: dict[str, float] = {}  # primed key -> when last launched
        self._spawning = 0
        self._running: set[Worker] = set()
        #: Launches of a team waiting for one of its ending workers (`HANDOFF_WAIT`).
        self._waiting: dict[str, list[asyncio.Future[Worker | None]]] = {}
        self._closed = False
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._workdir = tempfile.mkdtemp(prefix="hud-workers-")
        self._zygote: Zygote | None = None
        self._zygote_start: asyncio.Task[Zygote | None] | None = None
        self._zygote_failed = -ZYGOTE_RETRY

    async def _spawn(self) -> Worker:
        """A fresh worker: forked by the zygote (started on first need), else a new process."""
        if self.fork:
            zygote = await self._zygote_up()
            if zygote is not None:
                try:
                    return Worker(await zygote.fork())
                except Exception as exc:
                    log.warning("forking a worker failed (%s); starting a process instead", exc)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hud.platform.workers.rollout",
            "--serve",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=_base_env(),
            cwd=self._workdir,
            preexec_fn=die_with_parent,  # a killed platform takes its workers along
        )
        return Worker(proc)

    async def _zygote_up(self) -> Zygote | None:
        """The running zygote: started now if there is none (or it died); None while a start
        that failed is recent (`ZYGOTE_RETRY`)."""
        if self._zygote is not None and self._zygote.alive:
            return self._zygote
        if self._zygote_start is None or self._zygote_start.done():
            if time.monotonic() - self._zygote_failed < ZYGOTE_RETRY or self._closed:
                return None
            if self._zygote is not None:  # it died: its workers died with it
                self._zygote.close(kill=True)
                self._zygote = None
            self._zygote_start = asyncio.get_running_loop().create_task(self._start_zygote())
        return await asyncio.shield(self._zygote_start)

    async def _start_zygote(self) -> Zygote | None:
        zygote = Zygote(_base_env(), self._workdir)
        try:
            await zygote.start()
        except Exception as exc:
            self._zygote_failed = time.monotonic()
            log.warning("the worker zygote did not start (%s); starting processes instead", exc)
            return None
        if self._closed:
            await zygote.aclose()
            return None
        self._zygote = zygote
        return zygote

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reusable(self) -> int:
        return sum(len(pool) for pool in self._teams.values())

    async def _refill(self, key: str | None, prime: dict[str, Any] | None) -> None:
        """Top up the fresh warm processes (fewer once some are primed, or busy or idle
        for a team: those serve again) and, for ``key``, the primed ones."""
        plain = 1 if self._primed else max(1, self.warm - len(self._running) - self._reusable())
        while len(self._idle) + self._spawning < plain and not self._closed:
            self._spawning += 1
            try:
                worker = await self._spawn()
            finally:
                self._spawning -= 1
            if self._closed:
                _close(worker.proc)
                return
            self._idle.append(worker)
        if key is None or prime is None:
            return
        pool = self._primed.setdefault(key, [])
        while len(pool) < self.warm and key in self._primed and not self._closed:
            worker = await self._spawn()
            assert worker.proc.stdin is not None
            worker.proc.stdin.write(json.dumps({"prime": prime}).encode() + b"\n")
            await worker.proc.stdin.drain()
            pool.append(worker)
        self._ensure_sweeper()

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        """Close primed processes whose environment ran nothing for ``prime_idle`` s, and
        team workers idle for ``reuse_idle`` s."""
        while (self._primed or self._teams) and not self._closed:
            waits = [self.reuse_idle] if self._teams else []
            waits += [self.prime_idle] if self._primed else []
            await asyncio.sleep(min(*waits, 10.0) / 2)
            now = time.monotonic()
            for key in [k for k, at in self._used.items() if now - at > self.prime_idle]:
                self._used.pop(key, None)
                for worker in self._primed.pop(key, []):
                    _close(worker.proc)
            for team, pool in list(self._teams.items()):
                for worker in [w for w in pool if now - w.idle_since > self.reuse_idle]:
                    pool.remove(worker)
                    _close(worker.proc)
                if not pool:
                    self._teams.pop(team, None)

    @staticmethod
    def _take(pool: list[Worker] | None) -> Worker | None:
        while pool:
            candidate = pool.pop()  # the most recently used (its caches are warmest)
            if candidate.alive:
                return candidate
        return None

    def _finished(self, worker: Worker, reusable: bool) -> None:
        """``worker``'s rollout ended (its containers are gone): it runs its team's next
        rollout (one waiting for it, or the next to come), or it is closed."""
        self._running.discard(worker)
        worker.ending = False
        waiting = [f for f in self._waiting.get(worker.team or "", []) if not f.done()]
        if not reusable or self._closed or not worker.alive or worker.team is None:
            _close(worker.proc)
            if waiting:  # the one it waited for is gone: it starts a process now
                waiting[0].set_result(None)
            return
        if waiting:
            waiting[0].set_result(worker)
            return
        worker.idle_since = time.monotonic()
        self._teams.setdefault(worker.team, []).append(worker)
        while self._reusable() > self.warm:  # bounded: the longest idle goes
            team, oldest = min(
                ((t, w) for t, pool in self._teams.items() for w in pool),
                key=lambda tw: tw[1].idle_since,
            )
            self._teams[team].remove(oldest)
            if not self._teams[team]:
                del self._teams[team]
            _close(oldest.proc)
        self._ensure_sweeper()

    async def launch(self, spec: dict[str, Any], env: dict[str, str]) -> LocalHandle:
        team = team_of(env)
        key, prime = _prime_of(spec, env) if self.prime else (None, None)
        worker = self._take(self._primed.get(key)) if key else None
        if worker is None:
            worker = self._take(self._teams.get(team))
            if team in self._teams and not self._teams[team]:
                del self._teams[team]
        if worker is None:
            worker = self._take(self._idle)
        if worker is None:
            worker = await self._handoff(team)
        if worker is None:
            worker = await self._spawn()
        worker.team = team
        self._running.add(worker)
        if key is not None:
            self._used[key] = time.monotonic()
            if len(self._primed) > 2:  # keep the two environments used last
                for old in sorted(self._used, key=self._used.__getitem__)[:-2]:
                    self._used.pop(old, None)
                    for extra in self._primed.pop(old, []):
                        _close(extra.proc)
        self._background(self._refill(key, prime))
        handle = LocalHandle(self, worker)
        assert worker.proc.stdin is not None
        try:
            worker.proc.stdin.write(json.dumps({**spec, "environ": env}).encode() + b"\n")
            await worker.proc.stdin.drain()
        except (ConnectionError, RuntimeError):  # it died meanwhile: wait() reports it
            pass
        return handle

    async def _handoff(self, team: str) -> Worker | None:
        """A worker of ``team`` that is tearing down its completed rollout, once it is done
        (sooner than a new process would be ready); None when there is none to wait for."""
        waiting = self._waiting.setdefault(team, [])
        ending = sum(1 for w in self._running if w.team == team and w.ending)
        if ending <= sum(1 for f in waiting if not f.done()):
            if not waiting:
                self._waiting.pop(team, None)
            return None
        future: asyncio.Future[Worker | None] = asyncio.get_running_loop().create_future()
        waiting.append(future)
        try:
            worker = await asyncio.wait_for(future, HANDOFF_WAIT)
        except TimeoutError:
            worker = None
        except BaseException:  # the launch was cancelled: a worker handed over meanwhile ends
            if future.done() and not future.cancelled() and future.result() is not None:
                _close(future.result().proc)  # type: ignore[union-attr]
            raise
        finally:
            waiting.remove(future)
            if not waiting:
                self._waiting.pop(team, None)
        return worker if worker is not None and worker.alive else None

    async def aclose(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        idle, self._idle = self._idle, []
        for pool in [*self._primed.values(), *self._teams.values()]:
            idle += pool
        self._primed, self._teams = {}, {}
        for worker in idle:
            _close(worker.proc)
        for worker in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.proc.wait(), 10)
            if worker.alive:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()
        if self._zygote_start is not None:
            self._zygote_start.cancel()
        if self._zygote is not None:  # it exits once its running workers have
            await self._zygote.aclose()


def _close(proc: asyncio.subprocess.Process | ForkedProcess) -> None:
    """End a worker between rollouts: an empty stdin makes it exit (a primed one removes
    its container first)."""
    if proc.stdin is not None and proc.returncode is None:
        with contextlib.suppress(Exception):
            proc.stdin.close()


def _prime_of(spec: dict[str, Any], env: dict[str, str]) -> tuple[str | None, Any]:
    """Which primed workers can serve ``spec`` (same runtime, environment secrets and team
    key), and the prime message that makes more of them."""
    runtime = spec.get("runtime")
    config = (runtime or {}).get("runtime_config") or {}
    if not isinstance(config, dict) or not config.get("image") or config.get("compose"):
        return None, None
    label = env.get(SESSION_ENV) or ""
    prime = {
        "runtime": runtime,
        "label": label.rsplit(":", 1)[0] + ":warm" if label else None,
        "agent_type": (spec.get("agent") or {}).get("type"),
    }
    material = json.dumps([runtime, env.get("HUD_API_KEY"), prime["label"]], sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest(), prime


#: What a worker process inherits from the platform's environment (no keys).
PASS_THROUGH = ("PATH", "HOME", "PYTHONPATH", "DOCKER_HOST", "DOCKER_CONFIG", "TMPDIR", "LANG")


def _base_env() -> dict[str, str]:
    """A fresh worker's (and the zygote's) environment: `PASS_THROUGH` only."""
    return {k: os.environ[k] for k in PASS_THROUGH if os.environ.get(k)}
