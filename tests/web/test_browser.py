"""The web pages in a real browser (Playwright driving Debian's Chromium) against a live
`hud platform serve` holding real data: one eval reported by the official 0.6.21 CLI and one by
ours (both against a fake OpenAI-compatible provider). Sign in, go from the jobs page to a job
(its reward plot renders) to a trace (its timeline replays); a running job's page updates
itself; and `hud view` on our eval's ``.hud/jobs`` shows the same trace viewer."""

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

from tests.agents.fakes import FakeProvider
from tests.platform.helpers import (
    HAVE_PEER,
    PEER_HUD,
    Platform,
    base_env,
    make_home,
    requires_extra,
    run_cli,
)
from tests.web.helpers import HudView, answer, eval_argv, make_project, our_eval

pytestmark = [requires_extra]


@pytest.fixture(scope="module")
def live() -> Iterator[dict[str, Any]]:
    """A SQLite platform with our eval (3 tasks) reported, and a project holding its record."""
    base = Path(tempfile.mkdtemp(prefix="hud-web-browser-"))
    platform = Platform("sqlite", base / "data").start()
    project = make_project(3)
    (project / "official.py").write_text(
        "from env import add\n\ntasks = [add(a=2, b=2), add(a=3, b=4)]\n"
    )
    key = platform.admin_key or platform.new_key("--name", "browser")
    provider = FakeProvider(handler=answer)
    provider.__enter__()
    try:
        ours = our_eval(project, provider.url, platform.client_env(key))
        yield {"platform": platform, "key": key, "project": project, "ours": ours,
               "provider": provider}  # fmt: skip
    finally:
        provider.__exit__(None, None, None)
        platform.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(project, ignore_errors=True)


@pytest.fixture(scope="module")
def official(live: dict[str, Any]) -> dict[str, Any]:
    """The official CLI's `hud eval official.py` reported to the same platform."""
    if not HAVE_PEER:
        pytest.skip(f"official hud not installed at {PEER_HUD} (make peer)")
    platform, key = live["platform"], live["key"]
    env = {**base_env(make_home()), **platform.client_env(key)}
    argv = eval_argv(live["provider"].url)
    argv[1] = "official.py"
    proc = run_cli(argv, env, cwd=live["project"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def sign_in(page: Any, platform: Platform, key: str) -> None:
    page.goto(platform.url + "/web/jobs")
    assert "/web/signin" in page.url
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/web/jobs$"))


def bar_values(page: Any) -> list[float]:
    bars = page.locator("#reward-plot svg rect.bar")
    return [float(bars.nth(i).get_attribute("data-value")) for i in range(bars.count())]


def step_kinds(page: Any) -> list[str]:
    items = page.locator("ol.timeline > li")
    return [str(items.nth(i).get_attribute("class")).split()[0] for i in range(items.count())]


@pytest.mark.peer
def test_official_eval_jobs_to_job_to_trace(
    page: Any, live: dict[str, Any], official: dict[str, Any]
) -> None:
    platform = live["platform"]
    sign_in(page, platform, live["key"])
    job_id = str(uuid.UUID(official["job_id"]))
    assert page.locator("table.jobs a.job").count() == 2
    page.click(f'a.job[href="/web/jobs/{job_id}"]')
    page.wait_for_url(f"**/web/jobs/{job_id}")
    assert page.locator("h1").inner_text().startswith("official (2 tasks)")
    values = bar_values(page)
    assert len(values) == 10 and sum(values) == 2  # rewards 1 and 0: first and last bins
    assert values[0] + values[-1] == 2
    assert page.locator("table.rollouts tbody tr").count() == 2

    page.locator("a.trace").first.click()
    page.wait_for_url("**/web/trace/*")
    kinds = step_kinds(page)
    assert "agent" in kinds and "grade" in kinds and "user" in kinds
    assert page.locator(".card.grade").is_visible()
    # replay: step back hides the last step, play/last shows everything again
    page.click("[data-act=prev]")
    assert page.locator("ol.timeline > li.hidden").count() == 1
    page.click("[data-act=first]")
    assert page.locator("ol.timeline > li:not(.hidden)").count() == 1
    page.click("[data-act=last]")
    assert page.locator("ol.timeline > li.hidden").count() == 0


def test_hud_view_shows_the_same_trace_viewer(page: Any, live: dict[str, Any]) -> None:
    platform, ours = live["platform"], live["ours"]
    run = next(r for r in ours["runs"] if r["reward"] == 1.0)
    sign_in(page, platform, live["key"])
    page.goto(f"{platform.url}/web/jobs/{uuid.UUID(ours['job_id'])}")
    assert sum(bar_values(page)) == len(ours["runs"])
    page.click(f'a.trace[href="/web/trace/{uuid.UUID(run["trace_id"])}"]')
    page.wait_for_url("**/web/trace/*")
    on_platform = step_kinds(page)
    grade = page.locator(".card.grade").inner_text()

    view = HudView(live["project"] / ".hud" / "jobs")
    try:
        page.goto(view.url)
        page.click(f'a.job[href="/web/jobs/{ours["job_id"]}"]')
        page.wait_for_url("**/web/jobs/*")
        assert sum(bar_values(page)) == len(ours["runs"])
        page.click(f'a.trace[href="/web/trace/{run["trace_id"]}"]')
        page.wait_for_url("**/web/trace/*")
        assert step_kinds(page) == on_platform and len(on_platform) >= 4
        assert page.locator(".card.grade").inner_text() == grade
    finally:
        view.stop()


def test_running_job_page_updates_itself(page: Any, live: dict[str, Any]) -> None:
    platform, key = live["platform"], live["key"]
    job, trace = uuid.uuid4(), uuid.uuid4()
    with platform.api(key) as api:
        assert api.post(f"/v2/trace/job/{job.hex}/enter", json={"name": "live-job"}).is_success
        body = {"job_id": job.hex, "task_slug": "slow-task"}
        assert api.post(f"/v2/trace/{trace.hex}/enter", json=body).is_success
    sign_in(page, platform, key)
    page.goto(f"{platform.url}/web/jobs/{job}")
    assert page.locator("main[data-live]").count() == 1
    assert page.locator("table.rollouts .badge").inner_text() == "running"
    with platform.api(key) as api:
        done = {"status": "completed", "reward": 1.0}
        assert api.post(f"/v2/trace/{trace.hex}/exit", json=done).is_success
    page.locator("table.rollouts .badge.completed").wait_for(timeout=20000)
    assert page.locator("main[data-live]").count() == 0  # finished: no more polling
