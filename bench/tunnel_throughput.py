"""Tunnel throughput: bytes through ``tunnel.open`` vs a plain loopback socket copy.

Usage: ``python bench/tunnel_throughput.py [--mib 512] [--repeat 3]``.

A helper process (``_sink.py``) runs a counting sink and a byte source; ``bench_env.py``
publishes them as capabilities ``sink`` and ``source``. This process (blocking sockets, 1 MiB
writes) pushes ``--mib`` MiB up to the sink and pulls as much down from the source along each
path; MiB/s from the median of ``--repeat`` transfers, all paths alternating.

Paths (each row says how many relay processes the bytes cross):

- ``direct``: straight to the sink/source, no relay: the "plain loopback socket copy" of the
  target (ours/direct >= 0.6 each way);
- ``plain relay (asyncio streams|protocols)``: a bare Python relay process with no HUD framing
  (``_plain_relay.py``): what one relay costs by itself;
- ``<impl> tunnel``: the client speaks ``tunnel.open`` to the server, which relays (one relay);
- ``<impl> routed``: through the client's local forwarder (``_forwarder.py``: ``binding()``'s
  routed URL) and then the server: the path an agent's SSH/VNC/CDP traffic takes (two relays).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator

from _common import (
    BENCH,
    FIGURE_HEADERS,
    Figure,
    Side,
    median,
    ratio,
    scratch_dir,
    serving,
    sides,
    table,
)

CHUNK = 1 << 20
TARGET = 0.6
DIRECT = "direct (no relay)"
_BLOCK = memoryview(bytes(range(256)) * (CHUNK // 256))


@contextlib.contextmanager
def helper(side: Side, script: str, *args: str) -> Iterator[tuple[int, int]]:
    """Run a helper printing ``SINK_PORT=<p> SOURCE_PORT=<q>``; yields the two ports."""
    with scratch_dir() as cwd:
        proc = subprocess.Popen(
            side.argv(str(BENCH / script), *args),
            cwd=cwd,
            env=side.env(),
            stdout=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
            match = re.match(r"SINK_PORT=(\d+) SOURCE_PORT=(\d+)", line)
            if not match:
                sys.exit(f"error: {script} ({side.name}) did not start: {line!r}")
            yield int(match.group(1)), int(match.group(2))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _connect(port: int, capability: str | None) -> tuple[socket.socket, bytes]:
    """Connect to ``port``; with ``capability``, open a tunnel first. Returns (sock, leftover)."""
    sock = socket.create_connection(("127.0.0.1", port))
    if capability is None:
        return sock, b""
    frame = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tunnel.open",
        "params": {"capability": capability},
    }
    sock.sendall(json.dumps(frame, separators=(",", ":")).encode() + b"\n")
    buf = b""
    while b"\n" not in buf:
        data = sock.recv(65536)
        if not data:
            sys.exit(f"error: tunnel to {capability!r} closed before its reply")
        buf += data
    line, _, rest = buf.partition(b"\n")
    reply = json.loads(line)
    if "error" in reply:
        sys.exit(f"error: tunnel.open {capability!r} failed: {reply['error']}")
    return sock, rest


def upload(port: int, size: int, capability: str | None) -> float:
    """Seconds to push ``size`` bytes and get the sink's count back."""
    sock, _ = _connect(port, capability)
    with sock:
        t0 = time.perf_counter()
        left = size
        while left:
            n = min(left, CHUNK)
            sock.sendall(_BLOCK[:n])
            left -= n
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while len(reply) < 8:
            data = sock.recv(8 - len(reply))
            if not data:
                break
            reply += data
        elapsed = time.perf_counter() - t0
    if len(reply) != 8 or struct.unpack(">Q", reply)[0] != size:
        sys.exit(f"error: sink counted {reply!r}, expected {size} bytes")
    return elapsed


def download(port: int, size: int, capability: str | None) -> float:
    """Seconds to pull ``size`` bytes from the source until it closes."""
    sock, rest = _connect(port, capability)
    buf = bytearray(CHUNK)
    with sock:
        t0 = time.perf_counter()
        sock.sendall(struct.pack(">Q", size))
        got = len(rest)
        while True:
            n = sock.recv_into(buf)
            if not n:
                break
            got += n
        elapsed = time.perf_counter() - t0
    if got != size:
        sys.exit(f"error: received {got} bytes from the source, expected {size}")
    return elapsed


