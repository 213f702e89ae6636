"""MCP, CDP and RFB capability clients against real servers, through the control port's tunnels.

Each environment here publishes a capability on 127.0.0.1; the test connects to the env's
control port and opens the capability with `HudClient.open`, whose traffic goes through a local
forwarder and a ``tunnel.open`` connection. Daemon tests skip when their binary is missing
(``.ci/apt-packages`` lists what CI installs).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from hud.capabilities import Capability
from hud.clients import HudClient, connect
from hud.clients.cdp_client import CDPClient, CDPError
from hud.clients.mcp_client import MCPClient, MCPError, text_of
from hud.clients.rfb_client import (
    ENC_RAW,
    RFBAuthError,
    RFBClient,
    RFBError,
    char_keysym,
    keysym,
)
from hud.environment import Environment
from hud.environment.server import Server, bind
from tests import screens
from tests.chromium import chromium as start_chromium
from tests.screens import Desktop, free_port

# -- helpers ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def served(*caps: Capability) -> AsyncIterator[tuple[HudClient, Server]]:
    """An env publishing ``caps``, bound on loopback, its server and a connected client."""
    env = Environment(name="caps", capabilities=list(caps))
    server = await bind(env, "127.0.0.1", 0)
    try:
        async with connect(server.url, ready_timeout=10) as client:
            yield client, server
    finally:
        await server.close()


async def assert_routed(client: HudClient, name: str, url: str) -> None:
    """``url`` is the routed one (the local tunnel forwarder), not the env's endpoint."""
    native = client.find_binding(name).url
    routed = (await client.binding(name)).url
    assert url == routed
    assert urlsplit(url).hostname == "127.0.0.1"
    assert urlsplit(url).port != urlsplit(native).port


async def assert_needs_tunnel(server: Server, use: Callable[[], Awaitable[Any]]) -> None:
    """Once the env's control server is gone (and with it every tunnel), ``use()`` fails,
    although the capability's own server still runs: its traffic went through the tunnel."""
    await server.close()
    with pytest.raises(Exception):  # noqa: B017 - each client reports a lost peer its own way
        await asyncio.wait_for(use(), 15)


def needs(*binaries: str) -> pytest.MarkDecorator:
    missing = [b for b in binaries if shutil.which(b) is None]
    return pytest.mark.skipif(
        bool(missing), reason=f"needs {', '.join(missing)} (apt-get install; see .ci/apt-packages)"
    )


# == MCP ========================================================================================


