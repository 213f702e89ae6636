"""`Environment`: a named set of task templates and published capabilities."""

from __future__ import annotations

import contextvars
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hud.capabilities import Capability
from hud.environment.template import Template

log = logging.getLogger("hud.environment")

Hook = Callable[[], Awaitable[Any]]

#: The control session a task belongs to, set while its teardown hooks run.
current_session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hud_current_session_id", default=None
)


class Environment:
    """Templates (``@env.template``), lifecycle hooks and capabilities of one environment."""

    def __init__(
        self,
        name: str = "environment",
        *,
        version: str = "0.0.1",
        capabilities: list[Capability] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.capabilities: list[Capability] = []
        self.tasks: dict[str, Template] = {}
        self._initializers: list[Hook] = []
        self._shutdowns: list[Hook] = []
        self._teardowns: list[Callable[[], Any]] = []
        self._started = False
        for cap in capabilities or ():
            self.add_capability(cap)

    def __repr__(self) -> str:
        return f"Environment({self.name!r}, version={self.version!r}, tasks={list(self.tasks)})"

    @property
    def templates(self) -> dict[str, Template]:
        return self.tasks

    @property
    def started(self) -> bool:
        return self._started

    # -- templates -------------------------------------------------------------------
    def template(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        id: str | None = None,
        description: str = "",
        input: Any = None,
        returns: Any = None,
        solution: Any = None,
    ) -> Any:
        """Register an async generator function as a task template.

        ``solution`` is the reference solution used by the ``oracle`` agent: a literal answer,
        or a (possibly async) callable taking the run and returning the answer.
        """

        def register(func: Callable[..., Any]) -> Template:
            if not inspect.isasyncgenfunction(func):
                raise TypeError(
                    f"@env.template needs an async generator function (async def with yield); "
                    f"{getattr(func, '__name__', func)!r} is not one"
                )
            tid = id or func.__name__
            if tid in self.tasks:
                raise ValueError(f"duplicate template id {tid!r} in environment {self.name!r}")
            tmpl = Template(
                self,
                func,
                id=tid,
                description=description,
                input=input,
                returns=returns,
                solution=solution,
            )
            self.tasks[tid] = tmpl
            return tmpl

        if fn is not None:
            return register(fn)
        return register

    # -- capabilities ----------------------------------------------------------------
    def add_capability(self, cap: Capability) -> Capability:
        if not isinstance(cap, Capability):
            raise TypeError(f"add_capability needs a Capability, got {type(cap).__name__}")
        if not cap.url:
            raise ValueError(f"capability {cap.name!r} has an empty url")
        if self._started:
            log.info("capability %r added after start; new hello replies include it", cap.name)
        for i, existing in enumerate(self.capabilities):
            if existing.name == cap.name:
                self.capabilities[i] = cap
                return cap
        self.capabilities.append(cap)
        return cap

    def capability(self, name: str) -> Capability:
        for cap in self.capabilities:
            if cap.name == name:
                return cap
        raise KeyError(f"unknown capability: {name!r}")

    def remove_capability(self, name: str) -> None:
        self.capabilities = [c for c in self.capabilities if c.name != name]

    # -- lifecycle -------------------------------------------------------------------
    def initialize(self, fn: Hook) -> Hook:
        """Register an async no-argument hook run by `start` (registration order)."""
        self._initializers.append(fn)
        return fn

    def shutdown(self, fn: Hook) -> Hook:
        """Register an async no-argument hook run by `stop` (reverse order)."""
        self._shutdowns.append(fn)
        return fn

    def teardown(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register a per-task hook run when a task ends (graded, cancelled or at shutdown)."""
        self._teardowns.append(fn)
        return fn

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        for hook in self._initializers:
            await hook()

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        for hook in reversed(self._shutdowns):
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook %r failed", getattr(hook, "__name__", hook))

    async def run_teardown(self, session_id: str | None) -> None:
        token = current_session_id.set(session_id)
        try:
            for hook in self._teardowns:
                try:
                    result = hook()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("teardown hook %r failed", getattr(hook, "__name__", hook))
        finally:
            current_session_id.reset(token)

    # -- serving ---------------------------------------------------------------------
    async def serve(self, host: str = "127.0.0.1", port: int = 8765, **kwargs: Any) -> None:
        """Serve the control channel until cancelled (alias of `hud.environment.server.serve`)."""
        from hud.environment.server import serve

        await serve(self, host, port, **kwargs)
