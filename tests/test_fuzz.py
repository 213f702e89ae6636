"""Seeded fuzzing of the control-channel server (wire.md §2-§5; gaps G1, G4, G6).

Thousands of random and mutated frames go to an in-process server over many connections, some
of them tunnels to a local echo server. Each connection draws from its own ``random.Random`` seeded
with ``HUD_FUZZ_SEED`` (default below) and its index, and every failure names both, so a failure
reproduces with ``HUD_FUZZ_SEED=<seed> pytest tests/test_fuzz.py``.

Expectations are computed by a small model of the protocol (`_Model`): a request (object with an
``id``) gets exactly one reply with that id; a notification gets none; an unparsable line gets
``-32700`` with ``id: null`` and the session survives (G4); a non-object frame gets ``-32600`` with
``id: null`` (G6). Each read has a timeout, so a hang fails instead of blocking the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from hud.clients import connect
from hud.environment import Capability, Environment
from hud.environment.server import Server, bind
from hud.protocol import (
    DEFAULT_MAX_FRAME,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SERVER_ERROR,
)

SEED = int(os.environ.get("HUD_FUZZ_SEED", "1729"))
READ_TIMEOUT = 10.0
FUZZ_TIMEOUT = 90.0
SESSION_CONNECTIONS = 600
TUNNEL_CONNECTIONS = 200
WORKERS = 12
MIN_FRAMES = 2000
KNOWN_METHODS = ("hello", "tasks.list", "tasks.start", "tasks.grade", "tasks.cancel", "bye")
TEMPLATES = ("count", "echo", "fickle")
CAPABILITIES = ("echo", "noport", "refused")
CLIENT_LIMIT = 64 * 1024 * 1024

# Characters used in random strings: escapes, control characters, non-BMP, line/paragraph
# separators and a BOM, but never a lone surrogate (see test_lone_surrogate_*).
_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzAEIOU0123456789 _-.:/'\"\\{}[],\n\r\t\x00\x1fé漢😀\u2028\u2029\ufeff"
)


# -- fixtures --------------------------------------------------------------------------------
def _closed_port() -> int:
    """A loopback port with (very probably) nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _make_env(echo_port: int) -> Environment:
    """Three templates (plain, frame-dict, error paths) and three raw TCP capabilities."""
    env = Environment(
        "fuzz",
        capabilities=[
            Capability(name="echo", protocol="tcp/1", url=f"tcp://127.0.0.1:{echo_port}"),
            Capability(name="noport", protocol="tcp/1", url="tcp://127.0.0.1"),
            Capability(name="refused", protocol="tcp/1", url=f"tcp://127.0.0.1:{_closed_port()}"),
        ],
    )

    @env.template(returns=int, description="Count vowels")
    async def count(word: str, strict: bool = False) -> Any:
        answer = yield f"How many vowels are in {word!r}?"
        expected = sum(ch in "aeiou" for ch in str(word))
        yield 1.0 if answer.content == expected else 0.0

    @env.template()
    async def echo(text: str = "hi", n: int = 1, **extra: Any) -> Any:
        if isinstance(n, int) and n < 0:
            raise ValueError("n must not be negative")
        answer = yield {"prompt": f"repeat {text!r}", "bindings": {"echo": {"n": n}}, "x": extra}
        yield {"score": float(answer == text), "info": {"n": n}}

    @env.template()
    async def fickle(mode: str = "ok") -> Any:
        if mode == "raise":
            raise KeyError(mode)
        if mode == "return":
            return
        yield "pick anything"
        yield "not a score" if mode == "bad-grade" else True

    return env


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A loopback TCP echo server that forwards half-close."""
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass
        finally:
            writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    for writer in list(writers):
        writer.transport.abort()
    await asyncio.sleep(0)


@pytest.fixture
async def server(echo_port: int) -> AsyncIterator[Server]:
    srv = await bind(_make_env(echo_port))
    try:
        yield srv
    finally:
        await srv.close()


# -- random frames ---------------------------------------------------------------------------
def _rand_str(rng: random.Random, n: int | None = None) -> str:
    n = rng.choice((0, 1, 3, 8, 20)) if n is None else n
    return "".join(rng.choice(_ALPHABET) for _ in range(n))


def _rand_scalar(rng: random.Random) -> Any:
    kind = rng.randrange(12)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.randrange(-5, 100)
    if kind == 3:
        return rng.choice((2**31, -(2**63), 2**64 + 1, 10**40))
    if kind == 4:
        return rng.choice((0.5, -0.0, 1e308, 3.0, 1e-300, float("inf"), float("nan")))
    if kind == 5:
        return rng.choice(("", "3", "banana", "true", '{"a":1}', "[1]", "null"))
    return _rand_str(rng)


def _rand_value(rng: random.Random, depth: int = 0) -> Any:
    if depth >= 3 or rng.random() < 0.6:
        return _rand_scalar(rng)
    if rng.random() < 0.5:
        return [_rand_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {_rand_str(rng): _rand_value(rng, depth + 1) for _ in range(rng.randrange(4))}


def _rand_non_object(rng: random.Random) -> Any:
    """Anything JSON except an object (for ``params`` and top-level frames)."""
    value = _rand_value(rng)
    while isinstance(value, dict):
        value = _rand_value(rng)
    return value


def _rand_id(rng: random.Random) -> Any:
    return rng.choice(
        (
            rng.randrange(1, 10**6),
            -rng.randrange(1, 100),
            0,
            rng.random() * 100,
            _rand_str(rng),
            "abc",
            [1, 2],
            [],
            {"a": _rand_scalar(rng)},
            {},
            None,
            True,
            False,
            2**70,
            1e300,
        )
    )


def _rand_method(rng: random.Random) -> Any:
    return rng.choice(
        (
            rng.randrange(100),
            1.5,
            None,
            True,
            ["hello"],
            {"name": "hello"},
            "",
            "HELLO",
            " hello",
            "hello\n",
            "tasks.",
            "tasks.nope",
            "tunnel.open",
            "rpc.discover",
            _rand_str(rng),
        )
    )


def _template_args(rng: random.Random, task: str) -> dict[str, Any]:
    if task == "count":
        args: dict[str, Any] = {"word": rng.choice(("banana", "sky", "", "aeiou", "3", "éa"))}
        if rng.random() < 0.3:
            args["strict"] = rng.choice((True, "true", 1, "no"))
        return args
    if task == "echo":
        args = {"text": rng.choice(("hi", "", "x" * 50, "ü"))}
        if rng.random() < 0.5:
            args["n"] = rng.choice((1, 0, -1, "7", "-3", 2.5))
        if rng.random() < 0.3:
            args[_rand_str(rng, 4)] = _rand_value(rng)
        return args
    return {"mode": rng.choice(("ok", "raise", "return", "bad-grade", _rand_str(rng)))}


@dataclass
class _Shared:
    """State shared by the fuzz workers."""

    sessions: list[str] = field(default_factory=list)
    frames: int = 0
    connections: int = 0


def _valid_request(rng: random.Random, rid: int, shared: _Shared) -> dict[str, Any]:
    method = rng.choices((*KNOWN_METHODS, "unknown"), weights=(3, 2, 5, 4, 2, 0.3, 1), k=1)[0]
    params: dict[str, Any] = {}
    if method == "hello" and rng.random() < 0.4:
        pool = shared.sessions
        params["session_id"] = rng.choice(pool) if pool and rng.random() < 0.7 else "sess-00000000"
    elif method == "tasks.start":
        task = rng.choice(TEMPLATES)
        params = {"id": task, "args": _template_args(rng, task)}
    elif method == "tasks.grade":
        params = {"answer": rng.choice(("3", "0", 3, None, "hi", "", {"score": 1}, ["x"]))}
        if rng.random() < 0.2:
            params["id"] = rng.choice(TEMPLATES)
    elif method == "unknown":
        method = rng.choice(("tunnel.open", "tasks.describe", "Hello", _rand_str(rng)))
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


def _mutate(rng: random.Random, frame: dict[str, Any]) -> None:
    kind = rng.randrange(10)
    if kind == 0:
        frame["id"] = _rand_id(rng)
    elif kind == 1:
        frame.pop("id", None)  # a notification
    elif kind == 2:
        frame["method"] = _rand_method(rng)
    elif kind == 3:
        frame.pop(rng.choice(("method", "params", "jsonrpc")), None)
    elif kind == 4:
        frame["params"] = _rand_non_object(rng)
    elif kind == 5:
        frame["jsonrpc"] = _rand_scalar(rng)
    elif kind == 6:
        frame[_rand_str(rng, 5)] = _rand_value(rng)
    else:
        params = frame.get("params")
        if not isinstance(params, dict):
            frame["params"] = params = {}
        key = rng.choice(("id", "args", "answer", "session_id", _rand_str(rng, 3)))
        if key == "args" and isinstance(params.get("args"), dict) and rng.random() < 0.6:
            args = params["args"]
            target = rng.choice([*args, _rand_str(rng, 4)]) if args else "word"
            args[target] = _rand_value(rng)
        else:
            params[key] = _rand_value(rng)


def _dump(rng: random.Random, frame: Any) -> bytes:
    separators = rng.choice(((",", ":"), (", ", ": "), (" , ", " : ")))
    text = json.dumps(frame, separators=separators, ensure_ascii=rng.random() < 0.5)
    if rng.random() < 0.1:
        text = rng.choice((" ", "\t", "  ")) + text + rng.choice(("", " ", "\r", "\t "))
    return text.encode("utf-8")


def _junk_line(rng: random.Random, rid: int, shared: _Shared) -> bytes:
    """A line that is not a single well-formed JSON object."""
    kind = rng.randrange(9)
    if kind == 0:  # truncated JSON
        data = _dump(rng, _valid_request(rng, rid, shared))
        return data[: rng.randrange(1, len(data))]
    if kind == 1:  # binary junk (never a newline: that would split the line)
        return bytes(b if b != 10 else 0 for b in rng.randbytes(rng.randrange(1, 200)))
    if kind == 2:  # invalid UTF-8 inside an otherwise valid request
        bad = rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"))
        return b'{"jsonrpc":"2.0","id":%d,"method":"hello","params":{"x":"' % rid + bad + b'"}}'
    if kind == 3:  # blank-ish lines
        return rng.choice((b"", b" ", b"\t", b"\r", b"  \r", b"\x0b"))
    if kind == 4:  # valid JSON, not an object (incl. a batch array)
        if rng.random() < 0.3:
            batch = [_valid_request(rng, rid + i, shared) for i in range(rng.randrange(1, 3))]
            return _dump(rng, batch)
        return _dump(rng, _rand_non_object(rng))
    if kind == 5:  # trailing garbage / two frames on one line
        data = _dump(rng, _valid_request(rng, rid, shared))
        return data + rng.choice((b"}", b" x", b"{}", data, b",", b"\x00"))
    if kind == 6:  # a UTF-8 BOM, single quotes, comments: not JSON
        return rng.choice(
            (
                b'\xef\xbb\xbf{"id":1,"method":"hello"}',
                b"{'id':1,'method':'hello'}",
                b'{"id":1,"method":"hello"} // hi',
                b'{"id":1,"method":"hello",}',
            )
        )
    if kind == 7:  # random printable text
        return _rand_str(rng, rng.randrange(1, 60)).replace("\n", " ").encode()
    return b"{" * rng.randrange(1, 20) + b"}" * rng.randrange(0, 20)


def _fuzz_line(rng: random.Random, rid: int, shared: _Shared) -> bytes:
    roll = rng.random()
    if roll < 0.3:
        return _junk_line(rng, rid, shared)
    frame = _valid_request(rng, rid, shared)
    if roll < 0.85:
        for _ in range(rng.choice((1, 1, 2, 3))):
            _mutate(rng, frame)
    return _dump(rng, frame)


# -- the model -------------------------------------------------------------------------------
@dataclass
class _Expected:
    """One reply the server owes: the canonical id, and the code/method when predictable."""

    id: str
    code: int | None = None
    method: str | None = None
    closes: bool = False


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class _TunnelFirst(Exception):
    """The first object frame would open a tunnel (not wanted in a control session)."""


@dataclass
class _Model:
    """What the server must answer to each line of a control session."""

    first: bool = True
    closed: bool = False

    def feed(self, line: bytes) -> _Expected | None:
        """The reply owed for ``line`` (newline excluded), or None for no reply."""
        assert not self.closed, "frame sent after the session closed"
        try:
            obj = json.loads(line.decode("utf-8"))
        except ValueError:  # includes UnicodeDecodeError
            return _Expected(_canon(None), PARSE_ERROR)
        if not isinstance(obj, dict):
            return _Expected(_canon(None), INVALID_REQUEST)
        method = obj.get("method", "")
        if self.first and method == "tunnel.open":
            raise _TunnelFirst
        self.first = False
        params = obj.get("params")
        code: int | None = None
        if isinstance(method, str):
            if method not in KNOWN_METHODS:
                code = METHOD_NOT_FOUND
            elif params is not None and not isinstance(params, dict):
                code = INVALID_PARAMS
        closes = method == "bye" and code is None
        self.closed = closes
        if "id" not in obj:
            if "method" not in obj or not isinstance(method, str):
                return _Expected(_canon(None), INVALID_REQUEST)  # not even a notification
            return None
        known = method if isinstance(method, str) and method in KNOWN_METHODS else None
        return _Expected(_canon(obj["id"]), code, known, closes)


def _check_reply(line: bytes, want: _Expected, where: str) -> dict[str, Any]:
    assert line.endswith(b"\n"), f"{where}: reply not newline-terminated: {line[:200]!r}"
    assert line.count(b"\n") == 1
    reply = json.loads(line)
    assert isinstance(reply, dict), f"{where}: reply not an object: {line[:200]!r}"
    assert reply.get("jsonrpc") == "2.0", f"{where}: {reply}"
    assert "id" in reply, f"{where}: reply without id: {reply}"
    assert _canon(reply["id"]) == want.id, f"{where}: reply id {reply['id']!r}, want {want.id}"
    assert ("result" in reply) != ("error" in reply), f"{where}: {reply}"
    if "error" in reply:
        error = reply["error"]
        assert isinstance(error, dict) and set(error) == {"code", "message"}, f"{where}: {reply}"
        assert isinstance(error["code"], int) and isinstance(error["message"], str)
        if want.code is not None:
            assert error["code"] == want.code, f"{where}: want code {want.code}, got {reply}"
        return reply
    assert want.code is None, f"{where}: want error {want.code}, got {reply}"
    result = reply["result"]
    assert isinstance(result, dict), f"{where}: result not an object: {reply}"
    if want.method == "hello":
        assert isinstance(result.get("session_id"), str), f"{where}: {reply}"
    elif want.method == "tasks.list":
        assert isinstance(result.get("tasks"), list), f"{where}: {reply}"
    elif want.method == "tasks.start":
        assert "prompt" in result, f"{where}: {reply}"
    elif want.method == "tasks.grade":
        score = result.get("score")
        assert type(score) in (int, float), f"{where}: score must be a number (G7): {reply}"
    elif want.method == "tasks.cancel":
        assert result == {"cancelled": True}, f"{where}: {reply}"
    elif want.method == "bye":
        assert result == {"goodbye": True}, f"{where}: {reply}"
    return reply


# -- connection drivers ----------------------------------------------------------------------
async def _readline(reader: asyncio.StreamReader, where: str) -> bytes:
    try:
        return await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
    except TimeoutError:
        pytest.fail(f"{where}: no reply within {READ_TIMEOUT}s (server hung?)")


async def _expect_eof(reader: asyncio.StreamReader, where: str) -> None:
    try:
        rest = await asyncio.wait_for(reader.read(), READ_TIMEOUT)
    except ConnectionResetError:
        return
    except TimeoutError:
        pytest.fail(f"{where}: connection not closed within {READ_TIMEOUT}s")
    assert rest == b"", f"{where}: unexpected bytes before close: {rest[:200]!r}"


async def _write_chunked(rng: random.Random, writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write ``data`` in random pieces so frames straddle TCP segments."""
    pos = 0
    while pos < len(data):
        step = rng.choice((1, 7, 64, 1000, len(data)))
        writer.write(data[pos : pos + step])
        pos += step
        if rng.random() < 0.3:
            await writer.drain()
            if rng.random() < 0.1:
                await asyncio.sleep(0)
    await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort with an RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _fuzz_session(port: int, index: int, shared: _Shared) -> None:
    """One control connection: batches of fuzz lines, each followed by a sentinel request."""
    rng = random.Random(f"{SEED}-session-{index}")
    where = f"seed={SEED} session={index}"
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=CLIENT_LIMIT)
    model = _Model()
    rid = 0
    ending = rng.choices(("close", "half-close", "reset", "reset-unread"), (5, 2, 1, 1))[0]
    try:
        for batch_no in range(rng.randrange(1, 5)):
            lines: list[bytes] = []
            owed: list[_Expected] = []
            for _ in range(rng.randrange(1, 8)):
                rid += 1
                line = _fuzz_line(rng, rid, shared)
                try:
                    want = model.feed(line)
                except _TunnelFirst:
                    line = b'{"jsonrpc":"2.0","id":%d,"method":"hello"}' % rid
                    want = model.feed(line)
                lines.append(line)
                if want is not None:
                    owed.append(want)
                if model.closed:
                    break
            shared.frames += len(lines)  # fuzz frames; the sentinel below is not counted
            if not model.closed:
                sentinel = {"jsonrpc": "2.0", "id": f"sentinel-{index}-{batch_no}", "method": "?"}
                lines.append(json.dumps(sentinel).encode())
                owed.append(_Expected(_canon(sentinel["id"]), METHOD_NOT_FOUND))
                model.feed(lines[-1])
            await _write_chunked(rng, writer, b"\n".join(lines) + b"\n")
            if ending == "reset-unread" and batch_no == 0:
                _reset(writer)
                return
            for n, want in enumerate(owed):
                line = await _readline(reader, f"{where} batch={batch_no} reply={n}")
                assert line, f"{where} batch={batch_no}: EOF, still owed {owed[n:]}"
                reply = _check_reply(line, want, f"{where} batch={batch_no} reply={n}")
                result = reply.get("result") or {}
                if want.method == "hello" and isinstance(result.get("session_id"), str):
                    shared.sessions.append(result["session_id"])
            if model.closed:
                await _expect_eof(reader, f"{where} after bye")
                return
        if ending == "half-close":
            partial = _fuzz_line(rng, rid + 1, shared)
            partial = partial[: rng.randrange(len(partial) + 1)]
            want = None
            if partial.strip():
                try:
                    want = model.feed(partial)
                except _TunnelFirst:
                    partial = b"{"
                    want = model.feed(partial)
            shared.frames += 1
            writer.write(partial)
            writer.write_eof()
            if want is not None:
                line = await _readline(reader, f"{where} half-close")
                _check_reply(line, want, f"{where} half-close")
            await _expect_eof(reader, f"{where} half-close")
        elif ending == "reset":
            writer.write(_fuzz_line(rng, rid + 1, shared)[:10])
            await writer.drain()
            _reset(writer)
    finally:
        shared.connections += 1
        writer.close()


