"""`hud deploy` without the CLI (spec platform.md §3.2): find the environment's name, pack the
context, upload it, trigger the build, follow its log and poll its status — the same calls, in the
same order, as the official 0.6.21 client. Progress is reported through a callback; nothing is
printed here."""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hud.platform.client.api import PlatformAPI, PlatformAPIError
from hud.platform.client.context import pack
from hud.platform.client.link import Link, scope_for
from hud.protocol.errors import HudError

ACTIVE = ("IN_PROGRESS", "MIGRATING", "CANCELLING", "PENDING", "QUEUED")
#: Status polls (when the log stream did not see the end) start this often and slow down to
#: ``poll_seconds`` (the official client polls every 5 s from the start).
FIRST_POLL_SECONDS = 0.25
POLL_SECONDS = 5.0


class DeployError(HudError):
    """A deploy that cannot go on: bad input, a refused call, or a failed build."""


def declared_names(path: Path) -> list[str]:
    """The string names of the ``Environment(...)`` calls in a Python file."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError):
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if called != "Environment":
            continue
        value: Any = None
        if node.args and isinstance(node.args[0], ast.Constant):
            value = node.args[0].value
        for kw in node.keywords:
            if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                value = kw.value.value
        if isinstance(value, str) and value.strip() and value not in names:
            names.append(value)
    return names


def find_env_name(target: Path, name: str | None = None) -> tuple[Path, str]:
    """(context directory, environment name) for a directory or an ``env.py`` file."""
    target = Path(target).resolve()
    if target.is_file():
        root, found = target.parent, declared_names(target)
    elif target.is_dir():
        root, found = target, []
        for path in sorted(target.rglob("*.py")):
            rel = path.relative_to(target).parts
            if any(p.startswith(".") or p in ("venv", "node_modules", "__pycache__") for p in rel):
                continue
            found += [n for n in declared_names(path) if n not in found]
    else:
        raise DeployError(f"{target} does not exist: pass an environment directory or env.py")
    if name:
        return root, name
    if not found:
        raise DeployError(
            f"no Environment(...) declaration with a literal name in {target}; "
            "declare one (env = Environment(name='my-env')) or pass --name"
        )
    if len(found) > 1:
        raise DeployError(
            f"{target} declares several environments ({', '.join(found)}): pass --name"
        )
    return root, found[0]


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DeployError(f"{what} {item!r} is not KEY=VALUE")
        out[key.strip()] = value
    return out


def parse_build_secrets(items: list[str]) -> dict[str, str]:
    """``--secret id=X,env=VAR`` or ``id=X,src=FILE`` -> ``{X: value}``."""
    import os

    out: dict[str, str] = {}
    for item in items:
        fields = dict(part.partition("=")[::2] for part in item.split(","))
        sid = fields.get("id")
        if not sid:
            raise DeployError(f"--secret {item!r} has no id=")
        if "env" in fields:
            value = os.environ.get(fields["env"])
            if value is None:
                raise DeployError(f"--secret {sid}: environment variable {fields['env']} is unset")
        elif "src" in fields:
            try:
                value = Path(fields["src"]).expanduser().read_text()
            except OSError as exc:
                raise DeployError(f"--secret {sid}: cannot read {fields['src']}: {exc}") from None
        else:
            value = os.environ.get(sid)
            if value is None:
                raise DeployError(f"--secret {item!r}: give env=VAR or src=FILE")
        out[sid] = value
    return out


@dataclass
class DeployRequest:
    target: Path
    name: str | None = None
    env_vars: dict[str, str] = field(default_factory=dict)
    build_args: dict[str, str] = field(default_factory=dict)
    build_secrets: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    project_id: str | None = None
    registry_id: str | None = None
    runtime_provider: str | None = None
    runtime_config: dict[str, Any] | None = None
    follow_logs: bool = True


@dataclass
class DeployResult:
    build_id: str
    registry_id: str
    name: str
    status: dict[str, Any]

    @property
    def succeeded(self) -> bool:
        return self.status.get("status") == "SUCCEEDED"


def plan(request: DeployRequest) -> dict[str, Any]:
    root, name = find_env_name(request.target, request.name)
    return {"directory": str(root), "name": name, "bytes": len(pack(root))}


def deploy(
    api_url: str,
    api_key: str,
    request: DeployRequest,
    *,
    on_event: Callable[[str, str], None] = lambda kind, text: None,
    poll_seconds: float = POLL_SECONDS,
) -> DeployResult:
    """Deploy ``request.target``; ``on_event(kind, text)`` gets ``step``, ``log`` and ``status``
    lines. Saves the registry id in the directory's ``.hud/config.json``."""
    root, name = find_env_name(request.target, request.name)
    # The tarball is packed in a thread while the first calls are under way (zlib and the
    # sockets release the GIL); the calls are the official client's, in its order.
    packing = _Packing(root)
    with PlatformAPI(api_url, api_key, timeout=600) as api:
        try:
            me = api.request("GET", "/auth/me")
            scope = scope_for(api_url, me)
            link = Link.load(root)
            link.check(scope)
            project = request.project_id or link.get("project_id") or _default_project()
            project_id = resolve_project(api, project) if project else None
            on_event("step", f"Environment name: {name}")
            slot = api.request("POST", "/builds/upload-url")
            build_id, upload_url = str(slot["build_id"]), str(slot["upload_url"])
            on_event("step", f"Build ID: {build_id}")
            data = packing.result()
            on_event("step", f"Context tarball: {len(data)} bytes")
            _put(api, upload_url, data)
            body: dict[str, Any] = {
                "source": "direct",
                "build_id": build_id,
                "name": name,
                "no_cache": request.no_cache,
            }
            optional = {
                "registry_id": request.registry_id,
                "project_id": project_id,
                "runtime_provider": request.runtime_provider,
                "runtime_config": request.runtime_config,
                "environment_variables": request.env_vars,
                "build_args": request.build_args,
                "build_secrets": request.build_secrets,
            }
            body.update({k: v for k, v in optional.items() if v})
            triggered = api.request("POST", "/builds/trigger", json=body)
            registry_id = str(triggered.get("registry_id") or "")
            if registry_id and not request.registry_id and not request.project_id:
                link.save(scope, registry_id=registry_id)
            on_event("step", "Build triggered")
            if request.follow_logs:
                follow_logs(api_url, api_key, str(triggered.get("id") or build_id), on_event)
            status = api.request("GET", f"/builds/{build_id}/status")
            delay = min(FIRST_POLL_SECONDS, poll_seconds)
            while status.get("status") in ACTIVE:
                time.sleep(delay)
                delay = min(delay * 2, poll_seconds)
                status = api.request("GET", f"/builds/{build_id}/status")
        except PlatformAPIError as exc:
            raise DeployError(f"Request failed: {exc.message}") from None
        finally:
            packing.join()
    return DeployResult(build_id=build_id, registry_id=registry_id, name=name, status=status)


