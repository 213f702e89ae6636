"""`hud.clients`: the control-channel client against scripted servers and a real one."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest

from hud.capabilities import Capability
from hud.clients import (
    HudClient,
    HudProtocolError,
    connect,
    grade_score,
    parse_address,
    register_capability_client,
    routed_url,
)
from hud.clients import client as client_module
from hud.environment import Environment
from hud.environment.server import bind

# -- scripted servers --------------------------------------------------------------------------

Handler = Callable[["Conn"], Awaitable[None]]


class Conn:
    """One accepted connection of a `Scripted` server."""

    def __init__(
        self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.index = index
        self.reader = reader
        self.writer = writer
        self.frames: list[dict[str, Any]] = []

    async def recv(self) -> dict[str, Any] | None:
        line = await self.reader.readline()
        if not line:
            return None
        frame = json.loads(line)
        self.frames.append(frame)
        return frame

    async def send(self, frame: Any) -> None:
        self.writer.write(json.dumps(frame).encode() + b"\n")
        await self.writer.drain()

    async def reply(self, request: dict[str, Any], result: Any) -> None:
        await self.send({"jsonrpc": "2.0", "id": request["id"], "result": result})

    async def hello_reply(self, request: dict[str, Any], bindings: list | None = None) -> None:
        await self.reply(
            request,
            {
                "session_id": f"sess-{self.index:08x}",
                "env": {"name": "scripted", "version": "1"},
                "bindings": bindings or [],
            },
        )


class Scripted:
    """A tiny asyncio server running ``handler(conn)`` per connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.conns: list[Conn] = []
        self.closed: list[int] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._on, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for conn in self.conns:
            conn.writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"tcp://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _on(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(len(self.conns), reader, writer)
        self.conns.append(conn)
        try:
            await self.handler(conn)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.closed.append(conn.index)


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def hello_then(script: Callable[[Conn, dict[str, Any]], Awaitable[None]]) -> Handler:
    """Answer the readiness ``hello``, then run ``script(conn, next_request)``."""

    async def handler(conn: Conn) -> None:
        first = await conn.recv()
        assert first is not None and first["method"] == "hello"
        await conn.hello_reply(first)
        request = await conn.recv()
        if request is not None:
            await script(conn, request)
        while await conn.recv() is not None:
            pass

    return handler


# -- envelope handling -----------------------------------------------------------------------


async def test_request_frames_and_ids() -> None:
    async def script(conn: Conn, request: dict[str, Any]) -> None:
        await conn.reply(request, {"tasks": []})
        request = await conn.recv()
        assert request is not None
        await conn.reply(request, {"cancelled": True})

    async with Scripted(hello_then(script)) as srv, connect(srv.url, heartbeat=None) as client:
        assert client.session_id == "sess-00000000"
        assert client.env_info == {"name": "scripted", "version": "1"}
        assert await client.list_tasks() == []
        assert await client.cancel() == {"cancelled": True}
    frames = srv.conns[0].frames
    assert [f["id"] for f in frames] == [1, 2, 3]
    assert [f["method"] for f in frames] == ["hello", "tasks.list", "tasks.cancel"]
    assert frames[0] == {"jsonrpc": "2.0", "id": 1, "method": "hello", "params": {}}
    assert all(f["jsonrpc"] == "2.0" and isinstance(f["params"], dict) for f in frames)
    assert not any(f["method"] == "bye" for f in frames), "close() never sends bye"


async def test_reply_id_mismatch_aborts_transport() -> None:
    async def script(conn: Conn, request: dict[str, Any]) -> None:
        await conn.send({"jsonrpc": "2.0", "id": request["id"] + 100, "result": {"tasks": []}})

    async with Scripted(hello_then(script)) as srv, connect(srv.url, heartbeat=None) as client:
        with pytest.raises(HudProtocolError) as info:
            await client.list_tasks()
        assert info.value.code == -32603
        assert info.value.message == "'tasks.list': reply id did not match request"
        assert str(info.value) == f"hud rpc error -32603: {info.value.message}"
        assert not client.connected
        # the server sees the connection go away
        await wait_until(lambda: 0 in srv.closed)
        with pytest.raises(ConnectionError):
            await client.list_tasks()


