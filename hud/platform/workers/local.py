"""The embedded executor of ``hud platform serve``: each hosted rollout in a worker process
of its own on this machine (`hud.platform.workers.rollout`), spec on stdin."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
import tempfile
import time
from typing import Any

from hud.eval.runtimes.docker import SESSION_ENV
from hud.platform.services.rollouts import Outcome
from hud.platform.workers.ray import die_with_parent

#: Seconds a cancelled worker gets to remove its container before it is killed (its
#: containers are then removed by the Docker watchdog).
GRACE = 4.0


class LocalHandle:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.cancelled = False

    async def wait(self) -> Outcome:
        code = await self.proc.wait()
        lost = code < 0 and not self.cancelled  # killed from outside (OOM killer, ...)
        return Outcome(code, lost=lost, detail=f"worker process killed by signal {-code}")

    async def cancel(self) -> None:
        self.cancelled = True
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


class LocalExecutor:
    """Worker processes on this machine; ``warm`` of them are started ahead of need (Python
    and hud imported), so a rollout does not wait for an interpreter to start. A plain warm
    process holds nothing secret: the spec, the team's key and the environment's secrets
    arrive on its stdin when it is used.

    With ``prime`` (``hud platform serve --prime-idle S``), once a rollout of an environment
    ran, up to ``warm`` processes are also *primed* for the
    same environment, team key and runtime config: each starts one fresh container at once
    (`hud.platform.workers.rollout.run_primed`), so the next rollouts of a job do not wait
    for a container to boot (as `DockerRuntime`'s warm pool spares a local run). A primed
    container serves exactly one rollout; primed processes unused for ``prime_idle`` seconds
    are closed (their containers removed)."""

    name = "local"

    def __init__(self, warm: int = 4, *, prime: bool = True, prime_idle: float = 20.0) -> None:
        self.warm = warm
        self.prime = prime and warm > 0
        self.prime_idle = prime_idle
        self._idle: list[asyncio.subprocess.Process] = []
        self._primed: dict[str, list[asyncio.subprocess.Process]] = {}
        self._used: dict[str, float] = {}  # primed key -> when last launched
        self._spawning = 0
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._workdir = tempfile.mkdtemp(prefix="hud-workers-")

    async def _spawn(self) -> asyncio.subprocess.Process:
        base = {k: os.environ[k] for k in PASS_THROUGH if os.environ.get(k)}
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hud.platform.workers.rollout",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            env=base,
            cwd=self._workdir,
            preexec_fn=die_with_parent,  # a killed platform takes its workers along
        )

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refill(self, key: str | None, prime: dict[str, Any] | None) -> None:
        """Top up the plain warm processes (fewer once some are primed) and, for ``key``,
        the primed ones."""
        plain = 1 if self._primed else self.warm
        while len(self._idle) + self._spawning < plain:
            self._spawning += 1
            try:
                self._idle.append(await self._spawn())
            finally:
                self._spawning -= 1
        if key is None or prime is None:
            return
        pool = self._primed.setdefault(key, [])
        while len(pool) < self.warm and key in self._primed:
            proc = await self._spawn()
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"prime": prime}).encode() + b"\n")
            await proc.stdin.drain()
            pool.append(proc)
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        """Close primed processes whose environment ran nothing for ``prime_idle`` s."""
        while self._primed:
            await asyncio.sleep(min(self.prime_idle, 5.0) / 2)
            now = time.monotonic()
            for key in [k for k, at in self._used.items() if now - at > self.prime_idle]:
                self._used.pop(key, None)
                for proc in self._primed.pop(key, []):
                    _close(proc)

    @staticmethod
    def _take(pool: list[asyncio.subprocess.Process]) -> asyncio.subprocess.Process | None:
        while pool:
            candidate = pool.pop(0)
            if candidate.returncode is None:
                return candidate
        return None

    async def launch(self, spec: dict[str, Any], env: dict[str, str]) -> LocalHandle:
        key, prime = _prime_of(spec, env) if self.prime else (None, None)
        proc = self._take(self._primed.get(key, [])) if key else None
        if proc is None:
            proc = self._take(self._idle) or await self._spawn()
        if key is not None:
            self._used[key] = time.monotonic()
            if len(self._primed) > 2:  # keep the two environments used last
                for old in sorted(self._used, key=self._used.__getitem__)[:-2]:
                    self._used.pop(old, None)
                    for extra in self._primed.pop(old, []):
                        _close(extra)
        self._background(self._refill(key, prime))
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({**spec, "environ": env}).encode() + b"\n")
        await proc.stdin.drain()
        proc.stdin.close()
        return LocalHandle(proc)

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        idle, self._idle = self._idle, []
        for pool in self._primed.values():
            idle += pool
        self._primed = {}
        for proc in idle:
            _close(proc)
        for proc in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 10)


def _close(proc: asyncio.subprocess.Process) -> None:
    """End an unused worker: an empty stdin makes it exit (a primed one removes its
    container first)."""
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
