"""people in view: a kennel may keep its door shut while people are in view, and each decision
records how many people the head count saw

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kennels") as batch:
        batch.add_column(sa.Column("people_block", sa.Boolean(), nullable=True))
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("people", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("people")
    with op.batch_alter_table("kennels") as batch:
        batch.drop_column("people_block")
