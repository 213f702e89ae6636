"""The shared tool loop (`ToolAgent`): stop reasons, error feedback, auto-respond, budgets.

Driven through `OpenAIChatAgent` and a fake Chat Completions server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hud.agents.openai_chat import OpenAIChatAgent, OpenAIChatConfig
from hud.agents.tool_agent import asks_to_continue
from hud.eval.trace import AgentStep, ToolStep
from tests.agents.conftest import run_task
from tests.agents.fakes import Call, FakeProvider, Reply


def agent(fake: FakeProvider, **kw: object) -> OpenAIChatAgent:
    config = {"base_url": f"{fake.url}/v1", "model": "m", "retry_base_delay": 0.01}
    return OpenAIChatAgent(OpenAIChatConfig(**{**config, **kw}))


def tool_results(fake: FakeProvider, request: int) -> list[str]:
    return [m["content"] for m in fake.bodies()[request]["messages"] if m["role"] == "tool"]


async def test_malformed_tool_arguments_are_fed_back(fake: FakeProvider, shell_env) -> None:
    fake.script = [
        Reply(calls=[Call("bash", raw='{"command": "echo 4', id="bad")]),
        Reply(calls=[Call("bash", {"command": "echo 4"})]),
        Reply(text="4"),
    ]
    run = await run_task(shell_env, agent(fake), "ask")
    assert run.reward == 1.0 and run.trace.stop_reason == "done"
    (feedback,) = tool_results(fake, 1)
    assert "arrived incomplete or malformed" in feedback
    assert feedback.endswith("Re-issue the call in full.")
    turn = next(s for s in run.trace.steps if isinstance(s, AgentStep))
    assert turn.extra["unparsed_arguments"] == {"bad": '{"command": "echo 4'}
    # the model's raw text went back unchanged in its own turn
    assert fake.bodies()[1]["messages"][1]["tool_calls"][0]["function"]["arguments"] == (
        '{"command": "echo 4'
    )


async def test_malformed_tool_arguments_can_stop(fake: FakeProvider, shell_env) -> None:
    fake.script = [Reply(calls=[Call("bash", raw="[1, 2]")])]
    cfg = {"stop_on": {"malformed_tool_call"}}
    run = await run_task(shell_env, agent(fake, **cfg), "ask")
    assert run.trace.stop_reason == "malformed_tool_call" and run.status == "completed"
    assert len(fake.requests) == 1
    assert not [s for s in run.trace.steps if isinstance(s, ToolStep)]


async def test_unknown_tool(fake: FakeProvider, shell_env) -> None:
    fake.script = [Reply(calls=[Call("teleport", {"to": "mars"})]), Reply(text="4")]
    run = await run_task(shell_env, agent(fake), "ask")
    assert tool_results(fake, 1) == ["unknown tool: 'teleport'"]
    (step,) = [s for s in run.trace.steps if isinstance(s, ToolStep)]
    assert step.result.isError and run.reward == 1.0


async def test_tool_timeout(fake: FakeProvider, shell_env, workspace: Path, seen) -> None:
    fake.script = [
        Reply(calls=[Call("bash", {"command": "sleep 30; touch late"})]),
        Reply(text="4"),
    ]
    run = await run_task(shell_env, agent(fake, tool_timeout_seconds=1), "ask")
    (result,) = tool_results(fake, 1)
    assert result == "command timed out after 1s; retry with a shorter command"
    assert run.reward == 1.0 and "late" not in seen.files


async def test_max_steps(fake: FakeProvider, shell_env) -> None:
    fake.handler = lambda request: Reply(calls=[Call("bash", {"command": "echo again"})])
    run = await run_task(shell_env, agent(fake, max_steps=3), "ask")
    assert len(fake.requests) == 3
    assert run.trace.stop_reason == "max_steps" and run.status == "completed"
    assert len([s for s in run.trace.steps if isinstance(s, ToolStep)]) == 3


async def test_row_agent_config_wins(fake: FakeProvider, shell_env) -> None:
    fake.handler = lambda request: Reply(calls=[Call("bash", {"command": "true"})])
    run = await run_task(shell_env, agent(fake, max_steps=5), "ask", agent_config={"max_steps": 2})
    assert len(fake.requests) == 2 and run.trace.stop_reason == "max_steps"


async def test_length_finish(fake: FakeProvider, shell_env) -> None:
    fake.script = [Reply(text="The answer", finish="length")]
    run = await run_task(shell_env, agent(fake), "ask")
    assert run.trace.stop_reason == "length" and run.trace.content == "The answer"


async def test_auto_respond_answers_continue(fake: FakeProvider, shell_env) -> None:
    fake.script = [Reply(text="Should I compute it?"), Reply(text="4")]
    run = await run_task(shell_env, agent(fake, auto_respond=True), "ask")
    assert run.reward == 1.0 and len(fake.requests) == 2
    assert fake.bodies()[1]["messages"][-1] == {
        "role": "user",
        "content": [{"type": "text", "text": "continue"}],
    }
    users = [s for s in run.trace.steps if s.source == "user"]
    assert users[-1].extra == {"auto_respond": True}


async def test_no_auto_respond_without_the_flag_or_budget(fake: FakeProvider, shell_env) -> None:
    fake.script = [Reply(text="Should I compute it?")]
    run = await run_task(shell_env, agent(fake), "ask")
    assert len(fake.requests) == 1 and run.trace.stop_reason == "done"
    fake.script = [Reply(text="Should I compute it?")]
    await run_task(shell_env, agent(fake, auto_respond=True, max_steps=1), "ask")
    assert len(fake.requests) == 2  # one more call only: the budget was spent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Would you like me to continue?", True),
        ("I can do that. Let me know if you want the details.", True),
        ("", True),
        ("The answer is 4.", False),
        ("Done: wrote out.txt", False),
    ],
)
def test_asks_to_continue(text: str, expected: bool) -> None:
    assert asks_to_continue(text) is expected


async def test_ssh_failure_limit(fake: FakeProvider, shell_env, monkeypatch) -> None:
    """Three consecutive SSH infrastructure failures end the rollout with an error."""
    from hud.capabilities import SSH
    from hud.clients.client import CAPABILITY_CLIENTS

    class Broken:
        """A shell client whose connection is gone (stands in for a dead SSH server)."""

        async def run(self, command: str, **kw: object) -> None:
            raise ConnectionResetError("ssh channel closed")

    async def factory(cap: object) -> Broken:
        return Broken()

    monkeypatch.setitem(CAPABILITY_CLIENTS, SSH, factory)
    fake.handler = lambda request: Reply(calls=[Call("bash", {"command": "ls"})] * 2)
    run = await run_task(shell_env, agent(fake), "ask")
    assert run.status == "error"
    assert run.trace.error == "SSH tool failure limit reached after 3 consecutive errors"
    assert len(fake.requests) == 2
    results = [s.result.text for s in run.trace.steps if isinstance(s, ToolStep)]
    assert results == ["tool error: ConnectionResetError: ssh channel closed"] * 3


async def test_parallel_tool_calls_when_asked(
    fake: FakeProvider, shell_env, workspace, seen
) -> None:
    calls = [Call("bash", {"command": f"sleep 0.3; echo {i} > f{i}"}, id=f"p{i}") for i in range(3)]
    fake.script = [Reply(calls=calls), Reply(text="4")]
    cfg = {"completion_kwargs": {"parallel_tool_calls": True}}
    run = await run_task(shell_env, agent(fake, **cfg), "ask")
    assert run.reward == 1.0
    assert sorted(seen.files) == ["f0", "f1", "f2"]
    ids = [m["tool_call_id"] for m in fake.bodies()[1]["messages"] if m["role"] == "tool"]
    assert ids == ["p0", "p1", "p2"]  # results in call order
    assert fake.bodies()[0]["parallel_tool_calls"] is True
