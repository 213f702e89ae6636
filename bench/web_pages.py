"""Web pages: time to the first view of a job of 10,000 rollouts, on the platform (SQLite and
PostgreSQL) and in `hud view` (a local record), beside a no-op route of the same server.

1. A live `hud platform serve` per database (PostgreSQL: a throwaway cluster, as the tests
   start). The bench writes a job of ``-n`` rollouts straight into its database (groups of
   ``--group``, seeded random rewards, a few errors) under the admin's team, then, signed in
   with ``Authorization: Bearer``, times ``GET /web/jobs/<id>``: the **first view** (the first
   request for that page since the server started) and the median of ``--repeat`` more; the
   rollouts' last page (``?offset=``), the jobs list and one trace the same way. The floor is
   ``GET /healthz`` (a no-op route of the same app and server), median of ``--repeat``.
2. `hud view` over a local record of the same size (``runs.jsonl`` of ``-n`` rows): the first
   view (reads and parses the file) and the median after (cached); the floor is a static asset
   of the same server (``/web/static/hud.css``).

Target: the first view of the job page under 1 s. Usage:
``python bench/web_pages.py [-n 10000] [--group 8] [--repeat 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from _common import ROOT, Figure, databases, median, scratch_dir, table

sys.path.insert(0, str(ROOT))

from tests.platform.helpers import Platform, Postgres, base_env, make_home

TARGET_S = 1.0


# -- seeding -----------------------------------------------------------------------------
def _rollouts(n: int, group: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(n):
        g = i // group
        skill = (g * 37 % 100) / 100  # each task its own difficulty
        errored = rng.random() < 0.02
        reward = None if errored else float(rng.random() < skill)
        if not errored and g % 5 == 0:
            reward = round(rng.random() * skill, 2)  # some tasks give partial credit
        t0 = start + timedelta(seconds=i * 0.5)
        rows.append(
            {
                "id": uuid.uuid4(),
                "slug": f"task-{g}",
                "group_id": f"{g:032x}",
                "index": i % group,
                "status": "error" if errored else "completed",
                "reward": reward,
                "error": "RuntimeError: the environment did not answer" if errored else None,
                "start": t0,
                "end": t0 + timedelta(seconds=5 + rng.random() * 40),
            }
        )
    return rows


async def _seed_database(url: str, n: int, group: int) -> tuple[str, str]:
    """Insert one job of ``n`` traces for the admin's team; returns (job id, a trace id)."""
    from sqlalchemy import insert, select

    from hud.platform.db import Database
    from hud.platform.db.schema import jobs, teams, traces, users

    db = Database(url)
    try:
        async with db.write() as conn:
            team = (await conn.execute(select(teams.c.id).where(teams.c.name == "default"))).one()
            user = (await conn.execute(select(users.c.id).limit(1))).one()
            job = uuid.uuid4()
            now = datetime.now(UTC)
            await conn.execute(
                insert(jobs).values(
                    id=job,
                    team_id=team.id,
                    user_id=user.id,
                    name=f"bench ({n} rollouts)",
                    group_size=group,
                    created_at=now,
                )
            )
            rows = _rollouts(n, group)
            batch = 1000  # PostgreSQL takes at most 32767 parameters a statement
            for i in range(0, n, batch):
                await conn.execute(
                    insert(traces),
                    [
                        {
                            "id": r["id"],
                            "team_id": team.id,
                            "user_id": user.id,
                            "job_id": job,
                            "group_id": r["group_id"],
                            "task_slug": r["slug"],
                            "model": "bench",
                            "status": r["status"],
                            "reward": r["reward"],
                            "error": r["error"],
                            "evaluation_result": None
                            if r["reward"] is None
                            else {"score": r["reward"]},
                            "created_at": r["start"],
                            "start_time": r["start"],
                            "end_time": r["end"],
                        }
                        for r in rows[i : i + batch]
                    ],
                )
    finally:
        await db.close()
    return str(job), str(rows[0]["id"])