async def _fuzz_tunnel(port: int, index: int, shared: _Shared) -> None:
    """One ``tunnel.open`` connection with a random preface, capability and payload."""
    rng = random.Random(f"{SEED}-tunnel-{index}")
    where = f"seed={SEED} tunnel={index}"
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=CLIENT_LIMIT)
    try:
        model = _Model()
        lines: list[bytes] = []
        owed: list[_Expected] = []
        for _ in range(rng.choice((0, 0, 0, 1, 2))):  # junk before the first object
            line = rng.choice((b"", b"nope", b"[1]", b"\xff", b'"tunnel.open"'))
            want = model.feed(line)
            assert want is not None
            lines.append(line)
            owed.append(want)
        roll = rng.random()
        capability: Any
        if roll < 0.55:
            capability = "echo"
        elif roll < 0.7:
            capability = rng.choice(("noport", "refused"))
        elif roll < 0.85:
            capability = rng.choice(("nope", "", "ECHO", "echo ", "it's", _rand_str(rng)))
        else:
            capability = _rand_non_object(rng)
            while isinstance(capability, str):
                capability = _rand_non_object(rng)
        frame: dict[str, Any] = {
            "jsonrpc": "2.0",
            "id": rng.choice((1, 1, 1, _rand_id(rng))),
            "method": "tunnel.open",
            "params": {"capability": capability},
        }
        if rng.random() < 0.15:
            del frame["id"]
        if rng.random() < 0.1:
            frame["params"] = _rand_non_object(rng)
            capability = None
        params = frame["params"]
        if isinstance(params, dict):
            params[_rand_str(rng, 3)] = _rand_value(rng)  # unknown keys are ignored
        lines.append(_dump(rng, frame))
        shared.frames += len(lines)
        ok = capability == "echo"
        if "id" in frame:
            if ok:
                owed.append(_Expected(_canon(frame["id"])))
            elif not isinstance(capability, str) or capability == "noport":
                owed.append(_Expected(_canon(frame["id"]), INVALID_PARAMS))
            else:
                owed.append(_Expected(_canon(frame["id"]), SERVER_ERROR))
        size = rng.choice((0, 1, 100, 4096, 70_000, 300_000))
        payload = rng.randbytes(size)
        preface = b"\n".join(lines) + b"\n"
        pipelined = ok and rng.random() < 0.5
        await _write_chunked(rng, writer, preface + (payload if pipelined else b""))
        replies = []
        for n, want in enumerate(owed):
            line = await _readline(reader, f"{where} reply={n}")
            assert line, f"{where}: EOF, still owed {owed[n:]}"
            replies.append(_check_reply(line, want, f"{where} reply={n}"))
        if "id" in frame:
            reply = replies[-1]
            message = reply.get("error", {}).get("message")
            if ok:
                assert reply["result"] == {"capability": "echo"}, f"{where}: {reply}"
            elif not isinstance(capability, str):
                assert message == "tunnel.open: 'capability' must be a string", f"{where}: {reply}"
            elif capability == "noport":
                assert message == "capability 'noport' has no host:port to tunnel to", reply
            elif capability != "refused":  # G6: no stray quotes
                assert message == f"unknown capability: '{capability}'", f"{where}: {reply}"
        if not ok:
            await _expect_eof(reader, where)
            return
        if rng.random() < 0.15:  # reset in the middle of the stream
            writer.write(payload[: size // 2])
            _reset(writer)
            return

        async def send() -> None:
            if not pipelined:
                await _write_chunked(rng, writer, payload)
            writer.write_eof()

        async def receive() -> bytes:
            chunks = []
            while True:
                data = await asyncio.wait_for(reader.read(1 << 20), READ_TIMEOUT)
                if not data:
                    return b"".join(chunks)
                chunks.append(data)

        _, echoed = await asyncio.gather(send(), receive())
        assert echoed == payload, f"{where}: echoed {len(echoed)} bytes, sent {size}"
    finally:
        shared.connections += 1
        writer.close()


async def _rollout(server: Server) -> float:
    async with connect(server.url, heartbeat=None) as client:
        assert [t["id"] for t in await client.list_tasks()] == list(TEMPLATES)
        start = await client.start("count", {"word": "banana"})
        assert "banana" in start["prompt"]
        grade = await client.grade("3")
        return grade["score"]


# -- tests -----------------------------------------------------------------------------------
async def test_fuzz_frames(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """Thousands of random frames; every request answered once; the server stays healthy."""
    caplog.set_level(logging.ERROR, logger="asyncio")
    shared = _Shared()
    jobs = [("session", i) for i in range(SESSION_CONNECTIONS)]
    jobs += [("tunnel", i) for i in range(TUNNEL_CONNECTIONS)]
    random.Random(SEED).shuffle(jobs)
    queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            kind, index = queue.get_nowait()
            driver = _fuzz_session if kind == "session" else _fuzz_tunnel
            await driver(server.port, index, shared)

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(WORKERS))), FUZZ_TIMEOUT)
    assert shared.connections == len(jobs)
    assert shared.frames >= MIN_FRAMES, f"only {shared.frames} frames sent"
    await asyncio.sleep(0.05)  # let the server notice the last resets
    crashes = [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]
    assert not crashes, f"connection handler crashed: {crashes[0].getMessage()}"
    assert await _rollout(server) == 1.0


