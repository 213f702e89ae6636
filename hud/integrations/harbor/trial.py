"""One Harbor trial's container side: build, start (+ healthcheck), exec, verify, tear down.

Phases follow Harbor 0.25: the environment is built and started (bounded by the build timeout)
and must pass its healthcheck; the agent works; then stale reward files are deleted, ``tests/``
is copied to ``/tests``, ``test.sh`` runs as the verifier user with the verifier's environment
and network under the verifier timeout (stdout/stderr to ``/logs/verifier/test-std*.txt``), and
the reward is read from ``/logs/verifier/reward.json`` first, else ``reward.txt`` (G36).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import io
import json
import logging
import math
import re
import shlex
import shutil
import tarfile
import tempfile
import time
import uuid
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hud.eval.runtimes.docker import (
    Compose,
    DockerError,
    _track,
    _untrack,
    build_image,
    container_logs,
    container_state,
    docker_client,
    ensure_image,
    image_exists,
    in_thread,
    labels,
    remove_container,
    run_cli,
    run_container,
)
from hud.integrations.harbor.taskdir import Artifact, HarborTask
from hud.protocol.errors import HudError

log = logging.getLogger("hud.harbor")

OUTPUT_TAIL = 20_000  # characters of verifier stdout/stderr kept in the grade
#: Bytes of artifact files kept (base64) in the grade frame, hence in the job record's trace;
#: files past it are listed in the manifest as ``skipped``.
ARTIFACT_BYTES = 8 * 1024 * 1024
_build_locks: dict[str, asyncio.Lock] = {}


@dataclass
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False


class RewardError(HudError, ValueError):
    """The verifier left no usable reward."""


def parse_rewards(
    json_text: str | None, txt_text: str | None
) -> tuple[float, dict[str, float], str]:
    """(headline score, every metric, file used): reward.json first, else reward.txt (G36).

    Headline: ``reward`` -> ``score`` -> the sole metric -> the mean of all metrics.
    Empty, non-numeric and non-finite values are rejected.
    """
    if json_text is not None:
        text = json_text.strip()
        if not text:
            raise RewardError("reward.json is empty")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RewardError(f"reward.json is not JSON: {exc}") from None
        if _number(data):
            value = float(data)
            return value, {"reward": value}, "reward.json"
        if not isinstance(data, dict) or not data:
            raise RewardError("reward.json must be an object of numbers")
        metrics: dict[str, float] = {}
        for key, value in data.items():
            if not _number(value):
                raise RewardError(f"reward.json: {key!r} is not a finite number ({value!r})")
            metrics[str(key)] = float(value)
        for key in ("reward", "score"):
            if key in metrics:
                return metrics[key], metrics, "reward.json"
        if len(metrics) == 1:
            return next(iter(metrics.values())), metrics, "reward.json"
        return sum(metrics.values()) / len(metrics), metrics, "reward.json"
    if txt_text is not None:
        text = txt_text.strip()
        if not text:
            raise RewardError("reward.txt is empty")
        try:
            value = float(text)
        except ValueError:
            raise RewardError(f"reward.txt is not a number: {text[:80]!r}") from None
        if not math.isfinite(value):
            raise RewardError(f"reward.txt is not finite: {text!r}")
        return value, {"reward": value}, "reward.txt"
    raise RewardError("the verifier wrote neither /logs/verifier/reward.json nor reward.txt")


def _number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _tar_dir(entries: dict[str, Path], prefix: str) -> bytes:
    """A tar of ``entries`` (archive name under ``prefix`` -> local file or directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        root = tarfile.TarInfo(prefix)
        root.type = tarfile.DIRTYPE
        root.mode = 0o755
        root.mtime = int(time.time())
        tar.addfile(root)
        for name, local in entries.items():
            tar.add(str(local), arcname=f"{prefix}/{name}" if name else prefix, recursive=True)
    return buf.getvalue()


def image_tag(task: HarborTask, bases: str = "") -> str:
    """The tag of the task's built image: the task name and a hash of its environment (plus
    ``bases``, the ids of the images its Dockerfile starts from)."""
    base = "".join(c if c.isalnum() or c in "-_." else "-" for c in task.name.lower())
    digest = task.environment_hash()
    if bases:
        digest = hashlib.sha256(f"{digest}\0{bases}".encode()).hexdigest()
    return f"hud-harbor/{base.strip('-.') or 'task'}:{digest[:12]}"


_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE)
_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?", re.IGNORECASE)


