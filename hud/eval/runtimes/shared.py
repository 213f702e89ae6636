"""`Shared`: lease one substrate per (env, runtime_config) to several rollouts at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from hud.eval.runtime import Runtime
from hud.eval.task import Task


class _Slot:
    def __init__(self, width: int) -> None:
        self.sem = asyncio.Semaphore(width)
        self.lock = asyncio.Lock()
        self.runtime: Runtime | None = None
        self.cm: Any = None


class Shared:
    """Wrap a provider: the first lease boots a substrate, later leases reuse it (at most
    ``width`` at a time); everything is torn down when the outermost ``async with`` exits."""

    def __init__(self, inner: Any, *, width: int) -> None:
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.inner = inner
        self.width = width
        self._depth = 0
        self._slots: dict[str, _Slot] = {}

    async def __aenter__(self) -> Shared:
        self._depth += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            slots, self._slots = self._slots, {}
            for slot in slots.values():
                if slot.cm is not None:
                    with contextlib.suppress(Exception):
                        await slot.cm.__aexit__(None, None, None)

    @staticmethod
    def key(task: Task) -> str:
        config = task.runtime_config.model_dump(mode="json") if task.runtime_config else None
        return f"{task.env}|{json.dumps(config, sort_keys=True)}"

    def __call__(self, task: Task) -> contextlib.AbstractAsyncContextManager[Runtime]:
        return self._lease(task)

    @contextlib.asynccontextmanager
    async def _lease(self, task: Task) -> AsyncIterator[Runtime]:
        if self._depth == 0:
            raise RuntimeError("Shared leases need an enclosing `async with Shared(...)`")
        slot = self._slots.setdefault(self.key(task), _Slot(self.width))
        async with slot.sem:
            async with slot.lock:
                if slot.runtime is None:
                    slot.cm = self.inner(task)
                    slot.runtime = await slot.cm.__aenter__()
            yield slot.runtime
