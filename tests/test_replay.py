"""`ReplayAgent`: a recorded rollout played back reproduces its answer and reward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hud import Environment, Taskset
from hud.agents import Agent, OracleAgent, ReplayAgent
from hud.agents.replay import ReplayError, to_tool_result
from hud.capabilities import MCP, SSH, Capability
from hud.clients import client as client_mod
from hud.eval.job import Job
from hud.eval.records import JobRecord, find_trace
from hud.eval.trace import AgentStep, MCPToolCall, MCPToolResult, Step, ToolStep, text_messages


def make_env(*, strict: bool = True, caps: tuple[Capability, ...] = ()) -> Any:
    env = Environment(name="letters", capabilities=list(caps))

    @env.template(solution=lambda run: str(run.args["sentence"].count(run.args["letter"])))
    async def count(sentence: str, letter: str):
        answer = yield f"How many '{letter}' in '{sentence}'?"
        expected = sentence.count(letter)
        if strict:
            yield 1.0 if str(answer).strip() == str(expected) else 0.0
        else:  # a changed grader: within one counts
            yield 1.0 if abs(int(str(answer).strip() or -99) - expected) <= 1 else 0.0

    return count


class Worker(Agent):
    """Uses a shell tool and an MCP tool, then answers one too many."""

    async def __call__(self, run: Any) -> None:
        shell = MCPToolCall(id="c1", name="bash", arguments={"command": "echo hi"})
        lookup = MCPToolCall(id="c2", name="lookup", arguments={"q": "banana"})
        run.record(AgentStep(content="looking", reasoning="plan", tool_calls=[shell, lookup]))
        run.record(
            ToolStep(call=shell, result=MCPToolResult(content=[{"type": "text", "text": "hi"}]))
        )
        run.record(
            ToolStep(call=lookup, result=MCPToolResult(content=[{"type": "text", "text": "old"}]))
        )
        run.record(Step(source="user", messages=text_messages("user", "CONTINUE")))
        answer = str(run.args["sentence"].count(run.args["letter"]) + 1)
        run.record(AgentStep(content=answer, done=True, finish_reason="stop", model="m1"))
        run.trace.content = answer
        run.trace.stop_reason = "done"


async def record_one(base: Path, agent: Any, task: Any) -> tuple[Job, str]:
    job = Job(name="rec")
    JobRecord.create(job.id, job.name, {}, base_dir=base).attach(job)
    await Taskset("rec", [task]).run(agent, job=job)
    trace_id = job.runs[0].trace_id
    assert trace_id is not None
    return job, trace_id


async def test_replay_reproduces_answer_and_reward(tmp_path: Path) -> None:
    count = make_env()
    task = count(sentence="banana", letter="a")
    job, trace_id = await record_one(tmp_path, OracleAgent(), task)
    original = job.runs[0]
    assert original.reward == 1.0

    agent = ReplayAgent(trace=trace_id[:10], jobs_dir=tmp_path)
    assert agent.answer == "3"
    replay = (await Taskset("r", [task]).run(agent)).runs[0]
    assert replay.trace.content == original.trace.content == "3"
    assert replay.reward == original.reward and replay.grade is not None
    assert replay.grade.raw == original.grade.raw  # type: ignore[union-attr]
    agent_steps = [s for s in replay.trace.steps if s.source == "agent"]
    assert len(agent_steps) == 1
    assert agent_steps[0].extra == {"replayed": True} and agent_steps[0].model == "oracle"
    assert [s.source for s in replay.trace.steps] == ["task", "user", "agent", "task"]


async def test_replay_checks_a_grading_change(tmp_path: Path) -> None:
    task = make_env()(sentence="banana", letter="a")
    job, trace_id = await record_one(tmp_path, Worker(), task)
    assert job.runs[0].reward == 0.0  # answered 4
    lenient = make_env(strict=False)(sentence="banana", letter="a")
    path = find_trace(trace_id, tmp_path)
    replay = (await Taskset("r", [lenient]).run(ReplayAgent(trace=str(path)))).runs[0]
    assert replay.trace.content == "4" and replay.reward == 1.0
    assert replay.trace.stop_reason == "done"
    tools = [s for s in replay.trace.steps if isinstance(s, ToolStep)]
    assert [t.call.name for t in tools] == ["bash", "lookup"]
    for tool in tools:  # no capability clients: recorded results kept
        assert tool.extra["replayed"] is False
        assert tool.extra["reason"] == "environment publishes no capabilities"
    assert tools[1].result is not None and tools[1].result.text == "old"
    sources = [s.source for s in replay.trace.steps]
    assert sources == ["task", "user", "agent", "tool", "tool", "user", "agent", "task"]
    assert replay.trace.steps[5].extra == {"replayed": True}
    assert replay.trace.steps[5].messages == text_messages("user", "CONTINUE")


async def test_replay_from_span_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spans = tmp_path / "spans"
    monkeypatch.setenv("HUD_TELEMETRY_LOCAL_DIR", str(spans))
    task = make_env()(sentence="strawberry", letter="r")
    job = await Taskset("t", [task]).run(Worker())
    trace_id = job.runs[0].trace_id
    monkeypatch.delenv("HUD_TELEMETRY_LOCAL_DIR")
    by_path = ReplayAgent(trace=spans / f"{trace_id}.jsonl")
    by_id = ReplayAgent(trace=trace_id or "", jobs_dir=tmp_path / "none", local_dir=spans)
    for agent in (by_path, by_id):
        replay = (await Taskset("r", [task]).run(agent)).runs[0]
        assert replay.trace.content == "4" and replay.reward == job.runs[0].reward == 0.0


class FakeMCP:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((name, arguments))
        return {"content": [{"type": "text", "text": f"new {arguments.get('q')}"}]}


class FakeSSH:
    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str) -> dict[str, Any]:
        self.commands.append(command)
        return {"stdout": "hi\n", "stderr": "", "exit_code": 0}


async def test_replay_re_executes_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mcp, ssh = FakeMCP(), FakeSSH()

    async def open_mcp(cap: Capability) -> FakeMCP:
        return mcp

    async def open_ssh(cap: Capability) -> FakeSSH:
        return ssh

    monkeypatch.setitem(client_mod.CAPABILITY_CLIENTS, MCP, open_mcp)
    monkeypatch.setitem(client_mod.CAPABILITY_CLIENTS, SSH, open_ssh)
    caps = (
        Capability(name="tools", protocol=MCP, url="tcp://127.0.0.1:9"),
        Capability(name="box", protocol=SSH, url="ssh://127.0.0.1:9"),
    )
    task = make_env(caps=caps)(sentence="banana", letter="a")
    _, trace_id = await record_one(tmp_path, Worker(), task)
    replay = (await Taskset("r", [task]).run(ReplayAgent(trace_id, jobs_dir=tmp_path))).runs[0]
    assert replay.trace.status == "completed", replay.trace.error
    assert mcp.calls == [("lookup", {"q": "banana"})]
    assert ssh.commands == ["echo hi"]
    shell, lookup = [s for s in replay.trace.steps if isinstance(s, ToolStep)]
    assert shell.extra == {"replayed": True, "changed": True}
    assert shell.result is not None and shell.result.text == "$ echo hi\nhi\n(exit 0)"
    assert lookup.result is not None and lookup.result.text == "new banana"
    assert lookup.extra["changed"] is True
    assert replay.trace.content == "4"

    no_exec = ReplayAgent(trace_id, jobs_dir=tmp_path, execute_tools=False)
    again = (await Taskset("r", [task]).run(no_exec)).runs[0]
    reasons = {s.extra.get("reason") for s in again.trace.steps if isinstance(s, ToolStep)}
    assert reasons == {"tool execution disabled"}


async def test_replay_errors(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="cannot replay 'nope'"):
        ReplayAgent(trace="nope", jobs_dir=tmp_path)
    env = Environment(name="other")

    @env.template
    async def other():
        yield "hi"
        yield 1.0

    _, trace_id = await record_one(tmp_path, OracleAgent(), make_env()(sentence="a", letter="a"))
    run = (await Taskset("o", [other()]).run(ReplayAgent(trace_id, jobs_dir=tmp_path))).runs[0]
    assert run.trace.status == "error"
    assert "is a rollout of task 'count', not 'other'" in (run.trace.error or "")


def test_to_tool_result_shapes() -> None:
    assert to_tool_result("x").text == "x"
    failed = to_tool_result({"stdout": b"o", "stderr": "e", "returncode": 2}, "ls")
    assert failed.isError and failed.text == "$ ls\no\nstderr:\ne\n(exit 2)"
    assert to_tool_result({"content": [], "isError": True}).isError
    assert to_tool_result([1, 2]).text == "[1, 2]"
    same = MCPToolResult(content=[{"type": "text", "text": "t"}])
    assert to_tool_result(same) is same