async def test_unsolicited_frame_is_an_id_mismatch() -> None:
    async def script(conn: Conn, request: dict[str, Any]) -> None:
        await conn.send({"jsonrpc": "2.0", "method": "notify", "params": {}})
        await conn.reply(request, {"tasks": []})

    async with Scripted(hello_then(script)) as srv, connect(srv.url, heartbeat=None) as client:
        with pytest.raises(HudProtocolError) as info:
            await client.list_tasks()
        assert info.value.code == -32603
        assert not client.connected


@pytest.mark.parametrize("result", [[1, 2], "ok", 5, None, True])
async def test_non_object_result(result: Any) -> None:
    async def script(conn: Conn, request: dict[str, Any]) -> None:
        await conn.reply(request, result)

    async with Scripted(hello_then(script)) as srv, connect(srv.url, heartbeat=None) as client:
        with pytest.raises(HudProtocolError) as info:
            await client.call("tasks.cancel")
        assert info.value.code == -32603
        assert info.value.message == "'tasks.cancel': result was not an object"


async def test_tasks_not_a_list() -> None:
    async def script(conn: Conn, request: dict[str, Any]) -> None:
        await conn.reply(request, {"tasks": {"a": 1}})

    async with Scripted(hello_then(script)) as srv, connect(srv.url, heartbeat=None) as client:
        with pytest.raises(HudProtocolError) as info:
            await client.list_tasks()
        assert info.value.code == -32603


async def test_error_frame_raises_with_code_and_message() -> None:
    async def script(conn: Conn, request: dict[str, Any]) -> None:
        await conn.send(
            {
                "jsonrpc": "2.0",
                "id": request["id"],
                "error": {"code": -32602, "message": "unknown task: 'nope'"},
            }
        )
        request = await conn.recv()
        assert request is not None
        await conn.reply(request, {"tasks": []})

    async with Scripted(hello_then(script)) as srv, connect(srv.url, heartbeat=None) as client:
        with pytest.raises(HudProtocolError) as info:
            await client.start("nope")
        assert (info.value.code, info.value.message) == (-32602, "unknown task: 'nope'")
        assert str(info.value) == "hud rpc error -32602: unknown task: 'nope'"
        # an error frame does not break the connection
        assert client.connected
        assert await client.list_tasks() == []
    assert srv.conns[0].frames[1]["params"] == {"id": "nope", "args": {}}


async def test_eof_during_call() -> None:
    async def script(conn: Conn, request: dict[str, Any]) -> None:
        conn.writer.close()

    async with Scripted(hello_then(script)) as srv, connect(srv.url, heartbeat=None) as client:
        with pytest.raises(EOFError) as info:
            await client.start("x", {"a": 1})
        assert str(info.value) == "env closed connection during 'tasks.start'"
        assert not client.connected


@pytest.mark.parametrize(
    ("frame", "score"),
    [
        ({"score": 1}, 1.0),
        ({"score": 0.25, "done": True}, 0.25),
        ({"score": True}, 1.0),  # G7: our client accepts bools
        ({"score": False}, 0.0),
    ],
)
def test_grade_score_accepts_numbers_and_bools(frame: dict, score: float) -> None:
    assert grade_score(frame) == score
    assert type(grade_score(frame)) is float


@pytest.mark.parametrize("frame", [{}, {"score": "1"}, {"score": None}, {"reward": 1.0}])
def test_grade_score_rejects_non_numbers(frame: dict) -> None:
    with pytest.raises(HudProtocolError) as info:
        grade_score(frame)
    assert info.value.code == -32603
    assert info.value.message == "tasks.grade: result must include a numeric 'score'"


async def test_grade_sends_answer_and_checks_score() -> None:
    async def script(conn: Conn, request: dict[str, Any]) -> None:
        await conn.reply(request, {"score": 0.5, "extra": 1})
        request = await conn.recv()
        assert request is not None
        await conn.reply(request, {"done": True})

    async with Scripted(hello_then(script)) as srv, connect(srv.url, heartbeat=None) as client:
        assert await client.grade("4", task_id="count", args={"n": 1}) == {
            "score": 0.5,
            "extra": 1,
        }
        with pytest.raises(HudProtocolError) as info:
            await client.grade(None)
        assert info.value.code == -32603
    frames = srv.conns[0].frames
    assert frames[1]["params"] == {"answer": "4", "id": "count", "args": {"n": 1}}
    assert frames[2]["params"] == {"answer": None}


