"""The platform's own pages over HTTP on both databases (the shared SQLite and PostgreSQL
platforms): a taskset's leaderboard aggregated in SQL matches `hud.eval.stats` on the same
rewards, the paired comparison, the taskset list, and an API key made on the page (shown
once) then revoked. The browser tests (tests/web/test_platform_pages.py) cover the rest on
SQLite."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.platform.helpers import Platform, requires_extra
from tests.web.test_platform_pages import REWARDS, expected_figures

pytestmark = [requires_extra]


def test_leaderboard_and_keys_in_sql(platform: Platform) -> None:
    key = platform.admin_key
    assert key
    name = f"lb-{uuid.uuid4().hex[:8]}"
    agents = {agent: f"{agent}-{uuid.uuid4().hex[:6]}" for agent in REWARDS}
    with platform.api(key) as api:
        taskset = api.post("/v2/tasksets", json={"name": name}).json()
        for agent, per_task in REWARDS.items():
            job = uuid.uuid4().hex  # the taskset id as the 32-hex spelling, once
            tid = taskset["id"] if agent == "agent-a" else uuid.UUID(taskset["id"]).hex
            api.post(f"/v2/trace/job/{job}/enter", json={"name": name, "taskset_id": tid})
            for slug, rewards in per_task.items():
                for reward in rewards:
                    trace = uuid.uuid4().hex
                    entry = {"job_id": job, "task_slug": slug, "model": agents[agent]}
                    api.post(f"/v2/trace/{trace}/enter", json=entry)
                    done = (
                        {"status": "error", "error": "boom"}
                        if reward is None
                        else {"status": "completed", "reward": reward}
                    )
                    assert api.post(f"/v2/trace/{trace}/exit", json=done).status_code == 200

        hostile = f"<img src=x onerror=alert(1)>{uuid.uuid4().hex[:6]}"
        trace = uuid.uuid4().hex
        api.post(f"/v2/trace/{trace}/enter",
                 json={"job_id": job, "task_slug": "<b>add-1</b>", "model": hostile})  # fmt: skip
        api.post(f"/v2/trace/{trace}/exit", json={"status": "completed", "reward": 0.0})

        board = api.get(f"/web/tasksets/{taskset['id']}")
        assert board.status_code == 200, board.text
        figures = expected_figures()
        for agent, fig in figures.items():
            assert f"{fig['mean'].value:.3f} ± {fig['mean'].half_width:.3f}" in board.text, agent
            assert f"{100 * fig['success'].value:.1f}%" in board.text
        assert "<img src=x" not in board.text and "&lt;img src=x onerror" in board.text
        a, b = agents["agent-a"], agents["agent-b"]
        assert board.text.index(a) < board.text.index(b)  # ranked by mean reward
        compared = api.get(f"/web/tasksets/{taskset['id']}", params={"a": b, "b": a}).text
        assert "0 / 1 / 3" in compared and "0.250" in compared

        listed = api.get("/web/tasksets", params={"q": name}).text
        row = re.search(rf">{re.escape(name)}</a></td>(.*?)</tr>", listed)
        assert row and '<td class="num">2</td>' in row[1]  # two jobs, either id spelling

        elsewhere = {"Origin": "http://elsewhere.example", "Sec-Fetch-Site": "cross-site"}
        refused = api.post("/web/keys", data={"name": "csrf-key"}, headers=elsewhere)
        assert refused.status_code == 403 and "hud_" not in refused.text
        assert "csrf-key" not in api.get("/web/keys").text
        made = api.post("/web/keys", data={"name": "page-key"})
        assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
        new_key = re.search(r"<code>(hud_[^<]+)</code>", made.text)
        assert new_key
        page = api.get("/web/keys").text
        assert new_key[1] not in page and "page-key" in page
        key_id = re.search(r"/web/keys/([0-9a-f-]{36})/revoke", page.split("page-key", 1)[1])
        assert key_id
        with httpx.Client(base_url=platform.url) as anon:
            headers = {"Authorization": f"Bearer {new_key[1]}"}
            assert anon.get("/v2/auth/me", headers=headers).status_code == 200
            revoked = api.post(f"/web/keys/{key_id[1]}/revoke", follow_redirects=False)
            assert revoked.status_code == 303
            assert anon.get("/v2/auth/me", headers=headers).status_code == 401
