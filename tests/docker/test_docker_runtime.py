"""`DockerRuntime`: containers and Compose projects per rollout, tokens, limits, readable errors,
the scaffold's Dockerfile.hud, and no container left behind (SIGINT, SIGKILL, dead containers)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import labelled_containers, labelled_networks

from hud import Task, Taskset
from hud.agents.base import Agent
from hud.agents.offline import OracleAgent
from hud.clients import connect
from hud.clients.client import HudClient
from hud.eval.runtimes.docker import (
    OWNER_LABEL,
    DockerError,
    DockerRuntime,
    build_image,
    docker_client,
    image_exists,
    labels,
    owner_id,
    reap,
)
from hud.protocol import HudProtocolError
from tests.conftest import hud_env

BOXENV = Path(__file__).resolve().parent / "envs" / "boxenv"


@pytest.fixture(scope="module")
def box_image(hud_image: str) -> str:
    tag = f"hud-test/boxenv:{hud_image.split(':')[-1]}"
    if not image_exists(tag):
        build_image(BOXENV, tag, buildargs={"HUD_IMAGE": hud_image})
    return tag


@pytest.fixture(scope="module")
def dying_image(base_image: str) -> str:
    tag = "hud-test/dies-early:1"
    if not image_exists(tag):
        import tempfile

        with tempfile.TemporaryDirectory() as ctx:
            Path(ctx, "Dockerfile").write_text(
                f'FROM {base_image}\nCMD ["sh", "-c", "echo boom-before-serving; exit 3"]\n'
            )
            build_image(ctx, tag)
    return tag


def shout(text: str, **extra: Any) -> Task:
    task = Task(env="boxenv", id="shout", args={"text": text}, **extra)
    task._source = str(BOXENV / "env.py")
    return task


async def test_rollouts_in_fresh_containers(box_image: str) -> None:
    tasks = Taskset("box", [shout(w) for w in ("a", "b", "c", "d", "e", "f")])
    runtime = DockerRuntime(box_image)
    job = await tasks.run(OracleAgent(), runtime=runtime, max_concurrent=3)
    assert [r.reward for r in job.runs] == [1.0] * 6
    assert len({r.runtime for r in job.runs}) == 6  # one container (port) per rollout
    assert not labelled_containers(owner_id())


async def test_token_and_loopback_publishing(box_image: str) -> None:
    runtime = DockerRuntime(box_image)
    async with runtime(shout("x")) as rt:
        token = rt.params["token"]
        assert token and rt.url.startswith("tcp://127.0.0.1:")
        info = docker_client().api.inspect_container(rt.params["container"])
        env = info["Config"]["Env"]
        assert f"HUD_CONTROL_TOKEN={token}" in env
        bindings = info["HostConfig"]["PortBindings"]["8765/tcp"]
        assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
        async with connect(rt) as client:  # our client presents the token
            assert (await client.start("shout", {"text": "hi"}))["prompt"] == "Shout this: hi"
        anonymous = HudClient(rt.url)
        await anonymous.connect()
        with pytest.raises(HudProtocolError, match="unauthorized"):
            await anonymous.hello()
        await anonymous.close()


async def test_token_opt_out(box_image: str) -> None:
    runtime = DockerRuntime(box_image, token=False, prefork=0)
    async with runtime(shout("x")) as rt:
        assert "token" not in rt.params
        async with connect(rt.url) as client:
            assert (await client.start("shout", {"text": "y"}))["prompt"].endswith("y")


async def test_row_config_overrides_and_limits(box_image: str) -> None:
    runtime = DockerRuntime("no-such-image:never")
    row = shout(
        "z",
        runtime_config={"image": box_image, "resources": {"cpu": 0.5, "memory_mb": 256}},
    )
    async with runtime(row) as rt:
        host = docker_client().api.inspect_container(rt.params["container"])["HostConfig"]
        assert host["NanoCpus"] == 500_000_000
        assert host["Memory"] == 256 * 1024 * 1024


async def test_run_timeout_removes_the_container(box_image: str) -> None:
    row = shout("t", runtime_config={"image": box_image, "limits": {"run_timeout_s": 2}})
    async with DockerRuntime()(row) as rt:
        name = rt.params["container"]
        for _ in range(100):
            await asyncio.sleep(0.1)
            if not [c for c in labelled_containers() if c["Id"].startswith(name) or
                    f"/{name}" in c["Names"]]:  # fmt: skip
                break
        else:
            pytest.fail("run_timeout_s did not remove the container")


async def test_missing_image_is_readable() -> None:
    with pytest.raises(DockerError, match="not available locally"):
        async with DockerRuntime("hud-test/does-not-exist:nope")(shout("x")):
            pass


async def test_early_exit_shows_logs(dying_image: str) -> None:
    with pytest.raises(DockerError) as info:
        async with DockerRuntime(dying_image)(shout("x")):
            pass
    text = str(info.value)
    assert "exit code 3" in text and "boom-before-serving" in text
    assert not labelled_containers(owner_id())


async def test_requires_image_or_compose() -> None:
    with pytest.raises(
        ValueError, match=r"requires runtime_config.image or runtime_config.compose"
    ):
        async with DockerRuntime()(shout("x")):
            pass


def test_daemon_down_is_readable(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import asyncio
        from hud import Task
        from hud.eval.runtimes.docker import DockerRuntime, DockerError
        async def main():
            try:
                async with DockerRuntime("x")(Task(env="e", id="t")):
                    pass
            except DockerError as exc:
                print("ERR", exc)
        asyncio.run(main())
        """
    )
    env = {**hud_env(tmp_path), "DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert "ERR Docker daemon is not running or not reachable" in out.stdout, out.stderr


async def test_compose_project_with_main(box_image: str, base_image: str, tmp_path: Path) -> None:
    doc = {
        "services": {
            "main": {"image": box_image, "depends_on": ["side"]},
            "side": {"image": base_image, "command": ["sleep", "infinity"]},
        }
    }
    path = tmp_path / "compose.json"
    path.write_text(json.dumps(doc))
    row = Task(env="boxenv", id="where", runtime_config={"compose": {"document": str(path)}})
    row._source = str(BOXENV / "env.py")
    job = await Taskset("c", [row]).run(OracleAgent(), runtime=DockerRuntime())
    run = job.runs[0]
    assert run.reward == 1.0, run.trace
    assert not labelled_containers(owner_id())
    assert not labelled_networks()


async def test_compose_without_main_is_readable(base_image: str, tmp_path: Path) -> None:
    path = tmp_path / "compose.json"
    path.write_text(json.dumps({"services": {"web": {"image": base_image}}}))
    row = Task(env="boxenv", id="where", runtime_config={"compose": {"document": str(path)}})
    with pytest.raises(DockerError, match="no service 'main'"):
        async with DockerRuntime()(row):
            pass


def _box_source(tmp_path: Path, box_image: str, rows: list[dict[str, Any]]) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "env.py").write_text((BOXENV / "env.py").read_text())
    for row in rows:
        row.setdefault("runtime_config", {"image": box_image})
    (src / "tasks.json").write_text(json.dumps(rows))
    return src


