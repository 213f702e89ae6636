"""The latency our inference gateway adds, against calling the same fake upstream directly.

A `hud platform serve` of its own (temp data dir, SQLite) routes one model to a fake
OpenAI-compatible upstream (tests/agents/fakes.py, in its own process). One keep-alive httpx
client alternates direct and gateway calls (so load drift hits both alike):

- ``chat``: a non-streamed ``POST /chat/completions`` — whole-call latency;
- ``stream``: ``stream: true`` — time to the first byte of the body (the gateway relays
  server-sent events as they arrive), and the whole call.

Rows give p50 and p99 in ms for direct and gateway, and the difference (what the gateway adds:
HUD-key auth, routing, the upstream key swap, usage accounting, one more loopback hop).
Target: <= 2 ms added at p50 for calls.

Usage: ``python bench/platform_gateway.py [-n 500] [--json]``. Needs the platform extra.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import ROOT

sys.path.insert(0, str(ROOT))
from tests.platform.helpers import Platform

TARGET_ADDED_P50_MS = 2.0
UPSTREAM = """
import sys, time
sys.path.insert(0, {root!r})
from tests.agents.fakes import FakeProvider, Reply
import socket
with FakeProvider(handler=lambda r: Reply(text="ok")) as fake:
    # As real provider front ends do: no Nagle stall between a reply's head and body.
    fake._server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(fake.port, flush=True)
    sys.stdin.read()
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(round(q / 100 * (len(ordered) - 1)), len(ordered) - 1)
    return ordered[index]


def timed(
    client: httpx.Client, url: str, body: dict, headers: dict, stream: bool
) -> tuple[float, float]:
    """(ms to the first body byte, ms to the end)."""
    start = time.perf_counter()
    with client.stream("POST", url, json=body, headers=headers) as reply:
        first = None
        for _chunk in reply.iter_raw():
            if first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        if reply.status_code != 200:
            raise SystemExit(f"error: {url} answered {reply.status_code}")
    return ((first or end) - start) * 1000, (end - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="calls per row and side")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="hud-bench-gw-"))
    upstream = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM.format(root=str(ROOT))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    platform = Platform("sqlite", base / "data")
    try:
        port = int(upstream.stdout.readline())  # type: ignore[union-attr]
        direct_base = f"http://127.0.0.1:{port}/v1"
        platform.start()
        proc = platform.hud("upstream", "add", "bench", "--provider", "openai_compatible",
                            "--base-url", direct_base, "--api-key", "sk-bench",
                            "--model", "bench-model")  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        key = platform.new_key("--name", "bench")
        gateway = f"{platform.url}/gateway/chat/completions"
        direct = f"{direct_base}/chat/completions"
        message = [{"role": "user", "content": "hello " * 50}]
        rows = []
        with httpx.Client(timeout=30) as client:
            for mode in ("chat", "stream"):
                body = {"model": "bench-model", "messages": message, "stream": mode == "stream"}
                gw_headers = {"Authorization": f"Bearer {key}", "Trace-Id": "0" * 32}
                up_headers = {"Authorization": "Bearer sk-bench"}
                for _ in range(20):  # warm both paths (connections, caches)
                    timed(client, direct, body, up_headers, False)
                    timed(client, gateway, body, gw_headers, False)
                samples: dict[str, list[tuple[float, float]]] = {"direct": [], "gateway": []}
                for _ in range(args.n):
                    samples["direct"].append(timed(client, direct, body, up_headers, False))
                    samples["gateway"].append(timed(client, gateway, body, gw_headers, False))
                metrics = [("call", 1)] if mode == "chat" else [("first byte", 0), ("call", 1)]
                for label, index in metrics:
                    d = [s[index] for s in samples["direct"]]
                    g = [s[index] for s in samples["gateway"]]
                    rows.append({
                        "row": f"{mode}: {label}",
                        "direct_p50": statistics.median(d), "direct_p99": percentile(d, 99),
                        "gateway_p50": statistics.median(g), "gateway_p99": percentile(g, 99),
                        "added_p50": statistics.median(g) - statistics.median(d),
                        "added_p99": percentile(g, 99) - percentile(d, 99),
                    })  # fmt: skip
    finally:
        platform.stop()
        upstream.kill()
        upstream.wait()
        shutil.rmtree(base, ignore_errors=True)

    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"gateway vs direct, {args.n} calls each (ms)")
    print(f"{'row':<20}{'direct p50':>12}{'p99':>9}{'gateway p50':>13}{'p99':>9}"
          f"{'added p50':>11}{'p99':>9}")  # fmt: skip
    for r in rows:
        print(f"{r['row']:<20}{r['direct_p50']:>12.2f}{r['direct_p99']:>9.2f}"
              f"{r['gateway_p50']:>13.2f}{r['gateway_p99']:>9.2f}"
              f"{r['added_p50']:>11.2f}{r['added_p99']:>9.2f}")  # fmt: skip
    worst = max(r["added_p50"] for r in rows if r["row"].endswith("call"))
    verdict = "meets" if worst <= TARGET_ADDED_P50_MS else "misses"
    print(f"added at p50: {worst:.2f} ms ({verdict} the <= {TARGET_ADDED_P50_MS:g} ms target)")


if __name__ == "__main__":
    main()
