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
