"""Runtime sessions (`--runtime hud`, spec platform.md §7) against a live platform: the scaffold
deployed with a workspace (ssh shell) task, run from a platform taskset by the official 0.6.21
CLI and by ours with an agent whose model is a local fake provider behind the platform's
gateway; rewards equal a local `--runtime docker` run, the shell tool works through the tunnel,
and no session container is left. The session API itself: raw bytes through the tunnel,
DELETE removes the container, a session whose client vanished is reaped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
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
from tests.procfs import cmdline, ppid

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
    # one listing call (no inspect per container: one may be removed meanwhile)
    return [c["Id"] for c in docker_client().api.containers(all=True, filters={"label": label})]


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
TERMINAL = ("completed", "error", "cancelled")
#: Primed workers (a container started ahead of the next rollout) wait unused 1 s only.
RT_ARGS = ("--session-idle", str(IDLE), "--prime-idle", "1")


@pytest.fixture(scope="module")
def rt_platform() -> Iterator[Platform]:
    if not HAVE_EXTRA:
        pytest.skip("the platform extra is not installed (pip install -e '.[platform]')")
    base = Path(tempfile.mkdtemp(prefix="hud-platform-rt-"))
    platform = Platform("sqlite", base / "data", extra_args=RT_ARGS)
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
    before = set(_job_traces(rt_platform, deployed["key"]))
    rewards = _eval(deployed, "hud" if placement == "hud" else None, ours=cli == "ours")
    assert rewards == local_rewards
    # every trace carries its row's group (spec §5/§6), so the job shows its groups
    [traces] = [t for j, t in _job_traces(rt_platform, deployed["key"]).items() if j not in before]
    groups = {t["task_slug"]: t["group_id"] for t in traces}
    assert all(groups.values()) and len(set(groups.values())) == len(ROWS), traces
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
    other = rt_platform.api(team_key(rt_platform))  # before: the session may idle IDLE s only
    with rt_platform.api(key) as api:
        missing = api.post("/runtime/sessions", json={"environment": "nope"})
        assert missing.status_code == 404, missing.text
        made = api.post("/runtime/sessions", json={"environment": "demo_env", "trace_id": "x"})
        assert made.status_code == 200, made.text
        sid = made.json()["id"]
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
        [trace] = _job_traces(rt_platform, key)[job_id]
        assert trace["status"] == "cancelled"
        with rt_platform.api(key) as api:
            deadline = time.monotonic() + 30  # its worker reports, then exits (not reused)
            while not (api.get(f"/v2/trace/{trace['id']}").json()["metadata"] or {}).get(
                "worker_pid"
            ):
                assert time.monotonic() < deadline, "the cancelled worker never reported"
                time.sleep(0.2)
            pid = api.get(f"/v2/trace/{trace['id']}").json()["metadata"]["worker_pid"]
        while _alive(pid):
            assert time.monotonic() < deadline, "the cancelled worker did not exit"
            time.sleep(0.2)
        proc.wait(timeout=60)  # the client saw the cancellation on its next poll
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- back-pressure and restarts (the module's platform restarted with other limits) ---------


def _restart(platform: Platform, *args: str, sig: int | None = None, idle: int = IDLE) -> None:
    import signal

    platform.stop(sig if sig is not None else signal.SIGTERM)
    platform.extra_args = ["--session-idle", str(idle), "--prime-idle", "1", *args]
    platform.start()


def _submit(api: Any, model: str, name: str, job: str) -> Any:
    import uuid

    body = {"trace_id": str(uuid.uuid4()), "job_id": job, "env": "demo_env", "task": "mark",
            "slug": f"mark-{name}", "args": {"name": name},
            "agent": {"type": "openai_compatible", "config": {"model": model}}}  # fmt: skip
    return api.post("/v2/rollouts/submit", json=body)


def _wait_traces(api: Any, ids: list[str], until: Any, timeout: float = 300) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        got = [api.get(f"/v2/trace/{t}").json() for t in ids]
        if until(got):
            return got
        assert time.monotonic() < deadline, got
        time.sleep(0.3)


def _rollout_containers(platform: Platform) -> dict[str, str]:
    """This platform's labelled containers: io.hud.session value -> container id."""
    from hud.eval.runtimes.docker import SESSION_LABEL, docker_client

    instance = json.loads((platform.data_dir / "platform.json").read_text())["instance"]
    out = {}
    for c in docker_client().api.containers(all=True, filters={"label": SESSION_LABEL}):
        value = (c.get("Labels") or {}).get(SESSION_LABEL, "")
        if value.startswith(f"hud-platform:{instance}:"):
            out[value.rsplit(":", 1)[1] + ":" + c["Id"][:12]] = c["Id"]
    return out


