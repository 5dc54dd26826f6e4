"""Scratch PostgreSQL databases for the unit tests that also run there.

The server named by WHISTLE_TEST_DATABASE_URL is shared (the functional tests
truncate its ``test`` database), so unit tests make a database of their own,
as tests/unit/test_migrations.py does, and drop it afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from whistle import models  # noqa: F401 - registers every table on Base.metadata
from whistle.db import Base

PG_ENV = "WHISTLE_TEST_DATABASE_URL"
SKIP_REASON = f"{PG_ENV} is not set, so the PostgreSQL variant is skipped"


@contextmanager
def scratch_postgresql(url: str, label: str) -> Iterator[str]:
    """A new, empty database on the server of ``url``; dropped on the way out."""
    name = f"whistle_{label}_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def empty_postgresql(engine: Engine) -> None:
    """Every table emptied, and the audit head row back as the migration leaves it."""
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        connection.execute(text("INSERT INTO audit_head (id, entries) VALUES (1, 0)"))
