"""A directory's link to platform objects: ``.hud/config.json`` in the 0.6.21 schema (spec
platform.md §1) — a scope (origin, user, team) plus the registry, taskset and project ids."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hud.protocol.errors import HudError

CONFIG = Path(".hud") / "config.json"
_LEGACY = {"registryId": "registry_id", "tasksetId": "taskset_id", "projectId": "project_id"}


class LinkError(HudError):
    """The directory is linked elsewhere (another platform or other credentials)."""


def origin_of(api_url: str) -> str:
    parts = urlsplit(api_url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{host}{port}"


@dataclass
class Link:
    path: Path
    scope: dict[str, str] | None = None
    ids: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> Link:
        path = Path(directory) / CONFIG
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        ids: dict[str, str | None] = {}
        for key in ("registry_id", "taskset_id", "project_id"):
            if isinstance(data.get(key), str):
                ids[key] = data[key]
        for old, new in _LEGACY.items():
            if isinstance(data.get(old), str) and new not in ids:
                ids[new] = data[old]
        scope = data.get("scope") if isinstance(data.get("scope"), dict) else None
        return cls(path=path, scope=scope, ids=ids)

    def check(self, scope: dict[str, str]) -> None:
        """`LinkError` when the directory was linked with another platform or identity."""
        if not self.scope:
            return
        if self.scope.get("origin") != scope["origin"]:
            raise LinkError(
                f"{self.path} was linked against {self.scope.get('origin')}; this command talks "
                f"to {scope['origin']} (remove {self.path} to relink)"
            )
        if (self.scope.get("user_id"), self.scope.get("team_id")) != (
            scope["user_id"],
            scope["team_id"],
        ):
            raise LinkError(
                f"{self.path} was linked with different HUD credentials (another user or team); "
                f"use that key, or remove {self.path} to relink"
            )

    def get(self, key: str) -> str | None:
        return self.ids.get(key)

    def save(self, scope: dict[str, str], **ids: str | None) -> None:
        self.scope = scope
        self.ids.update({k: v for k, v in ids.items() if v is not None})
        data: dict[str, Any] = {
            "version": 1,
            "scope": scope,
            "registry_id": self.ids.get("registry_id"),
            "taskset_id": self.ids.get("taskset_id"),
            "project_id": self.ids.get("project_id"),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


def scope_for(api_url: str, me: dict[str, Any]) -> dict[str, str]:
    return {
        "origin": origin_of(api_url),
        "user_id": str(me.get("user_id")),
        "team_id": str(me.get("team_id")),
    }
