"""Hold a client connection open and publish its local forwarders for ``sink`` and ``source``.

Usage: ``python _forwarder.py URL``; prints ``SINK_PORT=<p> SOURCE_PORT=<q>`` (the routed URLs'
ports: local listeners that open a ``tunnel.open`` connection per accepted connection and relay
it), then serves until SIGTERM. Standalone: runs under our venv (``await client.binding(...)``)
or the official one (``client.binding(...)``), whichever ``hud`` the interpreter imports.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import sys
from urllib.parse import urlsplit


async def main(url: str) -> None:
    from hud.clients.client import HudClient

    if not hasattr(HudClient, "ready"):  # the official 0.6.x client
        from hud import Runtime, connect

        cm = connect(Runtime(url))
    else:
        from hud.clients import connect as our_connect

        cm = our_connect(url)
    async with cm as client:
        ports = []
        for name in ("sink", "source"):
            cap = client.binding(name)
            if inspect.isawaitable(cap):
                cap = await cap
            ports.append(urlsplit(cap.url).port)
        print(f"SINK_PORT={ports[0]} SOURCE_PORT={ports[1]}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
