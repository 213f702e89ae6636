"""`HudClient`: our side of the control channel, plus capability tunnels."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import socket
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hud.capabilities import Capability, family
from hud.clients.capability_clients import (  # noqa: F401  (re-exported)
    CAPABILITY_CLIENTS,
    client_factory,
    preload_libraries,
    register_capability_client,
)
from hud.protocol import (
    DEFAULT_MAX_FRAME,
    INTERNAL_ERROR,
    PROTOCOL_VERSION,
    HudProtocolError,
    decode_frame,
    encode_frame,
)
from hud.transport import Half, relay
from hud.transport.channel import LineChannel, TransportChannel, open_channel

log = logging.getLogger("hud.client")

HEARTBEAT_INTERVAL = 120.0
HEARTBEAT_TIMEOUT = 5.0
DEFAULT_READY_TIMEOUT = 240.0
#: How long `connect` retries a refused connection before saying nothing listens there.
DEFAULT_REFUSED_TIMEOUT = 3.0


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


class _Forwarder(Half):
    """A local connection to a routed URL: opens a tunnel and relays to it."""

    def __init__(self, client: HudClient, name: str) -> None:
        super().__init__()
        self.client = client
        self.name = name

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        client = self.client
        task = asyncio.get_running_loop().create_task(client._forward(self.name, self))
        client._tunnels.add(task)
        task.add_done_callback(client._tunnels.discard)


@dataclass(frozen=True)
class ServerInfo:
    """The env's name and version, as announced by ``hello``."""

    name: str
    version: str


class Manifest(dict[str, Any]):
    """The ``hello`` result: the reply's keys as a dict (ours), and the official client's
    attributes ``session_id``, ``protocol_version``, ``server_info`` and ``bindings``."""

    @property
    def session_id(self) -> str | None:
        sid = self.get("session_id")
        return sid if isinstance(sid, str) else None

    @property
    def protocol_version(self) -> str:
        version = self.get("protocol_version")
        return version if isinstance(version, str) else PROTOCOL_VERSION

    @property
    def server_info(self) -> ServerInfo:
        env = self.get("env")
        env = env if isinstance(env, dict) else {}
        return ServerInfo(str(env.get("name", "")), str(env.get("version", "")))

    @property
    def bindings(self) -> list[Capability]:
        """The env-native bindings (`HudClient.binding` gives the routed ones)."""
        out = []
        for item in self.get("bindings") or []:
            with contextlib.suppress(TypeError, ValueError):
                out.append(Capability.from_binding(item))
        return out


class RoutedCapability(Capability):
    """What `HudClient.binding` returns: usable directly (the official client's synchronous
    ``binding``) and awaitable (ours: ``await client.binding(ref)``) alike."""

    def __await__(self) -> Generator[Any, None, RoutedCapability]:
        if False:  # pragma: no cover - makes this a generator
            yield
        return self


class _PendingBinding:
    """``binding(ref)`` while a pipelined ``hello`` is unanswered: await it for the binding."""

    def __init__(self, client: HudClient, ref: str) -> None:
        self._client, self._ref = client, ref

    def __await__(self) -> Generator[Any, None, RoutedCapability]:
        return self._resolve().__await__()

    async def _resolve(self) -> RoutedCapability:
        await self._client.ready()
        return self._client.binding(self._ref)

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(
            f"binding({self._ref!r}) before the hello reply: use 'await client.binding(...)'"
        )


def _jsonable(items: Sequence[Any]) -> list[Any]:
    return [i.model_dump(mode="json") if hasattr(i, "model_dump") else i for i in items]


