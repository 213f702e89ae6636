"""`HudClient`: our side of the control channel, plus capability tunnels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hud.capabilities import Capability, family
from hud.protocol import (
    DEFAULT_MAX_FRAME,
    INTERNAL_ERROR,
    HudProtocolError,
    decode_frame,
    encode_frame,
)
from hud.transport import splice

log = logging.getLogger("hud.client")

HEARTBEAT_INTERVAL = 120.0
HEARTBEAT_TIMEOUT = 5.0
DEFAULT_READY_TIMEOUT = 240.0

#: protocol -> factory(capability) returning an opened capability client (async).
CAPABILITY_CLIENTS: dict[str, Callable[[Capability], Any]] = {}


def register_capability_client(protocol: str, factory: Callable[[Capability], Any]) -> None:
    """Make `HudClient.open` return ``await factory(capability)`` for ``protocol``."""
    CAPABILITY_CLIENTS[protocol] = factory


def parse_address(url: str, default_port: int = 8765) -> tuple[str, int]:
    """``tcp://host:port``, ``host:port`` or ``host`` -> (host, port)."""
    text = url if "://" in url else f"tcp://{url}"
    parts = urlsplit(text)
    if parts.scheme not in ("tcp", ""):
        raise NotImplementedError(
            f"control transport {parts.scheme!r} not supported yet (only tcp://)"
        )
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ValueError(f"bad control address {url!r}: {exc}") from None
    return host, port


def routed_url(url: str, host: str, port: int) -> str:
    """Swap host:port in ``url``, keeping scheme, userinfo (with password), path and query."""
    parts = urlsplit(url)
    userinfo = ""
    if parts.username is not None:
        userinfo = parts.username
        if parts.password is not None:
            userinfo += f":{parts.password}"
        userinfo += "@"
    return urlunsplit(
        (parts.scheme, f"{userinfo}{host}:{port}", parts.path, parts.query, parts.fragment)
    )


def grade_score(frame: dict[str, Any]) -> float:
    """The numeric score of a grade frame (bools accepted as 1.0/0.0)."""
    score = frame.get("score")
    if not isinstance(score, (int, float)):
        raise HudProtocolError(INTERNAL_ERROR, "tasks.grade: result must include a numeric 'score'")
    return float(score)