def test_rows_with_image_run_in_containers(box_image: str, tmp_path: Path) -> None:
    src = _box_source(
        tmp_path,
        box_image,
        [{"env": "boxenv", "id": "where", "slug": f"w{i}"} for i in range(3)],
    )
    out = subprocess.run(
        [sys.executable, "-m", "hud", "eval", "tasks.json", "oracle", "--all", "--yes", "--json"],
        cwd=src,
        env=hud_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    assert [r["reward"] for r in data["runs"]] == [1.0, 1.0, 1.0]


def test_scaffold_dockerfile_hud_builds_and_serves(python_image: str, tmp_path: Path) -> None:
    env = hud_env(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "hud", "init", "demo"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    demo = tmp_path / "demo"
    out = subprocess.run(
        [sys.executable, "-m", "hud", "eval", "tasks.py", "oracle", "--all", "--runtime",
         "docker", "--yes", "--json"],
        cwd=demo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout)
    assert [r["reward"] for r in data["runs"]] == [1.0, 1.0]
    # the image runs this source tree's hud (a wheel built from it), not a release
    images = docker_client().images.list(name="hud-local/demo")
    assert images
    version = subprocess.run(
        ["docker", "run", "--rm", images[0].tags[0], "python", "-c",
         "import hud, hud.eval.runtimes.docker; print(hud.__version__)"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    from hud.version import __version__

    assert version.stdout.strip() == __version__, version.stderr


def _wait_for_containers(owner: str, timeout: float = 120) -> list[dict[str, Any]]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = labelled_containers(owner)
        if found:
            return found
        time.sleep(0.2)
    return []


def test_sigint_mid_eval_leaves_no_container(box_image: str, tmp_path: Path) -> None:
    rows = [{"env": "boxenv", "id": "slow", "slug": f"s{i}", "args": {"seconds": 120}}
            for i in range(3)]  # fmt: skip
    src = _box_source(tmp_path, box_image, rows)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hud", "eval", "tasks.json", "oracle", "--all", "--yes"],
        cwd=src,
        env=hud_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    owner = owner_id().rsplit(":", 1)[0] + f":{proc.pid}"
    try:
        assert _wait_for_containers(owner), "no container started"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not labelled_containers(owner), "containers outlived the interrupted eval"


def test_sigkill_leftovers_are_removed_by_the_watchdog(box_image: str, tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import asyncio, sys
        from hud import Task
        from hud.eval.runtimes.docker import DockerRuntime
        async def main():
            async with DockerRuntime({box_image!r})(Task(env="boxenv", id="shout")):
                print("up", flush=True)
                await asyncio.sleep(600)
        asyncio.run(main())
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=hud_env(tmp_path),
        stdout=subprocess.PIPE,
        text=True,
    )
    owner = owner_id().rsplit(":", 1)[0] + f":{proc.pid}"
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        assert labelled_containers(owner)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 60
    while labelled_containers(owner) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not labelled_containers(owner), "the watchdog did not remove the killed run's box"


def test_reap_removes_containers_of_dead_owners(base_image: str) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    owner = owner_id().rsplit(":", 1)[0] + f":{dead.pid}"
    docker_client().api.create_container(
        base_image, ["true"], labels={**labels("container"), OWNER_LABEL: owner}
    )
    assert labelled_containers(owner)
    assert reap() >= 1  # the next start removes what a dead process left
    assert not labelled_containers(owner)


async def test_container_dying_mid_rollout_is_cleaned_up(box_image: str) -> None:
    seen: dict[str, Any] = {}
    runtime = DockerRuntime(box_image, prefork=0)

    class Killer(Agent):
        name = "killer"

        async def __call__(self, run: Any) -> None:
            docker_client().api.kill(seen["container"])

    class Spy:
        def __call__(self, task: Task) -> Any:
            inner = runtime(task)

            class Ctx:
                async def __aenter__(self) -> Any:
                    rt = await inner.__aenter__()
                    seen["container"] = rt.params["container"]
                    return rt

                async def __aexit__(self, *exc: Any) -> Any:
                    return await inner.__aexit__(*exc)

            return Ctx()

    job = await Taskset("k", [shout("q")]).run(Killer(), runtime=Spy())
    run = job.runs[0]
    assert run.trace.status == "error" and run.reward == 0.0
    assert not labelled_containers(owner_id())


async def test_documented_docker_build_of_the_scaffold(python_image: str, tmp_path: Path) -> None:
    """The steps written in Dockerfile.hud: `docker build` installs the wheel `hud init` wrote
    (distribution "openhud": the open hud, not the official package)."""
    from hud.eval.sources import load_source

    env = hud_env(tmp_path)
    subprocess.run(
        [sys.executable, "-m", "hud", "init", "manual"],
        cwd=tmp_path, env=env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    project = tmp_path / "manual"
    tag = f"hud-test/manual:{int(time.time())}"
    built = subprocess.run(
        ["docker", "build", "-q", "-f", "Dockerfile.hud", "-t", tag, "."],
        cwd=project, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    try:
        source = load_source(project / "tasks.py")
        job = await source.taskset.run(OracleAgent(), runtime=DockerRuntime(tag))
        assert [r.reward for r in job.runs] == [1.0, 1.0]
    finally:
        docker_client().images.remove(tag, force=True)
