"""`hud eval`, run through the real CLI: sources, flags, --json, gates, records, interrupts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import hud_env

REPO = Path(__file__).resolve().parents[1]

HudRunner = Callable[..., subprocess.CompletedProcess[str]]


#: A single-file environment (templates + tasks) for every test below. Templates that block,
#: fail or log what they do, so behaviour is checked from evidence, not timing.
LAB_ENV = '''\
"""A lab environment for `hud eval` tests."""

import asyncio
import os
import time
from pathlib import Path

from hud import Environment

env = Environment(name="lab")
HERE = Path(__file__).resolve().parent
LOG = HERE / "evidence.log"
RELEASE = HERE / "release"


def _log(event, key):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{event} {key} {os.getpid()} {time.time():.6f}\\n".encode())
    finally:
        os.close(fd)


@env.template(solution=lambda run: run.args["word"].upper())
async def shout(word: str):
    answer = yield f"Shout the word {word}"
    yield 1.0 if answer == word.upper() else 0.0


@env.template(solution="ok")
async def busy(key: str, hold: float = 0.2):
    _log("start", key)
    await asyncio.sleep(hold)
    answer = yield f"busy {key}"
    _log("end", key)
    yield 1.0 if answer == "ok" else 0.0


@env.template(solution="ok")
async def gated(key: str):
    _log("start", key)
    deadline = time.time() + 60
    while not RELEASE.exists() and time.time() < deadline:
        await asyncio.sleep(0.05)
    answer = yield f"gated {key}"
    _log("end", key)
    yield 1.0 if answer == "ok" else 0.0


@env.template(solution="x")
async def broken_setup():
    raise RuntimeError("setup exploded")
    yield "never"


@env.template(solution="x")
async def broken_grade():
    yield "grade me"
    raise RuntimeError("grader exploded")


def _crash(run):
    raise RuntimeError("agent exploded")


@env.template(solution=_crash)
async def crashing_agent():
    answer = yield "anything"
    yield 1.0 if answer else 0.0


async def _late(run):
    await asyncio.sleep(run.args["delay"])
    return "late"


@env.template(solution=_late)
async def slow_agent(delay: float):
    answer = yield "take your time"
    yield 1.0 if answer == "late" else 0.0


@env.template(solution="fine")
async def slow_setup(hold: float):
    await asyncio.sleep(hold)
    answer = yield "slow start"
    yield 1.0 if answer == "fine" else 0.0


@env.template(solution="anything")
async def lenient():
    yield "say anything"
    yield 1.0
'''

LAB_TASKS = """
tasks = [shout(word="hi"), shout(word="yo"), lenient()]
"""

PEER_KEYS = {"job_id", "source", "run_count", "mean_reward", "error_count", "elapsed_seconds"}
PEER_RUN_KEYS = {"task_id", "slug", "reward", "is_error", "trace_error", "trace_id"}


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(rows, indent=1))
    return path


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """``lab/env.py``: the lab environment with three tasks in the same file."""
    root = tmp_path / "lab"
    root.mkdir()
    (root / "env.py").write_text(LAB_ENV + LAB_TASKS)
    return root


def evaluate(run_hud: HudRunner, *args: str, cwd: Path, timeout: float = 60) -> Any:
    return run_hud("eval", *args, cwd=cwd, timeout=timeout)


def as_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(
            f"stdout is not JSON: {proc.stdout!r}\nstderr: {proc.stderr}"
        ) from None


def job_dirs(base: Path) -> list[Path]:
    return sorted(p for p in base.iterdir() if (p / "job.json").is_file()) if base.is_dir() else []


def record_of(base: Path, job_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    root = base / job_id
    job = json.loads((root / "job.json").read_text())
    runs_file = root / "runs.jsonl"
    rows = [json.loads(x) for x in runs_file.read_text().splitlines() if x.strip()]
    return job, rows


# -- the scaffold: oracle 1.0, nop 0.0, records ---------------------------------------------
def test_init_demo_oracle_and_nop(demo_project: Path, run_hud: HudRunner) -> None:
    cwd = demo_project.parent
    proc = evaluate(run_hud, "demo/tasks.py", "oracle", "--all", "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    doc = as_json(proc)
    assert doc["mean_reward"] == 1.0 and doc["run_count"] == 2 and doc["error_count"] == 0
    assert doc["success_rate"] == 1.0
    job, rows = record_of(cwd / ".hud" / "jobs", doc["job_id"])
    assert job["status"] == "completed" and job["config"]["agent"] == "oracle"
    assert job["summary"]["mean_reward"] == 1.0
    assert sorted(r["slug"] for r in rows) == sorted(r["slug"] for r in doc["runs"])
    assert all(
        (cwd / ".hud/jobs" / doc["job_id"] / "traces" / f"{r['trace_id']}.jsonl").is_file()
        for r in rows
    )

    proc = evaluate(run_hud, "demo/tasks.py", "nop", "--all", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert "Mean reward: 0.000" in proc.stdout and "Runs: 2" in proc.stdout
    assert "suspicious" not in proc.stdout
    assert len(job_dirs(cwd / ".hud" / "jobs")) == 2


def test_quickstart_example(run_hud: HudRunner, tmp_path: Path) -> None:
    source = str(REPO / "examples" / "quickstart" / "tasks.py")
    proc = evaluate(run_hud, source, "oracle", "--all", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = as_json(proc)
    assert doc["run_count"] == 6 and doc["mean_reward"] == 1.0
    assert len({r["task_id"] for r in doc["runs"]}) == 3
    proc = evaluate(run_hud, source, "nop", "--all", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert as_json(proc)["mean_reward"] == 0.0


# -- sources --------------------------------------------------------------------------------
def test_source_kinds(lab: Path, run_hud: HudRunner, tmp_path: Path) -> None:
    rows = [{"env": "lab", "id": "shout", "args": {"word": w}} for w in ("a", "b")]
    write_rows(lab / "rows.json", rows)
    write_rows(lab / "rows.jsonl", rows)
    split = tmp_path / "split"
    split.mkdir()
    (split / "env.py").write_text(LAB_ENV)
    (split / "tasks.py").write_text('from env import shout\n\ntasks = [shout(word="z")]\n')
    cases = {
        "lab/env.py": 3,  # single file: templates + tasks
        "lab": 3,  # directory
        "lab/rows.json": 2,
        "lab/rows.jsonl": 2,
        "split/tasks.py": 1,  # split layout: env found next to tasks.py
    }
    for source, count in cases.items():
        proc = evaluate(run_hud, source, "oracle", "--all", "--json", cwd=tmp_path)
        assert proc.returncode == 0, (source, proc.stderr)
        doc = as_json(proc)
        assert doc["source"] == source
        assert doc["run_count"] == count, source
        assert doc["error_count"] == 0, (source, doc["runs"])
        rewards = {r["slug"]: r["reward"] for r in doc["runs"]}
        assert all(v == 1.0 for slug, v in rewards.items() if slug.startswith("shout")), source


def test_source_auto_pick_and_errors(lab: Path, run_hud: HudRunner) -> None:
    # No SOURCE: the only *.jsonl here; one word that names an agent is the agent.
    write_rows(lab / "rows.jsonl", [{"env": "lab", "id": "shout", "args": {"word": "q"}}])
    proc = evaluate(run_hud, "oracle", "--json", cwd=lab)
    assert proc.returncode == 0, proc.stderr
    assert as_json(proc)["source"] == "rows.jsonl"
    # Two candidates and no tasks.py: refuse.
    write_rows(lab / "more.json", [{"env": "lab", "id": "shout", "args": {"word": "r"}}])
    proc = evaluate(run_hud, "oracle", cwd=lab)
    assert proc.returncode == 1 and "several task files" in proc.stderr
    # A name that is no path: platform tasksets need a platform.
    proc = evaluate(run_hud, "My Tasks", "oracle", cwd=lab)
    assert proc.returncode == 1
    assert "platform taskset names need the HUD platform (HUD_API_KEY" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = evaluate(run_hud, "missing.jsonl", "oracle", cwd=lab)
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    # A .py file with no tasks.
    (lab / "empty.py").write_text("x = 1\n")
    proc = evaluate(run_hud, "empty.py", "oracle", cwd=lab)
    assert proc.returncode == 1 and "No runnable Tasks found in empty.py" in proc.stderr
    # A row that needs a container.
    write_rows(
        lab / "boxed.jsonl",
        [{"env": "lab", "id": "shout", "args": {"word": "b"}, "runtime_config": {"image": "x"}}],
    )
    # (placed in a container by DockerRuntime: an image that does not exist fails readably;
    # every rollout errored, so the exit is non-zero, with the JSON still printed)
    proc = evaluate(run_hud, "boxed.jsonl", "oracle", "--json", cwd=lab)
    assert proc.returncode == 1, proc.stderr
    assert "error: the rollout errored, nothing was graded: [provisioning]" in proc.stderr
    run = as_json(proc)["runs"][0]
    assert run["is_error"] and run["reward"] == 0.0
    assert "Traceback" not in proc.stderr
    # Resources only: runs, with a warning (G29).
    write_rows(
        lab / "sized.jsonl",
        [
            {
                "env": "lab",
                "id": "shout",
                "args": {"word": "s"},
                "runtime_config": {"resources": {"cpu": 1}},
            }
        ],
    )
    proc = evaluate(run_hud, "sized.jsonl", "oracle", "--json", cwd=lab)
    assert proc.returncode == 0, proc.stderr
    assert as_json(proc)["mean_reward"] == 1.0 and "not enforced" in proc.stderr


# -- task selection -------------------------------------------------------------------------
def test_first_task_only_and_task_ids(lab: Path, run_hud: HudRunner) -> None:
    proc = evaluate(run_hud, "env.py", "oracle", "--json", cwd=lab)
    assert proc.returncode == 0, proc.stderr
    assert "Running only 1 of 3 tasks (the first). Add --all to run every task." in proc.stderr
    doc = as_json(proc)
    assert [r["slug"] for r in doc["runs"]] == [doc["runs"][0]["slug"]]
    first = doc["runs"][0]["slug"]
    # Single task, single rollout: steps are streamed on stderr.
    assert "step 1 · agent: HI" in proc.stderr and "grade: reward 1.000" in proc.stderr

    # by slug, by template id (all its rows) and by index, each once, in taskset order
    proc = evaluate(
        run_hud, "env.py", "oracle", "--task-ids", f"2, {first},shout", "--json", cwd=lab
    )
    assert proc.returncode == 0, proc.stderr
    doc = as_json(proc)
    assert [r["task_id"] for r in doc["runs"]] == ["shout", "shout", "lenient"]
    assert "Running only" not in proc.stderr

    proc = evaluate(run_hud, "env.py", "oracle", "--task-ids", "nope", cwd=lab)
    assert proc.returncode == 1
    assert "no task matching 'nope'" in proc.stderr and "Traceback" not in proc.stderr


# -- agents and flags -----------------------------------------------------------------------
def test_agent_errors(lab: Path, run_hud: HudRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = evaluate(run_hud, "env.py", "gpt4all", cwd=lab)
    assert proc.returncode == 1
    assert "Invalid agent: gpt4all. Must be one of: oracle, nop, replay" in proc.stderr
    for variable in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(variable, "")  # an empty value hides saved keys too
    for name, variable in (
        ("claude", "ANTHROPIC_API_KEY"),
        ("sonnet", "ANTHROPIC_API_KEY"),
        ("claude-opus-4-1", "ANTHROPIC_API_KEY"),
        ("gpt-5.6", "OPENAI_API_KEY"),
        ("gemini-3-pro", "GEMINI_API_KEY"),
        ("openai", "OPENAI_API_KEY"),
    ):
        proc = evaluate(run_hud, "env.py", name, cwd=lab)
        assert proc.returncode == 1, name
        assert f"{variable} is not set: run `hud set {variable}=...`" in proc.stderr, name
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = evaluate(run_hud, "env.py", "replay", cwd=lab)
    assert proc.returncode == 1 and "-c trace=" in proc.stderr
    proc = evaluate(run_hud, "env.py", cwd=lab)
    assert proc.returncode == 1 and "no agent given" in proc.stderr
    proc = evaluate(run_hud, "env.py", "oracle", "-c", "oops", cwd=lab)
    assert proc.returncode == 1 and "key=value" in proc.stderr


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--runtime", "hud"], "needs the HUD platform"),
        (["--runtime", "hosted"], "needs the HUD platform"),
        (["--runtime", "modal"], "arrives with container support"),
        (["--runtime", "daytona"], "arrives with container support"),
        (["--runtime", "ftp://x"], "unknown --runtime"),
        (["--remote"], "no platform is configured"),
        (["--gateway"], "--gateway needs a HUD platform key"),
        (["-g"], "--gateway needs a HUD platform key"),
    ],
)
def test_placement_flags_refused(
    lab: Path, run_hud: HudRunner, flags: list[str], needle: str
) -> None:
    proc = evaluate(run_hud, "env.py", "oracle", *flags, cwd=lab)
    assert proc.returncode == 1
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (lab / ".hud").exists()  # nothing recorded for a refused run


def test_flags_recorded_in_job_config(lab: Path, run_hud: HudRunner, tmp_path: Path) -> None:
    jobs = tmp_path / "records"
    proc = evaluate(
        run_hud,
        "env.py",
        "oracle",
        "--full",
        "--yes",
        "-y",
        "--model",
        "whatever",
        "-m",
        "m2",
        "-c",
        "temperature=0.5",
        "-c",
        "oracle.flag=true",
        "-c",
        "claude.max_tokens=9",
        "--group",
        "2",
        "--max-concurrent",
        "4",
        "--jobs-dir",
        str(jobs),
        "--json",
        cwd=lab,
    )
    assert proc.returncode == 0, proc.stderr
    doc = as_json(proc)
    assert doc["run_count"] == 6 and doc["group"] == 2
    assert not (lab / ".hud").exists()
    job, rows = record_of(jobs, doc["job_id"])
    config = job["config"]
    assert config["max_steps"] == 100 and config["all"] is True  # --full
    # --full turns auto-respond on unless told otherwise
    assert config["agent_config"] == {"temperature": 0.5, "flag": True, "auto_respond": True}
    assert config["model"] == "m2" and config["group"] == 2 and config["max_concurrent"] == 4
    assert len(rows) == 6
    assert sorted(r["group_index"] for r in rows) == [0, 0, 0, 1, 1, 1]

    proc = evaluate(
        run_hud,
        "env.py",
        "oracle",
        "--all",
        "--max-steps",
        "3",
        "--full",
        "--jobs-dir",
        str(jobs),
        "--json",
        cwd=lab,
    )
    assert proc.returncode == 0, proc.stderr
    job, _ = record_of(jobs, as_json(proc)["job_id"])
    assert job["config"]["max_steps"] == 3


def test_dotted_config_reaches_only_its_agent(lab: Path, run_hud: HudRunner) -> None:
    write_rows(lab / "slow.jsonl", [{"env": "lab", "id": "slow_agent", "args": {"delay": 1}}])
    proc = evaluate(
        run_hud, "slow.jsonl", "oracle", "-c", "oracle.timeout_seconds=0.2", "--json", cwd=lab
    )
    assert proc.returncode == 0, proc.stderr
    run = as_json(proc)["runs"][0]
    assert run["reward"] == 0.0 and "agent timed out after 0.2s" in run["trace_error"]
    proc = evaluate(
        run_hud, "slow.jsonl", "oracle", "-c", "claude.timeout_seconds=0.2", "--json", cwd=lab
    )
    assert proc.returncode == 0, proc.stderr
    assert as_json(proc)["runs"][0]["reward"] == 1.0


# -- output ---------------------------------------------------------------------------------
def test_json_shape_and_table(lab: Path, run_hud: HudRunner) -> None:
    proc = evaluate(run_hud, "env.py", "nop", "--all", "--json", cwd=lab)
    assert proc.returncode == 0, proc.stderr
    doc = as_json(proc)  # stdout holds the JSON document only
    assert PEER_KEYS | {"runs"} <= set(doc)
    assert {"mean_reward_excluding_errors", "success_rate", "suspicious"} <= set(doc)
    assert doc["source"] == "env.py" and doc["run_count"] == 3
    for run in doc["runs"]:
        assert set(run) >= PEER_RUN_KEYS
        assert isinstance(run["reward"], float) and isinstance(run["is_error"], bool)
    # `lenient` rewards an empty answer: flagged.
    assert doc["suspicious"] == ["lenient"]
    assert "lenient: suspicious: rewards an empty answer" in proc.stderr
    assert doc["mean_reward"] == pytest.approx(1 / 3)
    # Table and summary go to stderr under --json ...
    assert "'env.py' Results" in proc.stderr and "Runs: 3" in proc.stderr
    assert "Mean reward: 0.333 ± 0.471" in proc.stderr
    assert "Success rate: 33.3%" in proc.stderr
    assert f"hud jobs {doc['job_id']}" in proc.stderr

    # ... and to stdout without it; -v prints one line per finished rollout.
    proc = evaluate(run_hud, "env.py", "oracle", "--all", "-v", cwd=lab)
    assert proc.returncode == 0, proc.stderr
    assert "'env.py' Results" in proc.stdout and "Mean reward: 1.000" in proc.stdout
    assert proc.stderr.count("/3] ✓") == 3
    assert "step 1 · agent" not in proc.stderr  # a batch does not stream steps
    # -vv: debug logging on
    proc = evaluate(run_hud, "env.py", "oracle", "--task-ids", "0", "-vv", cwd=lab)
    assert proc.returncode == 0, proc.stderr
    assert "DEBUG" in proc.stderr


def test_fail_under_and_fail_on_error(lab: Path, run_hud: HudRunner) -> None:
    proc = evaluate(
        run_hud, "env.py", "nop", "--task-ids", "shout", "--fail-under", "0.5", "--json", cwd=lab
    )
    assert proc.returncode == 3, proc.stderr
    assert as_json(proc)["mean_reward"] == 0.0
    assert "mean reward 0.000 is below --fail-under 0.5" in proc.stderr
    proc = evaluate(
        run_hud, "env.py", "oracle", "--all", "--fail-under", "0.9", "--fail-on-error", cwd=lab
    )
    assert proc.returncode == 0, proc.stderr
    # Without gates a run with bad rewards still exits 0.
    proc = evaluate(run_hud, "env.py", "nop", "--task-ids", "shout", cwd=lab)
    assert proc.returncode == 0, proc.stderr


# -- failures: isolated, phase named -------------------------------------------------------
def test_failures_are_isolated_with_phase(lab: Path, run_hud: HudRunner) -> None:
    rows = [
        {"env": "lab", "id": "shout", "args": {"word": "hi"}},
        {"env": "lab", "id": "broken_setup"},
        {"env": "lab", "id": "broken_grade"},
        {"env": "lab", "id": "crashing_agent"},
        {
            "env": "lab",
            "id": "slow_agent",
            "args": {"delay": 30},
            "agent_config": {"timeout_seconds": 0.3},
        },
        {"env": "lab", "id": "slow_setup", "args": {"hold": 30}},
    ]
    write_rows(lab / "failures.jsonl", rows)
    proc = evaluate(
        run_hud,
        "failures.jsonl",
        "oracle",
        "--all",
        "--rollout-timeout",
        "6",
        "--json",
        "--fail-on-error",
        cwd=lab,
    )
    assert proc.returncode == 3, proc.stderr  # errors trip --fail-on-error; JSON still printed
    doc = as_json(proc)
    runs = {r["task_id"]: r for r in doc["runs"]}
    assert doc["run_count"] == 6
    assert runs["shout"]["reward"] == 1.0 and not runs["shout"]["is_error"]
    assert "[starting task]" in runs["broken_setup"]["trace_error"]
    assert "setup exploded" in runs["broken_setup"]["trace_error"]
    assert "[grading]" in runs["broken_grade"]["trace_error"]
    assert "grader exploded" in runs["broken_grade"]["trace_error"]
    assert "[agent loop] RuntimeError: agent exploded" in runs["crashing_agent"]["trace_error"]
    assert "agent timed out after 0.3s" in runs["slow_agent"]["trace_error"]
    assert runs["slow_agent"]["stop_reason"] == "timeout"
    slow = runs["slow_setup"]["trace_error"]
    assert "timed out after 6s during starting task" in slow
    for name in ("broken_setup", "broken_grade", "slow_setup"):
        assert runs[name]["is_error"] and runs[name]["reward"] == 0.0
    assert doc["error_count"] == 3
    assert doc["mean_reward"] == pytest.approx(1 / 6)
    assert doc["mean_reward_excluding_errors"] == pytest.approx(1 / 3)
    assert "Errors: 3" in proc.stderr

    # A contradictory timeout is refused up front.
    proc = evaluate(
        run_hud, "failures.jsonl", "oracle", "--all", "--rollout-timeout", "0.2", cwd=lab
    )
    assert proc.returncode == 1 and "must be below rollout_timeout" in proc.stderr


# -- concurrency ------------------------------------------------------------------------------
def in_flight_peak(log: Path) -> tuple[int, dict[str, int], set[int]]:
    """Max rollouts between their start and end lines (file order), starts per key, pids."""
    peak = now = 0
    starts: dict[str, int] = {}
    pids: set[int] = set()
    for line in log.read_text().splitlines():
        event, key, pid, _ = line.split()
        pids.add(int(pid))
        if event == "start":
            now += 1
            starts[key] = starts.get(key, 0) + 1
            peak = max(peak, now)
        else:
            now -= 1
    return peak, starts, pids


def test_group_and_max_concurrent(lab: Path, run_hud: HudRunner) -> None:
    rows = [{"env": "lab", "id": "busy", "args": {"key": f"k{i}"}} for i in range(5)]
    write_rows(lab / "busy.jsonl", rows)
    proc = evaluate(
        run_hud,
        "busy.jsonl",
        "oracle",
        "--all",
        "--group-size",
        "2",
        "--max-concurrent",
        "3",
        "--json",
        cwd=lab,
    )
    assert proc.returncode == 0, proc.stderr
    doc = as_json(proc)
    assert doc["run_count"] == 10 and doc["mean_reward"] == 1.0
    peak, starts, pids = in_flight_peak(lab / "evidence.log")
    assert peak <= 3
    assert starts == {f"k{i}": 2 for i in range(5)}
    assert len(pids) == 10  # a fresh environment process per rollout


# -- placement on a running server -------------------------------------------------------------
def test_runtime_tcp(lab: Path, run_hud: HudRunner, hud_serve: Callable[..., Any]) -> None:
    served = hud_serve("env.py", "--port", "0", cwd=lab)
    proc = evaluate(
        run_hud,
        "env.py",
        "oracle",
        "--all",
        "--runtime",
        f"tcp://127.0.0.1:{served.port}",
        "--json",
        cwd=lab,
    )
    assert proc.returncode == 0, proc.stderr
    doc = as_json(proc)
    assert doc["run_count"] == 3 and doc["error_count"] == 0


# -- interrupts and resume ------------------------------------------------------------------
GATED_ROWS = [
    {"env": "lab", "id": "shout", "args": {"word": "a"}},
    {"env": "lab", "id": "shout", "args": {"word": "b"}},
    {"env": "lab", "id": "gated", "args": {"key": "g1"}},
    {"env": "lab", "id": "gated", "args": {"key": "g2"}},
    {"env": "lab", "id": "gated", "args": {"key": "g3"}},
]


def start_and_stop(lab: Path, home: Path, sig: int) -> tuple[subprocess.Popen[str], str, str]:
    """Run the gated batch, wait until the two quick rollouts are recorded, send ``sig``."""
    write_rows(lab / "gated.jsonl", GATED_ROWS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hud", "eval", "gated.jsonl", "oracle", "--all", "-v"],
        cwd=lab,
        env=hud_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    jobs = lab / ".hud" / "jobs"
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            runs = list(jobs.glob("*/runs.jsonl"))
            log = lab / "evidence.log"
            started = log.read_text().count("start ") if log.exists() else 0
            if runs and len(runs[0].read_text().splitlines()) >= 2 and started >= 3:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        else:
            raise AssertionError("the quick rollouts never finished")
        os.killpg(proc.pid, sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc, out, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupt_then_resume(lab: Path, run_hud: HudRunner, hud_home: Path, sig: int) -> None:
    proc, out, err = start_and_stop(lab, hud_home, sig)
    jobs = lab / ".hud" / "jobs"
    (job_dir,) = job_dirs(jobs)
    job_id = job_dir.name
    job, rows = record_of(jobs, job_id)
    assert sorted(r["task_id"] for r in rows) == ["shout", "shout"]
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        assert job["status"] == "interrupted"
        assert f"hud eval --resume {job_id}" in err
        assert "Runs: 2" in out  # what finished is shown
    else:
        assert proc.returncode == -signal.SIGKILL
        assert job["status"] == "running"  # the process never got to say

    (lab / "release").touch()
    proc2 = evaluate(run_hud, "--resume", job_id[:8], "--json", cwd=lab)
    assert proc2.returncode == 0, proc2.stderr
    doc = as_json(proc2)
    assert doc["job_id"] == job_id and doc["run_count"] == 5 and doc["mean_reward"] == 1.0
    assert "2 rollout(s) done, 3 to run" in proc2.stderr
    job, rows = record_of(jobs, job_id)
    assert job["status"] == "completed" and len(rows) == 5
    assert sorted(r["slug"] for r in rows) == sorted({r["slug"] for r in rows})
    # Each gated task finished exactly once, on the resumed run.
    ends = [
        line.split()[1]
        for line in (lab / "evidence.log").read_text().splitlines()
        if line.startswith("end ")
    ]
    assert sorted(ends) == ["g1", "g2", "g3"]

    # Nothing left: resuming again runs nothing and reports the whole job.
    proc3 = evaluate(run_hud, "--resume", job_id, "--json", cwd=lab)
    assert proc3.returncode == 0, proc3.stderr
    assert as_json(proc3)["run_count"] == 5 and "0 to run" in proc3.stderr

    proc4 = evaluate(run_hud, "--resume", "ffffffff", cwd=lab)
    assert proc4.returncode == 1 and "no job matching" in proc4.stderr


def test_replay_agent(lab: Path, run_hud: HudRunner) -> None:
    proc = evaluate(run_hud, "env.py", "oracle", "--json", cwd=lab)
    assert proc.returncode == 0, proc.stderr
    trace_id = as_json(proc)["runs"][0]["trace_id"]
    proc = evaluate(run_hud, "env.py", "replay", "-c", f"trace={trace_id[:12]}", "--json", cwd=lab)
    assert proc.returncode == 0, proc.stderr
    run = as_json(proc)["runs"][0]
    assert run["reward"] == 1.0 and run["answer"] == "HI"
    proc = evaluate(run_hud, "env.py", "replay", "-c", "trace=0000dead", cwd=lab)
    assert proc.returncode == 1 and "0000dead" in proc.stderr and "Traceback" not in proc.stderr


# -- display pieces (in process) ------------------------------------------------------------
def test_step_stream_renders_tools_and_grade() -> None:
    from rich.console import Console

    from hud.cli.eval_display import StepStream
    from hud.eval.task import Task
    from hud.eval.trace import (
        AgentStep,
        MCPToolCall,
        MCPToolResult,
        Step,
        TaskCall,
        ToolStep,
        Trace,
        system_step,
        text_messages,
    )

    console = Console(record=True, width=200, color_system=None)
    stream = StepStream(console)
    trace = Trace(trace_id="t1")
    stream.on_start(Task(env="e", id="fix", args={"n": 1}), trace)
    call = MCPToolCall(id="c1", name="bash", arguments={"cmd": "ls -la"})
    trace.record(Step(source="user", messages=text_messages("user", "Fix the bug")))
    trace.record(AgentStep(content="Looking around", tool_calls=[call]))
    trace.record(
        ToolStep(call=call, result=MCPToolResult(content=[{"type": "text", "text": "a.py"}]))
    )
    trace.record(AgentStep(content="Done: " + "x" * 500, done=True))
    trace.record(
        Step(
            source="task",
            task_call=TaskCall(phase="evaluate", name="fix", result={"score": 0.5}),
        )
    )
    trace.record(system_step("[grading] boom"))
    text = console.export_text()
    assert "▶ fix-" in text and '{"n": 1}' in text
    assert "prompt: Fix the bug" in text
    assert "step 1 · agent: Looking around" in text
    assert '→ bash({"cmd": "ls -la"})' in text
    assert "← bash: a.py" in text
    assert "step 2 · agent: Done: xxx" in text and "x" * 400 not in text
    assert "grade: reward 0.500" in text
    assert "✗ [grading] boom" in text


def test_summary_figures() -> None:
    from hud.cli.eval_display import summarize, summary_lines

    rows = [
        {"slug": "a", "reward": 1.0, "is_error": False, "status": "completed", "answer": "x"},
        {"slug": "b", "reward": 0.6, "is_error": False, "status": "completed", "answer": ""},
        {"slug": "c", "reward": 0.0, "is_error": True, "status": "error", "answer": None},
        {"slug": "d", "reward": 0.0, "is_error": False, "status": "error", "answer": None},
    ]
    summary = summarize(rows, elapsed=2.0)
    assert summary["run_count"] == 4 and summary["error_count"] == 1
    assert summary["mean_reward"] == pytest.approx(0.4)
    assert summary["mean_reward_excluding_errors"] == pytest.approx(1.6 / 3)
    assert summary["success_rate"] == 0.25 and summary["failed_mid_run"] == 1
    assert summary["suspicious"] == ["b"] and summary["rollouts_per_second"] == 2.0
    lines = summary_lines(summary, job_id="j1")
    assert "Mean reward: 0.400 ± 0.424 (errors as 0) · excluding errors: 0.533" in lines
    assert "Errors: 1" in lines and "Failed mid-run, graded: 1" in lines
    assert "⚠ b: suspicious: rewards an empty answer" in lines
    assert lines[-1] == "Job: j1  (details: hud jobs j1)"
    empty = summarize([], elapsed=0.0)
    assert empty["mean_reward"] == 0.0 and empty["mean_reward_excluding_errors"] is None


def test_secret_config_values_never_reach_the_job_record(
    lab: Path, run_hud: HudRunner, tmp_path: Path
) -> None:
    jobs = tmp_path / "records"
    secret = "sk-test-0123456789abcdef"
    proc = evaluate(
        run_hud,
        "env.py",
        "oracle",
        "-c",
        f"api_key={secret}",
        "-c",
        "api_key_env=MY_KEY",
        "--jobs-dir",
        str(jobs),
        "--json",
        cwd=lab,
    )
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout + proc.stderr
    (root,) = job_dirs(jobs)
    written = "".join(p.read_text() for p in root.rglob("*") if p.is_file())
    assert secret not in written
    config = json.loads((root / "job.json").read_text())["config"]["agent_config"]
    assert config.get("api_key_env") == "MY_KEY" and "api_key" not in config
