"""`Workspace`: a directory served over SSH (``ssh/2``, the ``shell`` capability).

An asyncssh server on loopback offers exec, an interactive shell with a PTY, and SFTP, with
public-key auth only (an ephemeral ed25519 client key, generated with the host key into a
fresh credentials directory outside the root). Every command runs ``bash -lc <command>``
inside a bubblewrap sandbox when bubblewrap works here (see `hud.capabilities.sandbox`), else
unisolated in the directory, which the manifest (``isolation: "none"``) and a warning say.

Rollouts are kept apart (`hud.capabilities.sessions`): when a task starts, its control
session gets the root (or, while another rollout holds it, a private copy of the prepared
root); its ``hello`` carries a per-session SSH user name that selects it; teardown restores
the root or deletes the copy. With ``track_files`` a ``filetracking/1`` server reports what
each rollout changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import hmac
import inspect
import logging
import os
import posixpath
import secrets
import signal
import struct
import tempfile
import termios
import weakref
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from hud.capabilities.capability import Capability
from hud.capabilities.filetracking import FileTracker, FileTrackingServer
from hud.capabilities.sandbox import (
    DEFAULT_SYSTEM_MOUNTS,
    Mount,
    MountKind,
    bwrap_problem,
    clean_env,
    etc_secrets,
    sandbox_argv,
)
from hud.capabilities.sessions import RootCoordinator, remove_tree
from hud.capabilities.ssh_client import CommandResult
from hud.capabilities.ssh_streams import (
    CHANNEL_EVENTS,
    CHANNEL_GONE,
    channel_to_pipe,
    pipe_to_channel,
)

log = logging.getLogger("hud.workspace")

__all__ = [
    "DEFAULT_SYSTEM_MOUNTS",
    "CommandResult",
    "Mount",
    "MountKind",
    "Peer",
    "ProcessResult",
    "Workspace",
]

#: What the sandboxed SFTP server sees besides the workspace: read-only /usr (and its links)
#: and the user database it insists on.
FILES_ONLY_MOUNTS = (
    *(m for m in DEFAULT_SYSTEM_MOUNTS if m.kind in ("ro", "symlink", "dev") and m.dst != "/etc"),
    Mount("ro", "/etc/passwd", "/etc/passwd", optional=True),
    Mount("ro", "/etc/group", "/etc/group", optional=True),
)
#: Where the OpenSSH SFTP server lives on Debian/Ubuntu and Fedora; run inside the sandbox.
SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server")


@dataclass(frozen=True)
class Peer:
    """A named service the sandbox may reach (accepted for compatibility; with
    ``network=True`` the sandbox shares the host network, without it nothing is reachable)."""

    name: str
    port: int
    target: tuple[str, int] | None = None


@dataclass
class ProcessResult:
    """Result of `Workspace.run` (argv form): raw bytes."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


@dataclass
class _Session:
    """Where one rollout works: its directory, /tmp and home, and its running commands."""

    id: str | None
    dir: Path
    state: Path
    inplace: bool = False
    tracker: FileTracker | None = None
    procs: set[asyncio.subprocess.Process] = field(default_factory=set)
    conns: weakref.WeakSet[asyncssh.SSHServerConnection] = field(default_factory=weakref.WeakSet)
    ended: bool = False

    @property
    def tmp(self) -> Path:
        return self.state / "tmp"

    @property
    def home(self) -> Path:
        return self.state / "home"


