"""Hosted rollouts and runtime sessions on our platform (issue 14).

A `hud platform serve` of its own (temp data dir, SQLite), the `hud init` scaffold deployed
(offline python base, tests/docker/images.py), a taskset of ``-n`` rows of its ``count`` task,
and an agent (`openai_compatible`) whose model is a local fake provider behind the platform's
gateway. Rows:

- local Docker rollout: `hud eval <taskset> --runtime docker --max-concurrent 8`, seconds per
  rollout (wall / n);
- hosted rollout: `hud eval <taskset>` (hosted, the platform's 8 worker processes), seconds
  per rollout, the first hosted run after the platform started; target <= 1.5x local; then
  the same again (the workers that served the team serve it again);
- runtime tunnel round trip: a ``hello`` through ``/runtime/tunnels/<id>`` (a WebSocket
  client, the websockets library's) vs a direct TCP connection to the same container (median
  of 200, median of 5 interleaved rounds); target direct/tunnel >= 0.5;
- runtime tunnel throughput: 64 x 1 MiB frames sent and answered, MiB/s, tunnel vs direct;
  target >= 0.5 of direct;
- the same two through `HUDRuntime`'s local forwarder (what ``--runtime hud`` clients use:
  TCP to a loopback listener, a WebSocket per connection), and, as floors, the round trip
  through bare Python TCP relays (``_plain_relay.py``) with as many hops as each tunnel row
  (1: the platform; 2: the forwarder and the platform);
- with ``--ray``: the hosted rows on a one-node and on a two-node loopback Ray cluster
  (`ray start --head` / `ray start --address`).

Usage: ``python bench/platform_hosted.py [-n 16] [--ray] [--tunnel-only | --hosted-only]``.
Needs Docker and the platform extra (and ``ray`` for ``--ray``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

from _common import ROOT

sys.path.insert(0, str(ROOT))

from tests.agents.fakes import FakeProvider, Reply
from tests.platform.deploy_helpers import (
    cli_env,
    deploy,
    python_base,
    remove_platform_images,
    scaffold,
    team_key,
)
from tests.platform.gateway_helpers import add_upstream
from tests.platform.helpers import Platform, free_port, make_home, run_cli

CONCURRENCY = 8
HOSTED_TARGET = 1.5
TUNNEL_TARGET = 0.5
#: Interleaved rounds of the tunnel rows (their medians).
REPEATS = 5


def _eval(env: dict[str, str], project: Path, model: str, *runtime: str) -> float:
    argv = ["eval", "bench-set", "openai_compatible", "--gateway", "--model", model, "--all",
            "--yes", "--json", "--max-concurrent", str(CONCURRENCY), *runtime]  # fmt: skip
    start = time.perf_counter()
    proc = run_cli(argv, env, cwd=project, timeout=3600, ours=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"hud eval {' '.join(runtime)} failed:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout[proc.stdout.index("{") :])
    bad = [r for r in report["runs"] if r["status"] != "completed"]
    if bad:
        raise SystemExit(f"{len(bad)} rollout(s) not graded: {bad[:2]}")
    return took / len(report["runs"])


def _phases(platform: Platform) -> str:
    """Medians over the newest job's traces (from the platform's SQLite): queued (submit ->
    dispatch), boot (dispatch -> first span: worker, container start, readiness, setup), work
    (first -> last span: agent and grading), tail (last span -> trace exit: teardown and the
    report); a local run's trace enters as it provisions, so its queued is 0."""
    import sqlite3
    from datetime import datetime

    def t(text: str | None) -> float:
        return (
            datetime.fromisoformat(str(text).replace("Z", "+00:00").replace(" ", "T"))
            .replace(tzinfo=None)
            .timestamp()
        )

    db = sqlite3.connect(platform.data_dir / "platform.db")
    try:
        [job] = db.execute("select id from jobs order by created_at desc limit 1").fetchone()
        traces = db.execute(
            "select id, created_at, start_time, end_time from traces where job_id = ?", (job,)
        ).fetchall()
        out: dict[str, list[float]] = {"queued": [], "boot": [], "work": [], "tail": []}
        for tid, created, started, ended in traces:
            spans = [json.loads(d) for (d,) in
                     db.execute("select data from spans where trace_id = ?", (tid,))]  # fmt: skip
            if not spans or not started or not ended:
                continue
            first = min(t(x["start_time"]) for x in spans)
            last = max(t(x["end_time"]) for x in spans)
            out["queued"].append(t(started) - t(created))
            out["boot"].append(first - t(started))
            out["work"].append(last - first)
            out["tail"].append(t(ended) - last)
    finally:
        db.close()
    return "  ".join(f"{k} {statistics.median(v):.2f}" for k, v in out.items() if v)


