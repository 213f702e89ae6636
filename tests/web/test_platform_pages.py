"""The platform's own pages in a real browser (Playwright driving Debian's Chromium) against a
live platform holding real data, all sent over the wire as clients send it: an environment
built from an uploaded context (one build that succeeds, one that fails), a taskset whose tasks
are validated against that build, two agents' rollouts reported through the ingest API, a
forked model with a checkpoint tree. The browser signs in, reads the leaderboard and checks its
figures against `hud.eval.stats` on the same rewards, compares the two agents, follows the
taskset's tasks to their environment and build log, walks the checkpoint tree, creates and
revokes an API key, and approves a `hud login` with JavaScript turned off. Another team gets a
404 page for each of these objects."""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from hud.eval import stats
from tests.platform.helpers import PLAIN, Platform, requires_extra

pytestmark = requires_extra

#: Rewards each agent's rollouts report, per task slug (None: an errored rollout, no reward).
REWARDS: dict[str, dict[str, list[float | None]]] = {
    "agent-a": {"add-1": [1, 1, 1], "add-2": [1, 0, 1], "add-3": [1, 1, 0.5], "add-4": [0, 0, 0]},
    "agent-b": {"add-1": [1, 0, 0], "add-2": [0, 0, None], "add-3": [1, 0, 0], "add-4": [0, 0, 0]},
}
DOCKERFILE = """\
FROM {image}
WORKDIR /app
COPY env.py /app/env.py
CMD ["hud", "serve", "env.py", "--host", "0.0.0.0", "--port", "8765"]
"""


