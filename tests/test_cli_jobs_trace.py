"""`hud jobs` and `hud trace` on real job records and span files (subprocess CLI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hud import Environment, Taskset
from hud.agents import Agent
from hud.eval.job import Job
from hud.eval.records import JobRecord
from hud.eval.trace import AgentStep, MCPToolCall, MCPToolResult, ToolStep
from hud.graders import SubScore

HudRunner = Any  # tests/conftest.py run_hud fixture


def make_env() -> Any:
    env = Environment(name="letters")

    @env.template
    async def count(sentence: str, letter: str):
        answer = yield f"How many '{letter}' in '{sentence}'?"
        ok = 1.0 if str(answer).strip() == str(sentence.count(letter)) else 0.0
        yield SubScore(name="total", value=ok, children=[SubScore(name="exact", value=ok)])

    return count


class Worker(Agent):
    async def __call__(self, run: Any) -> None:
        if run.args["sentence"] == "crash":
            raise RuntimeError("boom")
        call = MCPToolCall(id="c1", name="bash", arguments={"command": "echo hi"})
        run.record(AgentStep(content="let me look", reasoning="plan first", tool_calls=[call]))
        run.record(
            ToolStep(
                call=call, result=MCPToolResult(content=[{"type": "text", "text": "hi\nthere"}])
            )
        )
        bad = MCPToolCall(id="c2", name="nope")
        run.record(
            ToolStep(
                call=bad,
                result=MCPToolResult(content=[{"type": "text", "text": "x"}], isError=True),
                error="unknown tool: 'nope'",
            )
        )
        answer = str(run.args["sentence"].count(run.args["letter"]))
        run.record(AgentStep(content=answer, done=True))
        run.trace.content = answer


@pytest.fixture
async def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A cwd with one finished job in .hud/jobs (2 good rollouts, 1 crash) and span files."""
    cwd = tmp_path / "proj"
    cwd.mkdir()
    monkeypatch.setenv("HUD_TELEMETRY_LOCAL_DIR", str(cwd / "spans"))
    count = make_env()
    tasks = [count(sentence="banana", letter="a"), count(sentence="crash", letter="c")]
    job = Job(name="letters (2 tasks)")
    record = JobRecord.create(
        job.id, job.name, {"source": "tasks.py", "agent": "worker", "total": 2},
        base_dir=cwd / ".hud" / "jobs",
    )  # fmt: skip
    record.attach(job)
    await Taskset("letters", tasks).run(Worker(), job=job)
    record.finish("completed", {"reward": job.reward, "total": 2})
    good = next(r for r in job.runs if r.status == "completed")
    bad = next(r for r in job.runs if r.status == "error")
    return {"cwd": cwd, "job": job, "good": good.trace_id, "bad": bad.trace_id}


def test_jobs_list_and_detail(project: dict[str, Any], run_hud: HudRunner) -> None:
    cwd, job = project["cwd"], project["job"]
    done = run_hud("jobs", cwd=cwd)
    assert done.returncode == 0, done.stderr
    assert job.id in done.stdout
    assert "letters (2 tasks)" in done.stdout and "completed" in done.stdout
    # The crash is graded 0: it failed mid-run but is no error (JobSummary's one definition)
    assert "2/2 " in done.stdout and "err)" not in done.stdout and "0.500" in done.stdout

    listed = json.loads(run_hud("jobs", "--json", cwd=cwd).stdout)
    assert len(listed) == 1
    row = listed[0]
    assert (row["job_id"], row["status"], row["runs"], row["total"], row["errors"]) == (
        job.id, "completed", 2, 2, 0,
    )  # fmt: skip
    assert row["reward"] == 0.5
    assert run_hud("jobs", "-q", cwd=cwd).stdout.split() == [job.id]

    detail = run_hud("jobs", job.id[:6], cwd=cwd)
    assert detail.returncode == 0, detail.stderr
    out = detail.stdout
    assert f"Job {job.id}" in out and "source=tasks.py" in out
    assert project["good"] in out and project["bad"] in out
    assert "[agent loop] RuntimeError: boom" in out
    assert "count-" in out

    data = json.loads(run_hud("jobs", job.id, "--json", cwd=cwd).stdout)
    assert data["job_id"] == job.id and len(data["runs"]) == 2 and data["unfinished"] == []
    assert data["stats"]["errors"] == 0 and data["stats"]["failed_mid_run"] == 1


