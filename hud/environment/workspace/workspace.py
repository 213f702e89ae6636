"""`Workspace`: a directory served over SSH (``ssh/2``, the ``shell`` capability).

An asyncssh server on loopback (`sshserver`) offers exec, an interactive shell with a PTY
(`relay`), and SFTP (`sftp`), with public-key auth only (`keys`: an ephemeral ed25519 client
key, generated with the host key into a fresh credentials directory outside the root). Every
command runs ``bash -lc <command>`` inside a bubblewrap sandbox when bubblewrap works here
(`sandbox`), else unisolated in the directory, which the manifest (``isolation: "none"``) and
a warning say; `processes` starts and kills them.

Rollouts are kept apart (`routing`, `sessions`): when a task starts, its control session gets
the root (or, while another rollout holds it, a private copy of the prepared root); its
``hello`` carries a per-session SSH user name that selects it; teardown restores the root or
deletes the copy. With ``track_files`` a ``filetracking/1`` server reports what each rollout
changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import asyncssh

from hud.capabilities import Capability, CommandResult
from hud.environment.workspace.files import exists_beneath, open_beneath
from hud.environment.workspace.filetracking import FileTracker, FileTrackingServer
from hud.environment.workspace.keys import CLIENT_KEY, Keys, make_keys, private_dir
from hud.environment.workspace.limits import (
    CgroupSupport,
    Limits,
    RolloutCgroup,
    bind_nosuid,
    coerce_limits,
    detect_cgroups,
    mount_tmpfs,
    sweep_stale,
    tmpfs_problem,
    unmount,
)
from hud.environment.workspace.processes import exit_code, identity, kill_all, kill_proc, spawn
from hud.environment.workspace.routing import Session, SessionTable
from hud.environment.workspace.sandbox import (
    Mount,
    SessionSandbox,
    bwrap_problem,
    etc_secrets,
)
from hud.environment.workspace.sessions import RootCoordinator, WorkspaceBroken, remove_tree
from hud.environment.workspace.sftp import find_sftp_server
from hud.environment.workspace.sshserver import create_server
from hud.protocol.errors import HudError

log = logging.getLogger("hud.workspace")


@dataclass(frozen=True)
class Peer:
    """A named service the sandbox may reach (the official package's type; with
    ``network=True`` the sandbox shares the host network, without it nothing is reachable)."""

    name: str
    port: int
    target: tuple[str, int] | None = None


class WorkspaceLimitError(HudError, RuntimeError):
    """A rollout broke its workspace's resource limits (its grade is an error)."""


