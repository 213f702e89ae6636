"""The inference gateway's rules, free of HTTP (spec platform.md §8): upstreams (admin),
routing a model name to an endpoint, per-team limits and budgets, usage per trace.

Routing reads an in-memory table refreshed from the database every `REFRESH_SECONDS` (and at
once on a miss), so a call costs no query; admin commands writing the database directly are
seen within that delay. Usage rows are written after the reply has been passed on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select

from hud.platform.db import Database
from hud.platform.db.gateway_schema import checkpoints, limits, models, upstreams, usage
from hud.platform.db.schema import teams, traces
from hud.platform.services.common import iso, now, run_id
from hud.platform.services.errors import Conflict, Invalid, NotFound
from hud.platform.services.identity import Identity
from hud.platform.services.vault import Vault
from hud.protocol.errors import HudError

log = logging.getLogger("hud.platform.gateway")

PROVIDERS = ("anthropic", "openai", "gemini", "openai_compatible")
#: The agent type the catalog names for a provider's models (`hud eval file <model>`).
AGENT_TYPES = {
    "anthropic": "claude",
    "openai": "openai",
    "gemini": "gemini",
    "openai_compatible": "openai_compatible",
}
#: Wire families: which gateway paths may reach an upstream of each provider.
FAMILY = {"anthropic": "anthropic", "openai": "openai", "openai_compatible": "openai",
          "gemini": "gemini"}  # fmt: skip
REFRESH_SECONDS = 2.0
#: Usage rows are written in batches: after this many calls or this many seconds.
USAGE_BATCH = 200
USAGE_DELAY = 0.5
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Target:
    """Where one call goes: the provider's base URL, key, and the model name to send."""

    provider: str
    base_url: str
    api_key: str | None = field(repr=False)
    model: str
    upstream: str
    price_in: float | None = None
    price_out: float | None = None

    def cost(self, tokens_in: int, tokens_out: int) -> float | None:
        if self.price_in is None and self.price_out is None:
            return None
        return (tokens_in * (self.price_in or 0.0) + tokens_out * (self.price_out or 0.0)) / 1e6


@dataclass
class _Model:
    id: uuid.UUID
    team_id: uuid.UUID | None
    name: str
    model_name: str
    upstream_id: uuid.UUID | None
    upstream_model: str | None
    source_model_id: uuid.UUID | None
    head: Any = None  # the active checkpoint row, if any
    checkpoints: dict[str, Any] = field(default_factory=dict)  # by name and by id


@dataclass
class _Table:
    loaded_at: float = 0.0
    by_name: dict[str, list[_Model]] = field(default_factory=dict)
    by_id: dict[uuid.UUID, _Model] = field(default_factory=dict)
    upstreams: dict[uuid.UUID, Any] = field(default_factory=dict)
    limits: dict[uuid.UUID, Any] = field(default_factory=dict)
    spent: dict[uuid.UUID, float] = field(default_factory=dict)


