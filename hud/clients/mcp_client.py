"""`MCPClient`: list and call the tools of an ``mcp/2025-11-25`` capability.

Built on the official ``mcp`` SDK's `ClientSession`. Transports follow the binding's
``params.transport``: ``streamable-http`` (default for http/https URLs), ``sse``, or ``websocket``
(JSON-RPC text frames, subprotocol ``mcp``; implemented here because recent SDKs dropped it).
``params.auth_token`` is sent as ``Authorization: Bearer <token>``.

The SDK's transports live in anyio task groups that must be entered and left by one task, so
each client runs its session in a task of its own; calls may come from any task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from hud.capabilities import Capability
from hud.protocol.errors import HudError

__all__ = ["MCPClient", "MCPError"]

DEFAULT_TIMEOUT = 30.0
#: Pages of ``tools/list`` followed at most (a server whose cursor never ends cannot hang us).
MAX_TOOL_PAGES = 100


class MCPError(HudError, RuntimeError):
    """The MCP session failed (transport closed, protocol error)."""


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for sub in exc.exceptions:
            out.extend(_leaves(sub))
        return out
    return [exc]


def _connection_failure(exc: BaseException) -> bool:
    """True for errors that mean "could not reach / lost the server" (worth a retry)."""
    for leaf in _leaves(exc):
        if isinstance(leaf, (OSError, EOFError)):
            return True
        names = {cls.__name__ for cls in type(leaf).__mro__}
        if names & {
            "ConnectError",
            "ReadError",
            "WriteError",
            "RemoteProtocolError",
            "ConnectionClosed",
            "InvalidHandshake",
            "ClosedResourceError",
            "EndOfStream",
            "BrokenResourceError",
        }:
            return True
    return False


def _describe(exc: BaseException) -> str:
    leaves = _leaves(exc)
    leaf = leaves[0] if leaves else exc
    return f"{type(leaf).__name__}: {leaf}"


def _dump(model: Any) -> dict[str, Any]:
    """A pydantic model of the SDK as wire JSON (camelCase keys, no nulls)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _parse_message(text: str | bytes) -> Any:
    """A JSON-RPC message of whichever ``mcp`` SDK is installed."""
    import mcp.types as types

    adapter = getattr(types, "jsonrpc_message_adapter", None)
    if adapter is not None:
        try:
            return adapter.validate_json(text, by_name=False)
        except TypeError:  # pydantic without ``by_name``
            return adapter.validate_json(text)
    # older mcp releases: JSONRPCMessage is a RootModel (a plain union where the adapter exists)
    return types.JSONRPCMessage.model_validate_json(text)  # type: ignore[attr-defined,unused-ignore]


@contextlib.asynccontextmanager
async def websocket_streams(
    url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[tuple[Any, Any]]:
    """An MCP client transport over a WebSocket: ``(read_stream, write_stream)`` for a session."""
    import anyio
    from mcp.shared.message import SessionMessage
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
    from websockets.typing import Subprotocol

    ws = await connect(
        url, subprotocols=[Subprotocol("mcp")], additional_headers=headers, max_size=None
    )
    read_send, read_recv = anyio.create_memory_object_stream[Any](0)
    write_send, write_recv = anyio.create_memory_object_stream[Any](0)

    async def reader() -> None:
        async with read_send:
            try:
                async for raw in ws:
                    try:
                        message = _parse_message(raw)
                    except ValueError as exc:
                        await read_send.send(exc)
                        continue
                    await read_send.send(SessionMessage(message))
            except ConnectionClosed:
                pass

    async def writer() -> None:
        async with write_recv:
            async for item in write_recv:
                payload = item.message.model_dump_json(by_alias=True, exclude_none=True)
                await ws.send(payload)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer)
            try:
                yield read_recv, write_send
            finally:
                tg.cancel_scope.cancel()
    finally:
        await ws.close()


@contextlib.asynccontextmanager
async def _streamable_http(url: str, headers: dict[str, str]) -> AsyncIterator[tuple[Any, Any]]:
    try:
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client
    except ImportError:  # mcp < 1.24: the older spelling takes headers directly
        from mcp.client.streamable_http import (  # type: ignore[attr-defined,unused-ignore]
            streamablehttp_client,
        )

        async with streamablehttp_client(url, headers=headers) as streams:
            yield streams[0], streams[1]
        return
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams[0], streams[1]


@contextlib.asynccontextmanager
async def _sse(url: str, headers: dict[str, str]) -> AsyncIterator[tuple[Any, Any]]:
    from mcp.client.sse import sse_client

    async with sse_client(url, headers=headers) as streams:
        yield streams[0], streams[1]