def build_mcp_server() -> Any:
    try:
        from mcp.server.mcpserver import MCPServer
    except ImportError:  # mcp 1.x
        from mcp.server.fastmcp import FastMCP as MCPServer

    server = MCPServer("test-tools", log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()

    @server.tool()
    def fail(reason: str) -> str:
        """Always fails."""
        raise ValueError(reason)

    return server


class BearerGate:
    """ASGI middleware: 401 unless ``Authorization: Bearer <token>``; records what it saw."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token
        self.seen: list[str | None] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            auth = headers.get(b"authorization")
            self.seen.append(auth.decode() if auth else None)
            if auth != f"Bearer {self.token}".encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def mcp_http_server(
    token: str | None = None, *, sse: bool = False
) -> AsyncIterator[tuple[int, Any]]:
    """The SDK's MCP server over streamable HTTP (or SSE; uvicorn, in-process) on a free port."""
    import uvicorn

    mcp_server = build_mcp_server()
    app: Any = mcp_server.sse_app() if sse else mcp_server.streamable_http_app()
    gate = None
    if token is not None:
        app = gate = BearerGate(app, token)

    class Quiet(uvicorn.Server):
        def install_signal_handlers(self) -> None:
            pass

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = Quiet(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "uvicorn failed to start"
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1], gate
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@contextlib.asynccontextmanager
async def mcp_ws_server(token: str | None = None) -> AsyncIterator[int]:
    """The SDK's MCP server behind a WebSocket transport (subprotocol ``mcp``) on a free port."""
    import anyio
    from mcp.shared.message import SessionMessage
    from websockets.asyncio.server import serve
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    from hud.clients.mcp_client import _parse_message

    lowlevel = build_mcp_server()._lowlevel_server

    def check(connection: Any, request: Any) -> Any:
        if token is not None and request.headers.get("Authorization") != f"Bearer {token}":
            return Response(401, "Unauthorized", Headers(), b"unauthorized")
        return None

    async def handler(ws: Any) -> None:
        read_send, read_recv = anyio.create_memory_object_stream[Any](0)
        write_send, write_recv = anyio.create_memory_object_stream[Any](0)

        async def pump_in() -> None:
            async with read_send:
                with contextlib.suppress(Exception):
                    async for raw in ws:
                        await read_send.send(SessionMessage(_parse_message(raw)))

        async def pump_out() -> None:
            async with write_recv:
                async for item in write_recv:
                    await ws.send(item.message.model_dump_json(by_alias=True, exclude_none=True))

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump_in)
            tg.start_soon(pump_out)
            await lowlevel.run(read_recv, write_send, lowlevel.create_initialization_options())
            tg.cancel_scope.cancel()

    async with serve(
        handler, "127.0.0.1", 0, subprotocols=["mcp"], process_request=check
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield port


async def test_mcp_streamable_http_through_tunnel() -> None:
    async with (
        mcp_http_server() as (port, _),
        served(Capability.mcp(f"http://127.0.0.1:{port}/mcp")) as (client, server),
    ):
        tools = await client.open("tools")
        assert isinstance(tools, MCPClient)
        assert tools.transport == "streamable-http"
        await assert_routed(client, "tools", tools.url)
        assert await client.open("mcp") is tools  # cached per name, found by family too
        listed = {t["name"]: t for t in await tools.list_tools()}
        assert set(listed) == {"add", "shout", "fail"}
        assert listed["add"]["description"] == "Add two integers."
        assert listed["add"]["inputSchema"]["properties"].keys() == {"a", "b"}
        result = await tools.call_tool("add", {"a": 20, "b": 22})
        assert result["isError"] is False
        assert text_of(result) == "42"
        assert result["structuredContent"] == {"result": 42}
        shouted = await tools.call_tool("shout", {"text": "hi there"})
        assert shouted["content"] == [{"type": "text", "text": "HI THERE"}]
        failed = await tools.call_tool("fail", {"reason": "nope-123"})
        assert failed["isError"] is True
        assert "fail" in text_of(failed)  # mcp 2 hides the exception text, 1.x shows it
        assert tools.server["protocolVersion"]
        await assert_needs_tunnel(server, lambda: tools.call_tool("add", {"a": 1, "b": 1}))
    # HudClient.close closed the session.
    with pytest.raises(MCPError):
        await tools.list_tools()


async def test_mcp_bearer_token_is_sent() -> None:
    async with mcp_http_server(token="s3cret") as (port, gate):
        url = f"http://127.0.0.1:{port}/mcp"
        async with served(Capability.mcp(url, auth_token="s3cret")) as (client, _server):
            tools = await client.open("tools")
            assert "add" in {t["name"] for t in await tools.list_tools()}
        assert gate.seen and set(gate.seen) == {"Bearer s3cret"}
        async with served(Capability.mcp(url, auth_token="wrong")) as (client, _server):
            with pytest.raises(MCPError, match=r"MCP handshake .* failed"):
                await client.open("tools")
        assert gate.seen[-1] == "Bearer wrong"


async def test_mcp_websocket_through_tunnel() -> None:
    async with (
        mcp_ws_server(token="tok") as port,
        served(Capability.mcp(f"ws://127.0.0.1:{port}/", auth_token="tok")) as (client, server),
    ):
        tools = await client.open("tools")
        assert tools.transport == "websocket"
        await assert_routed(client, "tools", tools.url)
        assert {t["name"] for t in await tools.list_tools()} == {"add", "shout", "fail"}
        result = await tools.call_tool("add", {"a": 2, "b": 3})
        assert text_of(result) == "5" and result["isError"] is False
        assert (await tools.call_tool("fail", {"reason": "x"}))["isError"] is True
        await assert_needs_tunnel(server, tools.list_tools)


async def test_mcp_websocket_rejects_wrong_token() -> None:
    async with mcp_ws_server(token="tok") as port:
        cap = Capability.mcp(f"ws://127.0.0.1:{port}/", auth_token="bad")
        with pytest.raises((ConnectionError, MCPError)):
            await MCPClient.connect(cap, timeout=10)


async def test_mcp_sse_transport_through_tunnel() -> None:
    async with (
        mcp_http_server(sse=True) as (port, _),
        served(Capability.mcp(f"http://127.0.0.1:{port}/sse", transport="sse")) as (client, server),
    ):
        tools = await client.open("tools")
        assert tools.transport == "sse"
        await assert_routed(client, "tools", tools.url)
        assert text_of(await tools.call_tool("shout", {"text": "sse"})) == "SSE"
        await assert_needs_tunnel(server, tools.list_tools)


async def test_mcp_unreachable_is_a_connection_error() -> None:
    cap = Capability.mcp(f"http://127.0.0.1:{free_port()}/mcp")
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="cannot reach MCP server"):
        await MCPClient.connect(cap, timeout=10)
    assert time.monotonic() - started < 5