def test_parse_address() -> None:
    assert parse_address("tcp://10.0.0.1:9000") == ("10.0.0.1", 9000)
    assert parse_address("localhost:1234") == ("localhost", 1234)
    assert parse_address("example.org") == ("example.org", 8765)
    with pytest.raises(NotImplementedError, match="only tcp://"):
        parse_address("ws://127.0.0.1:1")


# -- readiness --------------------------------------------------------------------------------


async def test_accept_then_eof_during_hello_is_retried() -> None:
    async def handler(conn: Conn) -> None:
        if conn.index < 2:
            # a proxy that accepts before the env is serving: hang up at the handshake
            if conn.index == 1:
                await conn.recv()
            conn.writer.close()
            return
        first = await conn.recv()
        assert first is not None
        await conn.hello_reply(first)
        while await conn.recv() is not None:
            pass

    async with Scripted(handler) as srv, connect(srv.url, heartbeat=None) as client:
        assert client.session_id == "sess-00000002"
        assert len(srv.conns) == 3


async def test_connection_refused_is_retried_until_ready() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = Environment(name="late")

    async def start_later() -> Any:
        await asyncio.sleep(0.3)
        return await bind(env, port=port)

    starter = asyncio.create_task(start_later())
    async with connect(f"127.0.0.1:{port}", ready_timeout=20, heartbeat=None) as client:
        assert client.env_info["name"] == "late"
    await (await starter).close()


async def test_error_frame_during_hello_is_fatal() -> None:
    async def handler(conn: Conn) -> None:
        first = await conn.recv()
        assert first is not None
        await conn.send(
            {"jsonrpc": "2.0", "id": first["id"], "error": {"code": -32000, "message": "no"}}
        )
        while await conn.recv() is not None:
            pass

    async with Scripted(handler) as srv:
        with pytest.raises(HudProtocolError) as info:
            async with connect(srv.url, ready_timeout=30, heartbeat=None):
                pass
        assert (info.value.code, info.value.message) == (-32000, "no")
        assert len(srv.conns) == 1, "an RPC error is not retried"


async def hang_up(conn: Conn) -> None:
    conn.writer.close()


async def test_ready_timeout_from_runtime_params() -> None:
    async with Scripted(hang_up) as srv:
        runtime = SimpleNamespace(url=srv.url, params={"ready_timeout": 0.3})
        with pytest.raises(TimeoutError):
            # the keyword default is far longer than the outer guard: params must win
            await asyncio.wait_for(_enter(runtime, ready_timeout=600), 20)
        assert len(srv.conns) >= 1


async def test_ready_timeout_keyword() -> None:
    async with Scripted(hang_up) as srv:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_enter(srv.url, ready_timeout=0.3), 20)


async def never_answers(conn: Conn) -> None:
    """A listener that accepts and reads but never replies."""
    while await conn.recv() is not None:
        pass


@pytest.mark.parametrize("pipeline", [False, True])
async def test_ready_timeout_bounds_an_unanswered_hello(pipeline: bool) -> None:
    """The readiness ``hello`` has a deadline: a server that accepts but never answers fails
    after ``ready_timeout`` (the outer guard only catches a hang)."""
    async with Scripted(never_answers) as srv:
        with pytest.raises(TimeoutError, match=r"not ready.*no reply to hello"):

            async def use() -> None:
                async with connect(
                    srv.url, ready_timeout=0.5, heartbeat=None, pipeline=pipeline
                ) as client:
                    await client.list_tasks()

            await asyncio.wait_for(use(), 30)
        assert srv.conns


async def test_connection_refused_fails_fast_with_a_clear_message() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionRefusedError, match=f"nothing is listening at .*:{port}"):
        # ready_timeout is far longer than the outer guard: refusal must end it first
        await asyncio.wait_for(_enter(f"127.0.0.1:{port}", ready_timeout=600), 30)


@pytest.mark.parametrize("bad", [True, -1, 0, float("nan"), float("inf"), "5"])
def test_ready_timeout_param_validation(bad: Any) -> None:
    runtime = SimpleNamespace(url="tcp://127.0.0.1:1", params={"ready_timeout": bad})
    assert client_module._ready_timeout(runtime, 7.0) == 7.0
    good = SimpleNamespace(url="tcp://127.0.0.1:1", params={"ready_timeout": 2})
    assert client_module._ready_timeout(good, 7.0) == 2.0


