"""A pre-forking parent of the platform's local worker processes: ``python -m
hud.platform.workers.zygote``.

A fresh ``--serve`` worker (`hud.platform.workers.rollout`) spends about a CPU-second before
it can run anything: the interpreter, hud, the Docker SDK, the model SDK. The zygote pays for
that once: it imports what a worker imports ahead of its first rollout, opens no connection and
starts no thread, then forks a worker per request. A forked worker creates what is its own
after the fork (its Docker client, event loop, threads) and runs `serve` on the same
stdin/stdout line protocol as a spawned one.

The zygote holds nothing secret: it starts with the environment a spawned worker gets (no key)
and never sees a spec; a worker receives its specs on its own stdin pipe, straight from the
platform.

The exchange with the platform (`Zygote`): the zygote's stdin is one end of a Unix
``SOCK_SEQPACKET`` pair, on which each request ``fork ID`` carries two descriptors (the read
end of the worker's stdin pipe, the write end of its stdout pipe); its stdout carries the
replies, one a line: ``ready`` once it is loaded, ``forked ID PID``, and ``exit PID CODE``
once a worker has exited (``CODE`` negative: killed by that signal). The zygote dies with the
platform (``PR_SET_PDEATHSIG``), and its workers die with it. When the platform closes the
control socket, the zygote forks no more and exits once its last worker has.

One container watchdog (`hud.eval.runtimes.reaper` ``--many``), started by the zygote, watches
all its workers: a worker killed by a signal has its containers removed, and so have all the
workers when the zygote itself dies. A forked worker therefore starts no watchdog of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import select
import signal
import socket
import subprocess
import sys

from hud.protocol.errors import HudError

log = logging.getLogger("hud.platform.workers")

#: Seconds the zygote gets to import everything and say ``ready``.
START_TIMEOUT = 30.0
#: Seconds a fork request gets for its reply.
FORK_TIMEOUT = 10.0


# -- the zygote process ------------------------------------------------------------------------


def _load() -> None:
    """Import what a worker uses before and during its first rollout (`rollout.main`,
    `rollout._warm_up`); nothing here connects or starts a thread."""
    import ctypes  # noqa: F401

    import docker  # noqa: F401

    import hud.agents.factory
    import hud.eval.runner
    import hud.eval.runtimes.docker
    import hud.platform.client.report
    import hud.platform.client.reporter
    import hud.types.task  # noqa: F401
    from hud.platform.workers.rollout import _preload

    _preload("openai_compatible")
    import importlib

    for name in FIRST_ROLLOUT:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


#: Modules a worker's first rollout would import otherwise (its model client's resources and
#: HTTP transport, measured on an ``openai_compatible`` rollout); missing ones are skipped.
FIRST_ROLLOUT = (
    "openai.resources.chat",
    "openai.lib.streaming.chat",
    "openai.pagination",
    "anyio._backends._asyncio",
    "httpcore",
    "httpcore2",
    "h11",
    "jiter",
    "truststore",
    "difflib",
    "hud.eval.taskset",
)


def _start_watchdog() -> int | None:
    """The container watchdog of all this zygote's workers: the write end of its stdin, or
    None if it could not start (the workers then start their own)."""
    read_fd, write_fd = os.pipe()
    try:
        subprocess.Popen(
            [sys.executable, "-m", "hud.eval.runtimes.reaper", "--many"],
            stdin=read_fd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,  # signals meant for the platform's group spare it
        )
    except OSError:
        os.close(write_fd)
        return None
    finally:
        os.close(read_fd)
    return write_fd


def _owner(pid: int) -> str:
    """The owner label value of the containers of worker ``pid`` (`docker.owner_id`)."""
    return f"{socket.gethostname()}:{pid}"


def serve_forks() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the platform ends it (stdin, or its death)
    control = socket.socket(fileno=os.dup(0))
    replies = os.dup(1)
    quiet = os.open(os.devnull, os.O_RDWR)
    os.dup2(quiet, 0)
    os.dup2(quiet, 1)  # prints of libraries cannot garble the replies
    os.close(quiet)
    _load()
    watchdog = _start_watchdog()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    import gc

    gc.freeze()  # the imported objects stay shared with the workers (no collector writes)

    def say(line: str) -> None:
        os.write(replies, (line + "\n").encode())

    def tell_watchdog(line: str) -> None:
        nonlocal watchdog
        if watchdog is not None:
            try:
                os.write(watchdog, (line + "\n").encode())
            except OSError:
                watchdog = None

    own = [fd for fd in (replies, wake_r, wake_w, watchdog) if fd is not None]
    children: set[int] = set()
    open_ = True
    say("ready")
    while open_ or children:
        watched = [control.fileno(), wake_r] if open_ else [wake_r]
        readable, _, _ = select.select(watched, [], [])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 512):
                    pass
        if open_ and control.fileno() in readable:
            try:
                message, fds, _flags, _addr = socket.recv_fds(control, 1024, 4)
            except OSError:
                message, fds = b"", []
            if not message:
                open_ = False
                control.close()
            parts = message.decode(errors="replace").split()
            if len(parts) == 2 and parts[0] == "fork" and len(fds) == 2:
                zygote = os.getpid()
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the worker
                    _worker(fds[0], fds[1], control, own, watchdog is not None, zygote)
                children.add(pid)
                tell_watchdog(f"+{_owner(pid)}")
                say(f"forked {parts[1]} {pid}")
            for fd in fds:
                os.close(fd)
        while children:  # reap
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid not in children:  # the watchdog (it outlives the zygote, in practice)
                continue
            children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            # a worker that exited removed its containers itself; a killed one did not
            tell_watchdog(f"{'-' if code < 0 else '='}{_owner(pid)}")
            say(f"exit {pid} {code}")
    return 0


def _die_with_parent() -> None:  # pragma: no cover - runs in the worker
    """``PR_SET_PDEATHSIG`` (as `hud.platform.workers.ray.die_with_parent`, whose module the
    zygote does not import: it loads the platform's services)."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))


def _worker(  # pragma: no cover
    stdin: int,
    stdout: int,
    control: socket.socket,
    inherited: list[int],
    watched: bool,
    zygote: int,
) -> None:
    """The forked worker: its own signals, its pipes on stdin and stdout, then `serve`;
    it exits as an interpreter does (atexit handlers: its containers are removed)."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _die_with_parent()
        # ``zygote`` is the pid the zygote had before forking: had it died before the line
        # above, this process would have a new parent already (taken after the fork, the
        # parent's pid would be that new parent's, and the worker would outlive its zygote)
        if os.getppid() != zygote:
            os._exit(1)
        os.dup2(stdin, 0)
        os.dup2(stdout, 1)
        os.close(stdin)
        os.close(stdout)
        control.close()
        for other in inherited:
            with contextlib.suppress(OSError):
                os.close(other)
        if watched:
            from hud.eval.runtimes.docker import watched_from_outside

            watched_from_outside()
        from hud.platform.workers.rollout import serve

        code = serve()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        import atexit

        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):
                stream.flush()
        os._exit(code)


def main() -> None:
    sys.exit(serve_forks())


# -- the platform's side -----------------------------------------------------------------------


class ZygoteError(HudError, RuntimeError):
    """The zygote did not start, or did not fork."""


class ForkedProcess:
    """A worker forked by a `Zygote`: what `hud.platform.workers.local` uses of an
    `asyncio.subprocess.Process`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.pid = 0
        self.stdin = writer
        self.stdout = reader
        self.returncode: int | None = None
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def _exited(self, code: int) -> None:
        if self.returncode is not None:
            return
        self.returncode = code
        if not self._exit.done():
            self._exit.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None or not self.pid:
            raise ProcessLookupError(self.pid)
        os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


async def _streams(
    read_fd: int, write_fd: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Asyncio streams over our ends of a worker's stdout and stdin pipes (as
    `asyncio.subprocess` makes them)."""
    loop = asyncio.get_running_loop()
    reading = os.fdopen(read_fd, "rb", 0)
    writing = os.fdopen(write_fd, "wb", 0)
    try:
        reader = asyncio.StreamReader(loop=loop)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), reading)
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, writing
        )
    except BaseException:
        reading.close()
        writing.close()
        raise
    return reader, asyncio.StreamWriter(transport, protocol, None, loop)


class Zygote:
    """The platform's handle on a zygote process (see the module's docstring)."""

    def __init__(self, env: dict[str, str], cwd: str) -> None:
        self.env = env
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self._control: socket.socket | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[ForkedProcess, asyncio.Future[None]]] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._reader: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return (
            self.proc is not None
            and self.proc.returncode is None
            and self._reader is not None
            and not self._reader.done()
        )

    async def start(self) -> None:
        from hud.platform.workers.ray import die_with_parent

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hud.platform.workers.zygote",
                stdin=theirs.fileno(),
                stdout=asyncio.subprocess.PIPE,
                env=self.env,
                cwd=self.cwd,
                preexec_fn=die_with_parent,  # a killed platform takes it (and its workers) along
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._control = ours
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT)
        except BaseException:
            self.close(kill=True)
            raise
        if line.strip() != b"ready":
            self.close(kill=True)
            raise ZygoteError("the worker zygote exited before it was ready")
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def fork(self) -> ForkedProcess:
        """A new worker process, its stdin and stdout connected to us."""
        if not self.alive or self._control is None:
            raise ZygoteError("the worker zygote is not running")
        # pipes, as a spawned worker's: what its own children inherit of its stdin does not
        # hold its stdout open
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        theirs = [stdin_r, stdout_w]
        try:
            reader, writer = await _streams(stdout_r, stdin_w)
        except BaseException:
            for fd in theirs:
                os.close(fd)
            raise
        proc = ForkedProcess(reader, writer)
        forked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rid = next(self._ids)
        self._pending[rid] = (proc, forked)
        try:
            try:
                socket.send_fds(self._control, [f"fork {rid}".encode()], theirs)
            except OSError as exc:  # gone, or (never in practice) a full socket
                raise ZygoteError(f"the worker zygote is unreachable ({exc})") from None
            finally:
                for fd in theirs:
                    os.close(fd)
            await asyncio.wait_for(forked, FORK_TIMEOUT)
        except BaseException:
            self._pending.pop(rid, None)
            writer.close()
            raise
        return proc

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                parts = line.decode(errors="replace").split()
                with contextlib.suppress(ValueError, IndexError):
                    if parts[0] == "forked":
                        proc, forked = self._pending.pop(int(parts[1]))
                        proc.pid = int(parts[2])
                        self._children[proc.pid] = proc
                        if not forked.done():
                            forked.set_result(None)
                    elif parts[0] == "exit":
                        child = self._children.pop(int(parts[1]), None)
                        if child is not None:
                            child._exited(int(parts[2]))
        finally:
            # gone: its workers die with it (PR_SET_PDEATHSIG), their statuses unknown
            for _proc, forked in self._pending.values():
                if not forked.done():
                    forked.set_exception(ZygoteError("the worker zygote exited"))
            self._pending.clear()
            for child in self._children.values():
                child._exited(-signal.SIGKILL)
            self._children.clear()
            if self._control is not None:
                self._control.close()
                self._control = None

    def close(self, *, kill: bool = False) -> None:
        """No more forks: the zygote exits once its workers have (at once with ``kill``)."""
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.shutdown(socket.SHUT_RDWR)
            self._control.close()
            self._control = None
        if kill and self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def aclose(self, timeout: float = 5.0) -> None:
        self.close()
        if self.proc is not None:
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.close(kill=True)
                with contextlib.suppress(Exception):
                    await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await self._reader


if __name__ == "__main__":
    main()
