"""rollouts: the hosted rollout queue (queued and running rollouts survive a restart)

Revision ID: 0400_rollouts
Revises: 0300_gateway
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0400_rollouts"
down_revision = "0300_gateway"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hosted_rollouts",
        sa.Column("trace_id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("registry_id", sa.String(length=64), nullable=True),
        sa.Column("key_enc", sa.Text(), nullable=False),
        sa.Column("base_url", sa.String(length=2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_hosted_rollouts_team_id_teams")
        ),
        sa.PrimaryKeyConstraint("trace_id", name=op.f("pk_hosted_rollouts")),
    )
    with op.batch_alter_table("hosted_rollouts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_hosted_rollouts_state_created_at"), ["state", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("hosted_rollouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hosted_rollouts_state_created_at"))
    op.drop_table("hosted_rollouts")