async def _enter(runtime: Any, **kwargs: Any) -> None:
    async with connect(runtime, heartbeat=None, **kwargs):
        pass


async def test_runtime_object_and_token_param() -> None:
    async def handler(conn: Conn) -> None:
        first = await conn.recv()
        assert first is not None
        await conn.hello_reply(first)
        while await conn.recv() is not None:
            pass

    async with Scripted(handler) as srv:
        runtime = SimpleNamespace(url=srv.url, params={"token": "tok"})
        async with connect(runtime, heartbeat=None) as client:
            assert client.session_id == "sess-00000000"
        assert srv.conns[0].frames[0]["params"] == {"auth_token": "tok"}


async def test_token_sent_in_first_frame_only() -> None:
    async def script(conn: Conn, request: dict[str, Any]) -> None:
        await conn.reply(request, {"tasks": []})

    async with (
        Scripted(hello_then(script)) as srv,
        connect(srv.url, token="tok", heartbeat=None) as client,
    ):
        await client.list_tasks()
    frames = srv.conns[0].frames
    assert frames[0]["params"] == {"auth_token": "tok"}
    assert "auth_token" not in frames[1]["params"]


# -- pipelined hello (connect(..., pipeline=True)) ---------------------------------------------


def answer_all(bindings: list | None = None) -> Handler:
    """Answer every request in order: hello with a manifest, anything else with ``{}``."""

    async def handler(conn: Conn) -> None:
        while (request := await conn.recv()) is not None:
            if request["method"] == "hello":
                await conn.hello_reply(request, bindings)
            else:
                await conn.reply(request, {"method": request["method"]})

    return handler


async def test_pipelined_hello_is_read_with_the_first_call() -> None:
    async with (
        Scripted(answer_all()) as srv,
        connect(srv.url, heartbeat=None, pipeline=True) as client,
    ):
        assert await client.call("tasks.start", {"id": "t"}) == {"method": "tasks.start"}
        assert client.session_id == "sess-00000000"
        assert client.env_info == {"name": "scripted", "version": "1"}
        assert await client.cancel() == {"method": "tasks.cancel"}
    frames = srv.conns[0].frames
    assert [(f["id"], f["method"]) for f in frames] == [
        (1, "hello"),
        (2, "tasks.start"),
        (3, "tasks.cancel"),
    ]
    assert frames[0]["params"] == {}


async def test_pipelined_hello_ready_and_binding_wait_for_the_reply() -> None:
    async with (
        Scripted(answer_all(BINDINGS)) as srv,
        connect(srv.url, heartbeat=None, pipeline=True) as client,
    ):
        shell = await client.binding("shell")  # waits for the hello reply
        assert shell.native_url == "ssh://agent:pw@127.0.0.1:2222"
        await client.ready()  # nothing pending: no-op
        assert [f["method"] for f in srv.conns[0].frames] == ["hello"]


async def test_pipelined_hello_token_in_the_hello_only() -> None:
    async with (
        Scripted(answer_all()) as srv,
        connect(srv.url, heartbeat=None, pipeline=True, token="tok") as client,
    ):
        await client.cancel()
    frames = srv.conns[0].frames
    assert frames[0]["params"] == {"auth_token": "tok"}
    assert "auth_token" not in frames[1]["params"]


async def test_pipelined_hello_readiness_retry_resends_the_request() -> None:
    async def handler(conn: Conn) -> None:
        if conn.index < 2:
            # a proxy that accepts before the env is serving: hang up at the handshake
            await conn.recv()
            conn.writer.close()
            return
        await answer_all()(conn)

    async with (
        Scripted(handler) as srv,
        connect(srv.url, heartbeat=None, pipeline=True) as client,
    ):
        assert await client.cancel() == {"method": "tasks.cancel"}
        assert client.session_id == "sess-00000002"
    assert len(srv.conns) == 3
    assert [(f["id"], f["method"]) for f in srv.conns[2].frames] == [
        (1, "hello"),
        (2, "tasks.cancel"),
    ]


