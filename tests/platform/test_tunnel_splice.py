"""The runtime tunnel's data path on real sockets, both ends: a uvicorn server whose WebSocket
route splices (hud/platform/api/splice.py; or, without the extension, pumps) each WebSocket
to a TCP connection to a local echo server standing in for the session container, as the
platform's route in api/runtime.py does after authenticating (its Docker tests:
test_runtime_sessions.py), and `HUDRuntime`'s local forwarder (hud/platform/client/runtime.py)
in front of it, directly or through an HTTP CONNECT proxy."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("uvicorn")
websockets = pytest.importorskip("websockets")

from hud.platform.api.splice import EXTENSION, Upstream, protocol_class  # noqa: E402
from hud.platform.client.runtime import HUDRuntime  # noqa: E402
from hud.platform.wsframe import FrameError, FrameReader  # noqa: E402

KEY = "hud_test-key"
HEADERS = {"Authorization": f"Bearer {KEY}"}


class Container:
    """An echo server: each line back as is, ``bulk N`` -> N bytes of a known stream then
    ``end\\n``, ``close`` -> closes; records what it got and whether it saw EOF."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.eof = asyncio.Event()
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            self.received += line
            if line.startswith(b"bulk "):
                size = int(line.split()[1])
                writer.write(_stream(size) + b"end\n")
            elif line == b"close\n":
                break
            else:
                writer.write(line)
            await writer.drain()
        else:
            self.eof.set()
        writer.close()


def _stream(size: int) -> bytes:
    block = hashlib.sha256(b"tunnel").digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


@contextlib.asynccontextmanager
async def tunnel_server(splicing: bool) -> AsyncIterator[tuple[str, Container]]:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    container = Container()
    echo = await asyncio.start_server(container.handle, "127.0.0.1", 0, limit=16 << 20)
    container.port = echo.sockets[0].getsockname()[1]
    used: list[str] = []

    async def route(websocket: WebSocket) -> None:
        if websocket.headers.get("authorization") != f"Bearer {KEY}":
            await websocket.close(code=4003)
            return
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_connection(
            lambda: Upstream(max_first=1024), "127.0.0.1", container.port
        )
        upstream.first_line = lambda line: b"token:" + line
        try:
            await websocket.accept()
            splice = (websocket.scope.get("extensions") or {}).get(EXTENSION)
            if splice is not None and await splice["splice"](upstream):
                used.append("splice")
            else:
                used.append("pump")
                await upstream.pump(websocket)
        finally:
            upstream.close()
            with contextlib.suppress(Exception):
                await websocket.close()

    async def create(_request: Request) -> JSONResponse:
        return JSONResponse({"id": "s1"})

    async def delete(_request: Request) -> JSONResponse:
        return JSONResponse({"id": "s1", "status": "deleted"})

    app = Starlette(
        routes=[
            WebSocketRoute("/runtime/tunnels/{sid}", route),
            Route("/runtime/sessions", create, methods=["POST"]),
            Route("/runtime/sessions/{sid}", delete, methods=["DELETE"]),
        ]
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        ws=protocol_class() if splicing else "websockets-sansio",
        ws_per_message_deflate=False,
        ws_ping_interval=0.05,  # keepalive pings during the tests: the forwarder answers
        ws_ping_timeout=20,
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", container
    finally:
        server.should_exit = True
        await task
        echo.close()
        assert used and set(used) == {"splice" if splicing else "pump"}, used


async def _read_until(ws: Any, end: bytes) -> bytes:
    data = bytearray()
    while not data.endswith(end):
        data += await asyncio.wait_for(ws.recv(), 30)
    return bytes(data)


@pytest.mark.parametrize("splicing", [True, False], ids=["splice", "pump"])
async def test_bytes_both_ways_first_line_rewritten(splicing: bool) -> None:
    async with tunnel_server(splicing) as (base, container):
        url = base.replace("http://", "ws://") + "/runtime/tunnels/s1"
        async with websockets.connect(url, additional_headers=HEADERS, max_size=None) as ws:
            await ws.send(b'{"hello": 1}')  # the first line, in two frames
            await ws.send(b"\n")
            assert await _read_until(ws, b"\n") == b'token:{"hello": 1}\n'
            await ws.send("second line, a text frame \u00e9\n")
            assert await _read_until(ws, b"\n") == "second line, a text frame \u00e9\n".encode()
            # 8 MiB from the container while 4 MiB go up in 64 KiB frames
            await ws.send(b"bulk 8388608\n")
            up = os.urandom(4 << 20).replace(b"\n", b" ")
            sender = asyncio.ensure_future(
                asyncio.gather(*[ws.send(up[i : i + 65536]) for i in range(0, len(up), 65536)])
            )
            got = await _read_until(ws, b"end\n")
            assert got == _stream(8 << 20) + b"end\n"
            await sender
            await ws.send(b"\n")
            assert await _read_until(ws, b"\n") == up + b"\n"
        await asyncio.wait_for(
            container.eof.wait(), 30
        )  # the client closed: the container sees EOF
        assert container.received.startswith(b'token:{"hello": 1}\nsecond line')


@pytest.mark.parametrize("splicing", [True, False], ids=["splice", "pump"])
async def test_container_close_closes_the_websocket(splicing: bool) -> None:
    async with tunnel_server(splicing) as (base, _container):
        url = base.replace("http://", "ws://") + "/runtime/tunnels/s1"
        async with websockets.connect(url, additional_headers=HEADERS) as ws:
            await ws.send(b"first\n")
            assert await _read_until(ws, b"\n") == b"token:first\n"
            await ws.send(b"close\n")
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 30)


