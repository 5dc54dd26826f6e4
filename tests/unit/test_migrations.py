"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL.

A model changed without a migration (or the other way round) fails here.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url

from whistle import models  # also registers every table on Base.metadata
from whistle.db import Base, make_engine, upgrade

PG_ENV = "WHISTLE_TEST_DATABASE_URL"


def _differences(engine: Engine, metadata: MetaData = Base.metadata) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def _assert_matches_models(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
    assert _differences(engine) == [], "the models and the migrations disagree; add a migration"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'whistle.db'}"


def test_the_migrations_build_the_schema_of_the_models_on_sqlite(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        _assert_matches_models(engine)
    finally:
        engine.dispose()


def test_the_migrated_next_deadline_is_computed_as_the_model_says(sqlite_url: str) -> None:
    # Alembic's comparison does not look inside a generated column's expression: this does.
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        (column,) = [c for c in inspect(engine).get_columns("report") if c["name"] == "next_deadline"]
    finally:
        engine.dispose()
    assert column["computed"]["sqltext"] == models.NEXT_DEADLINE
    assert column["computed"]["persisted"] is True


def test_upgrading_twice_changes_nothing(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert len(versions) == 1
        _assert_matches_models(engine)
    finally:
        engine.dispose()


def test_the_comparison_notices_a_model_change_without_a_migration(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["report"].append_column(Column("colour", Integer, nullable=True))
    engine = make_engine(sqlite_url)
    try:
        differences = _differences(engine, changed)
    finally:
        engine.dispose()
    assert [(d[0], d[3].name) for d in differences if d[0] == "add_column"] == [("add_column", "colour")]


# --- PostgreSQL ------------------------------------------------------------------------


@pytest.fixture
def postgresql_url() -> Iterator[str]:
    """A database of its own on the test server, so other tests on `test` are not disturbed."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set, so the PostgreSQL variant is skipped")
    name = f"whistle_migration_test_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgresql
def test_the_migrations_build_the_schema_of_the_models_on_postgresql(postgresql_url: str) -> None:
    upgrade(postgresql_url)
    engine = make_engine(postgresql_url)
    try:
        _assert_matches_models(engine)
    finally:
        engine.dispose()
