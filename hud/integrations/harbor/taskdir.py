"""Reading Harbor task directories: ``task.toml`` (Harbor) and ``task.yaml`` (legacy
Terminal-Bench), with findings carrying stable codes."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hud.protocol.errors import HudError

#: Failure codes (stable; ``harbor.invalid.*`` = broken task, ``harbor.unsupported.*`` = valid
#: Harbor we do not run).
CODES = {
    "harbor.invalid.config": "task.toml / task.yaml cannot be read",
    "harbor.invalid.missing_instruction": "no instruction.md (or task.yaml instruction)",
    "harbor.invalid.missing_tests": "no tests/test.sh (or run-tests.sh)",
    "harbor.invalid.no_environment": "no environment Dockerfile, compose file or docker_image",
    "harbor.invalid.main_service": "the compose file's main service has no image or build",
    "harbor.invalid.healthcheck": "[environment.healthcheck] is malformed",
    "harbor.invalid.timeout": "a timeout is not a positive number",
    "harbor.unsupported.steps": "multi-step tasks ([[steps]])",
    "harbor.unsupported.separate_verifier": "verifier environment_mode = separate",
    "harbor.unsupported.skills_dir": "[environment].skills_dir",
    "harbor.unsupported.mcp_servers": "[[environment.mcp_servers]]",
    "harbor.unsupported.network_allowlist": "network_mode = allowlist",
    "harbor.unsupported.os": "a non-linux [environment].os",
    "harbor.unsupported.compose_include": "compose include/extends",
    "harbor.unsupported.legacy_compose": "legacy multi-service compose projects",
}

COMPOSE_NAMES = ("docker-compose.yaml", "docker-compose.yml", "compose.yaml", "compose.yml")
NETWORK_MODES = ("public", "no-network", "allowlist")


class TaskDirError(HudError, ValueError):
    """A task directory that cannot run; ``code`` is one of `CODES`."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Healthcheck:
    command: str
    interval: float = 5.0
    timeout: float = 30.0
    start_period: float = 0.0
    start_interval: float = 5.0
    retries: int = 3


@dataclass(frozen=True)
class Artifact:
    """A ``task.toml`` ``artifacts`` entry: a path in the container fetched after the agent
    (``destination`` under the trial's artifacts; default: the source's base name)."""

    source: str
    destination: str | None = None
    exclude: tuple[str, ...] = ()
    service: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "exclude": list(self.exclude),
            "service": self.service,
        }


def _artifacts(value: Any) -> list[Artifact]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TaskDirError("harbor.invalid.config", "artifacts must be a list")
    out = []
    for item in value:
        if isinstance(item, str):
            item = {"source": item}
        if not isinstance(item, dict) or not isinstance(item.get("source"), str):
            raise TaskDirError(
                "harbor.invalid.config",
                "each artifacts entry is a path or a table with a 'source' path",
            )
        source = item["source"].strip()
        if not source.startswith("/"):
            raise TaskDirError(
                "harbor.invalid.config", f"artifact source {source!r} must be an absolute path"
            )
        exclude = item.get("exclude") or []
        if isinstance(exclude, str):
            exclude = [exclude]
        destination = item.get("destination")
        service = item.get("service")
        out.append(
            Artifact(
                source=source,
                destination=str(destination).strip("/") if destination else None,
                exclude=tuple(str(e) for e in exclude),
                service=str(service) if service else None,
            )
        )
    return out


