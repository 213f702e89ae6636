"""Runtime sessions (`--runtime hud`, spec platform.md §7) against a live platform: the scaffold
deployed with a workspace (ssh shell) task, run from a platform taskset by the official 0.6.21
CLI and by ours with an agent whose model is a local fake provider behind the platform's
gateway; rewards equal a local `--runtime docker` run, the shell tool works through the tunnel,
and no session container is left. The session API itself: raw bytes through the tunnel,
DELETE removes the container, a session whose client vanished is reaped."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.fakes import Call, FakeProvider, Recorded, Reply
from tests.platform.deploy_helpers import (
    cli_env,
    deploy,
    platform_label,
    python_base,
    remove_platform_images,
    scaffold,
    team_key,
)
from tests.platform.gateway_helpers import add_upstream, solve_with_shell, unique
from tests.platform.helpers import (
    HAVE_EXTRA,
    HAVE_PEER,
    PEER_HUD,
    Platform,
    make_home,
    requires_extra,
    run_cli,
)

pytestmark = [requires_extra]

WORKSPACE_TEMPLATE = '''

import tempfile as _tempfile
from pathlib import Path as _Path

_ROOT = _Path(_tempfile.mkdtemp(prefix="hud-ws-"))
ws = env.workspace(_ROOT, name="shell")


@env.template()
async def mark(name: str):
    """The agent writes <name>.txt in its workspace."""
    yield f"write {name}.txt"
    yield 1.0 if (ws.root / f"{name}.txt").is_file() else 0.0
'''

ROWS = [
    {"env": "demo_env", "id": "mark", "args": {"name": "alpha"}, "slug": "mark-alpha"},
    {"env": "demo_env", "id": "count", "args": {"sentence": "banana", "letter": "a"},
     "slug": "count-a"},
]  # fmt: skip


def session_containers(platform: Platform) -> list[str]:
    """Containers of the images this platform built (they inherit the image's label): the
    platform's sessions and its workers' rollouts."""
    from hud.eval.runtimes.docker import docker_client
    from hud.platform.services.builds import IMAGE_LABEL

    label = f"{IMAGE_LABEL}={platform_label(platform)}"
    return [c.name for c in docker_client().containers.list(all=True, filters={"label": label})]


def slow_or_solve(request: Recorded) -> Reply:
    """`solve_with_shell`, except that a model named ``*-slow-*`` runs ``sleep 300``."""
    reply = solve_with_shell(request)
    if "-slow-" not in json.dumps(request.body) or not reply.calls:
        return reply
    call = reply.calls[0]
    args = (
        {"commands": ["sleep 300"]} if "commands" in (call.args or {}) else {"command": "sleep 300"}
    )
    return Reply(calls=[Call(call.name, args)])


#: Seconds without an open tunnel after which the test platform reaps a session.
IDLE = 5


@pytest.fixture(scope="module")
def rt_platform() -> Iterator[Platform]:
    if not HAVE_EXTRA:
        pytest.skip("the platform extra is not installed (pip install -e '.[platform]')")
    base = Path(tempfile.mkdtemp(prefix="hud-platform-rt-"))
    platform = Platform("sqlite", base / "data", extra_args=("--session-idle", str(IDLE)))
    platform.start()
    yield platform
    platform.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(handler=slow_or_solve) as provider:
        yield provider


@pytest.fixture(scope="module")
def deployed(rt_platform: Platform, fake: FakeProvider) -> Iterator[dict[str, Any]]:
    python_base()
    platform = rt_platform
    work = Path(tempfile.mkdtemp(prefix="hud-rt-"))
    key = team_key(platform)
    project = scaffold(work, "demo_env")
    with open(project / "env.py", "a") as fh:
        fh.write(WORKSPACE_TEMPLATE)
    home = make_home()
    proc = deploy(platform, key, home, project, ours=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    (project / "rows.json").write_text(json.dumps(ROWS))
    env = cli_env(platform, key, home)
    synced = run_cli(["sync", "tasks", "rt-set", "rows.json", "-y"], env, cwd=project, ours=True)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    model, slow = unique("rt-model"), unique("rt-slow")
    add_upstream(platform, "openai_compatible", fake.url + "/v1", model, slow, key="sk-up")
    yield {"key": key, "project": project, "model": model, "slow": slow, "env": env}
    remove_platform_images(platform)
    shutil.rmtree(work, ignore_errors=True)


def _eval(deployed: dict[str, Any], runtime: str | None, *, ours: bool) -> dict[str, float]:
    argv = ["eval", "rt-set", "openai_compatible", "--gateway", "--model", deployed["model"],
            "--all", "--yes", "--json"]  # fmt: skip
    if runtime is not None:  # none: a platform taskset runs hosted
        argv += ["--runtime", runtime]
    proc = run_cli(argv, deployed["env"], cwd=deployed["project"], timeout=600, ours=ours)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{") :])
    rewards = {r["slug"]: r["reward"] for r in report["runs"]}
    if any(v != 1.0 for v in rewards.values()):
        print(runtime, ours, json.dumps(report["runs"])[:3000], proc.stderr[-3000:])
    return rewards


@pytest.fixture(scope="module")
def local_rewards(deployed: dict[str, Any]) -> dict[str, float]:
    rewards = _eval(deployed, "docker", ours=True)
    assert rewards["mark-alpha"] == 1.0  # the shell tool wrote the file
    return rewards


@pytest.mark.parametrize("placement", ["hud", "hosted"])
@pytest.mark.parametrize("cli", ["ours", "official"])
def test_platform_placements_match_a_local_run(
    cli: str,
    placement: str,
    rt_platform: Platform,
    deployed: dict[str, Any],
    local_rewards: dict[str, float],
) -> None:
    if cli == "official" and not HAVE_PEER:
        pytest.skip(f"official hud not installed at {PEER_HUD} (make peer)")
    rewards = _eval(deployed, "hud" if placement == "hud" else None, ours=cli == "ours")
    assert rewards == local_rewards
    deadline = time.monotonic() + 30
    while session_containers(rt_platform) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert session_containers(rt_platform) == []


def _hello_through_tunnel(platform: Platform, key: str, session_id: str) -> dict[str, Any]:
    import websockets

    async def main() -> dict[str, Any]:
        url = platform.url.replace("http://", "ws://") + f"/runtime/tunnels/{session_id}"
        deadline = time.monotonic() + 120
        while True:
            try:
                async with websockets.connect(
                    url, additional_headers={"Authorization": f"Bearer {key}"}
                ) as ws:
                    await ws.send(b'{"jsonrpc":"2.0","id":1,"method":"hello","params":{}}\n')
                    data = b""
                    while not data.endswith(b"\n"):
                        data += await asyncio.wait_for(ws.recv(), 30)  # type: ignore[operator]
                    return json.loads(data)
            except (OSError, websockets.ConnectionClosed, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    return asyncio.run(main())


def test_session_api_tunnel_delete_and_reap(
    rt_platform: Platform, deployed: dict[str, Any]
) -> None:
    key = deployed["key"]
    with rt_platform.api(key) as api:
        missing = api.post("/runtime/sessions", json={"environment": "nope"})
        assert missing.status_code == 404, missing.text
        made = api.post("/runtime/sessions", json={"environment": "demo_env", "trace_id": "x"})
        assert made.status_code == 200, made.text
        sid = made.json()["id"]
        other = rt_platform.api(team_key(rt_platform))
        assert other.delete(f"/runtime/sessions/{sid}").status_code == 404  # another team's
        other.close()
        hello = _hello_through_tunnel(rt_platform, key, sid)
        assert "result" in hello, hello
        assert session_containers(rt_platform)
        gone = api.delete(f"/runtime/sessions/{sid}")
        assert gone.status_code == 200, gone.text
        assert api.get(f"/runtime/sessions/{sid}").status_code == 404
        assert session_containers(rt_platform) == []

        # a client that vanished: its tunnel closed, nobody deletes the session
        made = api.post("/runtime/sessions", json={"environment": "demo_env"})
        assert made.status_code == 200, made.text
        sid = made.json()["id"]
        _hello_through_tunnel(rt_platform, key, sid)  # then the WebSocket closes
        deadline = time.monotonic() + IDLE + 60
        while api.get(f"/runtime/sessions/{sid}").status_code == 200:
            assert time.monotonic() < deadline, "the idle session was not reaped"
            time.sleep(0.5)
        while session_containers(rt_platform) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert session_containers(rt_platform) == []


def _job_traces(platform: Platform, key: str) -> dict[str, list[dict[str, Any]]]:
    with platform.api(key) as api:
        jobs = api.get("/v2/jobs", params={"limit": 100}).json()["items"]
        return {
            j["id"]: api.get(f"/v2/jobs/{j['id']}/traces", params={"limit": 100}).json()["items"]
            for j in jobs
        }


def test_cancel_stops_hosted_rollouts_and_removes_containers(
    rt_platform: Platform, deployed: dict[str, Any]
) -> None:
    import subprocess
    import sys

    from tests.platform.helpers import REPO

    key = deployed["key"]
    before = set(_job_traces(rt_platform, key))
    argv = [sys.executable, "-m", "hud", "eval", "rt-set", "openai_compatible", "--gateway",
            "--model", deployed["slow"], "--task-ids", "mark-alpha", "--yes"]  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=deployed["project"], env={**deployed["env"], "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        job_id = None
        while time.monotonic() < deadline:  # running, its container up, the agent sleeping
            fresh = {j: t for j, t in _job_traces(rt_platform, key).items() if j not in before}
            running = [j for j, t in fresh.items() if any(x["status"] == "running" for x in t)]
            if running and session_containers(rt_platform):
                job_id = running[0]
                break
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.5)
        assert job_id is not None
        time.sleep(3)  # the agent is inside its `sleep 300`
        cancelled = run_cli(["cancel", job_id, "--yes"], deployed["env"], cwd=deployed["project"],
                            ours=True)  # fmt: skip
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        deadline = time.monotonic() + 60
        while session_containers(rt_platform) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session_containers(rt_platform) == []
        statuses = [t["status"] for t in _job_traces(rt_platform, key)[job_id]]
        assert statuses == ["cancelled"]
        proc.wait(timeout=60)  # the client saw the cancellation on its next poll
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
