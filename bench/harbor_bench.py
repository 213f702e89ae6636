"""Harbor tasks with the oracle: ``hud eval <dataset> oracle`` vs ``harbor run -a oracle``.

A dataset of N generated Harbor tasks (each with its own environment Dockerfile on the local
``debian:bookworm-slim`` base, a ``solution/solve.sh`` and a ``tests/test.sh`` writing
``reward.txt``) runs through our ``hud eval`` and through the official ``harbor`` CLI
(``.peer/harbor``) at the same concurrency. Each side runs once to warm its image cache
(reported as "cold"), then once more (reported as "warm"). Both must score 1.0 on every task.
Target: ours at least as fast as Harbor (warm).

Usage: ``python bench/harbor_bench.py [-n 20] [-c 4]``. Needs a Docker daemon with the Compose
plugin (.ci/docker-setup.sh) and ``.peer/harbor`` (see tests/docker/test_harbor_export.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, Figure, our_env, ratio, table

sys.path.insert(0, str(ROOT / "tests" / "docker"))
HARBOR = ROOT / ".peer" / "harbor" / "bin" / "harbor"


def make_dataset(root: Path, n: int) -> Path:
    """N small tasks, each with its own image."""
    data = root / "dataset"
    for i in range(n):
        task = data / f"bench-task-{i:02d}"
        (task / "environment").mkdir(parents=True)
        (task / "tests").mkdir()
        (task / "solution").mkdir()
        (task / "task.toml").write_text(
            f'[task]\nname = "bench/task-{i:02d}"\n\n[agent]\ntimeout_sec = 300\n\n'
            "[verifier]\ntimeout_sec = 120\n"
        )
        (task / "instruction.md").write_text(f"Write the number {i * 7} to /app/answer.txt.\n")
        (task / "environment" / "Dockerfile").write_text(
            f"FROM debian:bookworm-slim\nRUN echo {i} > /etc/bench-task\nWORKDIR /app\n"
        )
        solve = task / "solution" / "solve.sh"
        solve.write_text(f"#!/bin/bash\necho {i * 7} > /app/answer.txt\n")
        test = task / "tests" / "test.sh"
        test.write_text(
            "#!/bin/bash\n"
            f'if [ "$(cat /app/answer.txt 2>/dev/null)" = "{i * 7}" ]; then r=1; else r=0; fi\n'
            "echo $r > /logs/verifier/reward.txt\n"
        )
        solve.chmod(0o755)
        test.chmod(0o755)
    return data


def run_ours(data: Path, concurrency: int, home: Path) -> tuple[float, list[float]]:
    env = our_env({"HOME": str(home), "HUD_CLI_ANALYTICS_ENABLED": "0"})
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "hud", "eval", str(data), "oracle", "--all", "--yes", "--json",
         "--max-concurrent", str(concurrency), "--jobs-dir", str(home / "jobs")],
        env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"hud eval failed:\n{proc.stderr[-3000:]}")
    return elapsed, [r["reward"] for r in json.loads(proc.stdout)["runs"]]


def run_harbor(data: Path, concurrency: int, jobs: Path) -> tuple[float, list[float]]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("PYTHONPATH", None)
    started = time.perf_counter()
    proc = subprocess.run(
        [str(HARBOR), "run", "-p", str(data), "-a", "oracle", "-n", str(concurrency),
         "-o", str(jobs), "-q"],
        env=env, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"harbor run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    job = max(jobs.iterdir(), key=lambda p: p.stat().st_mtime)
    rewards = []
    for result in sorted(job.glob("*/result.json")):
        trial = json.loads(result.read_text())
        rewards.append(((trial.get("verifier_result") or {}).get("rewards") or {}).get("reward"))
    return elapsed, rewards


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="tasks in the dataset")
    parser.add_argument("-c", "--concurrency", type=int, default=4)
    ns = parser.parse_args(argv)
    if not HARBOR.exists():
        raise SystemExit(
            f"error: the official harbor CLI is not installed at {HARBOR.parent.parent}\n"
            "hint: python3.12 -m venv .peer/harbor && .peer/harbor/bin/pip install --no-deps "
            "harbor==0.25.0, then its requirements except the certifi pin"
        )
    import images

    images.base_image()
    scratch = Path(tempfile.mkdtemp(prefix="hud-harbor-bench-"))
    try:
        data = make_dataset(scratch, ns.n)
        (scratch / "home").mkdir()
        results = {}
        for phase in ("cold", "warm"):
            ours = run_ours(data, ns.concurrency, scratch / "home")
            theirs = run_harbor(data, ns.concurrency, scratch / f"harbor-{phase}")
            results[phase] = (ours, theirs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = []
    for phase, ((t_ours, r_ours), (t_theirs, r_theirs)) in results.items():
        rows.append([f"hud eval ({phase})", ns.n, round(t_ours, 2), sum(r_ours) / len(r_ours)])
        rows.append(
            [f"harbor run ({phase})", ns.n, round(t_theirs, 2), sum(r_theirs) / len(r_theirs)]
        )
    print(table(("oracle on Harbor tasks", "tasks", "elapsed s", "mean reward"), rows))
    (t_ours, r_ours), (t_theirs, r_theirs) = results["warm"]
    ok = all(r == 1.0 for r in r_ours) and all(r == 1.0 for r in r_theirs)
    print(f"\nwarm: harbor/ours time {ratio(t_theirs, t_ours)}x (target >= 1x); all 1.0: {ok}")
    return [
        Figure(
            f"harbor oracle, {ns.n} tasks c={ns.concurrency} (warm)",
            round(t_ours, 2),
            round(t_theirs, 2),
            "s",
            "ours <= official",
            ok and t_ours <= t_theirs,
        )
    ]


if __name__ == "__main__":
    main()
