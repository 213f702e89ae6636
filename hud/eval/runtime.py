"""`Runtime`: the address of a running environment server, and `Provider`, the contract of
whatever places a rollout (`LocalRuntime`, `SubprocessRuntime`, `DockerRuntime`, `Shared`, a
`Runtime` itself, `HarborRuntime`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hud.types.task import Task

__all__ = ["Provider", "Runtime", "RuntimeSession"]


class Provider(Protocol):
    """Maps a task row to an async context manager yielding the `Runtime` the rollout uses
    (entered once per rollout; leaving it tears the substrate down)."""

    def __call__(self, task: Task, /) -> AbstractAsyncContextManager[Runtime]: ...


class RuntimeSession:
    """Per-session hooks a runtime may implement (snapshot/restore between actor and verifier)."""

    def __init__(self, runtime: Runtime, session_id: str) -> None:
        self.runtime = runtime
        self.session_id = session_id

    async def snapshot(self) -> Any:
        return None

    async def restore(self, snapshot: Any) -> None:
        return None


class Runtime:
    """An already-running server at ``url``; also a provider that yields itself."""

    __slots__ = ("_config", "_params", "_url")
    _url: str
    _params: dict[str, Any]
    _config: Any

    def __init__(self, url: str, params: dict[str, Any] | None = None, config: Any = None) -> None:
        if not isinstance(url, str) or not url:
            raise ValueError("Runtime needs a control URL such as tcp://127.0.0.1:8765")
        object.__setattr__(self, "_url", url if "://" in url else f"tcp://{url}")
        object.__setattr__(self, "_params", dict(params or {}))
        object.__setattr__(self, "_config", config)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Runtime is immutable")

    @property
    def url(self) -> str:
        return self._url

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def config(self) -> Any:
        return self._config

    def __repr__(self) -> str:
        return f"Runtime({self._url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Runtime) and (self._url, self._params) == (
            other._url,
            other._params,
        )

    def __hash__(self) -> int:
        return hash(self._url)

    def session(self, session_id: str) -> RuntimeSession:
        return RuntimeSession(self, session_id)

    def __call__(self, task: Any = None) -> AbstractAsyncContextManager[Runtime]:
        return self._provide()

    @contextlib.asynccontextmanager
    async def _provide(self) -> AsyncIterator[Runtime]:
        yield self
