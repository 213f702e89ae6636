"""`SSHClient`: commands and files over an ``ssh/2`` capability (what ``open("shell")`` returns).

Authenticates with the binding's private key (``params.client_key``, else
``params.client_key_path``) as ``params.user``; the host key is not checked (the binding comes
over the control channel); keepalive every 15 s, 4 misses; up to 3 reconnects when a command
cannot open its channel. Opened through `HudClient.open`, the connection runs over the control
port's tunnel.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hud.capabilities import Capability, CommandResult

log = logging.getLogger("hud.ssh")

KEEPALIVE_INTERVAL = 15
KEEPALIVE_COUNT_MAX = 4
MAX_RECONNECTS = 3


_ERRORS: tuple[tuple[str, type[OSError]], ...] = (
    ("No such file or directory", FileNotFoundError),
    ("Permission denied", PermissionError),
    ("Read-only file system", PermissionError),
    ("Is a directory", IsADirectoryError),
    ("Not a directory", NotADirectoryError),
)


def file_error(path: str, stderr: str) -> OSError:
    """An `OSError` subclass matching a failed ``cat``/``ls``'s message."""
    text = stderr.strip() or "failed"
    for needle, kind in _ERRORS:
        if needle in text:
            return kind(f"{path}: {text}")
    return OSError(f"{path}: {text}")


class SSHClient:
    """An SSH connection to one ``ssh/2`` capability."""

    def __init__(self, capability: Capability, conn: Any) -> None:
        self.capability = capability
        self._conn = conn
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<SSHClient {self.capability.name} {self.capability.url}>"

    @property
    def user(self) -> str:
        return str(self.capability.params.get("user") or "agent")

    @property
    def cwd(self) -> str | None:
        cwd = self.capability.params.get("cwd")
        return cwd if isinstance(cwd, str) else None

    @property
    def connection(self) -> Any:
        """The underlying `asyncssh.SSHClientConnection`."""
        return self._conn

    @classmethod
    async def connect(cls, capability: Capability, *, timeout: float = 30.0) -> SSHClient:
        """Connect and authenticate; `ConnectionError` when the server cannot be reached."""
        conn = await _dial(capability, timeout)
        return cls(capability, conn)

    async def _reconnect(self) -> None:
        async with self._lock:
            if self._conn is not None and not _closed(self._conn):
                return
            self._conn = await _dial(self.capability, 30.0)

    async def _channel_call(self, call: Any) -> Any:
        import asyncssh

        attempt = 0
        while True:
            if self._conn is None or _closed(self._conn):
                await self._reconnect()
            try:
                return await call(self._conn)
            except (asyncssh.ChannelOpenError, asyncssh.ConnectionLost, ConnectionError) as exc:
                if attempt >= MAX_RECONNECTS or not _closed(self._conn):
                    raise ConnectionError(f"ssh to {self.capability.name!r} failed: {exc}") from exc
                attempt += 1
                log.info("ssh connection to %s lost; reconnecting", self.capability.name)

    # -- commands ----------------------------------------------------------------------------
    async def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        cwd: str | None = None,
        input: str | bytes | None = None,
    ) -> CommandResult:
        """Run ``command`` (``bash -lc`` on the server) and collect its output as text."""
        code, out, err, timed_out = await self._run(_with_cwd(command, cwd), timeout, input)
        return CommandResult(code, as_text(out), as_text(err), timed_out)

    async def exec(
        self, command: str, *, cwd: str | None = None, timeout: float | None = None
    ) -> CommandResult:
        """`run` with the signature `BashGrader(workspace=...)` expects."""
        return await self.run(command, cwd=cwd, timeout=timeout)

    async def _run(
        self, command: str, timeout: float | None, input: str | bytes | None
    ) -> tuple[int | None, bytes, bytes, bool]:
        """(exit code, stdout, stderr, timed out), output as bytes."""
        import asyncssh

        data = input.encode() if isinstance(input, str) else input

        async def call(conn: Any) -> Any:
            return await conn.create_process(command, encoding=None)

        process = await self._channel_call(call)
        try:
            if data:
                process.stdin.write(data)
            process.stdin.write_eof()
            done = await process.wait(check=False, timeout=timeout)
        except asyncssh.TimeoutError as exc:
            # Closing the channel makes the server kill the command.
            return None, _bytes(exc.stdout), _bytes(exc.stderr), True
        finally:
            process.close()
        code = done.exit_status
        if code is None or code < 0:
            code = _signal_code(done.exit_signal)
        return code, _bytes(done.stdout), _bytes(done.stderr), False

    # -- files -------------------------------------------------------------------------------
    async def read_file(self, path: str, *, timeout: float | None = None) -> bytes:
        """The file's bytes (``cat``); `FileNotFoundError` and friends on failure."""
        code, out, err, timed_out = await self._run(f"cat -- {shlex.quote(path)}", timeout, None)
        _check(path, code, err, timed_out)
        return out

    async def read_text(
        self, path: str, *, encoding: str = "utf-8", timeout: float | None = None
    ) -> str:
        return (await self.read_file(path, timeout=timeout)).decode(encoding, errors="replace")

    async def write_file(
        self,
        path: str,
        data: bytes | str,
        *,
        timeout: float | None = None,
        parents: bool = False,
    ) -> None:
        """Create or replace the file with ``data`` (``cat >``); ``parents`` creates missing
        directories first."""
        payload = data.encode() if isinstance(data, str) else bytes(data)
        command = f"cat > {shlex.quote(path)}"
        if parents:
            parent = shlex.quote(posixpath.dirname(path) or ".")
            command = f"mkdir -p -- {parent} && {command}"
        code, _, err, timed_out = await self._run(command, timeout, payload)
        _check(path, code, err, timed_out)

    async def list_dir(self, path: str = ".", *, timeout: float | None = None) -> list[str]:
        """Entry names (``ls -1A``), hidden ones included, sorted."""
        command = f"ls -1A -- {shlex.quote(path)}"
        code, out, err, timed_out = await self._run(command, timeout, None)
        _check(path, code, err, timed_out)
        return sorted(line for line in as_text(out).split("\n") if line)

    async def sftp(self) -> Any:
        """An `asyncssh.SFTPClient` on this connection (close it when done)."""

        async def call(conn: Any) -> Any:
            return await conn.start_sftp_client()

        return await self._channel_call(call)

    # -- lifetime ----------------------------------------------------------------------------
    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            try:
                await asyncio.wait_for(conn.wait_closed(), 5)
            except (TimeoutError, Exception):
                pass

    async def __aenter__(self) -> SSHClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _check(path: str, code: int | None, err: bytes, timed_out: bool) -> None:
    if timed_out:
        raise TimeoutError(f"{path}: timed out")
    if code != 0:
        raise file_error(path, as_text(err))


