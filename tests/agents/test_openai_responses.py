"""OpenAIAgent against a fake OpenAI Responses server, via the openai SDK."""

from __future__ import annotations

from pathlib import Path

from hud.agents.openai_agent import OpenAIAgent, OpenAIConfig
from hud.capabilities import Capability
from hud.eval.trace import AgentStep, ToolStep
from tests.agents.conftest import SECRET, run_task
from tests.agents.fakes import Call, Fail, FakeProvider, Reply


def openai_agent(fake: FakeProvider, **kw: object) -> OpenAIAgent:
    config = {"base_url": f"{fake.url}/v1", "api_key": SECRET, "retry_base_delay": 0.01}
    return OpenAIAgent(OpenAIConfig(**{**config, **kw}))


async def test_shell_tool_rollout(fake: FakeProvider, shell_env, workspace: Path, seen) -> None:
    fake.script = [
        Reply(
            reasoning="plan",
            calls=[Call("shell", {"commands": ["echo hi > out.txt", "cat out.txt"]}, id="sh1")],
        ),
        Reply(text="hi"),
    ]
    run = await run_task(
        shell_env, openai_agent(fake, max_output_tokens=500, reasoning={"effort": "low"})
    )
    assert run.reward == 1.0 and run.status == "completed"
    assert seen.files["out.txt"] == "hi\n"
    first, second = fake.bodies("/responses")
    assert first["model"] == "gpt-5.6" and first["tools"] == [{"type": "shell"}]
    assert first["max_output_tokens"] == 500 and first["reasoning"] == {"effort": "low"}
    assert "temperature" not in first  # knobs are sent only when set
    prompt = "Write 'hi' into out.txt in the workspace, then answer with its content."
    assert first["input"] == [{"role": "user", "content": [{"type": "input_text", "text": prompt}]}]
    kinds = [item.get("type") for item in second["input"]]
    assert kinds == [None, "reasoning", "shell_call", "shell_call_output"]
    output = second["input"][-1]
    assert output["call_id"] == "sh1"
    assert output["output"] == [
        {"stdout": "", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}},
        {"stdout": "hi\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}},
    ]
    turns = [s for s in run.trace.steps if isinstance(s, AgentStep)]
    assert turns[0].reasoning == "plan" and turns[0].usage.cached_tokens == 3
    (tool,) = [s for s in run.trace.steps if isinstance(s, ToolStep)]
    assert tool.call.name == "shell" and "$ cat out.txt\nhi\n(exit 0)" in tool.result.text


async def test_mcp_proxy_tools(fake: FakeProvider, shell_env, mcp_url: str) -> None:
    shell_env.add_capability(Capability.mcp(mcp_url, name="tools"))
    fake.script = [
        Reply(calls=[Call("add", {"a": 2, "b": 2}, id="f1"), Call("nope", {}, id="f2")]),
        Reply(text="4"),
    ]
    run = await run_task(shell_env, openai_agent(fake), "ask")
    assert run.reward == 1.0
    first, second = fake.bodies()
    names = [t.get("name", t["type"]) for t in first["tools"]]
    assert names[0] == "shell" and "add" in names
    mul = [n for n in names if n.startswith("math_mul_")]
    assert len(mul) == 1 and len(mul[0]) == len("math_mul_") + 8  # sanitized + hash suffix
    add_spec = next(t for t in first["tools"] if t.get("name") == "add")
    assert add_spec["type"] == "function" and set(add_spec["parameters"]["properties"]) == {
        "a",
        "b",
    }
    outputs = [i for i in second["input"] if i.get("type") == "function_call_output"]
    assert outputs == [
        {"type": "function_call_output", "call_id": "f1", "output": "4"},
        {"type": "function_call_output", "call_id": "f2", "output": "unknown tool: 'nope'"},
    ]


async def test_length_stop(fake: FakeProvider, shell_env) -> None:
    fake.script = [Reply(text="The answer is", finish="length")]
    run = await run_task(shell_env, openai_agent(fake), "ask")
    assert run.trace.stop_reason == "length" and run.status == "completed"
    assert run.trace.content == "The answer is"


async def test_connection_errors_are_retried(shell_env) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here
    agent = OpenAIAgent(
        OpenAIConfig(
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key="k",
            max_retries=1,
            retry_base_delay=0.01,
        )
    )
    run = await run_task(shell_env, agent, "ask")
    assert run.status == "error"
    (step,) = [s for s in run.trace.steps if isinstance(s, AgentStep)]
    assert "gave up after 2 attempts" in step.error and len(step.extra["retries"]) == 1


async def test_server_error_then_success(fake: FakeProvider, shell_env) -> None:
    fake.script = [Fail(503, "unavailable"), Reply(text="4")]
    run = await run_task(shell_env, openai_agent(fake), "ask")
    assert run.reward == 1.0 and len(fake.requests) == 2