@dataclass
class HarborTask:
    """One parsed task directory."""

    path: Path
    name: str
    instruction: str
    legacy: bool = False
    description: str = ""
    keywords: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    agent_timeout: float | None = None
    agent_user: str | None = None
    agent_network: str | None = None
    verifier_timeout: float = 600.0
    verifier_user: str | None = None
    verifier_env: dict[str, str] = field(default_factory=dict)
    verifier_network: str | None = None
    solution_env: dict[str, str] = field(default_factory=dict)
    build_timeout: float = 600.0
    docker_image: str | None = None
    cpus: float | None = None
    memory_mb: int | None = None
    storage_mb: int | None = None
    gpus: int | None = None
    network_mode: str = "public"
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    healthcheck: Healthcheck | None = None
    env_dir: Path | None = None
    dockerfile: Path | None = None
    compose_file: Path | None = None
    tests_dir: Path | None = None
    test_script: str = "test.sh"
    extra_test_files: dict[str, Path] = field(default_factory=dict)
    solution_dir: Path | None = None
    solve_script: str = "solve.sh"
    extra_solution_files: dict[str, Path] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)

    @property
    def agent_network_mode(self) -> str:
        return self.agent_network or self.network_mode

    @property
    def verifier_network_mode(self) -> str:
        return self.verifier_network or self.network_mode

    def environment_hash(self) -> str:
        """Hash of the environment tree and the settings that shape the container."""
        digest = hashlib.sha256()
        if self.env_dir is not None and self.env_dir.is_dir():
            skip = {self.path / "tests", self.path / "solution"} if self.legacy else set()
            for item in sorted(self.env_dir.rglob("*")):
                if any(item == s or s in item.parents for s in skip):
                    continue
                if item.is_file():
                    digest.update(str(item.relative_to(self.env_dir)).encode() + b"\0")
                    digest.update(item.read_bytes())
        settings = {
            "docker_image": self.docker_image,
            "cpus": self.cpus,
            "memory_mb": self.memory_mb,
            "storage_mb": self.storage_mb,
            "gpus": self.gpus,
            "network_mode": self.network_mode,
            "env": self.env,
            "workdir": self.workdir,
            "healthcheck": self.healthcheck.__dict__ if self.healthcheck else None,
            "dockerfile": self.dockerfile.name if self.dockerfile else None,
            "compose": self.compose_file.name if self.compose_file else None,
            "agent_user": self.agent_user,
            "agent_network": self.agent_network,
            "verifier_user": self.verifier_user,
            "verifier_network": self.verifier_network,
            "verifier_env": self.verifier_env,
            "legacy": self.legacy,
        }
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
        return digest.hexdigest()


def is_task_dir(path: Path) -> bool:
    return (path / "task.toml").is_file() or (path / "task.yaml").is_file()


def is_dataset_dir(path: Path) -> bool:
    return path.is_dir() and any(is_task_dir(p) for p in path.iterdir() if p.is_dir())


def is_harbor_path(path: str | Path) -> bool:
    """A Harbor task directory or a directory of them."""
    path = Path(path)
    return path.is_dir() and (is_task_dir(path) or is_dataset_dir(path))


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(values: dict[str, Any]) -> dict[str, str]:
    """``${VAR}`` / ``${VAR:-default}`` filled from this process's environment."""

    def sub(match: re.Match[str]) -> str:
        return os.environ.get(match.group(1), match.group(2) or "")

    return {str(k): _VAR.sub(sub, str(v)) for k, v in (values or {}).items()}


def _seconds(value: Any, what: str, default: float | None) -> float | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TaskDirError("harbor.invalid.timeout", f"{what} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise TaskDirError("harbor.invalid.timeout", f"{what} must be > 0, got {value!r}")
    return float(value)


def _duration(value: Any, default: float) -> float:
    """Healthcheck durations: numbers (seconds) or strings such as ``5s``, ``1m``, ``500ms``."""
    if value is None:
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h)?\s*", str(value))
    if not match:
        raise TaskDirError("harbor.invalid.healthcheck", f"bad duration {value!r}")
    number = float(match.group(1))
    return number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]


