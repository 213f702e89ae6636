"""Hosted rollouts on a real two-node Ray cluster on loopback (`hud platform serve --ray`): a
head and a worker node started as separate `ray start` processes, 40 hosted rollouts of a
deployed environment spread over both, and the worker node killed in the middle: every rollout
ends graded (those lost with the node run again, and their traces say so), none is lost or
counted twice, and no container is left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents.fakes import FakeProvider, Reply
from tests.platform.deploy_helpers import (
    cli_env,
    deploy,
    platform_label,
    python_base,
    remove_platform_images,
    scaffold,
    team_key,
)
from tests.platform.gateway_helpers import add_upstream, unique
from tests.platform.helpers import (
    HAVE_EXTRA,
    Platform,
    free_port,
    make_home,
    requires_extra,
    run_cli,
)

pytestmark = [requires_extra]

ROLLOUTS = 40
RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")


def _need_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.skip("ray is not installed (pip install -e '.[ray]')")
    if RAY is None:
        pytest.skip("the ray command is not on PATH")


def _containers(platform: Platform) -> list[str]:
    from hud.eval.runtimes.docker import docker_client
    from hud.platform.services.builds import IMAGE_LABEL

    label = f"{IMAGE_LABEL}={platform_label(platform)}"
    return [c.name for c in docker_client().containers.list(all=True, filters={"label": label})]


class Cluster:
    """A head node and one worker node, each its own `ray start --block` process group."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="hr-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(Path.cwd())}
        self.head = self._start("--head", f"--port={self.port}", "--node-ip-address=127.0.0.1",
                                f"--temp-dir={self.tmp}", "--include-dashboard=false",
                                "--num-cpus=3")  # fmt: skip
        self._wait_nodes(1)
        self.worker = self._start(f"--address={self.address}", "--node-ip-address=127.0.0.1",
                                  "--num-cpus=3")  # fmt: skip
        self._wait_nodes(2)

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(RAY), "start", "--block", "--disable-usage-stats", *args],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip

    def _wait_nodes(self, n: int) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            out = subprocess.run(
                [str(RAY), "status", f"--address={self.address}"],
                env=self.env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            if out.returncode == 0 and out.stdout.count("node_") >= n:
                return
            time.sleep(1)
        raise RuntimeError(f"ray cluster did not reach {n} node(s)")

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """The node and everything it started, at once (a machine that died)."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in (self.worker, self.head):
            self.kill(proc)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not HAVE_EXTRA:
        pytest.skip("the platform extra is not installed")
    _need_ray()
    c = Cluster()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def ray_platform(cluster: Cluster) -> Iterator[Platform]:
    base = Path(tempfile.mkdtemp(prefix="hud-platform-ray-"))
    platform = Platform("sqlite", base / "data",
                        extra_args=("--ray", cluster.address, "--workers", "12"))  # fmt: skip
    platform.start()
    yield platform
    platform.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_forty_rollouts_over_two_nodes_survive_a_dead_node(
    cluster: Cluster, ray_platform: Platform
) -> None:
    python_base()
    platform = ray_platform
    work = Path(tempfile.mkdtemp(prefix="hud-ray-"))
    try:
        with FakeProvider(handler=lambda _r: Reply(text="3")) as fake:
            key = team_key(platform)
            home = make_home()
            project = scaffold(work, "demo_env")
            proc = deploy(platform, key, home, project, ours=True)
            assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
            rows = [{"env": "demo_env", "id": "count", "slug": f"r{i}",
                     "args": {"sentence": "banana " * (i % 5 + 1), "letter": "a"}}
                    for i in range(ROLLOUTS)]  # fmt: skip
            (project / "rows.json").write_text(json.dumps(rows))
            env = cli_env(platform, key, home)
            synced = run_cli(["sync", "tasks", "ray-set", "rows.json", "-y"], env, cwd=project,
                             ours=True)  # fmt: skip
            assert synced.returncode == 0, synced.stdout + synced.stderr
            model = unique("ray-model")
            add_upstream(platform, "openai_compatible", fake.url + "/v1", model, key="sk-up")

            from tests.platform.helpers import REPO

            argv = [sys.executable, "-m", "hud", "eval", "ray-set", "openai_compatible",
                    "--gateway", "--model", model, "--all", "--yes", "--json"]  # fmt: skip
            out = work / "eval.json"
            with open(out, "wb") as fh:
                ev = subprocess.Popen(argv, cwd=project, env={**env, "PYTHONPATH": str(REPO)},
                                      stdout=fh, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL)  # fmt: skip
            with platform.api(key) as api:
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:  # kill the worker node mid-way
                    jobs = api.get("/v2/jobs", params={"limit": 10}).json()["items"]
                    done = sum(
                        1
                        for j in jobs
                        for t in api.get(
                            f"/v2/jobs/{j['id']}/traces", params={"limit": 100}
                        ).json()["items"]
                        if t["status"] in ("completed", "error")
                    )
                    if done >= 8:
                        break
                    assert ev.poll() is None, ev.stderr.read().decode() if ev.stderr else ""
                    time.sleep(0.5)
                Cluster.kill(cluster.worker)
                _, err = ev.communicate(timeout=900)
                assert ev.returncode == 0, err.decode()[-3000:]
                report = json.loads(out.read_text())
                assert len(report["runs"]) == ROLLOUTS
                assert sorted(r["slug"] for r in report["runs"]) == sorted(r["slug"] for r in rows)
                assert all(r["status"] == "completed" for r in report["runs"]), report["runs"]

                job_id = report.get("job_id") or Path(report["record"]).name
                traces = api.get(f"/v2/jobs/{job_id}/traces", params={"limit": 100}).json()
                assert traces["total"] == ROLLOUTS  # none counted twice
                details = [api.get(f"/v2/trace/{t['id']}").json() for t in traces["items"]]
            assert all(d["status"] == "completed" for d in details)
            nodes = {(d.get("metadata") or {}).get("node") for d in details}
            retried = [d for d in details if (d.get("metadata") or {}).get("retried")]
            assert len(nodes - {None}) == 2 or retried, nodes  # both nodes ran rollouts
            deadline = time.monotonic() + 120
            while _containers(platform) and time.monotonic() < deadline:
                time.sleep(1)
            assert _containers(platform) == []
    finally:
        remove_platform_images(platform)
        shutil.rmtree(work, ignore_errors=True)
