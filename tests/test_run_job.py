"""`hud.eval.run_job`: the one job runner behind `hud eval` and `Taskset.run`.

Real rollouts on real environment servers (in-process and fresh processes), real job records.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from hud import Environment, Task, Taskset
from hud.agents import Agent, OracleAgent
from hud.eval.events import JobEvent
from hud.eval.records import JobRecord
from hud.eval.runner import run_job
from hud.types.job import JobSummary, RunRow
from hud.types.trace import AgentStep
from tests.conftest import HudRunner, hud_env

ENV = """
import os

from hud import Environment

env = Environment(name="pids")


@env.template(solution=lambda run: run.args["word"].upper())
async def shout(word: str):
    answer = yield f"Shout {word} (pid {os.getpid()})"
    yield 1.0 if answer == word.upper() else 0.0


@env.template(solution="x")
async def broken():
    raise RuntimeError("setup exploded")
    yield "never"


@env.template(solution="anything")
async def lenient():
    yield "say anything"
    yield 1.0
"""

ROWS = [
    {"env": "pids", "id": "shout", "args": {"word": "hi"}},
    {"env": "pids", "id": "shout", "args": {"word": "yo"}},
    {"env": "pids", "id": "broken"},
    {"env": "pids", "id": "lenient"},
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "env.py").write_text(ENV)
    (root / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return root


def live_env() -> tuple[Environment, Any]:
    env = Environment(name="live")

    @env.template(solution=lambda run: str(run.args["n"]))
    async def echo(n: int):
        answer = yield f"say {n} (pid {os.getpid()})"
        yield 1.0 if str(answer) == str(n) else 0.0

    return env, echo


class Slow(Agent):
    """Answers correctly after a pause (rows ``n`` > 0), at once for ``n`` == 0."""

    name = "slow"

    async def __call__(self, run: Any) -> None:
        run.record(AgentStep(content="thinking"))
        if run.args["n"]:
            await asyncio.sleep(30)
        run.trace.content = str(run.args["n"])


def prompt_pid(trace: Any) -> int:
    text = next(s for s in trace.steps if s.source == "user").messages[0]["content"][0]["text"]
    return int(text.rsplit("pid ", 1)[1].rstrip(")"))


# -- events ------------------------------------------------------------------------------------
async def test_event_stream_is_complete_typed_and_matches_the_record(tmp_path: Path) -> None:
    _, echo = live_env()
    events: list[Any] = []
    result = await run_job(
        [echo(n=1), echo(n=2)],
        OracleAgent(),
        group=2,
        record=tmp_path / "jobs",
        on_event=events.append,
    )
    assert result.status == "completed" and result.summary.run_count == 4
    kinds = [e.type for e in events]
    assert kinds[0] == "job_started" and kinds[-1] == "job_finished"
    assert kinds.count("rollout_started") == kinds.count("rollout_finished") == 4
    started = events[0]
    assert (started.total, started.previous, started.group) == (4, 0, 2)
    assert started.record == str(result.record.root)

    # per rollout: started, its steps, finished, in that order
    for finished in (e for e in events if e.type == "rollout_finished"):
        trace_id = finished.row.trace_id
        mine = [e for e in events if getattr(e, "trace_id", None) == trace_id]
        assert mine[0].type == "rollout_started"
        steps = [e.step for e in mine if e.type == "step"]
        assert [s.source for s in steps] == [s.source for s in finished.trace.steps]
        assert steps[0].source == "task" and steps[-1].task_call.phase == "evaluate"
        assert events.index(finished) > events.index(mine[-2] if len(mine) > 1 else mine[0])

    # the rows and traces of the events are the record's
    on_disk = [RunRow.model_validate(r) for r in result.record.finished_runs()]
    told = [e.row for e in events if e.type == "rollout_finished"]
    assert on_disk == told
    for e in events:
        if e.type == "rollout_finished":
            back = result.record.read_trace(e.row.trace_id)
            assert back.model_dump(mode="json") == e.trace.model_dump(mode="json")
            assert isinstance(back.steps[-1], type(e.trace.steps[-1]))

    # the summary everyone reports is JobSummary's
    finished = events[-1]
    assert finished.status == "completed" and finished.summary == result.summary
    job_json = json.loads((result.record.root / "job.json").read_text())
    assert job_json["status"] == "completed"
    assert job_json["summary"]["mean_reward"] == result.summary.mean_reward == 1.0

    # every event reads back from JSON as the same typed event
    adapter = TypeAdapter(JobEvent)
    for e in events:
        again = adapter.validate_python(json.loads(e.model_dump_json()))
        assert type(again) is type(e)


async def test_on_event_errors_do_not_stop_the_job() -> None:
    _, echo = live_env()

    def explode(event: Any) -> None:
        raise RuntimeError("subscriber bug")

    result = await run_job([echo(n=3)], OracleAgent(), on_event=explode)
    assert result.status == "completed" and result.summary.mean_reward == 1.0


# -- stop, resume ------------------------------------------------------------------------------
async def test_stop_keeps_what_was_graded_and_resume_finishes(tmp_path: Path) -> None:
    _, echo = live_env()
    tasks = [echo(n=0), echo(n=1), echo(n=2)]
    stop = asyncio.Event()

    def on_event(event: Any) -> None:
        if event.type == "rollout_finished":
            stop.set()  # the quick one is graded: stop the rest

    result = await run_job(tasks, Slow(), record=tmp_path, on_event=on_event, stop=stop)
    assert result.status == "interrupted" and result.interrupted
    assert [r.slug for r in result.new_rows] == [tasks[0].slug]
    record = JobRecord.open(result.job_id, base_dir=tmp_path)
    assert record.status == "interrupted"
    assert [r["slug"] for r in record.finished_runs()] == [tasks[0].slug]
    assert len(record.unfinished_traces()) == 2  # cut off, not recorded as finished

    events: list[Any] = []
    again = await run_job(
        tasks, OracleAgent(), resume=result.job_id, record=tmp_path, on_event=events.append
    )
    assert (events[0].previous, events[0].total) == (1, 2)
    assert again.status == "completed" and again.job_id == result.job_id
    assert [r.slug for r in again.rows] == [t.slug for t in tasks]
    assert again.summary.run_count == 3 and again.summary.mean_reward == 1.0
    assert JobRecord.open(result.job_id, base_dir=tmp_path).status == "completed"


async def test_cancelling_the_job_records_it_interrupted(tmp_path: Path) -> None:
    _, echo = live_env()
    job = asyncio.ensure_future(run_job([echo(n=5)], Slow(), record=tmp_path))
    while not list(tmp_path.glob("*/traces/*.jsonl")):
        await asyncio.sleep(0.02)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    (root,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert JobRecord.load(root).status == "interrupted"


# -- placement "auto", one policy -------------------------------------------------------------
async def test_auto_places_env_sources_in_fresh_processes_and_live_envs_here(
    project: Path,
) -> None:
    taskset = Taskset.from_file(project / "tasks.jsonl")
    result = await run_job(taskset.filter([taskset.slugs[0], taskset.slugs[1]]), OracleAgent())
    pids = {prompt_pid(run.trace) for run in result.job.runs}
    assert os.getpid() not in pids and len(pids) == 2  # a fresh process per rollout

    _, echo = live_env()
    job = await Taskset("live", [echo(n=1)]).run(OracleAgent())
    assert prompt_pid(job.runs[0].trace) == os.getpid()  # minted here: served here


async def test_bad_arguments_fail_before_anything_runs(tmp_path: Path) -> None:
    _, echo = live_env()
    with pytest.raises(ValueError, match="max_concurrent"):
        await run_job([echo(n=1)], OracleAgent(), max_concurrent=0, record=tmp_path)
    with pytest.raises(ValueError, match="no placement"):
        await run_job([Task(env="nowhere", id="t")], OracleAgent(), record=tmp_path)
    with pytest.raises(ValueError, match="unknown placement"):
        await run_job([echo(n=1)], OracleAgent(), placement="moon", record=tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- one definition of the figures --------------------------------------------------------------
async def test_job_record_listing_and_summary_agree(project: Path, tmp_path: Path) -> None:
    result = await run_job(
        Taskset.from_file(project / "tasks.jsonl"), OracleAgent(), record=tmp_path
    )
    summary = result.summary
    assert summary.run_count == 4 and summary.error_count == 1
    assert summary.mean_reward == pytest.approx(3 / 4)
    assert summary.mean_reward_excluding_errors == 1.0
    assert result.job.reward == summary.mean_reward_excluding_errors
    assert result.job.mean_reward == summary.mean_reward
    assert result.job.summary == JobSummary.of(result.rows)
    stats = result.record.stats()
    assert (stats["runs"], stats["errors"], stats["reward"]) == (4, 1, 1.0)


# -- hud eval and Taskset.run: the same job record -------------------------------------------
def _comparable(root: Path) -> dict[str, Any]:
    """A job record without what differs between two runs of the same rows (ids, times)."""
    job = json.loads((root / "job.json").read_text())
    rows = [json.loads(x) for x in (root / "runs.jsonl").read_text().splitlines()]
    traces = {}
    for row in rows:
        lines = [json.loads(x) for x in (root / "traces" / f"{row['trace_id']}.jsonl").open()]
        header = {
            k: v
            for k, v in lines[0].items()
            if k not in ("trace_id", "job_id", "group_id", "started_at", "finished_at")
        }
        header.pop("duration_s")
        steps = [
            {k: v for k, v in s.items() if k not in ("started_at", "ended_at")} for s in lines[1:]
        ]
        for step in steps:  # the pid in the prompt differs between two processes
            step.pop("messages", None)
            call = step.get("task_call") or {}
            if isinstance(call.get("result"), dict):
                call["result"].pop("prompt", None)
        traces[(row["slug"], row["group_index"])] = {"header": header, "steps": steps}
    for row in rows:
        for key in ("trace_id", "duration_s", "finished_at"):
            row.pop(key)
    summary = {
        k: v
        for k, v in job["summary"].items()
        if k not in ("elapsed_seconds", "rollouts_per_second")
    }
    return {
        "name": job["name"],
        "status": job["status"],
        "keys": sorted(job),
        "summary": summary,
        "rows": sorted(rows, key=lambda r: (r["slug"], r["group_index"])),
        "traces": traces,
    }


def test_hud_eval_and_taskset_run_write_the_same_record(
    project: Path, run_hud: HudRunner, tmp_path: Path
) -> None:
    cli_jobs, lib_jobs = tmp_path / "cli", tmp_path / "lib"
    proc = run_hud(
        "eval", "tasks.jsonl", "oracle", "--all", "--group", "2", "--jobs-dir", str(cli_jobs),
        cwd=project,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    script = f"""
