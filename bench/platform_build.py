"""`hud deploy` on our platform vs a plain `docker build` of the same context.

A `hud platform serve` of its own (temp data dir, SQLite) and the `hud init` scaffold, built on the
offline python base (tests/docker/images.py). Rows, each the median of ``-n`` runs (the plain
build and the deploy alternate, so both see the same load):

- plain `docker build --no-cache`: the floor — the `docker` CLI process from start to exit,
  sending the context and the daemon building it, nothing else;
- platform deploy, no cache (end to end): our `hud deploy --no-cache --json` process from start
  to exit — Python start-up, tarball, upload, trigger, the build, serving the image once for its
  manifest, log stream to the end, final status;
- platform build, no cache (server side): that build's ``created_at`` (upload slot) ->
  ``finished_at`` (status recorded);
- its phases, from the build log's timestamps, adding up to the end-to-end row: CLI start ->
  upload slot; upload slot -> the job's first log line (PUT, trigger, job start); context check
  (the upload re-filtered into the daemon's build context); docker build (to ``Successfully
  tagged``, incl. the image label step); image tagged -> end recorded (what is left of the
  manifest capture, recording the end); end recorded -> CLI exit (log stream end, status
  ``GET``, output, process exit); and, apart, the whole manifest capture (a container of the
  image started, ``hello`` + ``tasks.list``), which starts as the daemon begins the step after
  the scaffold's last RUN (from that step's image, with the CMD after it), so it overlaps the
  EXPOSE, CMD and label steps;
- `hud deploy --help`: the Python CLI's start-up alone, which the Go `docker` CLI does not pay;
- redeploy, no change (end to end): `hud deploy` again, the layer cache answering every step.

Targets: platform deploy <= 1.2x the plain build; a no-change redeploy <= 5 s.

Usage: ``python bench/platform_build.py [-n 3]``. Needs a Docker daemon and the platform extra.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from _common import ROOT

sys.path.insert(0, str(ROOT / "tests" / "docker"))
TARGET_RATIO = 1.2
TARGET_REDEPLOY = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUD_")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), NO_COLOR="1", HUD_CLI_ANALYTICS_ENABLED="0")
    return env


def _hud(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hud", *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=1800, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _seconds(start: str, end: str) -> float:
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


PHASES = (
    "CLI start -> upload slot",
    "upload slot -> job's first log line",
    "context check",
    "docker build",
    "image tagged -> end recorded",
    "end recorded -> CLI exit",
    "(manifest capture, overlapping)",
)


MARKS = (
    ("building", "Building "),
    ("tagged", "Successfully tagged"),
    ("serving", "Serving the image"),
    ("manifest", "Manifest:"),
)


def _phases(log: Path, status: dict, began: float, exited: float) -> dict[str, float]:
    """The deploy's phases (see the module doc) from its build log's timestamps."""
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()  # noqa: E731
    created, finished = parse(status["created_at"]), parse(status["finished_at"])
    marks: dict[str, float] = {}
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        text, at = entry["m"], entry["t"] / 1000
        marks.setdefault("first", at)
        for key, prefix in MARKS:
            if text.startswith(prefix):
                marks.setdefault(key, at)
    return dict(zip(PHASES, (
        created - began,
        marks["first"] - created,
        marks["building"] - marks["first"],
        marks["tagged"] - marks["building"],
        finished - marks["tagged"],
        exited - finished,
        marks["manifest"] - marks["serving"],
    ), strict=True))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=3, help="runs per row (median)")
    opts = parser.parse_args()

    import httpx
    import images

    from hud.eval.runtimes.docker import docker_client
    from hud.platform.services.builds import IMAGE_LABEL, platform_id

    images.python_image()
    work = Path(tempfile.mkdtemp(prefix="hud-bench-build-"))
    home = work / "home"
    home.mkdir()
    env = _env(home)
    port = _free_port()
    data = work / "data"
    server = subprocess.Popen(
        [sys.executable, "-m", "hud", "platform", "serve", "--port", str(port),
         "--data-dir", str(data)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    plain_tag = f"hud-bench/plain-build:{port}"
    try:
        assert server.stdout is not None
        key = ""
        lines: list[str] = []
        for line in server.stdout:
            lines.append(line)
            if line.startswith("hud_"):
                key = line.strip()
            if "export HUD_WEB_URL=" in line:
                break
        if not key:
            print("".join(lines), file=sys.stderr)
            return 1
        url = f"http://127.0.0.1:{port}"
        env.update(HUD_API_URL=url, HUD_API_KEY=key, HUD_WEB_URL=f"{url}/web",
                   HUD_TELEMETRY_URL=f"{url}/telemetry")  # fmt: skip
        init = _hud("init", "bench_env", "--dir", str(work), env=env, cwd=work)
        assert init.returncode == 0, init.stderr
        project = work / "bench_env"

        plain: list[float] = []
        deploy_e2e: list[float] = []
        build_server: list[float] = []
        redeploy: list[float] = []
        cli_help: list[float] = []
        phases: dict[str, list[float]] = {name: [] for name in PHASES}
        for _ in range(opts.n):
            began = time.perf_counter()
            subprocess.run(
                ["docker", "build", "--no-cache", "-q", "-f", "Dockerfile.hud", "-t", plain_tag,
                 "."], cwd=project, check=True, capture_output=True,
            )  # fmt: skip
            plain.append(time.perf_counter() - began)

            began, wall = time.perf_counter(), time.time()
            done = _hud("deploy", ".", "--yes", "--no-cache", "--json", env=env, cwd=project)
            deploy_e2e.append(time.perf_counter() - began)
            exited = time.time()
            assert done.returncode == 0, done.stderr[-2000:]
            build_id = json.loads(done.stdout)["build_id"]
            status = httpx.get(
                f"{url}/v2/builds/{build_id}/status", headers={"Authorization": f"Bearer {key}"}
            ).json()
            build_server.append(_seconds(status["created_at"], status["finished_at"]))
            for name, value in _phases(data / "builds" / f"{build_id}.log", status, wall,
                                       exited).items():  # fmt: skip
                phases[name].append(value)

            began = time.perf_counter()
            _hud("deploy", "--help", env=env, cwd=project)
            cli_help.append(time.perf_counter() - began)

            began = time.perf_counter()
            again = _hud("deploy", ".", "--yes", "--json", env=env, cwd=project)
            redeploy.append(time.perf_counter() - began)
            assert again.returncode == 0, again.stderr[-2000:]

        med = statistics.median
        ratio = med(deploy_e2e) / med(plain)
        rows = [
            ("plain docker build --no-cache", med(plain), ""),
            ("platform deploy, no cache (end to end)", med(deploy_e2e),
             f"{ratio:.2f}x plain (target <= {TARGET_RATIO}x)"),
            ("platform build, no cache (server side)", med(build_server),
             f"{med(build_server) / med(plain):.2f}x plain"),
            *[(f"  {name}", med(values), "") for name, values in phases.items()],
            ("hud deploy --help (CLI start-up)", med(cli_help), ""),
            ("redeploy, no change (end to end)", med(redeploy),
             f"target <= {TARGET_REDEPLOY:g} s"),
        ]  # fmt: skip
        width = max(len(r[0]) for r in rows)
        print(f"{'row':<{width}}  {'seconds':>8}  note")
        for name, value, note in rows:
            print(f"{name:<{width}}  {value:8.2f}  {note}")
        ok = ratio <= TARGET_RATIO and med(redeploy) <= TARGET_REDEPLOY
        print("targets met" if ok else "targets NOT met")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=30)
        client = docker_client()
        for image in client.images.list(filters={"label": f"{IMAGE_LABEL}={platform_id(data)}"}):
            for tag in image.tags or [image.id]:
                try:
                    client.images.remove(tag, force=True)
                except Exception:
                    pass
        try:
            client.images.remove(plain_tag, force=True)
        except Exception:
            pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
