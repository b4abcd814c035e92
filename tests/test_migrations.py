"""The schema comes only from Alembic migrations: empty → head → base, on SQLite and PostgreSQL."""

from sqlalchemy import create_engine, inspect

from app.db import migrate
from app.db.models import Base

TABLES = {"kennels", "species", "photos", "tokens", "decisions"}


def _roundtrip(url: str) -> None:
    engine = create_engine(url)
    try:
        assert not TABLES & set(inspect(engine).get_table_names())
        migrate.upgrade(url)
        insp = inspect(engine)
        assert TABLES <= set(insp.get_table_names())
        assert migrate.current_revision(engine) == migrate.head_revision(url)
        # Every model column exists in the migrated schema (the models and migrations agree).
        for table in Base.metadata.sorted_tables:
            have = {c["name"] for c in insp.get_columns(table.name)}
            assert {c.name for c in table.columns} == have, table.name
        migrate.downgrade(url, "base")
        assert not TABLES & set(inspect(engine).get_table_names())
        assert migrate.current_revision(engine) is None
    finally:
        engine.dispose()


def test_sqlite_upgrade_and_downgrade(tmp_path):
    _roundtrip(f"sqlite:///{tmp_path / 'kg.db'}")


def test_postgresql_upgrade_and_downgrade(pg_url):
    _roundtrip(pg_url)


def test_no_pending_model_changes(tmp_path):
    """Autogenerate against a migrated database finds nothing: no model change lacks a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    url = f"sqlite:///{tmp_path / 'kg.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_sqlite_kennel_ids_go_past_every_id_in_use_after_upgrading(tmp_path):
    """A database from before 0003: kennel 9 was deleted but its decisions are kept. After the
    upgrade a new kennel gets 10, not 9 (which would inherit them), and deleting the newest
    kennel does not hand its id out again."""
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'kg.db'}"
    migrate.upgrade(url, "0002")
    engine = create_engine(url)
    now = "2026-01-01 00:00:00"
    with engine.begin() as c:
        c.execute(text("INSERT INTO kennels (id, name, admits, thresholds, created_at, updated_at) "
                       "VALUES (1, 'a', '[]', '{}', :t, :t)"), {"t": now})
        c.execute(text(
            "INSERT INTO decisions (frame_id, kennel_id, created_at, species, best, score, accepted, door, reason, "
            "error, latency_ms, model, index_version, health, reused) VALUES "
            "('f1', 9, :t, 'dog', 'dog', 0.9, 1, 'open', 'accepted', 0, 1.0, 'm', 'v1', 'ok', 0)"), {"t": now})
    migrate.upgrade(url)

    def new_kennel(name: str) -> int:
        with engine.begin() as c:
            c.execute(text("INSERT INTO kennels (name, admits, thresholds, created_at, updated_at) "
                           "VALUES (:n, '[]', '{}', :t, :t)"), {"n": name, "t": now})
            return c.execute(text("SELECT max(id) FROM kennels")).scalar()

    try:
        assert new_kennel("b") == 10
        with engine.begin() as c:
            c.execute(text("DELETE FROM kennels WHERE id = 10"))
        assert new_kennel("c") == 11
        assert "AUTOINCREMENT" in engine.connect().execute(
            text("SELECT sql FROM sqlite_master WHERE name = 'kennels'")).scalar().upper()
    finally:
        engine.dispose()
