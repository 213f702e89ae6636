"""`Environment`: a named set of task templates and published capabilities."""

from __future__ import annotations

import contextvars
import inspect
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hud.capabilities import Capability
from hud.environment.template import Template

if TYPE_CHECKING:
    from hud.environment.workspace import Workspace

log = logging.getLogger("hud.environment")

Hook = Callable[[], Awaitable[Any]]
#: ``params(session_id)`` -> extra ``params`` for one capability in that session's ``hello``.
SessionParams = Callable[[str | None], dict[str, Any]]

#: The control session a task belongs to, set while the task runs (its template's setup and
#: grading) and while its per-task hooks (task start/ready, teardown) run.
current_session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hud_current_session_id", default=None
)
#: The workspace limits the starting task's row asks for (``tasks.start`` ``limits``), set
#: while its task-start hooks run.
current_task_limits: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "hud_current_task_limits", default=None
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
        self._task_starts: list[Callable[[], Any]] = []
        self._task_readies: list[Callable[[], Any]] = []
        self._task_gradings: list[Callable[[], Any]] = []
        self._session_params: dict[str, list[SessionParams]] = {}
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

    def session_params(self, name: str, fn: SessionParams) -> SessionParams:
        """Make ``hello`` replies merge ``fn(session_id)`` into capability ``name``'s params
        (per-session values, e.g. the SSH user naming a rollout's workspace)."""
        self._session_params.setdefault(name, []).append(fn)
        return fn

    def binding(self, cap: Capability, session_id: str | None = None) -> dict[str, Any]:
        """``cap``'s manifest binding as control session ``session_id`` sees it."""
        binding = cap.to_binding()
        for fn in self._session_params.get(cap.name, ()):
            try:
                binding["params"].update(fn(session_id))
            except Exception:
                log.exception("session params for %r failed", cap.name)
        return binding

    def workspace(
        self, root: Path | str, *, name: str = "shell", track_files: bool | None = None, **kw: Any
    ) -> Workspace:
        """A `Workspace` on ``root`` published as capability ``name`` (and ``filetracking``
        when tracking files; default: ``HUD_FILE_TRACKING_ENABLED``): started by an initialize
        hook, stopped by a shutdown hook. Each task's rollout starts from the root as prepared
        and never sees another rollout's files (see `hud.environment.workspace.sessions`)."""
        from hud.environment.workspace import Workspace

        if track_files is None:
            from hud.settings import settings

            track_files = settings().file_tracking_enabled
        ws = Workspace(root, track_files=track_files, **kw)

        async def start_workspace() -> None:
            await ws.start()
            self.add_capability(ws.capability(name))
            if ws.tracks_files:
                self.add_capability(ws.file_tracking_capability())

        async def stop_workspace() -> None:
            self.remove_capability(name)
            if ws.tracks_files:
                self.remove_capability("filetracking")
            await ws.stop()

        start_workspace.__name__ = f"start_workspace_{name}"
        stop_workspace.__name__ = f"stop_workspace_{name}"
        self.initialize(start_workspace)
        self.shutdown(stop_workspace)
        self.task_start(
            lambda: ws.begin_session(current_session_id.get(), current_task_limits.get())
        )
        self.task_ready(lambda: ws.session_ready(current_session_id.get()))
        self.task_grading(lambda: ws.check_session(current_session_id.get()))
        self.teardown(lambda: ws.end_session(current_session_id.get()))
        self.session_params(name, ws.session_params)
        if track_files:
            self.session_params("filetracking", ws.tracking_params)
        return ws

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

    def task_start(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register a per-task hook run when a task starts, before its template runs; a
        failure fails the start (the task's teardown hooks then run)."""
        self._task_starts.append(fn)
        return fn

    def task_ready(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register a per-task hook run once a template yielded its prompt (setup done)."""
        self._task_readies.append(fn)
        return fn

    def task_grading(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """Register a per-task hook run before a task is graded; a failure makes the grade
        an error (e.g. the rollout broke its workspace's limits)."""
        self._task_gradings.append(fn)
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

    async def run_task_start(self, session_id: str | None) -> None:
        """Run task-start hooks (registration order) with the session id set; errors raise."""
        await self._run_task_hooks(self._task_starts, session_id, raise_errors=True)

    async def run_task_ready(self, session_id: str | None) -> None:
        """Run task-ready hooks with the session id set; errors are logged."""
        await self._run_task_hooks(self._task_readies, session_id, raise_errors=False)

    async def run_task_grading(self, session_id: str | None) -> None:
        """Run before-grade hooks with the session id set; errors raise."""
        await self._run_task_hooks(self._task_gradings, session_id, raise_errors=True)

    async def _run_task_hooks(
        self, hooks: list[Callable[[], Any]], session_id: str | None, *, raise_errors: bool
    ) -> None:
        token = current_session_id.set(session_id)
        try:
            for hook in hooks:
                try:
                    result = hook()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    if raise_errors:
                        raise
                    log.exception("task hook %r failed", getattr(hook, "__name__", hook))
        finally:
            current_session_id.reset(token)

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