def _local_record(base: Path, n: int, group: int) -> tuple[str, str]:
    """A finished local job record of ``n`` rollouts; returns (job id, a trace id)."""
    job = uuid.uuid4().hex
    root = base / job
    (root / "traces").mkdir(parents=True)
    rows = _rollouts(n, group)
    created = rows[0]["start"].isoformat().replace("+00:00", "Z")
    (root / "job.json").write_text(
        json.dumps(
            {
                "job_id": job,
                "name": f"bench ({n} rollouts)",
                "created_at": created,
                "updated_at": created,
                "status": "completed",
                "config": {"agent": "bench", "group": group, "total": n},
                "summary": {},
                "pid": None,
            }
        )
    )
    with open(root / "runs.jsonl", "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(
                json.dumps(
                    {
                        "trace_id": r["id"].hex,
                        "slug": r["slug"],
                        "task_id": "bench",
                        "args": {"i": r["index"]},
                        "group_index": r["index"],
                        "reward": r["reward"] or 0.0,
                        "status": r["status"],
                        "stop_reason": None,
                        "error": r["error"],
                        "is_error": r["reward"] is None,
                        "answer": "x",
                        "duration_s": (r["end"] - r["start"]).total_seconds(),
                        "finished_at": r["end"].isoformat(),
                    }
                )
                + "\n"
            )
    first = rows[0]["id"].hex
    (root / "traces" / f"{first}.jsonl").write_text(
        json.dumps(
            {
                "type": "trace",
                "trace_id": first,
                "job_id": job,
                "slug": "task-0",
                "reward": 1.0,
                "grade": {"score": 1.0},
                "status": "completed",
            }
        )
        + "\n"
        + json.dumps(
            {
                "type": "step",
                "step_id": 1,
                "source": "agent",
                "content": "done",
                "started_at": created,
            }
        )
        + "\n"
    )
    return job, first


# -- timing ------------------------------------------------------------------------------
def _time(client: httpx.Client, path: str, repeat: int) -> tuple[float, float, int]:
    """(first request s, median of ``repeat`` more, body bytes)."""
    t0 = time.perf_counter()
    reply = client.get(path)
    first = time.perf_counter() - t0
    if reply.status_code != 200:
        sys.exit(f"error: GET {path} answered {reply.status_code}: {reply.text[:300]}")
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        client.get(path)
        times.append(time.perf_counter() - t0)
    return first, median(times), len(reply.content)


def _pages(
    client: httpx.Client, floor_path: str, job: str, trace: str, n: int, repeat: int
) -> list[list]:
    floor = _time(client, floor_path, repeat)
    rows = []
    last = max(0, (n - 1) // 50 * 50)
    for label, path in (
        ("job page (first view)", f"/web/jobs/{job}"),
        ("job page, last rollouts", f"/web/jobs/{job}?offset={last}"),
        ("jobs list", "/web/jobs"),
        ("trace", f"/web/trace/{trace}"),
    ):
        first, med, size = _time(client, path, repeat)
        rows.append([label, first * 1000, med * 1000, floor[1] * 1000, med / floor[1], size])
    return rows


def platform_rows(kind: str, ns: argparse.Namespace, cluster: Postgres | None) -> list[list]:
    with scratch_dir() as tmp:
        db = cluster.create_database("webbench") if cluster else None
        platform = Platform(kind, tmp / "data", db).start()
        try:
            from hud.platform.server import DataDir

            url = db or DataDir.at(tmp / "data").db_url()
            t0 = time.perf_counter()
            job, trace = asyncio.run(_seed_database(url, ns.n, ns.group))
            print(f"{kind}: seeded {ns.n} rollouts in {time.perf_counter() - t0:.1f} s")
            headers = {"Authorization": f"Bearer {platform.admin_key}"}
            with httpx.Client(base_url=platform.url, headers=headers, timeout=60) as client:
                rows = _pages(client, "/healthz", job, trace, ns.n, ns.repeat)
        finally:
            platform.stop()
    return [[kind, *row] for row in rows]


def local_rows(ns: argparse.Namespace) -> list[list]:
    with scratch_dir() as tmp:
        job, trace = _local_record(tmp / "jobs", ns.n, ns.group)
        env = {**base_env(make_home()), "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "hud", "view", str(tmp / "jobs"), "--no-browser"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            m = re.search(r"(http://\S+?)/web/jobs", line)
            if not m:
                sys.exit(f"error: hud view printed no URL: {line}")
            with httpx.Client(base_url=m[1], timeout=60) as client:
                rows = _pages(client, "/web/static/hud.css", job, trace, ns.n, ns.repeat)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return [["hud view", *row] for row in rows]


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10000, help="rollouts in the job")
    parser.add_argument("--group", type=int, default=8, help="rollouts per task")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests after the first")
    ns = parser.parse_args(argv)
    rows: list[list] = []
    with databases() as dbs:
        for kind, cluster in dbs:
            rows += platform_rows(kind, ns, cluster)
    rows += local_rows(ns)
    print(f"\njob of {ns.n} rollouts (groups of {ns.group}); median of {ns.repeat} after the first")
    print(
        table(
            ("server", "page", "first ms", "median ms", "no-op ms", "median/no-op", "bytes"),
            rows,
        )
    )
    figures = []
    for row in rows:
        if row[1] == "job page (first view)":
            first_s = row[2] / 1000
            figures.append(
                Figure(
                    f"web job page first view, {ns.n} rollouts ({row[0]})",
                    first_s,
                    None,
                    "s",
                    f"< {TARGET_S:g}",
                    first_s < TARGET_S,
                )
            )
    return figures


if __name__ == "__main__":
    main()
