"""`HarborRuntime`: Harbor task rows served by our own server alongside the task's container.

Per rollout: the task image is built (once per content hash), the container (or Compose
project, service ``main``) is started and must pass its healthcheck, and an `Environment` for
that trial is served in this process on ``127.0.0.1``. Its ``shell`` capability is a
`ContainerShell` (SSH into ``docker exec``) so the agent drives a shell in the task's
container; its single template ``run`` prompts with ``instruction.md`` and grades by running
the task's tests after the agent (`Trial.verify`). The template's reference solution (used by
the ``oracle`` agent) places ``solution/`` at ``/solution`` and runs ``solve.sh`` through that
same ``shell`` capability. Whatever happens, the containers are removed on exit.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shlex
import tarfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hud.environment import Environment
from hud.eval.runtime import Runtime
from hud.eval.runtimes.docker import docker_client, in_thread, reap_orphans_once, shielded
from hud.eval.task import Task
from hud.integrations.harbor.shell import ContainerShell
from hud.integrations.harbor.taskdir import HarborTask
from hud.integrations.harbor.trial import Trial, build

if TYPE_CHECKING:
    from hud.eval.run import Run

log = logging.getLogger("hud.harbor")

TEMPLATE_ID = "run"


class HarborEnvironment(Environment):
    """The environment of a group of Harbor tasks; ``provider`` places its rows."""

    def __init__(self, name: str, runtime: HarborRuntime, trial: Trial | None = None) -> None:
        super().__init__(name=name)
        self.provider = runtime
        self.trial = trial
        env = self

        async def run(instruction: str, task: dict[str, Any] | None = None) -> Any:
            answer = yield instruction
            trial = env.trial
            if trial is None:
                raise RuntimeError("Harbor tasks are graded only inside HarborRuntime")
            meta = task or {}
            timeout = float(meta.get("verifier_timeout") or trial.task.verifier_timeout)
            text = "" if answer is None else str(answer)
            yield await trial.verify(text, timeout=timeout)

        self.template(
            run,
            id=TEMPLATE_ID,
            description="A Harbor task: follow the instruction in the task's container",
            solution=oracle_solution,
        )

    def harbor_task(self, task: Task) -> HarborTask:
        return self.provider.lookup(task)


class HarborRuntime:
    """Provider for rows made by `adapt`: one fresh trial (containers + server) per rollout."""

    def __init__(self, *, rebuild: bool | None = None) -> None:
        """``rebuild``: build task images again without the layer cache (default: the
        environment variable ``HUD_HARBOR_REBUILD=1``, which `hud eval --rebuild` sets)."""
        if rebuild is None:
            rebuild = os.environ.get("HUD_HARBOR_REBUILD") == "1"
        self.rebuild = rebuild
        self._tasks: dict[tuple[str, str], HarborTask] = {}
        self._envs: dict[str, HarborEnvironment] = {}

    def __repr__(self) -> str:
        return f"HarborRuntime({len(self._tasks)} tasks)"

    def environment(self, name: str) -> HarborEnvironment:
        """The (prototype) environment of group ``name``: templates and the oracle's solution."""
        env = self._envs.get(name)
        if env is None:
            env = self._envs[name] = HarborEnvironment(name, self)
        return env

    def register(self, row: Task, task: HarborTask) -> None:
        self._tasks[(row.env, row.slug)] = task
        row._env = self.environment(row.env)

    def lookup(self, row: Task) -> HarborTask:
        try:
            return self._tasks[(row.env, row.slug)]
        except KeyError:
            raise ValueError(
                f"task {row.slug} ({row.env}) was not loaded from a Harbor task directory"
            ) from None

    def __call__(self, task: Task) -> contextlib.AbstractAsyncContextManager[Runtime]:
        return self._acquire(task)

    async def __aenter__(self) -> HarborRuntime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    @contextlib.asynccontextmanager
    async def _acquire(self, row: Task) -> AsyncIterator[Runtime]:
        from hud.environment.server import Server

        harbor_task = self.lookup(row)
        await in_thread(docker_client)
        await in_thread(reap_orphans_once)
        limits = row.runtime_config.limits if row.runtime_config else None
        startup = float(limits.startup_timeout_s) if limits and limits.startup_timeout_s else None
        startup = startup or harbor_task.build_timeout
        began = time.monotonic()
        image = await build(harbor_task, timeout=startup, rebuild=self.rebuild)
        trial = Trial(harbor_task, image)
        try:
            await trial.start(timeout=max(1.0, startup - (time.monotonic() - began)))
            shell = ContainerShell(
                trial.container,
                login=trial.default_user,
                user=harbor_task.agent_user,
                workdir=harbor_task.workdir,
                shell=trial.shell,
            )
            await shell.start()
            env = HarborEnvironment(row.env, self, trial)
            env.add_capability(shell.capability())
            server = Server(env, "127.0.0.1", 0)
            try:
                await server.start()
                yield Runtime(server.url, params={"container": trial.container})
            finally:
                await shielded(server.close())
                await shielded(shell.close())
        finally:
            await shielded(trial.stop())


# -- the oracle ----------------------------------------------------------------------------------
def _tar(entries: dict[str, Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, path in entries.items():
            tar.add(str(path), arcname=name, recursive=True)
    return buf.getvalue()


async def oracle_solution(run: Run) -> str:
    """Harbor's oracle through the ``shell`` capability: ``solution/`` -> ``/solution`` (as
    root), then ``solve.sh`` as the agent user with ``[solution].env``, output to
    ``/logs/agent/oracle.txt``. Returns a one-line summary as the answer."""
    import asyncssh

    if run.client is None or run.task is None:
        raise RuntimeError("the Harbor oracle needs a connected run of a Harbor task")
    env = run.task.environment
    if not isinstance(env, HarborEnvironment):
        raise RuntimeError(f"task {run.task.slug} is not a Harbor task")
    task = env.harbor_task(run.task)
    entries: dict[str, Path] = {}
    if task.solution_dir is not None:
        entries.update({p.name: p for p in sorted(task.solution_dir.iterdir())})
    entries.update(task.extra_solution_files)
    if not entries:
        raise RuntimeError(f"Harbor task {task.name} has no solution/solve.sh")
    cap = await run.client.binding("shell")
    params = cap.params
    key = asyncssh.import_private_key(params["client_key"])
    target = cap.url.split("://", 1)[-1].rsplit("@", 1)[-1]
    host, _, port = target.rpartition(":")
    common: dict[str, Any] = {
        "host": host or "127.0.0.1",
        "port": int(port),
        "client_keys": [key],
        "known_hosts": None,
    }
    async with asyncssh.connect(username="root", **common) as root:
        placed = await root.run(
            "rm -rf /solution && mkdir -p /solution && tar -x -C /solution && "
            "chmod -R a+rX /solution && chmod a+x /solution/*.sh",
            input=_tar(entries),
            encoding=None,
        )
        if placed.exit_status != 0:
            stderr = placed.stderr or b""  # bytes: encoding=None
            detail = (
                stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
            ).strip()
            raise RuntimeError(f"placing /solution failed: {detail[-500:]}")
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in task.solution_env.items())
    command = f"{'env ' + exports + ' ' if exports else ''}/solution/{task.solve_script}"
    async with asyncssh.connect(username=str(params.get("user") or "root"), **common) as agent:
        done = await agent.run(f"{command} > /logs/agent/oracle.txt 2>&1")
    return f"solve.sh exited with code {done.exit_status}"
