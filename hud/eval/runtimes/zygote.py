"""The warm server process behind `SubprocessRuntime`.

It imports the environment source once, then forks a fresh child per rollout. Each child serves
the control channel on its own port and exits when told (SIGTERM) or when this process dies, so
nothing a rollout changes in memory is seen by the next one.

Protocol on stdin/stdout (JSON lines): ``{"id": N, "env": NAME}`` -> ``{"id": N, "pid": P,
"port": PORT}`` or ``{"id": N, "error": TEXT}``. Stdout of user code is sent to stderr.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import threading
from typing import Any

_children: set[int] = set()


def _reap(*_: Any) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _children.discard(pid)


def _child(ctl: int, lifeline: int, request: dict[str, Any], target: str) -> None:
    """Runs in the forked child: serve one environment until SIGTERM or the zygote dies."""
    import asyncio

    from hud.environment import load_environment
    from hud.environment.server import Server

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rid = request.get("id")

    def reply(obj: dict[str, Any]) -> None:
        os.write(ctl, (json.dumps(obj) + "\n").encode())

    async def main() -> None:
        try:
            env = load_environment(target, name=request.get("env"))
            server = Server(env, "127.0.0.1", 0, session_ttl=0)
            await server.start()
        except BaseException as exc:
            reply({"id": rid, "error": f"{type(exc).__name__}: {exc}"})
            return
        reply({"id": rid, "pid": os.getpid(), "port": server.port})
        os.close(ctl)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_reader(lifeline, stop.set)
        try:
            await stop.wait()
        finally:
            await server.close()

    try:
        asyncio.run(main())
    finally:
        os._exit(0)


def _warm(target: str) -> None:
    """Import the source and precompute per-template work so children start cheaply."""
    from pathlib import Path

    from hud.environment.loader import environments_in, import_modules
    from hud.eval.sources import env_target_for  # noqa: F401  (import cost paid here)

    path = Path(target)
    for _, env in environments_in(import_modules(path)):
        for template in env.tasks.values():
            template.warm()
    import hud.environment.server
    import hud.graders  # noqa: F401


def main() -> int:
    target = sys.argv[1]
    # A terminal Ctrl-C reaches the whole process group; the parent stops us by closing stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctl = os.dup(1)
    os.dup2(2, 1)  # user prints go to stderr; replies go to ctl
    try:
        _warm(target)
    except BaseException as exc:
        os.write(ctl, (json.dumps({"fatal": f"{type(exc).__name__}: {exc}"}) + "\n").encode())
        return 1
    fork_ok = threading.active_count() == 1 and hasattr(os, "fork")
    gc.collect()
    gc.freeze()  # children then never touch (and copy) the inherited heap during collection
    lifeline_r, lifeline_w = os.pipe()
    signal.signal(signal.SIGCHLD, _reap)
    os.write(ctl, (json.dumps({"ready": True, "fork": fork_ok}) + "\n").encode())
    if not fork_ok:
        return 0
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            break
        try:
            request = json.loads(line)
        except ValueError:
            continue
        pid = os.fork()
        if pid == 0:
            os.close(lifeline_w)
            _child(ctl, lifeline_r, request, target)
        _children.add(pid)
    for pid in list(_children):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