@dataclass
class ProcessResult:
    """Result of `Workspace.run` (argv form): raw bytes."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


class Workspace:
    """A directory served over SSH, sandboxed with bubblewrap where it works.

    Parameters follow the reference. Ours: ``isolate_sessions`` (each task's rollout starts
    from the prepared root, see the module doc) and ``sandbox`` (None: bubblewrap when it
    works; False: never). ``mounts`` are added to the sandbox. The sandbox has no network
    unless ``network=True``, which shares the host's, loopback services included.
    ``allowed_hosts``, ``peers``, ``local_aliases`` and ``ports`` are accepted so that env files
    written for the official package run unchanged, but not enforced (a warning says so): the
    sandbox never reaches more than ``network`` allows.

    ``limits`` bound each rollout (`Limits`: 512 processes, 1 GiB of memory, one CPU and a
    1 GiB workspace by default; a mapping overrides some, ``False`` turns them off). They need
    cgroups and tmpfs mounts (root, usually); where those are unavailable the workspace warns
    loudly and runs unlimited, or refuses to start with ``require_limits=True``.
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
        limits: Limits | Mapping[str, Any] | bool | None = True,
        require_limits: bool = False,
    ) -> None:
        self.prepared_root = Path(root).resolve()
        self.mounts = tuple(mounts)
        self.network = network
        self.allowed_hosts = allowed_hosts
        self.peers = tuple(peers)
        self.local_aliases = tuple(local_aliases)
        self.ports = tuple(ports)
        if allowed_hosts or peers or local_aliases or ports:
            log.warning(
                "workspace %s: allowed_hosts/peers/local_aliases/ports are not enforced; the "
                "sandbox %s",
                self.prepared_root,
                "shares the host network" if network else "has no network",
            )
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
        self.limits = coerce_limits(limits)
        self.require_limits = require_limits
        #: How limits are enforced once started: "cgroup-v1"/"cgroup-v2" (+ "tmpfs"), or "none".
        self.enforcement: str | None = None
        self.limits_problem: str | None = None
        self.isolation: str | None = None  # "bwrap" | "none" once started
        self.isolation_problem: str | None = None
        self.credentials_dir: Path | None = None
        self.keys: Keys | None = None
        self.sessions = SessionTable(user)
        self._state_dir: Path | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._tracking: FileTrackingServer | None = None
        self._coordinator: RootCoordinator | None = None
        self._sftp_server: str | None = None
        self._sandboxing: SessionSandbox | None = None
        self._cgroups: CgroupSupport | None = None
        self._mount = False
        self._root_bound = False

    def __repr__(self) -> str:
        return f"Workspace({str(self.prepared_root)!r}, isolation={self.isolation!r})"

    # -- paths -------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        """The directory the current task's rollout works in (the prepared root outside a
        task). Use it (or `exec`) in templates and graders: while another rollout holds the
        prepared root, a rollout works in a private copy."""
        from hud.environment.environment import current_session_id

        session = self.sessions.get(current_session_id.get())
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
        assert self.keys is not None, "workspace not started"
        return self.keys.host.export_public_key().decode().strip()

    @property
    def ssh_client_key_path(self) -> Path:
        assert self.credentials_dir is not None, "workspace not started"
        return self.credentials_dir / CLIENT_KEY

    @property
    def bwrap_available(self) -> bool:
        return bwrap_problem() is None

    @property
    def tracks_files(self) -> bool:
        return self.track_files

    @property
    def sandboxing(self) -> SessionSandbox:
        """How commands run (set when started)."""
        assert self._sandboxing is not None, "workspace not started"
        return self._sandboxing

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
            self._sftp_server = find_sftp_server()
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
        self._sandboxing = SessionSandbox(
            isolated=self.isolation == "bwrap",
            guest_path=self.guest_path,
            user=self.user,
            network=self.network,
            system_mounts=self.system_mounts,
            mounts=self.mounts,
            hosts_path=self.hosts_path,
            uid=self.shell_uid,
            gid=self.shell_gid,
            env=dict(self.env),
        )
        self.credentials_dir = private_dir("hud-ssh-", self.prepared_root, self.credentials_base)
        self._state_dir = private_dir(f"hud-ws-{os.getpid()}-", self.prepared_root, None)
        try:
            await asyncio.to_thread(self._check_limits, self._state_dir)
            if self._mount or self._cgroups is not None:
                await asyncio.to_thread(sweep_stale, self._cgroups, self._state_dir.parent)
        except BaseException:
            await asyncio.to_thread(remove_tree, self._state_dir)
            raise
        who = identity(self.shell_uid, self.shell_gid)
        if who:  # commands run as shell_uid: it must reach its session files
            os.chown(self._state_dir, who["user"], who["group"])
        self.keys = await asyncio.to_thread(
            make_keys, self.credentials_dir, self.host_key_path, self.authorized_client_keys
        )
        if self.shell_uid is not None and self.hand_over_root:
            await asyncio.to_thread(self._chown_root)
        shared = Session(None, self.prepared_root, self._state_dir / "shared")
        await asyncio.to_thread(self._make_state, shared)
        if self._cgroups is not None and self.limits is not None:
            shared.cgroup = self._new_cgroup("shared", self.limits)
            await asyncio.to_thread(shared.cgroup.create)
        self.sessions.shared = shared
        if self._mount and not self.isolate_sessions:
            # Every command works in the root itself: nothing it leaves there is setuid.
            await asyncio.to_thread(bind_nosuid, self.prepared_root)
            self._root_bound = True
        if self.isolate_sessions:
            self._coordinator = RootCoordinator(
                self.prepared_root, self._state_dir.parent, mount=self._mount
            )
            await asyncio.to_thread(self._coordinator.open)
        if self.track_files:
            shared.tracker = await asyncio.to_thread(FileTracker, self.prepared_root)
            self._tracking = FileTrackingServer(self.sessions.tracker_for, self.host)
            await self._tracking.start()
        self._acceptor = await create_server(self, self.host, self.requested_port)
        log.info(
            "workspace %s serving ssh on %s (isolation: %s)",
            self.prepared_root,
            self.ssh_url,
            self.isolation,
        )

    async def stop(self) -> None:
        """End every rollout (restoring the root), stop the servers, delete credentials."""
        for session_id in list(self.sessions.sessions):
            await self.end_session(session_id)
        if self._acceptor is not None:
            self._acceptor.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._acceptor.wait_closed(), 5)
            self._acceptor = None
        if self.sessions.shared is not None:
            await kill_all(self.sessions.shared)
            if self.sessions.shared.cgroup is not None:
                await asyncio.to_thread(self.sessions.shared.cgroup.remove)
        if self._tracking is not None:
            await self._tracking.close()
            self._tracking = None
        if self._coordinator is not None:
            await asyncio.to_thread(self._coordinator.close)
            self._coordinator = None
        if self._root_bound:
            await asyncio.to_thread(unmount, self.prepared_root)
            self._root_bound = False
        if self._state_dir is not None:
            await asyncio.to_thread(remove_tree, self._state_dir)
            self._state_dir = None
        if self.credentials_dir is not None:
            if self.credentials_base is None:
                await asyncio.to_thread(remove_tree, self.credentials_dir)
            else:  # a directory the author chose: drop only the ephemeral client key
                for name in (CLIENT_KEY, f"{CLIENT_KEY}.pub"):
                    with contextlib.suppress(FileNotFoundError):
                        (self.credentials_dir / name).unlink()
        self.sessions.shared = None

    async def __aenter__(self) -> Workspace:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _check_limits(self, scratch: Path) -> None:
        """Find how `limits` can be enforced here; warn (or, with ``require_limits``, refuse)
        when they cannot (blocking)."""
        if self.limits is None:
            self.enforcement = "none"
            return
        problems = []
        support = detect_cgroups() if self.limits.cgroup_needed else None
        if isinstance(support, str):
            problems.append(f"no cgroups: {support}")
        else:
            self._cgroups = support
        mount_problem = tmpfs_problem(scratch)
        if mount_problem is not None:
            problems.append(f"no tmpfs mounts: {mount_problem}")
        self._mount = mount_problem is None
        parts = [self._cgroups.label] if self._cgroups is not None else []
        self.enforcement = "+".join([*parts, "tmpfs"] if self._mount else parts) or "none"
        if not problems:
            return
        self.limits_problem = "; ".join(problems)
        message = (
            f"workspace {self.prepared_root}: resource limits cannot be enforced "
            f"({self.limits_problem})"
        )
        if self.require_limits:
            raise RuntimeError(
                f"{message}; run as root on Linux, or pass limits=False to run without them"
            )
        log.warning(
            "%s: a runaway or hostile agent can exhaust this machine's processes, memory or "
            "disk, and what it writes in the workspace is not mounted nosuid (pass "
            "require_limits=True to refuse to start instead)",
            message,
        )

    def _new_cgroup(self, label: str, limits: Limits) -> RolloutCgroup:
        assert self._cgroups is not None
        name = f"hud-ws-{os.getpid()}-{label}-{secrets.token_hex(4)}"
        return RolloutCgroup(self._cgroups, name, limits)

    def _chown_root(self) -> None:
        uid = self.shell_uid if self.shell_uid is not None else -1
        gid = self.shell_gid if self.shell_gid is not None else -1
        for parent, dirs, files in os.walk(self.prepared_root):
            for name in (*dirs, *files):
                with contextlib.suppress(OSError):
                    os.lchown(os.path.join(parent, name), uid, gid)
        os.chown(self.prepared_root, uid, gid)

    def _make_state(self, session: Session) -> None:
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
        assert self.keys is not None, "workspace not started"
        return Capability.ssh(
            self.ssh_url,
            self.ssh_host_pubkey,
            user=self.user,
            client_key=self.keys.client_text.decode(),
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
        assert self.keys is not None, "workspace not started"
        return self.keys.session_token(session_id)

    def session_params(self, session_id: str | None) -> dict[str, Any]:
        """Per-session ``ssh/2`` params for ``hello``: a user name selecting the session's
        rollout, and its ``cwd`` when it works in a copy without isolation."""
        if session_id is None or not self.isolate_sessions:
            return {}
        params: dict[str, Any] = {"user": f"{self.user}-{self.session_token(session_id)}"}
        session = self.sessions.get(session_id)
        if session is not None and self.isolation != "bwrap":
            params["cwd"] = str(session.dir)
        return params

    def tracking_params(self, session_id: str | None) -> dict[str, Any]:
        """Per-session ``filetracking/1`` params for ``hello``."""
        if session_id is None or not self.isolate_sessions:
            return {}
        return {"session": self.session_token(session_id)}

    def key_allowed(self, username: str, key: asyncssh.SSHKey) -> bool:
        if username != self.user and not username.startswith(f"{self.user}-"):
            return False
        return self.keys is not None and self.keys.allows(key)

    # -- rollouts ----------------------------------------------------------------------------
    async def begin_session(
        self, session_id: str | None, limits: Mapping[str, Any] | None = None
    ) -> None:
        """A task starts in ``session_id``: give it the root or a copy of the prepared root,
        its own cgroup and tmpfs (`limits`, with the task's ``limits`` overrides)."""
        if session_id is None or not self.isolate_sessions or self._state_dir is None:
            return
        await self.end_session(session_id)
        assert self._coordinator is not None
        state = self._state_dir / "sessions" / session_id
        session = Session(session_id, state / "root", state)
        own = self.limits.merged(limits) if self.limits is not None else None

        def prepare() -> None:
            assert self._coordinator is not None
            if self._mount and own is not None:
                state.mkdir(parents=True, exist_ok=True)
                mount_tmpfs(state, own.disk_mb, 0o755)
                session.state_mounted = True
            self._make_state(session)
            if self._cgroups is not None and own is not None and own.cgroup_needed:
                session.cgroup = self._new_cgroup("task", own)
                session.cgroup.create()
            disk_mb = own.disk_mb if own is not None else None
            try:
                session.dir, session.inplace = self._coordinator.acquire(state / "root", disk_mb)
            except OSError as exc:
                if exc.errno == 28:  # ENOSPC: the copy does not fit the tmpfs
                    raise OSError(
                        exc.errno,
                        f"the prepared workspace does not fit its disk limit ({disk_mb} MiB); "
                        "raise Workspace(limits={'disk_mb': ...})",
                    ) from exc
                raise
            if self.track_files:
                session.tracker = FileTracker(session.dir)

        try:
            await asyncio.to_thread(prepare)
        except BaseException:
            await asyncio.to_thread(self._release, session)
            raise
        self.sessions.add(session, self.session_token(session_id))

    async def session_ready(self, session_id: str | None) -> None:
        """The task's setup ran: changes from here on are the agent's."""
        session = self.sessions.get(session_id) if session_id else None
        if session is not None and session.tracker is not None:
            await asyncio.to_thread(session.tracker.mark_ready)

    async def end_session(self, session_id: str | None) -> None:
        """The task ended: stop its commands and connections, restore or delete its files."""
        if session_id is None or self.keys is None:
            return
        session = self.sessions.pop(session_id, self.session_token(session_id))
        if session is None:
            return
        session.ended = True
        await kill_all(session)
        for conn in list(session.conns):
            conn.close()
        await asyncio.to_thread(self._release, session)

    def _release(self, session: Session) -> None:
        """Kill what is left of a rollout, give back the root (or drop the copy), remove its
        cgroup and tmpfs (blocking). A root that cannot be restored is marked broken."""
        if session.cgroup is not None:
            session.cgroup.remove()
        try:
            if session.inplace:
                assert self._coordinator is not None
                session.inplace = False
                self._coordinator.release_inplace()
        except WorkspaceBroken as exc:
            log.error("%s", exc)
        finally:
            if session.state_mounted:
                try:
                    unmount(session.state)
                    session.state_mounted = False
                except OSError as exc:
                    log.error("workspace: cannot unmount %s: %s", session.state, exc)
            if not session.state_mounted:
                remove_tree(session.state)

    async def check_session(self, session_id: str | None) -> None:
        """Raise `WorkspaceLimitError` when the rollout ran into its limits (before grading:
        such a rollout ends as an error)."""
        session = self.sessions.get(session_id)
        if session is None or session.cgroup is None:
            return
        breach = await asyncio.to_thread(session.cgroup.breach)
        if breach is not None:
            raise WorkspaceLimitError(f"the rollout broke its workspace limits: {breach}")

    def _current(self) -> Session:
        from hud.environment.environment import current_session_id

        found = self.sessions.current(current_session_id.get())
        if isinstance(found, str):
            raise RuntimeError(found)
        return found

    # -- running commands --------------------------------------------------------------------
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
        proc = await spawn(
            self.sandboxing, ["/bin/bash", "-lc", command], session, cwd=cwd, env=env
        )
        data = input.encode() if isinstance(input, str) else input
        try:
            out, err = await asyncio.wait_for(proc.communicate(data), timeout)
        except TimeoutError:
            kill_proc(proc)
            out, err = await proc.communicate()
            return CommandResult(None, _text(out), _text(err), timed_out=True)
        except BaseException:
            kill_proc(proc)
            raise
        finally:
            session.procs.discard(proc)
        return CommandResult(exit_code(proc.returncode), _text(out), _text(err))

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
            proc = await spawn(self.sandboxing, argv, session, cwd=cwd, env=env)
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
            kill_proc(proc)
            out, err = await proc.communicate()
            return ProcessResult(None, out, err, timed_out=True)
        finally:
            session.procs.discard(proc)
        return ProcessResult(proc.returncode, out, err)

    # -- safe file access (graders) ------------------------------------------------------------
    def open(
        self, path: str | os.PathLike[str], mode: str = "r", encoding: str = "utf-8"
    ) -> IO[Any]:
        """Open a file of the current rollout for reading (``mode`` "r" or "rb"): ``path`` is
        relative to `root` (or absolute under ``/workspace``, as the agent sees it) and must
        stay beneath it. Links are followed only while they stay inside; ``..``, absolute
        links or links leading out raise `WorkspacePathError`. Use these in graders instead
        of ``open(ws.root / path)``, which follows a link the agent planted."""
        if mode not in ("r", "rb", "rt"):
            raise ValueError(f"Workspace.open reads only ('r' or 'rb'), not {mode!r}")
        fd = open_beneath(self.root, path, self.guest_path)
        raw = os.fdopen(fd, "rb")
        if mode == "rb":
            return raw
        return io.TextIOWrapper(raw, encoding=encoding)

    def read_bytes(self, path: str | os.PathLike[str]) -> bytes:
        """The bytes of a file of the current rollout (see `open`)."""
        with self.open(path, "rb") as fh:
            data: bytes = fh.read()
            return data

    def read_text(self, path: str | os.PathLike[str], encoding: str = "utf-8") -> str:
        """The text of a file of the current rollout (see `open`)."""
        with self.open(path, "r", encoding=encoding) as fh:
            text: str = fh.read()
            return text

    def exists(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` exists in the current rollout (see `open`; a link leading out
        raises `WorkspacePathError`)."""
        return exists_beneath(self.root, path, self.guest_path)


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")
