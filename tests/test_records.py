"""Job records (G39): real rollouts written as they finish, resume counts, SIGKILL safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from hud import Environment, Taskset
from hud.agents import Agent, NopAgent, OracleAgent
from hud.eval.job import Job
from hud.eval.records import (
    JobRecord,
    find_trace,
    list_jobs,
    load_trace_file,
    trace_events,
)
from hud.eval.trace import AgentStep, MCPToolCall, MCPToolResult, ToolStep, parse_step
from hud.graders import SubScore

REPO = Path(__file__).resolve().parents[1]


def make_env() -> tuple[Environment, Any]:
    env = Environment(name="letters")

    @env.template(solution=lambda run: str(run.args["sentence"].count(run.args["letter"])))
    async def count(sentence: str, letter: str):
        answer = yield f"How many '{letter}' in '{sentence}'?"
        ok = 1.0 if str(answer).strip() == str(sentence.count(letter)) else 0.0
        yield SubScore(name="total", value=ok, children=[SubScore(name="exact", value=ok)])

    return env, count


class ToolUser(Agent):
    """Records a tool call, a failing tool call, then answers correctly."""

    name = "tool-user"

    async def __call__(self, run: Any) -> None:
        call = MCPToolCall(id="c1", name="bash", arguments={"command": "echo hi"})
        run.record(AgentStep(content="checking", reasoning="hmm", tool_calls=[call]))
        run.record(
            ToolStep(call=call, result=MCPToolResult(content=[{"type": "text", "text": "hi"}]))
        )
        bad = MCPToolCall(id="c2", name="nope")
        run.record(
            ToolStep(
                call=bad,
                result=MCPToolResult(content=[{"type": "text", "text": "unknown"}], isError=True),
                error="unknown tool: 'nope'",
            )
        )
        answer = str(run.args["sentence"].count(run.args["letter"]))
        run.record(AgentStep(content=answer, done=True, finish_reason="stop"))
        run.trace.content = answer


class Crasher(Agent):
    async def __call__(self, run: Any) -> None:
        raise RuntimeError("boom")


async def recorded_batch(
    base: Path, agent: Any, *, group: int = 1, tasks: list[Any] | None = None, **kw: Any
) -> tuple[Job, JobRecord]:
    if tasks is None:
        _, count = make_env()
        tasks = [count(sentence="banana", letter="a"), count(sentence="xyz", letter="a")]
    job = Job(name="letters", group=group)
    record = JobRecord.create(
        job.id, job.name, {"agent": agent.name, "total": 2 * group}, base_dir=base
    )
    record.attach(job)
    await Taskset("letters", tasks).run(agent, group=group, job=job, **kw)
    record.finish("completed", {"reward": job.reward, "total": len(job.runs)})
    return job, record


# -- writing -------------------------------------------------------------------------------
async def test_batch_writes_job_runs_and_traces(tmp_path: Path) -> None:
    job, record = await recorded_batch(tmp_path, ToolUser(), group=2)
    root = tmp_path / job.id
    assert record.root == root

    meta = json.loads((root / "job.json").read_text())
    assert set(meta) >= {
        "job_id",
        "name",
        "created_at",
        "updated_at",
        "status",
        "config",
        "summary",
    }
    assert meta["status"] == "completed" and meta["job_id"] == job.id
    assert meta["config"] == {"agent": "tool-user", "total": 4}
    assert meta["summary"] == {"reward": 1.0, "total": 4}

    rows = record.finished_runs()
    assert len(rows) == 4
    assert {r["trace_id"] for r in rows} == {r.trace_id for r in job.runs}
    for row in rows:
        assert set(row) == {
            "trace_id", "slug", "task_id", "args", "group_index", "reward", "status",
            "stop_reason", "error", "is_error", "answer", "duration_s", "finished_at",
        }  # fmt: skip
        assert row["status"] == "completed" and row["reward"] == 1.0 and not row["is_error"]
        assert row["error"] is None and row["task_id"] == "count"
        assert isinstance(row["duration_s"], float) and row["finished_at"].endswith("Z")
    slugs = sorted({r.slug for r in job.runs})
    assert len(slugs) == 2
    assert sorted((r["slug"], r["group_index"]) for r in rows) == [
        (slug, i) for slug in slugs for i in (0, 1)
    ]

    run = job.runs[0]
    path = root / "traces" / f"{run.trace_id}.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    header = lines[0]
    assert header["type"] == "trace" and header["trace_id"] == run.trace_id
    assert header["slug"] == run.slug and header["args"] == run.args
    assert header["grade"]["subscores"][0]["name"] == "total"
    assert header["content"] == run.trace.content and header["status"] == "completed"
    steps = lines[1:]
    assert all(s["type"] == "step" for s in steps)
    assert [s["source"] for s in steps] == [
        "task",
        "user",
        "agent",
        "tool",
        "tool",
        "agent",
        "task",
    ]
    assert steps[3]["call"]["name"] == "bash" and steps[3]["result"]["content"][0]["text"] == "hi"
    assert steps[-1]["task_call"]["phase"] == "evaluate"
    # each step line parses back into the step class it was
    for raw, original in zip(steps, run.trace.steps, strict=True):
        step = parse_step({k: v for k, v in raw.items() if k != "type"})
        assert type(step) is type(original) and step.step_id == original.step_id

    loaded = load_trace_file(path)
    assert loaded["reward"] == 1.0 and loaded["content"] == run.trace.content
    assert loaded["format"] == "record" and len(loaded["steps"]) == 7
    kinds = [e["kind"] for e in trace_events(loaded)]
    assert kinds == [
        "task", "prompt", "agent_message", "tool_call", "tool_call", "agent_message", "grade",
    ]  # fmt: skip
    assert record.unfinished_traces() == []


async def test_errors_and_nop_runs_recorded(tmp_path: Path) -> None:
    _, record = await recorded_batch(tmp_path, Crasher())
    rows = record.finished_runs()
    assert [r["status"] for r in rows] == ["error", "error"]
    assert all("[agent loop] RuntimeError: boom" in r["error"] for r in rows)
    header = load_trace_file(find_trace(rows[0]["trace_id"], tmp_path))
    assert header["status"] == "error" and "boom" in header["error"]

    _, record = await recorded_batch(tmp_path, NopAgent())
    assert [(r["reward"], r["answer"]) for r in record.finished_runs()] == [(0.0, "")] * 2


async def test_failed_provisioning_is_recorded(tmp_path: Path) -> None:
    from hud.eval.task import Task

    orphan = Task(env="missing", id="nothing")
    job = Job(name="orphans")
    record = JobRecord.create(job.id, job.name, {}, base_dir=tmp_path)
    record.attach(job)

    def placement(task: Any) -> Any:
        raise ConnectionError("no substrate")

    await Taskset("o", [orphan]).run(OracleAgent(), job=job, runtime=placement)
    (row,) = record.finished_runs()
    assert row["status"] == "error" and row["is_error"] and "[provisioning]" in row["error"]
    assert find_trace(row["trace_id"], tmp_path).is_file()


# -- reading, lookup -------------------------------------------------------------------------
async def test_open_list_and_prefixes(tmp_path: Path) -> None:
    a = JobRecord.create("abc111", "first", {}, base_dir=tmp_path)
    time.sleep(0.002)
    b = JobRecord.create("abc222", "second", {}, base_dir=tmp_path)
    (tmp_path / "junk").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "job.json").write_text("{nope")
    assert [r.job_id for r in list_jobs(tmp_path)] == ["abc222", "abc111"]
    assert list_jobs(tmp_path / "absent") == []
    assert JobRecord.open("abc1", base_dir=tmp_path).name == "first"
    assert JobRecord.open("abc222", base_dir=tmp_path).root == b.root
    with pytest.raises(LookupError, match="ambiguous: abc111, abc222"):
        JobRecord.open("abc", base_dir=tmp_path)
    with pytest.raises(LookupError, match="no job matching 'zzz'"):
        JobRecord.open("zzz", base_dir=tmp_path)
    with pytest.raises(FileExistsError):
        JobRecord.create("abc111", "again", {}, base_dir=tmp_path)
    with pytest.raises(ValueError, match="status must be one of"):
        a.finish("done", {})
    assert a.effective_status == "running"  # this process is alive
    a.pid = 0
    assert a.effective_status == "interrupted"


async def test_find_trace_forms(tmp_path: Path) -> None:
    job, record = await recorded_batch(tmp_path, OracleAgent())
    trace_id = job.runs[0].trace_id
    assert trace_id is not None
    path = record.trace_path(trace_id)
    assert find_trace(trace_id, tmp_path) == path
    assert find_trace(trace_id[:10], tmp_path) == path
    assert find_trace(trace_id.upper(), tmp_path) == path
    dashed = f"{trace_id[:8]}-{trace_id[8:12]}-{trace_id[12:16]}-{trace_id[16:20]}-{trace_id[20:]}"
    assert find_trace(dashed, tmp_path) == path
    assert find_trace(str(path), tmp_path) == path
    with pytest.raises(LookupError, match="no trace matching"):
        find_trace("ffffffffffff", tmp_path)
    for name in ("feed0001", "feed0002"):
        (record.traces_dir / f"{name}.jsonl").write_text('{"type": "trace"}\n')
    with pytest.raises(LookupError, match="ambiguous: feed0001, feed0002"):
        find_trace("feed", tmp_path)
    with pytest.raises(LookupError, match="empty trace id"):
        find_trace(" ", tmp_path)


async def test_torn_last_line_tolerated(tmp_path: Path) -> None:
    job, record = await recorded_batch(tmp_path, OracleAgent())
    with open(record.runs_file, "a") as fh:
        fh.write('{"trace_id": "half')  # a write cut by SIGKILL
    assert len(record.finished_runs()) == 2
    # appending after a torn line starts a fresh line
    await Taskset("letters", [job.runs[0].task]).run(OracleAgent(), job=_rejoin(record))
    rows = record.finished_runs()
    assert len(rows) == 3
    assert all(isinstance(r, dict) for r in rows)


async def test_unicode_line_separators_in_text_survive(tmp_path: Path) -> None:
    # Records are written as UTF-8 without escaping, so an answer holding U+2028, U+2029, U+0085
    # or a form feed puts those characters raw in the line: only "\n" may end a row.
    _, count = make_env()
    sentence = "a\u2028b\u2029a\x85c\x0ca\x1ed"
    job, record = await recorded_batch(
        tmp_path, OracleAgent(), tasks=[count(sentence=sentence, letter="a")]
    )
    rows = record.finished_runs()
    assert [r["args"]["sentence"] for r in rows] == [sentence]
    assert rows[0]["answer"] == "3"
    trace = load_trace_file(record.root / "traces" / f"{job.runs[0].trace_id}.jsonl")
    assert trace["args"]["sentence"] == sentence and trace["reward"] == 1.0


def _rejoin(record: JobRecord) -> Job:
    job = Job(id=record.job_id, name=record.name)
    record.attach(job)
    return job


async def test_done_counts_and_resume_skip(tmp_path: Path) -> None:
    _, count = make_env()
    tasks = [count(sentence="banana", letter="a"), count(sentence="xyz", letter="a")]
    job, record = await recorded_batch(tmp_path, OracleAgent(), group=2, tasks=tasks[:1])
    assert record.done_counts() == {tasks[0].slug: 2}
    assert record.done_indices() == {tasks[0].slug: {0, 1}}

    reopened = JobRecord.open(job.id[:8], base_dir=tmp_path)
    done = reopened.done_indices()
    resumed = _rejoin(reopened)
    assert reopened.status == "running"
    await Taskset("letters", tasks).run(
        OracleAgent(),
        group=2,
        job=resumed,
        skip=lambda task, i: i in done.get(task.slug, set()),
    )
    assert sorted(r.slug or "" for r in resumed.runs) == [tasks[1].slug] * 2
    assert reopened.done_counts() == {tasks[0].slug: 2, tasks[1].slug: 2}

    # errored rows count as done unless retry_errors
    _, crashed = await recorded_batch(tmp_path / "c", Crasher(), tasks=tasks[:1])
    assert crashed.done_counts() == {tasks[0].slug: 1}
    assert crashed.done_counts(retry_errors=True) == {}
    assert crashed.done_indices(retry_errors=True) == {}


async def test_in_flight_steps_are_streamed(tmp_path: Path) -> None:
    """While a rollout runs its steps are already on disk (a kill keeps them)."""
    _, count = make_env()
    seen: dict[str, Any] = {}
    record_holder: list[JobRecord] = []

    class Peek(Agent):
        async def __call__(self, run: Any) -> None:
            run.record(AgentStep(content="thinking"))
            rec = record_holder[0]
            seen["unfinished"] = [p.stem for p in rec.unfinished_traces()]
            seen["lines"] = rec.trace_path(run.trace_id).read_text().splitlines()
            run.trace.content = "3"

    job = Job(name="peek")
    record = JobRecord.create(job.id, job.name, {}, base_dir=tmp_path)
    record_holder.append(record)
    record.attach(job)
    await Taskset("p", [count(sentence="banana", letter="a")]).run(Peek(), job=job)
    header, *steps = (json.loads(line) for line in seen["lines"])
    assert seen["unfinished"] == [job.runs[0].trace_id]
    assert header["type"] == "trace" and header["status"] is None
    assert [s["source"] for s in steps] == ["task", "user", "agent"]
    final = load_trace_file(record.trace_path(job.runs[0].trace_id or ""))
    assert final["status"] == "completed" and len(final["steps"]) == 4
    assert record.unfinished_traces() == []


# -- SIGKILL ---------------------------------------------------------------------------------
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from hud import Environment, Taskset
    from hud.agents import Agent
    from hud.eval.job import Job
    from hud.eval.records import JobRecord
    from hud.eval.trace import AgentStep

    env = Environment(name="slow")

    @env.template
    async def echo(n: int):
        answer = yield f"say {n}"
        yield 1.0 if str(answer) == str(n) else 0.0

    class Slow(Agent):
        async def __call__(self, run):
            run.record(AgentStep(content="working"))
            await asyncio.sleep(0.15)
            run.trace.content = str(run.args["n"])
            run.record(AgentStep(content=run.trace.content, done=True))

    async def main():
        job = Job(id="killme", name="slow")
        record = JobRecord.create(job.id, job.name, {"total": 200}, base_dir=Path(sys.argv[1]))
        record.attach(job)
        print("started", flush=True)
        tasks = [echo(n=i) for i in range(200)]
        await Taskset("slow", tasks).run(Slow(), job=job, max_concurrent=3)

    asyncio.run(main())
    """
)


def test_sigkill_mid_batch_loses_nothing(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    base = tmp_path / "jobs"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HUD_TELEMETRY_LOCAL_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(base)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = base / "killme" / "runs.jsonl"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if runs.exists() and runs.read_text().count("\n") >= 7:
                break
            if proc.poll() is not None:
                pytest.fail(f"child exited early: {proc.communicate()}")
            time.sleep(0.02)
        else:
            pytest.fail("child made no progress")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

    record = JobRecord.open("killme", base_dir=base)
    rows = record.finished_runs()
    assert 7 <= len(rows) < 200
    for row in rows:
        data = load_trace_file(record.trace_path(row["trace_id"]))
        assert data["status"] == "completed" and data["reward"] == 1.0
        assert data["steps"][-1]["task_call"]["phase"] == "evaluate"
    assert record.status == "running" and record.effective_status == "interrupted"
    done = record.done_counts()
    assert sum(done.values()) == len(rows)
    # rollouts in flight at the kill left partial traces, not rows
    for path in record.unfinished_traces():
        assert json.loads(path.read_text().splitlines()[0])["status"] is None
