"""Start ``python -m hud.environment.server`` as a child process and wait for its port."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from hud.protocol.errors import HudError

PORT_PREFIX = "HUD_SERVE_PORT="


class SpawnError(HudError, RuntimeError):
    """The server process exited or stayed silent before printing its port."""


def server_command(
    target: str | Path,
    *,
    env_name: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    extra: list[str] | None = None,
) -> list[str]:
    cmd = [sys.executable, "-m", "hud.environment.server", str(target)]
    if env_name:
        cmd += ["--env", env_name]
    cmd += ["--host", host, "--port", str(port), *(extra or [])]
    return cmd


def spawn_detached(
    target: str | Path,
    *,
    env_name: str | None = None,
    extra: list[str] | None = None,
    log_path: Path | None = None,
    ready_timeout: float = 60.0,
) -> tuple[int, int]:
    """Start a server that outlives this process; returns (pid, port).

    Its output goes to ``log_path`` (or nowhere); the port is read from a pipe.
    """
    target = Path(target).resolve()
    cmd = server_command(target, env_name=env_name, extra=extra)
    cwd = target if target.is_dir() else target.parent
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=write_fd,
        stderr=log,
        start_new_session=True,
    )
    os.close(write_fd)
    if not isinstance(log, int):  # not subprocess.DEVNULL
        log.close()
    tail: deque[str] = deque(maxlen=50)
    deadline = time.monotonic() + ready_timeout
    eof = False
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        buf = b""
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([pipe], [], [], left)
            if not ready:
                break
            chunk = pipe.read(4096)
            if not chunk:
                eof = True
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                if line.startswith(PORT_PREFIX):
                    return proc.pid, int(line[len(PORT_PREFIX) :])
                tail.append(line)
    code = proc.poll()
    if code is None and eof:
        # stdout closed: the child is exiting; reap it to report its real exit code
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
    if code is None:
        proc.kill()
        proc.wait()
        raise SpawnError(f"env server did not report a port for {target} in time")
    detail = "\n".join(tail)
    message = f"env server exited with code {code} before serving {target}"
    raise SpawnError(f"{message}:\n{detail}" if detail else message)


async def port_is_listening(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True
