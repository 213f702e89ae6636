"""`WarmPool`: substrates started ahead of need, shared by `SubprocessRuntime` (forked env
processes) and `DockerRuntime` (containers).

Per key (an env name, a container config), a `take` hands out a ready item when there is one
(else starts one) and then starts more in the background, up to the highest concurrency seen
for that key (at most ``limit``), so the next rollout rarely waits for a start.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class WarmPool(Generic[T]):
    """Items started ahead of need, per key. ``discard`` disposes of an item never handed out."""

    def __init__(self, limit: int, discard: Callable[[T], Awaitable[None]] | None = None) -> None:
        self.limit = limit
        self.discard = discard
        self._ready: dict[str, deque[asyncio.Future[T]]] = {}
        self._in_use: dict[str, int] = {}
        self._peak: dict[str, int] = {}

    def in_use(self, key: str) -> int:
        return self._in_use.get(key, 0)

    async def take(self, key: str, start: Callable[[], Awaitable[T]]) -> T:
        """A started item for ``key`` (counted in use until `release`); refills the pool.

        Raises what ``start`` raised for the item handed out (then nothing is in use).
        With ``limit`` 0 nothing is started ahead.
        """
        pool = self._ready.setdefault(key, deque())
        future = pool.popleft() if pool else asyncio.ensure_future(start())
        # One spare at first; then as many as rollouts were seen holding an item at once
        # (takes still waiting do not count: a burst of them must not start a burst of spares).
        target = min(self.limit, max(1, self._peak.get(key, 0))) if self.limit else 0
        while len(pool) < target:
            pool.append(asyncio.ensure_future(start()))
        try:
            item = await future
        except BaseException:
            if not future.done():
                future.cancel()
                with contextlib.suppress(BaseException):
                    await self._dispose(await future)
            raise
        in_use = self._in_use[key] = self._in_use.get(key, 0) + 1
        self._peak[key] = max(self._peak.get(key, 0), in_use)
        return item

    def release(self, key: str) -> None:
        """One item of ``key`` is no longer in use."""
        if self._in_use.get(key):
            self._in_use[key] -= 1

    async def aclose(self) -> None:
        """Cancel starts in progress and dispose of every item not handed out."""
        pools, self._ready = self._ready, {}
        futures = [f for pool in pools.values() for f in pool]
        for future in futures:
            future.cancel()
        for result in await asyncio.gather(*futures, return_exceptions=True):
            if not isinstance(result, BaseException):
                await self._dispose(result)

    async def _dispose(self, item: T) -> None:
        if self.discard is not None:
            with contextlib.suppress(Exception):
                await self.discard(item)