class HudClient:
    """One control connection to an environment server."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self.url = url if "://" in url else f"tcp://{url}"
        self.host, self.port = parse_address(url)
        self.token = token
        self.max_frame = max_frame
        self.session_id: str | None = None
        self.env_info: dict[str, Any] = {}
        self.features: set[str] = set()
        self.bindings: list[Capability] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._next_id = 0
        self._sent_token = False
        self._forwarders: dict[str, tuple[asyncio.Server, Capability]] = {}
        self._tunnels: set[asyncio.Task[Any]] = set()
        self._opened: dict[str, Any] = {}

    # -- connection ------------------------------------------------------------------
    async def connect(self) -> None:
        # A StreamReader limit of N accepts lines of up to N bytes before the newline.
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, limit=self.max_frame
        )
        self._next_id = 0
        self._sent_token = False

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    def _abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.transport.abort()
        self._reader = self._writer = None

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and wait for its reply; error frames raise `HudProtocolError`."""
        async with self._lock:
            if self._writer is None or self._reader is None:
                raise ConnectionError("client is not connected")
            self._next_id += 1
            rid = self._next_id
            params = dict(params or {})
            if self.token and not self._sent_token:
                params["auth_token"] = self.token
            frame = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
            # FrameTooLargeError is raised before anything is sent: the connection stays usable.
            data = encode_frame(frame, self.max_frame)
            self._sent_token = True
            try:
                self._writer.write(data)
                await self._writer.drain()
                line = await self._reader.readline()
            except BaseException:
                self._abort()
                raise
            if not line:
                self._abort()
                raise EOFError(f"env closed connection during '{method}'")
            try:
                reply = decode_frame(line)
            except ValueError as exc:
                self._abort()
                raise HudProtocolError(INTERNAL_ERROR, f"'{method}': bad reply: {exc}") from None
            if not isinstance(reply, dict) or reply.get("id") != rid:
                self._abort()
                raise HudProtocolError(
                    INTERNAL_ERROR, f"'{method}': reply id did not match request"
                )
            error = reply.get("error")
            if error is not None:
                code = (
                    error.get("code", INTERNAL_ERROR) if isinstance(error, dict) else INTERNAL_ERROR
                )
                message = error.get("message", "") if isinstance(error, dict) else str(error)
                raise HudProtocolError(code, message)
            result = reply.get("result")
            if not isinstance(result, dict):
                raise HudProtocolError(INTERNAL_ERROR, f"'{method}': result was not an object")
            return result

    # -- methods ---------------------------------------------------------------------
    async def hello(self, session_id: str | None = None) -> dict[str, Any]:
        """Handshake (or resume ``session_id``); refreshes the env info and bindings."""
        params = {"session_id": session_id} if session_id else {}
        result = await self.call("hello", params)
        sid = result.get("session_id")
        if isinstance(sid, str):
            self.session_id = sid
        features = result.get("features")
        self.features = set(features) if isinstance(features, list) else set()
        env = result.get("env")
        self.env_info = env if isinstance(env, dict) else {}
        bindings = []
        for item in result.get("bindings") or []:
            try:
                bindings.append(Capability.from_binding(item))
            except (TypeError, ValueError) as exc:
                log.warning("ignoring malformed binding %r: %s", item, exc)
        self.bindings = bindings
        return result

    async def heartbeat(self) -> dict[str, Any]:
        return await self.hello(self.session_id)

    async def list_tasks(self) -> list[dict[str, Any]]:
        result = await self.call("tasks.list")
        tasks = result.get("tasks")
        if not isinstance(tasks, list):
            raise HudProtocolError(INTERNAL_ERROR, "tasks.list: 'tasks' is not a list")
        return tasks

    async def start(self, task_id: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start a task; returns the start frame (``prompt`` and extras)."""
        return await self.call("tasks.start", {"id": task_id, "args": args or {}})

    async def grade(
        self, answer: Any, *, task_id: str | None = None, args: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Grade the task in progress; returns the grade frame (``score`` is numeric).

        ``task_id``/``args`` make our servers adopt only a parked task started with them (G9);
        official servers ignore both.
        """
        params: dict[str, Any] = {"answer": answer}
        if task_id is not None:
            params["id"] = task_id
            if args is not None:
                params["args"] = args
        frame = await self.call("tasks.grade", params)
        grade_score(frame)
        return frame

    async def cancel(self) -> dict[str, Any]:
        return await self.call("tasks.cancel")

    async def bye(self) -> dict[str, Any]:
        return await self.call("bye")

    # -- capabilities ----------------------------------------------------------------
    def find_binding(self, ref: str) -> Capability:
        """Match by name, full protocol, or protocol family."""
        matches = [b for b in self.bindings if ref in (b.name, b.protocol, family(b.protocol))]
        if not matches:
            available = ", ".join(b.name for b in self.bindings) or "none"
            raise KeyError(f"no capability matching {ref!r} (available: {available})")
        if len(matches) > 1:
            names = ", ".join(b.name for b in matches)
            raise KeyError(f"ambiguous capability {ref!r}: matches {names}")
        return matches[0]

    async def binding(self, ref: str) -> Capability:
        """The capability with its URL routed through a local tunnel forwarder."""
        cap = self.find_binding(ref)
        existing = self._forwarders.get(cap.name)
        if existing is not None:
            return existing[1]
        server = await asyncio.start_server(
            lambda r, w: self._forward(cap.name, r, w), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        routed = cap.model_copy(
            update={"url": routed_url(cap.url, "127.0.0.1", port), "native_url": cap.url}
        )
        self._forwarders[cap.name] = (server, routed)
        return routed

    async def open_tunnel(self, name: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open a raw byte stream to capability ``name`` through the control port."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        params: dict[str, Any] = {"capability": name}
        if self.token:
            params["auth_token"] = self.token
        frame = {"jsonrpc": "2.0", "id": 1, "method": "tunnel.open", "params": params}
        try:
            writer.write(encode_frame(frame))
            await writer.drain()
            line = await reader.readline()
            if not line:
                raise EOFError(f"env closed the tunnel to {name!r}")
            reply = decode_frame(line)
            if isinstance(reply, dict) and reply.get("error"):
                err = reply["error"]
                raise HudProtocolError(err.get("code", INTERNAL_ERROR), err.get("message", ""))
        except BaseException:
            writer.close()
            raise
        return reader, writer

    async def _forward(
        self, name: str, local_r: asyncio.StreamReader, local_w: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tunnels.add(task)
        try:
            try:
                remote_r, remote_w = await self.open_tunnel(name)
            except Exception as exc:
                log.warning("tunnel to %r failed: %s", name, exc)
                local_w.close()
                return
            await splice(local_r, local_w, remote_r, remote_w)
        finally:
            if task is not None:
                self._tunnels.discard(task)

    async def open(self, ref: str) -> Any:
        """A protocol client for a capability (cached per name; up to 3 attempts)."""
        cap = self.find_binding(ref)
        if cap.name in self._opened:
            return self._opened[cap.name]
        factory = CAPABILITY_CLIENTS.get(cap.protocol)
        if factory is None:
            raise ValueError(
                f"no client for protocol {cap.protocol!r}; use binding({ref!r}) for raw access"
            )
        routed = await self.binding(cap.name)
        delay = 0.25
        for attempt in range(3):
            try:
                client = await factory(routed)
                break
            except ConnectionError:
                if attempt == 2:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
        self._opened[cap.name] = client
        return client

    # -- teardown --------------------------------------------------------------------
    async def close(self) -> None:
        """Close capability clients, forwarders, tunnels and the socket (no ``bye``)."""
        for client in list(self._opened.values()):
            closer = getattr(client, "close", None) or getattr(client, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    result = closer()
                    if asyncio.iscoroutine(result):
                        await result
        self._opened.clear()
        for server, _ in self._forwarders.values():
            server.close()
        self._forwarders.clear()
        for task in list(self._tunnels):
            task.cancel()
        if self._tunnels:
            await asyncio.gather(*self._tunnels, return_exceptions=True)
        if self._writer is not None:
            writer = self._writer
            self._reader = self._writer = None
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()


def _ready_timeout(runtime: Any, default: float) -> float:
    params = getattr(runtime, "params", None) or {}
    value = params.get("ready_timeout") if isinstance(params, dict) else None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and value > 0 and math.isfinite(value):
        return float(value)
    return default


@contextlib.asynccontextmanager
async def connect(
    runtime: Any,
    *,
    ready_timeout: float = DEFAULT_READY_TIMEOUT,
    token: str | None = None,
    heartbeat: float | None = HEARTBEAT_INTERVAL,
) -> AsyncIterator[HudClient]:
    """Connect to a runtime (or URL), wait until it answers ``hello``, and yield a client."""
    url = runtime if isinstance(runtime, str) else runtime.url
    if token is None:
        params = getattr(runtime, "params", None) or {}
        token = params.get("token") if isinstance(params, dict) else None
    client = HudClient(url, token=token)
    deadline = asyncio.get_running_loop().time() + _ready_timeout(runtime, ready_timeout)
    while True:
        try:
            await client.connect()
            await client.hello()
            break
        except (OSError, EOFError) as exc:
            client._abort()
            if asyncio.get_running_loop().time() >= deadline:
                raise TimeoutError(f"env at {url} not ready: {exc}") from exc
            await asyncio.sleep(0.05 if isinstance(exc, ConnectionRefusedError) else 0.5)
    owner = asyncio.current_task()
    beat: asyncio.Task[None] | None = None
    if heartbeat and owner is not None:
        beat = asyncio.create_task(_heartbeat(client, owner, heartbeat))
    try:
        yield client
    finally:
        if beat is not None:
            beat.cancel()
            with contextlib.suppress(BaseException):
                await beat
        await client.close()


async def _heartbeat(client: HudClient, owner: asyncio.Task[Any], interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.wait_for(client.heartbeat(), HEARTBEAT_TIMEOUT)
        except HudProtocolError:
            return
        except (OSError, EOFError, TimeoutError, ConnectionError) as exc:
            log.warning("heartbeat to %s failed: %s", client.url, exc)
            owner.cancel()
            return
