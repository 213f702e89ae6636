"""The model registry calls behind `hud models` (spec platform.md §10): the catalog, forks,
checkpoint trees and heads. httpx only (through `PlatformAPI`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hud.platform.client.api import PlatformAPI, PlatformAPIError
from hud.protocol.errors import HudError


class ModelNotFound(HudError, LookupError):
    """No catalog entry matches; ``suggestions`` are near names."""

    def __init__(self, ref: str, suggestions: list[str]) -> None:
        hint = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"Model '{ref}' not found in the HUD gateway registry.{hint}")
        self.ref = ref
        self.suggestions = suggestions


def catalog(api: PlatformAPI) -> list[dict[str, Any]]:
    """Every model the caller sees (paged until the reported total)."""
    items: list[dict[str, Any]] = []
    while True:
        page = api.request("GET", "/models", params={"limit": 100, "offset": len(items)})
        batch = list(page.get("items") or [])
        items += batch
        if not batch or len(items) >= int(page.get("total") or 0):
            return items


def find(models: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    """The entry whose id, name, model_name or model_name's last segment is ``ref`` (any case)."""
    want = ref.strip().lower()
    for model in models:
        slug = str(model.get("model_name") or "")
        keys = {str(model.get("id", "")).lower(), str(model.get("name") or "").lower(),
                slug.lower(), slug.rsplit("/", 1)[-1].lower()}  # fmt: skip
        if want in keys:
            return model
    import difflib

    names = [str(m.get("model_name") or m.get("name")) for m in models]
    raise ModelNotFound(ref, difflib.get_close_matches(ref, names, n=3, cutoff=0.5))


def fork(
    api: PlatformAPI, source: dict[str, Any], name: str, *, if_not_exists: bool = False
) -> tuple[dict[str, Any], bool]:
    """Fork ``source`` as ``name``; returns (model, created). With ``if_not_exists`` an
    existing fork of that name is returned instead of a conflict."""
    try:
        body = {"source_model_id": source["id"], "name": name}
        return api.request("POST", "/models/fork", json=body), True
    except PlatformAPIError as exc:
        if exc.status != 409 or not if_not_exists:
            raise
    return find(catalog(api), name), False


def checkpoints(api: PlatformAPI, model: dict[str, Any]) -> list[dict[str, Any]]:
    reply = api.request("GET", f"/models/{model['id']}/checkpoints")
    return list(reply) if isinstance(reply, list) else list(reply.get("items") or [])


def head(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((row for row in rows if row.get("is_active")), None)


def set_head(api: PlatformAPI, model: dict[str, Any], checkpoint: str) -> None:
    api.request("PUT", f"/models/{model['id']}/head", json={"checkpoint_id": checkpoint})


@dataclass
class Node:
    row: dict[str, Any]
    children: list[Node]


def tree(rows: list[dict[str, Any]]) -> list[Node]:
    """The checkpoints as a forest by parent link (orphans become roots), creation order."""
    nodes = {str(row["id"]): Node(row, []) for row in rows}
    roots: list[Node] = []
    for row in rows:
        parent = nodes.get(str(row.get("prev_model_checkpoint_id") or ""))
        (parent.children if parent is not None else roots).append(nodes[str(row["id"])])
    return roots