async def test_blank_and_junk_lines_keep_the_session(server: Server) -> None:
    """G4: each unparsable line gets -32700 with id null, and later requests still work."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b'\n  \n{"id":1,"method"\n\xff\xfe\n[1,2]\n"x"\n{"id":2,"method":"hello"}\n')
    codes = []
    for _ in range(6):
        reply = json.loads(await _readline(reader, "junk"))
        assert reply["id"] is None
        codes.append(reply["error"]["code"])
    assert codes == [PARSE_ERROR] * 4 + [INVALID_REQUEST] * 2
    hello = json.loads(await _readline(reader, "hello"))
    assert hello["id"] == 2 and hello["result"]["session_id"].startswith("sess-")
    writer.close()


async def test_notifications_get_no_reply(server: Server) -> None:
    """Frames without an id run but are never answered, not even with errors."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b'{"jsonrpc":"2.0","method":"hello"}\n'
        b'{"jsonrpc":"2.0","method":"nope"}\n'
        b'{"jsonrpc":"2.0","method":"tasks.start","params":[]}\n'
        b'{"jsonrpc":"2.0","method":"tasks.start","params":{"id":"count","args":{"word":"sky"}}}\n'
        b'{"jsonrpc":"2.0","id":9,"method":"tasks.grade","params":{"answer":"0"}}\n'
    )
    reply = json.loads(await _readline(reader, "grade"))
    assert reply == {"jsonrpc": "2.0", "id": 9, "result": {"score": 1.0}}
    writer.close()