def _inside(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


def _private_dir(prefix: str, root: Path, base: str | os.PathLike[str] | None) -> Path:
    """A fresh 0700 directory outside ``root``."""
    if base is not None:
        path = Path(base)
        if _inside(path, root):
            raise ValueError(f"credentials_dir {path} must be outside the workspace root {root}")
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        return path
    candidates = [tempfile.gettempdir(), "/dev/shm", "/var/tmp", str(Path.home() / ".cache")]
    for candidate in candidates:
        if os.path.isdir(candidate) and not _inside(Path(candidate), root):
            return Path(tempfile.mkdtemp(prefix=prefix, dir=candidate))
    raise RuntimeError(f"no temporary directory outside the workspace root {root}")


def _set_ctty() -> None:  # runs in the child between fork and exec
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Workspace:
    """A directory served over SSH, sandboxed with bubblewrap where it works.

    Parameters follow the reference. Ours: ``isolate_sessions`` (each task's rollout starts
    from the prepared root, see the module doc) and ``sandbox`` (None: bubblewrap when it
    works; False: never). ``mounts`` are added to the sandbox. ``allowed_hosts``, ``peers``,
    ``local_aliases`` and ``ports`` are accepted, not enforced: the sandbox has no network
    unless ``network=True``, which shares the host's, loopback services included.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        mounts: Sequence[Mount] = (),
        network: bool = False,
        allowed_hosts: Collection[str] | None = None,
        peers: Sequence[Peer] = (),
        local_aliases: Collection[str] = (),
        ports: Collection[int] = (),
        env: Mapping[str, str] | None = None,
        system_mounts: Sequence[Mount] | None = None,
        guest_path: str = "/workspace",
        host: str = "127.0.0.1",
        port: int = 0,
        user: str = "agent",
        host_key_path: Path | str | None = None,
        authorized_client_keys: list[Path] | None = None,
        track_files: bool = False,
        shell_uid: int | None = None,
        shell_gid: int | None = None,
        require_isolation: bool = False,
        credentials_dir: Path | str | None = None,
        hosts_path: Path | str | None = None,
        hand_over_root: bool = True,
        isolate_sessions: bool = True,
        sandbox: bool | None = None,
    ) -> None:
        self.prepared_root = Path(root).resolve()
        self.mounts = tuple(mounts)
        self.network = network
        self.allowed_hosts = allowed_hosts
        self.peers = tuple(peers)
        self.local_aliases = tuple(local_aliases)
        self.ports = tuple(ports)
        self.env = dict(env or {})
        self.system_mounts = None if system_mounts is None else tuple(system_mounts)
        self.guest_path = guest_path
        self.host = host
        self.requested_port = port
        self.user = user
        self.host_key_path = Path(host_key_path) if host_key_path else None
        self.authorized_client_keys = list(authorized_client_keys or [])
        self.track_files = track_files
        self.shell_uid = shell_uid
        self.shell_gid = shell_gid
        self.require_isolation = require_isolation
        self.credentials_base = credentials_dir
        self.hosts_path = str(hosts_path) if hosts_path else None
        self.hand_over_root = hand_over_root
        self.isolate_sessions = isolate_sessions
        self.sandbox = sandbox
        self.isolation: str | None = None  # "bwrap" | "none" once started
        self.isolation_problem: str | None = None
        self.credentials_dir: Path | None = None
        self._state_dir: Path | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._tracking: FileTrackingServer | None = None
        self._host_key: asyncssh.SSHKey | None = None
        self._client_key: asyncssh.SSHKey | None = None
        self._client_key_text = b""
        self._allowed_keys: set[bytes] = set()
        self._secret = b""
        self._sessions: dict[str, _Session] = {}
        self._tokens: dict[str, str] = {}
        self._retired: set[str] = set()
        self._shared: _Session | None = None
        self._coordinator: RootCoordinator | None = None
        self._sftp_server: str | None = None
        if allowed_hosts or peers or local_aliases or ports:
            log.warning(
                "workspace %s: allowed_hosts/peers/local_aliases/ports are not enforced; the "
                "sandbox %s",
                self.prepared_root,
                "shares the host network" if network else "has no network",
            )

    def __repr__(self) -> str:
        return f"Workspace({str(self.prepared_root)!r}, isolation={self.isolation!r})"

    # -- paths -------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        """The directory the current task's rollout works in (the prepared root outside a
        task). Use it (or `exec`) in templates and graders: while another rollout holds the
        prepared root, a rollout works in a private copy."""
        from hud.environment.environment import current_session_id

        session = self._sessions.get(current_session_id.get() or "")
        return session.dir if session is not None else self.prepared_root

    @property
    def started(self) -> bool:
        return self._acceptor is not None

    @property
    def port(self) -> int:
        assert self._acceptor is not None, "workspace not started"
        return int(self._acceptor.sockets[0].getsockname()[1])

    @property
    def ssh_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ssh://{host}:{self.port}"

    @property
    def ssh_user(self) -> str:
        return self.user

    @property
    def ssh_host_pubkey(self) -> str:
        assert self._host_key is not None, "workspace not started"
        return self._host_key.export_public_key().decode().strip()

    @property
    def ssh_client_key_path(self) -> Path:
        assert self.credentials_dir is not None, "workspace not started"
        return self.credentials_dir / "client_ed25519"

    @property
    def bwrap_available(self) -> bool:
        return bwrap_problem() is None

    @property
    def tracks_files(self) -> bool:
        return self.track_files

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Check the sandbox, make keys, start the SSH (and file tracking) servers."""
        if self._acceptor is not None:
            return
        if not self.prepared_root.is_dir():
            raise FileNotFoundError(f"workspace root is not a directory: {self.prepared_root}")
        if self.sandbox is False:
            problem: str | None = "sandbox=False"
        else:
            problem = await asyncio.to_thread(bwrap_problem)
        if problem is None:
            self.isolation = "bwrap"
            self._sftp_server = next((p for p in SFTP_SERVERS if os.access(p, os.X_OK)), None)
        else:
            if self.require_isolation:
                raise RuntimeError(f"workspace isolation required but unavailable: {problem}")
            self.isolation = "none"
            self.isolation_problem = problem
            log.warning(
                "workspace %s runs commands WITHOUT isolation (%s): the agent can read and "
                "write anything this process can",
                self.prepared_root,
                problem,
            )
        if problem is None:
            await asyncio.to_thread(etc_secrets)  # computed once per process, off the loop
        self._secret = secrets.token_bytes(32)  # after a fork, not shared with siblings
        self.credentials_dir = _private_dir("hud-ssh-", self.prepared_root, self.credentials_base)
        self._state_dir = _private_dir("hud-ws-", self.prepared_root, None)
        identity = self._identity()
        if identity:  # commands run as shell_uid: it must reach its session files
            os.chown(self._state_dir, identity["user"], identity["group"])
        await asyncio.to_thread(self._make_keys)
        if self.shell_uid is not None and self.hand_over_root:
            await asyncio.to_thread(self._chown_root)
        shared_state = self._state_dir / "shared"
        self._shared = _Session(None, self.prepared_root, shared_state)
        await asyncio.to_thread(self._make_state, self._shared)
        if self.isolate_sessions:
            self._coordinator = RootCoordinator(self.prepared_root, self._state_dir.parent)
            await asyncio.to_thread(self._coordinator.open)
        if self.track_files:
            self._shared.tracker = await asyncio.to_thread(FileTracker, self.prepared_root)
            self._tracking = FileTrackingServer(self._tracker_for, self.host)
            await self._tracking.start()
        self._acceptor = await asyncssh.create_server(
            lambda: _SSHServer(self),
            self.host,
            self.requested_port,
            server_host_keys=[self._host_key],
            encoding=None,
            line_editor=False,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            keepalive_interval=15,
            keepalive_count_max=4,
        )
        log.info(
            "workspace %s serving ssh on %s (isolation: %s)",
            self.prepared_root,
            self.ssh_url,
            self.isolation,
        )

    async def stop(self) -> None:
        """End every rollout (restoring the root), stop the servers, delete credentials."""
        for session_id in list(self._sessions):
            await self.end_session(session_id)
        if self._acceptor is not None:
            self._acceptor.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._acceptor.wait_closed(), 5)
            self._acceptor = None
        if self._shared is not None:
            await self._kill(self._shared)
        if self._tracking is not None:
            await self._tracking.close()
            self._tracking = None
        if self._coordinator is not None:
            await asyncio.to_thread(self._coordinator.close)
            self._coordinator = None
        if self._state_dir is not None:
            await asyncio.to_thread(remove_tree, self._state_dir)
            self._state_dir = None
        if self.credentials_dir is not None:
            if self.credentials_base is None:
                await asyncio.to_thread(remove_tree, self.credentials_dir)
            else:  # a directory the author chose: drop only the ephemeral client key
                for name in ("client_ed25519", "client_ed25519.pub"):
                    with contextlib.suppress(FileNotFoundError):
                        (self.credentials_dir / name).unlink()
        self._shared = None

    async def __aenter__(self) -> Workspace:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _make_keys(self) -> None:
        assert self.credentials_dir is not None
        creds = self.credentials_dir
        if self.host_key_path is not None and self.host_key_path.exists():
            self._host_key = asyncssh.read_private_key(self.host_key_path)
        else:
            self._host_key = asyncssh.generate_private_key("ssh-ed25519")
        self._client_key = asyncssh.generate_private_key("ssh-ed25519")
        self._client_key_text = self._client_key.export_private_key()
        files = {
            "host_ed25519": self._host_key.export_private_key(),
            "host_ed25519.pub": self._host_key.export_public_key(),
            "client_ed25519": self._client_key_text,
            "client_ed25519.pub": self._client_key.export_public_key(),
        }
        for name, data in files.items():
            fd = os.open(creds / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        allowed = [self._client_key.convert_to_public()]
        for path in self.authorized_client_keys:
            allowed += asyncssh.read_public_key_list(path)
        self._allowed_keys = {key.public_data for key in allowed}
        (creds / "authorized_keys").write_bytes(b"".join(k.export_public_key() for k in allowed))

    def _chown_root(self) -> None:
        uid = self.shell_uid if self.shell_uid is not None else -1
        gid = self.shell_gid if self.shell_gid is not None else -1
        for parent, dirs, files in os.walk(self.prepared_root):
            for name in (*dirs, *files):
                with contextlib.suppress(OSError):
                    os.lchown(os.path.join(parent, name), uid, gid)
        os.chown(self.prepared_root, uid, gid)

    def _make_state(self, session: _Session) -> None:
        for path in (session.tmp, session.home):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(session.tmp, 0o1777)
        if self.shell_uid is not None:
            for path in (session.state, session.tmp, session.home):
                os.chown(path, self.shell_uid, self.shell_gid if self.shell_gid is not None else -1)

    # -- manifest ----------------------------------------------------------------------------
    def capability(self, name: str = "shell") -> Capability:
        """The ``ssh/2`` binding (private key included; the server withholds it from peers of
        a non-loopback server without a control token)."""
        assert self._client_key is not None, "workspace not started"
        return Capability.ssh(
            self.ssh_url,
            self.ssh_host_pubkey,
            user=self.user,
            client_key=self._client_key_text.decode(),
            client_key_path=str(self.ssh_client_key_path),
            shell="bash",
            cwd=self.guest_path if self.isolation == "bwrap" else str(self.prepared_root),
            isolation=self.isolation,
            name=name,
        )

    def file_tracking_capability(self, name: str = "filetracking") -> Capability:
        """The ``filetracking/1`` binding (needs ``track_files=True``)."""
        if self._tracking is None:
            raise RuntimeError("file tracking is off for this workspace (track_files=False)")
        return Capability.filetracking(self._tracking.url, str(self.prepared_root), name=name)

    def session_token(self, session_id: str) -> str:
        """The token naming a control session's rollout (stable, unguessable)."""
        mac = hmac.new(self._secret, session_id.encode(), hashlib.sha256)
        return mac.hexdigest()[:20]

    def session_params(self, session_id: str | None) -> dict[str, Any]:
        """Per-session ``ssh/2`` params for ``hello``: a user name selecting the session's
        rollout, and its ``cwd`` when it works in a copy without isolation."""
        if session_id is None or not self.isolate_sessions:
            return {}
        params: dict[str, Any] = {"user": f"{self.user}-{self.session_token(session_id)}"}
        session = self._sessions.get(session_id)
        if session is not None and self.isolation != "bwrap":
            params["cwd"] = str(session.dir)
        return params

    def tracking_params(self, session_id: str | None) -> dict[str, Any]:
        """Per-session ``filetracking/1`` params for ``hello``."""
        if session_id is None or not self.isolate_sessions:
            return {}
        return {"session": self.session_token(session_id)}

    # -- rollouts ----------------------------------------------------------------------------
    async def begin_session(self, session_id: str | None) -> None:
        """A task starts in ``session_id``: give it the root or a copy of the prepared root."""
        if session_id is None or not self.isolate_sessions or self._state_dir is None:
            return
        await self.end_session(session_id)
        assert self._coordinator is not None
        state = self._state_dir / "sessions" / session_id
        session = _Session(session_id, state / "root", state)

        def prepare() -> None:
            self._make_state(session)
            assert self._coordinator is not None
            session.dir, session.inplace = self._coordinator.acquire(state / "root")
            if self.track_files:
                session.tracker = FileTracker(session.dir)

        try:
            await asyncio.to_thread(prepare)
        except BaseException:
            if session.inplace:
                assert self._coordinator is not None
                await asyncio.to_thread(self._coordinator.release_inplace)
            await asyncio.to_thread(remove_tree, state)
            raise
        self._sessions[session_id] = session
        self._tokens[self.session_token(session_id)] = session_id

    async def session_ready(self, session_id: str | None) -> None:
        """The task's setup ran: changes from here on are the agent's."""
        session = self._sessions.get(session_id) if session_id else None
        if session is not None and session.tracker is not None:
            await asyncio.to_thread(session.tracker.mark_ready)

    async def end_session(self, session_id: str | None) -> None:
        """The task ended: stop its commands and connections, restore or delete its files."""
        if session_id is None:
            return
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        token = self.session_token(session_id)
        self._tokens.pop(token, None)
        self._retired.add(token)
        session.ended = True
        await self._kill(session)
        for conn in list(session.conns):
            conn.close()

        def cleanup() -> None:
            if session.inplace:
                assert self._coordinator is not None
                self._coordinator.release_inplace()
            remove_tree(session.state)

        await asyncio.to_thread(cleanup)

    def _current(self) -> _Session:
        from hud.environment.environment import current_session_id

        session_id = current_session_id.get()
        if session_id is not None and session_id in self._sessions:
            return self._sessions[session_id]
        found = self._by_rule()
        if isinstance(found, str):
            raise RuntimeError(found)
        return found

    def _by_rule(self) -> _Session | str:
        """The session of a login that names none: the only running rollout, else the
        prepared root when none runs; an error text when several do."""
        active = list(self._sessions.values())
        if len(active) == 1:
            return active[0]
        if not active:
            if self._shared is None:
                return "workspace not started"
            return self._shared
        return (
            f"{len(active)} tasks are running on this workspace; log in with the user name "
            "from your session's hello (or resume the task's session) to reach yours"
        )

    def _for_user(self, username: str) -> _Session | str:
        prefix = f"{self.user}-"
        if username.startswith(prefix):
            token = username[len(prefix) :]
            session_id = self._tokens.get(token)
            if session_id is not None and session_id in self._sessions:
                return self._sessions[session_id]
            if token in self._retired:
                return "this task has ended; its workspace is gone"
        return self._by_rule()

    def _tracker_for(self, token: str | None) -> FileTracker:
        if token is not None:
            session_id = self._tokens.get(token)
            if session_id is not None and session_id in self._sessions:
                session = self._sessions[session_id]
                if session.tracker is not None:
                    return session.tracker
            if token in self._retired:
                raise LookupError("this task has ended; its workspace is gone")
        found = self._by_rule()
        if isinstance(found, str):
            raise LookupError(found)
        if found.tracker is None:
            raise LookupError("file tracking is off for this workspace")
        return found.tracker

    def key_allowed(self, username: str, key: asyncssh.SSHKey) -> bool:
        if username != self.user and not username.startswith(f"{self.user}-"):
            return False
        return key.public_data in self._allowed_keys

    # -- running commands --------------------------------------------------------------------
    def _guest_cwd(self, session: _Session, cwd: str | None) -> str:
        base = self.guest_path if self.isolation == "bwrap" else str(session.dir)
        if not cwd:
            return base
        if self.isolation != "bwrap" and cwd.startswith(self.guest_path):
            # Accept guest paths without isolation too: /workspace/x -> <dir>/x.
            rest = cwd[len(self.guest_path) :]
            if not rest or rest.startswith("/"):
                return base + rest
        return cwd if cwd.startswith("/") else f"{base}/{cwd}"

    def command_argv(
        self,
        command: Sequence[str],
        session: _Session,
        *,
        cwd: str | None = None,
        tty: bool = False,
        files_only: bool = False,
    ) -> tuple[list[str], str | None]:
        """(argv, host cwd) running ``command`` for ``session``: sandboxed or plain.

        ``files_only`` (the SFTP server) sees just the workspace and read-only ``/usr``.
        """
        where = self._guest_cwd(session, cwd)
        if self.isolation != "bwrap":
            return list(command), where
        if files_only:
            argv = sandbox_argv(
                command,
                workspace=str(session.dir),
                guest_path=self.guest_path,
                cwd=where,
                system_mounts=FILES_ONLY_MOUNTS,
                mask_etc=False,
                uid=self.shell_uid,
                gid=self.shell_gid,
            )
            return argv, None
        argv = sandbox_argv(
            command,
            workspace=str(session.dir),
            guest_path=self.guest_path,
            cwd=where,
            tmp=str(session.tmp),
            home=(str(session.home), f"/home/{self.user}"),
            network=self.network,
            system_mounts=self.system_mounts,
            mounts=self.mounts,
            hosts_path=self.hosts_path,
            uid=self.shell_uid,
            gid=self.shell_gid,
            new_session=not tty,
        )
        return argv, None

    def command_env(
        self,
        session: _Session,
        cwd: str | None,
        *,
        term: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        isolated = self.isolation == "bwrap"
        home = f"/home/{self.user}" if isolated else str(session.home)
        merged = {**self.env, **(extra or {})}
        if not isolated:
            merged.setdefault("TMPDIR", str(session.tmp))
        return clean_env(
            home=home, user=self.user, cwd=self._guest_cwd(session, cwd), extra=merged, term=term
        )

    async def _spawn(
        self,
        command: Sequence[str],
        session: _Session,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        tty: int | None = None,
        term: str | None = None,
        stdin: int | None = asyncio.subprocess.PIPE,
        files_only: bool = False,
    ) -> asyncio.subprocess.Process:
        if session.ended:
            raise RuntimeError("this task has ended; its workspace is gone")
        argv, host_cwd = self.command_argv(
            command, session, cwd=cwd, tty=tty is not None, files_only=files_only
        )
        penv = self.command_env(session, cwd, term=term, extra=env)
        identity = self._identity()
        if tty is not None:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=tty,
                stdout=tty,
                stderr=tty,
                cwd=host_cwd,
                env=penv,
                start_new_session=True,
                preexec_fn=_set_ctty,
                **identity,
            )
        else:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=stdin,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=host_cwd,
                env=penv,
                start_new_session=True,
                **identity,
            )
        session.procs.add(proc)
        return proc

    def _identity(self) -> dict[str, Any]:
        """Run commands as ``shell_uid``/``shell_gid`` (when this process may switch)."""
        if self.shell_uid is None or os.geteuid() != 0:
            return {}
        gid = self.shell_gid if self.shell_gid is not None else self.shell_uid
        return {"user": self.shell_uid, "group": gid, "extra_groups": []}

    @staticmethod
    def _kill_group(proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    @staticmethod
    def _kill_proc(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()

    async def _kill(self, session: _Session) -> None:
        procs = list(session.procs)
        for proc in procs:
            self._kill_proc(proc)
        for proc in procs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)
        session.procs.clear()

    async def exec(
        self,
        command: str,
        *,
        cwd: str | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        input: bytes | str | None = None,
    ) -> CommandResult:
        """Run ``bash -lc command`` as the agent would (sandboxed, in the current task's
        workspace); the signature `BashGrader(workspace=...)` expects."""
        session = self._current()
        proc = await self._spawn(["/bin/bash", "-lc", command], session, cwd=cwd, env=env)
        data = input.encode() if isinstance(input, str) else input
        try:
            out, err = await asyncio.wait_for(proc.communicate(data), timeout)
        except TimeoutError:
            self._kill_proc(proc)
            out, err = await proc.communicate()
            return CommandResult(None, _text(out), _text(err), timed_out=True)
        except BaseException:
            self._kill_proc(proc)
            raise
        finally:
            session.procs.discard(proc)
        return CommandResult(_exit_code(proc.returncode), _text(out), _text(err))

    async def run(
        self,
        command: Sequence[str] | str,
        *,
        isolated: bool = False,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        max_wait: float | None = None,
        input: bytes | None = None,
    ) -> ProcessResult:
        """Run an argv in the current task's workspace: on the host (``isolated=False``) or
        in the sandbox. Output comes back as bytes."""
        argv = [command] if isinstance(command, str) else list(command)
        session = self._current()
        if isolated:
            proc = await self._spawn(argv, session, cwd=cwd, env=env)
        else:
            where = cwd if cwd and cwd.startswith("/") else str(session.dir / (cwd or ""))
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=where,
                env={**os.environ, **(env or {})},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
            session.procs.add(proc)
        try:
            out, err = await asyncio.wait_for(proc.communicate(input), max_wait)
        except TimeoutError:
            self._kill_proc(proc)
            out, err = await proc.communicate()
            return ProcessResult(None, out, err, timed_out=True)
        finally:
            session.procs.discard(proc)
        return ProcessResult(proc.returncode, out, err)

    # -- SSH sessions ------------------------------------------------------------------------
    async def _handle_process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        conn = process.get_extra_info("connection")
        username = process.get_extra_info("username") or ""
        session = self._for_user(username)
        if isinstance(session, str):
            process.stderr.write(f"hud workspace: {session}\n".encode())
            process.exit(1)
            return
        session.conns.add(conn)
        try:
            if process.subsystem == "sftp":
                await self._serve_sftp(process, session)
            elif process.subsystem is not None:
                process.stderr.write(f"unknown subsystem {process.subsystem!r}\n".encode())
                process.exit(1)
            else:
                await self._serve_shell(process, session)
        except Exception as exc:
            log.warning("workspace ssh session failed: %r", exc, exc_info=True)
            with contextlib.suppress(Exception):
                process.stderr.write(f"hud workspace: {exc}\n".encode())
                process.exit(255)

    async def _serve_shell(
        self, process: asyncssh.SSHServerProcess[bytes], session: _Session
    ) -> None:
        command = process.command
        argv = ["/bin/bash", "-lc", command] if command is not None else ["/bin/bash", "-l"]
        client_env = {
            k: v
            for k, v in (process.env or {}).items()
            if isinstance(k, str) and isinstance(v, str)
        }
        term = process.term_type
        if not term:
            proc = await self._spawn(argv, session, env=client_env)
            await self._relay(process, proc, session)
            return
        master, slave = os.openpty()
        try:
            cols, rows, *_ = process.term_size
            _set_winsize(slave, cols, rows)
            try:
                proc = await self._spawn(argv, session, env=client_env, tty=slave, term=term)
            finally:
                os.close(slave)
            os.set_blocking(master, False)
            await self._relay(process, proc, session, pty=master)
        finally:
            os.close(master)

    async def _relay(
        self,
        process: asyncssh.SSHServerProcess[bytes],
        proc: asyncio.subprocess.Process,
        session: _Session,
        *,
        pty: int | None = None,
    ) -> None:
        """Copy bytes between the channel and the command until the command exits (then
        report its status) or the client closes the channel (then kill the command)."""
        lost = asyncio.Event()
        if isinstance(process, _ServerProcess):
            process.on_lost = lost.set
        if pty is not None:
            outputs = [asyncio.ensure_future(_pty_to_channel(pty, process.stdout))]
            feeder = asyncio.ensure_future(_channel_to_pty(process, proc, pty))
        else:
            assert proc.stdout is not None and proc.stderr is not None
            outputs = [
                asyncio.ensure_future(pipe_to_channel(proc.stdout, process.stdout)),
                asyncio.ensure_future(pipe_to_channel(proc.stderr, process.stderr)),
            ]
            feeder = asyncio.ensure_future(
                channel_to_pipe(process, proc, lambda event: _signal(proc, event))
            )
        waiter = asyncio.ensure_future(proc.wait())
        gone = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not waiter.done():
                self._kill_proc(proc)
            code = await asyncio.shield(waiter)
            # Background jobs end with the command (as in the sandbox, whose pid namespace
            # dies with it); then the output pipes reach EOF.
            self._kill_group(proc)
            session.procs.discard(proc)
            gone.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*outputs), 10)
            for task in (*outputs, feeder):
                task.cancel()
            if proc.stdin is not None:
                proc.stdin.close()
        if lost.is_set():
            return
        with contextlib.suppress(Exception):
            process.exit(_exit_code(code) or 0)

    async def _serve_sftp(
        self, process: asyncssh.SSHServerProcess[bytes], session: _Session
    ) -> None:
        if self.isolation == "bwrap" and self._sftp_server is not None:
            argv = [self._sftp_server, "-d", self.guest_path]
            proc = await self._spawn(argv, session, files_only=True)
            await self._relay(process, proc, session)
            return
        visible = self.guest_path if self.isolation == "bwrap" else str(session.dir)
        server = _ConfinedSFTPServer(process.channel, session.dir, visible)
        await asyncssh.sftp.run_sftp_server(server, process.stdin, process.stdout, 3)
        with contextlib.suppress(Exception):
            process.exit(0)


