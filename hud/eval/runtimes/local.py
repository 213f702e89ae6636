"""`LocalRuntime`: serve the environment in this process, one server per acquisition."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from hud.environment import Environment, load_environment
from hud.environment.loader import forget_directory
from hud.environment.server import Server
from hud.eval.runtime import Runtime
from hud.eval.task import Task


class LocalRuntime:
    """In-process placement.

    ``source`` is a path (re-imported per acquisition, so rollouts share no module state and
    may run concurrently), a live `Environment` (shared; acquisitions are serialized), or a
    ``task -> Environment`` callable.
    """

    def __init__(
        self,
        source: str | Path | Environment | Callable[[Task], Environment],
        *,
        env: str | None = None,
        ready_timeout: float = 120.0,
    ) -> None:
        self.source = source
        self.env_name = env
        self.ready_timeout = ready_timeout
        self._lock = asyncio.Lock() if isinstance(source, Environment) else None

    def __repr__(self) -> str:
        return f"LocalRuntime({self.source!r})"

    def _environment(self, task: Task) -> Environment:
        source = self.source
        if isinstance(source, Environment):
            return source
        if isinstance(source, (str, Path)):
            path = Path(source).resolve()
            forget_directory(path if path.is_dir() else path.parent)
            return load_environment(path, name=self.env_name or task.env)
        env = source(task)
        if not isinstance(env, Environment):
            raise TypeError(f"LocalRuntime factory returned {type(env).__name__}")
        return env

    def __call__(self, task: Task) -> contextlib.AbstractAsyncContextManager[Runtime]:
        return self._acquire(task)

    @contextlib.asynccontextmanager
    async def _acquire(self, task: Task) -> AsyncIterator[Runtime]:
        if task.runtime_config is not None and task.runtime_config.needs_container:
            raise ValueError(
                f"task {task.slug} asks for a container (runtime_config); LocalRuntime "
                "cannot provide one"
            )
        lock = self._lock or contextlib.nullcontext()
        async with lock:
            env = self._environment(task)
            server = Server(env, "127.0.0.1", 0)
            try:
                await asyncio.wait_for(server.start(), self.ready_timeout)
                yield Runtime(server.url)
            finally:
                await server.close()