async def _oversize(server: Server, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=CLIENT_LIMIT)
    writer.write(data)
    drain = asyncio.ensure_future(writer.drain())
    line = await _readline(reader, "oversize")
    reply = json.loads(line)
    assert reply["jsonrpc"] == "2.0" and reply["id"] is None, reply
    assert reply["error"]["code"] == SERVER_ERROR
    assert "exceeds the limit" in reply["error"]["message"]
    await _expect_eof(reader, "oversize")
    with contextlib.suppress(ConnectionError, OSError):
        await drain
    writer.close()


def _padded_hello(size: int, rid: int = 7) -> bytes:
    """A ``hello`` request of exactly ``size`` bytes (newline excluded)."""
    head = b'{"jsonrpc":"2.0","id":%d,"method":"hello","params":{"pad":"' % rid
    tail = b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_oversize_frame_gets_error_then_close(server: Server) -> None:
    """G1: a frame over 16 MiB -> -32000 with id null, then the connection closes."""
    await _oversize(server, _padded_hello(DEFAULT_MAX_FRAME + 4096) + b"\n")
    await _oversize(server, b"x" * (DEFAULT_MAX_FRAME + 4096))  # no newline at all
    assert await _rollout(server) == 1.0


async def test_frame_at_the_limit_is_processed(server: Server) -> None:
    """G1: a frame of exactly 16 MiB (and one just under) is processed; the session lives on."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=CLIENT_LIMIT)
    for rid, size in ((7, DEFAULT_MAX_FRAME - 100), (8, DEFAULT_MAX_FRAME)):
        writer.write(_padded_hello(size, rid) + b"\n")
        reply = json.loads(await _readline(reader, f"size {size}"))
        assert reply["id"] == rid and "session_id" in reply["result"], reply
    writer.write(b'{"jsonrpc":"2.0","id":9,"method":"tasks.list"}\n')
    reply = json.loads(await _readline(reader, "after big frames"))
    assert reply["id"] == 9 and len(reply["result"]["tasks"]) == len(TEMPLATES)
    writer.close()


async def test_frame_one_byte_over_the_limit_is_rejected(server: Server) -> None:
    """G1: the cap is exact, as in 0.6.21: max_frame + 1 bytes (newline excluded) is too many."""
    await _oversize(server, _padded_hello(DEFAULT_MAX_FRAME + 1) + b"\n")


async def test_deeply_nested_frame_gets_parse_error(server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"[" * 100_000 + b"\n" + b'{"jsonrpc":"2.0","id":2,"method":"x"}\n')
    first = await _readline(reader, "deep")
    assert first, "connection dropped"
    assert json.loads(first)["error"]["code"] == PARSE_ERROR
    second = json.loads(await _readline(reader, "after deep"))
    assert second["id"] == 2
    writer.close()


async def test_lone_surrogate_id_is_echoed(server: Server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b'{"jsonrpc":"2.0","id":"\\ud800","method":"x"}\n{"id":2,"method":"x"}\n')
    first = await _readline(reader, "surrogate")
    assert first, "connection dropped"
    assert json.loads(first)["id"] == "\ud800"
    assert json.loads(await _readline(reader, "after surrogate"))["id"] == 2
    writer.close()