async def test_pipelined_hello_readiness_timeout() -> None:
    async with (
        Scripted(hang_up) as srv,
        connect(srv.url, heartbeat=None, pipeline=True, ready_timeout=0.3) as client,
    ):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.cancel(), 20)
        assert not client.connected


async def test_pipelined_hello_rpc_error_is_raised_by_the_first_call() -> None:
    async def handler(conn: Conn) -> None:
        first = await conn.recv()
        assert first is not None
        await conn.send(
            {"jsonrpc": "2.0", "id": first["id"], "error": {"code": -32001, "message": "no"}}
        )
        conn.writer.close()

    async with (
        Scripted(handler) as srv,
        connect(srv.url, heartbeat=None, pipeline=True) as client,
    ):
        with pytest.raises(HudProtocolError) as info:
            await client.start("t")
        assert (info.value.code, info.value.message) == (-32001, "no")
        assert not client.connected
        with pytest.raises(ConnectionError):
            await client.cancel()
    assert len(srv.conns) == 1, "an RPC error is not retried"


async def test_pipelined_heartbeat_resumes_the_session_of_its_hello() -> None:
    """A heartbeat before any call still reads the pipelined hello first (for its session)."""
    async with (
        Scripted(answer_all()) as srv,
        connect(srv.url, heartbeat=None, pipeline=True) as client,
    ):
        await client.heartbeat()
        assert client.session_id == "sess-00000000"
    frames = srv.conns[0].frames
    assert [f["method"] for f in frames] == ["hello", "hello"]
    assert frames[1]["params"] == {"session_id": "sess-00000000"}


async def test_pipelined_hello_against_real_server() -> None:
    env = Environment(name="pipe")

    @env.template(description="echo")
    async def echo(word: str = "hi"):  # type: ignore[no-untyped-def]
        answer = yield f"say {word}"
        yield 1.0 if answer == word else 0.0

    srv = await bind(env)
    try:
        for _ in range(3):
            async with connect(srv.url, heartbeat=None, pipeline=True) as client:
                frame = await client.start("echo", {"word": "yo"})
                assert frame == {"prompt": "say yo"}
                assert client.env_info["name"] == "pipe"
                assert (await client.grade("yo"))["score"] == 1.0
    finally:
        await srv.close()


async def test_client_built_from_streams_with_the_official_shapes() -> None:
    """``HudClient(reader, writer)`` as the official client is built, then its method names:
    ``hello()`` -> Manifest attributes, ``start_task(id, args)``, ``grade({"answer": ...})``."""
    env = Environment(name="streams", version="2.0")

    @env.template(description="echo")
    async def echo(word: str = "hi"):  # type: ignore[no-untyped-def]
        answer = yield f"say {word}"
        yield 1.0 if answer == word else 0.0

    srv = await bind(env)
    try:
        host, port = parse_address(srv.url)
        reader, writer = await asyncio.open_connection(host, port)
        client = HudClient(reader, writer)
        try:
            manifest = await client.hello()
            assert manifest.session_id == client.session_id and manifest.session_id
            assert (manifest.server_info.name, manifest.server_info.version) == ("streams", "2.0")
            assert manifest.protocol_version == "hud/1.0" and manifest.bindings == []
            assert [t["id"] for t in await client.list_tasks()] == ["echo"]
            assert await client.start_task("echo", {"word": "yo"}) == {"prompt": "say yo"}
            assert (await client.grade({"answer": "yo"}))["score"] == 1.0
            await client.start_task("echo", {"word": "a"})
            assert (await client.grade(answer={"answer": "a"}))["score"] == 0.0  # a dict answer
        finally:
            await client.close()
        assert client.url == f"tcp://{host}:{port}"
    finally:
        await srv.close()


# -- heartbeat --------------------------------------------------------------------------------


def answering(conn_hellos: list[dict[str, Any]], *, fail_after: int | None = None) -> Handler:
    """Answer every request; after ``fail_after`` heartbeats reply with an error frame."""

    async def handler(conn: Conn) -> None:
        while (request := await conn.recv()) is not None:
            if request["method"] == "hello" and request["params"].get("session_id"):
                conn_hellos.append(request)
                if fail_after is not None and len(conn_hellos) > fail_after:
                    await conn.send(
                        {
                            "jsonrpc": "2.0",
                            "id": request["id"],
                            "error": {"code": -32600, "message": "nope"},
                        }
                    )
                    continue
            if request["method"] == "hello":
                await conn.hello_reply(request)
            else:
                await conn.reply(request, {"tasks": []})

    return handler