def _direct_target(platform: Platform) -> tuple[int, str]:
    """The session container's published control port and token (docker inspect)."""
    from hud.eval.runtimes.docker import docker_client
    from hud.platform.services.builds import IMAGE_LABEL
    from tests.platform.deploy_helpers import platform_label

    label = f"{IMAGE_LABEL}={platform_label(platform)}"
    # the session's (the platform's primed rollout workers have containers of the image too)
    [container] = [c for c in docker_client().containers.list(filters={"label": label})
                   if c.labels.get("io.hud.session", "").endswith(":session")]  # fmt: skip
    ports = container.attrs["NetworkSettings"]["Ports"]
    port = int(next(iter(v for v in ports.values() if v))[0]["HostPort"])
    env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
    return port, env.get("HUD_CONTROL_TOKEN", "")


async def _measure(send, recv, *, bulk: bool = True) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median hello round trip (s), and MiB/s of 64 x 1 MiB frames sent and answered."""
    rtts = []
    for i in range(200):
        start = time.perf_counter()
        await send(json.dumps({"jsonrpc": "2.0", "id": 100 + i, "method": "hello",
                               "params": {}}).encode() + b"\n")  # fmt: skip
        await recv()
        rtts.append(time.perf_counter() - start)
    if not bulk:
        return statistics.median(rtts), float("nan")
    pad = "x" * (1024 * 1024)
    start = time.perf_counter()
    for i in range(64):
        frame = {"jsonrpc": "2.0", "id": 1000 + i, "method": "hello", "params": {"pad": pad}}
        await send(json.dumps(frame).encode() + b"\n")
        await recv()
    return statistics.median(rtts), 64 / (time.perf_counter() - start)


async def _tunnel_vs_direct(platform: Platform, key: str) -> dict[str, float]:
    """Medians over `REPEATS` interleaved rounds (load drifts: each round measures every
    path back to back) of `_measure` on: ``tunnel`` (a WebSocket client on
    ``/runtime/tunnels/<id>``), ``direct`` (TCP to the same container), ``forwarded``
    (`HUDRuntime`'s listener, a session of its own), ``floor1``/``floor2`` (1 and 2 bare
    relays in front of the container, round trip only)."""
    import httpx
    import websockets

    from hud.platform.client.runtime import HUDRuntime

    links: dict[str, tuple[Callable[[bytes], Awaitable[None]], Callable[[], Awaitable[None]]]]
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=platform.url, timeout=120)
        )
        headers = {"Authorization": f"Bearer {key}"}
        made = await http.post("/runtime/sessions", json={"environment": "demo_env"},
                               headers=headers)  # fmt: skip
        made.raise_for_status()
        sid = made.json()["id"]
        stack.push_async_callback(http.delete, f"/runtime/sessions/{sid}", headers=headers)
        url = platform.url.replace("http://", "ws://") + f"/runtime/tunnels/{sid}"
        hello = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "hello", "params": {}})
        while True:  # until the container serves
            try:
                ws = await websockets.connect(url, additional_headers=headers, max_size=None)
                await ws.send(hello.encode() + b"\n")
                await asyncio.wait_for(ws.recv(), 10)
                break
            except (OSError, websockets.ConnectionClosed, TimeoutError):
                await asyncio.sleep(0.5)
        stack.push_async_callback(ws.close)
        pending = bytearray()

        async def ws_recv() -> None:
            while b"\n" not in pending:
                pending.extend(await ws.recv())  # type: ignore[arg-type]
            del pending[: pending.index(b"\n") + 1]

        links = {"tunnel": (ws.send, ws_recv)}
        port, token = _direct_target(platform)
        links["direct"] = await _tcp_link(stack, port, token)
        for hops in (1, 2):
            relay = stack.enter_context(_relays(port, hops))
            links[f"floor{hops}"] = await _tcp_link(stack, relay, token)
        runtime = HUDRuntime(runtime_url=platform.url, api_key=key)
        task = SimpleNamespace(env="demo_env", slug="bench", runtime_config=None)
        rt = await stack.enter_async_context(runtime(task))
        while True:  # until the container serves
            try:
                links["forwarded"] = await _tcp_link(stack, int(rt.url.rsplit(":", 1)[1]), None)
                break
            except (OSError, EOFError):
                await asyncio.sleep(0.5)
        got: dict[str, list[tuple[float, float]]] = {name: [] for name in links}
        for _ in range(REPEATS):
            for name, (send, recv) in links.items():
                got[name].append(await _measure(send, recv, bulk=not name.startswith("floor")))
    out = {}
    for name, values in got.items():
        out[f"{name}_rtt"] = statistics.median(v[0] for v in values)
        out[f"{name}_mibs"] = statistics.median(v[1] for v in values)
    return out


async def _tcp_link(
    stack: contextlib.AsyncExitStack, port: int, token: str | None
) -> tuple[Callable[[bytes], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """A TCP connection to ``port`` past its first ``hello`` (with ``token`` if any)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=4 << 20)
    stack.callback(writer.close)
    params = {"auth_token": token} if token else {}
    first = {"jsonrpc": "2.0", "id": 1, "method": "hello", "params": params}
    writer.write(json.dumps(first).encode() + b"\n")
    if not await reader.readline():
        raise EOFError("closed before the first hello")

    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def recv() -> None:
        await reader.readline()

    return send, recv