def base_images(dockerfile: Path) -> list[str]:
    """The images a Dockerfile's stages start FROM: not ``scratch``, not an earlier stage;
    ``$ARG`` references resolved from the ``ARG`` defaults declared before the first FROM
    (a reference that stays unresolved is left out)."""
    text = dockerfile.read_text(encoding="utf-8", errors="replace").replace("\\\n", " ")
    args: dict[str, str] = {}
    stages: set[str] = set()
    out: list[str] = []
    seen_from = False
    for line in text.splitlines():
        arg = _ARG.match(line)
        if arg and not seen_from:
            args[arg.group(1)] = (arg.group(2) or "").strip("\"'")
            continue
        match = _FROM.match(line)
        if not match:
            continue
        seen_from = True
        ref = _VAR.sub(lambda m: args.get(m.group(1), m.group(0)), match[1])
        external = ref.lower() != "scratch" and ref.lower() not in stages and "$" not in ref
        if external and ref not in out:
            out.append(ref)
        if match[2]:
            stages.add(match[2].lower())
    return out


def _base_ids(task: HarborTask) -> str:
    """``ref=image id`` of each base image, pulled if missing (`DockerError` when a base can
    neither be found nor pulled: no rollout can start then)."""
    assert task.dockerfile is not None
    parts = []
    for ref in base_images(task.dockerfile):
        ensure_image(ref)
        parts.append(f"{ref}={docker_client().images.get(ref).id}")
    return ";".join(parts)


async def build(
    task: HarborTask, *, timeout: float | None = None, rebuild: bool = False
) -> str | None:
    """The task's main image: ``docker_image`` as is, else built from the environment
    Dockerfile once per content hash and base image ids (tag `image_tag`), so a changed base
    image (re-pulled or rebuilt under the same name) gets a fresh build; ``rebuild`` builds
    again without the layer cache, once per tag in this process. None when the compose file's
    ``main`` brings its own image or build."""
    if task.dockerfile is None:
        if task.docker_image is None and task.compose_file is not None:
            return None
        if task.docker_image is None:
            raise DockerError(f"task {task.name} has no Dockerfile and no docker_image")
        await in_thread(ensure_image, task.docker_image)
        return task.docker_image
    tag = image_tag(task, await in_thread(_base_ids, task))
    lock = _build_locks.setdefault(tag, asyncio.Lock())
    async with lock:
        fresh = rebuild and tag not in _rebuilt
        if not fresh and await in_thread(image_exists, tag):
            return tag
        assert task.env_dir is not None
        dockerfile = str(task.dockerfile.relative_to(task.env_dir))
        await asyncio.wait_for(
            in_thread(
                build_image,
                task.env_dir,
                tag,
                dockerfile=dockerfile,
                timeout=timeout,
                nocache=fresh,
            ),
            timeout,
        )
        if fresh:
            _rebuilt.add(tag)
    return tag


_rebuilt: set[str] = set()