class _Packing:
    """`pack` of a directory in a thread of its own; `result` waits for it (and raises what
    it raised)."""

    def __init__(self, root: Path) -> None:
        import threading

        self._data: bytes | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(root,), daemon=True)
        self._thread.start()

    def _run(self, root: Path) -> None:
        try:
            self._data = pack(root)
        except BaseException as exc:
            self._error = exc

    def join(self) -> None:
        self._thread.join()

    def result(self) -> bytes:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._data is not None
        return self._data


def resolve_project(api: PlatformAPI, ref: str) -> str:
    """A project's id from its id or name (§2: exact normalized-name match); `DeployError` when
    missing, ambiguous, or closed to new environments."""
    import re
    import uuid

    try:
        project = api.request("GET", f"/projects/{uuid.UUID(ref)}")
    except ValueError:
        wanted = re.sub(
            r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "", re.sub(r"[\s_]+", "-", ref.strip().lower()))
        ).strip("-")
        page = api.request("GET", "/projects", params={"search": wanted, "limit": 500})
        found = [p for p in page.get("items") or [] if p.get("name") == wanted]
        if not found:
            raise DeployError(
                f"project {ref!r} not found; `hud project list` shows yours"
            ) from None
        if len(found) > 1:
            raise DeployError(f"several projects are named {ref!r}: pass its ID") from None
        project = found[0]
    if (project.get("capabilities") or {}).get("create") is False:
        raise DeployError(f"you may not create environments in project {project.get('name')!r}")
    return str(project["id"])


def _put(api: PlatformAPI, url: str, data: bytes) -> None:
    """PUT the tarball to its upload URL: over the API's connection when the URL is on the
    platform itself (without the API key either way), else with a client of its own."""
    headers = {"content-type": "application/gzip"}
    try:
        if api.same_origin(url):
            reply = api.send_without_key("PUT", url, content=data, headers=headers, timeout=300)
        else:
            reply = httpx.put(url, content=data, headers=headers, timeout=300)
    except httpx.HTTPError as exc:
        raise DeployError(f"uploading the build context failed: {exc}") from None
    if reply.status_code >= 300:
        raise DeployError(f"uploading the build context failed with status {reply.status_code}")


def _default_project() -> str | None:
    from hud.settings import settings

    return settings().get("HUD_DEFAULT_PROJECT") or None


def logs_url(api_url: str, build_id: str, api_key: str) -> str:
    from urllib.parse import quote

    base = api_url.rstrip("/")
    scheme = "wss" if base.startswith("https") else "ws"
    rest = base.split("://", 1)[1]
    return f"{scheme}://{rest}/v2/builds/{build_id}/logs?api_key={quote(api_key)}"


def follow_logs(
    api_url: str, api_key: str, build_id: str, on_event: Callable[[str, str], None]
) -> None:
    """Print the build-log stream (§3.3) until ``complete``/``error`` or close; any failure to
    stream is reported and ignored (status polling follows)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    try:
        with connect(logs_url(api_url, build_id, api_key), open_timeout=30, max_size=None) as ws:
            for raw in ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    continue
                kind = frame.get("type") if isinstance(frame, dict) else None
                if kind == "log" and frame.get("message"):
                    on_event("log", str(frame["message"]))
                elif kind == "status" and frame.get("message"):
                    on_event("step", str(frame["message"]))
                elif kind == "status_update" and frame.get("status") != "IN_PROGRESS":
                    on_event("status", f"Build status: {frame.get('status')}")
                elif kind == "complete":
                    on_event("status", str(frame.get("message") or "Build complete"))
                    return
                elif kind == "error":
                    on_event("status", f"Build error: {frame.get('error')}")
                    return
    except ConnectionClosed as exc:
        if exc.rcvd is not None and exc.rcvd.code == 4003:
            on_event("status", f"Access denied: {exc.rcvd.reason}")
        elif exc.rcvd is None or exc.rcvd.code != 1000:
            on_event("status", f"Log stream closed: {exc}")
    except Exception as exc:
        on_event("status", f"Log stream unavailable: {exc}")