def test_back_pressure_per_team_limit_and_queue_refusal(
    rt_platform: Platform, deployed: dict[str, Any]
) -> None:
    import uuid
    from datetime import datetime

    from hud.agents.factory import create_agent
    from hud.platform.client.hosted import HostedRuntime
    from hud.types.task import Task
    from hud.types.trace import Trace

    _restart(rt_platform, "--workers", "3", "--per-team", "2", "--max-queue", "3")
    key = deployed["key"]
    with rt_platform.api(key) as api:
        # five quick rollouts, three workers, at most two of one team's at once
        job = str(uuid.uuid4())
        made = [_submit(api, deployed["model"], f"q{i}", job) for i in range(5)]
        assert all(m.status_code == 200 for m in made), [m.text for m in made]
        ids = [m.json()["trace_id"] for m in made]
        done = _wait_traces(api, ids, lambda got: all(g["status"] in TERMINAL for g in got))
        assert [g["reward"] for g in done] == [1.0] * 5, done
        spans = sorted(
            (datetime.fromisoformat(g[k].replace("Z", "+00:00")), +1 if k == "start_time" else -1)
            for g in done
            for k in ("start_time", "end_time")
        )
        at_once = most = 0
        for _stamp, step in spans:
            at_once += step
            most = max(most, at_once)
        assert 1 <= most <= 2, done
        # the long poll our client uses: a finished trace at once, another team's is 404
        waited = api.get(f"/v2/rollouts/{ids[0]}/wait", params={"timeout": 30})
        assert (waited.status_code, waited.json()["status"]) == (200, "completed"), waited.text
        assert api.get(f"/v2/rollouts/{uuid.uuid4()}/wait").status_code == 404

        # two slow rollouts take the team's two slots; three wait; the sixth is refused
        job = str(uuid.uuid4())
        slow = [_submit(api, deployed["slow"], f"s{i}", job).json()["trace_id"] for i in range(2)]
        _wait_traces(api, slow, lambda got: all(g["status"] == "running" for g in got))
        waiting = [_submit(api, deployed["model"], f"w{i}", job) for i in range(3)]
        assert all(w.status_code == 200 for w in waiting), [w.text for w in waiting]
        refused = _submit(api, deployed["model"], "r", job)
        assert refused.status_code == 429, refused.text
        assert "queue is full (3 waiting)" in refused.json()["detail"]
        assert refused.headers.get("retry-after")
        stats = api.get("/v2/rollouts/stats").json()
        assert (stats["queued"], stats["running"], stats["max_queue"]) == (3, 2, 3), stats
        short = api.get(f"/v2/rollouts/{waiting[0].json()['trace_id']}/wait?timeout=0.2")
        assert short.json()["status"] == "queued", short.text  # the timeout, still queued

        # our client turns the refusal into one clear line on the rollout
        hosted = HostedRuntime(
            "openai_compatible", api_url=rt_platform.url, api_key=key, submit_wait=0
        )
        agent = create_agent(
            "openai_compatible", model=deployed["model"], config={"api_key": "sk-x"}
        )
        task = Task.model_validate({"env": "demo_env", "id": "mark", "args": {"name": "z"}})
        run = asyncio.run(hosted.run_rollout(task, agent, job_id=job, group_id=None, trace=Trace()))
        assert run.trace.status == "error"
        [line] = [s.error for s in run.trace.steps if getattr(s, "error", None)]
        assert line.startswith("submit refused (429): the rollout queue is full"), line

        cancelled = api.post("/v2/rollouts/cancel_job", json={"job_id": job})
        assert cancelled.status_code == 200, cancelled.text
        deadline = time.monotonic() + 60
        while session_containers(rt_platform) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert session_containers(rt_platform) == []


