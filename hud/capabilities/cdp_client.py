"""`CDPClient`: Chrome DevTools Protocol commands to a page target of a ``cdp/1.3`` capability.

Target choice (wire.md §10): a URL whose path contains ``/devtools/`` is used as-is; else the
target ``params.target_id``; else the first ``page`` listed by ``GET /json``; else a new one from
``PUT /json/new?about:blank``. ``Page``, ``Runtime`` and ``DOM`` are enabled on connect.

Through a tunnel the local host:port differ from the browser's. Chromium only accepts ``Host``
headers naming an IP address or ``localhost``; requests here carry the browser's own address
(from ``capability.native_url``) as ``Host``, and WebSocket URLs the browser hands back are
rewritten to the address we connect to.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import itertools
import json
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from hud.capabilities.capability import Capability

__all__ = ["CDPClient", "CDPError"]

DEFAULT_TIMEOUT = 30.0
#: Events kept for `next_event` before the oldest are dropped.
MAX_EVENTS = 10_000


class CDPError(RuntimeError):
    """A CDP command answered with an error (``code``, ``message``) or the socket closed."""

    def __init__(self, message: str, code: int | None = None, data: Any = None) -> None:
        super().__init__(message if code is None else f"CDP error {code}: {message}")
        self.code = code
        self.data = data


def _netloc(host: str, port: int | None) -> str:
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


def _host_header(native_url: str | None) -> str | None:
    """The ``Host`` the browser expects: its own address, or ``localhost:<port>`` for names."""
    if not native_url:
        return None
    parts = urlsplit(native_url)
    host = parts.hostname
    if not host:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            host = "localhost"
    return _netloc(host, port)


class CDPClient:
    """A WebSocket session with one DevTools target (use `CDPClient.connect`)."""

    def __init__(self, capability: Capability, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.capability = capability
        self.url = capability.url
        self.timeout = timeout
        parts = urlsplit(self.url)
        if not parts.hostname:
            raise ValueError(f"cdp capability URL has no host: {self.url!r}")
        self._connect_host = parts.hostname
        self._connect_port = parts.port or (443 if parts.scheme in ("wss", "https") else 9222)
        self._secure = parts.scheme in ("wss", "https")
        self._host = _host_header(capability.native_url) or _netloc(
            self._connect_host, self._connect_port
        )
        #: The target we are attached to (``id``, ``type``, ``url``, ``webSocketDebuggerUrl``).
        self.target: dict[str, Any] = {}
        self.ws_url: str | None = None
        self._ws: Any = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(MAX_EVENTS)
        self._reader: asyncio.Task[None] | None = None
        self._closed: BaseException | None = None

    def __repr__(self) -> str:
        return f"CDPClient({self.url!r}, target={self.target_id!r})"

    @property
    def target_id(self) -> str | None:
        return self.target.get("id")

    @classmethod
    async def connect(
        cls,
        capability: Capability,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        enable: tuple[str, ...] = ("Page", "Runtime", "DOM"),
    ) -> CDPClient:
        """Pick the target, open its WebSocket and enable ``enable`` domains.

        Raises `ConnectionError` when the browser cannot be reached (so callers may retry).
        """
        client = cls(capability, timeout=timeout)
        try:
            await client._open()
            for domain in enable:
                await client.send(f"{domain}.enable")
        except BaseException:
            await client.close()
            raise
        return client

    # -- target discovery ---------------------------------------------------------------
    def _http_base(self) -> str:
        scheme = "https" if self._secure else "http"
        return f"{scheme}://{_netloc(self._connect_host, self._connect_port)}"

    def _local_ws(self, ws_url: str) -> str:
        """``ws_url`` naming the browser's own address (sent as ``Host``; we connect elsewhere)."""
        parts = urlsplit(ws_url)
        scheme = "wss" if self._secure else "ws"
        return urlunsplit((scheme, self._host, parts.path, parts.query, ""))

    async def _http(self, method: str, path: str) -> Any:
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as http:
                response = await http.request(
                    method, self._http_base() + path, headers={"Host": self._host}
                )
        except httpx.TransportError as exc:
            raise ConnectionError(f"cannot reach DevTools at {self._http_base()}: {exc}") from exc
        if response.status_code >= 400:
            raise CDPError(f"{method} {path}: HTTP {response.status_code}: {response.text[:200]}")
        try:
            return response.json()
        except ValueError:
            raise CDPError(f"{method} {path}: not JSON: {response.text[:200]}") from None

    async def _pick_target(self) -> str:
        path = urlsplit(self.url).path
        if "/devtools/" in path:
            kind = path.split("/devtools/", 1)[1].split("/", 1)
            self.target = {"id": kind[-1], "type": kind[0]}
            return self._local_ws(self.url)
        target_id = self.capability.params.get("target_id")
        targets = await self._http("GET", "/json")
        if not isinstance(targets, list):
            raise CDPError("GET /json did not return a list")
        chosen = None
        if target_id:
            chosen = next((t for t in targets if t.get("id") == target_id), None)
            if chosen is None:
                self.target = {"id": target_id, "type": "page"}
                return self._local_ws(f"ws://x/devtools/page/{quote(str(target_id))}")
        if chosen is None:
            chosen = next((t for t in targets if t.get("type") == "page"), None)
        if chosen is None:
            chosen = await self._http("PUT", "/json/new?about:blank")
        if not isinstance(chosen, dict) or not chosen.get("webSocketDebuggerUrl"):
            raise CDPError(f"DevTools target has no webSocketDebuggerUrl: {chosen!r}")
        self.target = chosen
        return self._local_ws(chosen["webSocketDebuggerUrl"])

    async def _open(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake

        self.ws_url = await self._pick_target()
        try:
            # The URL names the browser's own address (Host header); the socket goes to ours.
            self._ws = await asyncio.wait_for(
                connect(
                    self.ws_url,
                    host=self._connect_host,
                    port=self._connect_port,
                    max_size=None,
                    ping_interval=None,
                    open_timeout=self.timeout,
                ),
                self.timeout,
            )
        except (OSError, EOFError, InvalidHandshake, TimeoutError) as exc:
            raise ConnectionError(f"cannot open DevTools socket {self.ws_url}: {exc}") from exc
        self._reader = asyncio.create_task(self._read(), name=f"cdp-reader {self.ws_url}")

    # -- messages -----------------------------------------------------------------------
    async def _read(self) -> None:
        assert self._ws is not None
        reason: BaseException = CDPError("DevTools socket closed")
        try:
            async for raw in self._ws:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                mid = message.get("id")
                if mid is not None:
                    future = self._pending.pop(mid, None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif "method" in message:
                    if self._events.full():
                        self._events.get_nowait()
                    self._events.put_nowait(message)
        except Exception as exc:
            reason = CDPError(f"DevTools socket failed: {exc}")
        finally:
            self._closed = reason
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(reason)
            self._pending.clear()

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one command and return its ``result`` (errors raise `CDPError`)."""
        if self._ws is None or self._closed is not None:
            raise CDPError(f"{method}: DevTools socket is closed")
        mid = next(self._ids)
        message: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[mid] = future
        try:
            await self._ws.send(json.dumps(message))
            reply = await asyncio.wait_for(future, timeout or self.timeout)
        except TimeoutError:
            raise TimeoutError(f"{method}: no reply within {timeout or self.timeout}s") from None
        except Exception as exc:
            if isinstance(exc, CDPError):
                raise
            raise CDPError(f"{method}: {exc}") from exc
        finally:
            self._pending.pop(mid, None)
        error = reply.get("error")
        if error is not None:
            if isinstance(error, dict):
                raise CDPError(error.get("message", ""), error.get("code"), error.get("data"))
            raise CDPError(str(error))
        result = reply.get("result")
        return result if isinstance(result, dict) else {}

    async def next_event(
        self, method: str | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """The next event (``{"method", "params"}``), skipping others when ``method`` is given."""
        deadline = asyncio.get_running_loop().time() + (timeout or self.timeout)
        while True:
            if self._events.empty() and self._closed is not None:
                raise CDPError(f"waiting for {method or 'an event'}: DevTools socket is closed")
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no {method or 'CDP'} event within {timeout or self.timeout}s")
            try:
                event = await asyncio.wait_for(self._events.get(), remaining)
            except TimeoutError:
                raise TimeoutError(
                    f"no {method or 'CDP'} event within {timeout or self.timeout}s"
                ) from None
            if method is None or event.get("method") == method:
                return event

    def drain_events(self) -> list[dict[str, Any]]:
        """Take every queued event."""
        events = []
        while not self._events.empty():
            events.append(self._events.get_nowait())
        return events

    # -- helpers ------------------------------------------------------------------------
    async def evaluate(self, expression: str, *, await_promise: bool = True) -> Any:
        """``Runtime.evaluate`` by value; a thrown exception raises `CDPError`."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
        )
        details = result.get("exceptionDetails")
        if details:
            exception = details.get("exception") or {}
            text = exception.get("description") or details.get("text") or "exception"
            raise CDPError(f"Runtime.evaluate threw: {text}")
        return (result.get("result") or {}).get("value")

    async def navigate(self, url: str, *, wait: bool = True, timeout: float | None = None) -> None:
        """``Page.navigate`` and (by default) wait for the load event."""
        self.drain_events()
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")
        if wait:
            await self.next_event("Page.loadEventFired", timeout=timeout)

    async def screenshot(self, *, format: str = "png") -> bytes:
        """``Page.captureScreenshot`` decoded to image bytes."""
        result = await self.send("Page.captureScreenshot", {"format": format})
        return base64.b64decode(result.get("data", ""))

    async def close(self) -> None:
        """Close the socket (idempotent)."""
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5.0)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    aclose = close

    async def __aenter__(self) -> CDPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