async def test_heartbeat_sends_hello_with_own_session_id() -> None:
    beats: list[dict[str, Any]] = []
    async with (
        Scripted(answering(beats)) as srv,
        connect(srv.url, heartbeat=0.05) as client,
    ):
        await wait_until(lambda: len(beats) >= 3)
        # calls interleave with heartbeats under the lock: ids stay in order
        assert await client.list_tasks() == []
        await wait_until(lambda: len(beats) >= 4)
    frames = srv.conns[0].frames
    assert [f["id"] for f in frames] == list(range(1, len(frames) + 1))
    for beat in beats:
        assert beat["params"] == {"session_id": "sess-00000000"}
    assert len(srv.conns) == 1


async def test_heartbeat_stops_after_rpc_error() -> None:
    beats: list[dict[str, Any]] = []
    async with (
        Scripted(answering(beats, fail_after=1)) as srv,
        connect(srv.url, heartbeat=0.05) as client,
    ):
        await wait_until(lambda: len(beats) >= 2)
        await asyncio.sleep(0.4)
        assert len(beats) == 2, "the heartbeat stops after an RPC error"
        assert client.connected
        assert await client.list_tasks() == []


async def test_heartbeat_failure_cancels_owner() -> None:
    async def handler(conn: Conn) -> None:
        first = await conn.recv()
        assert first is not None
        await conn.hello_reply(first)
        await conn.recv()  # the first heartbeat: hang up instead of answering
        conn.writer.close()

    reached = asyncio.Event()

    async def owner(url: str) -> None:
        async with connect(url, heartbeat=0.05):
            reached.set()
            await asyncio.sleep(60)

    async with Scripted(handler) as srv:
        task = asyncio.create_task(owner(srv.url))
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
        assert reached.is_set()
        assert task.cancelled()


async def test_heartbeat_refreshes_bindings_against_real_server() -> None:
    env = Environment(name="caps")
    srv = await bind(env)
    try:
        async with connect(srv.url, heartbeat=0.05) as client:
            assert client.bindings == []
            env.add_capability(Capability(name="x", protocol="tcp/1", url="tcp://127.0.0.1:7"))
            await wait_until(lambda: [b.name for b in client.bindings] == ["x"])
    finally:
        await srv.close()


# -- bindings ---------------------------------------------------------------------------------

BINDINGS = [
    {
        "name": "shell",
        "protocol": "ssh/2",
        "url": "ssh://agent:pw@127.0.0.1:2222",
        "params": {"user": "agent"},
    },
    {"name": "shell2", "protocol": "ssh/2", "url": "ssh://127.0.0.1:2223", "params": {}},
    {
        "name": "browser",
        "protocol": "cdp/1.3",
        "url": "ws://u:p%40ss@127.0.0.1:9222/devtools/page/1?x=1#frag",
        "params": {},
    },
    {"name": "tools", "protocol": "mcp/2025-11-25", "url": "http://127.0.0.1:8000/mcp"},
    {"name": "odd", "protocol": "weird/9", "url": "tcp://127.0.0.1:9999", "params": {}},
]


@pytest.fixture
async def bound_client() -> AsyncIterator[HudClient]:
    async def handler(conn: Conn) -> None:
        while (request := await conn.recv()) is not None:
            await conn.hello_reply(request, BINDINGS)

    async with Scripted(handler) as srv, connect(srv.url, heartbeat=None) as client:
        yield client


async def test_bindings_parsed(bound_client: HudClient) -> None:
    names = [b.name for b in bound_client.bindings]
    assert names == ["shell", "shell2", "browser", "tools", "odd"]
    tools = bound_client.find_binding("tools")
    assert tools.params == {"transport": "streamable-http"}


async def test_binding_match_by_name_protocol_family(bound_client: HudClient) -> None:
    assert bound_client.find_binding("browser").name == "browser"
    assert bound_client.find_binding("cdp/1.3").name == "browser"
    assert bound_client.find_binding("cdp").name == "browser"
    assert bound_client.find_binding("mcp").name == "tools"
    assert bound_client.find_binding("shell2").name == "shell2"
    for ref in ("ssh", "ssh/2"):
        with pytest.raises(KeyError, match="ambiguous capability") as info:
            await bound_client.binding(ref)
        assert "shell" in str(info.value) and "shell2" in str(info.value)
    with pytest.raises(KeyError, match="no capability") as info:
        await bound_client.binding("robot")
    # the official client's wording: names with their protocols
    assert "no capability 'robot' (available: shell (ssh/2), shell2 (ssh/2), browser" in str(
        info.value
    )