def test_sigkill_mid_job_then_restart_resumes_the_queue(
    rt_platform: Platform, deployed: dict[str, Any]
) -> None:
    import signal
    import uuid

    key = deployed["key"]
    _restart(rt_platform, "--workers", "1", idle=600)  # the session lives until the kill
    with rt_platform.api(key) as api:
        session = api.post("/runtime/sessions", json={"environment": "demo_env"})
        assert session.status_code == 200, session.text
        job = str(uuid.uuid4())
        slow = _submit(api, deployed["slow"], "slow", job).json()["trace_id"]
        _wait_traces(api, [slow], lambda got: got[0]["status"] == "running")
        queued = [_submit(api, deployed["model"], f"k{i}", job).json()["trace_id"] for i in (1, 2)]
        deadline = time.monotonic() + 120
        while not any(k.startswith(uuid.UUID(slow).hex) for k in _rollout_containers(rt_platform)):
            assert time.monotonic() < deadline, "the slow rollout's container never started"
            time.sleep(0.3)
        before = _rollout_containers(rt_platform)
        assert any(k.startswith("session:") for k in before), before

    # mid-job: one rollout running, two queued, a session open
    _restart(rt_platform, sig=signal.SIGKILL, idle=600)
    with rt_platform.api(key) as api:
        # the queued rollouts run; the running one runs again and says why
        done = _wait_traces(api, queued, lambda got: all(g["status"] in TERMINAL for g in got))
        assert [g["reward"] for g in done] == [1.0, 1.0], done
        again = _wait_traces(api, [slow], lambda got: (got[0]["metadata"] or {}).get("retried"))
        assert "restarted" in again[0]["metadata"]["retry_reason"], again
        assert api.get(f"/runtime/sessions/{session.json()['id']}").status_code == 404
        left = _rollout_containers(rt_platform)
        assert not set(before.values()) & set(left.values()), (before, left)  # removed
        cancelled = api.post("/v2/rollouts/cancel", json={"trace_id": slow})
        assert cancelled.status_code == 200, cancelled.text
        deadline = time.monotonic() + 60
        while _rollout_containers(rt_platform) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _rollout_containers(rt_platform) == {}
        while (stats := api.get("/v2/rollouts/stats").json())["running"] or stats["finishing"]:
            assert time.monotonic() < deadline, stats
            time.sleep(0.3)
        assert stats["queued"] == 0, stats


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_worker_serves_again_only_its_own_team(
    rt_platform: Platform, deployed: dict[str, Any]
) -> None:
    """A worker process that ran a team's rollout runs that team's next one (its imports and
    Docker client kept), never another team's; a stopping platform ends them all."""
    import uuid

    _restart(rt_platform, "--workers", "2", "--prime-idle", "0")
    other = team_key(rt_platform)
    work = Path(tempfile.mkdtemp(prefix="hud-rt-other-"))
    try:
        project = work / "demo_env"
        shutil.copytree(deployed["project"], project, ignore=shutil.ignore_patterns(".hud"))
        proc = deploy(rt_platform, other, make_home(), project, ours=True)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    pids: dict[str, list[int]] = {"a": [], "b": []}
    for team, key in [("a", deployed["key"]), ("b", other)] * 2:
        with rt_platform.api(key) as api:
            made = _submit(api, deployed["model"], team, str(uuid.uuid4()))
            assert made.status_code == 200, made.text
            tid = made.json()["trace_id"]
            [done] = _wait_traces(api, [tid], lambda got: got[0]["status"] in TERMINAL)
            assert done["reward"] == 1.0, done
            pids[team].append(done["metadata"]["worker_pid"])
            deadline = time.monotonic() + 60  # its worker is idle again (or gone)
            while (stats := api.get("/v2/rollouts/stats").json())["running"] or stats["finishing"]:
                assert time.monotonic() < deadline, stats
                time.sleep(0.1)
    assert pids["a"][0] == pids["a"][1], pids  # served its team again
    assert pids["b"][0] == pids["b"][1], pids
    assert not set(pids["a"]) & set(pids["b"]), pids  # never the other team
    assert all(_alive(pid) for pid in pids["a"] + pids["b"])
    rt_platform.stop()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids["a"] + pids["b"]):
        assert time.monotonic() < deadline, "a worker outlived its platform"
        time.sleep(0.1)
    assert session_containers(rt_platform) == []


# -- the worker zygote (hud.platform.workers.zygote) ------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError):
                if ppid(int(entry.name)) == pid:
                    out.append(int(entry.name))
    return out


def _zygotes(platform: Platform) -> list[int]:
    assert platform.proc is not None
    return [p for p in _children(platform.proc.pid) if "workers.zygote" in cmdline(p)]


def _run_one(api: Any, model: str, name: str) -> dict[str, Any]:
    import uuid

    made = _submit(api, model, name, str(uuid.uuid4()))
    assert made.status_code == 200, made.text
    [done] = _wait_traces(api, [made.json()["trace_id"]], lambda got: got[0]["status"] in TERMINAL)
    return done


