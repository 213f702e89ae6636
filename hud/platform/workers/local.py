"""The embedded executor of ``hud platform serve``: each hosted rollout in a worker process
of its own on this machine (`hud.platform.workers.rollout`), spec on stdin."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from typing import Any

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
    and hud imported), so a rollout does not wait for an interpreter to start. A warm process
    holds nothing secret: the spec, the team's key and the environment's secrets arrive on its
    stdin when it is used."""

    name = "local"

    def __init__(self, warm: int = 4) -> None:
        self.warm = warm
        self._idle: list[asyncio.subprocess.Process] = []
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

    async def _refill(self) -> None:
        while len(self._idle) < self.warm:
            self._idle.append(await self._spawn())

    async def launch(self, spec: dict[str, Any], env: dict[str, str]) -> LocalHandle:
        proc = None
        while self._idle:
            candidate = self._idle.pop(0)
            if candidate.returncode is None:
                proc = candidate
                break
        if proc is None:
            proc = await self._spawn()
        asyncio.get_running_loop().create_task(self._refill())
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({**spec, "environ": env}).encode())
        await proc.stdin.drain()
        proc.stdin.close()
        return LocalHandle(proc)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for proc in idle:
            if proc.stdin is not None and proc.returncode is None:
                proc.stdin.close()  # an empty spec: the process exits
        for proc in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)


#: What a worker process inherits from the platform's environment (no keys).
PASS_THROUGH = ("PATH", "HOME", "PYTHONPATH", "DOCKER_HOST", "DOCKER_CONFIG", "TMPDIR", "LANG")
