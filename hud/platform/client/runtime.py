"""`HUDRuntime`: the ``--runtime hud`` provider (spec platform.md §7, runtimes-agents.md §1.5).

Per rollout: ``POST <runtime url>/runtime/sessions {"environment", "trace_id"}`` -> ``{"id"}``; a
loopback listener whose every TCP connection (the control connection and each capability
tunnel) becomes one WebSocket ``/runtime/tunnels/<id>`` carrying raw bytes in binary frames;
on exit the listener closes and ``DELETE /runtime/sessions/<id>`` ends the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from hud.eval.runtime import Runtime
from hud.protocol.errors import HudError

log = logging.getLogger("hud.platform.runtime")

#: Bytes read from a local connection per frame.
CHUNK = 256 * 1024
#: Row ``runtime_config`` fields a hosted session cannot honour.
REFUSED = ("gpu", "os", "tpu", "limits")


class HUDRuntimeError(HudError, RuntimeError):
    """A runtime session could not be started."""


def ws_base(url: str) -> str:
    url = url.rstrip("/")
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


class HUDRuntime:
    """Provider of one platform runtime session per rollout."""

    def __init__(
        self,
        *,
        runtime_url: str | None = None,
        api_key: str | None = None,
        ready_timeout: float = 300.0,
    ) -> None:
        from hud.settings import settings

        current = settings()
        self.runtime_url = (runtime_url or current.runtime_url).rstrip("/")
        self.api_key = api_key or current.api_key
        if not self.api_key:
            raise HUDRuntimeError("HUDRuntime needs HUD_API_KEY (run `hud login`)")
        self.ready_timeout = ready_timeout

    def __repr__(self) -> str:
        return f"HUDRuntime({self.runtime_url!r})"

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def __call__(self, task: Any) -> contextlib.AbstractAsyncContextManager[Runtime]:
        return self._acquire(task)

    @contextlib.asynccontextmanager
    async def _acquire(self, task: Any) -> AsyncIterator[Runtime]:
        config = getattr(task, "runtime_config", None)
        if config is not None:
            asked = [k for k in REFUSED if getattr(config, k, None)]
            if asked:
                raise HUDRuntimeError(
                    f"--runtime hud cannot honour runtime_config {', '.join(asked)} of {task.slug}"
                )
        body = {"environment": task.env, "trace_id": str(uuid.uuid4())}
        async with httpx.AsyncClient(timeout=30) as http:
            try:
                reply = await http.post(
                    f"{self.runtime_url}/runtime/sessions", json=body, headers=self._headers
                )
            except httpx.HTTPError as exc:
                raise HUDRuntimeError(f"cannot reach the runtime service: {exc}") from None
            if reply.status_code >= 300:
                try:
                    detail = reply.json().get("detail")
                except Exception:
                    detail = None
                raise HUDRuntimeError(
                    f"runtime session refused ({reply.status_code}): {detail or reply.text[:200]}"
                )
            session_id = reply.json().get("id")
            if not isinstance(session_id, str):
                raise HUDRuntimeError("the runtime service sent a session without an id")
            tunnel_url = f"{ws_base(self.runtime_url)}/runtime/tunnels/{session_id}"
            writers: set[asyncio.StreamWriter] = set()

            async def on_connect(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter
            ) -> None:
                writers.add(writer)
                try:
                    await self._bridge(tunnel_url, reader, writer)
                finally:
                    writers.discard(writer)

            server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            try:
                yield Runtime(
                    f"tcp://127.0.0.1:{port}",
                    params={
                        "session_id": session_id,
                        "gateway_url": self.runtime_url,
                        "ready_timeout": self.ready_timeout,
                    },
                )
            finally:
                server.close()
                for writer in list(writers):  # EOF ends each bridge
                    writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 5)
                with contextlib.suppress(Exception):
                    await asyncio.shield(
                        http.delete(
                            f"{self.runtime_url}/runtime/sessions/{session_id}",
                            headers=self._headers,
                            timeout=15,
                        )
                    )

    async def _bridge(
        self, url: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        import websockets

        try:
            async with websockets.connect(
                url, additional_headers=self._headers, max_size=None, open_timeout=30
            ) as ws:

                async def up() -> None:
                    while True:
                        data = await reader.read(CHUNK)
                        if not data:
                            return
                        await ws.send(data)

                async def down() -> None:
                    async for message in ws:
                        writer.write(message if isinstance(message, bytes) else message.encode())
                        await writer.drain()

                tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
                try:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
        except Exception as exc:  # refused / closed: the local peer sees EOF and retries
            log.debug("tunnel %s: %s", url, exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