def test_workers_are_forked_by_a_zygote_that_holds_no_key(
    rt_platform: Platform, deployed: dict[str, Any]
) -> None:
    _restart(rt_platform, "--workers", "2", "--prime-idle", "0")
    key = deployed["key"]
    assert _zygotes(rt_platform) == []  # started on first need, not with the platform
    with rt_platform.api(key) as api:
        done = _run_one(api, deployed["model"], "z1")
    assert done["reward"] == 1.0, done
    pid = done["metadata"]["worker_pid"]
    [zygote] = _zygotes(rt_platform)
    assert ppid(pid) == zygote
    environ = Path(f"/proc/{zygote}/environ").read_bytes()
    assert b"HUD_API_KEY" not in environ and key.encode() not in environ
    # one container watchdog for all the zygote's workers, none of the worker's own
    assert [p for p in _children(zygote) if "reaper --many" in cmdline(p)]
    assert not [p for p in _children(pid) if "reaper" in cmdline(p)]


def test_a_worker_killed_mid_rollout_is_lost_its_container_removed_and_cancel_is_quick(
    rt_platform: Platform, deployed: dict[str, Any]
) -> None:
    import signal
    import uuid

    from hud.eval.runtimes.docker import OWNER_LABEL, docker_client

    _restart(rt_platform, "--workers", "2", "--prime-idle", "0")
    with rt_platform.api(deployed["key"]) as api:
        slow = _submit(api, deployed["slow"], "killed", str(uuid.uuid4())).json()["trace_id"]
        _wait_traces(api, [slow], lambda got: got[0]["status"] == "running")

        def container() -> str | None:
            found = [
                v for k, v in _rollout_containers(rt_platform).items()
                if k.startswith(uuid.UUID(slow).hex)
            ]  # fmt: skip
            return found[0] if found else None

        deadline = time.monotonic() + 120
        while (first := container()) is None:
            assert time.monotonic() < deadline, "the slow rollout's container never started"
            time.sleep(0.3)
        time.sleep(2)  # the agent is inside its `sleep 300`
        labels = docker_client().api.inspect_container(first)["Config"]["Labels"]
        pid = int(labels[OWNER_LABEL].rsplit(":", 1)[1])
        assert ppid(pid) in _zygotes(rt_platform)
        os.kill(pid, signal.SIGKILL)
        # lost: the killed worker's container is removed, and the rollout runs again
        deadline = time.monotonic() + 60
        while first in _rollout_containers(rt_platform).values():
            assert time.monotonic() < deadline, "the killed worker's container was not removed"
            time.sleep(0.3)
        while (second := container()) is None or second == first:
            assert time.monotonic() < deadline, "the retried rollout's container never started"
            time.sleep(0.3)
        time.sleep(2)
        started = time.monotonic()
        cancelled = api.post("/v2/rollouts/cancel", json={"trace_id": slow})
        assert cancelled.status_code == 200, cancelled.text
        while (
            _rollout_containers(rt_platform)
            or api.get(f"/v2/trace/{slow}").json()["status"] != "cancelled"
        ):
            assert time.monotonic() - started < 5, "the cancel took more than 5 s"
            time.sleep(0.1)
        # the trace says why it ran again (reported by its second worker as it exited)
        again = _wait_traces(api, [slow], lambda got: (got[0]["metadata"] or {}).get("retried"))
        assert "killed by signal 9" in again[0]["metadata"]["retry_reason"], again


def test_a_killed_zygote_is_started_again(rt_platform: Platform, deployed: dict[str, Any]) -> None:
    import signal

    _restart(rt_platform, "--workers", "2", "--prime-idle", "0")
    with rt_platform.api(deployed["key"]) as api:
        first = _run_one(api, deployed["model"], "z2")
        assert first["reward"] == 1.0, first
        [zygote] = _zygotes(rt_platform)
        idle = first["metadata"]["worker_pid"]
        os.kill(zygote, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(idle) and "workers.zygote" in cmdline(idle):  # it dies with its zygote
            assert time.monotonic() < deadline, "a worker outlived its zygote"
            time.sleep(0.1)
        again = _run_one(api, deployed["model"], "z3")
        assert again["reward"] == 1.0, again
        [new] = _zygotes(rt_platform)
        assert new != zygote and ppid(again["metadata"]["worker_pid"]) == new