@contextlib.contextmanager
def _relays(port: int, hops: int) -> Iterator[int]:
    """``hops`` bare Python TCP relays (bench/_plain_relay.py, protocols) chained in front
    of ``port``: the first one's port."""
    procs = []
    try:
        for _ in range(hops):
            proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_plain_relay.py"),
                                     "protocols", str(port), str(port)],
                                    stdout=subprocess.PIPE, text=True)  # fmt: skip
            procs.append(proc)
            assert proc.stdout is not None
            port = int(proc.stdout.readline().split()[0].split("=")[1])
        yield port
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()


class _Ray:
    def __init__(self, nodes: int) -> None:
        ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
        self.tmp = Path(tempfile.mkdtemp(prefix="hb-", dir="/tmp"))
        self.address = f"127.0.0.1:{free_port()}"
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}
        port = self.address.split(":")[1]
        common = ["--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
                  f"--num-cpus={CONCURRENCY // nodes}"]  # fmt: skip
        argvs = [[ray, "start", "--head", f"--port={port}", f"--temp-dir={self.tmp}",
                  "--include-dashboard=false", *common]]  # fmt: skip
        argvs += [[ray, "start", f"--address={self.address}", *common]] * (nodes - 1)
        self.procs = []
        for argv in argvs:
            self.procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL,
                                               start_new_session=True))  # fmt: skip
            time.sleep(8)

    def stop(self) -> None:
        import signal

        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _setup(platform: Platform, work: Path, fake: FakeProvider, n: int) -> tuple:  # type: ignore[type-arg]
    key = team_key(platform)
    home = make_home()
    project = work / "demo_env"
    if not project.exists():
        scaffold(work, "demo_env")
    shutil.rmtree(project / ".hud", ignore_errors=True)  # linked to an earlier platform
    proc = deploy(platform, key, home, project, ours=True)
    if proc.returncode != 0:
        raise SystemExit(f"deploy failed:\n{proc.stderr[-3000:]}")
    rows = [{"env": "demo_env", "id": "count", "slug": f"r{i}",
             "args": {"sentence": "banana", "letter": "a"}} for i in range(n)]  # fmt: skip
    (project / "rows.json").write_text(json.dumps(rows))
    env = cli_env(platform, key, home)
    synced = run_cli(["sync", "tasks", "bench-set", "rows.json", "-y"], env, cwd=project, ours=True)
    if synced.returncode != 0:
        raise SystemExit(f"sync failed:\n{synced.stderr[-2000:]}")
    model = f"bench-{os.getpid()}-{time.monotonic_ns()}"
    add_upstream(platform, "openai_compatible", fake.url + "/v1", model, key="sk-up")
    return key, env, project, model