class ConnectProxy:
    """An HTTP CONNECT proxy that records where it was asked to connect."""

    def __init__(self) -> None:
        self.targets: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split()[1].decode()
        self.targets.append(target)
        host, _, port = target.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def _line(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readline(), 30)


@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "proxy"])
async def test_hud_runtime_forwarder(proxied: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    proxy = ConnectProxy()
    proxy_server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
    for name in ("ws_proxy", "http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        for variant in (name, name.upper()):
            monkeypatch.delenv(variant, raising=False)
    if proxied:
        monkeypatch.setenv(
            "ws_proxy", f"http://127.0.0.1:{proxy_server.sockets[0].getsockname()[1]}"
        )
    task = types.SimpleNamespace(env="demo_env", slug="row", runtime_config=None)
    async with tunnel_server(True) as (base, container):
        runtime = HUDRuntime(runtime_url=base, api_key=KEY)
        async with runtime(task) as rt:
            port = int(rt.url.rsplit(":", 1)[1])
            assert rt.params["session_id"] == "s1"
            first = await asyncio.open_connection("127.0.0.1", port, limit=16 << 20)
            second = await asyncio.open_connection("127.0.0.1", port, limit=16 << 20)
            for i, (reader, writer) in enumerate((first, second)):
                writer.write(b"hello %d\n" % i)
                assert await _line(reader) == b"token:hello %d\n" % i
            reader, writer = first
            writer.write(b"bulk 8388608\n")
            up = os.urandom(4 << 20).replace(b"\n", b" ")
            writer.write(up + b"\n")  # sent while the bulk comes down
            assert await asyncio.wait_for(reader.readexactly((8 << 20) + 4), 60) == (
                _stream(8 << 20) + b"end\n"
            )
            assert await _line(reader) == up + b"\n"
            writer.close()  # EOF: the forwarder closes the WebSocket, the container sees EOF
            await asyncio.wait_for(container.eof.wait(), 30)
            reader, writer = second
            writer.write(b"close\n")  # the container hangs up: the local peer sees EOF
            assert await _line(reader) == b""
            writer.close()
        if proxied:
            assert proxy.targets and set(proxy.targets) == {base.removeprefix("http://")}
        else:
            assert proxy.targets == []
        bad = HUDRuntime(runtime_url=base, api_key="hud_wrong")
        async with bad(task) as rt:  # refused: the local peer sees EOF (and would retry)
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", int(rt.url.rsplit(":", 1)[1])
            )
            writer.write(b"hello\n")
            with contextlib.suppress(ConnectionResetError):  # EOF or reset: not ready yet
                assert await _line(reader) == b""
            writer.close()
    proxy_server.close()


def _frames(masked: bool, *, big: bool) -> list[tuple[int, bytes, bytes]]:
    """(opcode, payload, serialized by the websockets library) of assorted frames."""
    from websockets.frames import Frame, Opcode

    out = []
    for opcode, size in [(Opcode.BINARY, 0), (Opcode.BINARY, 5), (Opcode.TEXT, 125),
                         (Opcode.PING, 7), (Opcode.BINARY, 126), (Opcode.CONT, 65535),
                         (Opcode.PONG, 0), (Opcode.BINARY, 65536), (Opcode.CLOSE, 2),
                         (Opcode.BINARY, 200_000 if big else 300)]:  # fmt: skip
        payload = os.urandom(size)
        fin = opcode is not Opcode.TEXT or size != 125  # one unfinished message: CONT follows
        wire = Frame(opcode, payload, fin=fin).serialize(mask=masked, extensions=[])
        out.append((int(opcode), payload, wire))
    return out


@pytest.mark.parametrize("masked", [True, False], ids=["from-client", "from-server"])
@pytest.mark.parametrize("piece", [1, 3, 1007, 1 << 20])
def test_frame_reader_against_websockets(masked: bool, piece: int) -> None:
    frames = _frames(masked, big=piece > 3)
    data: list[bytes] = []
    control: list[tuple[int, bytes]] = []
    reader = FrameReader(
        masked=masked, on_data=data.append, on_control=lambda op, p: control.append((op, p))
    )
    wire = b"".join(w for _, _, w in frames)
    for i in range(0, len(wire), piece):  # pieces across frame boundaries
        reader.feed(wire[i : i + piece])
    assert b"".join(data) == b"".join(p for op, p, _ in frames if op < 8)
    assert control == [(op, p) for op, p, _ in frames if op >= 8]


@pytest.mark.parametrize(
    ("wire", "masked"),
    [
        (b"\x82\x05hello", True),  # a client frame without a mask
        (b"\x82\x85abcd" + b"x" * 5, False),  # a server frame with one
        (b"\xc2\x00", False),  # RSV1: no extension was negotiated
        (b"\x83\x00", False),  # opcode 3
        (b"\x09\x00", False),  # a fragmented ping
        (b"\x89\x7e\x00\x7e" + b"x" * 126, False),  # a 126-byte ping
    ],
)
def test_frame_reader_refuses_bad_frames(wire: bytes, masked: bool) -> None:
    reader = FrameReader(masked=masked, on_data=lambda _d: None, on_control=lambda *_a: None)
    with pytest.raises(FrameError):
        reader.feed(wire)


async def test_spliced_websocket_answers_pings_and_refuses_bad_frames() -> None:
    async with tunnel_server(True) as (base, _container):
        url = base.replace("http://", "ws://") + "/runtime/tunnels/s1"
        async with websockets.connect(url, additional_headers=HEADERS) as ws:
            await ws.send(b"first\n")
            assert await _read_until(ws, b"\n") == b"token:first\n"
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 30)
        # an unmasked frame from a client: close 1002
        port = int(base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /runtime/tunnels/s1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer " + KEY.encode()
                     + b"\r\n\r\n")  # fmt: skip
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert head.startswith(b"HTTP/1.1 101")
        writer.write(b"\x82\x06first\n")
        rest = await asyncio.wait_for(reader.read(), 30)  # until the server hangs up
        assert rest.endswith(b"\x88\x02\x03\xea"), rest  # close, 1002
        writer.close()
