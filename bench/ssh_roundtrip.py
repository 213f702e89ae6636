"""SSH round trip through the tunnel: ``true`` over the workspace shell, ours vs official.

Usage: ``python bench/ssh_roundtrip.py [-n 100] [--rounds 4] [--warmup 10]``.

Both packages serve ``bench_env.py`` with a workspace (``HUD_BENCH_WORKSPACE=1``) through
``python -m hud.environment.server``. A driver (``_ssh_driver.py``, run by each package's own
interpreter) connects to the control port, starts a task, opens ``shell`` (local forwarder +
``tunnel.open`` + SSH handshake) and times ``-n`` runs of ``true``, each a new SSH channel, a
sandboxed ``bash -lc true`` and its exit status. Every client/server pairing runs in each of
``--rounds`` rounds, in alternating order, so machine drift hits all alike.

Target: ours (our client -> our server) no slower than official -> official (ratio <= 1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess

from _common import (
    BENCH,
    FIGURE_HEADERS,
    Figure,
    Side,
    median,
    percentile,
    ratio,
    scratch_dir,
    serving,
    sides,
    table,
)

DRIVER = BENCH / "_ssh_driver.py"


def drive(client: Side, url: str, n: int, warmup: int) -> dict[str, object]:
    with scratch_dir() as cwd:
        done = subprocess.run(
            client.argv(str(DRIVER), url, "-n", str(n), "--warmup", str(warmup)),
            cwd=cwd,
            env=client.env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
    if done.returncode != 0:
        detail = done.stderr[-3000:]
        raise SystemExit(f"error: {client.name} driver against {url} failed:\n{detail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="timed commands per pairing")
    parser.add_argument("--rounds", type=int, default=4, help="rounds (n is split over them)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed commands per round")
    ns = parser.parse_args(argv)
    ours, official = sides()
    per_round = max(1, ns.n // ns.rounds)
    env = {"HUD_BENCH_WORKSPACE": "1"}
    with contextlib.ExitStack() as stack:
        urls = {side.name: stack.enter_context(serving(side, env)) for side in (ours, official)}
        pairs = [(c, s) for c in (ours, official) for s in (ours, official)]
        times: dict[tuple[str, str], list[float]] = {(c.name, s.name): [] for c, s in pairs}
        opens: dict[tuple[str, str], list[float]] = {(c.name, s.name): [] for c, s in pairs}
        for round_no in range(ns.rounds):
            order = pairs if round_no % 2 == 0 else list(reversed(pairs))
            for client, server in order:
                result = drive(client, urls[server.name], per_round, ns.warmup)
                times[(client.name, server.name)] += result["times"]  # type: ignore[arg-type]
                opens[(client.name, server.name)].append(result["open"])  # type: ignore[arg-type]
    rows = []
    for (client, server), values in times.items():
        ms = [v * 1000 for v in values]
        rows.append(
            [
                f"{client} client -> {server} server",
                len(ms),
                median(ms),
                percentile(ms, 90),
                sum(ms) / len(ms),
                median([v * 1000 for v in opens[(client, server)]]),
            ]
        )
    print(f"SSH `true` round trip through the tunnel ({ns.rounds} rounds)")
    print(table(["pairing", "n", "median ms", "p90 ms", "mean ms", "open shell ms"], rows))
    ours_ms = median(times[("ours", "ours")]) * 1000
    official_ms = median(times[("official", "official")]) * 1000
    server_ours = median(times[("ours", "ours")]) * 1000
    server_official = median(times[("ours", "official")]) * 1000
    rel = ratio(ours_ms, official_ms)
    print(f"\nours/official (end to end, median): {rel:.2f}  (target <= 1.0)")
    print(f"ours/official (same client, server only): {ratio(server_ours, server_official):.2f}")
    figure = Figure(
        "ssh true round trip (median)", ours_ms, official_ms, "ms", "<= official", rel <= 1.0
    )
    print()
    print(table(FIGURE_HEADERS, [figure.row()]))
    return [figure]


if __name__ == "__main__":
    main()
