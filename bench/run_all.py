"""Run every benchmark in sequence and print one summary table.

Usage: ``python bench/run_all.py [--quick] [--containers]`` (``make bench``). ``--quick`` uses
small sizes for a smoke run; the figures are then noisy. ``--containers`` adds the Docker and
Harbor benchmarks (they need a Docker daemon and, for Harbor, ``.peer/harbor``).
"""

from __future__ import annotations

import argparse
import time

import cli_startup
import eval_throughput
import rpc_roundtrip
import ssh_roundtrip
import tunnel_throughput
from _common import FIGURE_HEADERS, Figure, peer_python, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument(
        "--containers", action="store_true", help="also the Docker and Harbor benchmarks"
    )
    ns = parser.parse_args(argv)
    peer_python()
    plans = [
        (rpc_roundtrip, ["-n", "50", "--warmup", "5"] if ns.quick else []),
        (tunnel_throughput, ["--mib", "64", "--repeat", "1"] if ns.quick else []),
        (cli_startup, ["--runs", "3"] if ns.quick else []),
        (eval_throughput, ["-n", "40", "--official-n", "8"] if ns.quick else []),
        (ssh_roundtrip, ["-n", "20"] if ns.quick else []),
    ]
    if ns.containers:
        import docker_bench
        import harbor_bench

        plans += [
            (docker_bench, ["-n", "10"] if ns.quick else []),
            (harbor_bench, ["-n", "4"] if ns.quick else []),
        ]
    figures: list[Figure] = []
    t0 = time.perf_counter()
    for module, args in plans:
        print(f"\n=== {module.__name__} ===", flush=True)
        figures.extend(module.main(args))
    print(f"\n=== summary ({time.perf_counter() - t0:.0f} s) ===")
    print(table(FIGURE_HEADERS, [f.row() for f in figures]))
    missed = [f.name for f in figures if f.met is False]
    print(f"\ntargets missed: {', '.join(missed)}" if missed else "\nall targets met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