def _tarball(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _build(api: httpx.Client, files: dict[str, str]) -> dict[str, Any]:
    """One build the way `hud deploy` does it: upload slot, PUT, trigger, poll the status."""
    slot = api.post("/v2/builds/upload-url").json()
    put = httpx.put(slot["upload_url"], content=_tarball(files),
                    headers={"content-type": "application/gzip"}, timeout=60)  # fmt: skip
    assert put.status_code < 300, put.text
    body = {"source": "direct", "build_id": slot["build_id"], "name": "plain", "no_cache": False}
    trigger = api.post("/v2/builds/trigger", json=body)
    assert trigger.status_code == 200, trigger.text
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = api.get(f"/v2/builds/{slot['build_id']}/status").json()
        if status["status"] not in ("IN_PROGRESS", "PENDING"):
            return {**status, "id": slot["build_id"], "registry_id": trigger.json()["registry_id"]}
        time.sleep(0.3)
    raise AssertionError("the build did not finish")


def _hud_image() -> tuple[str | None, str]:
    """The test image with hud installed, or None and why (then only the environment and
    tasks parts of the module skip)."""
    from hud.eval.runtimes.docker import daemon_available
    from tests.platform.deploy_helpers import DOCKER_TESTS

    if not daemon_available():
        return None, "no Docker daemon (run .ci/docker-setup.sh)"
    import sys

    if str(DOCKER_TESTS) not in sys.path:
        sys.path.insert(0, str(DOCKER_TESTS))
    try:
        import images

        return images.hud_image(), ""
    except Exception as exc:
        return None, f"cannot build the test hud image: {exc}"


def _admin_setup(platform: Platform, source: str) -> str:
    """A rival team's key and an upstream serving the model ``source``, written by the library
    the `hud platform team/key/upstream` commands run (in process: a CLI process costs seconds
    on a busy machine)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from hud.platform.server import DataDir, open_database
    from hud.platform.services import IdentityService
    from hud.platform.services.gateway import GatewayService

    async def main() -> str:
        where = DataDir.at(platform.data_dir)
        db = await open_database(where, None)
        try:
            identities = IdentityService(db)
            await identities.create_team("rivals")
            key, _ = await identities.create_key(team="rivals")
            await GatewayService(db, where.path).add_upstream(
                "up-test", provider="openai_compatible", base_url="http://127.0.0.1:9/v1",
                api_key=None, models_=[source],
            )  # fmt: skip
            return key
        finally:
            await db.close()

    # a thread of its own: Playwright's sync API keeps an event loop running in this one
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    """One live platform with real data for the module."""
    image, why = _hud_image()
    base = Path(tempfile.mkdtemp(prefix="hud-webplat-"))
    platform = Platform("sqlite", base / "data").start()
    try:
        key = platform.admin_key
        assert key
        source = f"base-{uuid.uuid4().hex[:6]}"
        other = _admin_setup(platform, source)
        with platform.api(key) as api:
            taskset = api.post("/v2/tasksets", json={"name": "arith"}).json()
            good = bad = None
            if image is not None:
                env_py = (PLAIN / "env.py").read_text()
                files = {"Dockerfile": DOCKERFILE.format(image=image), "env.py": env_py}
                good = _build(api, files)
                assert good["status"] == "SUCCEEDED", good
                bad = _build(api, {"env.py": env_py})  # no Dockerfile: a failed version 2
                assert bad["status"] == "FAILED", bad
                rows = [
                    {"name": f"add-{i}", "env": {"name": "plain"}, "task_id": "add",
                     "args": {"a": i, "b": 2}, "columns": {"level": "easy" if i < 3 else "hard"}}
                    for i in range(1, 5)
                ]  # fmt: skip
                body = {"taskset_id": taskset["id"], "tasks": rows}
                upload = api.post("/v2/tasks/upload", json=body)
                assert upload.status_code == 200, upload.text
            for agent, per_task in REWARDS.items():
                job = uuid.uuid4().hex
                enter = {"name": f"arith {agent}", "group": 3, "taskset_id": taskset["id"]}
                assert api.post(f"/v2/trace/job/{job}/enter", json=enter).status_code == 200
                for slug, rewards in per_task.items():
                    for reward in rewards:
                        trace = uuid.uuid4().hex
                        entry = {"job_id": job, "task_slug": slug, "model": agent}
                        api.post(f"/v2/trace/{trace}/enter", json=entry)
                        done = {"status": "error", "error": "boom"} if reward is None else {
                            "status": "completed", "reward": reward}  # fmt: skip
                        assert api.post(f"/v2/trace/{trace}/exit", json=done).status_code == 200
            # not counted: a cancelled and a running rollout of the taskset, a job of none
            counted_not = uuid.uuid4().hex
            loose = uuid.uuid4().hex
            api.post(f"/v2/trace/job/{counted_not}/enter",
                     json={"name": "partial", "taskset_id": taskset["id"]})  # fmt: skip
            api.post(f"/v2/trace/job/{loose}/enter", json={"name": "no taskset"})
            left_out = [(counted_not, "add-1", "cancelled"), (counted_not, "add-2", None),
                        (loose, "add-3", "completed")]  # fmt: skip
            for job, slug, status in left_out:
                trace = uuid.uuid4().hex
                api.post(f"/v2/trace/{trace}/enter",
                         json={"job_id": job, "task_slug": slug, "model": "agent-a"})  # fmt: skip
                if status:
                    api.post(f"/v2/trace/{trace}/exit", json={"status": status, "reward": 0.0})
            models = api.get("/v2/models", params={"limit": 100}).json()["items"]
            source_id = next(m["id"] for m in models if m["model_name"] == source)
            fork = api.post("/v2/models/fork", json={"source_model_id": source_id,
                                                     "name": "tuned"}).json()  # fmt: skip
            for name, parent, active in (("ckpt-0", None, False), ("ckpt-1", "ckpt-0", True),
                                         ("ckpt-1b", "ckpt-0", False)):  # fmt: skip
                body = {"name": name, "parent_id": parent, "activate": active,
                        "metrics": {"mean_reward": 0.1 * len(name)}}  # fmt: skip
                reply = api.post(f"/v2/models/{fork['id']}/checkpoints", json=body)
                assert reply.status_code == 200, reply.text
        yield {
            "platform": platform,
            "key": key,
            "other": other,
            "taskset": taskset,
            "env_id": good["registry_id"] if good else None,
            "good": good,
            "bad": bad,
            "no_env": why,
            "model": fork,
        }
    finally:
        from tests.platform.deploy_helpers import remove_platform_images

        if image is not None:
            remove_platform_images(platform)
        platform.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def signed_in(browser: Any, world: dict[str, Any]) -> Iterator[Any]:
    """A browser tab signed in through the sign-in form (a session cookie, no key kept)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(20000)
    tab.goto(world["platform"].url + "/web/tasksets")
    assert "/web/signin" in tab.url
    tab.fill("input[name=key]", world["key"])
    tab.click("button[type=submit]")
    tab.wait_for_url("**/web/tasksets")
    try:
        yield tab
    finally:
        context.close()


def expected_figures() -> dict[str, dict[str, Any]]:
    """Each agent's figures from `hud.eval.stats` on the raw rewards (errors count 0)."""
    out = {}
    for agent, per_task in REWARDS.items():
        rewards = {t: [float(r or 0.0) for r in rs] for t, rs in per_task.items()}
        flat = [r for rs in rewards.values() for r in rs]
        out[agent] = {
            "rewards": rewards,
            "mean": stats.mean_reward(rewards),
            "success": stats.success_rate(flat),
            "pass3": stats.pass_at_k(rewards, 3),
        }
    return out


def test_leaderboard_and_paired_comparison(signed_in: Any, world: dict[str, Any]) -> None:
    tab = signed_in
    tab.goto(world["platform"].url + "/web/tasksets")
    tab.click("a.taskset:text('arith')")
    tab.wait_for_selector("table.leaderboard")
    rows = tab.locator("table.leaderboard tbody tr")
    assert rows.count() == 2
    expected = expected_figures()
    a, b = expected["agent-a"], expected["agent-b"]
    assert a["mean"].value > b["mean"].value  # so agent-a ranks first
    first = [c.strip() for c in rows.nth(0).locator("td").all_inner_texts()]
    second = [c.strip() for c in rows.nth(1).locator("td").all_inner_texts()]
    assert first[1] == "agent-a" and second[1] == "agent-b"
    assert first[2] == f"{a['mean'].value:.3f} ± {a['mean'].half_width:.3f}"
    assert second[2] == f"{b['mean'].value:.3f} ± {b['mean'].half_width:.3f}"
    assert first[3].startswith(f"{100 * a['success'].value:.1f}%")  # 7 of 12
    assert f"{100 * a['success'].low:.1f}%" in first[3]
    assert second[3].startswith(f"{100 * 2 / 12:.1f}%")  # the errored rollout counts as 0
    assert first[5].startswith(f"{100 * a['pass3'][0]:.1f}%")
    assert (first[7], first[8], second[8]) == ("4", "12", "12")  # cancelled/running: not counted
    assert tab.locator("#leaderboard-plot svg circle.mean").count() == 2
    # runs over time: each job's mean reward per agent (the partial job has no finished run)
    assert tab.locator("#trend-plot svg circle.trend").count() == 2
    job_row = tab.locator("section#leaderboard table.jobs tbody tr", has_text="arith agent-a")
    assert job_row.locator("td").all_inner_texts()[2:] == ["agent-a", "12", f"{7.5 / 12:.3f}"]

    tab.select_option("select[name=a]", "agent-b")
    tab.select_option("select[name=b]", "agent-a")
    tab.click("#compare button[type=submit]")
    tab.wait_for_url("**a=agent-b**")
    cards = tab.locator("#compare .cards").inner_text()
    paired = stats.paired(b["rewards"], a["rewards"])
    assert paired is not None
    assert (paired.wins, paired.ties, paired.losses) == (0, 1, 3)
    assert "0 / 1 / 3" in cards
    assert f"{paired.difference.value:+.3f}" in cards
    assert f"{paired.sign_p:.3f}" in cards  # 0.250


def test_tasks_environment_and_build_log(signed_in: Any, world: dict[str, Any]) -> None:
    if world["env_id"] is None:
        pytest.skip(world["no_env"])
    tab = signed_in
    tab.goto(f"{world['platform'].url}/web/tasksets/{world['taskset']['id']}")
    tab.click("nav.tabs a:text('Tasks')")
    tab.wait_for_selector("table.tasks")
    text = tab.locator("table.tasks").inner_text()
    for i in range(1, 5):
        assert f"add-{i}" in text
    assert "hard" in text and '"hard"' not in text  # a custom column, as text
    tab.locator("table.tasks a.colval:text('hard')").first.click()  # filter on its value
    tab.wait_for_url("**val=hard**")
    shown = tab.locator("table.tasks tbody tr").all_inner_texts()
    assert [row.split()[0] for row in shown] == ["add-3", "add-4"]
    tab.click("p.filter a:text('show all')")
    tab.wait_for_selector("table.tasks tbody tr:nth-child(4)")
    tab.locator("table.tasks a:text('plain')").first.click()
    tab.wait_for_selector("table.builds")
    assert world["env_id"] in tab.locator("dl.kv").inner_text()
    assert "add" in tab.locator("table.templates").inner_text()
    builds = tab.locator("table.builds tbody tr")
    assert builds.count() == 2
    assert "FAILED" in builds.nth(0).inner_text() and "Dockerfile" in builds.nth(0).inner_text()
    assert "SUCCEEDED" in builds.nth(1).inner_text()
    # the newest build's log shows first; the other one's is a click away
    assert "Build failed" in tab.locator("pre.log").inner_text()
    builds.nth(1).locator("a:text('log')").click()
    tab.wait_for_url(f"**build={world['good']['id']}**")
    assert "Build succeeded" in tab.locator("pre.log").inner_text()


def test_models_and_checkpoint_tree(signed_in: Any, world: dict[str, Any]) -> None:
    tab = signed_in
    tab.goto(world["platform"].url + "/web/models")
    tab.click("a.model:text('tuned')")
    tab.wait_for_selector("nav.tabs")
    assert "ckpt-1" in tab.locator("dl.kv").inner_text()  # the head
    tab.click("nav.tabs a:text('Checkpoints')")
    tab.wait_for_url("**tab=checkpoints")
    root = tab.locator("ul.tree > li.checkpoint")  # the fork's base, then what we added
    assert root.count() == 1
    first = root.locator("> ul > li.checkpoint")
    assert first.count() == 1 and first.locator("> span.mono").inner_text() == "ckpt-0"
    assert first.locator("> ul > li.checkpoint").count() == 2
    head = tab.locator("li.checkpoint:has(> .badge.ok)")
    assert head.count() == 1 and head.locator("> span.mono").inner_text() == "ckpt-1"


def test_create_and_revoke_a_key(signed_in: Any, world: dict[str, Any]) -> None:
    tab = signed_in
    platform: Platform = world["platform"]
    tab.goto(platform.url + "/web/keys")
    tab.fill("input[name=name]", "from-the-page")
    tab.click("button:text('Create key')")
    new_key = tab.locator("#new-key pre.key").inner_text().strip()
    assert new_key.startswith("hud_")
    with platform.api(new_key) as api:
        assert api.get("/v2/auth/me").status_code == 200
    tab.goto(platform.url + "/web/keys")  # shown once: never again
    assert new_key not in tab.content()
    row = tab.locator("table.keys tbody tr", has_text="from-the-page")
    row.locator("button:text('Revoke')").click()
    tab.wait_for_url("**revoked=**")
    assert "revoked" in tab.locator("table.keys tbody tr", has_text="from-the-page").inner_text()
    with platform.api(new_key) as api:
        assert api.get("/v2/auth/me").status_code == 401
    assert new_key not in platform.log.read_text()


def test_device_login_approved_without_javascript(browser: Any, world: dict[str, Any]) -> None:
    from tests.platform.test_login import finish, start_login

    platform: Platform = world["platform"]
    proc, page_url, code, home = start_login(platform)
    context = browser.new_context(java_script_enabled=False)
    try:
        tab = context.new_page()
        tab.set_default_timeout(20000)
        tab.goto(page_url)
        assert code in tab.locator(".device .code").inner_text()
        assert tab.locator("input[name=api_key]").count() == 1  # not signed in: asks for a key
        # sign in through the sign-in form (no JavaScript either), back to the device page
        path = page_url.split(platform.url, 1)[1]
        tab.goto(f"{platform.url}/web/signin?next={quote(path, safe='')}")
        tab.fill("input[name=key]", world["key"])
        tab.click("button[type=submit]")
        tab.wait_for_selector(".device .code")
        assert tab.locator("input[name=api_key]").count() == 0  # the session signs it
        tab.click("button:text('Approve')")
        tab.wait_for_selector("h1:text('Device approved')")
        rc, out, err = finish(proc)
    finally:
        context.close()
        proc.kill()
    assert rc == 0, (out, err)
    assert (Path(str(home)) / ".hud" / ".env").read_text().count("HUD_API_KEY=") == 1


def test_another_team_gets_404_pages(world: dict[str, Any]) -> None:
    platform: Platform = world["platform"]
    paths = [
        f"/web/tasksets/{world['taskset']['id']}",
        f"/web/tasksets/{world['taskset']['id']}?tab=tasks",
        f"/web/models/{world['model']['id']}",
        f"/web/models/{world['model']['id']}?tab=checkpoints",
        f"/web/tasksets/{uuid.uuid4()}",
    ]
    if world["env_id"]:
        paths.append(f"/web/environments/{world['env_id']}")
        paths.append(f"/web/environments/{world['env_id']}?build={world['good']['id']}")
    with platform.api(world["other"]) as rival, platform.api(world["key"]) as owner:
        for path in paths:
            reply = rival.get(path)
            assert reply.status_code == 404, path
            assert "another team" in reply.text
        for path in ("/web/tasksets", "/web/environments"):
            listed = rival.get(path)
            assert listed.status_code == 200 and "arith" not in listed.text
            assert "plain" not in listed.text.split("<main", 1)[1]
        mine = owner.get("/web/keys").text
        key_id = mine.split("/keys/", 1)[1].split("/revoke", 1)[0]
        assert rival.post(f"/web/keys/{key_id}/revoke").status_code == 404
        assert owner.get("/v2/auth/me").status_code == 200


def test_a_running_build_page_refreshes_itself() -> None:
    from hud.platform.web.kit import Ctx
    from hud.platform.web.platform_pages import environment_page

    env = {"id": str(uuid.uuid4()), "name": "plain", "latest_build": None}
    build = {"id": str(uuid.uuid4()), "version": 3, "status": "IN_PROGRESS"}
    log = [(1_700_000_000_000, "Step 1/4 : FROM <base>")]
    running = environment_page(
        Ctx(), env, [build], total=1, offset=0, limit=50, shown=build, log=log, log_cut=False
    )
    assert 'data-live="3"' in running and "Step 1/4 : FROM &lt;base&gt;" in running
    done = environment_page(
        Ctx(), env, [{**build, "status": "SUCCEEDED"}], total=1, offset=0, limit=50,
        shown={**build, "status": "SUCCEEDED"}, log=log, log_cut=False,
    )  # fmt: skip
    assert "data-live" not in done
