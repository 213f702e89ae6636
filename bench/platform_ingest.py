"""Platform ingest: reports/s on SQLite and PostgreSQL against a no-op endpoint, and the
slowdown reporting adds to a local `hud eval`.

1. A live `hud platform serve` per database (PostgreSQL: a throwaway cluster from the
   distribution's binaries, as the tests start). ``-c`` concurrent reporters each loop over one
   *report* = trace enter + span upload (``--spans`` step spans) + trace exit, for
   ``--seconds`` (alternating one-second windows). The floor is the same reporters each doing
   three ``GET /healthz`` (a no-op route of the same FastAPI app, same server, same run).
   Figure: reports/s as a ratio to that floor; target >= 0.5 on PostgreSQL. The load generator
   is a small keep-alive HTTP/1.1 client on asyncio streams, so the client's own cost stays
   small next to the server's.
2. `hud eval tasks.py nop --all` over ``-n`` trivial rollouts of the bench env, without a key
   and with a key for a live platform (SQLite), alternated ``--repeat`` times; figure: the
   median slowdown; target < 5%.

Usage: ``python bench/platform_ingest.py [-c 16] [--seconds 5] [-n 1000] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

from _common import ROOT, Figure, databases, median, scratch_dir, table

sys.path.insert(0, str(ROOT))

from tests.platform.helpers import Platform, Postgres

RATIO_TARGET = 0.5
SLOWDOWN_TARGET = 0.05


# -- a minimal keep-alive HTTP/1.1 client ------------------------------------------------
class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def request(self, method: str, path: str, key: str, body: bytes | None = None) -> int:
        head = (
            f"{method} {path} HTTP/1.1\r\nhost: {self.host}\r\nauthorization: Bearer {key}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body or b'')}\r\n\r\n"
        )
        self.writer.write(head.encode() + (body or b""))
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length:
            await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


def _span(trace: str, i: int) -> dict:
    now = "2026-01-01T00:00:00.000000Z"
    return {
        "name": "step.agent", "trace_id": trace, "span_id": f"{i:016x}", "parent_span_id": None,
        "kind": "INTERNAL", "start_time": now, "end_time": now, "status_code": "OK",
        "status_message": None, "events": [],
        "attributes": {"hud.schema": "hud.step.v1", "hud.task_run_id": trace,
                       "hud.payload": {"step_id": i, "source": "agent", "content": "4",
                                       "tool_calls": [], "done": True}},
    }  # fmt: skip


async def _load(port: int, key: str, mode: str, concurrency: int, seconds: float, spans: int):
    job = uuid.uuid4().hex
    setup = await Conn.open("127.0.0.1", port)
    if mode == "ingest":
        assert (
            await setup.request("POST", f"/v2/trace/job/{job}/enter", key, b'{"name":"b"}') == 200
        )
    setup.close()
    done = 0
    failures = 0
    stop = time.perf_counter() + seconds

    async def reporter() -> None:
        nonlocal done, failures
        conn = await Conn.open("127.0.0.1", port)
        try:
            while time.perf_counter() < stop:
                if mode == "noop":
                    codes = [await conn.request("GET", "/healthz", key) for _ in range(3)]
                else:
                    trace = uuid.uuid4().hex
                    enter = json.dumps({"job_id": job, "task_slug": "t", "model": "m"}).encode()
                    upload = json.dumps({"telemetry": [_span(trace, i) for i in range(spans)]})
                    exit_ = b'{"status":"completed","reward":1.0,"evaluation_result":{"score":1}}'
                    codes = [
                        await conn.request("POST", f"/v2/trace/{trace}/enter", key, enter),
                        await conn.request(
                            "POST",
                            f"/telemetry/trace/{trace}/telemetry-upload",
                            key,
                            upload.encode(),
                        ),
                        await conn.request("POST", f"/v2/trace/{trace}/exit", key, exit_),
                    ]
                if all(c == 200 for c in codes):
                    done += 1
                else:
                    failures += 1
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(reporter() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{failures} {mode} reports failed")
    return done / elapsed


def ingest(kind: str, ns: argparse.Namespace, cluster: Postgres | None) -> dict:
    with scratch_dir() as tmp:
        db = cluster.create_database("bench") if cluster else None
        platform = Platform(kind, tmp / "data", db).start()
        try:
            key = platform.admin_key or platform.new_key()
            # Alternate one-second windows of each, so drift in the machine's load hits both.
            rounds = max(1, round(ns.seconds))
            args = (ns.concurrency, ns.seconds / rounds, ns.spans)
            asyncio.run(_load(platform.port, key, "noop", ns.concurrency, 1.0, ns.spans))  # warm
            asyncio.run(_load(platform.port, key, "ingest", ns.concurrency, 1.0, ns.spans))
            noops, ingests = [], []
            for _ in range(rounds):
                noops.append(asyncio.run(_load(platform.port, key, "noop", *args)))
                ingests.append(asyncio.run(_load(platform.port, key, "ingest", *args)))
            noop, reports = sum(noops) / rounds, sum(ingests) / rounds
        finally:
            platform.stop()
    return {"kind": kind, "noop": noop, "reports": reports, "ratio": reports / noop}


# -- eval slowdown -----------------------------------------------------------------------
def _cpu_seconds(pid: int) -> float:
    """A live process's user + system CPU so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _eval_once(project: Path, env: dict[str, str], n: int) -> tuple[float, float]:
    """One eval: its wall time and the CPU it used (its process and its rollouts')."""
    argv = [sys.executable, "-m", "hud", "eval", "tasks.py", "nop", "--all", "--yes", "--json",
            "--max-concurrent", "16"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"hud eval failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    if report["run_count"] != n:
        raise SystemExit(f"hud eval ran {report['run_count']} of {n} rollouts")
    if "did not reach the platform" in proc.stderr:
        raise SystemExit("reports were lost:\n" + proc.stderr[-1000:])
    return elapsed, cpu


def eval_slowdown(ns: argparse.Namespace) -> dict:
    with scratch_dir() as tmp:
        project = tmp / "project"
        project.mkdir()
        (project / "env.py").write_text((ROOT / "bench" / "bench_env.py").read_text())
        (project / "tasks.py").write_text(
            "from hud import Task\n\n"
            f'tasks = [Task(env="bench", id="echo", args={{"word": "hello"}}, slug=f"echo-{{i}}")'
            f" for i in range({ns.n})]\n"
        )
        platform = Platform("sqlite", tmp / "data").start()
        try:
            key = platform.admin_key or platform.new_key()
            base = {k: v for k, v in os.environ.items() if not k.startswith("HUD_")}
            base.update(PYTHONPATH=str(ROOT), HOME=str(tmp), HUD_CLI_ANALYTICS_ENABLED="0")
            plain = dict(base)
            reporting = {**base, **platform.client_env(key)}
            _eval_once(project, plain, ns.n)  # warm caches
            assert platform.proc is not None
            without, with_, cpu_without, cpu_with, cpu_platform = [], [], [], [], []
            for _ in range(ns.repeat):
                wall, cpu = _eval_once(project, plain, ns.n)
                without.append(wall)
                cpu_without.append(cpu)
                served = _cpu_seconds(platform.proc.pid)
                wall, cpu = _eval_once(project, reporting, ns.n)
                cpu_platform.append(_cpu_seconds(platform.proc.pid) - served)
                with_.append(wall)
                cpu_with.append(cpu)
            with platform.api(key) as api:
                jobs = api.get("/v2/jobs", params={"limit": 1}).json()["items"]
                reported = api.get(f"/v2/jobs/{jobs[0]['id']}").json()["trace_count"]
        finally:
            platform.stop()
    a, b = median(without), median(with_)
    return {
        "without_s": a, "with_s": b, "slowdown": (b - a) / a, "reported": reported,
        "runs": (without, with_), "cpu": (median(cpu_without), median(cpu_with)),
        "cpu_platform": median(cpu_platform),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--concurrency", type=int, default=16, help="concurrent reporters")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--spans", type=int, default=4, help="spans per upload")
    parser.add_argument("-n", type=int, default=1000, help="rollouts in the eval slowdown run")
    parser.add_argument("--repeat", type=int, default=5, help="eval runs per side")
    parser.add_argument("--no-eval", action="store_true", help="skip the eval slowdown part")
    ns = parser.parse_args(argv)
    rows, figures = [], []
    with databases() as dbs:
        for kind, cluster in dbs:
            r = ingest(kind, ns, cluster)
            rows.append([kind, r["noop"], r["reports"], r["ratio"]])
            target = RATIO_TARGET if kind == "postgresql" else None
            figures.append(
                Figure(
                    f"platform reports/s vs no-op ({kind})", r["ratio"], None, "ratio",
                    f">= {RATIO_TARGET:g}" if target else "-",
                    (r["ratio"] >= target) if target else None,
                )
            )  # fmt: skip
    print(f"{ns.concurrency} reporters, {ns.spans} spans per upload, {ns.seconds:g} s each")
    print(table(("database", "no-op loops/s", "reports/s", "ratio"), rows))
    if ns.no_eval:
        return figures
    s = eval_slowdown(ns)
    print(
        f"\nhud eval of {ns.n} trivial rollouts: {s['without_s']:.2f} s without reporting, "
        f"{s['with_s']:.2f} s reporting ({s['reported']} traces reported): "
        f"slowdown {100 * s['slowdown']:.1f}%"
    )
    print(
        "  runs (s): without " + ", ".join(f"{x:.2f}" for x in s["runs"][0])
        + "; reporting " + ", ".join(f"{x:.2f}" for x in s["runs"][1])
    )  # fmt: skip
    print(
        f"  CPU per run (medians): the eval and its rollouts {s['cpu'][0]:.2f} s without, "
        f"{s['cpu'][1]:.2f} s reporting; the platform {s['cpu_platform']:.2f} s while it reported"
    )
    figures.append(
        Figure("eval slowdown from reporting", 100 * s["slowdown"], None, "%",
               f"< {100 * SLOWDOWN_TARGET:g}%", s["slowdown"] < SLOWDOWN_TARGET)
    )  # fmt: skip
    return figures


if __name__ == "__main__":
    main()