def _bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


def as_text(value: Any) -> str:
    """Command output as text (bytes decoded as UTF-8, undecodable bytes replaced)."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _signal_code(name: str | None) -> int | None:
    import signal

    if not name:
        return None
    try:
        return 128 + int(getattr(signal, f"SIG{name}"))
    except (AttributeError, TypeError, ValueError):
        return None


def _with_cwd(command: str, cwd: str | None) -> str:
    if not cwd:
        return command
    return f"cd -- {shlex.quote(cwd)} || exit $?\n{command}"


def _closed(conn: Any) -> bool:
    transport = getattr(conn, "_transport", None)
    return conn is None or transport is None or transport.is_closing()


async def _dial(capability: Capability, timeout: float) -> Any:
    import asyncssh

    parts = urlsplit(capability.url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 22
    params = capability.params
    keys: list[Any] = []
    if isinstance(params.get("client_key"), str) and params["client_key"].strip():
        keys.append(asyncssh.import_private_key(params["client_key"]))
    elif isinstance(params.get("client_key_path"), str):
        keys.append(asyncssh.read_private_key(Path(params["client_key_path"])))
    else:
        raise ValueError(
            f"capability {capability.name!r} has no client_key or client_key_path (a server on "
            "a non-loopback address shares them only with clients that sent its control token)"
        )
    user = str(params.get("user") or parts.username or "agent")
    try:
        return await asyncio.wait_for(
            asyncssh.connect(
                host,
                port,
                username=user,
                client_keys=keys,
                known_hosts=None,
                agent_path=None,
                keepalive_interval=KEEPALIVE_INTERVAL,
                keepalive_count_max=KEEPALIVE_COUNT_MAX,
                preferred_auth="publickey",
            ),
            timeout,
        )
    except (OSError, asyncssh.ConnectionLost, asyncssh.DisconnectError) as exc:
        raise ConnectionError(f"ssh to {capability.name!r} at {host}:{port} failed: {exc}") from exc
    except TimeoutError as exc:
        raise ConnectionError(f"ssh to {capability.name!r} at {host}:{port} timed out") from exc


async def open_ssh(capability: Capability) -> SSHClient:
    """The `HudClient.open` factory for ``ssh/2``."""
    return await SSHClient.connect(capability)
