"""Our client (`hud.clients`) driving the official server (`python -m hud.environment.server`).

One official server per module; the tests run in file order and each leaves no task parked.
Error expectations are the official server's (wire.md §5), not ours.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from hud.clients import HudClient, HudProtocolError, connect

from .helpers import INTEROP_ENV, ServerProcess, Wire, events, requires_peer, start_server

pytestmark = requires_peer

SESSION_ID = re.compile(r"^sess-[0-9a-f]{8}$")


@pytest.fixture(scope="module")
def peer() -> Iterator[ServerProcess]:
    server = start_server("peer", INTEROP_ENV)
    yield server
    server.stop()


@pytest.fixture
def url(peer: ServerProcess) -> Iterator[str]:
    yield peer.url
    # Nothing may stay parked between tests.
    with Wire(peer.port) as w:
        reply = w.request("tasks.grade", {"answer": ""})
    assert reply.get("error") == {"code": -32600, "message": "no task in progress"}, reply


async def rpc_error(coro: Any) -> tuple[int, str]:
    with pytest.raises(HudProtocolError) as info:
        await coro
    assert str(info.value) == f"hud rpc error {info.value.code}: {info.value.message}"
    return info.value.code, info.value.message


async def echo(host: str, port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    data = await reader.read()
    writer.close()
    return data


# -- handshake -------------------------------------------------------------------------
async def test_hello_and_heartbeat(url: str) -> None:
    async with connect(url, heartbeat=0.2) as c:
        sid = c.session_id
        assert sid and SESSION_ID.match(sid)
        assert c.env_info == {"name": "interop", "version": "1.2.3"}
        assert [b.name for b in c.bindings] == ["echo", "dead", "nohost", "tools"]
        assert c.features == set()
        tools = c.find_binding("tools")
        assert tools.url == "http://127.0.0.1:80/mcp"
        assert tools.params == {"transport": "streamable-http"}
        await asyncio.sleep(0.5)  # a couple of heartbeats (hello with the own id)
        result = await c.heartbeat()
        assert result["session_id"] == sid and c.session_id == sid
        assert c.connected


async def test_token_is_ignored_by_official_server(url: str) -> None:
    async with connect(url, token="secret") as c:
        frame = await c.start("greet", {"name": "t"})
        assert frame == {"prompt": "Say hello to t!"}
        assert (await c.grade("hello t")) == {"score": 1.0}
        reader, writer = await c.open_tunnel("echo")
        writer.write(b"ping")
        writer.write_eof()
        assert await reader.read() == b"ping"
        writer.close()


async def test_list_tasks(url: str) -> None:
    async with connect(url) as c:
        tasks = await c.list_tasks()
    by_id = {t["id"]: t for t in tasks}
    assert list(by_id)[:3] == ["greet", "add", "parsed"]
    assert by_id["greet"]["args"] == {
        "properties": {
            "name": {"title": "Name", "type": "string"},
            "punctuation": {"default": "!", "title": "Punctuation", "type": "string"},
        },
        "required": ["name"],
        "type": "object",
        "additionalProperties": False,
    }
    assert by_id["add"]["returns"] == {"type": "integer"}
    assert by_id["shapes"]["args"]["additionalProperties"] is True


# -- start and grade -------------------------------------------------------------------
async def test_string_answer(url: str) -> None:
    async with connect(url) as c:
        assert await c.start("greet", {"name": "bob"}) == {"prompt": "Say hello to bob!"}
        assert await c.grade("hello bob") == {"score": 1.0}
        await c.start("greet", {"name": "bob"})
        assert await c.grade("nope") == {"score": 0.0}


async def test_answer_int_and_json_coercion(url: str) -> None:
    async with connect(url) as c:
        assert await c.start("add", {"a": "2", "b": 3}) == {"prompt": "What is 2 + 3?"}
        assert await c.grade("5") == {"score": 1.0}
        await c.start("add", {"a": 2, "b": 3})
        assert await c.grade("five") == {"score": 0.0}
        await c.start("parsed")
        assert await c.grade('{"k": [1, 2]}') == {
            "score": 1.0,
            "content": {"k": [1, 2]},
            "raw": '{"k": [1, 2]}',
        }
        await c.start("parsed")
        # A non-string answer is validated as a value; raw is its str().
        assert await c.grade({"k": 1}) == {"score": 1.0, "content": {"k": 1}, "raw": "{'k': 1}"}


async def test_grade_frames(url: str) -> None:
    async with connect(url) as c:
        await c.start("evalres")
        frame = await c.grade("x")
        assert frame == {
            "done": True,
            "content": "c",
            "info": {},
            "isError": False,
            "subscores": [
                {"name": "s", "weight": 1.0, "value": 0.25, "children": None, "info": None}
            ],
            "score": 0.25,
        }
        assert list(frame) == ["done", "content", "info", "isError", "subscores", "score"]
        await c.start("dictgrade")
        frame = await c.grade("x")
        assert frame == {"score": 0.5, "info": {"a": 1}, "custom": "x"}
        assert list(frame) == ["score", "info", "custom"]
        await c.start("noreward")
        assert await c.grade("x") == {"score": 0.0}
        await c.start("boolgrade")
        # 0.6.16 sends {"score": true} (our client accepts it, G7); 0.6.21 sends 1.0.
        frame = await c.grade("x")
        assert frame["score"] in (True, 1.0)


async def test_subscore_grade_is_rejected_by_official_server(url: str) -> None:
    async with connect(url) as c:
        await c.start("subscore")
        assert await rpc_error(c.grade("x")) == (
            -32000,
            "task graded with SubScore: yield a number, an object with a numeric .reward, "
            "or a dict containing a numeric 'score'",
        )


async def test_prompt_frames(url: str) -> None:
    async with connect(url) as c:
        assert await c.start("framed") == {
            "prompt": [{"role": "user", "content": "hi"}],
            "bindings": {"echo": {"token": "t"}},
            "extra": 5,
        }
        assert await c.start("question") == {"prompt": {"question": "x"}}
        assert await c.grade("y") == {"score": 1.0}


async def test_error_frames(url: str) -> None:
    async with connect(url) as c:
        assert await rpc_error(c.start("nope")) == (-32602, "unknown task: 'nope'")
        assert await rpc_error(c.call("tasks.start", {"id": 5})) == (
            -32602,
            "tasks.start: 'id' must be a string",
        )
        assert await rpc_error(c.call("tasks.start", {"id": "greet", "args": [1]})) == (
            -32602,
            "tasks.start: 'args' must be an object",
        )
        assert await rpc_error(c.start("greet")) == (
            -32000,
            "task 'greet': bad args []: missing a required argument: 'name'",
        )
        # Reference: a KeyError before the first yield looked like an unknown task in 0.6.16;
        # 0.6.21 reports the exception text.
        assert await rpc_error(c.start("keyerr")) in [
            (-32602, "unknown task: 'keyerr'"),
            (-32000, "'boom'"),
        ]
        assert await rpc_error(c.start("crash")) == (-32000, "kaput")
        assert await rpc_error(c.start("noyield")) == (-32000, "")
        assert await rpc_error(c.grade("x")) == (-32600, "no task in progress")
        await c.start("strgrade")
        assert await rpc_error(c.grade("x")) == (
            -32000,
            "task graded with str: yield a number, an object with a numeric .reward, "
            "or a dict containing a numeric 'score'",
        )
        await c.start("noscore")
        assert await rpc_error(c.grade("x")) == (
            -32000,
            "task 'noscore' graded with a dict missing a numeric 'score' (keys: ['foo'])",
        )
        assert await rpc_error(c.call("hello", {"session_id": 5})) == (
            -32602,
            "hello: 'session_id' must be a string",
        )
        assert await rpc_error(c.call("nope.method")) == (-32601, "method not found: nope.method")
        assert await rpc_error(c.call("tunnel.open", {"capability": "echo"})) == (
            -32601,
            "method not found: tunnel.open",
        )
        # The connection survives every error.
        await c.start("greet", {"name": "z"})
        assert await c.grade("hello z") == {"score": 1.0}


async def test_cancel_and_bye(url: str, peer: ServerProcess) -> None:
    async with connect(url) as c:
        await c.start("track", {"tag": "oc1"})
        assert await c.cancel() == {"cancelled": True}
        assert events(peer.port)[-2:] == ["start:oc1", "close:oc1"]
        assert await rpc_error(c.grade("oc1")) == (-32600, "no task in progress")
        assert await c.cancel() == {"cancelled": True}
        await c.start("track", {"tag": "oc2"})
        assert await c.bye() == {"goodbye": True}
        assert events(peer.port)[-2:] == ["start:oc2", "close:oc2"]
        with pytest.raises(EOFError):
            await c.call("hello")


# -- sessions --------------------------------------------------------------------------
async def test_concurrent_grading(url: str, peer: ServerProcess) -> None:
    async with connect(url) as a, connect(url) as b:
        await a.start("track", {"tag": "oa", "delay": 0.6})
        await b.start("track", {"tag": "ob", "delay": 0.6})
        t0 = time.monotonic()
        ga, gb = await asyncio.gather(a.grade("oa"), b.grade("no"))
        assert time.monotonic() - t0 < 1.1
    assert (ga, gb) == ({"score": 1.0}, {"score": 0.0})
    assert sorted(events(peer.port)[-6:]) == sorted(
        ["start:oa", "start:ob", "answer:oa:oa", "answer:ob:no", "close:oa", "close:ob"]
    )


async def test_restart_replaces(url: str, peer: ServerProcess) -> None:
    async with connect(url) as c:
        await c.start("track", {"tag": "or1"})
        await c.start("track", {"tag": "or2"})
        assert events(peer.port)[-3:] == ["start:or1", "close:or1", "start:or2"]
        assert await c.grade("or2") == {"score": 1.0}


async def test_disconnect_parks_and_bare_grade_adopts(url: str, peer: ServerProcess) -> None:
    async with connect(url) as a:
        await a.start("track", {"tag": "op"})
    await asyncio.sleep(0.1)
    assert events(peer.port)[-1] == "start:op"
    async with connect(url) as b:
        # G9: the id is ignored by official servers, which adopt the single parked task.
        assert await b.grade("op", task_id="something-else") == {"score": 1.0}
        assert await rpc_error(b.grade("op")) == (-32600, "no task in progress")
    assert events(peer.port)[-2:] == ["answer:op:op", "close:op"]


async def test_two_parked_then_resume(url: str, peer: ServerProcess) -> None:
    ids = []
    for tag in ("oq1", "oq2"):
        async with connect(url) as c:
            await c.start("track", {"tag": tag})
            ids.append(c.session_id)
    await asyncio.sleep(0.1)
    async with connect(url) as c:
        first, second = sorted(ids)
        assert await rpc_error(c.grade("oq1")) == (
            -32600,
            f"2 parked sessions ({first}, {second}); "
            "resume one by sending hello with its session_id",
        )
        result = await c.hello(ids[0])
        assert result["session_id"] == ids[0] == c.session_id
        assert [b.name for b in c.bindings] == ["echo", "dead", "nohost", "tools"]
        assert await c.grade("oq1") == {"score": 1.0}
    async with connect(url) as d:
        await d.hello(ids[1])
        assert await d.grade("wrong") == {"score": 0.0}


async def test_unknown_and_live_sessions(url: str) -> None:
    async with connect(url) as a, connect(url) as b:
        assert await rpc_error(b.hello("sess-00000000")) == (
            -32600,
            "unknown session: 'sess-00000000'",
        )
        assert await rpc_error(b.hello(a.session_id)) == (
            -32600,
            f"session '{a.session_id}' has a live connection",
        )
        await a.start("greet", {"name": "q"})
        assert await a.grade("hello q") == {"score": 1.0}


# -- tunnels ---------------------------------------------------------------------------
async def test_binding_forwarder_round_trip(url: str) -> None:
    async with connect(url) as c:
        cap = await c.binding("echo")
        native = c.find_binding("echo").url
        assert cap.native_url == native and cap.url != native
        parts = urlsplit(cap.url)
        assert parts.scheme == "tcp" and parts.hostname == "127.0.0.1"
        payload = b"through the official server\n" * 1000
        assert await echo(parts.hostname, parts.port, payload) == payload
        payloads = [bytes([97 + i]) * (300_000 + i) for i in range(8)]
        got = await asyncio.gather(*(echo(parts.hostname, parts.port, p) for p in payloads))
        assert [g == p for g, p in zip(got, payloads, strict=True)] == [True] * 8
        assert await c.binding("echo/1") is cap
        tools = await c.binding("mcp")
        assert tools.name == "tools" and tools.native_url == "http://127.0.0.1:80/mcp"
        assert re.match(r"^http://127\.0\.0\.1:\d+/mcp$", tools.url)
        port = parts.port
    with pytest.raises(OSError):
        await echo("127.0.0.1", port, b"x")  # forwarders close with the client


async def test_open_tunnel_and_errors(url: str) -> None:
    async with connect(url) as c:
        reader, writer = await c.open_tunnel("echo")
        writer.write(b"raw bytes")
        writer.write_eof()
        assert await reader.read() == b"raw bytes"
        writer.close()
        assert await rpc_error(c.open_tunnel("nope")) == (
            -32000,
            "\"unknown capability: 'nope'\"",
        )
        assert await rpc_error(c.open_tunnel("nohost")) == (
            -32602,
            "capability 'nohost' has no host:port to tunnel to",
        )
        code, message = await rpc_error(c.open_tunnel("dead"))
        assert code == -32000 and "127.0.0.1" in message and "1" in message
        # A failed backend closes the local side of a forwarded connection.
        dead = urlsplit((await c.binding("dead")).url)
        assert await echo(dead.hostname, dead.port, b"x") == b""


async def test_client_close_without_bye_parks(url: str, peer: ServerProcess) -> None:
    client = HudClient(url)
    await client.connect()
    await client.hello()
    await client.start("track", {"tag": "ocb"})
    await client.close()
    await asyncio.sleep(0.1)
    assert events(peer.port)[-1] == "start:ocb"
    async with connect(url) as c:
        await c.hello(client.session_id)
        assert await c.grade("ocb") == {"score": 1.0}