async def _pty_to_channel(master: int, dst: Any) -> None:
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(master, ready.set)
    try:
        while True:
            await ready.wait()
            ready.clear()
            try:
                data = os.read(master, 65536)
            except BlockingIOError:
                continue
            except OSError:  # EIO: every holder of the terminal is gone
                return
            if not data:
                return
            dst.write(data)
            await dst.drain()
    except CHANNEL_GONE:
        pass
    finally:
        loop.remove_reader(master)


async def _channel_to_pty(
    process: asyncssh.SSHServerProcess[bytes], proc: asyncio.subprocess.Process, master: int
) -> None:
    with contextlib.suppress(*CHANNEL_GONE):
        while True:
            try:
                data = await process.stdin.read(65536)
            except asyncssh.TerminalSizeChanged as change:
                _set_winsize(master, change.width, change.height)
                continue
            except CHANNEL_EVENTS as event:
                _signal(proc, event)
                continue
            if not data:
                return
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(master, view) :]
                except BlockingIOError:
                    await asyncio.sleep(0.01)


def _set_winsize(fd: int, cols: int, rows: int) -> None:
    if cols and rows:
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _signal(proc: asyncio.subprocess.Process, event: Exception) -> None:
    """Forward a client's signal (or break, as SIGINT) to the command's process group."""
    if isinstance(event, asyncssh.TerminalSizeChanged):
        return
    name = getattr(event, "signal", "INT") if isinstance(event, asyncssh.SignalReceived) else "INT"
    signum = getattr(signal, f"SIG{name}", None)
    if signum is not None and proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signum)


