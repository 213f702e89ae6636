"""Control-channel latency: connect + hello + tasks.start + tasks.grade (+ close) on loopback.

Usage: ``python bench/rpc_roundtrip.py [-n 300] [--warmup 30] [--rounds 5] [--pin]
[--interleave]``. Both servers run as ``python -m hud.environment.server bench/bench_env.py``
from their own venv, all at once.

Measured (median and p90 of the per-rollout wall time):

- own: each package's own client against its own server, with default settings. **The target
  applies here**: ours at most half of the official time (ratio <= 0.5). Our client's opt-in
  ``connect(..., pipeline=True)`` (the readiness ``hello`` shares a round trip with
  ``tasks.start``) is a separate row and figure;
- cross: each client against the other server (which side the time goes to);
- raw: one blocking-socket driver (this interpreter) against both servers (servers on equal
  footing) and against ``_null_server.py`` (canned replies from a bare asyncio Protocol) under
  each venv's interpreter; "server cost above floor" subtracts the faster null server.

Each (client, server) pair runs in its own driver process, rollouts back to back; the pairs take
turns, ``--rounds`` times, so machine drift hits every row alike. ``--interleave`` instead runs one
driver per client alternating between its servers rollout by rollout (then each server's figure
also carries the cache misses the other server causes while it idles). ``--pin``: one CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from _common import (
    BENCH,
    FIGURE_HEADERS,
    Figure,
    Side,
    median,
    percentile,
    ratio,
    serving,
    sides,
    table,
)

DRIVER = BENCH / "_rpc_driver.py"
TARGET = 0.5
OWN_OURS = "own: ours client -> ours server"
OWN_PIPELINED = "own: ours client (pipeline=True) -> ours server"
OWN_OFFICIAL = "own: official client -> official server"


def drive(client: Side, urls: list[str], mode: str, n: int, warmup: int) -> dict[str, list[float]]:
    """Run the driver under ``client``'s interpreter; per-URL rollout seconds."""
    out = subprocess.run(
        client.argv(str(DRIVER), *urls, "--mode", mode, "-n", str(n), "--warmup", str(warmup)),
        env=client.env(),
        cwd=Path(BENCH.anchor),
        capture_output=True,
        check=False,
        timeout=1200,
    )
    if out.returncode != 0:
        sys.exit(f"error: {client.name} driver ({mode}) failed:\n{out.stderr.decode()[-3000:]}")
    return json.loads(out.stdout)["times"]


@contextlib.contextmanager
def pinned(enabled: bool) -> Iterator[None]:
    """Optionally run this process and its children on one CPU (less scheduler noise)."""
    if not enabled or not hasattr(os, "sched_setaffinity"):
        yield
        return
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(saved)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


def measure(n: int, warmup: int, rounds: int, interleave: bool) -> dict[str, list[float]]:
    """All servers run at once; the drivers take turns, ``rounds`` times.

    By default each (client, server) pair gets its own driver process per round: rollouts run
    back to back against one server (steady state). With ``interleave`` one driver per client
    alternates between its servers rollout by rollout instead, so each server idles while the
    other works, and its figure depends on how much cache the other one evicts.
    """
    ours, official = sides()
    null = (str(BENCH / "_null_server.py"),)
    results: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        ours_url = stack.enter_context(serving(ours))
        official_url = stack.enter_context(serving(official))
        null_ours = stack.enter_context(serving(ours, launcher=null))
        null_official = stack.enter_context(serving(official, launcher=null))
        # (client side, driver mode, {row label: server url})
        groups: list[tuple[Side, str, dict[str, str]]] = [
            (
                ours,
                "sdk",
                {OWN_OURS: ours_url, "cross: ours client -> official server": official_url},
            ),
            (
                ours,
                "sdk-pipeline",
                {
                    OWN_PIPELINED: ours_url,
                    "cross: ours client (pipeline=True) -> official server": official_url,
                },
            ),
            (
                official,
                "sdk",
                {OWN_OFFICIAL: official_url, "cross: official client -> ours server": ours_url},
            ),
            (
                ours,
                "raw",
                {
                    "raw driver -> ours server": ours_url,
                    "raw driver -> official server": official_url,
                    "raw driver -> null server, ours venv": null_ours,
                    "raw driver -> null server, official venv": null_official,
                },
            ),
        ]
        jobs = groups
        if not interleave:
            jobs = [(c, m, {label: url}) for c, m, rows in groups for label, url in rows.items()]
        per_round = max(1, math.ceil(n / rounds))
        warm = max(3, math.ceil(warmup / rounds))
        for _ in range(rounds):
            for client, mode, rows in jobs:
                times = drive(client, list(rows.values()), mode, per_round, warm)
                for label, url in rows.items():
                    results.setdefault(label, []).extend(times[url])
    return results


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="timed rollouts per pair")
    parser.add_argument("--warmup", type=int, default=30, help="untimed rollouts per pair")
    parser.add_argument("--rounds", type=int, default=5, help="turns taken by the drivers")
    parser.add_argument("--pin", action="store_true", help="run everything on one CPU")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="one driver per client, alternating servers rollout by rollout",
    )
    ns = parser.parse_args(argv)
    order = "servers alternating per rollout" if ns.interleave else "one pair per driver run"
    print(
        f"rpc_roundtrip: {ns.n} rollouts per pair in {ns.rounds} rounds ({order}), "
        f"{ns.warmup} warm-up",
        flush=True,
    )
    with pinned(ns.pin):
        results = measure(ns.n, ns.warmup, ns.rounds, ns.interleave)
    rows = [[name, median(t) * 1e3, percentile(t, 90) * 1e3, len(t)] for name, t in results.items()]
    print(table(("pair", "median ms", "p90 ms", "n"), rows))

    own_ours, own_peer = results[OWN_OURS], results[OWN_OFFICIAL]
    piped = results[OWN_PIPELINED]
    raw_ours = results["raw driver -> ours server"]
    raw_peer = results["raw driver -> official server"]
    p90 = lambda t: percentile(t, 90)  # noqa: E731
    target = f"ratio <= {TARGET}"
    figures = []
    for label, ours_t, stat in (
        ("rpc rollout, own client+server, median", own_ours, median),
        ("rpc rollout, own client+server, p90", own_ours, p90),
        ("rpc rollout, own (ours pipeline=True), median", piped, median),
    ):
        a, b = stat(ours_t) * 1e3, stat(own_peer) * 1e3
        figures.append(Figure(label, a, b, "ms", target, ratio(a, b) <= TARGET))
    a, b = median(raw_ours) * 1e3, median(raw_peer) * 1e3
    name = "rpc rollout, raw driver (servers only), median"
    figures.append(Figure(name, a, b, "ms", "report", None))
    # Server cost above the floor: the faster null server (a bare asyncio Protocol) stands for
    # what the loopback round trips and the driver cost by themselves.
    floor = min(
        median(results["raw driver -> null server, ours venv"]),
        median(results["raw driver -> null server, official venv"]),
    )
    a, b = (median(raw_ours) - floor) * 1e3, (median(raw_peer) - floor) * 1e3
    figures.append(Figure("rpc server cost above floor", a, b, "ms", "report", None))
    print()
    print(table(FIGURE_HEADERS, [f.row() for f in figures]))
    print(f"\nThe target ({target}) applies to the first row: each package's own client and")
    print("server, default settings, end to end (TCP connect, hello, tasks.start, tasks.grade).")
    return figures


if __name__ == "__main__":
    main()