class Trial:
    """The containers of one trial and the operations the phases need."""

    def __init__(self, task: HarborTask, image: str | None) -> None:
        self.task = task
        self.image = image
        self.name = f"hud-harbor-{uuid.uuid4().hex[:12]}"
        self.container = ""
        self.compose: Compose | None = None
        self.workdir: Path | None = None
        self.default_user = "root"
        self.shell = "bash"
        self._network: str | None = None  # current mode of main: public | no-network

    # -- start -----------------------------------------------------------------------------
    async def start(self, *, timeout: float | None = None) -> None:
        """Start the environment, create /logs, pass the healthcheck."""
        began = time.monotonic()
        try:
            if self.task.compose_file is not None:
                await self._start_compose(timeout)
            else:
                await self._start_single()
            await self._prepare()
            await self.set_network(self.task.agent_network_mode)
            remaining = None if timeout is None else max(1.0, timeout - (time.monotonic() - began))
            await self.healthcheck(remaining)
        except BaseException:
            with contextlib.suppress(BaseException):
                await asyncio.shield(self.stop())
            raise

    def _run_kwargs(self) -> dict[str, Any]:
        task = self.task
        kwargs: dict[str, Any] = {}
        if task.cpus:
            kwargs["nano_cpus"] = int(task.cpus * 1e9)
        if task.memory_mb:
            kwargs["mem_limit"] = f"{task.memory_mb}m"
        if task.gpus:
            import docker.types

            kwargs["device_requests"] = [
                docker.types.DeviceRequest(count=task.gpus, capabilities=[["gpu"]])
            ]
        return kwargs

    async def _start_single(self) -> None:
        task = self.task
        _track(self.name, "container")
        kwargs = self._run_kwargs()

        assert self.image is not None

        try:
            self.container = await in_thread(
                run_container,
                self.image,
                name=self.name,
                labels=labels("harbor", **{"io.hud.harbor.task": task.name}),
                env=task.env or None,
                command=["sh", "-c", "sleep infinity"],
                working_dir=task.workdir,
                limits=kwargs,
            )
        except DockerError as exc:
            raise DockerError(f"task {task.name}: {exc}") from None
        self._network = "public"

    async def _start_compose(self, timeout: float | None) -> None:
        task = self.task
        assert task.compose_file is not None and task.env_dir is not None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        main: dict[str, Any] = {"command": ["sh", "-c", "sleep infinity"]}
        if self.image is not None:
            main["image"] = self.image
        if task.env:
            main["environment"] = task.env
        if task.workdir:
            main["working_dir"] = task.workdir
        if task.cpus:
            main["cpus"] = task.cpus
        if task.memory_mb:
            main["mem_limit"] = f"{task.memory_mb}m"
        base_doc = {"services": {"main": main}}
        base_path = self.workdir / "base.json"
        base_path.write_text(json.dumps(base_doc))
        main_image = self.image or f"{image_tag(task)}-main"
        env = {
            "MAIN_IMAGE_NAME": main_image,
            "CONTEXT_DIR": str(task.env_dir),
            "PREBUILT_IMAGE_NAME": main_image,
            "CPUS": str(task.cpus or 1),
            "MEMORY": f"{task.memory_mb or 2048}M",
        }
        files: list[Path] = [base_path, task.compose_file]
        probe = Compose(self.name, files, project_dir=task.env_dir, env=env)
        config = await probe.config()
        services = config.get("services") or {}
        own = labels("harbor", **{"io.hud.harbor.task": task.name})
        override: dict[str, Any] = {"services": {}, "networks": {"default": {"labels": own}}}
        for svc_name, svc in services.items():
            entry: dict[str, Any] = {"labels": own}
            if "build" in svc and (svc_name != "main" or self.image is None):
                entry["image"] = f"{image_tag(task)}-{svc_name}"
            override["services"][svc_name] = entry
        if "main" not in services:
            raise DockerError(f"task {task.name}: the compose project has no 'main' service")
        main_svc = services["main"]
        if self.image is None and not main_svc.get("image") and "build" not in main_svc:
            raise DockerError(f"task {task.name}: the compose 'main' service has no image or build")
        if task.agent_network_mode == "no-network":
            override["networks"]["default"]["internal"] = True
        over_path = self.workdir / "hud.json"
        over_path.write_text(json.dumps(override))
        self.compose = Compose(self.name, [*files, over_path], project_dir=task.env_dir, env=env)
        await self.compose.up(build=False, timeout=timeout)
        self.container = await self.compose.container_id("main")
        self._network = "compose"

    async def _prepare(self) -> None:
        state = await container_state(self.container)
        if not state.get("Running"):
            logs = await container_logs(self.container)
            raise DockerError(
                f"task {self.task.name}: the main container exited right after start "
                f"(exit code {state.get('ExitCode')}); last log lines:\n{logs or '(no output)'}"
            )
        info = await in_thread(docker_client().api.inspect_container, self.container)
        image_user = ((info.get("Config") or {}).get("User") or "").strip()
        self.default_user = self.task.agent_user or image_user or "root"
        result = await self.exec(
            "mkdir -p /logs/agent /logs/verifier /logs/artifacts && "
            "chmod 777 /logs /logs/agent /logs/verifier /logs/artifacts && "
            "if command -v bash >/dev/null 2>&1; then echo bash; else echo sh; fi",
            user="root",
            timeout=60,
        )
        if result.exit_code != 0:
            raise DockerError(
                f"task {self.task.name}: preparing /logs failed (exit {result.exit_code}): "
                f"{(result.stderr or result.stdout).strip()[-500:]}"
            )
        self.shell = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "sh"

    async def healthcheck(self, budget: float | None) -> None:
        """Harbor's healthcheck: probes every ``start_interval`` during ``start_period`` (failures
        not counted), then every ``interval``; more than ``retries`` failures -> error."""
        check = self.task.healthcheck
        if check is None:
            return
        began = time.monotonic()
        failures = 0
        last = ""
        while True:
            result = await self.exec(check.command, timeout=check.timeout)
            if result.exit_code == 0 and not result.timed_out:
                return
            last = (result.stderr or result.stdout).strip()[-300:]
            in_start = time.monotonic() - began < check.start_period
            if not in_start:
                failures += 1
                if failures > check.retries:
                    raise DockerError(
                        f"task {self.task.name}: healthcheck `{check.command}` failed "
                        f"{failures} times (exit {result.exit_code}): {last}"
                    )
            if budget is not None and time.monotonic() - began > budget:
                raise DockerError(
                    f"task {self.task.name}: healthcheck did not pass within {budget:g}s: {last}"
                )
            state = await container_state(self.container)
            if not state.get("Running"):
                raise DockerError(
                    f"task {self.task.name}: the main container stopped during the healthcheck"
                )
            await asyncio.sleep(check.start_interval if in_start else check.interval)

    # -- exec / files ----------------------------------------------------------------------
    async def exec(
        self,
        command: str,
        *,
        user: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """``<shell> -c command`` in the main container (``user`` None = the image default)."""
        argv = ["docker", "exec", *(["-i"] if stdin is not None else [])]
        if user:
            argv += ["-u", user]
        for key, value in (env or {}).items():
            argv += ["-e", f"{key}={value}"]
        argv += [self.container, "sh", "-c", command]
        try:
            code, out, err = await run_cli(argv, timeout=timeout, stdin=stdin)
        except DockerError:
            return ExecResult(-1, "", f"timed out after {timeout:g}s", timed_out=True)
        return ExecResult(code, out, err)

    async def read_file(self, path: str) -> str | None:
        result = await self.exec(f"cat -- {shlex.quote(path)}", user="root", timeout=60)
        return result.stdout if result.exit_code == 0 else None

    async def upload(self, entries: dict[str, Path], dest: str) -> None:
        """Copy local files/dirs (name -> path) into ``dest`` (created, root-owned)."""
        parent, _, leaf = dest.rstrip("/").rpartition("/")
        data = _tar_dir(entries, leaf)
        ok = await in_thread(docker_client().api.put_archive, self.container, parent or "/", data)
        if not ok:
            raise DockerError(f"copying files to {dest} in task {self.task.name} failed")

    async def set_network(self, mode: str) -> None:
        """Single containers: ``no-network`` detaches from the bridge, ``public`` re-attaches."""
        if self._network in (None, "compose") or mode == self._network:
            return
        net = await in_thread(docker_client().networks.get, "bridge")
        if mode == "no-network":
            await in_thread(net.disconnect, self.container)
        else:
            await in_thread(net.connect, self.container)
        self._network = mode

    # -- agent helpers -----------------------------------------------------------------------
    async def run_solution(self, solution_dir: Path | None, extra: dict[str, Path]) -> ExecResult:
        """The oracle's work as Harbor does it: ``solution/`` -> ``/solution``, then solve.sh
        as the agent user with ``[solution].env``; output to ``/logs/agent/oracle.txt``."""
        task = self.task
        entries: dict[str, Path] = {}
        if solution_dir is not None:
            entries.update({p.name: p for p in sorted(solution_dir.iterdir())})
        entries.update(extra)
        await self.exec("rm -rf /solution", user="root", timeout=60)
        await self.upload(entries, "/solution")
        await self.exec("chmod -R a+rX /solution && chmod a+x /solution/*.sh", user="root")
        script = f"/solution/{task.solve_script}"
        return await self.exec(
            f"{script} > /logs/agent/oracle.txt 2>&1",
            user=task.agent_user,
            env=task.solution_env,
            timeout=task.agent_timeout,
        )

    # -- verification ------------------------------------------------------------------------
    async def verify(self, answer: str, *, timeout: float) -> dict[str, Any]:
        """Collect the artifacts, then run the tests; a grade frame dict (``score``,
        ``info.rewards``, outputs, ``info.artifacts`` when there are any)."""
        try:
            artifacts = await self.collect_artifacts()
        except Exception as exc:  # never lose the grade to an artifact problem
            artifacts = {"manifest": [{"source": "*", "status": "error", "error": str(exc)}]}
        frame = await self._verify(answer, timeout=timeout)
        if artifacts["manifest"]:
            frame.setdefault("info", {})["artifacts"] = artifacts
        return frame

    async def collect_artifacts(self) -> dict[str, Any]:
        """As Harbor does after the agent: the declared ``artifacts`` and whatever is under
        ``/logs/artifacts``, fetched from the main container. ``{"manifest": [{source,
        destination, status, files: [{path, size}]}], "files": {path: base64}}`` (paths under
        the trial's artifacts; contents up to `ARTIFACT_BYTES` in all)."""
        wanted = [*self.task.artifacts, Artifact("/logs/artifacts", destination="")]
        manifest: list[dict[str, Any]] = []
        files: dict[str, str] = {}
        budget = ARTIFACT_BYTES
        for artifact in wanted:
            entry: dict[str, Any] = {"source": artifact.source, "files": []}
            dest = (
                artifact.destination
                if artifact.destination is not None
                else artifact.source.rstrip("/").rsplit("/", 1)[-1]
            )
            entry["destination"] = dest
            if artifact.service not in (None, "main"):
                entry["status"] = "skipped"
                entry["error"] = f"artifacts of service {artifact.service!r} are not fetched"
                manifest.append(entry)
                continue
            members = await in_thread(self._fetch, artifact.source)
            if members is None:
                if artifact.destination != "":  # an empty /logs/artifacts is not news
                    entry["status"] = "missing"
                    manifest.append(entry)
                continue
            for rel, data in members:
                if any(fnmatch.fnmatch(rel, pat) for pat in artifact.exclude):
                    continue
                path = "/".join(p for p in (dest, rel) if p)
                item: dict[str, Any] = {"path": path, "size": len(data)}
                if len(data) <= budget:
                    files[path] = b64encode(data).decode()
                    budget -= len(data)
                else:
                    item["skipped"] = "over the size budget"
                entry["files"].append(item)
            entry["status"] = "ok"
            if entry["files"] or artifact.destination != "":
                manifest.append(entry)
        return {"manifest": manifest, "files": files}

    def _fetch(self, source: str) -> list[tuple[str, bytes]] | None:
        """Regular files under ``source`` in the main container: (path relative to it, bytes);
        None when it does not exist. Reads at most `ARTIFACT_BYTES` * 2 of archive."""
        import docker.errors

        try:
            stream, _ = docker_client().api.get_archive(self.container, source)
        except docker.errors.NotFound:
            return None
        buf = io.BytesIO()
        for chunk in stream:
            buf.write(chunk)
            if buf.tell() > 2 * ARTIFACT_BYTES + 1024 * 1024:
                break
        buf.seek(0)
        out: list[tuple[str, bytes]] = []
        with contextlib.suppress(tarfile.TarError), tarfile.open(fileobj=buf) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                parts = member.name.split("/", 1)  # the archive's top is the source itself
                rel = parts[1] if len(parts) > 1 else ""
                handle = tar.extractfile(member)
                if handle is not None:
                    out.append((rel, handle.read()))
        return out

    async def _verify(self, answer: str, *, timeout: float) -> dict[str, Any]:
        task = self.task
        await self.set_network(task.verifier_network_mode)
        prep = await self.exec(
            "rm -rf /tests /logs/verifier/reward.txt /logs/verifier/reward.json "
            "/logs/verifier/test-stdout.txt /logs/verifier/test-stderr.txt && "
            "mkdir -p /logs/verifier && chmod 777 /logs/verifier && "
            "cat > /logs/agent_answer.txt && chmod 444 /logs/agent_answer.txt",
            user="root",
            stdin=answer.encode(),
            timeout=60,
        )
        if prep.exit_code != 0:
            return _error(f"preparing verification failed: {prep.stderr.strip()[-500:]}")
        entries: dict[str, Path] = {}
        if task.tests_dir is not None:
            entries.update({p.name: p for p in sorted(task.tests_dir.iterdir())})
        entries.update(task.extra_test_files)
        await self.upload(entries, "/tests")
        await self.exec(
            f"chmod -R a+rX /tests && chmod a+x /tests/{shlex.quote(task.test_script)}",
            user="root",
        )
        began = time.monotonic()
        result = await self.exec(
            f"/tests/{shlex.quote(task.test_script)} "
            "> /logs/verifier/test-stdout.txt 2> /logs/verifier/test-stderr.txt",
            user=task.verifier_user,
            env=task.verifier_env,
            timeout=timeout,
        )
        elapsed = round(time.monotonic() - began, 3)
        stdout = await self.read_file("/logs/verifier/test-stdout.txt") or ""
        stderr = await self.read_file("/logs/verifier/test-stderr.txt") or ""
        info: dict[str, Any] = {
            "exit_code": None if result.timed_out else result.exit_code,
            "stdout": stdout[-OUTPUT_TAIL:],
            "stderr": (stderr + ("\n" + result.stderr if result.stderr.strip() else ""))[
                -OUTPUT_TAIL:
            ],
            "verifier_seconds": elapsed,
        }
        if result.timed_out:
            info["timed_out"] = True
            return _error(f"the verifier timed out after {timeout:g}s (VerifierTimeoutError)", info)
        json_text = await self.read_file("/logs/verifier/reward.json")
        txt_text = await self.read_file("/logs/verifier/reward.txt")
        if json_text is None and txt_text is None and task.legacy:
            value = 1.0 if result.exit_code == 0 else 0.0
            info.update(rewards={"reward": value}, reward_file=None)
            return {"score": value, "info": info, "content": f"tests exited {result.exit_code}"}
        try:
            score, metrics, used = parse_rewards(json_text, txt_text)
        except RewardError as exc:
            return _error(str(exc), info)
        info.update(rewards=metrics, reward_file=f"/logs/verifier/{used}")
        return {"score": score, "info": info, "content": f"reward {score:g} from {used}"}

    # -- stop ----------------------------------------------------------------------------------
    async def stop(self) -> None:
        try:
            if self.compose is not None:
                await self.compose.down()
            elif self.container or self.name:
                await in_thread(remove_container, self.container or self.name)
        finally:
            _untrack(self.name)
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)

    async def alive(self) -> bool:
        state = await container_state(self.container)
        return bool(state.get("Running"))


def _error(message: str, info: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"score": 0.0, "isError": True, "content": message, "info": dict(info or {})}


async def run_quiet(argv: list[str]) -> None:
    with contextlib.suppress(Exception):
        await run_cli(argv, timeout=60)