def test_jobs_empty_unknown_and_dir(
    project: dict[str, Any], run_hud: HudRunner, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_hud("jobs", cwd=empty)
    assert done.returncode == 0 and "No jobs in .hud/jobs" in done.stderr
    assert run_hud("jobs", "--json", cwd=empty).stdout.strip() == "[]"
    missing = run_hud("jobs", "deadbeef", cwd=empty)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "Error: no job matching 'deadbeef' in .hud/jobs"
    elsewhere = run_hud("jobs", "--dir", str(project["cwd"] / ".hud" / "jobs"), "--json", cwd=empty)
    assert [j["job_id"] for j in json.loads(elsewhere.stdout)] == [project["job"].id]


def test_trace_renders_a_record(project: dict[str, Any], run_hud: HudRunner) -> None:
    cwd = project["cwd"]
    done = run_hud("trace", project["good"][:10], cwd=cwd)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"Trace {project['good']}" in out
    assert f"Source: job {project['job'].id}" in out
    assert "Task: count-" in out and "Status: completed · reward 1.000" in out
    assert "How many 'a' in 'banana'?" in out
    assert "Turn 1 — agent" in out and "Turn 2 — agent" in out
    assert "plan first" in out and "let me look" in out
    assert "→ bash(command='echo hi')" in out
    assert "  bash →\n    hi\n    there" in out  # G30: tool results rendered
    assert "✗ nope: unknown tool: 'nope'" in out
    assert "reward 1.000 · answer '3'" in out
    assert "- total: 1.000" in out and "  - exact: 1.000" in out

    events = json.loads(run_hud("trace", project["good"], "--json", cwd=cwd).stdout)
    assert [e["kind"] for e in events] == [
        "trace", "task", "prompt", "agent_message", "tool_call", "tool_call", "agent_message",
        "grade",
    ]  # fmt: skip
    assert events[0]["trace_id"] == project["good"] and events[0]["reward"] == 1.0
    tool = events[4]
    assert (tool["tool_name"], tool["arguments"], tool["result_text"]) == (
        "bash", {"command": "echo hi"}, "hi\nthere",
    )  # fmt: skip
    assert events[5]["error"] == "unknown tool: 'nope'"
    assert events[-1]["subscores"][0]["children"][0]["name"] == "exact"

    crash = run_hud("trace", project["bad"], cwd=cwd)
    assert crash.returncode == 0
    assert "Status: error" in crash.stdout and "[agent loop] RuntimeError: boom" in crash.stdout


def test_trace_from_span_dir(project: dict[str, Any], run_hud: HudRunner, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    spans = project["cwd"] / "spans"
    done = run_hud("trace", project["good"], "--local-dir", str(spans), cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert f"Source: local ({spans / project['good']}.jsonl)" in done.stdout
    assert "  bash →\n    hi" in done.stdout and "reward 1.000" in done.stdout
    events = json.loads(
        run_hud("trace", project["good"], "--json", "--local-dir", str(spans), cwd=elsewhere).stdout
    )
    assert events[0]["source"] == "local"
    assert [e["kind"] for e in events if e["kind"] == "tool_call"] == ["tool_call"] * 2
    # a path works too
    path = spans / f"{project['good']}.jsonl"
    assert run_hud("trace", str(path), cwd=elsewhere).returncode == 0


def test_trace_unknown_id(project: dict[str, Any], run_hud: HudRunner) -> None:
    done = run_hud("trace", "ffffffffffffffff", cwd=project["cwd"])
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: no trace matching 'ffffffffffffffff' in .hud/jobs"
    ]
    assert done.stdout == ""


def test_command_groups_and_jobs_dir_flag(
    project: dict[str, Any], run_hud: HudRunner, tmp_path: Path
) -> None:
    """0.6.21's `hud jobs list|get` and `hud trace get` beside today's forms, same output;
    ``--jobs-dir`` everywhere (``--dir`` still accepted, hidden)."""
    cwd, job = project["cwd"], project["job"]
    listed = run_hud("jobs", "list", "--json", cwd=cwd)
    assert listed.stdout == run_hud("jobs", "--json", cwd=cwd).stdout
    assert [j["job_id"] for j in json.loads(listed.stdout)] == [job.id]
    got = run_hud("jobs", "get", job.id[:8], "--json", cwd=cwd)
    assert got.returncode == 0, got.stderr
    assert got.stdout == run_hud("jobs", job.id[:8], "--json", cwd=cwd).stdout
    assert json.loads(got.stdout)["job_id"] == job.id
    quiet = run_hud("jobs", "get", job.id, "-q", "-n", "1", cwd=cwd)
    assert len(quiet.stdout.split()) == 1
    trace = run_hud("trace", "get", project["good"], "--json", cwd=cwd)
    assert trace.returncode == 0, trace.stderr
    assert trace.stdout == run_hud("trace", project["good"], "--json", cwd=cwd).stdout

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    records = str(cwd / ".hud" / "jobs")
    for flag in ("--jobs-dir", "--dir"):
        out = run_hud("jobs", "list", flag, records, "--json", cwd=elsewhere)
        assert [j["job_id"] for j in json.loads(out.stdout)] == [job.id], out.stderr
        out = run_hud("jobs", "get", job.id, flag, records, "--json", cwd=elsewhere)
        assert json.loads(out.stdout)["job_id"] == job.id, out.stderr
        out = run_hud("trace", "get", project["bad"], flag, records, "--json", cwd=elsewhere)
        assert json.loads(out.stdout)[0]["trace_id"] == project["bad"], out.stderr
    helps = run_hud("jobs", "list", "--help", cwd=elsewhere).stdout
    assert "--jobs-dir" in helps and "--dir " not in helps


def test_jobs_cancel_interrupts_a_running_eval(run_hud: HudRunner, tmp_path: Path) -> None:
    """`hud jobs cancel` stops a running local `hud eval` (recorded interrupted, resumable);
    --dry-run changes nothing; without a terminal it needs --yes; finished jobs are refused."""
    import subprocess
    import sys
    import time

    (tmp_path / "env.py").write_text(
        "import asyncio\n\nfrom hud import Environment\n\nenv = Environment(name='slow')\n\n\n"
        "@env.template()\nasync def wait(seconds: float = 600):\n"
        "    await asyncio.sleep(seconds)\n    yield 'done?'\n    yield 1.0\n"
    )
    (tmp_path / "tasks.py").write_text("from env import wait\n\ntasks = [wait()]\n")
    from tests.conftest import hud_env

    proc = subprocess.Popen(
        [sys.executable, "-m", "hud", "eval", "tasks.py", "nop", "--all", "--yes"],
        cwd=tmp_path,
        env=hud_env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list((tmp_path / ".hud" / "jobs").glob("*/job.json")):
            assert time.monotonic() < deadline and proc.poll() is None, "no job record"
            time.sleep(0.1)
        (job_id,) = [p.name for p in (tmp_path / ".hud" / "jobs").iterdir()]
        dry = run_hud("jobs", "cancel", job_id, "--dry-run", "--json", cwd=tmp_path)
        plan = json.loads(dry.stdout)
        assert plan["dry_run"] is True and plan["actions"][0]["job_id"] == job_id
        assert proc.poll() is None, "a dry run changes nothing"
        unconfirmed = run_hud("jobs", "cancel", job_id, cwd=tmp_path)
        assert unconfirmed.returncode == 1 and "--yes" in unconfirmed.stderr
        assert proc.poll() is None
        done = run_hud("jobs", "cancel", job_id, "--yes", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert f"cancelled {job_id}" in done.stdout
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (row,) = json.loads(run_hud("jobs", "list", "--json", cwd=tmp_path).stdout)
    assert row["status"] == "interrupted"
    again = run_hud("cancel", job_id, "--yes", cwd=tmp_path)  # hidden 0.6.21 alias
    assert again.returncode == 1 and "is not running (it is interrupted)" in again.stderr


def test_global_verbosity_flags(run_hud: HudRunner, tmp_path: Path) -> None:
    """`hud -v`/`-vv` count (-vv adds the traceback to an error), `hud -q` exists."""
    plain = run_hud("-v", "jobs", "get", "deadbeef", cwd=tmp_path)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert "Error: no job matching 'deadbeef'" in plain.stderr
    for flags in (["-vv"], ["-v", "-v"], ["--verbose", "--verbose"]):
        debug = run_hud(*flags, "jobs", "get", "deadbeef", cwd=tmp_path)
        assert debug.returncode == 1 and "Traceback" in debug.stderr, flags
        assert "Error: no job matching 'deadbeef'" in debug.stderr
    quiet = run_hud("-q", "jobs", "list", "--json", cwd=tmp_path)
    assert (quiet.returncode, quiet.stdout.strip()) == (0, "[]"), quiet.stderr
    both = run_hud("-q", "-v", "jobs", "list", cwd=tmp_path)
    assert both.returncode == 1 and "pass -q or -v, not both" in both.stderr