class MCPClient:
    """A connected MCP session (use `MCPClient.connect`)."""

    def __init__(self, capability: Capability, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.capability = capability
        self.url = capability.url
        params = capability.params
        scheme = urlsplit(self.url).scheme
        default = "websocket" if scheme in ("ws", "wss") else "streamable-http"
        self.transport: str = params.get("transport") or default
        if self.transport not in ("streamable-http", "sse", "websocket"):
            raise ValueError(f"unknown mcp transport {self.transport!r}")
        self.headers: dict[str, str] = {}
        token = params.get("auth_token")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout
        #: The ``initialize`` result as wire JSON (``protocolVersion``, ``serverInfo``, ...).
        self.server: dict[str, Any] = {}
        self._session: Any = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._broken: BaseException | None = None
        self._broken_event = asyncio.Event()

    def __repr__(self) -> str:
        return f"MCPClient({self.url!r}, transport={self.transport!r})"

    @classmethod
    async def connect(
        cls, capability: Capability, *, timeout: float = DEFAULT_TIMEOUT
    ) -> MCPClient:
        """Open a session and run the ``initialize`` handshake.

        Raises `ConnectionError` when the server cannot be reached (so callers may retry).
        """
        client = cls(capability, timeout=timeout)
        await client._start()
        return client

    # -- session task -----------------------------------------------------------------
    def _streams(self) -> contextlib.AbstractAsyncContextManager[tuple[Any, Any]]:
        if self.transport == "websocket":
            return websocket_streams(self.url, self.headers or None)
        if self.transport == "sse":
            return _sse(self.url, self.headers)
        return _streamable_http(self.url, self.headers)

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            self._fail(message)

    def _fail(self, exc: BaseException) -> None:
        if self._broken is None:
            self._broken = exc
        self._broken_event.set()

    async def _run(self, ready: asyncio.Future[None]) -> None:
        from mcp import ClientSession

        try:
            async with self._streams() as (read, write):
                session = ClientSession(read, write, message_handler=self._on_message)
                async with session:
                    result = await session.initialize()
                    self.server = _dump(result)
                    self._session = session
                    if not ready.done():
                        ready.set_result(None)
                    await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            elif not self._stop.is_set():
                self._fail(exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            self._session = None
            if not self._stop.is_set():
                self._fail(MCPError("MCP session ended"))

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._runner = asyncio.create_task(self._run(ready), name=f"mcp-session {self.url}")
        try:
            await asyncio.wait_for(asyncio.shield(ready), self.timeout)
        except BaseException as exc:
            await self.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            if isinstance(exc, TimeoutError):
                raise ConnectionError(
                    f"MCP server at {self.url} did not answer initialize within {self.timeout}s"
                ) from None
            if _connection_failure(exc):
                raise ConnectionError(
                    f"cannot reach MCP server at {self.url}: {_describe(exc)}"
                ) from exc
            raise MCPError(f"MCP handshake with {self.url} failed: {_describe(exc)}") from exc

    async def _call(self, what: str, coro: Any, timeout: float | None) -> Any:
        """Await ``coro`` unless the session breaks first."""
        if self._session is None:
            coro.close()
            raise MCPError(f"MCP session to {self.url} is closed")
        call = asyncio.ensure_future(coro)
        broken = asyncio.ensure_future(self._broken_event.wait())
        try:
            done, _ = await asyncio.wait(
                {call, broken},
                timeout=timeout if timeout is not None else self.timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            broken.cancel()
        if call in done:
            try:
                return call.result()
            except BaseException as exc:
                if _connection_failure(exc):
                    raise MCPError(f"{what}: connection lost: {_describe(exc)}") from exc
                raise
        call.cancel()
        with contextlib.suppress(BaseException):
            await call
        if broken in done:
            reason = _describe(self._broken) if self._broken else "session ended"
            raise MCPError(f"{what}: MCP session to {self.url} broke: {reason}")
        raise TimeoutError(f"{what}: no answer from {self.url} within {timeout or self.timeout}s")

    # -- API ----------------------------------------------------------------------------
    async def list_tools(self) -> list[dict[str, Any]]:
        """Every tool (``name``, ``description``, ``inputSchema``, ...), following pagination."""
        import mcp.types as types

        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            if cursor is None:
                coro = self._session.list_tools() if self._session else _closed()
            else:
                request = types.PaginatedRequestParams(cursor=cursor)
                coro = self._session.list_tools(params=request) if self._session else _closed()
            page = _dump(await self._call("tools/list", coro, None))
            tools.extend(page.get("tools") or [])
            cursor = page.get("nextCursor")
            if not cursor:
                break
        return tools

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Call a tool; returns the ``CallToolResult`` as JSON (``content``, ``isError``, ...).

        A tool that fails reports ``isError: true``; protocol errors raise.
        """
        coro = self._session.call_tool(name, arguments or {}) if self._session else _closed()
        result = _dump(await self._call(f"tools/call {name!r}", coro, timeout))
        result.setdefault("content", [])
        result.setdefault("isError", False)
        return result

    async def close(self) -> None:
        """End the session (idempotent)."""
        self._stop.set()
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            try:
                await asyncio.wait_for(asyncio.shield(runner), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                runner.cancel()
                with contextlib.suppress(BaseException):
                    await runner
            except BaseException:
                pass
        self._session = None

    aclose = close

    async def __aenter__(self) -> MCPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _closed() -> Any:
    raise MCPError("MCP session is closed")


def text_of(result: dict[str, Any]) -> str:
    """The text blocks of a ``CallToolResult`` joined by newlines."""
    parts = [
        block.get("text", "")
        for block in result.get("content") or []
        if isinstance(block, dict) and block.get("type") == "text"
    ]
    return "\n".join(parts)
