"""Our CLI against a live platform (SQLite and PostgreSQL): `hud eval` reports its job, traces
and spans in the background; a platform killed mid-eval costs neither the local record nor
the traces it had, and reporting resumes after its restart; a dead platform costs a warning."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.fakes import FakeProvider, Recorded, Reply
from tests.platform.helpers import (
    PLAIN,
    REPO,
    Platform,
    base_env,
    free_port,
    make_home,
    page,
    requires_extra,
    run_cli,
)

pytestmark = requires_extra
ROWS = 40


def answer(request: Recorded) -> Reply:
    m = re.search(r"What is (\d+) \+ (\d+)", json.dumps(request.body))
    if not m or m.groups() == ("3", "4"):
        return Reply(text="0")
    time.sleep(0.15)  # slow enough that a platform can be killed mid-eval
    return Reply(text=str(int(m[1]) + int(m[2])))


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(handler=answer) as fake:
        yield fake


@pytest.fixture
def project() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="hud-platform-ours-"))
    shutil.copy(PLAIN / "env.py", root / "env.py")
    (root / "tasks.py").write_text(
        "from env import add\n\ntasks = [add(a=2, b=2), add(a=3, b=4)]\n"
    )
    (root / "many.py").write_text(
        f"from env import add\n\ntasks = [add(a=i, b=100) for i in range({ROWS})]\n"
    )
    yield root
    shutil.rmtree(root, ignore_errors=True)


def eval_argv(provider: FakeProvider, source: str = "tasks.py", *extra: str) -> list[str]:
    return ["eval", source, "openai_compatible", "--config", f"base_url={provider.url}/v1",
            "--config", "api_key=k", "--model", "fake", "--all", "--yes", "--json",
            *extra]  # fmt: skip


def local_runs(project: Path, job_id: str) -> list[dict[str, Any]]:
    runs = project / ".hud" / "jobs" / job_id / "runs.jsonl"
    return [json.loads(line) for line in runs.read_text().splitlines() if line.strip()]


def test_our_eval_reports(platform: Platform, provider: FakeProvider, project: Path) -> None:
    key = platform.new_key("--name", "ours-eval")
    env = {**base_env(make_home()), **platform.client_env(key)}
    proc = run_cli(eval_argv(provider), env, cwd=project, ours=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert "did not reach the platform" not in proc.stderr
    with platform.api(key) as api:
        job = api.get(f"/v2/jobs/{report['job_id']}").json()
        assert (job["name"], job["status"], job["trace_count"]) == (
            "tasks (2 tasks)",
            "completed",
            2,
        )
        traces = {t["id"]: t for t in page(api, f"/v2/jobs/{report['job_id']}/traces")}
        for run in report["runs"]:
            trace = traces[str(uuid.UUID(run["trace_id"]))]
            assert (trace["status"], trace["reward"]) == ("completed", run["reward"])
            assert (trace["task_slug"], trace["model"]) == (run["slug"], "fake")
            assert trace["evaluation_result"] == {"score": run["reward"]}
            events = api.get(f"/v2/trace/{run['trace_id']}/events").json()["events"]
            kinds = [e["kind"] for e in events]
            assert "agent_message" in kinds and "prompt" in kinds
            assert next(e for e in events if e["kind"] == "agent_message")["text"] == run["answer"]
    assert len(local_runs(project, report["job_id"])) == 2


def test_reporting_off_or_platform_down(provider: FakeProvider, project: Path) -> None:
    """A dead platform (nothing listening) costs the eval a warning, not its record; with
    HUD_TELEMETRY_ENABLED=0 nothing is attempted."""
    dead = f"http://127.0.0.1:{free_port()}"
    env = {**base_env(make_home()), "HUD_API_URL": dead, "HUD_TELEMETRY_URL": dead + "/telemetry",
           "HUD_API_KEY": "hud_whatever"}  # fmt: skip
    proc = run_cli(eval_argv(provider), env, cwd=project, ours=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["run_count"] == 2 and len(local_runs(project, report["job_id"])) == 2
    assert "did not reach the platform" in proc.stderr
    off = run_cli(
        eval_argv(provider), {**env, "HUD_TELEMETRY_ENABLED": "0"}, cwd=project, ours=True
    )
    assert off.returncode == 0 and "platform" not in off.stderr


def test_platform_killed_mid_eval(
    fresh_platform: Platform, provider: FakeProvider, project: Path
) -> None:
    platform = fresh_platform
    key = platform.new_key("--name", "sigkill")
    env = {**base_env(make_home()), **platform.client_env(key), "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "hud", *eval_argv(provider, "many.py", "--max-concurrent", "2")]
    proc = subprocess.Popen(argv, env=env, cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        before: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 120
        with platform.api(key) as api:
            while time.monotonic() < deadline and proc.poll() is None:
                jobs = page(api, "/v2/jobs")
                if jobs:
                    traces = page(api, f"/v2/jobs/{jobs[0]['id']}/traces")
                    done = [t for t in traces if t["status"] == "completed"]
                    if len(done) >= 4:
                        before = {t["id"]: t for t in done}
                        break
                time.sleep(0.1)
        assert before, "the eval reported nothing before it ended"
        platform.stop(signal.SIGKILL)
        assert proc.poll() is None, "the eval was still running when the platform died"
        time.sleep(1.0)
        platform.start()
        out, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(out)
    assert report["run_count"] == ROWS and report["error_count"] == 0
    rows = local_runs(project, report["job_id"])
    assert len(rows) == ROWS and {r["trace_id"] for r in rows} == {
        r["trace_id"] for r in report["runs"]
    }
    with platform.api(key) as api:
        traces = {t["id"]: t for t in page(api, f"/v2/jobs/{report['job_id']}/traces")}
    for trace_id, seen in before.items():  # everything reported before the kill survived
        assert traces[trace_id]["status"] == "completed"
        assert traces[trace_id]["reward"] == seen["reward"]
    # reporting resumed: rollouts that finished after the restart reached the platform too
    finished = [t for t in traces.values() if t["status"] == "completed"]
    assert len(finished) == ROWS, (len(finished), err[-2000:])


def test_our_jobs_trace_and_cancel_commands(
    platform: Platform, provider: FakeProvider, project: Path
) -> None:
    """`hud jobs list|get|cancel` and `hud trace get` read the platform when a key is set
    (``--local`` reads the records), and `hud cancel` is the hidden alias of `jobs cancel`."""
    email = f"ours-{uuid.uuid4().hex[:6]}@example.com"
    assert platform.hud("user", "add", email).returncode == 0
    key = platform.new_key("--user", email)
    env = {**base_env(make_home()), **platform.client_env(key)}
    proc = run_cli(eval_argv(provider), env, cwd=project, ours=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    job_id = str(uuid.UUID(report["job_id"]))

    def hud(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), env, cwd=project, ours=True)

    listed = hud("jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert rows[0]["job_id"] == job_id and (rows[0]["runs"], rows[0]["total"]) == (2, 2)
    assert rows[0]["reward"] == 0.5
    local = json.loads(hud("jobs", "list", "--local", "--json").stdout)
    assert [r["job_id"] for r in local] == [report["job_id"]]
    got = json.loads(hud("jobs", "get", report["job_id"], "--json").stdout)
    assert got["status"] == "completed" and got["stats"]["runs"] == 2
    assert sorted((r["trace_id"], r["reward"]) for r in got["runs"]) == sorted(
        (str(uuid.UUID(r["trace_id"])), r["reward"]) for r in report["runs"]
    )
    run = report["runs"][0]
    events = json.loads(hud("trace", "get", run["trace_id"], "--json").stdout)
    assert events[0]["status"] == "completed" and events[0]["source"] == "platform"
    agent = next(e for e in events if e["kind"] == "agent_message")
    assert agent["text"] == run["answer"]
    shown = hud("trace", run["trace_id"])
    assert shown.returncode == 0 and "Turn 1 — agent" in shown.stdout
    missing = hud("jobs", "get", "no-such-job")
    assert missing.returncode == 1 and "Job no-such-job not found" in missing.stderr

    job, t1, t2 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with platform.api(key) as api:
        for trace in (t1, t2):
            assert api.post(f"/v2/trace/{trace.hex}/enter", json={"job_id": job.hex}).is_success
    one = hud("jobs", "cancel", str(job), "-t", str(t1), "--yes")
    assert one.returncode == 0 and "cancellation requested" in one.stdout, one.stderr
    rest = hud("cancel", str(job), "--yes", "--json")
    assert rest.returncode == 0, rest.stderr
    assert "1 active rollout(s) cancelled" in json.loads(rest.stdout)["actions"][0]["detail"]
    with platform.api(key) as api:
        assert {t["status"] for t in page(api, f"/v2/jobs/{job}/traces")} == {"cancelled"}
