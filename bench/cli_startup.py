"""CLI start-up: wall time of ``hud --help``, ours vs the official package.

Usage: ``python bench/cli_startup.py [--runs 10]``. Both run with ``PYTHONDONTWRITEBYTECODE=1``
from an empty temp directory with a temp ``HOME``; the official CLI also gets
``HUD_CLI_ANALYTICS_ENABLED=0``. Ours is ``.venv/bin/hud`` when it exists, else
``python -m hud`` with this interpreter. One untimed warm-up run each.

Targets: ours < 0.3 s, and at least 5x faster than the official CLI.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    FIGURE_HEADERS,
    PEER_HUD,
    ROOT,
    Figure,
    median,
    our_env,
    peer_env,
    peer_python,
    ratio,
    scratch_dir,
    table,
)

ABSOLUTE_TARGET = 0.3
SPEEDUP_TARGET = 5.0


def our_command() -> list[str]:
    script = ROOT / ".venv" / "bin" / "hud"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hud"]


def time_runs(argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> list[float] | str:
    """Wall times of ``runs`` runs (after one warm-up); an error message if the command fails."""
    times = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False, timeout=120)
        elapsed = time.perf_counter() - t0
        if out.returncode != 0 or b"Usage" not in out.stdout:
            detail = (out.stderr or out.stdout).decode(errors="replace").strip()[-1500:]
            return f"`{' '.join(argv)}` exited {out.returncode}: {detail}"
        if i:
            times.append(elapsed)
    return times


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    ns = parser.parse_args(argv)
    peer_python()
    print(f"cli_startup: `hud --help`, median of {ns.runs} runs", flush=True)
    with scratch_dir() as home:
        common = {"PYTHONDONTWRITEBYTECODE": "1", "HOME": str(home)}
        ours = time_runs([*our_command(), "--help"], our_env(common), home, ns.runs)
        theirs = time_runs([str(PEER_HUD), "--help"], peer_env(common), home, ns.runs)
    if isinstance(theirs, str):
        sys.exit(f"error: official CLI failed: {theirs}")
    if isinstance(ours, str):
        print(f"our CLI FAILED: {ours}")
        print(
            table(
                ("cli", "median s", "min s", "max s"),
                [["official", median(theirs), min(theirs), max(theirs)]],
            )
        )
        return [Figure("cli --help", float("nan"), median(theirs), "s", "failed", False)]
    rows = [[name, median(t), min(t), max(t)] for name, t in (("ours", ours), ("official", theirs))]
    print(table(("cli", "median s", "min s", "max s"), rows))
    a, b = median(ours), median(theirs)
    figures = [
        Figure("cli --help", a, b, "s", f"< {ABSOLUTE_TARGET} s", a < ABSOLUTE_TARGET),
        Figure(
            "cli --help speed-up",
            ratio(b, a),
            None,
            "x",
            f">= {SPEEDUP_TARGET:g}x",
            ratio(b, a) >= SPEEDUP_TARGET,
        ),
    ]
    print()
    print(table(FIGURE_HEADERS, [f.row() for f in figures]))
    return figures


if __name__ == "__main__":
    main()