# == CDP ========================================================================================

PAGE = b"""<!doctype html><html><head><title>Tunnel page</title></head>
<body><p id="p">static</p><script>document.getElementById("p").dataset.ran = "yes";</script>
</body></html>"""


@pytest.fixture(scope="module")
def page_server() -> Iterator[str]:
    """A local web page (``<base>/page``) served from a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = PAGE if self.path == "/page" else b"not found"
            self.send_response(200 if self.path == "/page" else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[int]:
    """Headless Chromium (fresh profile); yields its DevTools port."""
    with start_chromium() as port:
        yield port


async def devtools(port: int, method: str, path: str) -> Any:
    import httpx

    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.request(method, f"http://127.0.0.1:{port}{path}")
        response.raise_for_status()
        return response.json()


async def test_cdp_runtime_evaluate_through_tunnel(chromium: int, page_server: str) -> None:
    async with served(Capability.cdp(f"ws://127.0.0.1:{chromium}")) as (client, server):
        browser = await client.open("browser")
        assert isinstance(browser, CDPClient)
        await assert_routed(client, "browser", browser.url)
        assert browser.target["type"] == "page"
        # Requests named the browser's own address as Host (so it answers with its own URLs)
        # while the bytes went to our forwarder.
        assert f"127.0.0.1:{chromium}/devtools/page/" in browser.target["webSocketDebuggerUrl"]
        version = await browser.send("Browser.getVersion")
        assert version["protocolVersion"] == "1.3"
        await browser.navigate(f"{page_server}/page")
        result = await browser.send(
            "Runtime.evaluate", {"expression": "document.title + ' ' + (6 * 7)"}
        )
        assert result["result"] == {"type": "string", "value": "Tunnel page 42"}
        assert await browser.evaluate("document.getElementById('p').dataset.ran") == "yes"
        assert await browser.evaluate("Promise.resolve(5).then(x => x * 2)") == 10
        with pytest.raises(CDPError, match="boom"):
            await browser.evaluate("(() => { throw new Error('boom') })()")
        with pytest.raises(CDPError) as info:
            await browser.send("No.suchMethod")
        assert info.value.code == -32601
        # Page domain was enabled on connect: navigation events reach the queue.
        browser.drain_events()
        await browser.send("Page.reload")
        event = await browser.next_event("Page.loadEventFired", timeout=20)
        assert event["method"] == "Page.loadEventFired"
        png = await browser.screenshot()
        assert png.startswith(b"\x89PNG")
        await assert_needs_tunnel(server, lambda: browser.evaluate("1 + 1"))


async def test_cdp_target_id_and_devtools_url(chromium: int, page_server: str) -> None:
    target = await devtools(chromium, "PUT", f"/json/new?{page_server}/page")
    try:
        cap = Capability.cdp(f"ws://127.0.0.1:{chromium}", target_id=target["id"])
        async with served(cap) as (client, _server):
            browser = await client.open("browser")
            assert browser.target_id == target["id"]
            # The new tab starts at about:blank and loads the page on its own.
            path = None
            for _ in range(200):
                with contextlib.suppress(CDPError):  # context replaced while navigating
                    path = await browser.evaluate(
                        "document.readyState === 'complete' ? location.pathname : null"
                    )
                if path == "/page":
                    break
                await asyncio.sleep(0.05)
            assert path == "/page"
        direct = urlsplit(target["webSocketDebuggerUrl"]).path
        assert direct.startswith("/devtools/page/")
        async with served(Capability.cdp(f"ws://127.0.0.1:{chromium}{direct}")) as (
            client,
            _server,
        ):
            browser = await client.open("browser")
            assert browser.target_id == target["id"]
            assert urlsplit(browser.url).path == direct
            assert await browser.evaluate("document.title") == "Tunnel page"
    finally:
        with contextlib.suppress(Exception):
            import httpx

            async with httpx.AsyncClient(trust_env=False) as http:
                await http.get(f"http://127.0.0.1:{chromium}/json/close/{target['id']}")


async def test_cdp_creates_a_page_when_there_is_none(chromium: int) -> None:
    for target in await devtools(chromium, "GET", "/json"):
        if target.get("type") == "page":
            await devtools_close(chromium, target["id"])
    for _ in range(100):
        if not [t for t in await devtools(chromium, "GET", "/json") if t["type"] == "page"]:
            break
        await asyncio.sleep(0.05)
    async with served(Capability.cdp(f"127.0.0.1:{chromium}")) as (client, _server):
        browser = await client.open("browser")
        assert await browser.evaluate("location.href") == "about:blank"
    pages = [t["id"] for t in await devtools(chromium, "GET", "/json") if t["type"] == "page"]
    assert browser.target_id in pages


async def devtools_close(port: int, target_id: str) -> None:
    import httpx

    async with httpx.AsyncClient(trust_env=False) as http:
        await http.get(f"http://127.0.0.1:{port}/json/close/{target_id}")


def test_cdp_host_header_names_the_browser() -> None:
    from hud.clients.cdp_client import _host_header

    assert _host_header("ws://127.0.0.1:9222") == "127.0.0.1:9222"
    assert _host_header("ws://[::1]:9222/devtools/page/x") == "[::1]:9222"
    assert _host_header("ws://localhost:9333") == "localhost:9333"
    # Chromium refuses Host names other than IPs and localhost: name the port on localhost.
    assert _host_header("ws://browser.internal:9222") == "localhost:9222"
    assert _host_header(None) is None


async def test_cdp_unreachable_is_a_connection_error() -> None:
    with pytest.raises(ConnectionError):
        await CDPClient.connect(Capability.cdp(f"ws://127.0.0.1:{free_port()}"), timeout=5)


# == RFB ========================================================================================

SCREEN = (320, 240)


@pytest.fixture(scope="module")
def desktop() -> Iterator[Desktop]:
    """Xvfb with x11vnc servers: one open, one with a password."""
    with screens.desktop(SCREEN, password="pa55word") as desk:
        yield desk


def pixel(png: bytes, xy: tuple[int, int]) -> tuple[int, int, int]:
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.convert("RGB").getpixel(xy)


async def test_rfb_screenshot_through_tunnel(desktop: Desktop) -> None:
    from PIL import Image

    desktop.x("xsetroot", "-solid", "#12ab34")
    async with served(Capability.rfb(f"127.0.0.1:{desktop.port}")) as (client, server):
        screen = await client.open("screen")
        assert isinstance(screen, RFBClient)
        await assert_routed(client, "screen", screen.url)
        assert screen.version == "3.8"
        png = await screen.screenshot()
        image = Image.open(io.BytesIO(png))
        assert image.size == SCREEN
        assert pixel(png, (4, 4)) == (0x12, 0xAB, 0x34)
        assert pixel(png, (SCREEN[0] - 3, SCREEN[1] - 3)) == (0x12, 0xAB, 0x34)
        # A second screenshot shows the screen as it is now.
        desktop.x("xsetroot", "-solid", "#ff8000")
        for _ in range(50):
            if pixel(await screen.screenshot(), (4, 4)) == (0xFF, 0x80, 0x00):
                break
            await asyncio.sleep(0.05)
        assert pixel(await screen.screenshot(), (4, 4)) == (0xFF, 0x80, 0x00)
        webp = await screen.screenshot(format="webp")
        assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP"
        await assert_needs_tunnel(server, screen.screenshot)


async def test_rfb_raw_encoding_through_tunnel(desktop: Desktop) -> None:
    desktop.x("xsetroot", "-solid", "#0000fe")
    async with served(Capability.rfb(f"127.0.0.1:{desktop.port}")) as (client, _server):
        routed = await client.binding("screen")
        async with await RFBClient.connect(routed, encodings=(ENC_RAW,)) as screen:
            png = await screen.screenshot()
            assert screen.size == SCREEN
            assert pixel(png, (10, 200)) == (0, 0, 0xFE)


async def test_rfb_keys_reach_the_x_server(desktop: Desktop) -> None:
    async with served(Capability.rfb(f"127.0.0.1:{desktop.port}")) as (client, _server):
        screen = await client.open("screen")
        before = desktop.caps_lock()
        await screen.key("Caps_Lock")
        for _ in range(50):
            if desktop.caps_lock() != before:
                break
            await asyncio.sleep(0.05)
        assert desktop.caps_lock() != before
        await screen.key(keysym("caps_lock"), True)
        await screen.key(keysym("caps_lock"), False)
        for _ in range(50):
            if desktop.caps_lock() == before:
                break
            await asyncio.sleep(0.05)
        assert desktop.caps_lock() == before


async def test_rfb_pointer_moves_the_cursor(desktop: Desktop) -> None:
    """x11vnc paints the cursor into the framebuffer: it shows up where we moved it."""
    desktop.x("xsetroot", "-solid", "#000000")
    async with served(Capability.rfb(f"127.0.0.1:{desktop.port}")) as (client, _server):
        screen = await client.open("screen")

        async def drawn_near(x: int, y: int) -> bool:
            from PIL import Image

            image = Image.open(io.BytesIO(await screen.screenshot())).convert("RGB")
            box = image.crop((max(0, x - 12), max(0, y - 12), x + 12, y + 12))
            return any(high > 0 for _, high in box.getextrema())

        for target in ((40, 50), (250, 180)):
            await screen.pointer(*target)
            for _ in range(50):
                if await drawn_near(*target):
                    break
                await asyncio.sleep(0.05)
            assert await drawn_near(*target)
        assert not await drawn_near(40, 50)
        await screen.click(100, 100)  # press and release: no error


async def test_rfb_vnc_password(desktop: Desktop) -> None:
    desktop.x("xsetroot", "-solid", "#224466")
    good = Capability.rfb(f"127.0.0.1:{desktop.secure_port}", password=desktop.password)
    async with served(good) as (client, _server):
        screen = await client.open("screen")
        assert pixel(await screen.screenshot(), (4, 4)) == (0x22, 0x44, 0x66)
    with pytest.raises(RFBAuthError, match="authentication failed"):
        await RFBClient.connect(
            Capability.rfb(f"127.0.0.1:{desktop.secure_port}", password="wrong"), timeout=10
        )
    with pytest.raises(RFBAuthError, match="requires a password"):
        await RFBClient.connect(Capability.rfb(f"127.0.0.1:{desktop.secure_port}"), timeout=10)


async def test_rfb_unreachable_and_not_vnc() -> None:
    with pytest.raises(ConnectionError):
        await RFBClient.connect(Capability.rfb(f"127.0.0.1:{free_port()}"), timeout=5)

    async def not_vnc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_vnc, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(RFBError, match="not a VNC server"):
            await RFBClient.connect(Capability.rfb(f"127.0.0.1:{port}"), timeout=5)
    finally:
        server.close()


def test_keysyms() -> None:
    assert keysym("a") == 0x61 and keysym("A") == 0x41
    assert keysym("Return") == keysym("enter") == 0xFF0D
    assert keysym("ctrl") == 0xFFE3 and keysym("F5") == 0xFFC2
    assert keysym(0x1234) == 0x1234
    assert char_keysym("\n") == 0xFF0D and char_keysym("é") == 0xE9
    assert char_keysym("€") == 0x010020AC
    with pytest.raises(ValueError, match="unknown key"):
        keysym("nosuchkey")


# == registration ===============================================================================


def test_open_knows_the_capability_protocols() -> None:
    """Our clients are found by lookup (no registry filled when a module is imported)."""
    from hud.clients import CDPClient, MCPClient, RFBClient, SSHClient, client_factory
    from hud.clients.capability_clients import CAPABILITY_CLIENTS

    assert CAPABILITY_CLIENTS == {}
    expected = {"mcp/2025-11-25": MCPClient, "cdp/1.3": CDPClient, "rfb/3.8": RFBClient}
    expected["ssh/2"] = SSHClient
    for protocol, cls in expected.items():
        assert client_factory(protocol) == cls.connect
    assert client_factory("weird/9") is None
