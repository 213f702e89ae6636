"""Trivial rollouts per second: a fresh process per rollout, and in-process, ours vs official.

The same N answer-only tasks (the bench env's ``echo``) and a fixed-answer agent run through
``SubprocessRuntime`` at concurrency 4 and 16, then through ``LocalRuntime``, in both packages.
Per-rollout overhead is elapsed x concurrency / N. Targets: ours >= 20x the official throughput
with SubprocessRuntime, and >= 150 rollouts/s.

Usage: ``python bench/eval_throughput.py [-n 200] [--official-n 200]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess

from _common import BENCH, ENV_FILE, Figure, ratio, sides, table

DRIVER = BENCH / "_eval_driver.py"
SUBPROCESS_RATIO_TARGET = 20.0
ABSOLUTE_TARGET = 150.0


def _measure(side, kind: str, n: int, concurrency: int) -> dict:  # type: ignore[no-untyped-def]
    proc = subprocess.run(
        side.argv(str(DRIVER), str(ENV_FILE), kind, str(n), str(concurrency)),
        env=side.env(),
        cwd=str(ENV_FILE.parent),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(
            f"{side.name} {kind} run failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="rollouts per run (ours)")
    parser.add_argument(
        "--official-n", type=int, default=None, help="rollouts per official subprocess run"
    )
    ns = parser.parse_args(argv)
    ours, official = sides()
    official_n = ns.official_n or ns.n
    rows = []
    figures = []
    for kind, concurrencies in (("subprocess", (4, 16)), ("local", (4, 16))):
        for conc in concurrencies:
            a = _measure(ours, kind, ns.n, conc)
            b = _measure(official, kind, official_n if kind == "subprocess" else ns.n, conc)
            rows.append(
                [
                    f"{kind} c={conc}",
                    a["rollouts_per_s"],
                    b["rollouts_per_s"],
                    ratio(a["rollouts_per_s"], b["rollouts_per_s"]),
                    a["overhead_ms"],
                    b["overhead_ms"],
                    f"{a['mean_reward']:.2f}/{b['mean_reward']:.2f}",
                ]
            )
            if kind == "subprocess":
                speedup = ratio(a["rollouts_per_s"], b["rollouts_per_s"])
                figures.append(
                    Figure(
                        f"subprocess rollouts/s c={conc}",
                        a["rollouts_per_s"],
                        b["rollouts_per_s"],
                        "1/s",
                        f">= {SUBPROCESS_RATIO_TARGET:g}x and >= {ABSOLUTE_TARGET:g}/s",
                        speedup >= SUBPROCESS_RATIO_TARGET
                        and a["rollouts_per_s"] >= ABSOLUTE_TARGET,
                    )
                )
            else:
                figures.append(
                    Figure(
                        f"local rollouts/s c={conc}",
                        a["rollouts_per_s"],
                        b["rollouts_per_s"],
                        "1/s",
                        "reported",
                        None,
                    )
                )
    headers = ("placement", "ours/s", "official/s", "ratio", "ours ms", "official ms", "reward")
    print(table(headers, rows))
    return figures


if __name__ == "__main__":
    main()
