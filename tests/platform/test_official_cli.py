"""The official hud 0.6.21 CLI (a black box) against a live `hud platform serve`, on SQLite and
on PostgreSQL: a local `hud eval` reports its job, traces and spans; `hud jobs list|get`,
`hud trace get` and `hud jobs cancel` read them back (spec platform.md §5, §9)."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.fakes import FakeProvider, Recorded, Reply
from tests.platform.helpers import (
    PLAIN,
    Platform,
    make_home,
    page,
    requires_extra,
    requires_peer,
    run_cli,
)

pytestmark = [*requires_peer, requires_extra]


def answer(request: Recorded) -> Reply:
    """Adds the numbers in the prompt, except 3 + 4 (answered 0, so that run scores 0)."""
    m = re.search(r"What is (\d+) \+ (\d+)", json.dumps(request.body))
    if not m or m.groups() == ("3", "4"):
        return Reply(text="0")
    return Reply(text=str(int(m[1]) + int(m[2])))


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(handler=answer) as fake:
        yield fake


@pytest.fixture(scope="module")
def project() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="hud-platform-project-"))
    shutil.copy(PLAIN / "env.py", root / "env.py")
    (root / "tasks.py").write_text(
        "from env import add\n\ntasks = [add(a=2, b=2), add(a=3, b=4)]\n"
    )
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def home() -> Path:
    return make_home()


def official(platform: Platform, key: str, home: Path, cwd: Path, *args: str) -> Any:
    from tests.platform.helpers import base_env

    env = {**base_env(home), **platform.client_env(key)}
    return run_cli(list(args), env, cwd=cwd)


@pytest.fixture(scope="module")
def reported(
    platform: Platform, provider: FakeProvider, project: Path, home: Path
) -> dict[str, Any]:
    """One official `hud eval tasks.py openai_compatible --all` reporting to the platform."""
    key = platform.new_key("--name", "official-eval")
    proc = official(
        platform, key, home, project,
        "eval", "tasks.py", "openai_compatible", "--config", f"base_url={provider.url}/v1",
        "--config", "api_key=k", "--model", "fake", "--all", "--yes", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["run_count"] == 2
    return {"key": key, "report": report}


def test_eval_reports_job_traces_and_spans(platform: Platform, reported: dict[str, Any]) -> None:
    report, key = reported["report"], reported["key"]
    job_id = str(uuid.UUID(report["job_id"]))
    with platform.api(key) as api:
        jobs = page(api, "/v2/jobs")
        job = next(j for j in jobs if j["id"] == job_id)
        assert job["name"] == "tasks (2 tasks)" and job["status"] == "completed"
        traces = page(api, f"/v2/jobs/{report['job_id']}/traces")  # the hex form too
        by_id = {t["id"]: t for t in traces}
        assert len(traces) == 2
        for run in report["runs"]:
            trace = by_id[str(uuid.UUID(run["trace_id"]))]
            assert trace["status"] == "completed"
            assert trace["reward"] == run["reward"]
            assert trace["task_slug"] == run["slug"]
            assert trace["model"] == "fake"
            assert trace["evaluation_result"]["score"] == run["reward"]
            spans = page(api, f"/v2/trace/{run['trace_id']}/spans")
            assert spans, "the trace's spans were uploaded"
            assert all(s["attributes"]["hud.task_run_id"] == run["trace_id"] for s in spans)
    assert sorted(t["reward"] for t in traces) == [0.0, 1.0]


def test_jobs_list_get_and_trace_get(
    platform: Platform, reported: dict[str, Any], home: Path, project: Path
) -> None:
    report, key = reported["report"], reported["key"]
    job_id = str(uuid.UUID(report["job_id"]))
    listed = official(platform, key, home, project, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert job_id in listed.stdout
    got = official(platform, key, home, project, "jobs", "get", job_id)
    assert got.returncode == 0, got.stderr
    for run in report["runs"]:
        assert str(uuid.UUID(run["trace_id"])) in got.stdout
    assert "completed" in got.stdout and "1.000" in got.stdout and "0.000" in got.stdout
    good = next(r for r in report["runs"] if r["reward"] == 1.0)
    trace = official(platform, key, home, project, "trace", "get", str(uuid.UUID(good["trace_id"])))
    assert trace.returncode == 0, trace.stderr
    assert "Turn 1 — agent" in trace.stdout and "4" in trace.stdout
    missing = official(platform, key, home, project, "jobs", "get", str(uuid.uuid4()))
    assert missing.returncode != 0
    assert "not found" in (missing.stdout + missing.stderr).lower()


def test_jobs_cancel(platform: Platform, home: Path, project: Path) -> None:
    email = f"cancel-{uuid.uuid4().hex[:6]}@example.com"  # its own user: `--all` is per user
    assert platform.hud("user", "add", email).returncode == 0
    key = platform.new_key("--user", email)
    job, t1, t2 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with platform.api(key) as api:
        assert api.post(f"/v2/trace/job/{job.hex}/enter", json={"name": "c", "group": 1}).is_success
        for trace in (t1, t2):
            assert api.post(f"/v2/trace/{trace.hex}/enter", json={"job_id": job.hex}).is_success
    one = official(platform, key, home, project, "jobs", "cancel", str(job), "-t", str(t1), "--yes")
    assert one.returncode == 0, one.stderr
    assert "cancellation requested" in (one.stdout + one.stderr).lower()
    again = official(platform, key, home, project, "jobs", "cancel", str(job), "-t", str(t1), "-y")
    assert "not found or already finished" in (again.stdout + again.stderr)
    rest = official(platform, key, home, project, "jobs", "cancel", str(job), "--yes", "--json")
    assert rest.returncode == 0, rest.stderr
    assert json.loads(rest.stdout)["cancelled"] == 1
    none = official(platform, key, home, project, "jobs", "cancel", str(job), "--yes")
    assert "No active tasks found" in none.stdout + none.stderr
    with platform.api(key) as api:
        statuses = {t["id"]: t["status"] for t in page(api, f"/v2/jobs/{job}/traces")}
        assert statuses == {str(t1): "cancelled", str(t2): "cancelled"}
        # an exit arriving after cancellation keeps the trace cancelled, and its reward
        api.post(f"/v2/trace/{t2.hex}/exit", json={"status": "completed", "reward": 1.0})
        trace = api.get(f"/v2/trace/{t2}").json()
        assert (trace["status"], trace["reward"]) == ("cancelled", 1.0)
        t3 = uuid.uuid4()
        api.post(f"/v2/trace/{t3.hex}/enter", json={"job_id": job.hex})
    panic = official(platform, key, home, project, "jobs", "cancel", "--all", "--yes", "--json")
    assert panic.returncode == 0, panic.stderr
    body = json.loads(panic.stdout)
    assert body["total_tasks_cancelled"] == 1 and body["jobs_cancelled"] == 1