class _StreamChannel:
    """The channel interface over an asyncio stream pair (``HudClient(reader, writer)``)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limit: int
    ) -> None:
        self.reader, self.writer, self.limit = reader, writer, limit
        self.draining = True

    @property
    def closed(self) -> bool:
        return self.writer.is_closing()

    def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("channel is closed")
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    async def readline(self) -> bytes:
        try:
            line = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial if exc.partial.endswith(b"\n") else b""
        except asyncio.LimitOverrunError:
            raise ValueError("reply exceeds the stream's line limit") from None
        if len(line) - 1 > self.limit:
            raise ValueError(f"reply of {len(line) - 1} bytes exceeds {self.limit}")
        return line

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        transport = self.writer.transport
        if transport is not None:
            transport.abort()


_UNSET: Any = object()
_PAYLOAD_KEYS = frozenset({"answer", "id", "args"})


class HudClient:
    """One control connection to an environment server.

    Method names and argument shapes of the official client work too: ``start_task(id, args)``,
    ``grade({"answer": ...})``, ``hello()`` returning a `Manifest` with attributes, a
    synchronous ``binding(ref)``, ``abort()``.
    """

    def __init__(
        self,
        url: str | asyncio.StreamReader,
        writer: asyncio.StreamWriter | None = None,
        *,
        endpoint: tuple[str, int] | None = None,
        token: str | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        """``HudClient(url)`` (ours: `connect` opens the socket), or ``HudClient(reader,
        writer, endpoint=(host, port))`` over an open stream pair, as the official client is
        built (``endpoint``, default the writer's peer, is where tunnels connect)."""
        stream: _StreamChannel | None = None
        if isinstance(url, asyncio.StreamReader):
            if writer is None:
                raise TypeError("HudClient(reader, writer): the writer is missing")
            if endpoint is None:
                peer = writer.get_extra_info("peername")
                endpoint = (str(peer[0]), int(peer[1])) if peer else ("127.0.0.1", 8765)
            stream = _StreamChannel(url, writer, max_frame)
            url = f"tcp://{endpoint[0]}:{endpoint[1]}"
        self.url = url if "://" in url else f"tcp://{url}"
        self.host, self.port = parse_address(url)
        self.token = token
        self.max_frame = max_frame
        self.session_id: str | None = None
        self.env_info: dict[str, Any] = {}
        self.features: set[str] = set()
        self.bindings: list[Capability] = []
        self._channel: LineChannel | TransportChannel | _StreamChannel | None = stream
        self._lock = asyncio.Lock()
        self._next_id = 0
        self._sent_token = False
        self._hello_rid = 0  # id of a pipelined hello whose reply is not read yet
        self._ready_deadline = 0.0
        self._forwarders: dict[str, tuple[asyncio.Task[asyncio.Server], RoutedCapability]] = {}
        self._tunnels: set[asyncio.Task[Any]] = set()
        self._opened: dict[str, Any] = {}
        self._preloading: list[concurrent.futures.Future[Any]] = []

    # -- connection ------------------------------------------------------------------
    async def connect(self) -> None:
        # Replies of up to max_frame bytes (newline excluded) are accepted.
        self._channel = await open_channel(self.host, self.port, self.max_frame)
        self._next_id = 0
        self._sent_token = False
        self._hello_rid = 0

    @property
    def connected(self) -> bool:
        return self._channel is not None and not self._channel.closed

    def _abort(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            with contextlib.suppress(Exception):
                channel.abort()

    def abort(self) -> None:
        """Drop the connection at once (no ``bye``, no graceful close)."""
        self._abort()

    def _encode(self, method: str, params: dict[str, Any] | None) -> tuple[int, bytes]:
        """The next request frame (FrameTooLargeError before anything is sent or counted)."""
        params = dict(params) if params else {}
        if self.token and not self._sent_token:
            params["auth_token"] = self.token
        rid = self._next_id + 1
        frame = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
        data = encode_frame(frame, self.max_frame)
        self._next_id = rid
        self._sent_token = True
        return rid, data

    async def _reply(
        self, channel: LineChannel | TransportChannel | _StreamChannel, method: str, rid: int
    ) -> dict[str, Any]:
        """Read the reply to request ``rid``: its result, or `HudProtocolError`.

        Transport failures, EOF, undecodable replies and id mismatches abort the connection.
        """
        try:
            line = await channel.readline()
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
            raise HudProtocolError(INTERNAL_ERROR, f"'{method}': reply id did not match request")
        error = reply.get("error")
        if error is not None:
            code = error.get("code", INTERNAL_ERROR) if isinstance(error, dict) else INTERNAL_ERROR
            message = error.get("message", "") if isinstance(error, dict) else str(error)
            raise HudProtocolError(code, message)
        result = reply.get("result")
        if not isinstance(result, dict):
            raise HudProtocolError(INTERNAL_ERROR, f"'{method}': result was not an object")
        return result

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one request and wait for its reply; error frames raise `HudProtocolError`."""
        async with self._lock:
            if self._hello_rid:
                result = await self._call_after_hello(method, params)
                assert result is not None
                return result
            channel = self._channel
            if channel is None:
                raise ConnectionError("client is not connected")
            # FrameTooLargeError is raised before anything is sent: the connection stays usable.
            rid, data = self._encode(method, params)
            try:
                channel.write(data)
                if channel.draining:
                    await channel.drain()
            except BaseException:
                self._abort()
                raise
            return await self._reply(channel, method, rid)

    # -- pipelined hello (connect(..., pipeline=True)) ---------------------------------
    def _send_hello(self, deadline: float) -> None:
        """Send the readiness ``hello`` without waiting; its reply is read with the next call."""
        assert self._channel is not None
        rid, data = self._encode("hello", {})
        self._channel.write(data)
        self._hello_rid = rid
        self._ready_deadline = deadline

    async def _call_after_hello(
        self, method: str, params: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """Send a request behind the pending ``hello`` and read both replies (lock held).

        EOF or an OS error before the ``hello`` reply is a readiness failure, as in `connect`:
        reconnect, send ``hello`` and the request again, until the ready deadline. An RPC error
        on ``hello`` is fatal and raised here (the request's reply is not read).
        """
        while True:
            channel = self._channel
            if channel is None:
                raise ConnectionError("client is not connected")
            rid, data = self._encode(method, params) if method else (0, b"")
            try:
                if data:
                    channel.write(data)
                async with asyncio.timeout_at(self._ready_deadline):
                    await channel.drain()
                    hello = await self._reply(channel, "hello", self._hello_rid)
            except (OSError, EOFError) as exc:
                self._abort()
                if asyncio.get_running_loop().time() >= self._ready_deadline:
                    self._hello_rid = 0
                    raise TimeoutError(f"env at {self.url} not ready: no reply to hello") from exc
                await self._redo_hello(exc)
                continue
            except BaseException:
                self._abort()
                self._hello_rid = 0
                raise
            self._hello_rid = 0
            self._apply_hello(hello)
            if not method:
                return None
            return await self._reply(channel, method, rid)

    async def _redo_hello(self, exc: BaseException) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() >= self._ready_deadline:
                self._hello_rid = 0
                raise TimeoutError(f"env at {self.url} not ready: {exc}") from exc
            await asyncio.sleep(0.05 if isinstance(exc, ConnectionRefusedError) else 0.5)
            try:
                await self.connect()
            except OSError as err:
                exc = err
                continue
            self._send_hello(self._ready_deadline)
            return

    async def ready(self) -> None:
        """Wait for a pipelined ``hello`` reply (no-op otherwise): fills `session_id`,
        `env_info`, `features` and `bindings`."""
        if self._hello_rid:
            async with self._lock:
                if self._hello_rid:
                    await self._call_after_hello("", None)

    # -- methods ---------------------------------------------------------------------
    def _apply_hello(self, result: dict[str, Any]) -> None:
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
        self._preloading = preload_libraries(b.protocol for b in bindings)

    async def _libraries_loaded(self) -> None:
        """Wait for the capability-client libraries the manifest made us preload."""
        pending, self._preloading = self._preloading, []
        for future in pending:
            with contextlib.suppress(Exception):  # the client's own import reports it
                await asyncio.wrap_future(future)

    async def hello(
        self,
        session_id: str | None = None,
        *,
        workspace_routes: Sequence[Any] = (),
        connections: Sequence[Any] = (),
    ) -> Manifest:
        """Handshake (or resume ``session_id``); refreshes the env info and bindings.

        ``workspace_routes`` and ``connections`` (the official client's hello parameters) are
        sent when given; servers that do not know them ignore them.
        """
        params: dict[str, Any] = {"session_id": session_id} if session_id else {}
        if workspace_routes:
            params["workspace_routes"] = _jsonable(workspace_routes)
        if connections:
            params["connections"] = _jsonable(connections)
        result = await self.call("hello", params)
        self._apply_hello(result)
        return Manifest(result)

    async def heartbeat(self) -> dict[str, Any]:
        await self.ready()  # a pipelined hello's reply carries the session id to resume
        return await self.hello(self.session_id)

    async def list_tasks(self) -> list[dict[str, Any]]:
        result = await self.call("tasks.list")
        tasks = result.get("tasks")
        if not isinstance(tasks, list):
            raise HudProtocolError(INTERNAL_ERROR, "tasks.list: 'tasks' is not a list")
        return tasks

    async def start_task(
        self,
        task_id: str,
        args: dict[str, Any] | None = None,
        *,
        limits: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a task; returns the start frame (``prompt`` and extras). ``limits`` (ours)
        overrides the env's workspace limits for this rollout (the row's
        ``runtime_config.limits``)."""
        params: dict[str, Any] = {"id": task_id, "args": args or {}}
        if limits:
            params["limits"] = limits
        return await self.call("tasks.start", params)

    start = start_task  # our earlier name

    async def grade(
        self,
        payload: Any = _UNSET,
        /,
        *,
        answer: Any = _UNSET,
        task_id: str | None = None,
        args: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Grade the task in progress; returns the grade frame (``score`` is numeric).

        ``grade({"answer": ...})`` (the official client's payload: ``answer`` plus optional
        ``id``/``args``) or ``grade(answer)`` / ``grade(answer=...)`` (ours). A positional dict
        with only those keys, ``answer`` among them, is a payload; pass ``answer=`` to send such
        a dict as the answer itself. ``task_id``/``args`` make our servers adopt only a parked
        task started with them (G9); official servers ignore both.
        """
        if answer is _UNSET:
            if payload is _UNSET:
                raise TypeError("grade() needs a payload {'answer': ...} or answer=")
            if (
                isinstance(payload, dict)
                and "answer" in payload
                and payload.keys() <= _PAYLOAD_KEYS
            ):
                task_id = payload.get("id", task_id)
                args = payload.get("args", args)
                answer = payload["answer"]
            else:
                answer = payload
        elif payload is not _UNSET:
            raise TypeError("grade() takes a payload or answer=, not both")
        return await self.grade_answer(answer, task_id=task_id, args=args)

    async def grade_answer(
        self, answer: Any, *, task_id: str | None = None, args: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """`grade` with ``answer`` taken as is (never read as a payload)."""
        params: dict[str, Any] = {"answer": answer}
        if task_id is not None:
            params["id"] = task_id
            if args is not None:
                params["args"] = args
        frame = await self.call("tasks.grade", params)
        grade_score(frame)
        return frame

    async def cancel(self) -> dict[str, Any]:
        """Cancel the task in progress; its result frame (the official client returns None)."""
        return await self.call("tasks.cancel")

    async def bye(self) -> dict[str, Any]:
        return await self.call("bye")

    # -- capabilities ----------------------------------------------------------------
    def find_binding(self, ref: str) -> Capability:
        """Match by name, full protocol, or protocol family."""
        matches = [b for b in self.bindings if ref in (b.name, b.protocol, family(b.protocol))]
        if not matches:
            available = ", ".join(f"{b.name} ({b.protocol})" for b in self.bindings) or "none"
            raise KeyError(f"no capability {ref!r} (available: {available})")
        if len(matches) > 1:
            names = ", ".join(b.name for b in matches)
            raise KeyError(f"ambiguous capability {ref!r}: matches {names}")
        return matches[0]

    def binding(self, ref: str) -> RoutedCapability:
        """The capability with its URL routed through a local tunnel forwarder.

        Synchronous, as in the official client; the result can also be awaited (ours). While a
        pipelined ``hello`` is unanswered the bindings are not known yet: then only
        ``await client.binding(ref)`` works (it waits for the reply).
        """
        if self._hello_rid:
            return _PendingBinding(self, ref)  # type: ignore[return-value]
        cap = self.find_binding(ref)
        existing = self._forwarders.get(cap.name)
        if existing is not None:
            return existing[1]
        loop = asyncio.get_running_loop()
        # Listen now (synchronously); connections wait in the backlog until the server's
        # accept loop, started just below, picks them up.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", 0))
            sock.listen(100)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        port = sock.getsockname()[1]
        name = cap.name
        starting = loop.create_task(
            loop.create_server(lambda: _Forwarder(self, name), sock=sock, start_serving=True)
        )
        routed = RoutedCapability(
            **{
                **cap.model_dump(),
                "url": routed_url(cap.url, "127.0.0.1", port),
                "native_url": cap.url,
            }
        )
        self._forwarders[name] = (starting, routed)
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

    async def _forward(self, name: str, local: Half) -> None:
        """Open a tunnel to capability ``name`` for one local connection and relay."""
        remote: Half | None = None
        try:
            try:
                loop = asyncio.get_running_loop()
                _, remote = await loop.create_connection(Half, self.host, self.port)
                params: dict[str, Any] = {"capability": name}
                if self.token:
                    params["auth_token"] = self.token
                frame = {"jsonrpc": "2.0", "id": 1, "method": "tunnel.open", "params": params}
                assert remote.transport is not None
                remote.transport.write(encode_frame(frame))
                line = await remote.readline()
                if not line:
                    raise EOFError(f"env closed the tunnel to {name!r}")
                reply = decode_frame(line)
                if isinstance(reply, dict) and reply.get("error"):
                    err = reply["error"]
                    raise HudProtocolError(err.get("code", INTERNAL_ERROR), err.get("message", ""))
            except Exception as exc:
                log.warning("tunnel to %r failed: %s", name, exc)
                return
            await relay(local, remote)
        finally:
            for half in (local, remote):
                if half is not None and half.transport is not None:
                    half.transport.close()

    async def open(self, ref: str) -> Any:
        """A protocol client for a capability (cached per name; up to 3 attempts)."""
        await self.ready()
        cap = self.find_binding(ref)
        if cap.name in self._opened:
            return self._opened[cap.name]
        factory = client_factory(cap.protocol)
        if factory is None:
            raise ValueError(
                f"no client for protocol {cap.protocol!r}; use binding({ref!r}) for raw access"
            )
        await self._libraries_loaded()
        routed = self.binding(cap.name)
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
        for starting, _ in self._forwarders.values():
            if starting.done() and not starting.cancelled() and starting.exception() is None:
                starting.result().close()
            else:
                starting.cancel()
                with contextlib.suppress(BaseException):
                    (await starting).close()
        self._forwarders.clear()
        for task in list(self._tunnels):
            task.cancel()
        if self._tunnels:
            await asyncio.gather(*self._tunnels, return_exceptions=True)
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()


def _ready_timeout(runtime: Any, default: float) -> float:
    params = getattr(runtime, "params", None) or {}
    value = params.get("ready_timeout") if isinstance(params, dict) else None
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value > 0
        and math.isfinite(value)
    ):
        return float(value)
    return default


def connect(
    runtime: Any,
    *,
    ready_timeout: float = DEFAULT_READY_TIMEOUT,
    workspace_routes: Sequence[Any] = (),
    connections: Sequence[Any] = (),
    token: str | None = None,
    heartbeat: float | None = HEARTBEAT_INTERVAL,
    pipeline: bool = False,
    refused_timeout: float = DEFAULT_REFUSED_TIMEOUT,
) -> _Connect:
    """Connect to a runtime (or URL), wait until it answers ``hello``, and yield a client.

    ``async with connect(runtime) as client:``. Readiness: connection refused is retried every
    0.05 s, other OS errors and EOF during ``hello`` every 0.5 s, until ``ready_timeout``
    (``runtime.params["ready_timeout"]`` overrides), a deadline that also bounds each connect
    and the wait for the ``hello`` reply (`TimeoutError`); an RPC error is fatal. A server
    that refused every attempt for ``refused_timeout`` seconds is not starting: then
    `ConnectionRefusedError` ("nothing is listening at ..."). ``workspace_routes`` and
    ``connections`` are passed to ``hello`` (the official client's parameters). A heartbeat
    ``hello`` every ``heartbeat`` seconds (None: off) cancels the task owning the block if the
    connection fails. On exit the client is closed (no ``bye``).

    ``pipeline=True`` saves a round trip: the readiness ``hello`` is sent without waiting for
    its reply, which is read together with the first request's (servers answer in order).
    `session_id`, `env_info`, `features` and `bindings` are filled in then (``await
    client.ready()`` to wait for them without a request; `binding` and `open` do). Readiness
    failures (EOF or a connection error before the ``hello`` reply) still retry until
    ``ready_timeout``, re-sending ``hello`` and that first request; an RPC error on ``hello``
    is raised by the first call instead of by ``connect``.
    """
    return _Connect(
        runtime,
        ready_timeout=ready_timeout,
        token=token,
        heartbeat=heartbeat,
        pipeline=pipeline,
        refused_timeout=refused_timeout,
        hello_params={"workspace_routes": workspace_routes, "connections": connections},
    )


class _Connect:
    """The async context manager returned by `connect`."""

    def __init__(
        self,
        runtime: Any,
        *,
        ready_timeout: float,
        token: str | None,
        heartbeat: float | None,
        pipeline: bool = False,
        refused_timeout: float = DEFAULT_REFUSED_TIMEOUT,
        hello_params: dict[str, Any] | None = None,
    ) -> None:
        self.url = runtime if isinstance(runtime, str) else runtime.url
        self.pipeline = pipeline
        if token is None:
            params = getattr(runtime, "params", None) or {}
            token = params.get("token") if isinstance(params, dict) else None
        self.token = token
        self.ready_timeout = _ready_timeout(runtime, ready_timeout)
        self.refused_timeout = refused_timeout
        self.hello_params = hello_params or {}
        self.heartbeat = heartbeat
        self.client: HudClient | None = None
        self._beat: _Heartbeat | None = None

    async def __aenter__(self) -> HudClient:
        client = HudClient(self.url, token=self.token)
        loop = asyncio.get_running_loop()
        began = loop.time()
        deadline = began + self.ready_timeout
        only_refused = True  # every attempt so far was refused: nothing listens there
        while True:
            step = "connecting"
            try:
                async with asyncio.timeout_at(deadline):
                    await client.connect()
                    step = "waiting for the hello reply"
                    if self.pipeline and not any(self.hello_params.values()):
                        client._send_hello(deadline)
                    else:
                        await client.hello(**self.hello_params)
                break
            except (OSError, EOFError) as exc:
                client._abort()
                now = loop.time()
                if now >= deadline:
                    why = "no reply to hello" if step != "connecting" else str(exc) or "timed out"
                    raise TimeoutError(
                        f"env at {self.url} not ready after {self.ready_timeout:g}s: {why}"
                    ) from exc
                refused = isinstance(exc, ConnectionRefusedError)
                only_refused = only_refused and refused
                if only_refused and now - began >= self.refused_timeout:
                    raise ConnectionRefusedError(
                        f"nothing is listening at {self.url} (connection refused)"
                    ) from None
                await asyncio.sleep(min(0.05 if refused else 0.5, max(deadline - now, 0)))
            except BaseException:
                client._abort()
                raise
        # Libraries of the announced capabilities' clients load in a worker thread meanwhile
        # (the loop keeps serving other connections); `open` is then just the handshake.
        await client._libraries_loaded()
        self.client = client
        owner = asyncio.current_task()
        if self.heartbeat and owner is not None:
            self._beat = _Heartbeat(client, owner, self.heartbeat)
        return client

    async def __aexit__(self, *exc: object) -> None:
        beat, self._beat = self._beat, None
        if beat is not None:
            await beat.stop()
        client, self.client = self.client, None
        if client is not None:
            await client.close()


class _Heartbeat:
    """``hello`` with the client's own session id every ``interval`` seconds (a timer, not a
    task, between beats). RPC error: stop. Transport failure or timeout: cancel ``owner``."""

    def __init__(self, client: HudClient, owner: asyncio.Task[Any], interval: float) -> None:
        self.client = client
        self.owner = owner
        self.interval = interval
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task[None] | None = None
        self.handle: asyncio.TimerHandle | None = self.loop.call_later(interval, self._fire)

    def _fire(self) -> None:
        self.handle = None
        self.task = self.loop.create_task(self._beat())

    async def _beat(self) -> None:
        client = self.client
        try:
            await asyncio.wait_for(client.heartbeat(), HEARTBEAT_TIMEOUT)
        except HudProtocolError:
            return
        except (OSError, EOFError, TimeoutError, ConnectionError) as exc:
            log.warning("heartbeat to %s failed: %s", client.url, exc)
            self.owner.cancel()
            return
        finally:
            self.task = None
        self.handle = self.loop.call_later(self.interval, self._fire)

    async def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        task = self.task
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
