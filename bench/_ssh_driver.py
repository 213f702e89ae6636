"""Timed SSH round trips (``true``) through the control port's tunnel, against one server.

Standalone: runs under our venv or the official one, using whichever ``hud`` package the
interpreter imports (its own client, its own SSH client). Connects, starts the ``echo`` task,
opens ``shell`` (a local forwarder + ``tunnel.open``), runs ``--warmup`` then ``-n`` commands,
grades, and prints one JSON object: ``{"times": [seconds, ...], "open": seconds}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

TASK = "echo"
WORD = "hello"


async def drive(url: str, n: int, warmup: int, command: str) -> dict[str, Any]:
    from hud.clients.client import HudClient

    official = not hasattr(HudClient, "ready")
    if official:
        from hud import Runtime, connect

        ctx = connect(Runtime(url))
    else:
        from hud.clients import connect as our_connect

        ctx = our_connect(url)
    async with ctx as client:
        if official:
            await client.start_task(TASK, {"word": WORD})
        else:
            await client.start(TASK, {"word": WORD})
        t0 = time.perf_counter()
        shell = await client.open("shell")
        opened = time.perf_counter() - t0
        times = []
        for i in range(warmup + n):
            t = time.perf_counter()
            result = await shell.run(command)
            elapsed = time.perf_counter() - t
            code = getattr(result, "exit_code", getattr(result, "exit_status", None))
            if code != 0:
                raise RuntimeError(f"{command!r} failed: {result}")
            if i >= warmup:
                times.append(elapsed)
        if official:
            await client.grade({"answer": WORD})
        else:
            await client.grade(WORD)
    return {"times": times, "open": opened}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("-n", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--command", default="true")
    ns = parser.parse_args()
    print(json.dumps(asyncio.run(drive(ns.url, ns.n, ns.warmup, ns.command))), flush=True)


if __name__ == "__main__":
    main()
