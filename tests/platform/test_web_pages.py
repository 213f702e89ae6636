"""The web pages on a live `hud platform serve` (SQLite and PostgreSQL, the shared session
platforms): sign-in and its signed cookie, revocation, team scoping, and the job page's figures
computed in SQL (checked against the same figures computed in Python)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from hud.platform.web.data import group_stats, histogram
from tests.agents.fakes import FakeProvider, Reply
from tests.platform.helpers import Platform, requires_extra

pytestmark = [requires_extra]

T = TypeVar("T")
GROUPS = {"g1": [0.0, 0.25, 0.5, 1.0], "g2": [1.0, 1.0, 1.0, 1.0], "g3": [0.0, 0.0, 0.5, 0.5]}


def web(platform: Platform, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=platform.url + "/web", timeout=30, **kwargs)


@contextlib.contextmanager
def sign_in(platform: Platform, key: str) -> Iterator[httpx.Client]:
    with web(platform) as client:
        reply = client.post("/signin", data={"key": key, "next": "/web/jobs"})
        assert reply.status_code == 303 and reply.headers["location"] == "/web/jobs", reply.text
        yield client


def seed(platform: Platform, key: str) -> dict[str, Any]:
    """A job through the real reporting API: 3 groups of 4 rewarded rollouts, one errored
    rollout, one still running (the job is live); spans for one trace."""
    job = uuid.uuid4().hex
    traces: dict[str, str] = {}
    with platform.api(key) as api:
        name = f"web-seed-{job[:6]}"
        assert api.post(f"/v2/trace/job/{job}/enter", json={"name": name, "group": 4}).is_success
        for group, rewards in GROUPS.items():
            for i, reward in enumerate(rewards):
                tid = uuid.uuid4().hex
                body = {"job_id": job, "group_id": group, "task_slug": f"task-{group}"}
                assert api.post(f"/v2/trace/{tid}/enter", json=body).is_success
                exit_ = {
                    "status": "completed",
                    "reward": reward,
                    "evaluation_result": {"score": reward},
                }
                assert api.post(f"/v2/trace/{tid}/exit", json=exit_).is_success
                traces[f"{group}-{i}"] = tid
        failed, running = uuid.uuid4().hex, uuid.uuid4().hex
        for tid in (failed, running):
            body = {"job_id": job, "group_id": "g4", "task_slug": "task-g4"}
            assert api.post(f"/v2/trace/{tid}/enter", json=body).is_success
        assert api.post(
            f"/v2/trace/{failed}/exit", json={"status": "error", "error": "boom <b>"}
        ).is_success
        steps = [
            {"step_id": 2, "source": "user",
             "messages": [{"role": "user", "content": "What is 1+1?"}]},
            {"step_id": 3, "source": "agent", "content": "2", "tool_calls": [], "done": True,
             "usage": {"prompt_tokens": 10, "completion_tokens": 1}},
            {"step_id": 4, "source": "task", "task_call": {"phase": "evaluate", "name": "add",
             "arguments": {"answer": "2"}, "result": {"score": 1.0, "content": "correct"}}},
        ]  # fmt: skip
        spans = [
            {"span_id": uuid.uuid4().hex[:16], "name": f"step.{s['source']}",
             "start_time": f"2026-01-01T00:00:0{s['step_id']}Z",
             "attributes": {"hud.schema": "hud.step.v1", "hud.task_run_id": traces["g1-3"],
                            "hud.payload": s}}
            for s in steps
        ] + [{"span_id": "other0001", "name": "filetracking.diff",
              "attributes": {"hud.schema": "hud.filetracking.v1"}}]  # fmt: skip
        upload = api.post(
            f"/telemetry/trace/{traces['g1-3']}/telemetry-upload", json={"telemetry": spans}
        )
        assert upload.is_success, upload.text
    return {"job": str(uuid.UUID(job)), "name": name, "traces": traces, "failed": failed}


def admin(platform: Platform, work: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run ``work(identities, gateway)`` on the platform's database with the library the
    `hud platform team|key|upstream` commands run (in process: a CLI process costs seconds on
    a busy machine)."""
    from hud.platform.server import DataDir, open_database
    from hud.platform.services import IdentityService
    from hud.platform.services.gateway import GatewayService

    async def main() -> T:
        where = DataDir.at(platform.data_dir)
        db = await open_database(where, platform.db)
        try:
            return await work(IdentityService(db), GatewayService(db, where.path))
        finally:
            await db.close()

    return asyncio.run(main())


def rollout_rewards(page: str) -> list[str]:
    """The reward column of a job page's rollouts table, top to bottom."""
    body = page[page.index('<table class="grid rollouts">') :]
    body = body[: body.index("</table>")]
    return re.findall(r'<td class="num">([\d.–]+)</td><td class="num">', body)


@pytest.fixture(scope="module")
def seeded(platform: Platform) -> dict[str, Any]:
    key = admin(platform, lambda ids, _gw: ids.create_key(name="web-pages"))[0]
    return {"key": key, **seed(platform, key)}


