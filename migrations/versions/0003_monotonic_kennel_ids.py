"""monotonic kennel ids on SQLite (AUTOINCREMENT): a new kennel never gets a deleted one's id

SQLite's plain integer primary key hands the highest deleted id to the next row, and a new
kennel would inherit the old one's decisions (they are kept). PostgreSQL sequences never reuse.

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    with op.batch_alter_table("kennels", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass
    # Start past every id ever used, including deleted kennels that still have decisions.
    used = bind.execute(sa.text(
        "SELECT max(coalesce((SELECT max(id) FROM kennels), 0), coalesce((SELECT max(kennel_id) FROM decisions), 0))"
    )).scalar()
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'kennels'"))
    bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('kennels', :seq)"), {"seq": used or 0})


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("kennels", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
