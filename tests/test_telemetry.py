"""Step spans exported to ``HUD_TELEMETRY_LOCAL_DIR`` (runtimes-agents.md §3.1-3.2)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hud import Environment, Taskset
from hud.agents import Agent
from hud.eval.records import load_trace_file
from hud.eval.trace import AgentStep, MCPToolCall, MCPToolResult, Step, ToolStep, Trace
from hud.telemetry import attach, normalize_trace_id, step_span

REPO = Path(__file__).resolve().parents[1]
PEER_PYTHON = REPO / ".peer" / "hud" / "bin" / "python"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SPAN_KEYS = {
    "name", "trace_id", "span_id", "parent_span_id", "kind", "start_time", "end_time",
    "status_code", "status_message", "attributes", "events",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUD_TELEMETRY_LOCAL_DIR", raising=False)


def make_env() -> Any:
    env = Environment(name="letters")

    @env.template
    async def count(sentence: str, letter: str):
        answer = yield f"How many '{letter}' in '{sentence}'?"
        yield 1.0 if str(answer).strip() == str(sentence.count(letter)) else 0.0

    return count


class ToolUser(Agent):
    async def __call__(self, run: Any) -> None:
        call = MCPToolCall(id="c1", name="bash", arguments={"command": "echo hi"})
        run.record(
            AgentStep(content="let me think", reasoning="hmm", tool_calls=[call], model="fake")
        )
        run.record(
            ToolStep(call=call, result=MCPToolResult(content=[{"type": "text", "text": "hi"}]))
        )
        bad = MCPToolCall(id="c2", name="nope", arguments={})
        run.record(
            ToolStep(
                call=bad,
                result=MCPToolResult(
                    content=[{"type": "text", "text": "unknown tool"}], isError=True
                ),
                error="unknown tool: 'nope'",
            )
        )
        run.record(AgentStep(content="2", done=True, finish_reason="stop", model="fake"))
        run.trace.content = "2"


def read_spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_normalize_trace_id_matches_reference() -> None:
    # values observed from the official package
    assert normalize_trace_id("abc") == "8121658521d75715a73a68c4c57dd2e3"
    assert normalize_trace_id("") == "f5aedab11e025f1ab9c604806f77da07"
    assert (
        normalize_trace_id("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
        == "1b4e28ba2fa111d2883f0016d3cca427"
    )
    assert normalize_trace_id("C4B984724A8A41629DD6AEA132F45DEA") == (
        "c4b984724a8a41629dd6aea132f45dea"
    )


async def test_rollout_spans_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spans_dir = tmp_path / "spans" / "nested"
    monkeypatch.setenv("HUD_TELEMETRY_LOCAL_DIR", str(spans_dir))
    count = make_env()
    job = await Taskset("t", [count(sentence="banana", letter="n")]).run(ToolUser())
    (run,) = job.runs
    files = list(spans_dir.iterdir())
    assert [f.name for f in files] == [f"{run.trace_id}.jsonl"]
    spans = read_spans(files[0])
    assert [s["name"] for s in spans] == [
        "step.task", "step.user", "step.agent", "step.tool", "step.tool", "step.agent", "step.task",
    ]  # fmt: skip
    span_ids = set()
    for span, step in zip(spans, run.trace.steps, strict=True):
        assert set(span) == SPAN_KEYS
        assert span["trace_id"] == run.trace_id and re.fullmatch(r"[0-9a-f]{32}", span["trace_id"])
        assert re.fullmatch(r"[0-9a-f]{16}", span["span_id"])
        span_ids.add(span["span_id"])
        assert span["parent_span_id"] is None and span["kind"] == "INTERNAL"
        assert span["events"] == []
        assert TIME_RE.match(span["start_time"]) and TIME_RE.match(span["end_time"])
        assert span["start_time"] == step.started_at and span["end_time"] == step.ended_at
        attrs = span["attributes"]
        assert set(attrs) == {"hud.schema", "hud.task_run_id", "hud.payload"}
        assert attrs["hud.schema"] == "hud.step.v1"
        assert attrs["hud.task_run_id"] == run.trace_id
        assert attrs["hud.payload"] == step.model_dump(mode="json", exclude_none=True)
        assert None not in attrs["hud.payload"].values()
    assert len(span_ids) == len(spans)
    statuses = [(s["status_code"], s["status_message"]) for s in spans]
    assert statuses[4] == ("ERROR", "unknown tool: 'nope'")
    assert all(st == ("OK", None) for i, st in enumerate(statuses) if i != 4)
    setup = spans[0]["attributes"]["hud.payload"]["task_call"]
    assert setup["phase"] == "setup" and setup["result"] == {"prompt": "How many 'n' in 'banana'?"}
    evaluate = spans[-1]["attributes"]["hud.payload"]["task_call"]
    assert evaluate == {
        "phase": "evaluate",
        "name": "count",
        "arguments": {"answer": "2"},
        "result": {"score": 1.0},
    }
    tool = spans[3]["attributes"]["hud.payload"]
    assert tool["call"]["name"] == "bash" and tool["result"]["content"][0]["text"] == "hi"
    # the span file reads back as a trace
    data = load_trace_file(files[0])
    assert (data["format"], data["reward"], data["content"]) == ("spans", 1.0, "2")
    assert data["status"] == "completed" and data["error"] is None
    assert len(data["steps"]) == 7


async def test_error_rollout_spans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUD_TELEMETRY_LOCAL_DIR", str(tmp_path / "s"))

    class Crasher(Agent):
        async def __call__(self, run: Any) -> None:
            raise RuntimeError("boom")

    count = make_env()
    job = await Taskset("t", [count(sentence="a", letter="a")]).run(Crasher())
    spans = read_spans(tmp_path / "s" / f"{job.runs[0].trace_id}.jsonl")
    system = [s for s in spans if s["name"] == "step.system"]
    assert len(system) == 1 and system[0]["status_code"] == "ERROR"
    assert system[0]["status_message"] == "[agent loop] RuntimeError: boom"
    data = load_trace_file(tmp_path / "s" / f"{job.runs[0].trace_id}.jsonl")
    assert data["status"] == "error" and data["error"] == "[agent loop] RuntimeError: boom"


async def test_no_dir_no_spans(tmp_path: Path) -> None:
    count = make_env()
    await Taskset("t", [count(sentence="a", letter="a")]).run(ToolUser())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_dotenv_setting_and_non_uuid_ids(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"HUD_TELEMETRY_LOCAL_DIR={tmp_path / 'fromenv'}\n")
    from hud.settings import reload

    reload()
    try:
        trace = Trace(trace_id="my-run")
        assert attach(trace) is True
        assert attach(trace) is True  # idempotent: one listener
        trace.record(Step(source="system", error="x"))
    finally:
        reload()
    (path,) = (tmp_path / "fromenv").iterdir()
    assert path.stem == normalize_trace_id("my-run")
    (span,) = read_spans(path)
    assert span["trace_id"] == path.stem and span["attributes"]["hud.task_run_id"] == "my-run"


def test_best_effort_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    trace = Trace(trace_id="abc")
    assert attach(trace, blocker) is True
    trace.record(Step(source="user"))  # export fails silently
    assert len(trace.steps) == 1
    # no trace id: dropped (spans need a task run id)
    anon = Trace()
    attach(anon, tmp_path / "anon")
    anon.record(Step(source="user"))
    assert not (tmp_path / "anon").exists()
    assert attach(object()) is False  # no dir configured -> nothing to do


def test_step_span_start_falls_back_to_end() -> None:
    step = Step(source="user", ended_at="2026-01-01T00:00:00.000000Z")
    object.__setattr__(step, "started_at", None)
    span = step_span("abc", step)
    assert span["start_time"] == span["end_time"] == "2026-01-01T00:00:00.000000Z"


def test_a_recorded_step_is_serialised_once_for_record_and_spans() -> None:
    from hud.eval.records import step_json
    from hud.telemetry import step_payload

    first, second = AgentStep(content="a"), AgentStep(content="b")
    payload = step_json(first)  # the job record's line, as the step is recorded
    assert step_payload(first) is payload  # the span reuses it ...
    assert step_span("abc", first)["attributes"]["hud.payload"] is payload
    assert step_payload(second)["content"] == "b"  # ... and a new step gets its own
    assert step_payload(first) == payload and step_payload(first) is not payload


# -- the official package writes the same spans ------------------------------------------
SNIPPET = textwrap.dedent(
    """
    import asyncio, json, logging, sys, warnings
    warnings.simplefilter("ignore"); logging.disable(logging.CRITICAL)
    from hud import Environment
    from hud.eval import Taskset
    from hud.agents.base import Agent
    try:
        from hud.types import MCPToolCall, MCPToolResult
        from hud.agents.types import AgentStep, ToolStep
        PEER = True
    except ImportError:
        from hud.eval.trace import AgentStep, ToolStep, MCPToolCall, MCPToolResult
        PEER = False

    env = Environment(name="letters")

    @env.template()
    async def count(sentence: str, letter: str):
        answer = yield f"How many '{letter}' in '{sentence}'?"
        yield 1.0 if str(answer).strip() == str(sentence.count(letter)) else 0.0

    class ToolUser(Agent):
        async def __call__(self, run):
            call = MCPToolCall(id="c1", name="bash", arguments={"command": "echo hi"})
            run.record(AgentStep(content="let me think", reasoning="hmm", tool_calls=[call],
                                 model="fake"))
            run.record(ToolStep(call=call, result=MCPToolResult(
                content=[{"type": "text", "text": "hi"}])))
            run.record(ToolStep(call=MCPToolCall(id="c2", name="nope", arguments={}),
                                result=MCPToolResult(content=[{"type": "text", "text": "x"}],
                                                     isError=True),
                                error="unknown tool: 'nope'"))
            run.record(AgentStep(content="2", done=True, finish_reason="stop", model="fake"))
            run.trace.content = "2"

    async def main():
        kw = {}
        if PEER:
            from hud.eval import LocalRuntime
            kw["runtime"] = LocalRuntime(env)
        job = await Taskset("t", [count(sentence="banana", letter="n")]).run(ToolUser(), **kw)
        print("TRACE=" + job.runs[0].trace.trace_id)

    asyncio.run(main())
    """
)


def _run_snippet(
    python: str, spans: Path, cwd: Path, pythonpath: str | None
) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUD_") and k != "PYTHONPATH"}
    env.update(HUD_TELEMETRY_LOCAL_DIR=str(spans), HOME=str(cwd), HUD_CLI_ANALYTICS_ENABLED="0")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run(
        [python, "-c", SNIPPET], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    trace = next(x for x in done.stdout.split() if x.startswith("TRACE="))[6:]
    return read_spans(spans / f"{normalize_trace_id(trace)}.jsonl")


def _shape(span: dict[str, Any]) -> dict[str, Any]:
    payload = dict(span["attributes"]["hud.payload"])
    for key in ("started_at", "ended_at", "citations", "messages"):
        payload.pop(key, None)  # times differ; peer keeps empty citations; message shape differs
    return {
        "name": span["name"],
        "keys": sorted(span),
        "attr_keys": sorted(span["attributes"]),
        "schema": span["attributes"]["hud.schema"],
        "status": (span["status_code"], span["status_message"]),
        "kind": span["kind"],
        "parent": span["parent_span_id"],
        "events": span["events"],
        "payload": payload,
    }


@pytest.mark.peer
def test_spans_match_official_package(tmp_path: Path) -> None:
    if not PEER_PYTHON.exists():
        pytest.skip("official hud package not installed in .peer/hud")
    ours = _run_snippet(sys.executable, tmp_path / "ours", tmp_path, str(REPO))
    theirs = _run_snippet(str(PEER_PYTHON), tmp_path / "theirs", tmp_path, None)
    assert [_shape(s) for s in ours] == [_shape(s) for s in theirs]
