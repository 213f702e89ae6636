"""Timed connect + ``hello`` + ``tasks.start`` + ``tasks.grade`` loops against one server.

Standalone: runs under our venv or the official one (``--mode sdk`` uses whichever ``hud`` package
the interpreter imports, with its defaults; ``--mode sdk-pipeline`` is our client with
``connect(..., pipeline=True)``; ``--mode raw`` uses only blocking sockets). Prints one JSON
object: ``{"times": {url: [seconds, ...]}}``. With several URLs, rollouts alternate between them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

TASK = "echo"
WORD = "hello"


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 8765


def raw_rollout(host: str, port: int) -> None:
    """One rollout over a blocking socket: the least client overhead Python allows."""
    frames = (
        b'{"jsonrpc":"2.0","id":1,"method":"hello","params":{}}\n',
        b'{"jsonrpc":"2.0","id":2,"method":"tasks.start","params":{"id":"%s","args":{"word":"%s"}}}\n'
        % (TASK.encode(), WORD.encode()),
        b'{"jsonrpc":"2.0","id":3,"method":"tasks.grade","params":{"answer":"%s"}}\n'
        % WORD.encode(),
    )
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        for frame in frames:
            sock.sendall(frame)
            line = reader.readline()
            if not line or b'"error"' in line:
                raise RuntimeError(f"bad reply: {line[:200]!r}")
        if b'"score":1.0' not in line:
            raise RuntimeError(f"rollout did not score 1.0: {line[:200]!r}")
        reader.close()


def sdk_rollout(url: str, pipeline: bool = False) -> Callable[[], Awaitable[None]]:
    """One rollout through the interpreter's own ``hud`` client (ours or the official one)."""
    from hud.clients.client import HudClient

    if not hasattr(HudClient, "ready"):  # the official 0.6.x client
        if pipeline:
            sys.exit("error: --mode sdk-pipeline needs our client (the official one waits)")
        from hud import Runtime, connect

        async def official() -> None:
            async with connect(Runtime(url)) as client:
                await client.start_task(TASK, {"word": WORD})
                grade = await client.grade({"answer": WORD})
                if grade.get("score") != 1.0:
                    raise RuntimeError(f"rollout did not score 1.0: {grade}")

        return official

    from hud.clients import connect as our_connect

    options = {"pipeline": True} if pipeline else {}

    async def ours() -> None:
        async with our_connect(url, **options) as client:
            await client.start(TASK, {"word": WORD})
            grade = await client.grade(WORD)
            if grade.get("score") != 1.0:
                raise RuntimeError(f"rollout did not score 1.0: {grade}")

    return ours


def run(urls: list[str], mode: str, n: int, warmup: int) -> dict[str, list[float]]:
    """Round-robin rollouts over ``urls`` (so machine drift hits every server alike)."""
    times: dict[str, list[float]] = {url: [] for url in urls}
    if mode == "raw":
        addresses = {url: _address(url) for url in urls}
        for i in range(warmup + n):
            for url in urls:
                t0 = time.perf_counter()
                raw_rollout(*addresses[url])
                if i >= warmup:
                    times[url].append(time.perf_counter() - t0)
        return times

    rollouts = {url: sdk_rollout(url, pipeline=mode == "sdk-pipeline") for url in urls}

    async def loop() -> None:
        for i in range(warmup + n):
            for url in urls:
                t0 = time.perf_counter()
                await rollouts[url]()
                if i >= warmup:
                    times[url].append(time.perf_counter() - t0)

    asyncio.run(loop())
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("urls", nargs="+", metavar="url")
    parser.add_argument("--mode", choices=("sdk", "sdk-pipeline", "raw"), default="sdk")
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    ns = parser.parse_args(argv)
    times = run(ns.urls, ns.mode, ns.n, ns.warmup)
    json.dump({"times": times, "python": sys.version.split()[0]}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
