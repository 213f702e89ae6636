"""Hosted rollouts as Ray tasks: ``hud platform serve --ray ADDRESS`` (a cluster started with
``ray start --head`` and ``ray start --address``). Each rollout is one Ray task asking for
``cpus`` CPUs (plus any custom ``resources``) that runs the rollout worker process
(`hud.platform.workers.rollout`) on whichever node Ray picks; the node needs this ``hud``
installed and a Docker daemon. Ray does not retry the task itself: a task lost with its node
is reported lost to the scheduler (`hud.platform.services.rollouts`), which runs the rollout
again and says so in its trace. The worker process dies with the Ray worker that started it
(``PR_SET_PDEATHSIG``), and the Docker watchdog then removes its container.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from typing import Any

from hud.platform.services.rollouts import Outcome

#: Seconds a cancelled rollout gets to remove its container before its process is killed.
GRACE = 4.0


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    import ctypes
    import signal

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def run_rollout_process(spec_json: str, env: dict[str, str]) -> int:
    """The body of a Ray task: run the rollout worker process to its end. Ray's cancel
    (``KeyboardInterrupt`` here) stops it the way a local cancel does (SIGTERM)."""
    import subprocess
    import sys

    try:
        import ray

        node = ray.get_runtime_context().get_node_id()
    except Exception:
        node = None
    proc = subprocess.Popen(
        [sys.executable, "-m", "hud.platform.workers.rollout"],
        stdin=subprocess.PIPE,
        env={**env, "HUD_WORKER_NODE": node or ""},
        preexec_fn=die_with_parent,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(spec_json.encode())
        proc.stdin.close()
        return proc.wait()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise


class RayHandle:
    def __init__(self, ref: Any) -> None:
        self.ref = ref
        self.cancelled = False

    async def wait(self) -> Outcome:
        import ray
        from ray import exceptions as rex

        try:
            code: Any = await asyncio.to_thread(ray.get, self.ref)
            return Outcome(int(code))
        except rex.TaskCancelledError:
            return Outcome(None, detail="cancelled")
        except (rex.RayTaskError, rex.RayActorError) as exc:
            if self.cancelled:
                return Outcome(None, detail="cancelled")
            if isinstance(exc, rex.RayTaskError) and not isinstance(exc, rex.WorkerCrashedError):
                return Outcome(None, detail=str(exc).splitlines()[0][:200])
            return Outcome(None, lost=True, detail=type(exc).__name__)
        except rex.RayError as exc:  # node died, object lost, worker crashed
            return Outcome(None, lost=not self.cancelled, detail=type(exc).__name__)

    async def cancel(self) -> None:
        import ray

        self.cancelled = True
        with contextlib.suppress(Exception):
            await asyncio.to_thread(ray.cancel, self.ref, force=False)


class RayExecutor:
    name = "ray"

    def __init__(
        self,
        address: str,
        *,
        cpus: float | None = None,
        resources: dict[str, float] | None = None,
    ) -> None:
        self.address = address
        self.cpus = cpus if cpus is not None else float(os.environ.get("HUD_RAY_CPUS", "1"))
        self.resources = dict(resources or {})
        self._remote: Any = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> Any:
        async with self._lock:
            if self._remote is None:
                import ray

                def init() -> None:
                    ray.init(
                        address=self.address,
                        namespace="hud-platform",
                        ignore_reinit_error=True,
                        log_to_driver=False,
                        logging_level=logging.ERROR,
                    )

                await asyncio.to_thread(init)
                self._remote = ray.remote(max_retries=0, retry_exceptions=False)(
                    run_rollout_process
                )
            return self._remote

    async def launch(self, spec: dict[str, Any], env: dict[str, str]) -> RayHandle:
        remote = await self._connect()
        options: dict[str, Any] = {"num_cpus": self.cpus}
        if self.resources:
            options["resources"] = self.resources
        ref = remote.options(**options).remote(json.dumps(spec), env)
        return RayHandle(ref)

    async def aclose(self) -> None:
        if self._remote is not None:
            import ray

            with contextlib.suppress(Exception):
                await asyncio.to_thread(ray.shutdown)


def nodes() -> list[dict[str, Any]]:
    """The cluster's live nodes (for ``GET /v2/rollouts/stats``)."""
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]
