"""The database: declarative base, engine and session factory.

SQLite (in WAL mode) is the embedded default; PostgreSQL is used when
``database_url`` names it.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import BigInteger, Integer, MetaData, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from whistle.shipped import folder

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


#: The type of every row key and of every column that refers to one. Keys are random (see
#: :func:`random_id`): 64-bit on PostgreSQL, and SQLite's INTEGER, which makes the key the
#: rowid itself, so that not even SQLite's hidden row number orders the rows.
RandomId = BigInteger().with_variant(Integer(), "sqlite")


def random_id() -> int:
    """A new row key: random, so that a row's key says nothing of when it was written.

    Reporters' rows share tables with officers' rows whose exact times are audited;
    an increasing key would place a reporter's reply between two officer actions.
    """
    return secrets.randbits(63) or 1


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def make_engine(url: str, **options: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **options)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def make_session_factory(engine: Engine, info: dict[str, Any] | None = None) -> sessionmaker[Any]:
    """Sessions on ``engine``; ``info`` is what every session carries (see ``audit.TIME_KEY``)."""
    return sessionmaker(bind=engine, expire_on_commit=False, info=info or {})


#: The PostgreSQL advisory lock held while migrating (any constant that no one else uses).
MIGRATION_LOCK = 0x5768_6973_746C_65  # "Whistle"


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database schema up to ``revision`` (the latest) with Alembic's migrations.

    On PostgreSQL the migration holds an advisory lock, so hosts that start at
    the same moment migrate one after the other: the first does the work, the
    others find nothing left to do.
    """
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import pool, text

    config = Config()
    config.set_main_option("script_location", str(folder("migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if not url.startswith("postgresql"):
        command.upgrade(config, revision)
        return
    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
            finally:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                connection.commit()
    finally:
        engine.dispose()


#: How many index entries SQLite's ANALYZE samples an index (SQLite's advice: 100 to 1,000): the
#: statistics come out close enough to choose an index by, in a fraction of a second however
#: many cases there are.
SQLITE_ANALYSIS_LIMIT = 1000


def analyze(connection: Connection) -> None:
    """Refresh the statistics the database chooses a query's indexes by.

    Without them SQLite guesses how many rows a condition matches, and with
    many cases a guess can pick an index that reads most of them. PostgreSQL's
    autovacuum refreshes them too, after enough changes; this does it now.
    """
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"PRAGMA analysis_limit={SQLITE_ANALYSIS_LIMIT}")
    connection.exec_driver_sql("ANALYZE")


def checkpoint(engine: Engine) -> None:
    """Fold SQLite's write-ahead log into the database file and empty it.

    The log keeps recent pages in the order they were written, which a copy of
    the instance folder could read; ``whistle maintain`` empties it hourly. Other
    databases keep no such file here.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