class _Rows(list):  # type: ignore[type-arg]
    """Rows printed as they are measured (a later failure keeps the earlier figures)."""

    def append(self, row: tuple[str, str]) -> None:  # type: ignore[override]
        print(f"  {row[0]:<40}  {row[1]}", flush=True)
        super().append(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=16, help="rollouts per row")
    parser.add_argument("--ray", action="store_true", help="also 1 vs 2 Ray nodes")
    parser.add_argument("--tunnel-only", action="store_true", help="only the tunnel rows")
    parser.add_argument(
        "--hosted-only", action="store_true", help="only the local and hosted rollout rows"
    )
    args = parser.parse_args()
    python_base()
    work = Path(tempfile.mkdtemp(prefix="hud-bench-hosted-"))
    rows = _Rows()
    print(f"hosted rollouts, {args.n} rollouts at concurrency {CONCURRENCY}", flush=True)
    with FakeProvider(handler=lambda _r: Reply(text="3")) as fake:
        platform = Platform("sqlite", work / "data", extra_args=("--workers", str(CONCURRENCY)))
        platform.start()
        try:
            key, env, project, model = _setup(platform, work, fake, args.n)
            if not args.tunnel_only:
                _eval(env, project, model, "--runtime", "docker")  # warm: image, caches
                local = _eval(env, project, model, "--runtime", "docker")
                local_phases = _phases(platform)
                hosted = _eval(env, project, model)
                hosted_phases = _phases(platform)
                rows.append(("local Docker rollout (s/rollout)", f"{local:.2f}"))
                rows.append(("  phases, median s", local_phases))
                ratio = hosted / local
                verdict = "ok" if ratio <= HOSTED_TARGET else "MISSED"
                rows.append(("hosted rollout (s/rollout)",
                             f"{hosted:.2f}  ({ratio:.2f}x local; target <= {HOSTED_TARGET}x: "
                             f"{verdict})"))  # fmt: skip
                rows.append(("  phases, median s", hosted_phases))
                again = _eval(env, project, model)  # its workers served this team already
                rows.append(("hosted, again (s/rollout)",
                             f"{again:.2f}  ({again / local:.2f}x local)"))  # fmt: skip
                rows.append(("  phases, median s", _phases(platform)))
            if not args.tunnel_only and not args.hosted_only:
                # the same platform restarted with primed workers (each boots the next
                # rollout's fresh container ahead of need)
                platform.stop()
                platform.extra_args = ["--workers", str(CONCURRENCY), "--prime-idle", "20"]
                platform.start()
                primed = _eval(env, project, model)
                rows.append(("hosted, --prime-idle 20 (s/rollout)",
                             f"{primed:.2f}  ({primed / local:.2f}x local)"))  # fmt: skip
                rows.append(("  phases, median s", _phases(platform)))
            if args.hosted_only:
                return
            t = asyncio.run(_tunnel_vs_direct(platform, key))
            rtt = t["direct_rtt"] / t["tunnel_rtt"]
            thr = t["tunnel_mibs"] / t["direct_mibs"]
            rows.append(("tunnel hello round trip (ms)",
                         f"{t['tunnel_rtt'] * 1e3:.2f} vs direct {t['direct_rtt'] * 1e3:.2f} "
                         f"({rtt:.2f} of direct; target >= {TUNNEL_TARGET})"))  # fmt: skip
            rows.append(("tunnel throughput (MiB/s)",
                         f"{t['tunnel_mibs']:.1f} vs direct {t['direct_mibs']:.1f} "
                         f"({thr:.2f} of direct; target >= {TUNNEL_TARGET})"))  # fmt: skip
            rtt = t["direct_rtt"] / t["forwarded_rtt"]
            thr = t["forwarded_mibs"] / t["direct_mibs"]
            rows.append(("tunnel via HUDRuntime forwarder rt (ms)",
                         f"{t['forwarded_rtt'] * 1e3:.2f} ({rtt:.2f} of direct)"))  # fmt: skip
            rows.append(("tunnel via HUDRuntime forwarder (MiB/s)",
                         f"{t['forwarded_mibs']:.1f} ({thr:.2f} of direct)"))  # fmt: skip
            for hops in (1, 2):
                floor = t[f"floor{hops}_rtt"]
                ratio = t["direct_rtt"] / floor
                rows.append((f"floor: {hops}-hop Python relay rt (ms)",
                             f"{floor * 1e3:.2f} ({ratio:.2f} of direct)"))  # fmt: skip
        finally:
            platform.stop()
            remove_platform_images(platform)
            if args.hosted_only:
                shutil.rmtree(work, ignore_errors=True)
        if args.ray:
            for nodes in (1, 2):
                cluster = _Ray(nodes)
                rp = Platform("sqlite", work / f"ray{nodes}",
                              extra_args=("--ray", cluster.address, "--workers",
                                          str(CONCURRENCY)))  # fmt: skip
                rp.start()
                try:
                    _, renv, rproject, rmodel = _setup(rp, work, fake, args.n)
                    _eval(renv, rproject, rmodel)  # warm
                    per = _eval(renv, rproject, rmodel)
                    rows.append((f"hosted on {nodes} Ray node(s) (s/rollout)", f"{per:.2f}"))
                finally:
                    rp.stop()
                    cluster.stop()
                    remove_platform_images(rp)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
