"""head count: a kennel's max_animals, and the animals counted in each decision

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kennels") as batch:
        batch.add_column(sa.Column("max_animals", sa.Integer(), nullable=True))
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("animals", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("animals")
    with op.batch_alter_table("kennels") as batch:
        batch.drop_column("max_animals")