import asyncio
from hud import Taskset
from hud.agents.factory import create_agent

async def main():
    taskset = Taskset.from_file("tasks.jsonl")
    await taskset.run(create_agent("oracle", max_steps=10), group=2, record={str(lib_jobs)!r})

asyncio.run(main())
"""
    lib = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project,
        env=hud_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert lib.returncode == 0, lib.stderr
    (cli_root,) = [p for p in cli_jobs.iterdir() if p.is_dir()]
    (lib_root,) = [p for p in lib_jobs.iterdir() if p.is_dir()]
    cli, ours = _comparable(cli_root), _comparable(lib_root)
    assert cli["rows"] and cli["traces"]
    assert cli == ours


# -- hud eval: every rollout errored, the table at 80 columns ----------------------------------
def test_hud_eval_fails_when_every_rollout_errored(project: Path, run_hud: HudRunner) -> None:
    proc = run_hud("eval", "tasks.jsonl", "oracle", "--task-ids", "broken", cwd=project)
    assert proc.returncode == 1, proc.stderr
    assert "error: the rollout errored, nothing was graded: [starting task]" in proc.stderr
    assert "setup exploded" in proc.stderr and "Traceback" not in proc.stderr
    # some errored, some graded: a measurement, exit 0 (as before)
    proc = run_hud("eval", "tasks.jsonl", "oracle", "--all", cwd=project)
    assert proc.returncode == 0, proc.stderr


def test_results_table_keeps_the_task_column_at_80_columns(project: Path, tmp_path: Path) -> None:
    rows = [
        {"env": "pids", "id": "shout", "args": {"word": "a rather long word " * 4}},
        {"env": "pids", "id": "lenient"},
    ]
    (project / "long.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**hud_env(tmp_path), "COLUMNS": "80"}
    proc = subprocess.run(
        [sys.executable, "-m", "hud", "eval", "long.jsonl", "oracle", "--all"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if line.startswith(("┃", "│"))]
    assert table and all(len(line) <= 80 for line in table)
    assert "Task" in table[0] and "Reward" in table[0]
    slugs = Taskset.from_file(project / "long.jsonl").slugs
    for slug in slugs:
        assert any(slug in line for line in table), (slug, proc.stdout)
    assert all("1.000" in line for line in table[1:])


def test_hud_eval_against_nothing_listening_fails_fast(project: Path, run_hud: HudRunner) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = run_hud(
        "eval", "tasks.jsonl", "oracle", "--runtime", f"tcp://127.0.0.1:{port}",
        cwd=project, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert f"127.0.0.1:{port}" in line and "Traceback" not in proc.stderr
