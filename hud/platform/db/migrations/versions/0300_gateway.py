"""gateway: upstreams, model catalog and checkpoints, usage, per-team limits

Revision ID: 0300_gateway
Revises: 0200_deploy
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0300_gateway"
down_revision = "0200_deploy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_upstreams",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("base_url", sa.String(length=2000), nullable=False),
        sa.Column("api_key_enc", sa.Text(), nullable=True),
        sa.Column("price_in", sa.Float(), nullable=True),
        sa.Column("price_out", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_upstreams")),
        sa.UniqueConstraint("name", name=op.f("uq_gateway_upstreams_name")),
    )
    op.create_table(
        "gateway_limits",
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("budget_usd", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_gateway_limits_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_gateway_limits")),
    )
    op.create_table(
        "gateway_usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("trace_id", sa.Uuid(), nullable=True),
        sa.Column("model", sa.String(length=400), nullable=False),
        sa.Column("upstream", sa.String(length=200), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("stream", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_gateway_usage_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_usage")),
    )
    with op.batch_alter_table("gateway_usage", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gateway_usage_team_id_created_at"),
            ["team_id", "created_at"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_gateway_usage_trace_id"), ["trace_id"], unique=False)

    op.create_table(
        "models",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("model_name", sa.String(length=400), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("sdk_agent_type", sa.String(length=32), nullable=False),
        sa.Column("is_trainable", sa.Integer(), nullable=False),
        sa.Column("upstream_id", sa.Uuid(), nullable=True),
        sa.Column("upstream_model", sa.String(length=400), nullable=True),
        sa.Column("source_model_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_models_team_id_teams")),
        sa.ForeignKeyConstraint(
            ["upstream_id"],
            ["gateway_upstreams.id"],
            name=op.f("fk_models_upstream_id_gateway_upstreams"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_models_model_name"), ["model_name"], unique=False)

    op.create_table(
        "model_checkpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("is_active", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("endpoint_url", sa.String(length=2000), nullable=True),
        sa.Column("endpoint_model", sa.String(length=400), nullable=True),
        sa.Column("api_key_enc", sa.Text(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_model_checkpoints_model_id_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_checkpoints")),
    )
    with op.batch_alter_table("model_checkpoints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_checkpoints_model_id_created_at"),
            ["model_id", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("model_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_checkpoints_model_id_created_at"))

    op.drop_table("model_checkpoints")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_model_name"))

    op.drop_table("models")
    with op.batch_alter_table("gateway_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_usage_trace_id"))
        batch_op.drop_index(batch_op.f("ix_gateway_usage_team_id_created_at"))

    op.drop_table("gateway_usage")
    op.drop_table("gateway_limits")
    op.drop_table("gateway_upstreams")