class _SSHServer(asyncssh.SSHServer):
    """Public-key auth only, with the workspace's keys; nothing forwarded."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self.ws.key_allowed(username, key)

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        return _ServerProcess(self.ws._handle_process, None, 0, False)


class _ServerProcess(asyncssh.SSHServerProcess[bytes]):
    """A server process that also receives ``sftp`` subsystem sessions (asyncssh would
    otherwise serve SFTP in-process, outside the sandbox)."""

    on_lost: Any = None

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == "sftp"

    def connection_lost(self, exc: Exception | None) -> None:
        if self.on_lost is not None:
            self.on_lost()
        super().connection_lost(exc)

    def session_started(self) -> None:
        chan = self.channel
        if chan.get_subsystem() != "sftp":
            super().session_started()
            return
        stdin = asyncssh.SSHReader[bytes](self, chan)
        stdout = asyncssh.SSHWriter[bytes](self, chan)
        stderr = asyncssh.SSHWriter[bytes](self, chan, asyncssh.EXTENDED_DATA_STDERR)
        handler = self._start_process(stdin, stdout, stderr)
        if inspect.isawaitable(handler):
            chan.get_connection().create_task(handler, stdin.logger)


class _ConfinedSFTPServer(asyncssh.SFTPServer):
    """SFTP over ``local`` shown as ``visible`` (as under chroot, ``..`` stops there); paths
    resolving outside, through symlinks too, are refused. Used when the sandboxed OpenSSH
    sftp-server is unavailable (without isolation the shell can reach more anyway)."""

    def __init__(self, chan: Any, local: Path, visible: str) -> None:
        super().__init__(chan)
        self._local = os.fsencode(os.path.realpath(local))
        self._visible = os.fsencode(visible.rstrip("/") or "/")

    def _inside(self, real: bytes) -> bool:
        return real == self._local or real.startswith(self._local.rstrip(b"/") + b"/")

    def _resolved(self, local: bytes) -> bytes:
        """``local`` with every symlink followed; refused unless it stays inside."""
        real = os.fsencode(os.path.realpath(local))
        if not self._inside(real):
            raise asyncssh.SFTPPermissionDenied("outside the workspace")
        return real

    def map_path(self, path: bytes) -> bytes:
        """Client path -> local path; the parent directory must resolve inside (the last
        component is left as is, so links can be listed, read and removed)."""
        full = posixpath.normpath(posixpath.join(self._visible, path))
        base = self._visible.rstrip(b"/")
        if full == self._visible or base.startswith(full.rstrip(b"/") + b"/") or full == b"/":
            return self._local  # the root or above it: clamped, as a chroot would
        if not full.startswith(base + b"/"):
            raise asyncssh.SFTPPermissionDenied("outside the workspace")
        local = posixpath.join(self._local, full[len(base) + 1 :])
        self._resolved(posixpath.dirname(local))
        return local

    def reverse_map_path(self, path: bytes) -> bytes:
        if path == self._local:
            return self._visible
        if path.startswith(self._local + b"/"):
            return self._visible.rstrip(b"/") + path[len(self._local) :]
        raise asyncssh.SFTPNoSuchFile("not found")

    # Calls that follow a final symlink check where it leads.
    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> Any:
        self._resolved(self.map_path(path))
        return super().open(path, pflags, attrs)

    def open56(self, path: bytes, *args: Any) -> Any:
        self._resolved(self.map_path(path))
        return super().open56(path, *args)

    def stat(self, path: bytes) -> Any:
        self._resolved(self.map_path(path))
        return super().stat(path)

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> Any:
        self._resolved(self.map_path(path))
        return super().setstat(path, attrs)

    def statvfs(self, path: bytes) -> Any:
        self._resolved(self.map_path(path))
        return super().statvfs(path)

    def realpath(self, path: bytes) -> Any:
        return self.reverse_map_path(self._resolved(self.map_path(path)))

    def link(self, oldpath: bytes, newpath: bytes) -> Any:
        self._resolved(self.map_path(oldpath))
        return super().link(oldpath, newpath)

    def scandir(self, path: bytes) -> Any:
        self._resolved(self.map_path(path))
        return super().scandir(path)


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


def _exit_code(code: int | None) -> int | None:
    if code is None:
        return None
    return 128 - code if code < 0 else code
