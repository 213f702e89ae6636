"""`SubprocessRuntime`: a fresh server process per rollout, nothing shared between rollouts.

A warm process imports the environment source once and forks a clean child per rollout (see
`hud.eval.runtimes.zygote`); where forking is unsafe (no ``os.fork``, or the source started
threads at import) each rollout spawns ``python -m hud.environment.server`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from hud.environment.spawn import PORT_PREFIX, server_command
from hud.eval.runtime import Runtime
from hud.eval.runtimes.pool import WarmPool
from hud.eval.task import Task

log = logging.getLogger("hud.eval")

#: At most this many children are kept started ahead of need (per env name).
MAX_PREFORK = 8


class SubprocessRuntime:
    """Provider of one fresh environment process per rollout."""

    def __init__(
        self,
        path: str | Path,
        *,
        env: str | None = None,
        ready_timeout: float = 120.0,
        fork: bool | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        if not self.path.exists():
            raise FileNotFoundError(f"environment source not found: {path}")
        self.env_name = env
        self.ready_timeout = ready_timeout
        self._want_fork = fork if fork is not None else hasattr(os, "fork")
        self._zygote: asyncio.subprocess.Process | None = None
        self._zygote_lock = asyncio.Lock()
        self._fork_ok = False
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._stderr: deque[str] = deque(maxlen=50)
        self._readers: list[asyncio.Task[None]] = []
        self._warned_resources = False
        self._load_error: str | None = None
        # Children forked ahead of need, per env name, so a rollout never waits for a start.
        self._pool: WarmPool[tuple[int, int]] = WarmPool(MAX_PREFORK, discard=_stop_child)

    def __repr__(self) -> str:
        return f"SubprocessRuntime({str(self.path)!r})"

    @property
    def cwd(self) -> Path:
        return self.path if self.path.is_dir() else self.path.parent

    # -- provider --------------------------------------------------------------------
    def __call__(self, task: Task) -> contextlib.AbstractAsyncContextManager[Runtime]:
        return self._acquire(task)

    @contextlib.asynccontextmanager
    async def _acquire(self, task: Task) -> AsyncIterator[Runtime]:
        config = task.runtime_config
        if config is not None:
            if config.needs_container:
                raise ValueError(
                    f"task {task.slug} needs a container (runtime_config.image/compose); "
                    "SubprocessRuntime runs plain processes"
                )
            if not self._warned_resources:
                self._warned_resources = True
                log.warning("runtime_config resources/limits are not enforced by subprocesses")
        env_name = self.env_name or task.env
        if self._want_fork:
            await self._ensure_zygote()
        if self._fork_ok:
            pid, port = await self._pool.take(env_name, lambda: self._fork(env_name))
            try:
                yield Runtime(f"tcp://127.0.0.1:{port}")
            finally:
                self._pool.release(env_name)
                await _stop_child((pid, port))
        else:
            async with self._spawn(env_name) as runtime:
                yield runtime

    # -- warm process ----------------------------------------------------------------
    async def _ensure_zygote(self) -> None:
        if self._zygote is not None and self._zygote.returncode is None:
            return
        async with self._zygote_lock:
            if self._load_error is not None:
                raise RuntimeError(self._load_error)
            if self._zygote is not None and self._zygote.returncode is None:
                return
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hud.eval.runtimes.zygote",
                str(self.path),
                cwd=self.cwd,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            assert proc.stdout is not None and proc.stderr is not None
            lines = self._stderr = deque(maxlen=50)  # this process's own
            stderr = asyncio.create_task(self._drain_stderr(proc.stderr, lines))
            self._readers.append(stderr)
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), self.ready_timeout)
            except TimeoutError:
                proc.kill()
                raise RuntimeError(f"environment process for {self.path} did not start") from None
            hello = json.loads(line) if line.strip() else {}
            if not hello.get("ready"):
                await proc.wait()
                await asyncio.sleep(0.05)
                detail = hello.get("fatal") or "\n".join(self._stderr)
                self._load_error = f"loading {self.path} failed (exit {proc.returncode}): {detail}"
                raise RuntimeError(self._load_error)
            self._fork_ok = bool(hello.get("fork"))
            if not self._fork_ok:
                log.info("forking is unsafe for %s; spawning a process per rollout", self.path)
                self._want_fork = False
                await proc.wait()
                return
            self._zygote = proc
            self._readers.append(asyncio.create_task(self._read_replies(proc, stderr, lines)))

    async def _drain_stderr(self, stream: asyncio.StreamReader, lines: deque[str]) -> None:
        while line := await stream.readline():
            text = line.decode("utf-8", "replace").rstrip()
            lines.append(text)
            log.debug("env: %s", text)

    async def _read_replies(
        self, proc: asyncio.subprocess.Process, stderr: asyncio.Task[None], lines: deque[str]
    ) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            future = self._pending.pop(reply.get("id"), None)
            if future is not None and not future.done():
                future.set_result(reply)
        if not self._pending:
            return
        # Say why: its exit status and the last lines it wrote (read to the end first).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), 2)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(stderr), 2)
        message = _exited(self.path, proc.returncode, lines)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RuntimeError(message))
        self._pending.clear()

    async def _fork(self, env_name: str) -> tuple[int, int]:
        assert self._zygote is not None and self._zygote.stdin is not None
        self._next += 1
        rid = self._next
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self._zygote.stdin.write(json.dumps({"id": rid, "env": env_name}).encode() + b"\n")
        try:
            reply = await asyncio.wait_for(future, self.ready_timeout)
        finally:
            self._pending.pop(rid, None)
        if "error" in reply:
            raise RuntimeError(f"starting {env_name!r} failed: {reply['error']}")
        return int(reply["pid"]), int(reply["port"])

    # -- plain spawn -----------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _spawn(self, env_name: str) -> AsyncIterator[Runtime]:
        proc = await asyncio.create_subprocess_exec(
            *server_command(self.path, env_name=env_name),
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdout is not None
        tail: deque[str] = deque(maxlen=50)
        port = None
        try:
            async with asyncio.timeout(self.ready_timeout):
                while line := await proc.stdout.readline():
                    text = line.decode("utf-8", "replace").rstrip()
                    if text.startswith(PORT_PREFIX):
                        port = int(text[len(PORT_PREFIX) :])
                        break
                    tail.append(text)
            if port is None:
                code = await proc.wait()
                raise RuntimeError(
                    f"spawned env exited with code {code} before serving {self.path}:\n"
                    + "\n".join(tail)
                )
            drain = asyncio.create_task(_drain(proc.stdout))
            try:
                yield Runtime(f"tcp://127.0.0.1:{port}")
            finally:
                drain.cancel()
        finally:
            await _terminate(proc)

    # -- lifetime --------------------------------------------------------------------
    async def aclose(self) -> None:
        """Stop the warm process (its children, ready ones included, are told to exit)."""
        await self._pool.aclose()
        proc, self._zygote = self._zygote, None
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for reader in self._readers:
            reader.cancel()
        self._readers.clear()

    async def __aenter__(self) -> SubprocessRuntime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _exited(path: Path, code: int | None, stderr: deque[str], lines: int = 20) -> str:
    """The error of a warm environment process that died: its status and stderr tail."""
    if code is None:
        status = "stopped answering"
    elif code < 0:
        try:
            status = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            status = f"was killed by signal {-code}"
    else:
        status = f"exited with code {code}"
    message = f"the environment process for {path} {status} before the rollout started"
    tail = [line for line in stderr if line.strip()][-lines:]
    if tail:
        return message + "; last lines of its stderr:\n" + "\n".join(tail)
    return message + " (it wrote nothing to stderr)"


async def _stop_child(child: tuple[int, int]) -> None:
    """Tell a forked env process (pid, port) to exit."""
    with contextlib.suppress(OSError):
        os.kill(child[0], signal.SIGTERM)


async def _drain(stream: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await stream.read(65536):
            pass


async def _terminate(proc: asyncio.subprocess.Process, grace: float = 10.0) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
