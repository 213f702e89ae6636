"""Tables of the inference gateway and the model registry (spec platform.md §8, §10).

Kept apart from `schema` so the gateway's migration (``0300_gateway``) owns them; they join the
same ``metadata``. Provider keys are stored only as Fernet tokens (`hud.platform.services.vault`).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
)
from sqlalchemy import Table as _Table

from hud.platform.db.schema import metadata

#: Where the gateway sends calls: a provider endpoint, with its key encrypted.
upstreams = _Table(
    "gateway_upstreams",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("provider", String(32), nullable=False),  # anthropic|openai|gemini|openai_compatible
    Column("base_url", String(2000), nullable=False),
    Column("api_key_enc", Text, nullable=True),
    #: USD per million tokens in / out (cost accounting); null = unpriced.
    Column("price_in", Float, nullable=True),
    Column("price_out", Float, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: The model catalog (``GET /v2/models``): models an upstream routes (``team_id`` null: every
#: team sees them) and team forks (``source_model_id`` set) whose head checkpoint may serve.
models = _Table(
    "models",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("team_id", Uuid, ForeignKey("teams.id"), nullable=True),
    Column("name", String(200), nullable=False),
    Column("model_name", String(400), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("sdk_agent_type", String(32), nullable=False),
    Column("is_trainable", Integer, nullable=False, default=0),
    Column("upstream_id", Uuid, ForeignKey("gateway_upstreams.id"), nullable=True),
    #: The model name sent upstream (the catalog name may differ).
    Column("upstream_model", String(400), nullable=True),
    Column("source_model_id", Uuid, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "model_name"),
)

#: A model's checkpoint tree: parent links, one active head, metrics, an optional endpoint.
checkpoints = _Table(
    "model_checkpoints",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("model_id", Uuid, ForeignKey("models.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("parent_id", Uuid, nullable=True),
    Column("is_active", Integer, nullable=False, default=0),
    Column("provider", String(32), nullable=True),
    Column("endpoint_url", String(2000), nullable=True),
    Column("endpoint_model", String(400), nullable=True),
    Column("api_key_enc", Text, nullable=True),
    Column("metrics", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "model_id", "created_at"),
)

#: One row per gateway call, attributed to the rollout named by its ``Trace-Id`` header.
usage = _Table(
    "gateway_usage",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("team_id", Uuid, ForeignKey("teams.id"), nullable=False),
    Column("user_id", Uuid, nullable=True),
    Column("trace_id", Uuid, nullable=True),
    Column("model", String(400), nullable=False),
    Column("upstream", String(200), nullable=True),
    Column("status", Integer, nullable=False),
    Column("stream", Integer, nullable=False, default=0),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("latency_ms", Float, nullable=False, default=0.0),
    Column("cost", Float, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "trace_id"),
    Index(None, "team_id", "created_at"),
)

#: Per-team limits: requests per minute and a spending budget in USD (null = unlimited).
limits = _Table(
    "gateway_limits",
    metadata,
    Column("team_id", Uuid, ForeignKey("teams.id"), primary_key=True),
    Column("requests_per_minute", Integer, nullable=True),
    Column("budget_usd", Float, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
