"""staff console and field loop: door overrides, a general audit trail, staff labels on
decisions, kept frames, and field photos (labelled frames from a kennel's own camera)

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "overrides",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("kennel_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(200), nullable=True),
        sa.Column("used_by_frame", sa.String(32), nullable=True),
    )
    op.create_index("ix_overrides_kennel_time", "overrides", ["kennel_id", "created_at"])
    op.create_table(
        "audit_events",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(30), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
    )
    op.create_index("ix_audit_events_created_at", "audit_events", ["created_at"])
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("label", sa.String(100), nullable=True))
        batch.add_column(sa.Column("labelled_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("override", sa.String(20), nullable=True))
        batch.add_column(sa.Column("kept", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("photos") as batch:
        batch.add_column(sa.Column("source", sa.String(10), nullable=False, server_default="upload"))
        batch.add_column(sa.Column("kennel_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("taken_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("frame_id", sa.String(32), nullable=True))
        batch.create_index("ix_photos_frame_id", ["frame_id"])


def downgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.drop_index("ix_photos_frame_id")
        for column in ("frame_id", "taken_at", "kennel_id", "source"):
            batch.drop_column(column)
    with op.batch_alter_table("decisions") as batch:
        for column in ("kept", "override", "labelled_at", "labelled_by", "label"):
            batch.drop_column(column)
    op.drop_index("ix_audit_events_created_at", "audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_overrides_kennel_time", "overrides")
    op.drop_table("overrides")
