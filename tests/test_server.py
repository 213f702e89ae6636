"""The control-channel server in-process: raw frames and `hud.clients.connect` (wire.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel

import hud.environment
from hud.capabilities import Capability
from hud.clients import HudProtocolError, connect
from hud.environment import Answer, Environment
from hud.environment.server import Server, bind
from hud.graders import EvaluationResult, SubScore

MIB = 1024 * 1024
SESSION_RE = re.compile(r"^sess-[0-9a-f]{8}$")


# -- helpers ----------------------------------------------------------------------------------


class Raw:
    """A raw control connection speaking newline-delimited JSON."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.next_id = 0

    @classmethod
    async def open(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=64 * MIB)
        return cls(reader, writer)

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, frame: Any) -> None:
        await self.send_bytes(json.dumps(frame, separators=(",", ":")).encode() + b"\n")

    async def recv(self) -> dict[str, Any] | None:
        """The next frame, or None on EOF."""
        line = await asyncio.wait_for(self.reader.readline(), 30)
        if not line:
            return None
        assert line.endswith(b"\n")
        return json.loads(line)

    async def recv_line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), 30)

    async def call(self, method: str, params: Any = None, **extra: Any) -> dict[str, Any]:
        self.next_id += 1
        frame: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            frame["params"] = params
        frame.update(extra)
        await self.send(frame)
        reply = await self.recv()
        assert reply is not None, f"EOF after {method}"
        assert reply["id"] == frame["id"]
        return reply

    async def result(self, method: str, params: Any = None) -> dict[str, Any]:
        reply = await self.call(method, params)
        assert "error" not in reply, reply
        return reply["result"]

    async def error(self, method: str, params: Any = None) -> tuple[int, str]:
        reply = await self.call(method, params)
        assert "result" not in reply, reply
        assert set(reply["error"]) == {"code", "message"}, "never a data member"
        return reply["error"]["code"], reply["error"]["message"]

    async def at_eof(self) -> bool:
        data = await asyncio.wait_for(self.reader.read(1), 30)
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    """Poll ``predicate()`` until true (a bound on waiting, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


class Word(BaseModel):
    text: str


class Reward:
    def __init__(self, reward: float) -> None:
        self.reward = reward


def make_env(teardowns: list[tuple[str, str | None]] | None = None) -> Environment:
    env = Environment(name="spelling", version="0.0.1")
    log = teardowns if teardowns is not None else []

    @env.template(description="Count vowels", input=str, returns=int)
    async def vowels(word: str, strict: bool = False):
        answer = yield f"How many vowels are in '{word}'?"
        expected = sum(c in "aeiou" for c in word)
        yield 1.0 if answer.content == expected else 0.0

    @env.template
    async def echo(word: str):
        answer = yield f"say {word}"
        yield 1.0 if answer == word else 0.0

    @env.template
    async def shape(kind: str):
        if kind == "string":
            yield "say hi"
        elif kind == "nodict":
            yield {"question": "x"}
        elif kind == "extras":
            yield {
                "prompt": [{"role": "user", "content": "hi"}],
                "bindings": {"robot": {"token": "t"}},
                "extra": 5,
            }
        elif kind == "tuple":
            yield ("a", 1, ("b", 2))
        elif kind == "model":
            yield Word(text="hi")
        elif kind == "nested":
            yield {"prompt": "p", "word": Word(text="w"), "pair": (1, 2)}
        yield 0.0

    @env.template
    async def graded(kind: str):
        yield "grade me"
        if kind == "dict":
            yield {"score": 0.5, "info": {"a": 1}, "custom": "x"}
        elif kind == "dict_int":
            yield {"score": 1}
        elif kind == "dict_true":
            yield {"score": True}
        elif kind == "dict_false":
            yield {"score": False, "x": 1}
        elif kind == "dict_missing":
            yield {"value": 1, "note": "n"}
        elif kind == "dict_str":
            yield {"score": "1"}
        elif kind == "eval":
            yield EvaluationResult(
                reward=0.25, content="c", subscores=[SubScore(name="s", value=0.25)]
            )
        elif kind == "subscore":
            yield SubScore(name="s", weight=0.5, value=0.75, info={"x": 1})
        elif kind == "int":
            yield 1
        elif kind == "true":
            yield True
        elif kind == "reward":
            yield Reward(0.5)
        elif kind == "string":
            yield "great"
        elif kind == "none":
            yield None
        elif kind == "raise":
            raise RuntimeError("grader broke")
        # "single": no second yield

    @env.template(returns=int)
    async def answered(n: int):
        answer = yield "how many?"
        yield {
            "score": 1.0 if answer.content == n else 0.0,
            "content": answer.content,
            "raw": answer.raw,
            "is_answer": isinstance(answer, Answer),
        }

    @env.template(returns=Word)
    async def modelled():
        answer = yield "word?"
        content = answer.content
        yield {
            "score": 1.0,
            "type": type(content).__name__,
            "text": content.text if isinstance(content, Word) else content,
        }

    @env.template
    async def typed(n: int, word: Word, mode: Literal["upper", "lower"], free=None):
        yield {
            "prompt": "typed",
            "n": [type(n).__name__, n],
            "word": [type(word).__name__, word.text if isinstance(word, Word) else word],
            "mode": mode,
            "free": free,
        }
        yield 1.0

    @env.template
    async def needs(n: int):
        yield f"n={n}"
        yield 1.0

    @env.template
    async def keyerr(k: str):
        {"y": 1}["x"]
        yield "never"

    @env.template
    async def empty():
        return
        yield "never"

    @env.template
    async def big(size: int):
        yield "x" * size
        yield 1.0

    @env.template
    async def bigarg(data: str):
        answer = yield data
        yield {"score": 1.0 if answer == data else 0.0, "size": len(answer or "")}

    @env.template
    async def extra_kw(a: int, **rest):
        yield {"prompt": "kw", "a": a, "rest": rest}
        yield 1.0

    @env.teardown
    def record() -> None:
        log.append(("teardown", hud.environment.current_session_id.get()))

    return env


@pytest.fixture
def teardowns() -> list[tuple[str, str | None]]:
    return []


@pytest.fixture
async def server(teardowns: list[tuple[str, str | None]]) -> AsyncIterator[Server]:
    srv = await bind(make_env(teardowns))
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def raw(server: Server) -> AsyncIterator[Raw]:
    conn = await Raw.open(server.port)
    try:
        yield conn
    finally:
        await conn.close()


def torn(teardowns: list[tuple[str, str | None]]) -> list[str | None]:
    return [sid for _, sid in teardowns]


async def grade_score(raw: Raw, answer: Any, **extra: Any) -> float:
    result = await raw.result("tasks.grade", {"answer": answer, **extra})
    return result["score"]


# -- hello, list, envelope ------------------------------------------------------------------


async def test_hello_manifest_and_features(raw: Raw) -> None:
    result = await raw.result("hello", {})
    assert SESSION_RE.match(result["session_id"])
    assert result["env"] == {"name": "spelling", "version": "0.0.1"}
    assert result["bindings"] == []
    assert "tasks.grade.id" in result["features"]
    # a repeated bare hello and a hello with the own id return the same session
    again = await raw.result("hello", {})
    assert again["session_id"] == result["session_id"]
    own = await raw.result("hello", {"session_id": result["session_id"]})
    assert own == again


async def test_session_ids_are_distinct_per_connection(server: Server) -> None:
    ids = set()
    for _ in range(5):
        conn = await Raw.open(server.port)
        ids.add((await conn.result("hello"))["session_id"])
        await conn.close()
    assert len(ids) == 5


async def test_hello_bindings_in_order_with_params(teardowns: list) -> None:
    env = make_env(teardowns)
    env.add_capability(Capability.ssh("127.0.0.1:2222", "ssh-ed25519 AAAA", cwd="/w"))
    env.add_capability(Capability(name="raw", protocol="tcp/1", url="tcp://127.0.0.1:9"))
    async with Server(env) as srv:
        conn = await Raw.open(srv.port)
        result = await conn.result("hello")
        assert result["bindings"] == [
            {
                "name": "shell",
                "protocol": "ssh/2",
                "url": "ssh://127.0.0.1:2222",
                "params": {
                    "user": "agent",
                    "host_pubkey": "ssh-ed25519 AAAA",
                    "shell": "bash",
                    "cwd": "/w",
                },
            },
            {"name": "raw", "protocol": "tcp/1", "url": "tcp://127.0.0.1:9", "params": {}},
        ]
        await conn.close()


async def test_tasks_list_schema_and_order(raw: Raw) -> None:
    result = await raw.result("tasks.list", {"ignored": True})
    tasks = result["tasks"]
    assert [t["id"] for t in tasks][:4] == ["vowels", "echo", "shape", "graded"]
    assert tasks[0] == {
        "id": "vowels",
        "description": "Count vowels",
        "args": {
            "type": "object",
            "properties": {
                "word": {"title": "Word", "type": "string"},
                "strict": {"default": False, "title": "Strict", "type": "boolean"},
            },
            "required": ["word"],
            "additionalProperties": False,
        },
        "input": {"type": "string"},
        "returns": {"type": "integer"},
    }
    by_id = {t["id"]: t for t in tasks}
    assert "input" not in by_id["echo"] and "returns" not in by_id["echo"]
    assert "required" not in by_id["empty"]["args"]
    assert by_id["extra_kw"]["args"]["additionalProperties"] is True
    typed = by_id["typed"]["args"]
    assert "type" not in typed["properties"]["free"]
    assert typed["properties"]["word"] == {"$ref": "#/$defs/Word"}
    assert "Word" in typed["$defs"]


async def test_params_null_and_absent_and_string_ids(raw: Raw) -> None:
    await raw.send({"jsonrpc": "2.0", "id": "abc", "method": "hello", "params": None})
    reply = await raw.recv()
    assert reply is not None and reply["id"] == "abc" and "session_id" in reply["result"]
    await raw.send({"jsonrpc": "2.0", "id": "x-2", "method": "tasks.list"})
    reply = await raw.recv()
    assert reply is not None and reply["id"] == "x-2" and isinstance(reply["result"]["tasks"], list)
    await raw.send({"jsonrpc": "2.0", "id": 7, "method": "tasks.start", "params": None})
    reply = await raw.recv()
    assert reply == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {"code": -32602, "message": "tasks.start: 'id' must be a string"},
    }


async def test_reply_is_compact_single_line(raw: Raw) -> None:
    await raw.send({"jsonrpc": "2.0", "id": 1, "method": "tasks.cancel"})
    line = await raw.recv_line()
    assert line == b'{"jsonrpc":"2.0","id":1,"result":{"cancelled":true}}\n'


async def test_method_not_found(raw: Raw) -> None:
    assert await raw.error("nope") == (-32601, "method not found: nope")
    await raw.send({"jsonrpc": "2.0", "id": 9, "params": {}})
    reply = await raw.recv()
    assert reply == {
        "jsonrpc": "2.0",
        "id": 9,
        "error": {"code": -32601, "message": "method not found: "},
    }


async def test_notifications_get_no_reply(raw: Raw) -> None:
    # a notification that succeeds, one that fails, one with an unknown method
    await raw.send({"jsonrpc": "2.0", "method": "hello", "params": {}})
    await raw.send({"jsonrpc": "2.0", "method": "tasks.start", "params": {"id": 5}})
    await raw.send({"jsonrpc": "2.0", "method": "nope"})
    await raw.send({"jsonrpc": "2.0", "method": "tasks.grade", "params": {"answer": "x"}})
    reply = await raw.call("tasks.list")
    assert reply["id"] == 1 and "tasks" in reply["result"]


async def test_notification_is_executed(raw: Raw, teardowns: list) -> None:
    await raw.send(
        {"jsonrpc": "2.0", "method": "tasks.start", "params": {"id": "echo", "args": {"word": "w"}}}
    )
    assert await grade_score(raw, "w") == 1.0


async def test_non_object_params_g6(raw: Raw) -> None:
    for params in ([1, 2], "x", 3, True):
        assert await raw.error("tasks.start", params) == (-32602, "params must be an object")
    assert await raw.error("hello", [1]) == (-32602, "params must be an object")
    # the connection is still usable
    assert "session_id" in await raw.result("hello")


async def test_malformed_json_g4_keeps_connection(raw: Raw) -> None:
    for bad in (b"{not json\n", b"\n", b"\xff\xfe\n", b'{"a":\n'):
        await raw.send_bytes(bad)
        reply = await raw.recv()
        assert reply is not None
        assert reply["id"] is None and reply["error"]["code"] == -32700, reply
    assert "session_id" in await raw.result("hello")


async def test_non_object_top_level_g6(raw: Raw) -> None:
    for frame in ([{"jsonrpc": "2.0", "id": 1, "method": "hello"}], 5, "x", None):
        await raw.send(frame)
        reply = await raw.recv()
        assert reply is not None
        assert reply["id"] is None and reply["error"]["code"] == -32600, reply
    assert "session_id" in await raw.result("hello")


async def test_eof_before_frame_closes_silently(server: Server) -> None:
    conn = await Raw.open(server.port)
    conn.writer.write_eof()
    assert await conn.at_eof()
    await conn.close()
    conn = await Raw.open(server.port)
    assert "session_id" in await conn.result("hello")
    await conn.close()


async def test_last_frame_without_newline_is_handled(server: Server) -> None:
    conn = await Raw.open(server.port)
    await conn.send_bytes(b'{"jsonrpc":"2.0","id":4,"method":"tasks.cancel"}')
    conn.writer.write_eof()
    assert await conn.recv() == {"jsonrpc": "2.0", "id": 4, "result": {"cancelled": True}}
    assert await conn.at_eof()
    await conn.close()


async def test_strict_ordering_of_pipelined_requests(raw: Raw) -> None:
    frames = []
    for i in range(40):
        method = ["hello", "tasks.list", "nope", "tasks.cancel"][i % 4]
        frames.append({"jsonrpc": "2.0", "id": i if i % 3 else f"s{i}", "method": method})
    frames.append(
        {
            "jsonrpc": "2.0",
            "id": 100,
            "method": "tasks.start",
            "params": {"id": "echo", "args": {"word": "z"}},
        }
    )
    frames.append({"jsonrpc": "2.0", "id": 101, "method": "tasks.grade", "params": {"answer": "z"}})
    payload = b"".join(json.dumps(f).encode() + b"\n" for f in frames)
    await raw.send_bytes(payload)
    for frame in frames:
        reply = await raw.recv()
        assert reply is not None and reply["id"] == frame["id"]
    assert reply["result"] == {"score": 1.0}


# -- tasks.start --------------------------------------------------------------------------


async def test_start_param_errors(raw: Raw) -> None:
    assert await raw.error("tasks.start", {}) == (-32602, "tasks.start: 'id' must be a string")
    assert await raw.error("tasks.start", {"id": 3}) == (
        -32602,
        "tasks.start: 'id' must be a string",
    )
    assert await raw.error("tasks.start", {"id": "echo", "args": [1]}) == (
        -32602,
        "tasks.start: 'args' must be an object",
    )
    assert await raw.error("tasks.start", {"id": "nope", "args": {}}) == (
        -32602,
        "unknown task: 'nope'",
    )
    assert await raw.error("tasks.start", {"id": "nope"}) == (-32602, "unknown task: 'nope'")


async def test_bad_args_message(raw: Raw) -> None:
    assert await raw.error("tasks.start", {"id": "needs", "args": {"a": 1}}) == (
        -32000,
        "task 'needs': bad args ['a']: missing a required argument: 'n'",
    )
    code, message = await raw.error("tasks.start", {"id": "needs", "args": {"z": 1, "n": 2}})
    assert code == -32000
    assert message.startswith("task 'needs': bad args ['n', 'z']: ")
    assert "'z'" in message.split(": ", 2)[2]
    # args absent/null -> {} -> missing argument
    assert await raw.error("tasks.start", {"id": "needs", "args": None}) == (
        -32000,
        "task 'needs': bad args []: missing a required argument: 'n'",
    )


async def test_prelude_keyerror_is_not_unknown_task_g5(raw: Raw, teardowns: list) -> None:
    sid = (await raw.result("hello"))["session_id"]
    assert await raw.error("tasks.start", {"id": "keyerr", "args": {"k": "v"}}) == (
        -32000,
        "task 'keyerr' failed during setup: KeyError: 'x'",
    )
    assert torn(teardowns) == [sid], "teardown runs when the prelude raises"
    # nothing left to grade
    assert await raw.error("tasks.grade", {"answer": "x"}) == (-32600, "no task in progress")


async def test_template_returning_without_yield(raw: Raw, teardowns: list) -> None:
    code, message = await raw.error("tasks.start", {"id": "empty"})
    assert code == -32000 and isinstance(message, str)
    assert len(teardowns) == 1
    assert await raw.error("tasks.grade", {"answer": "x"}) == (-32600, "no task in progress")


@pytest.mark.parametrize(
    ("kind", "frame"),
    [
        ("string", {"prompt": "say hi"}),
        ("nodict", {"prompt": {"question": "x"}}),
        (
            "extras",
            {
                "prompt": [{"role": "user", "content": "hi"}],
                "bindings": {"robot": {"token": "t"}},
                "extra": 5,
            },
        ),
        ("tuple", {"prompt": ["a", 1, ["b", 2]]}),
        ("model", {"prompt": {"text": "hi"}}),
        ("nested", {"prompt": "p", "word": {"text": "w"}, "pair": [1, 2]}),
    ],
)
async def test_start_frame_shapes(raw: Raw, kind: str, frame: dict[str, Any]) -> None:
    reply = await raw.call("tasks.start", {"id": "shape", "args": {"kind": kind}})
    assert reply["result"] == frame


async def test_start_frame_key_order_verbatim(raw: Raw) -> None:
    await raw.send(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tasks.start",
            "params": {"id": "shape", "args": {"kind": "extras"}},
        }
    )
    line = await raw.recv_line()
    assert line == (
        b'{"jsonrpc":"2.0","id":1,"result":{"prompt":[{"role":"user","content":"hi"}],'
        b'"bindings":{"robot":{"token":"t"}},"extra":5}}\n'
    )


async def test_arg_coercion_from_json_text(raw: Raw) -> None:
    args = {"n": "3", "word": '{"text":"hi"}', "mode": '"upper"', "free": "7"}
    result = await raw.result("tasks.start", {"id": "typed", "args": args})
    assert result["n"] == ["int", 3]
    assert result["word"] == ["Word", "hi"]
    assert result["mode"] == "upper"
    assert result["free"] == "7", "unannotated args pass through unchanged"
    # plain values validate directly
    args = {"n": 4, "word": {"text": "yo"}, "mode": "lower"}
    result = await raw.result("tasks.start", {"id": "typed", "args": args})
    assert result["n"] == ["int", 4] and result["word"] == ["Word", "yo"]
    assert result["mode"] == "lower"
    # invalid values are passed raw
    args = {"n": "three", "word": {"text": "w"}, "mode": "sideways"}
    result = await raw.result("tasks.start", {"id": "typed", "args": args})
    assert result["n"] == ["str", "three"] and result["mode"] == "sideways"


async def test_kwargs_template_accepts_extra_args(raw: Raw) -> None:
    result = await raw.result("tasks.start", {"id": "extra_kw", "args": {"a": "2", "b": [1]}})
    assert result == {"prompt": "kw", "a": 2, "rest": {"b": [1]}}


# -- tasks.grade --------------------------------------------------------------------------


async def start_graded(raw: Raw, kind: str) -> None:
    await raw.result("tasks.start", {"id": "graded", "args": {"kind": kind}})


@pytest.mark.parametrize(
    ("kind", "frame"),
    [
        ("dict", {"score": 0.5, "info": {"a": 1}, "custom": "x"}),
        ("dict_int", {"score": 1.0}),
        ("dict_true", {"score": 1.0}),
        ("dict_false", {"score": 0.0, "x": 1}),
        (
            "subscore",
            {
                "score": 0.75,
                "subscores": [{"name": "s", "weight": 0.5, "value": 0.75, "children": None}],
            },
        ),
        ("int", {"score": 1.0}),
        ("true", {"score": 1.0}),
        ("reward", {"score": 0.5}),
        ("single", {"score": 0.0}),
    ],
)
async def test_grade_normalization(raw: Raw, kind: str, frame: dict[str, Any]) -> None:
    await start_graded(raw, kind)
    reply = await raw.call("tasks.grade", {"answer": "a"})
    assert reply["result"] == frame
    score = reply["result"]["score"]
    assert type(score) is float, "G7: scores are emitted as floats, never bools"


async def test_grade_evaluation_result_exact_frame(raw: Raw) -> None:
    await start_graded(raw, "eval")
    await raw.send({"jsonrpc": "2.0", "id": 99, "method": "tasks.grade", "params": {"answer": "a"}})
    line = await raw.recv_line()
    assert line == (
        b'{"jsonrpc":"2.0","id":99,"result":'
        b'{"done":true,"content":"c","info":{},"isError":false,'
        b'"subscores":[{"name":"s","weight":1.0,"value":0.25,"children":null,"info":null}],'
        b'"score":0.25}}\n'
    )


async def test_grade_dict_key_order_kept(raw: Raw) -> None:
    await start_graded(raw, "dict")
    await raw.send({"jsonrpc": "2.0", "id": 1, "method": "tasks.grade", "params": {}})
    line = await raw.recv_line()
    assert line == (
        b'{"jsonrpc":"2.0","id":1,"result":{"score":0.5,"info":{"a":1},"custom":"x"}}\n'
    )


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (
            "dict_missing",
            "task 'graded' graded with a dict missing a numeric 'score' (keys: ['note', 'value'])",
        ),
        (
            "dict_str",
            "task 'graded' graded with a dict missing a numeric 'score' (keys: ['score'])",
        ),
        (
            "string",
            "task graded with str: yield a number, an object with a numeric .reward, "
            "or a dict containing a numeric 'score'",
        ),
        (
            "none",
            "task graded with NoneType: yield a number, an object with a numeric .reward, "
            "or a dict containing a numeric 'score'",
        ),
    ],
)
async def test_grade_invalid_yields(raw: Raw, teardowns: list, kind: str, message: str) -> None:
    await start_graded(raw, kind)
    assert await raw.error("tasks.grade", {"answer": "a"}) == (-32000, message)
    assert len(teardowns) == 1, "single-shot: the task is closed even when grading fails"
    assert await raw.error("tasks.grade", {"answer": "a"}) == (-32600, "no task in progress")


async def test_grade_exception_in_template(raw: Raw, teardowns: list) -> None:
    await start_graded(raw, "raise")
    code, message = await raw.error("tasks.grade", {"answer": "a"})
    assert code == -32000 and "grader broke" in message
    assert len(teardowns) == 1


async def test_grade_without_task(raw: Raw) -> None:
    assert await raw.error("tasks.grade", {"answer": "a"}) == (-32600, "no task in progress")
    assert await raw.error("tasks.grade") == (-32600, "no task in progress")


async def test_grade_is_single_shot(raw: Raw, teardowns: list) -> None:
    sid = (await raw.result("hello"))["session_id"]
    await raw.result("tasks.start", {"id": "echo", "args": {"word": "w"}})
    assert teardowns == []
    assert await grade_score(raw, "w") == 1.0
    assert torn(teardowns) == [sid]
    assert await raw.error("tasks.grade", {"answer": "w"}) == (-32600, "no task in progress")


async def test_answer_without_returns_is_passed_unchanged(raw: Raw) -> None:
    await raw.result("tasks.start", {"id": "echo", "args": {"word": "w"}})
    assert await grade_score(raw, "W") == 0.0
    await raw.result("tasks.start", {"id": "echo", "args": {"word": "None"}})
    assert await grade_score(raw, None) == 0.0, "null stays None, not 'None'"


@pytest.mark.parametrize(
    ("answer", "content", "raw_text", "score"),
    [
        ("3", 3, "3", 1.0),
        (3, 3, "3", 1.0),
        (" 3 ", 3, " 3 ", 1.0),
        ("three", "three", "three", 0.0),
        (None, "", "", 0.0),
        ("4", 4, "4", 0.0),
    ],
)
async def test_answer_returns_int(
    raw: Raw, answer: Any, content: Any, raw_text: str, score: float
) -> None:
    await raw.result("tasks.start", {"id": "answered", "args": {"n": 3}})
    params = {} if answer is None else {"answer": answer}
    result = await raw.result("tasks.grade", params)
    assert result == {"score": score, "content": content, "raw": raw_text, "is_answer": True}


async def test_answer_returns_model(raw: Raw) -> None:
    await raw.result("tasks.start", {"id": "modelled"})
    result = await raw.result("tasks.grade", {"answer": '{"text": "hi"}'})
    assert result == {"score": 1.0, "type": "Word", "text": "hi"}
    await raw.result("tasks.start", {"id": "modelled"})
    result = await raw.result("tasks.grade", {"answer": {"text": "obj"}})
    assert result == {"score": 1.0, "type": "Word", "text": "obj"}
    await raw.result("tasks.start", {"id": "modelled"})
    result = await raw.result("tasks.grade", {"answer": "not json"})
    assert result == {"score": 1.0, "type": "str", "text": "not json"}


async def test_vowels_example_transcript(raw: Raw) -> None:
    assert (await raw.result("tasks.start", {"id": "vowels", "args": {"word": "banana"}})) == {
        "prompt": "How many vowels are in 'banana'?"
    }
    assert await grade_score(raw, "3") == 1.0


# -- teardown hooks --------------------------------------------------------------------------


async def test_teardown_on_cancel_and_bye(server: Server, teardowns: list) -> None:
    conn = await Raw.open(server.port)
    sid = (await conn.result("hello"))["session_id"]
    assert await conn.result("tasks.cancel") == {"cancelled": True}
    assert teardowns == [], "cancel without a task runs nothing"
    await conn.result("tasks.start", {"id": "echo", "args": {"word": "w"}})
    assert await conn.result("tasks.cancel", {"whatever": 1}) == {"cancelled": True}
    assert torn(teardowns) == [sid]
    assert await conn.error("tasks.grade", {"answer": "w"}) == (-32600, "no task in progress")
    await conn.result("tasks.start", {"id": "echo", "args": {"word": "w"}})
    assert await conn.result("bye") == {"goodbye": True}
    assert torn(teardowns) == [sid, sid]
    assert await conn.at_eof()
    await conn.close()
    # bye does not park: nothing to adopt
    other = await Raw.open(server.port)
    assert await other.error("tasks.grade", {"answer": "w"}) == (-32600, "no task in progress")
    await other.close()


async def test_teardown_sees_session_id_on_grade(raw: Raw, teardowns: list) -> None:
    sid = (await raw.result("hello"))["session_id"]
    await raw.result("tasks.start", {"id": "echo", "args": {"word": "w"}})
    await grade_score(raw, "w")
    assert teardowns == [("teardown", sid)]


async def test_restart_replaces_and_tears_down_old(raw: Raw, teardowns: list) -> None:
    sid = (await raw.result("hello"))["session_id"]
    await raw.result("tasks.start", {"id": "echo", "args": {"word": "first"}})
    await raw.result("tasks.start", {"id": "echo", "args": {"word": "second"}})
    assert torn(teardowns) == [sid], "the replaced task is torn down"
    assert await grade_score(raw, "second") == 1.0
    assert torn(teardowns) == [sid, sid]
    # a failing start also cancels the previous task
    await raw.result("tasks.start", {"id": "echo", "args": {"word": "third"}})
    await raw.error("tasks.start", {"id": "nope"})
    assert len(teardowns) == 3
    assert await raw.error("tasks.grade", {"answer": "third"}) == (-32600, "no task in progress")


async def test_shutdown_tears_down_live_and_parked(teardowns: list) -> None:
    env = make_env(teardowns)
    stopped: list[str] = []

    @env.shutdown
    async def stop() -> None:
        stopped.append("stop")

    srv = await bind(env)
    parked = await Raw.open(srv.port)
    parked_sid = (await parked.result("hello"))["session_id"]
    await parked.result("tasks.start", {"id": "echo", "args": {"word": "p"}})
    await parked.close()
    live = await Raw.open(srv.port)
    live_sid = (await live.result("hello"))["session_id"]
    await live.result("tasks.start", {"id": "echo", "args": {"word": "l"}})
    await wait_until(lambda: len(srv.parked()) == 1)
    assert teardowns == []
    await srv.close()
    assert sorted(torn(teardowns)) == sorted([parked_sid, live_sid])
    assert stopped == ["stop"]
    assert await live.at_eof()
    await live.close()


# -- sessions -------------------------------------------------------------------------------


async def test_concurrent_sessions_are_independent(server: Server) -> None:
    conns = [await Raw.open(server.port) for _ in range(4)]
    for i, conn in enumerate(conns):
        await conn.result("tasks.start", {"id": "echo", "args": {"word": f"w{i}"}})
    results = await asyncio.gather(*(grade_score(conn, f"w{i}") for i, conn in enumerate(conns)))
    assert results == [1.0] * 4
    for conn in conns:
        await conn.close()


async def test_disconnect_parks_and_bare_grade_adopts(server: Server, teardowns: list) -> None:
    a = await Raw.open(server.port)
    sid = (await a.result("hello"))["session_id"]
    await a.result("tasks.start", {"id": "echo", "args": {"word": "parked"}})
    await a.close()
    await wait_until(lambda: len(server.parked()) == 1)
    assert teardowns == [], "parking does not tear down"
    # a raw client may send tasks.grade as its very first frame
    b = await Raw.open(server.port)
    assert await grade_score(b, "parked") == 1.0
    assert torn(teardowns) == [sid], "teardown runs under the parked session's id"
    assert await b.error("tasks.grade", {"answer": "parked"}) == (-32600, "no task in progress")
    await b.close()


async def test_malformed_frame_does_not_lose_task(server: Server) -> None:
    a = await Raw.open(server.port)
    await a.result("tasks.start", {"id": "echo", "args": {"word": "m"}})
    await a.send_bytes(b"garbage\n")
    assert (await a.recv())["error"]["code"] == -32700
    assert await grade_score(a, "m") == 1.0
    await a.close()


async def test_own_task_is_graded_before_parked_ones(server: Server) -> None:
    a = await Raw.open(server.port)
    await a.result("tasks.start", {"id": "echo", "args": {"word": "parked"}})
    await a.close()
    await wait_until(lambda: len(server.parked()) == 1)
    b = await Raw.open(server.port)
    await b.result("tasks.start", {"id": "echo", "args": {"word": "mine"}})
    assert await grade_score(b, "mine") == 1.0
    assert len(server.parked()) == 1
    await b.close()


async def test_two_parked_sessions_ambiguity(server: Server) -> None:
    sids = []
    for word in ("one", "two"):
        conn = await Raw.open(server.port)
        sids.append((await conn.result("hello"))["session_id"])
        await conn.result("tasks.start", {"id": "echo", "args": {"word": word}})
        await conn.close()
    await wait_until(lambda: len(server.parked()) == 2)
    c = await Raw.open(server.port)
    a, b = sorted(sids)
    assert await c.error("tasks.grade", {"answer": "one"}) == (
        -32600,
        f"2 parked sessions ({a}, {b}); resume one by sending hello with its session_id",
    )
    # resume one of them explicitly
    assert (await c.result("hello", {"session_id": sids[1]}))["session_id"] == sids[1]
    assert await grade_score(c, "two") == 1.0
    await c.close()
    d = await Raw.open(server.port)
    assert await grade_score(d, "one") == 1.0
    await d.close()


async def test_grade_with_id_adopts_only_matching_g9(server: Server) -> None:
    for params in (
        {"id": "echo", "args": {"word": "e1"}},
        {"id": "echo", "args": {"word": "e2"}},
        {"id": "vowels", "args": {"word": "banana"}},
    ):
        conn = await Raw.open(server.port)
        await conn.result("tasks.start", params)
        await conn.close()
    await wait_until(lambda: len(server.parked()) == 3)
    c = await Raw.open(server.port)
    assert await c.error("tasks.grade", {"answer": "x", "id": "needs"}) == (
        -32600,
        "no task in progress",
    )
    assert await grade_score(c, "3", id="vowels") == 1.0
    code, message = await c.error("tasks.grade", {"answer": "e2", "id": "echo"})
    assert (code, message.split(" (")[0]) == (-32600, "2 parked sessions")
    assert await c.error("tasks.grade", {"answer": "e2", "id": "echo", "args": {"word": "e3"}}) == (
        -32600,
        "no task in progress",
    )
    assert await grade_score(c, "e2", id="echo", args={"word": "e2"}) == 1.0
    assert await grade_score(c, "e1", id="echo") == 1.0
    assert server.parked() == []
    await c.close()


async def test_resume_by_hello(server: Server, teardowns: list) -> None:
    a = await Raw.open(server.port)
    sid = (await a.result("hello"))["session_id"]
    await a.result("tasks.start", {"id": "echo", "args": {"word": "r"}})
    await a.close()
    await wait_until(lambda: len(server.parked()) == 1)
    b = await Raw.open(server.port)
    own = (await b.result("hello"))["session_id"]
    result = await b.result("hello", {"session_id": sid})
    assert result["session_id"] == sid and "bindings" in result
    # the connection became that session: its own id is gone
    c = await Raw.open(server.port)
    assert await c.error("hello", {"session_id": own}) == (-32600, f"unknown session: '{own}'")
    assert await c.error("hello", {"session_id": sid}) == (
        -32600,
        f"session '{sid}' has a live connection",
    )
    assert await grade_score(b, "r") == 1.0
    assert torn(teardowns) == [sid]
    await b.close()
    # graded: the session is gone
    assert await c.error("hello", {"session_id": sid}) == (-32600, f"unknown session: '{sid}'")
    await c.close()


async def test_resume_then_disconnect_parks_again(server: Server) -> None:
    a = await Raw.open(server.port)
    sid = (await a.result("hello"))["session_id"]
    await a.result("tasks.start", {"id": "echo", "args": {"word": "again"}})
    await a.close()
    await wait_until(lambda: len(server.parked()) == 1)
    b = await Raw.open(server.port)
    await b.result("hello", {"session_id": sid})
    await b.close()
    await wait_until(lambda: len(server.parked()) == 1 and server.parked()[0].id == sid)
    c = await Raw.open(server.port)
    await c.result("hello", {"session_id": sid})
    assert await grade_score(c, "again") == 1.0
    await c.close()


async def test_hello_session_errors(raw: Raw, server: Server) -> None:
    assert await raw.error("hello", {"session_id": 5}) == (
        -32602,
        "hello: 'session_id' must be a string",
    )
    assert await raw.error("hello", {"session_id": "sess-00000000"}) == (
        -32600,
        "unknown session: 'sess-00000000'",
    )
    other = await Raw.open(server.port)
    other_sid = (await other.result("hello"))["session_id"]
    assert await raw.error("hello", {"session_id": other_sid}) == (
        -32600,
        f"session '{other_sid}' has a live connection",
    )
    # a closed session without a task cannot be resumed
    await other.close()
    await wait_until(lambda: other_sid not in server._sessions)
    assert await raw.error("hello", {"session_id": other_sid}) == (
        -32600,
        f"unknown session: '{other_sid}'",
    )


async def test_parked_ttl_expiry_g8(teardowns: list) -> None:
    srv = await bind(make_env(teardowns), session_ttl=0.2)
    try:
        a = await Raw.open(srv.port)
        sid = (await a.result("hello"))["session_id"]
        await a.result("tasks.start", {"id": "echo", "args": {"word": "t"}})
        # a live session never expires
        await asyncio.sleep(0.5)
        assert teardowns == []
        await a.close()
        await wait_until(lambda: torn(teardowns) == [sid])
        b = await Raw.open(srv.port)
        assert await b.error("hello", {"session_id": sid}) == (
            -32600,
            f"unknown session: '{sid}'",
        )
        assert await b.error("tasks.grade", {"answer": "t"}) == (-32600, "no task in progress")
        await b.close()
    finally:
        await srv.close()


async def test_session_ttl_zero_never_expires(teardowns: list) -> None:
    srv = await bind(make_env(teardowns), session_ttl=0)
    try:
        a = await Raw.open(srv.port)
        await a.result("tasks.start", {"id": "echo", "args": {"word": "t"}})
        await a.close()
        await wait_until(lambda: len(srv.parked()) == 1)
        await asyncio.sleep(0.3)
        b = await Raw.open(srv.port)
        assert await grade_score(b, "t") == 1.0
        await b.close()
    finally:
        await srv.close()


# -- control token and key sharing (G2) --------------------------------------------------------


def ssh_env(teardowns: list) -> Environment:
    env = make_env(teardowns)
    env.add_capability(
        Capability.ssh(
            "127.0.0.1:2222",
            "ssh-ed25519 AAAA",
            client_key="-----BEGIN OPENSSH PRIVATE KEY-----\nx\n",
            client_key_path="/keys/client_ed25519",
        )
    )
    return env


@pytest.mark.parametrize(
    "first",
    [
        {"jsonrpc": "2.0", "id": 1, "method": "hello", "params": {}},
        {"jsonrpc": "2.0", "id": 1, "method": "hello", "params": {"auth_token": "wrong"}},
        {"jsonrpc": "2.0", "id": 1, "method": "hello", "params": {"auth_token": 5}},
        {"jsonrpc": "2.0", "id": 1, "method": "tasks.grade", "params": {"answer": "x"}},
        {"jsonrpc": "2.0", "id": 1, "method": "tunnel.open", "params": {"capability": "shell"}},
    ],
)
async def test_token_required(teardowns: list, first: dict[str, Any]) -> None:
    async with Server(ssh_env(teardowns), token="s3cret") as srv:
        conn = await Raw.open(srv.port)
        await conn.send(first)
        assert await conn.recv() == {
            "jsonrpc": "2.0",
            "id": 1,
            "error": {"code": -32001, "message": "unauthorized: control token required"},
        }
        assert await conn.at_eof()
        await conn.close()


async def test_token_accepted_and_keys_shared(teardowns: list) -> None:
    async with Server(ssh_env(teardowns), host="0.0.0.0", token="s3cret") as srv:
        conn = await Raw.open(srv.port)
        result = await conn.result("hello", {"auth_token": "s3cret"})
        params = result["bindings"][0]["params"]
        assert params["client_key"].startswith("-----BEGIN")
        assert params["client_key_path"] == "/keys/client_ed25519"
        # later frames need no token
        assert "tasks" in await conn.result("tasks.list")
        await conn.close()
        async with connect(f"127.0.0.1:{srv.port}", token="s3cret", heartbeat=None) as client:
            assert client.bindings[0].params["client_key_path"] == "/keys/client_ed25519"
            assert await client.list_tasks()
        with pytest.raises(HudProtocolError) as info:
            async with connect(f"127.0.0.1:{srv.port}", token="nope", heartbeat=None):
                pass
        assert info.value.code == -32001


async def test_keys_stripped_on_non_loopback_without_token(teardowns: list) -> None:
    srv = Server(ssh_env(teardowns), host="0.0.0.0")
    assert srv.share_keys is False
    async with srv:
        conn = await Raw.open(srv.port)
        params = (await conn.result("hello"))["bindings"][0]["params"]
        assert params == {"user": "agent", "host_pubkey": "ssh-ed25519 AAAA", "shell": "bash"}
        await conn.close()
    # the environment's own capability keeps its keys
    assert "client_key" in srv.env.capabilities[0].params


async def test_keys_shared_on_loopback(teardowns: list) -> None:
    async with Server(ssh_env(teardowns)) as srv:
        conn = await Raw.open(srv.port)
        params = (await conn.result("hello"))["bindings"][0]["params"]
        assert set(params) >= {"client_key", "client_key_path"}
        await conn.close()


# -- G10: capabilities added after start ----------------------------------------------------


async def test_capability_added_after_start_shows_in_next_hello(raw: Raw, server: Server) -> None:
    assert (await raw.result("hello"))["bindings"] == []
    server.env.add_capability(Capability(name="late", protocol="tcp/1", url="tcp://127.0.0.1:7"))
    bindings = (await raw.result("hello"))["bindings"]
    assert [b["name"] for b in bindings] == ["late"]
    async with connect(f"127.0.0.1:{server.port}", heartbeat=None) as client:
        assert [b.name for b in client.bindings] == ["late"]
        server.env.add_capability(
            Capability(name="later", protocol="tcp/1", url="tcp://127.0.0.1:8")
        )
        await client.heartbeat()
        assert [b.name for b in client.bindings] == ["late", "later"]
        server.env.remove_capability("late")
        await client.heartbeat()
        assert [b.name for b in client.bindings] == ["later"]


# -- tunnels --------------------------------------------------------------------------------


@pytest.fixture
async def backend() -> AsyncIterator[dict[str, Any]]:
    """Local TCP servers: ``echo`` (streams back), ``upper`` (replies after half-close)."""
    stats: dict[str, Any] = {"upper_eof_seen": 0}

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until EOF: only a forwarded half-close ends this
        stats["upper_eof_seen"] += 1
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    echo_srv = await asyncio.start_server(echo, "127.0.0.1", 0)
    upper_srv = await asyncio.start_server(upper, "127.0.0.1", 0)
    stats["echo"] = echo_srv.sockets[0].getsockname()[1]
    stats["upper"] = upper_srv.sockets[0].getsockname()[1]
    try:
        yield stats
    finally:
        echo_srv.close()
        upper_srv.close()


@pytest.fixture
async def tunnel_server(backend: dict[str, Any], teardowns: list) -> AsyncIterator[Server]:
    env = make_env(teardowns)
    env.add_capability(
        Capability(name="echo", protocol="tcp/1", url=f"tcp://127.0.0.1:{backend['echo']}")
    )
    env.add_capability(
        Capability(name="upper", protocol="tcp/1", url=f"tcp://127.0.0.1:{backend['upper']}")
    )
    env.add_capability(Capability(name="noport", protocol="tcp/1", url="tcp://somehost"))
    closed = _closed_port()
    env.add_capability(Capability(name="dead", protocol="tcp/1", url=f"tcp://127.0.0.1:{closed}"))
    async with Server(env) as srv:
        yield srv


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def open_raw_tunnel(port: int, name: Any, rid: Any = 1) -> tuple[Raw, Any]:
    conn = await Raw.open(port)
    frame: dict[str, Any] = {
        "jsonrpc": "2.0",
        "method": "tunnel.open",
        "params": {"capability": name},
    }
    if rid is not None:
        frame["id"] = rid
    await conn.send(frame)
    reply = await conn.recv() if rid is not None else None
    return conn, reply


async def test_tunnel_round_trip(tunnel_server: Server) -> None:
    conn, reply = await open_raw_tunnel(tunnel_server.port, "echo")
    assert reply == {"jsonrpc": "2.0", "id": 1, "result": {"capability": "echo"}}
    # raw bytes, including newlines and non-JSON, pass untouched
    payload = b'\x00\x01 not json\n{"x":1}\n' * 1000
    await conn.send_bytes(payload)
    got = await asyncio.wait_for(conn.reader.readexactly(len(payload)), 30)
    assert got == payload
    conn.writer.write_eof()
    assert await conn.at_eof()
    await conn.close()


async def test_tunnel_half_close_forwarded(tunnel_server: Server, backend: dict) -> None:
    conn, reply = await open_raw_tunnel(tunnel_server.port, "upper", rid="t")
    assert reply == {"jsonrpc": "2.0", "id": "t", "result": {"capability": "upper"}}
    await conn.send_bytes(b"hello ")
    await conn.send_bytes(b"world")
    conn.writer.write_eof()
    data = await asyncio.wait_for(conn.reader.read(), 30)
    assert data == b"HELLO WORLD"
    assert backend["upper_eof_seen"] == 1
    await conn.close()


async def test_tunnel_preface_without_id_gets_no_reply(tunnel_server: Server) -> None:
    conn, _ = await open_raw_tunnel(tunnel_server.port, "upper", rid=None)
    await conn.send_bytes(b"abc")
    conn.writer.write_eof()
    assert await asyncio.wait_for(conn.reader.read(), 30) == b"ABC"
    await conn.close()


async def test_concurrent_tunnels_do_not_interleave(tunnel_server: Server) -> None:
    async def one(i: int) -> bytes:
        conn, reply = await open_raw_tunnel(tunnel_server.port, "echo", rid=i)
        assert reply is not None and reply["result"] == {"capability": "echo"}
        payload = bytes([65 + i]) * 300_000 + f"end-{i}".encode()

        async def write() -> None:
            for k in range(0, len(payload), 7000):
                conn.writer.write(payload[k : k + 7000])
                await conn.writer.drain()
            conn.writer.write_eof()

        writer = asyncio.create_task(write())
        data = await asyncio.wait_for(conn.reader.read(), 30)
        await writer
        await conn.close()
        assert data == payload
        return data

    results = await asyncio.gather(*(one(i) for i in range(8)))
    assert len({r[:1] for r in results}) == 8


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("nope", {"code": -32000, "message": "unknown capability: 'nope'"}),
        (5, {"code": -32602, "message": "tunnel.open: 'capability' must be a string"}),
        (None, {"code": -32602, "message": "tunnel.open: 'capability' must be a string"}),
        (
            "noport",
            {"code": -32602, "message": "capability 'noport' has no host:port to tunnel to"},
        ),
    ],
)
async def test_tunnel_open_errors(tunnel_server: Server, name: Any, error: dict) -> None:
    conn, reply = await open_raw_tunnel(tunnel_server.port, name, rid=3)
    assert reply == {"jsonrpc": "2.0", "id": 3, "error": error}
    assert await conn.at_eof()
    await conn.close()


async def test_tunnel_backend_connect_failure(tunnel_server: Server) -> None:
    conn, reply = await open_raw_tunnel(tunnel_server.port, "dead", rid=3)
    assert reply is not None and reply["error"]["code"] == -32000
    assert reply["error"]["message"]
    assert await conn.at_eof()
    await conn.close()


async def test_tunnel_open_mid_session_is_unknown_method(tunnel_server: Server) -> None:
    conn = await Raw.open(tunnel_server.port)
    await conn.result("hello")
    assert await conn.error("tunnel.open", {"capability": "echo"}) == (
        -32601,
        "method not found: tunnel.open",
    )
    # still a control session
    assert "tasks" in await conn.result("tasks.list")
    await conn.close()


async def test_tunnel_is_not_a_session(tunnel_server: Server) -> None:
    conn, _ = await open_raw_tunnel(tunnel_server.port, "echo")
    assert tunnel_server.parked() == []
    await conn.close()


async def test_client_routed_tunnels(tunnel_server: Server) -> None:
    async with connect(f"tcp://127.0.0.1:{tunnel_server.port}", heartbeat=None) as client:
        cap = await client.binding("upper")
        assert cap.native_url == tunnel_server.env.capability("upper").url
        assert cap.url.startswith("tcp://127.0.0.1:") and cap.url != cap.native_url
        port = int(cap.url.rsplit(":", 1)[1])
        for word in (b"first", b"second"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(word)
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 30) == word.upper()
            writer.close()
        reader, writer = await client.open_tunnel("echo")
        writer.write(b"direct")
        assert await asyncio.wait_for(reader.readexactly(6), 30) == b"direct"
        writer.close()
        with pytest.raises(HudProtocolError) as info:
            await client.open_tunnel("nope")
        assert (info.value.code, info.value.message) == (-32000, "unknown capability: 'nope'")
    # forwarders are closed with the client
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


# -- frame size (G1) ------------------------------------------------------------------------


async def test_15_mib_frames_both_ways(raw: Raw) -> None:
    data = "y" * (15 * MIB)
    reply = await raw.call("tasks.start", {"id": "bigarg", "args": {"data": data}})
    assert reply["result"] == {"prompt": data}
    result = await raw.result("tasks.grade", {"answer": data})
    assert result == {"score": 1.0, "size": len(data)}


async def test_15_mib_frames_with_client(server: Server) -> None:
    data = "z" * (15 * MIB)
    async with connect(f"127.0.0.1:{server.port}", heartbeat=None) as client:
        frame = await client.start("bigarg", {"data": data})
        assert frame["prompt"] == data
        assert (await client.grade(data))["size"] == len(data)


async def test_oversized_frame_error_then_close(server: Server) -> None:
    conn = await Raw.open(server.port)
    frame = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tasks.start",
        "params": {"id": "bigarg", "args": {"data": "q" * (17 * MIB)}},
    }
    data = json.dumps(frame).encode() + b"\n"

    async def write() -> None:
        with contextlib.suppress(ConnectionError):
            conn.writer.write(data)
            await conn.writer.drain()

    writer = asyncio.create_task(write())
    reply = await conn.recv()
    assert reply is not None
    assert reply["id"] is None and reply["error"]["code"] == -32000
    assert reply["error"]["message"].startswith("Control-channel frame")
    assert "exceeds the limit" in reply["error"]["message"]
    with contextlib.suppress(ConnectionError):
        assert await conn.at_eof()
    await writer
    await conn.close()
    # the server survives
    other = await Raw.open(server.port)
    assert "session_id" in await other.result("hello")
    await other.close()


async def test_frame_limit_boundary(teardowns: list) -> None:
    limit = 4096
    async with Server(make_env(teardowns), max_frame=limit) as srv:
        prefix = b'{"jsonrpc":"2.0","id":1,"method":"hello","params":{"pad":"'
        suffix = b'"}}'
        pad = limit - len(prefix) - len(suffix)
        conn = await Raw.open(srv.port)
        await conn.send_bytes(prefix + b"p" * pad + suffix + b"\n")
        reply = await conn.recv()
        assert reply is not None and reply["id"] == 1, "a frame of exactly the limit is accepted"
        await conn.close()
        conn = await Raw.open(srv.port)
        await conn.send_bytes(prefix + b"p" * (pad + 1) + suffix + b"\n")
        reply = await conn.recv()
        assert reply is not None and reply["id"] is None, "limit + 1 bytes is rejected"
        assert reply["error"]["code"] == -32000
        await conn.close()


async def test_oversized_start_reply_cancels_task(teardowns: list) -> None:
    async with Server(make_env(teardowns), max_frame=4096) as srv:
        conn = await Raw.open(srv.port)
        sid = (await conn.result("hello"))["session_id"]
        code, message = await conn.error("tasks.start", {"id": "big", "args": {"size": 10000}})
        assert code == -32000 and "too large" in message
        assert torn(teardowns) == [sid]
        assert await conn.error("tasks.grade", {"answer": "x"}) == (-32600, "no task in progress")
        await conn.close()
