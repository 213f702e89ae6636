"""The embedded executor of ``hud platform serve``: each hosted rollout in a worker process
of its own on this machine (`hud.platform.workers.rollout`), spec on stdin."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from hud.platform.services.rollouts import Outcome

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
    name = "local"

    async def launch(self, spec: dict[str, Any], env: dict[str, str]) -> LocalHandle:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hud.platform.workers.rollout",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            env=env,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec).encode())
        await proc.stdin.drain()
        proc.stdin.close()
        return LocalHandle(proc)

    async def aclose(self) -> None:
        return None
