"""frame health, motion-gate reuse flag, per-kennel gate overrides, alerts, threshold audit trail

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("health", sa.String(length=20), server_default="ok", nullable=False))
        batch.add_column(sa.Column("reused", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("kennels") as batch:
        batch.add_column(sa.Column("health", sa.JSON(), nullable=True))
    op.create_table(
        "threshold_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("field", sa.String(length=50), nullable=False),
        sa.Column("old", sa.JSON(), nullable=True),
        sa.Column("new", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_threshold_changes")),
    )
    op.create_index(op.f("ix_threshold_changes_created_at"), "threshold_changes", ["created_at"], unique=False)
    op.create_table(
        "alerts",
        sa.Column("id", BigId, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kennel_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index("ix_alerts_kennel_time", "alerts", ["kennel_id", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_alerts_kennel_time", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index(op.f("ix_threshold_changes_created_at"), table_name="threshold_changes")
    op.drop_table("threshold_changes")
    with op.batch_alter_table("kennels") as batch:
        batch.drop_column("health")
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("reused")
        batch.drop_column("health")
