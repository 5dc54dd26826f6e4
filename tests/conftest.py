"""Fixtures: a temporary instance per test, on SQLite and (when configured) PostgreSQL.

Argon2 runs with cheap parameters here for speed; one unit test runs the real
ones. CSRF protection stays on: the helpers read the token from each form,
as a browser would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from whistle import create_app
from whistle.config import WEAK_KDF_ENV, Settings, create_instance
from whistle.db import Base, make_engine, upgrade
from whistle.services import officers
from whistle.web.runtime import Runtime

# Cheap Argon2 parameters below the portal's floor are allowed for the suite (and for the
# servers it starts, which inherit this); one unit test runs the real ones.
os.environ[WEAK_KDF_ENV] = "1"
PG_ENV = "WHISTLE_TEST_DATABASE_URL"
CHEAP_KDF = "kdf_time_cost = 1\nkdf_memory_cost = 8\nkdf_parallelism = 1\n"
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def _reset_postgresql(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        connection.execute(text("INSERT INTO audit_head (id, entries) VALUES (1, 0)"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'instance' / 'whistle.db'}"
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set, so the PostgreSQL variant is skipped")
    _reset_postgresql(url)
    return url


@dataclass
class Instance:
    path: Path
    organisation_private_key: bytes
    settings_text: str


@pytest.fixture
def instance(tmp_path: Path, database_url: str) -> Instance:
    path = tmp_path / "instance"
    settings_text = f'{CHEAP_KDF}database_url = "{database_url}"\norganisation_name = "Northshire Council"\n'
    private = create_instance(path, settings_text)
    upgrade(database_url)
    return Instance(path, private, settings_text)


@pytest.fixture
def app(instance: Instance) -> Iterator[Flask]:
    app = create_app(Settings.load(instance.path))
    app.config["TESTING"] = True
    yield app
    runtime_of(app).engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def runtime_of(app: Flask) -> Runtime:
    rt: Runtime = app.extensions["whistle"]
    return rt


@contextmanager
def database_down(app: Flask) -> Iterator[None]:
    """A real outage under a running app: on SQLite the database file is moved away and a folder
    put in its place, so that no connection can open it; on PostgreSQL the database stops taking
    connections and the app's own are ended, as when a server goes down under a running site."""
    rt = runtime_of(app)
    url = make_url(rt.settings.database_url)
    outage = _sqlite_file_gone if url.get_backend_name() == "sqlite" else _postgresql_refusing
    try:
        with outage(url):
            rt.engine.dispose()  # the pool's open connections go too
            yield
    finally:
        rt.engine.dispose()


@contextmanager
def _sqlite_file_gone(url: URL) -> Iterator[None]:
    assert url.database is not None
    path = Path(url.database)
    away = path.with_name("away.db")
    path.rename(away)
    path.mkdir()
    try:
        yield
    finally:
        path.rmdir()
        away.rename(path)


@contextmanager
def _postgresql_refusing(url: URL) -> Iterator[None]:
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = url.database
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name},
            )
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
        admin.dispose()


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1) or match.group(2)


@dataclass
class OfficerAccount:
    public_id: str
    email: str
    name: str
    password: str
    recovery_code: str


def add_officer(app: Flask, name: str, email: str, *, admin: bool = False) -> OfficerAccount:
    rt = runtime_of(app)
    with rt.session_factory() as db, db.begin():
        created = officers.create_officer(
            db,
            rt.keyring.kdf,
            email,
            name,
            PASSWORD,
            rt.clock.now(),
            is_admin=admin,
            pepper=rt.keyring.pepper,
        )
    return OfficerAccount(created.officer.public_id, email, name, PASSWORD, created.recovery_code)


@pytest.fixture
def alice(app: Flask) -> OfficerAccount:
    return add_officer(app, "Alice Officer", "alice@example.org", admin=True)


@pytest.fixture
def bob(app: Flask) -> OfficerAccount:
    return add_officer(app, "Bob Officer", "bob@example.org")


def form_post(
    client: FlaskClient, page: str, data: dict[str, object], action: str | None = None, **kwargs: object
):
    """GET a form page, then POST it with its CSRF token, as a browser would."""
    html = client.get(page).get_data(as_text=True)
    return client.post(action or page, data={"csrf_token": csrf_token(html), **data}, **kwargs)


REPORT = {
    "category": "caseloads",
    "what_happened": "Caseloads are far beyond safe limits; visits are being missed.",
    "when_where": "Since the spring, in the east locality team",
    "immediate_risk": "no",
    "raised_before": "yes",
    "raised_before_result": "Raised with my manager; nothing changed.",
}


def submit_report(client: FlaskClient, **fields: object) -> str:
    """Submit a report; return the receipt shown."""
    data = {**REPORT, **fields}
    response = form_post(client, "/report", data, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)
    match = re.search(
        r"\b([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})\b", response.get_data(as_text=True)
    )
    assert match, "no receipt on the page"
    return match.group(1)


def follow_up(client: FlaskClient, receipt: str):
    return form_post(client, "/follow-up", {"receipt": receipt})


def login(client: FlaskClient, account: OfficerAccount):
    return form_post(client, "/officer/login", {"email": account.email, "password": account.password})


def reports_listed(client: FlaskClient) -> list[str]:
    html = client.get("/officer/").get_data(as_text=True)
    return re.findall(r'href="/officer/reports/([0-9a-f]{32})"', html)