async def test_routed_url_keeps_userinfo_path_and_native_url(bound_client: HudClient) -> None:
    shell = await bound_client.binding("shell")
    assert shell.native_url == "ssh://agent:pw@127.0.0.1:2222"
    assert shell.url.startswith("ssh://agent:pw@127.0.0.1:")
    port = int(shell.url.rsplit(":", 1)[1])
    assert port not in (0, 2222)
    assert shell.params == {"user": "agent"} and shell.protocol == "ssh/2"
    browser = await bound_client.binding("cdp")
    assert browser.native_url == BINDINGS[2]["url"]
    prefix, rest = browser.url.split("@127.0.0.1:", 1)
    assert prefix == "ws://u:p%40ss"
    bport, tail = rest.split("/", 1)
    assert bport.isdigit() and tail == "devtools/page/1?x=1#frag"
    # cached per name
    assert (await bound_client.binding("shell")).url == shell.url
    # the original bindings are untouched
    assert bound_client.find_binding("shell").url == "ssh://agent:pw@127.0.0.1:2222"
    assert bound_client.find_binding("shell").native_url is None


def test_routed_url_function() -> None:
    assert routed_url("ssh://127.0.0.1:40123", "127.0.0.1", 51234) == "ssh://127.0.0.1:51234"
    assert routed_url("ssh://me@10.0.0.1:22", "127.0.0.1", 5) == "ssh://me@127.0.0.1:5"
    assert (
        routed_url("rfb://:secret@h:5900/x?y#z", "127.0.0.1", 6)
        == "rfb://:secret@127.0.0.1:6/x?y#z"
    )


async def test_open_unknown_protocol(bound_client: HudClient) -> None:
    with pytest.raises(ValueError, match="binding"):
        await bound_client.open("odd")
    with pytest.raises(KeyError):
        await bound_client.open("missing")


async def test_open_retries_connection_errors_and_caches(bound_client: HudClient) -> None:
    calls: list[Capability] = []

    async def factory(cap: Capability) -> Any:
        calls.append(cap)
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return SimpleNamespace(cap=cap, close=lambda: None)

    register_capability_client("weird/9", factory)
    try:
        opened = await bound_client.open("odd")
        assert len(calls) == 3
        assert opened.cap.native_url == "tcp://127.0.0.1:9999"
        assert opened.cap.url != opened.cap.native_url
        assert await bound_client.open("weird") is opened
        assert len(calls) == 3
    finally:
        client_module.CAPABILITY_CLIENTS.pop("weird/9", None)


async def test_open_gives_up_after_three_attempts(bound_client: HudClient) -> None:
    calls: list[int] = []

    async def factory(cap: Capability) -> Any:
        calls.append(1)
        raise ConnectionError("down")

    register_capability_client("weird/9", factory)
    try:
        with pytest.raises(ConnectionError):
            await bound_client.open("odd")
        assert len(calls) == 3
    finally:
        client_module.CAPABILITY_CLIENTS.pop("weird/9", None)


async def test_close_closes_forwarders_and_opened_clients() -> None:
    closed: list[str] = []

    async def handler(conn: Conn) -> None:
        while (request := await conn.recv()) is not None:
            await conn.hello_reply(request, BINDINGS)

    async def factory(cap: Capability) -> Any:
        async def aclose() -> None:
            closed.append(cap.name)

        return SimpleNamespace(close=aclose)

    register_capability_client("weird/9", factory)
    try:
        async with Scripted(handler) as srv:
            async with connect(srv.url, heartbeat=None) as client:
                shell = await client.binding("shell")
                await client.open("odd")
                port = int(shell.url.rsplit(":", 1)[1])
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
            assert closed == ["odd"]
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", port)
    finally:
        client_module.CAPABILITY_CLIENTS.pop("weird/9", None)


