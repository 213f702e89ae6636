"""`hud view` over a real local job record (our `hud eval` against a fake provider), served by
the CLI child on loopback; and the trace viewer's rendering of what records carry (tool calls,
screenshots, workspace diffs, subscores), escaped."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hud.platform.web.data import TraceView, histogram
from hud.platform.web.kit import Ctx
from hud.platform.web.pages import trace_page
from tests.agents.fakes import FakeProvider
from tests.conftest import REPO, HudRunner, assert_user_error
from tests.web.helpers import HudView, answer, make_project, our_eval

GROUP = 2


@pytest.fixture(scope="module")
def record() -> Iterator[dict[str, Any]]:
    """One local job: 3 tasks x 2 rollouts, rewards alternating 1/0."""
    project = make_project(3)
    with FakeProvider(handler=answer) as provider:
        report = our_eval(project, provider.url, None, "--group", str(GROUP))
    yield {"project": project, "jobs": project / ".hud" / "jobs", "report": report}
    shutil.rmtree(project, ignore_errors=True)


@pytest.fixture(scope="module")
def view(record: dict[str, Any]) -> Iterator[HudView]:
    server = HudView(record["jobs"])
    yield server
    server.stop()


def test_bad_jobs_dir_is_one_line(run_hud: HudRunner, tmp_path: Path) -> None:
    proc = run_hud("view", str(tmp_path / "missing"), "--no-browser", cwd=tmp_path)
    assert_user_error(proc, "not a directory of job records")


def test_jobs_job_and_trace_pages(view: HudView, record: dict[str, Any]) -> None:
    report = record["report"]
    job_id = report["job_id"]
    with httpx.Client(base_url=view.base, timeout=30) as http:
        jobs = http.get("/jobs")
        assert jobs.status_code == 200
        assert "default-src 'self'" in jobs.headers["content-security-policy"]
        assert f"/web/jobs/{job_id}" in jobs.text and "tasks (3 tasks)" in jobs.text
        assert http.get("/jobs", params={"q": "no such job"}).text.count('class="job"') == 0
        assert f"/web/jobs/{job_id}" in http.get("/jobs", params={"q": job_id[:8]}).text
        assert f"/web/jobs/{job_id}" in http.get("/jobs", params={"status": "completed"}).text
        assert f"/web/jobs/{job_id}" not in http.get("/jobs", params={"status": "running"}).text

        page = http.get(f"/jobs/{job_id}").text
        rewards = [r["reward"] for r in report["runs"]]
        bars = [float(v) for v in re.findall(r'<rect class="bar"[^>]*data-value="([\d.]+)"', page)]
        assert bars == [b.count for b in histogram(rewards)] and sum(bars) == len(rewards) == 6
        assert 'id="spread-plot"' in page and "<circle" in page  # groups of 2 have a spread
        for run in report["runs"]:
            assert f"/web/trace/{run['trace_id']}" in page
        best = http.get(f"/jobs/{job_id}", params={"sort": "-reward"}).text
        worst = http.get(f"/jobs/{job_id}", params={"sort": "reward"}).text
        cells = r'<td class="num">([\d.]+)</td><td class="num">'

        def first_reward(html: str) -> str:
            return re.findall(cells, html[html.index('class="grid rollouts"') :])[0]

        assert (first_reward(best), first_reward(worst)) == ("1.000", "0.000")

        run = report["runs"][0]
        trace = http.get(f"/trace/{run['trace_id']}")
        assert trace.status_code == 200
        steps = (record["jobs"] / job_id / "traces" / f"{run['trace_id']}.jsonl").read_text()
        assert trace.text.count('<li class="') == steps.count('"type":"step"')
        assert "What is" in trace.text and "Grade" in trace.text and "model fake" in trace.text

        assert http.get("/trace/0123456789abcdef0123456789abcdef").status_code == 404
        assert http.get("/trace/..%2F..%2Fetc%2Fpasswd").status_code == 404
        assert http.get("/static/hud.js").headers["content-type"].startswith("text/javascript")
        assert http.post("/jobs").status_code == 405
        assert http.get("/", follow_redirects=False).status_code == 302


def test_trace_view_renders_what_records_carry_escaped() -> None:
    png = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/"
        "iZk9HQAAAABJRU5ErkJggg=="
    )
    bad = {"type": "image", "data": 'x" onerror="alert(1)', "mimeType": "image/png"}
    steps: list[dict[str, Any]] = [
        {"step_id": 1, "source": "task", "task_call": {"phase": "setup", "name": "fix",
         "arguments": {}, "result": {"prompt": "Fix <b>it</b>"}}},
        {"step_id": 2, "source": "agent", "content": "<script>alert(1)</script>",
         "tool_calls": [{"id": "c1", "name": "screenshot", "arguments": {}}],
         "usage": {"prompt_tokens": 1200, "completion_tokens": 30}},
        {"step_id": 3, "source": "tool", "call": {"id": "c1", "name": "screenshot"},
         "result": {"content": [{"type": "image", "data": png, "mimeType": "image/png"},
                                bad]}},
        {"step_id": 4, "source": "system", "extra": {"filetracking": {"patches": [
            {"path": "a.py", "status": "modified", "patch": "@@ -1 +1 @@\n-old\n+new"}]}}},
        {"step_id": 5, "source": "task", "task_call": {"phase": "evaluate", "name": "fix",
         "arguments": {"answer": "done"}, "result": {"score": 0.75, "content": "tests <pass>",
         "subscores": [{"name": "unit", "weight": 0.5, "value": 1.0}]}}},
    ]  # fmt: skip
    html = trace_page(Ctx(), TraceView(id="t1", status="completed", reward=0.75, steps=steps))
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert f'src="data:image/png;base64,{png}"' in html
    assert "onerror" not in html  # an image block whose data is not base64 is not shown
    assert '<span class="add">+new</span>' in html and '<span class="del">-old</span>' in html
    assert "tests &lt;pass&gt;" in html and ">unit<" in html and "1,200 / 30" in html
    assert html.count('<li class="') == len(steps)
    assert "Fix &lt;b&gt;it&lt;/b&gt;" in html


async def test_running_local_job_shows_rollouts_in_flight(tmp_path: Path) -> None:
    """A job record being written by this (live) process: its page is live and lists the
    rollout whose trace file has no row yet, and that trace's page shows its steps so far."""
    from hud.eval.records import JobRecord
    from hud.platform.web.local import LocalSource
    from hud.platform.web.pages import job_page
    from hud.types.task import Task
    from hud.types.trace import AgentStep, Trace

    record = JobRecord.create("0" * 32, "live (1 task)", {"total": 1}, base_dir=tmp_path)
    trace = Trace(trace_id="1" * 32)
    record.start_trace(Task(env="e", id="add", slug="add-1", args={"a": 1}), trace)
    trace.record(AgentStep(content="thinking <hard>"))
    source = LocalSource(tmp_path)
    detail = await source.job("0" * 32)
    rollouts = await source.rollouts("0" * 32)
    assert detail is not None and rollouts is not None and detail.live
    assert [(r.trace_id, r.status) for r in rollouts.items] == [("1" * 32, "running")]
    html = job_page(Ctx(base="/web", platform=False), detail, rollouts)
    assert 'data-live="3"' in html and "/web/trace/" + "1" * 32 in html
    view = await source.trace("1" * 32)
    assert view is not None and view.live and view.slug == "add-1"
    assert "thinking &lt;hard&gt;" in trace_page(Ctx(), view)


def test_hud_view_needs_no_platform_extra(record: dict[str, Any]) -> None:
    """`hud view` and the pages import and serve with FastAPI and SQLAlchemy unimportable."""
    code = (
        "import sys, asyncio\n"
        "for name in ('fastapi', 'starlette', 'sqlalchemy', 'alembic', 'uvicorn'):\n"
        "    sys.modules[name] = None\n"
        "import hud.cli.view_cmd\n"
        "from hud.platform.web.server import ViewServer\n"
        "async def main():\n"
        "    server = await ViewServer(sys.argv[1]).start()\n"
        "    reply = await server.handle('GET', '/web/jobs')\n"
        "    print(reply.status, b'tasks (3 tasks)' in reply.body)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(record["jobs"])],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["200", "True"]
