"""Tunnel throughput: bytes through ``tunnel.open`` vs a plain loopback connection.

Usage: ``python bench/tunnel_throughput.py [--mib 512] [--repeat 3] [--no-prototype]``.

A helper process (``_sink.py``) runs a counting sink and a byte source; ``bench_env.py`` publishes
them as capabilities ``sink`` and ``source``. This process (blocking sockets, 1 MiB writes) pushes
``--mib`` MiB up to the sink and pulls as much down from the source, either directly (``plain``,
no relay at all) or through a tunnel opened on our server or the official one. With
``--prototype`` (default) our server is also run with the Protocol-based splice in
``proto_splice.py`` to show what the transport change would give.

Targets: ours/plain >= 0.6 (each direction); ours/official reported.
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
    our_env,
    ratio,
    scratch_dir,
    serving,
    sides,
    table,
)

CHUNK = 1 << 20
PROTOCOL = "ours+protocol splice (prototype)"
TARGET = 0.6
_BLOCK = memoryview(bytes(range(256)) * (CHUNK // 256))


@contextlib.contextmanager
def helper(script: str, *args: str) -> Iterator[tuple[int, int]]:
    """Run a helper printing ``SINK_PORT=<p> SOURCE_PORT=<q>``; yields the two ports."""
    with scratch_dir() as cwd:
        proc = subprocess.Popen(
            [sys.executable, str(BENCH / script), *args],
            cwd=cwd,
            env=our_env(),
            stdout=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
            match = re.match(r"SINK_PORT=(\d+) SOURCE_PORT=(\d+)", line)
            if not match:
                sys.exit(f"error: {script} did not start: {line!r}")
            yield int(match.group(1)), int(match.group(2))
        finally:
            proc.terminate()
            proc.wait(10)
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


def measure(size: int, repeat: int, prototype: bool) -> dict[str, dict[str, float]]:
    """All paths are set up at once and measured in alternation, ``repeat`` rounds."""
    ours, official = sides()
    with contextlib.ExitStack() as stack:
        sink, source = stack.enter_context(helper("_sink.py"))
        ports = {"HUD_BENCH_SINK_PORT": str(sink), "HUD_BENCH_SOURCE_PORT": str(source)}
        servers: list[tuple[str, Side, tuple[str, ...]]] = [("ours", ours, ())]
        if prototype:
            servers.append((PROTOCOL, ours, (str(BENCH / "_proto_server.py"),)))
        servers.append(("official", official, ()))
        # label -> (upload port, download port, via tunnel)
        paths: dict[str, tuple[int, int, bool]] = {"plain": (sink, source, False)}
        for label, side, launcher in servers:
            port = int(stack.enter_context(serving(side, ports, launcher)).rsplit(":", 1)[1])
            paths[label] = (port, port, True)
        times: dict[str, dict[str, list[float]]] = {p: {"up": [], "down": []} for p in paths}
        for _ in range(repeat):
            for label, (up_port, down_port, tunnel) in paths.items():
                times[label]["up"].append(upload(up_port, size, "sink" if tunnel else None))
                down = download(down_port, size, "source" if tunnel else None)
                times[label]["down"].append(down)
    results = {}
    for label, t in times.items():
        results[label] = {"up": rate(size, t["up"]), "down": rate(size, t["down"])}
    return results


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=512, help="MiB per transfer")
    parser.add_argument("--repeat", type=int, default=3, help="transfers per direction")
    parser.add_argument("--no-prototype", dest="prototype", action="store_false")
    ns = parser.parse_args(argv)
    size = ns.mib << 20
    print(f"tunnel_throughput: {ns.mib} MiB each way, median of {ns.repeat}", flush=True)
    results = measure(size, ns.repeat, ns.prototype)
    plain = results["plain"]
    rows = [
        [label, r["up"], r["down"], ratio(r["up"], plain["up"]), ratio(r["down"], plain["down"])]
        for label, r in results.items()
    ]
    print(table(("path", "up MiB/s", "down MiB/s", "up/plain", "down/plain"), rows))
    figures = []
    for way in ("up", "down"):
        ours, peer = results["ours"][way], results["official"][way]
        figures.append(
            Figure(
                f"tunnel {way} ours/plain",
                ratio(ours, plain[way]),
                None,
                "ratio",
                f">= {TARGET}",
                ratio(ours, plain[way]) >= TARGET,
            )
        )
        figures.append(Figure(f"tunnel {way}", ours, peer, "MiB/s", "report", None))
        if PROTOCOL in results:
            value = ratio(results[PROTOCOL][way], plain[way])
            name = f"tunnel {way} protocol-splice prototype/plain"
            figures.append(Figure(name, value, None, "ratio", f">= {TARGET}", value >= TARGET))
    print()
    print(table(FIGURE_HEADERS, [f.row() for f in figures]))
    return figures


if __name__ == "__main__":
    main()