def test_sign_in_cookie_and_bearer(platform: Platform, seeded: dict[str, Any]) -> None:
    key = seeded["key"]
    with web(platform) as anon:
        first = anon.get("/jobs?status=running")
        assert first.status_code == 303
        assert first.headers["location"] == "/web/signin?next=%2Fweb%2Fjobs%3Fstatus%3Drunning"
        assert anon.get("/signin").status_code == 200
        bad = anon.post("/signin", data={"key": "hud_wrong<script>", "next": "/web/jobs"})
        assert bad.status_code == 401 and "Invalid API key" in bad.text
        assert "hud_wrong" not in bad.text and "set-cookie" not in bad.headers
        # another site's page cannot sign the browser in (login CSRF)
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            forged = anon.post("/signin", data={"key": key}, headers=headers)
            assert forged.status_code == 403 and "set-cookie" not in forged.headers
        # after sign-in only paths under /web are followed
        evil = anon.post("/signin", data={"key": key, "next": "//evil.example/web/"})
        assert evil.headers["location"] == "/web/jobs"
        cookie = evil.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/web" in cookie
        assert key not in cookie and key[4:20] not in cookie
    with sign_in(platform, key) as client:
        page = client.get("/jobs")
        assert page.status_code == 200 and seeded["name"] in page.text
        assert key not in page.text
        token = client.cookies["hud_web"]
        payload, mac = token.split(".")
        forged = f"{payload}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}"
    with web(platform, cookies={"hud_web": forged}) as tampered:
        assert tampered.get("/jobs").status_code == 303
    with web(platform, headers={"Authorization": f"Bearer {key}"}) as bearer:
        assert seeded["name"] in bearer.get("/jobs").text
    with web(platform, headers={"Authorization": "Bearer nope"}) as wrong:
        assert wrong.get("/jobs").status_code == 401


def test_another_teams_job_is_404_and_revoking_ends_sessions(
    platform: Platform, seeded: dict[str, Any]
) -> None:
    team = f"web-other-{uuid.uuid4().hex[:6]}"

    async def rival(ids: Any, _gw: Any) -> str:
        await ids.create_team(team)
        return (await ids.create_key(team=team))[0]

    key = admin(platform, rival)
    with sign_in(platform, key) as other:
        assert seeded["name"] not in other.get("/jobs").text
        job = other.get(f"/jobs/{seeded['job']}")
        assert job.status_code == 404 and "Not found" in job.text
        trace = other.get(f"/trace/{seeded['traces']['g1-0']}")
        assert trace.status_code == 404 and "web-seed" not in trace.text
        admin(platform, lambda ids, _gw: ids.revoke_key(key))
        after = other.get("/jobs")  # the cookie is still signed, but its key is revoked
        assert after.status_code == 401 and "revoked" in after.text
    with sign_in(platform, seeded["key"]) as mine:
        assert mine.get(f"/jobs/{seeded['job']}").status_code == 200
        assert mine.get("/nothing/here").status_code == 404


def test_job_page_figures_match_python(platform: Platform, seeded: dict[str, Any]) -> None:
    rewards = [r for values in GROUPS.values() for r in values]
    with sign_in(platform, seeded["key"]) as client:
        page = client.get(f"/jobs/{seeded['job']}").text
        bars = [float(v) for v in re.findall(r'<rect class="bar"[^>]*data-value="([\d.]+)"', page)]
        assert bars == [b.count for b in histogram(rewards)]
        expected = group_stats((g, f"task-{g}", v) for g, v in GROUPS.items())
        groups = page[page.index('<table class="grid groups">') :]
        shown = re.findall(r"<td>(task-g\d)</td>", groups[: groups.index("</table>")])
        assert shown == [g.label for g in expected]  # widest spread first
        assert f"{len(GROUPS)} groups" in page and 'data-live="3"' in page  # one still running
        mean = sum(rewards) / (len(rewards) + 1)  # the errored rollout counts as 0
        assert f"{mean:.3f}" in page
        assert "Rollouts (14)" in page and "boom &lt;b&gt;" in page
        for sort, first, last in (("reward", "0.000", "–"), ("-reward", "1.000", "–")):
            rows = rollout_rewards(client.get(f"/jobs/{seeded['job']}", params={"sort": sort}).text)
            assert (rows[0], rows[-1]) == (first, last), (sort, rows)
        errors = client.get(f"/jobs/{seeded['job']}", params={"status": "error"}).text
        assert "Rollouts (1)" in errors and seeded["failed"][:8] in errors

        running = client.get("/jobs", params={"status": "running"}).text
        assert seeded["name"] in running
        assert seeded["name"] not in client.get("/jobs", params={"status": "completed"}).text
        assert seeded["name"] in client.get("/jobs", params={"q": seeded["name"][-6:]}).text

        trace = client.get(f"/trace/{seeded['traces']['g1-3']}").text
        assert trace.count('<li class="') == 3 and "correct" in trace and "10 / 1" in trace
        assert "Other spans (1)" in trace and "filetracking.diff" in trace


def test_gateway_usage_on_trace_and_job_pages(platform: Platform, seeded: dict[str, Any]) -> None:
    model = f"web-{uuid.uuid4().hex[:8]}"
    trace = seeded["traces"]["g2-0"]
    with FakeProvider(script=[Reply(text="hi", usage=(21, 9))]) as fake:
        admin(
            platform,
            lambda _ids, gw: gw.add_upstream(
                f"up-{model}", provider="openai_compatible", base_url=f"{fake.url}/v1",
                api_key=None, models_=[model],
            ),
        )  # fmt: skip
        body = {"model": model, "messages": [{"role": "user", "content": "x"}]}
        with platform.api(seeded["key"]) as api:
            reply = api.post("/gateway/chat/completions", json=body, headers={"Trace-Id": trace})
            assert reply.status_code == 200, reply.text
    with sign_in(platform, seeded["key"]) as client:
        spent = "1 calls · 21 in / 9 out tokens"
        assert spent in client.get(f"/trace/{trace}").text
        assert spent in client.get(f"/jobs/{seeded['job']}").text
        assert "Gateway" not in client.get(f"/trace/{seeded['traces']['g3-0']}").text