def rate(size: int, seconds: list[float]) -> float:
    """MiB/s from the median time."""
    return size / (1 << 20) / median(seconds)


# label -> (upload port, download port, capability names or None, relays crossed)
Paths = dict[str, tuple[int, int, tuple[str, str] | None, int]]


def measure(size: int, repeat: int) -> dict[str, dict[str, float]]:
    """All paths are set up at once and measured in alternation, ``repeat`` rounds."""
    ours, official = sides()
    caps = ("sink", "source")
    with contextlib.ExitStack() as stack:
        sink, source = stack.enter_context(helper(ours, "_sink.py"))
        ports = {"HUD_BENCH_SINK_PORT": str(sink), "HUD_BENCH_SOURCE_PORT": str(source)}
        paths: Paths = {DIRECT: (sink, source, None, 0)}
        for mode in ("streams", "protocols"):
            up, down = stack.enter_context(
                helper(ours, "_plain_relay.py", mode, str(sink), str(source))
            )
            paths[f"plain relay (asyncio {mode})"] = (up, down, None, 1)
        for side in (ours, official):
            url = stack.enter_context(serving(side, ports))
            port = int(url.rsplit(":", 1)[1])
            paths[f"{side.name} tunnel (tunnel.open -> server)"] = (port, port, caps, 1)
            up, down = stack.enter_context(helper(side, "_forwarder.py", url))
            paths[f"{side.name} routed (client forwarder -> server)"] = (up, down, None, 2)
        times: dict[str, dict[str, list[float]]] = {p: {"up": [], "down": []} for p in paths}
        for _ in range(repeat):
            for label, (up_port, down_port, names, _) in paths.items():
                times[label]["up"].append(upload(up_port, size, names and names[0]))
                times[label]["down"].append(download(down_port, size, names and names[1]))
    results = {}
    for label, t in times.items():
        results[label] = {
            "up": rate(size, t["up"]),
            "down": rate(size, t["down"]),
            "relays": paths[label][3],
        }
    return results


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512, help="MiB per transfer")
    parser.add_argument("--repeat", type=int, default=3, help="transfers per direction")
    ns = parser.parse_args(argv)
    size = ns.mib << 20
    print(f"tunnel_throughput: {ns.mib} MiB each way, median of {ns.repeat}", flush=True)
    results = measure(size, ns.repeat)
    direct = results[DIRECT]
    plain = results["plain relay (asyncio protocols)"]
    rows = [
        [
            label,
            r["relays"],
            r["up"],
            r["down"],
            ratio(r["up"], direct["up"]),
            ratio(r["down"], direct["down"]),
        ]
        for label, r in results.items()
    ]
    headers = ("path", "relays", "up MiB/s", "down MiB/s", "up/direct", "down/direct")
    print(table(headers, rows))
    figures = []
    tunnel, routed = (
        "ours tunnel (tunnel.open -> server)",
        "ours routed (client forwarder -> server)",
    )
    peer_tunnel = "official tunnel (tunnel.open -> server)"
    peer_routed = "official routed (client forwarder -> server)"
    for way in ("up", "down"):
        value = ratio(results[tunnel][way], direct[way])
        figures.append(
            Figure(
                f"tunnel {way} ours/direct", value, None, "ratio", f">= {TARGET}", value >= TARGET
            )
        )
        value = ratio(results[tunnel][way], plain[way])
        figures.append(
            Figure(f"tunnel {way} ours/plain relay", value, None, "ratio", "report", None)
        )
        figures.append(
            Figure(
                f"tunnel {way}",
                results[tunnel][way],
                results[peer_tunnel][way],
                "MiB/s",
                "report",
                None,
            )
        )
        figures.append(
            Figure(
                f"tunnel {way} routed",
                results[routed][way],
                results[peer_routed][way],
                "MiB/s",
                "report",
                None,
            )
        )
    print()
    print(table(FIGURE_HEADERS, [f.row() for f in figures]))
    print(f"\nThe target (>= {TARGET} of a plain loopback socket copy) compares one tunnel")
    print("(tunnel.open to the server, one relay process) with the direct copy (no relay).")
    return figures


if __name__ == "__main__":
    main()
