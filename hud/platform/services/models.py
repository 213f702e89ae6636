"""The model registry (spec platform.md §10): the catalog ``GET /v2/models`` serves (models an
upstream routes, plus the team's forks), forks, and each model's checkpoint tree — parent
links, metrics, one active head, and optionally a serving endpoint the gateway routes the
model's name to while that checkpoint is the head."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import func, or_, select, update

from hud.platform.db import Database
from hud.platform.db.gateway_schema import checkpoints, models
from hud.platform.db.schema import teams
from hud.platform.services.common import iso, now
from hud.platform.services.errors import Conflict, Invalid, NotFound
from hud.platform.services.gateway import PROVIDERS, GatewayService
from hud.platform.services.identity import Identity

_SLUG = re.compile(r"[^a-z0-9._-]+")


def _slug(text: str) -> str:
    return _SLUG.sub("-", text.strip().lower()).strip("-") or "team"


class ModelService:
    def __init__(self, db: Database, gateway: GatewayService) -> None:
        self.db = db
        self.gateway = gateway

    # -- catalog ---------------------------------------------------------------------------------
    async def list_models(
        self, ident: Identity, *, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        visible = or_(models.c.team_id.is_(None), models.c.team_id == ident.team_id)
        async with self.db.read() as conn:
            total = (
                await conn.execute(select(func.count()).select_from(models).where(visible))
            ).scalar_one()
            rows = (
                await conn.execute(
                    select(models)
                    .where(visible)
                    .order_by(models.c.created_at.desc(), models.c.model_name)
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
        return [_model(r) for r in rows], int(total)

    async def get_model(self, ident: Identity, ref: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            return _model(await self._model_row(conn, ident, ref))

    async def fork(self, ident: Identity, source_model_id: str, name: str) -> dict[str, Any]:
        name = name.strip()
        if not name or len(name) > 200 or "/" in name:
            raise Invalid("name: give a model name without '/' (at most 200 characters)")
        async with self.db.write() as conn:
            source = await self._model_row(conn, ident, source_model_id)
            team = (
                await conn.execute(select(teams.c.name).where(teams.c.id == ident.team_id))
            ).scalar_one()
            model_name = f"{_slug(team)}/{name}"
            clash = await conn.execute(
                select(models.c.id).where(
                    models.c.team_id == ident.team_id,
                    or_(
                        func.lower(models.c.name) == name.lower(),
                        func.lower(models.c.model_name) == model_name.lower(),
                    ),
                )
            )
            if clash.first():
                raise Conflict(f"a model named {name!r} already exists in this team")
            model_id = uuid.uuid4()
            created = now()
            await conn.execute(
                models.insert().values(
                    id=model_id,
                    team_id=ident.team_id,
                    name=name,
                    model_name=model_name,
                    provider=source.provider,
                    sdk_agent_type=source.sdk_agent_type,
                    is_trainable=1,
                    upstream_id=None,
                    upstream_model=None,
                    source_model_id=source.id,
                    created_at=created,
                )
            )
            # The root checkpoint: the source's weights, served by the source's route.
            await conn.execute(
                checkpoints.insert().values(
                    id=uuid.uuid4(),
                    model_id=model_id,
                    name="base",
                    parent_id=None,
                    is_active=1,
                    metrics={},
                    created_at=created,
                )
            )
            row = (await conn.execute(select(models).where(models.c.id == model_id))).first()
        self.gateway.invalidate()
        return _model(row)

    # -- checkpoints -----------------------------------------------------------------------------
    async def checkpoints(self, ident: Identity, ref: str) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            model = await self._model_row(conn, ident, ref)
            rows = (
                await conn.execute(
                    select(checkpoints)
                    .where(checkpoints.c.model_id == model.id)
                    .order_by(checkpoints.c.created_at, checkpoints.c.name)
                )
            ).all()
        return [_checkpoint(r) for r in rows]  # creation order; the head is the active one

    async def add_checkpoint(
        self,
        ident: Identity,
        ref: str,
        *,
        name: str,
        parent: str | None = None,
        base_url: str | None = None,
        provider: str | None = None,
        served_model: str | None = None,
        api_key: str | None = None,
        metrics: dict[str, Any] | None = None,
        activate: bool = False,
    ) -> dict[str, Any]:
        name = name.strip()
        if not name or len(name) > 200:
            raise Invalid("name: give a checkpoint name (at most 200 characters)")
        if provider is not None and provider not in PROVIDERS:
            raise Invalid(f"provider: use one of {', '.join(PROVIDERS)}")
        if base_url is not None and not re.match(r"^https?://[^\s/]+", base_url):
            raise Invalid(f"base_url: {base_url!r} is not an http(s) URL")
        for key, value in (metrics or {}).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise Invalid(f"metrics.{key}: metrics are numbers, got {value!r}")
        async with self.db.write() as conn:
            model = await self._model_row(conn, ident, ref, own=True)
            existing = (
                await conn.execute(select(checkpoints).where(checkpoints.c.model_id == model.id))
            ).all()
            if any(r.name == name for r in existing):
                raise Conflict(f"checkpoint {name!r} already exists on {model.model_name}")
            if parent:
                parent_row = _find_checkpoint(existing, parent)
                if parent_row is None:
                    raise NotFound(f"checkpoint {parent} not found on {model.model_name}")
                parent_id = parent_row.id
            else:
                head = next((r for r in existing if r.is_active), None)
                parent_id = head.id if head else None
            checkpoint_id = uuid.uuid4()
            if activate:
                await conn.execute(
                    update(checkpoints)
                    .where(checkpoints.c.model_id == model.id)
                    .values(is_active=0)
                )
            await conn.execute(
                checkpoints.insert().values(
                    id=checkpoint_id,
                    model_id=model.id,
                    name=name,
                    parent_id=parent_id,
                    is_active=1 if activate or not existing else 0,
                    provider=(provider or "openai_compatible") if base_url else None,
                    endpoint_url=base_url.rstrip("/") if base_url else None,
                    endpoint_model=served_model,
                    api_key_enc=self.gateway.box.seal(api_key) if api_key else None,
                    metrics=metrics or {},
                    created_at=now(),
                )
            )
            row = (
                await conn.execute(select(checkpoints).where(checkpoints.c.id == checkpoint_id))
            ).first()
        self.gateway.invalidate()
        return _checkpoint(row)

    async def set_head(self, ident: Identity, ref: str, checkpoint: str) -> dict[str, Any]:
        async with self.db.write() as conn:
            model = await self._model_row(conn, ident, ref, own=True)
            rows = (
                await conn.execute(select(checkpoints).where(checkpoints.c.model_id == model.id))
            ).all()
            chosen = _find_checkpoint(rows, checkpoint)
            if chosen is None:
                raise NotFound(f"checkpoint {checkpoint} not found on {model.model_name}")
            await conn.execute(
                update(checkpoints).where(checkpoints.c.model_id == model.id).values(is_active=0)
            )
            await conn.execute(
                update(checkpoints).where(checkpoints.c.id == chosen.id).values(is_active=1)
            )
        self.gateway.invalidate()
        return {"model_id": str(model.id), "checkpoint_id": str(chosen.id), "name": chosen.name}

    # -- lookups ---------------------------------------------------------------------------------
    async def _model_row(self, conn: Any, ident: Identity, ref: str, *, own: bool = False) -> Any:
        visible = or_(models.c.team_id.is_(None), models.c.team_id == ident.team_id)
        query = select(models).where(visible)
        try:
            rows = (await conn.execute(query.where(models.c.id == uuid.UUID(str(ref))))).all()
        except ValueError:
            low = str(ref).strip().lower()
            rows = (
                await conn.execute(
                    query.where(
                        or_(
                            func.lower(models.c.model_name) == low, func.lower(models.c.name) == low
                        )
                    )
                )
            ).all()
        rows = sorted(rows, key=lambda r: r.team_id is None)  # the team's own first
        if not rows:
            raise NotFound(f"Model {ref} not found")
        if own and rows[0].team_id != ident.team_id:
            raise Invalid(
                f"model {rows[0].model_name} is shared by the platform: fork it to give it "
                "checkpoints (hud models fork)"
            )
        return rows[0]


def _find_checkpoint(rows: Any, ref: str) -> Any:
    for row in rows:
        if str(row.id) == ref or row.id.hex == ref or row.name == ref:
            return row
    return None


def _model(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "model_name": row.model_name,
        "sdk_agent_type": row.sdk_agent_type,
        "is_trainable": bool(row.is_trainable),
        "provider": {"name": row.provider},
        "source_model_id": str(row.source_model_id) if row.source_model_id else None,
        "created_at": iso(row.created_at),
        "released_at": None,
        "deprecated_at": None,
    }


def _checkpoint(row: Any) -> dict[str, Any]:
    metrics = dict(row.metrics or {})
    return {
        "id": str(row.id),
        "name": row.name,
        "checkpoint_name": row.name,
        "prev_model_checkpoint_id": str(row.parent_id) if row.parent_id else None,
        "is_active": bool(row.is_active),
        "created_at": iso(row.created_at),
        "num_traces": metrics.get("num_traces"),
        "num_datums": metrics.get("num_datums"),
        "num_tokens": metrics.get("num_tokens"),
        "mean_reward": metrics.get("mean_reward"),
        "learning_rate": metrics.get("learning_rate"),
        "loss_fn": metrics.get("loss_fn"),
        "metrics": metrics,
        "serving": row.endpoint_url is not None,
    }
