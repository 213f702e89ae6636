"""Control-channel latency: connect + hello + tasks.start + tasks.grade on loopback.

Usage: ``python bench/rpc_roundtrip.py [-n 300] [--warmup 30] [--pin]``. Both servers run as
``python -m hud.environment.server bench/bench_env.py`` from their own venv. Measured:

- sdk: each package's own client against its own server (ours -> ours, official -> official),
  plus the two cross pairs for information;
- raw: one blocking-socket driver (this interpreter) against both servers, so the servers are
  compared on equal footing;
- floor: the same driver against ``_null_server.py`` (canned replies from a bare asyncio
  Protocol) under each venv's interpreter; "server cost above floor" subtracts the faster one.

Target: ours at most half of the official time (ratio <= 0.5).
"""

from __future__ import annotations

import argparse
import contextlib
import json
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


def measure(n: int, warmup: int) -> dict[str, list[float]]:
    """All servers run at once; each driver alternates between them rollout by rollout."""
    ours, official = sides()
    null = (str(BENCH / "_null_server.py"),)
    results: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        urls = {
            "ours server": stack.enter_context(serving(ours)),
            "official server": stack.enter_context(serving(official)),
        }
        floors = {
            "null server, ours venv": stack.enter_context(serving(ours, launcher=null)),
            "null server, official venv": stack.enter_context(serving(official, launcher=null)),
        }
        for client in (ours, official):
            times = drive(client, list(urls.values()), "sdk", n, warmup)
            for name, url in urls.items():
                results[f"sdk {client.name} client -> {name}"] = times[url]
        everything = {**urls, **floors}
        times = drive(ours, list(everything.values()), "raw", n, warmup)
        for name, url in everything.items():
            results[f"raw driver -> {name}"] = times[url]
    return results


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="timed rollouts per pair")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--pin", action="store_true", help="run everything on one CPU")
    ns = parser.parse_args(argv)
    print(f"rpc_roundtrip: {ns.n} rollouts per pair after {ns.warmup} warm-up", flush=True)
    with pinned(ns.pin):
        results = measure(ns.n, ns.warmup)
    rows = [[name, median(t) * 1e3, percentile(t, 90) * 1e3, len(t)] for name, t in results.items()]
    print(table(("pair", "median ms", "p90 ms", "n"), rows))

    sdk_ours = results["sdk ours client -> ours server"]
    sdk_peer = results["sdk official client -> official server"]
    raw_ours = results["raw driver -> ours server"]
    raw_peer = results["raw driver -> official server"]
    figures = []
    for label, ours, peer in (("sdk", sdk_ours, sdk_peer), ("raw", raw_ours, raw_peer)):
        for stat, fn in (("median", median), ("p90", lambda t: percentile(t, 90))):
            a, b = fn(ours) * 1e3, fn(peer) * 1e3
            figures.append(
                Figure(
                    f"rpc rollout {label} {stat}",
                    a,
                    b,
                    "ms",
                    f"ratio <= {TARGET}",
                    ratio(a, b) <= TARGET,
                )
            )
    # Server cost above the floor: the faster null server (a bare asyncio Protocol) stands for
    # what the loopback round trips and the driver cost by themselves.
    floor = min(
        median(results["raw driver -> null server, ours venv"]),
        median(results["raw driver -> null server, official venv"]),
    )
    a, b = (median(raw_ours) - floor) * 1e3, (median(raw_peer) - floor) * 1e3
    target = f"ratio <= {TARGET}"
    figures.append(Figure("rpc server cost above floor", a, b, "ms", target, ratio(a, b) <= TARGET))
    print()
    print(table(FIGURE_HEADERS, [f.row() for f in figures]))
    return figures


if __name__ == "__main__":
    main()