def _memory_mb(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)i?B?\s*", str(value), re.IGNORECASE)
    if not match:
        return None
    scale = {"": 1 / (1024 * 1024), "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    return int(float(match.group(1)) * scale[match.group(2).upper()])


def _healthcheck(data: Any) -> Healthcheck | None:
    if data is None:
        return None
    if not isinstance(data, dict) or not data.get("command"):
        raise TaskDirError("harbor.invalid.healthcheck", "healthcheck needs a command")
    command = data["command"]
    if isinstance(command, list):
        import shlex

        command = " ".join(shlex.quote(str(c)) for c in command)
    try:
        retries = int(data.get("retries", 3))
    except (TypeError, ValueError):
        raise TaskDirError("harbor.invalid.healthcheck", "retries must be an integer") from None
    return Healthcheck(
        command=str(command),
        interval=_duration(data.get("interval_sec", data.get("interval")), 5.0),
        timeout=_duration(data.get("timeout_sec", data.get("timeout")), 30.0),
        start_period=_duration(data.get("start_period_sec", data.get("start_period")), 0.0),
        start_interval=_duration(data.get("start_interval_sec", data.get("start_interval")), 5.0),
        retries=max(0, retries),
    )


def _network(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if value not in NETWORK_MODES:
        raise TaskDirError("harbor.invalid.config", f"{where} network_mode {value!r} is unknown")
    if value == "allowlist":
        raise TaskDirError(
            "harbor.unsupported.network_allowlist",
            f"{where} network_mode = allowlist needs an egress proxy, which is not supported",
        )
    return str(value)


def _user(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def load_task(path: str | Path) -> HarborTask:
    """Parse one task directory; `TaskDirError` (with a stable code) if it cannot run."""
    path = Path(path).resolve()
    if (path / "task.toml").is_file():
        return _load_toml(path)
    if (path / "task.yaml").is_file():
        return _load_legacy(path)
    raise TaskDirError("harbor.invalid.config", f"{path} has no task.toml or task.yaml")


def _load_toml(path: Path) -> HarborTask:
    try:
        data = tomllib.loads((path / "task.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TaskDirError("harbor.invalid.config", f"task.toml: {exc}") from None
    if data.get("steps"):
        raise TaskDirError("harbor.unsupported.steps", "multi-step tasks are not supported")
    instruction_file = path / "instruction.md"
    if not instruction_file.is_file():
        raise TaskDirError("harbor.invalid.missing_instruction", "instruction.md is missing")
    section = data.get("task") or {}
    agent = data.get("agent") or {}
    verifier = data.get("verifier") or {}
    solution = data.get("solution") or {}
    env = data.get("environment") or {}
    mode = verifier.get("environment_mode") or (
        "separate" if verifier.get("environment") else "shared"
    )
    if mode != "shared":
        raise TaskDirError(
            "harbor.unsupported.separate_verifier",
            "a separate verifier environment is not supported (use environment_mode = shared)",
        )
    if env.get("skills_dir"):
        raise TaskDirError("harbor.unsupported.skills_dir", "skills_dir is not supported")
    if env.get("mcp_servers"):
        raise TaskDirError("harbor.unsupported.mcp_servers", "MCP servers are not supported")
    if str(env.get("os") or "linux").lower() != "linux":
        raise TaskDirError("harbor.unsupported.os", f"os = {env.get('os')!r}")
    network = env.get("network_mode")
    if network is None and "allow_internet" in env:
        network = "public" if env.get("allow_internet") else "no-network"
    tests_dir = path / "tests"
    script = next((s for s in ("test.sh",) if (tests_dir / s).is_file()), None)
    if script is None:
        raise TaskDirError("harbor.invalid.missing_tests", "tests/test.sh is missing")
    env_dir = path / "environment"
    dockerfile = env_dir / "Dockerfile"
    compose = next((env_dir / n for n in COMPOSE_NAMES if (env_dir / n).is_file()), None)
    image = env.get("docker_image")
    if not dockerfile.is_file() and compose is None and not image:
        raise TaskDirError(
            "harbor.invalid.no_environment",
            "environment/ has no Dockerfile or docker-compose.yaml and no docker_image is set",
        )
    if compose is not None:
        text = compose.read_text(encoding="utf-8", errors="replace")
        if re.search(r"^\s*(include|extends)\s*:", text, re.MULTILINE):
            raise TaskDirError(
                "harbor.unsupported.compose_include", "compose include/extends is not supported"
            )
    solution_dir = path / "solution"
    storage = env.get("storage_mb")
    return HarborTask(
        path=path,
        name=path.name,
        instruction=instruction_file.read_text(encoding="utf-8"),
        description=str(section.get("description") or ""),
        keywords=[str(k) for k in section.get("keywords") or []],
        metadata=dict(data.get("metadata") or {}),
        agent_timeout=_seconds(agent.get("timeout_sec"), "[agent].timeout_sec", None),
        agent_user=_user(agent.get("user")),
        agent_network=_network(agent.get("network_mode"), "[agent]"),
        verifier_timeout=_seconds(verifier.get("timeout_sec"), "[verifier].timeout_sec", 600.0)
        or 600.0,
        verifier_user=_user(verifier.get("user")),
        verifier_env=expand_env(verifier.get("env") or {}),
        verifier_network=_network(verifier.get("network_mode"), "[verifier]"),
        solution_env=expand_env(solution.get("env") or {}),
        build_timeout=_seconds(
            env.get("build_timeout_sec"), "[environment].build_timeout_sec", 600.0
        )
        or 600.0,
        docker_image=str(image) if image else None,
        cpus=float(env["cpus"]) if env.get("cpus") else None,
        memory_mb=int(env["memory_mb"]) if env.get("memory_mb") else _memory_mb(env.get("memory")),
        storage_mb=int(storage) if storage else _memory_mb(env.get("storage")),
        gpus=int(env["gpus"]) if env.get("gpus") else None,
        network_mode=_network(network, "[environment]") or "public",
        env=expand_env(env.get("env") or {}),
        workdir=str(env["workdir"]) if env.get("workdir") else None,
        healthcheck=_healthcheck(env.get("healthcheck")),
        env_dir=env_dir if env_dir.is_dir() else None,
        dockerfile=dockerfile if dockerfile.is_file() else None,
        compose_file=compose,
        tests_dir=tests_dir,
        test_script=script,
        solution_dir=solution_dir if (solution_dir / "solve.sh").is_file() else None,
        artifacts=_artifacts(data.get("artifacts")),
    )


def _load_legacy(path: Path) -> HarborTask:
    try:
        import yaml
    except ImportError:
        raise TaskDirError(
            "harbor.invalid.config", "legacy task.yaml needs PyYAML (pip install pyyaml)"
        ) from None
    try:
        data = yaml.safe_load((path / "task.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise TaskDirError("harbor.invalid.config", f"task.yaml: {exc}") from None
    if not isinstance(data, dict):
        raise TaskDirError("harbor.invalid.config", "task.yaml must be a mapping")
    instruction = data.get("instruction") or data.get("descriptions")
    if isinstance(instruction, list) and instruction:
        instruction = (
            instruction[0].get("description") if isinstance(instruction[0], dict) else None
        )
    if not isinstance(instruction, str) or not instruction.strip():
        raise TaskDirError("harbor.invalid.missing_instruction", "task.yaml has no instruction")
    script = path / "run-tests.sh"
    if not script.is_file():
        raise TaskDirError("harbor.invalid.missing_tests", "run-tests.sh is missing")
    dockerfile = path / "Dockerfile"
    if not dockerfile.is_file():
        raise TaskDirError("harbor.invalid.no_environment", "the legacy task has no Dockerfile")
    compose = next((path / n for n in COMPOSE_NAMES if (path / n).is_file()), None)
    if compose is not None:
        try:
            services = (yaml.safe_load(compose.read_text(encoding="utf-8")) or {}).get("services")
        except yaml.YAMLError as exc:
            raise TaskDirError("harbor.invalid.config", f"{compose.name}: {exc}") from None
        if isinstance(services, dict) and len(services) > 1:
            raise TaskDirError(
                "harbor.unsupported.legacy_compose",
                f"legacy compose with several services ({', '.join(services)})",
            )
    tests_dir = path / "tests"
    solution = path / "solution.sh"
    extra_tests = {"run-tests.sh": script}
    return HarborTask(
        path=path,
        name=path.name,
        instruction=instruction,
        legacy=True,
        description=str(data.get("description") or ""),
        keywords=[str(t) for t in data.get("tags") or []],
        metadata={
            k: data[k] for k in ("author_name", "difficulty", "category", "tags") if k in data
        },
        agent_timeout=_seconds(data.get("max_agent_timeout_sec"), "max_agent_timeout_sec", 360.0),
        verifier_timeout=_seconds(data.get("max_test_timeout_sec"), "max_test_timeout_sec", 60.0)
        or 60.0,
        verifier_env={"TEST_DIR": "/tests"},
        env_dir=path,
        dockerfile=dockerfile,
        tests_dir=tests_dir if tests_dir.is_dir() else None,
        test_script="run-tests.sh",
        extra_test_files=extra_tests,
        solution_dir=None,
        solve_script="solution.sh",
        extra_solution_files={"solution.sh": solution} if solution.is_file() else {},
    )
