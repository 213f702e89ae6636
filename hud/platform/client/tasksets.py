"""A platform taskset as a local task source: `hud eval "<taskset name>" <agent> --runtime docker`
runs its rows on this machine, each in a fresh container of its environment's latest deployed
image, with the environment's secrets injected (spec platform.md §4, §13)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hud.platform.client.api import PlatformAPI, PlatformAPIError
from hud.platform.client.sync import normalize_name, record_to_row
from hud.protocol.errors import HudError

log = logging.getLogger("hud.platform.tasksets")


class PlatformTasksetError(HudError):
    """The taskset or one of its environments cannot be run here."""


class PlatformPlacement:
    """Places each row in a `DockerRuntime` of its environment (image + secrets)."""

    def __init__(self, runtimes: dict[str, Any]) -> None:
        self.runtimes = runtimes

    def __call__(self, task: Any) -> Any:
        return self.runtimes[normalize_name(task.env)](task)

    async def __aenter__(self) -> PlatformPlacement:
        for runtime in self.runtimes.values():
            await runtime.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for runtime in self.runtimes.values():
            await runtime.__aexit__(*exc)


def local_sources(directory: Path) -> dict[str, Path]:
    """Normalized environment name -> the .py file here that declares it."""
    from hud.platform.client.deploy import declared_names

    found: dict[str, Path] = {}
    for path in sorted(directory.glob("*.py")):
        for name in declared_names(path):
            found.setdefault(normalize_name(name), path.resolve())
    return found


def load_platform_taskset(
    name: str, api_url: str, api_key: str, *, env_secrets: bool = False
) -> Any:
    """A `hud.eval.sources.Source` for the platform taskset ``name`` (or its id), run on this
    machine. Its environments' secrets stay on the platform unless ``env_secrets`` asks for them
    (then they are passed to the containers started here); without them an environment that
    has secrets is run without, with a warning naming them."""
    from hud.eval.runtimes.docker import DockerRuntime
    from hud.eval.sources import Source
    from hud.eval.task import Task
    from hud.eval.taskset import Taskset

    with PlatformAPI(api_url, api_key) as api:
        try:
            found = api.request("GET", f"/tasksets/by-name/{quote(name, safe='')}")
            taskset_id = str(found["taskset_id"])
            exported = api.request("GET", f"/tasksets/{taskset_id}/export")
        except PlatformAPIError as exc:
            if exc.status == 404:
                raise PlatformTasksetError(f"taskset not found: {name}") from None
            raise PlatformTasksetError(f"Request failed: {exc.message}") from None
        rows = [r for r in map(record_to_row, exported.get("tasks") or []) if r is not None]
        if not rows:
            raise PlatformTasksetError(f"taskset {name} has no tasks")
        runtimes: dict[str, Any] = {}
        tasks = []
        local = local_sources(Path.cwd())
        for row in rows:
            env = normalize_name(row["env"])
            if env not in runtimes:
                try:
                    page = api.request("GET", "/registry", params={"search": env, "limit": 500})
                    match = [e for e in page.get("items") or [] if e.get("name") == env]
                    if not match:
                        raise PlatformTasksetError(
                            f"environment {row['env']!r} of taskset {name} is not deployed"
                        )
                    spec = api.request(
                        "POST",
                        f"/registry/{match[0]['id']}/runtime",
                        json={"include_secrets": env_secrets},
                    )
                except PlatformAPIError as exc:
                    raise PlatformTasksetError(f"Request failed: {exc.message}") from None
                names = spec.get("secret_names") or []
                if names and not env_secrets:
                    log.warning(
                        "environment %s has secrets (%s) that stay on the platform: its "
                        "containers here run without them (--env-secrets passes them)",
                        env,
                        ", ".join(names),
                    )
                runtimes[env] = DockerRuntime(
                    runtime_config=spec.get("runtime_config") or {"image": spec["image"]},
                    env_vars=spec.get("environment_variables") or {},
                )
            config = runtimes[env].runtime_config.model_dump(exclude_none=True)
            extra = row.get("runtime_config") or {}
            for key in ("resources", "limits"):
                if key in extra:
                    config[key] = extra[key]
            task = Task.model_validate({**row, "runtime_config": config})
            if env in local:  # its source is here: the oracle finds its templates' solutions
                task._source = str(local[env])
            tasks.append(task)
    taskset = Taskset(str(exported.get("name") or name), tasks, taskset_id=taskset_id)
    return Source(
        path=Path(name),
        taskset=taskset,
        env_target=Path.cwd(),
        placement=PlatformPlacement(runtimes),
    )
