"""Drive a server with the *official* hud client API (run under `.peer/hud/bin/python`).

Usage: official_client.py tcp://127.0.0.1:PORT [SCENARIO ...]

Runs each scenario in order (all by default) against the interop env and prints one JSON object
``{scenario: result}``. A scenario that raises records ``{"raised": {type, code, message}}``.
Scenarios clean up after themselves (grade or cancel), so no parked session leaks into the next.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from hud import Runtime, Task, Taskset, connect
from hud.agents.base import Agent
from hud.clients import HudProtocolError
from hud.eval import Run

URL = sys.argv[1]


def runtime() -> Runtime:
    return Runtime(URL, params={"ready_timeout": 20})


def err(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "code": getattr(exc, "code", None),
        "message": getattr(exc, "message", None) if isinstance(exc, HudProtocolError) else str(exc),
        "text": str(exc),
    }


async def capture(coro: Any) -> dict[str, Any]:
    """``{"result": ...}`` or ``{"error": {...}}``."""
    try:
        return {"result": await coro}
    except Exception as exc:
        return {"error": err(exc)}


async def lifecycle() -> list[str]:
    async with connect(runtime()) as c:
        frame = await c.start_task("events", {})
        await c.cancel()
    return frame["events"]


class Fixed(Agent):
    """Leaves a fixed answer (or a per-task answer) in the trace."""

    def __init__(self, answers: Any) -> None:
        super().__init__()
        self.answers = answers

    async def __call__(self, run: Any) -> None:
        answer = self.answers
        if isinstance(answer, dict):
            answer = answer[run.task_id]
        run.trace.content = answer


def grade_view(grade: Any) -> dict[str, Any]:
    return {
        "reward": grade.reward,
        "done": grade.done,
        "content": grade.content,
        "info": grade.info,
        "is_error": grade.is_error,
        "raw": grade.raw,
    }


# -- scenarios -------------------------------------------------------------------------
async def s_hello() -> Any:
    async with connect(runtime()) as c:
        m = await c.hello()
        again = await c.hello(m.session_id)
        return {
            "session_id": m.session_id,
            "protocol_version": m.protocol_version,
            "server": [m.server_info.name, m.server_info.version],
            "bindings": [[b.name, b.protocol, b.url, b.params] for b in m.bindings],
            "heartbeat_session_id": again.session_id,
        }


async def s_list() -> Any:
    async with connect(runtime()) as c:
        return await c.list_tasks()


async def s_string_answer() -> Any:
    out = {}
    async with connect(runtime()) as c:
        out["start"] = await c.start_task("greet", {"name": "bob"})
        out["right"] = await c.grade({"answer": "hello bob"})
        await c.start_task("greet", {"name": "bob", "punctuation": "?"})
        out["wrong"] = await c.grade({"answer": "bye"})
    return out


async def s_answer_int() -> Any:
    out = {}
    async with connect(runtime()) as c:
        out["start"] = await c.start_task("add", {"a": "2", "b": 3})
        out["json_text"] = await c.grade({"answer": "5"})
        await c.start_task("add", {"a": 2, "b": 3})
        out["wrong"] = await c.grade({"answer": "6"})
        await c.start_task("add", {"a": 2, "b": 3})
        out["not_json"] = await c.grade({"answer": "five"})
        await c.start_task("parsed", {})
        out["parsed_object"] = await c.grade({"answer": '{"k": [1, 2]}'})
        await c.start_task("parsed", {})
        out["parsed_none"] = await c.grade({"answer": None})
        async with Run(c, "add", {"a": 20, "b": 22}) as run:
            out["run_prompt"] = run.prompt_text
            run.trace.content = "42"
        out["run_reward"] = run.reward
    return out


async def s_evalres() -> Any:
    async with connect(runtime()) as c:
        await c.start_task("evalres", {})
        frame = await c.grade({"answer": "x"})
        async with Run(c, "evalres", {}) as run:
            run.trace.content = "x"
    return {"frame": frame, "keys": list(frame), "grade": grade_view(run.grade)}


async def s_dictgrade() -> Any:
    async with connect(runtime()) as c:
        await c.start_task("dictgrade", {})
        frame = await c.grade({"answer": "x"})
        async with Run(c, "dictgrade", {}) as run:
            run.trace.content = "x"
    return {"frame": frame, "keys": list(frame), "grade": grade_view(run.grade)}


async def s_subscore() -> Any:
    async with connect(runtime()) as c:
        await c.start_task("subscore", {})
        frame = await capture(c.grade({"answer": "x"}))
        async with Run(c, "subscore", {}) as run:
            run.trace.content = "x"
    return {"frame": frame, "grade": grade_view(run.grade)}


async def s_boolgrade() -> Any:
    async with connect(runtime()) as c:
        await c.start_task("boolgrade", {})
        return await capture(c.grade({"answer": "x"}))


async def s_noreward() -> Any:
    async with connect(runtime()) as c:
        await c.start_task("noreward", {})
        return await c.grade({"answer": "x"})


async def s_prompts() -> Any:
    async with connect(runtime()) as c:
        framed = await c.start_task("framed", {})
        await c.cancel()
        question = await c.start_task("question", {})
        await c.cancel()
        async with Run(c, "framed", {}) as run:
            bindings = run.bindings
            messages = run.prompt_text
        async with Run(c, "question", {}) as qrun:
            qrun.trace.content = "y"
    return {
        "framed": framed,
        "question": question,
        "run_bindings": bindings,
        "run_prompt_text": messages,
        "question_reward": qrun.reward,
    }


async def s_errors() -> Any:
    out = {}
    async with connect(runtime()) as c:
        out["unknown_task"] = await capture(c.start_task("nope", {}))
        out["bad_args"] = await capture(c.start_task("greet", {}))
        out["extra_args"] = await capture(c.start_task("greet", {"name": "a", "zzz": 1}))
        out["keyerr"] = await capture(c.start_task("keyerr", {}))
        out["crash"] = await capture(c.start_task("crash", {}))
        out["noyield"] = await capture(c.start_task("noyield", {}))
        out["nothing_to_grade"] = await capture(c.grade({"answer": "x"}))
        await c.start_task("strgrade", {})
        out["strgrade"] = await capture(c.grade({"answer": "x"}))
        await c.start_task("noscore", {})
        out["noscore"] = await capture(c.grade({"answer": "x"}))
        out["bad_session_type"] = await capture(c.hello(5))
        # The session is still usable after all of that.
        await c.start_task("greet", {"name": "z"})
        out["after"] = await c.grade({"answer": "hello z"})
    return out


async def s_cancel() -> Any:
    async with connect(runtime()) as c:
        await c.start_task("track", {"tag": "c1"})
        cancelled = await c.cancel()
        after = await capture(c.grade({"answer": "c1"}))
        again = await c.cancel()
    return {"cancel": cancelled, "again": again, "grade_after": after, "events": await lifecycle()}


async def s_task_run() -> Any:
    rt = runtime()
    job = await Task(env="interop", id="greet", args={"name": "x"}).run(
        Fixed("hello x"), runtime=rt
    )
    taskset = Taskset(
        "interop",
        [
            Task(env="interop", id="add", args={"a": 1, "b": "2"}),
            Task(env="interop", id="greet", args={"name": "y"}),
            Task(env="interop", id="evalres"),
        ],
    )
    job2 = await taskset.run(Fixed({"add": "3", "greet": "nope", "evalres": "x"}), runtime=rt)
    return {
        "single": {"reward": job.reward, "runs": [[r.reward, r.trace.status] for r in job.runs]},
        "taskset": {
            "reward": job2.reward,
            "runs": [[r.slug, r.reward, r.trace.status, r.prompt_text] for r in job2.runs],
        },
    }


class Sleepy(Agent):
    """Never answers in time."""

    async def __call__(self, run: Any) -> None:
        await asyncio.sleep(30)


async def s_verifier() -> Any:
    # Same env, no runtime_config: the verifier starts + grades on the same connection with
    # {"answer": <actor's raw grade frame>}.
    task = Task(
        env="interop",
        id="greet",
        args={"name": "v"},
        verifier=Task(env="interop", id="parsed"),
    )
    job = await task.run(Fixed("hello v"), runtime=runtime())
    run = job.runs[0]
    return {"reward": run.reward, "grade": grade_view(run.grade), "status": run.trace.status}


async def s_timeout() -> Any:
    task = Task(env="interop", id="track", args={"tag": "to"})
    t0 = time.monotonic()
    job = await task.run(Sleepy(), runtime=runtime(), rollout_timeout=1.0)
    run = job.runs[0]
    await asyncio.sleep(0.3)
    return {
        "elapsed": time.monotonic() - t0,
        "status": run.trace.status,
        "stop_reason": run.trace.stop_reason,
        "reward": run.reward,
        "events": await lifecycle(),
    }


async def s_concurrent() -> Any:
    async with connect(runtime()) as a, connect(runtime()) as b:
        await a.start_task("track", {"tag": "k1", "delay": 0.6})
        await b.start_task("track", {"tag": "k2", "delay": 0.6})
        t0 = time.monotonic()
        ga, gb = await asyncio.gather(a.grade({"answer": "k1"}), b.grade({"answer": "wrong"}))
        elapsed = time.monotonic() - t0
    return {"a": ga, "b": gb, "elapsed": elapsed, "events": await lifecycle()}


async def s_restart() -> Any:
    async with connect(runtime()) as c:
        await c.start_task("track", {"tag": "r1"})
        await c.start_task("track", {"tag": "r2"})
        mid = await lifecycle()
        grade = await c.grade({"answer": "r2"})
    return {"mid": mid, "grade": grade, "events": await lifecycle()}


async def s_park() -> Any:
    async with connect(runtime()) as a:
        await a.start_task("track", {"tag": "p1"})
        sid = (await a.hello()).session_id
    await asyncio.sleep(0.2)
    parked = await lifecycle()
    async with connect(runtime()) as b:
        adopted = await b.grade({"answer": "p1"})
        nothing = await capture(b.grade({"answer": "p1"}))
    return {
        "sid": sid,
        "parked": parked,
        "adopted": adopted,
        "then": nothing,
        "events": await lifecycle(),
    }


async def s_ambiguous() -> Any:
    ids = []
    for tag in ("a1", "a2"):
        async with connect(runtime()) as c:
            await c.start_task("track", {"tag": tag})
            ids.append((await c.hello()).session_id)
    await asyncio.sleep(0.2)
    async with connect(runtime()) as c:
        ambiguous = await capture(c.grade({"answer": "a1"}))
        resumed = await c.hello(ids[0])
        first = await c.grade({"answer": "a1"})
    async with connect(runtime()) as d:
        resumed2 = await d.hello(ids[1])
        second = await d.grade({"answer": "a2"})
    return {
        "ids": ids,
        "ambiguous": ambiguous,
        "resumed": resumed.session_id,
        "resumed_bindings": [b.name for b in resumed.bindings],
        "first": first,
        "resumed2": resumed2.session_id,
        "second": second,
        "events": await lifecycle(),
    }


async def s_sessions_errors() -> Any:
    async with connect(runtime()) as a, connect(runtime()) as b:
        sid = (await a.hello()).session_id
        unknown = await capture(b.hello("sess-00000000"))
        live = await capture(b.hello(sid))
        await a.start_task("greet", {"name": "q"})
        still = await a.grade({"answer": "hello q"})
    return {"sid": sid, "unknown": unknown, "live": live, "still": still}


def roundtrip(host: str, port: int, payload: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


async def s_tunnel() -> Any:
    out: dict[str, Any] = {}
    async with connect(runtime()) as c:
        native = {b.name: b.url for b in (await c.hello()).bindings}
        cap = c.binding("echo")
        parts = urlsplit(cap.url)
        out["native"] = native["echo"]
        out["routed"] = cap.url
        out["by_protocol"] = c.binding("echo/1").name
        tools = c.binding("mcp")
        out["mcp"] = [tools.name, tools.url, tools.params]
        try:
            c.binding("nope")
            out["unknown"] = None
        except KeyError as exc:
            out["unknown"] = err(exc)
        payload = b"hello through the tunnel\n" * 100
        out["roundtrip_ok"] = (
            await asyncio.to_thread(roundtrip, parts.hostname, parts.port, payload) == payload
        )
        payloads = [bytes([65 + i]) * (200_000 + i) for i in range(8)]
        results = await asyncio.gather(
            *(asyncio.to_thread(roundtrip, parts.hostname, parts.port, p) for p in payloads)
        )
        out["concurrent_ok"] = [r == p for r, p in zip(results, payloads, strict=True)]
        dead = urlsplit(c.binding("dead").url)
        out["dead"] = await asyncio.to_thread(roundtrip, dead.hostname, dead.port, b"x")
        routed_port = parts.port
    await asyncio.sleep(0.1)
    try:
        await asyncio.to_thread(roundtrip, "127.0.0.1", routed_port, b"x")
        out["after_close"] = "connected"
    except OSError as exc:
        out["after_close"] = type(exc).__name__
    out["dead"] = out["dead"].decode()
    return out


SCENARIOS = {name[2:]: fn for name, fn in globals().items() if name.startswith("s_")}


async def main(names: list[str]) -> None:
    results: dict[str, Any] = {}
    for name in names or list(SCENARIOS):
        try:
            results[name] = await asyncio.wait_for(SCENARIOS[name](), 30)
        except BaseException as exc:  # record and go on
            results[name] = {"raised": err(exc)}
    print(json.dumps(results, default=repr))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[2:]))