async def test_forwarder_tunnel_open_frame() -> None:
    """A local connection to a routed URL opens ``tunnel.open`` with id 1 on a new connection."""
    opened = asyncio.Event()

    async def handler(conn: Conn) -> None:
        first = await conn.recv()
        assert first is not None
        if first["method"] == "tunnel.open":
            await conn.reply(first, {"capability": first["params"]["capability"]})
            opened.set()
            while data := await conn.reader.read(1024):
                conn.writer.write(data[::-1])
                await conn.writer.drain()
            conn.writer.close()
            return
        await conn.hello_reply(first, BINDINGS)
        while await conn.recv() is not None:
            pass

    async with Scripted(handler) as srv, connect(srv.url, heartbeat=None) as client:
        shell = await client.binding("shell")
        port = int(shell.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"abc")
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(3), 10) == b"cba"
        writer.close()
        await opened.wait()
        tunnel = srv.conns[1].frames[0]
        assert tunnel == {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tunnel.open",
            "params": {"capability": "shell"},
        }


async def test_forwarder_closes_local_side_on_tunnel_error() -> None:
    async def handler(conn: Conn) -> None:
        first = await conn.recv()
        assert first is not None
        if first["method"] == "tunnel.open":
            await conn.send(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "error": {"code": -32000, "message": "unknown capability: 'shell'"},
                }
            )
            conn.writer.close()
            return
        await conn.hello_reply(first, BINDINGS)
        while await conn.recv() is not None:
            pass

    async with Scripted(handler) as srv, connect(srv.url, heartbeat=None) as client:
        shell = await client.binding("shell")
        port = int(shell.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()


# -- frame size -------------------------------------------------------------------------------


async def test_client_frame_limits() -> None:
    limit = 4096
    sizes: list[int] = []

    async def handler(conn: Conn) -> None:
        while (request := await conn.recv()) is not None:
            pad = request["params"].get("pad", 0)
            frame = {"jsonrpc": "2.0", "id": request["id"], "result": {"p": ""}}
            base = len(json.dumps(frame, separators=(",", ":")))
            frame["result"]["p"] = "x" * (pad - base)
            data = json.dumps(frame, separators=(",", ":")).encode()
            sizes.append(len(data))
            conn.writer.write(data + b"\n")
            await conn.writer.drain()

    async with Scripted(handler) as srv:
        client = HudClient(srv.url, max_frame=limit)
        await client.connect()
        try:
            # a reply of exactly the limit is read
            assert len((await client.call("echo", {"pad": limit}))["p"]) > 0
            assert sizes[-1] == limit
            # an outgoing frame over the limit fails before sending; the connection survives
            from hud.protocol import FrameTooLargeError

            with pytest.raises(FrameTooLargeError):
                await client.call("echo", {"blob": "b" * limit})
            assert client.connected
            assert (await client.call("echo", {"pad": 100}))["p"]
            # a reply of limit + 1 bytes is refused and the transport aborted
            with pytest.raises(ValueError):
                await client.call("echo", {"pad": limit + 1})
            assert sizes[-1] == limit + 1
            assert not client.connected
        finally:
            await client.close()
        received = [f["params"] for f in srv.conns[0].frames]
        assert not any("blob" in p for p in received), "the oversized frame was never sent"


def test_announced_ssh_binding_loads_its_library_during_connect() -> None:
    """asyncssh (~0.1 s to import) loads in a worker thread while `connect` completes when the
    manifest announces an ssh binding, so `open("shell")` is just the handshake and the loop
    never stalls on the import (a fresh interpreter: nothing imported it before)."""
    import subprocess
    import sys

    script = """
import asyncio, json, sys

async def serve(reader, writer):
    line = await reader.readline()
    rid = json.loads(line)["id"]
    binding = {"name": "shell", "protocol": "ssh/2", "url": "ssh://agent@127.0.0.1:1"}
    result = {"session_id": "sess-00000001", "env": {"name": "e", "version": "1"},
              "bindings": [binding]}
    writer.write(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode() + b"\\n")
    await writer.drain()
    await reader.read()

async def main():
    from hud.clients import connect
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    before = "asyncssh" in sys.modules
    async with connect(f"127.0.0.1:{port}", heartbeat=None):
        print(json.dumps([before, "asyncssh" in sys.modules]))
    server.close()

asyncio.run(main())
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [False, True]