class SecretBox:
    """Provider keys at rest, in the data directory's vault (shared with environment secrets);
    empty values stay empty and an unreadable token is a one-line `ValueError`."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def seal(self, secret: str | None) -> str | None:
        return self.vault.seal(secret) if secret else None

    def open(self, token: str | None) -> str | None:
        if not token:
            return None
        try:
            return self.vault.open(token)
        except Exception:
            raise ValueError(
                "a stored provider key cannot be decrypted with this data directory's "
                "secret.key (was it replaced?): add the upstream again"
            ) from None


class LimitExceeded(HudError):
    """A team is over its request rate (``status`` 429) or its budget (402)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class GatewayService:
    def __init__(self, db: Database, secret_dir: Path | None = None) -> None:
        self.db = db
        self._secret_dir = secret_dir
        self._box: SecretBox | None = None
        self._table = _Table()
        self._refresh_lock = asyncio.Lock()
        self._windows: dict[uuid.UUID, deque[float]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._rows: list[dict[str, Any]] = []
        self._timer: asyncio.TimerHandle | None = None

    @property
    def box(self) -> SecretBox:
        """The data directory's secret box (its key file is made on first use)."""
        if self._box is None:
            if self._secret_dir is None:
                from hud.platform.server import default_data_dir

                self._secret_dir = default_data_dir()
            self._box = SecretBox(Vault(self._secret_dir))
        return self._box

    # -- admin: upstreams ---------------------------------------------------------------------
    async def add_upstream(
        self,
        name: str,
        *,
        provider: str,
        base_url: str,
        api_key: str | None,
        models_: list[str],
        price_in: float | None = None,
        price_out: float | None = None,
    ) -> dict[str, Any]:
        if not _NAME.match(name):
            raise Invalid(f"upstream name {name!r}: use letters, digits, '.', '_' or '-'")
        if provider not in PROVIDERS:
            raise Invalid(f"unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}")
        if not re.match(r"^https?://[^\s/]+", base_url or ""):
            raise Invalid(f"--base-url {base_url!r} is not an http(s) URL")
        wanted = [m.strip() for m in models_ if m and m.strip()]
        if not wanted:
            raise Invalid("give at least one --model the upstream serves")
        upstream_id = uuid.uuid4()
        created = now()
        async with self.db.write() as conn:
            exists = await conn.execute(select(upstreams.c.id).where(upstreams.c.name == name))
            if exists.first():
                raise Conflict(f"upstream {name!r} already exists: remove it first")
            await conn.execute(
                upstreams.insert().values(
                    id=upstream_id,
                    name=name,
                    provider=provider,
                    base_url=base_url.rstrip("/"),
                    api_key_enc=self.box.seal(api_key),
                    price_in=price_in,
                    price_out=price_out,
                    created_at=created,
                )
            )
            for spec in wanted:
                # MODEL or CATALOG_NAME=UPSTREAM_MODEL
                catalog, _, remote = spec.partition("=")
                catalog, remote = catalog.strip(), (remote.strip() or catalog.strip())
                taken = await conn.execute(
                    select(models.c.id).where(
                        func.lower(models.c.model_name) == catalog.lower(),
                        models.c.team_id.is_(None),
                    )
                )
                if taken.first():
                    raise Conflict(f"model {catalog!r} is already routed by another upstream")
                await conn.execute(
                    models.insert().values(
                        id=uuid.uuid4(),
                        team_id=None,
                        name=catalog,
                        model_name=catalog,
                        provider=provider,
                        sdk_agent_type=AGENT_TYPES[provider],
                        is_trainable=1 if provider == "openai_compatible" else 0,
                        upstream_id=upstream_id,
                        upstream_model=remote,
                        created_at=created,
                    )
                )
        self.invalidate()
        return await self._upstream_info(upstream_id)

    async def list_upstreams(self) -> list[dict[str, Any]]:
        async with self.db.read() as conn:
            ids = (await conn.execute(select(upstreams.c.id).order_by(upstreams.c.name))).all()
        return [await self._upstream_info(r.id) for r in ids]

    async def remove_upstream(self, name: str) -> dict[str, Any]:
        async with self.db.write() as conn:
            row = (await conn.execute(select(upstreams).where(upstreams.c.name == name))).first()
            if row is None:
                raise NotFound(f"no upstream named {name!r} (see `hud platform upstream list`)")
            routed = select(models.c.id).where(models.c.upstream_id == row.id)
            forks = (
                await conn.execute(
                    select(models.c.name).where(models.c.source_model_id.in_(routed))
                )
            ).all()
            if forks:
                names = ", ".join(sorted(r.name for r in forks))
                raise Conflict(f"upstream {name!r} serves models forked as {names}")
            await conn.execute(delete(models).where(models.c.upstream_id == row.id))
            await conn.execute(delete(upstreams).where(upstreams.c.id == row.id))
        self.invalidate()
        return {"name": name, "removed": True}

    async def _upstream_info(self, upstream_id: uuid.UUID) -> dict[str, Any]:
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(upstreams).where(upstreams.c.id == upstream_id))
            ).first()
            names = (
                await conn.execute(
                    select(models.c.model_name, models.c.upstream_model)
                    .where(models.c.upstream_id == upstream_id)
                    .order_by(models.c.model_name)
                )
            ).all()
        if row is None:
            raise NotFound(f"no upstream with id {upstream_id}")
        return {
            "id": str(row.id),
            "name": row.name,
            "provider": row.provider,
            "base_url": row.base_url,
            "has_api_key": bool(row.api_key_enc),
            "models": [
                n.model_name
                if n.model_name == n.upstream_model
                else f"{n.model_name}={n.upstream_model}"
                for n in names
            ],
            "price_in": row.price_in,
            "price_out": row.price_out,
            "created_at": iso(row.created_at),
        }

    # -- admin: limits -------------------------------------------------------------------------
    async def set_limits(
        self, team: str, *, requests_per_minute: int | None, budget_usd: float | None
    ) -> dict[str, Any]:
        async with self.db.write() as conn:
            row = (await conn.execute(select(teams.c.id).where(teams.c.name == team))).first()
            if row is None:
                raise NotFound(f"no team named {team!r}")
            await conn.execute(delete(limits).where(limits.c.team_id == row.id))
            if requests_per_minute is not None or budget_usd is not None:
                await conn.execute(
                    limits.insert().values(
                        team_id=row.id,
                        requests_per_minute=requests_per_minute,
                        budget_usd=budget_usd,
                        updated_at=now(),
                    )
                )
            spent = (
                await conn.execute(
                    select(func.coalesce(func.sum(usage.c.cost), 0.0)).where(
                        usage.c.team_id == row.id
                    )
                )
            ).scalar_one()
        self.invalidate()
        return {
            "team": team,
            "requests_per_minute": requests_per_minute,
            "budget_usd": budget_usd,
            "spent_usd": float(spent or 0.0),
        }

    # -- routing -------------------------------------------------------------------------------
    def invalidate(self) -> None:
        self._table.loaded_at = 0.0

    async def _refresh(self, *, force: bool = False) -> _Table:
        table = self._table
        if not force and time.monotonic() - table.loaded_at < REFRESH_SECONDS:
            return table
        async with self._refresh_lock:
            if self._table is not table and not force:
                return self._table
            fresh = _Table(loaded_at=time.monotonic())
            async with self.db.read() as conn:
                for row in (await conn.execute(select(upstreams))).all():
                    fresh.upstreams[row.id] = row
                for row in (await conn.execute(select(models))).all():
                    entry = _Model(
                        row.id,
                        row.team_id,
                        row.name,
                        row.model_name,
                        row.upstream_id,
                        row.upstream_model,
                        row.source_model_id,
                    )
                    fresh.by_id[row.id] = entry
                    for key in {row.model_name.lower(), row.name.lower()}:
                        fresh.by_name.setdefault(key, []).append(entry)
                for row in (await conn.execute(select(checkpoints))).all():
                    owner = fresh.by_id.get(row.model_id)
                    if owner is None:
                        continue
                    if row.is_active:
                        owner.head = row
                    for ref in (row.name, str(row.id), row.id.hex):
                        owner.checkpoints[ref] = row
                for row in (await conn.execute(select(limits))).all():
                    fresh.limits[row.team_id] = row
                spent = select(usage.c.team_id, func.sum(usage.c.cost)).group_by(usage.c.team_id)
                for team_id, total in (await conn.execute(spent)).all():
                    fresh.spent[team_id] = float(total or 0.0)
            self._table = fresh
            return fresh

    async def resolve(self, ident: Identity, model: str, checkpoint: str | None = None) -> Target:
        """The endpoint serving ``model`` for the caller's team (team forks before shared
        models) — its head checkpoint's, or ``checkpoint``'s when the caller names one (the
        official client's ``extra_body.checkpoint``); `NotFound` names the routed models when
        nothing matches."""
        table = await self._refresh()
        entry = _pick(table, ident, model)
        if entry is None:
            table = await self._refresh(force=True)
            entry = _pick(table, ident, model)
        if entry is None:
            known = sorted({m.model_name for m in table.by_id.values()
                            if m.team_id in (None, ident.team_id)})  # fmt: skip
            listed = ", ".join(known[:20]) or "none: add one with `hud platform upstream add`"
            raise NotFound(f"model {model!r} is not routed by this gateway (routed: {listed})")
        if checkpoint:
            chosen = entry.checkpoints.get(checkpoint)
            if chosen is None:
                raise NotFound(f"model {entry.model_name!r} has no checkpoint {checkpoint!r}")
            if chosen.endpoint_url:
                return self._checkpoint_target(entry, chosen)
        return self._target(table, entry, depth=0)

    def _checkpoint_target(self, entry: _Model, row: Any) -> Target:
        return Target(
            provider=row.provider or "openai_compatible",
            base_url=row.endpoint_url,
            api_key=self.box.open(row.api_key_enc),
            model=row.endpoint_model or entry.model_name,
            upstream=f"checkpoint:{row.name}",
        )

    async def model_names(self, ident: Identity) -> list[str]:
        table = await self._refresh()
        return sorted(
            {m.model_name for m in table.by_id.values() if m.team_id in (None, ident.team_id)}
        )

    def _target(self, table: _Table, entry: _Model, *, depth: int) -> Target:
        head = entry.head
        if head is not None and head.endpoint_url:
            return self._checkpoint_target(entry, head)
        if entry.upstream_id is not None and entry.upstream_id in table.upstreams:
            up = table.upstreams[entry.upstream_id]
            return Target(
                provider=up.provider,
                base_url=up.base_url,
                api_key=self.box.open(up.api_key_enc),
                model=entry.upstream_model or entry.model_name,
                upstream=up.name,
                price_in=up.price_in,
                price_out=up.price_out,
            )
        source = table.by_id.get(entry.source_model_id) if entry.source_model_id else None
        if source is not None and depth < 8:
            return self._target(table, source, depth=depth + 1)
        raise NotFound(
            f"model {entry.model_name!r} has no serving endpoint (set a head checkpoint)"
        )

    # -- limits --------------------------------------------------------------------------------
    async def admit(self, ident: Identity) -> None:
        """Count one request against the team's rate; refuse it over the rate or budget."""
        table = await self._refresh()
        rule = table.limits.get(ident.team_id)
        if rule is None:
            return
        if rule.budget_usd is not None and table.spent.get(ident.team_id, 0.0) >= rule.budget_usd:
            raise LimitExceeded(402, f"the team's gateway budget of ${rule.budget_usd:g} is spent")
        rpm = rule.requests_per_minute
        if rpm is None:
            return
        window = self._windows.setdefault(ident.team_id, deque())
        clock = time.monotonic()
        while window and clock - window[0] >= 60.0:
            window.popleft()
        if len(window) >= rpm:
            wait = max(60.0 - (clock - window[0]), 0.1)
            raise LimitExceeded(
                429, f"the team's gateway rate limit of {rpm} requests per minute is reached", wait
            )
        window.append(clock)

    # -- usage ---------------------------------------------------------------------------------
    def record(
        self,
        ident: Identity,
        *,
        trace_id: str | None,
        model: str,
        target: Target | None,
        status: int,
        stream: bool,
        tokens_in: int,
        tokens_out: int,
        latency_ms: float,
    ) -> None:
        """Buffer one usage row; batches are written in the background (the reply is not held
        for it, and reads of usage flush first)."""
        cost = target.cost(tokens_in, tokens_out) if target is not None else None
        if cost:
            table = self._table
            table.spent[ident.team_id] = table.spent.get(ident.team_id, 0.0) + cost
        tid: uuid.UUID | None = None
        if trace_id:
            try:
                tid = run_id(trace_id.strip())
            except ValueError:
                tid = None
        values = dict(
            team_id=ident.team_id,
            user_id=ident.user_id,
            trace_id=tid,
            model=model[:400],
            upstream=target.upstream if target else None,
            status=status,
            stream=1 if stream else 0,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            latency_ms=round(latency_ms, 3),
            cost=cost,
            created_at=now(),
        )
        self._rows.append(values)
        if len(self._rows) >= USAGE_BATCH:
            self._spawn_write()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(USAGE_DELAY, self._spawn_write)

    def _spawn_write(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        rows, self._rows = self._rows, []
        if not rows:
            return
        task = asyncio.get_running_loop().create_task(self._write_usage(rows))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write_usage(self, rows: list[dict[str, Any]]) -> None:
        try:
            async with self.db.write() as conn:
                await conn.execute(usage.insert(), rows)
        except Exception as exc:  # usage is best effort; the calls already succeeded
            log.warning("gateway usage not recorded (%d calls): %s", len(rows), type(exc).__name__)

    async def flush(self) -> None:
        """Write buffered usage now and wait for every write (reads, tests, shutdown)."""
        self._spawn_write()
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def trace_usage(self, ident: Identity, trace_id: str) -> dict[str, Any]:
        tid = run_id(trace_id)
        query = _totals().where(usage.c.trace_id == tid, usage.c.team_id == ident.team_id)
        return await self._totals(query)

    async def job_usage(self, ident: Identity, job_id: str) -> dict[str, Any]:
        jid = run_id(job_id)
        in_job = select(traces.c.id).where(
            traces.c.job_id == jid, traces.c.team_id == ident.team_id
        )
        query = _totals().where(usage.c.trace_id.in_(in_job), usage.c.team_id == ident.team_id)
        return await self._totals(query)

    async def _totals(self, query: Any) -> dict[str, Any]:
        await self.flush()
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        calls, tin, tout, latency, cost = row or (0, 0, 0, 0.0, None)
        return {
            "calls": int(calls or 0),
            "input_tokens": int(tin or 0),
            "output_tokens": int(tout or 0),
            "latency_ms": round(float(latency or 0.0), 3),
            "cost": float(cost) if cost is not None else None,
        }


def _totals() -> Any:
    return select(
        func.count(),
        func.sum(usage.c.input_tokens),
        func.sum(usage.c.output_tokens),
        func.sum(usage.c.latency_ms),
        func.sum(usage.c.cost),
    )


def _pick(table: _Table, ident: Identity, model: str) -> _Model | None:
    found = table.by_name.get(model.strip().lower(), [])
    own = [m for m in found if m.team_id == ident.team_id]
    shared = [m for m in found if m.team_id is None]
    picked = own or shared
    return picked[0] if picked else None
