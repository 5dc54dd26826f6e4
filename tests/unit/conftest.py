"""Fixtures for calling the services directly, without an app.

Each test gets a fresh SQLite file whose schema is made by the Alembic
migrations (as in production), an organisation key pair, a pepper, cheap
Argon2id parameters and a sealed store in its temporary folder.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.db import make_engine, make_session_factory, upgrade
from whistle.models import Officer
from whistle.services import officers
from whistle.services.context import Keyring, Policy
from whistle.storage import SealedStore

#: Cheap Argon2id parameters for speed; tests/unit/test_crypto.py runs the real ones once.
CHEAP_KDF = crypto.KdfParams(time_cost=1, memory_cost=8, parallelism=1)
PASSWORD = "correct horse battery staple"
NOW = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'whistle.db'}"
    upgrade(url)
    engine = make_engine(url)
    session = make_session_factory(engine)()
    try:
        yield session
    finally:
        session.close()
        engine.dispose()


@dataclass(frozen=True)
class Organisation:
    """The keyring the services get, and the private half that is never stored."""

    keyring: Keyring
    private_key: bytes


@pytest.fixture
def organisation() -> Organisation:
    pair = crypto.generate_keypair()
    keyring = Keyring(pepper=crypto.new_key(), organisation_public_key=pair.public, kdf=CHEAP_KDF)
    return Organisation(keyring, pair.private)


@pytest.fixture
def keyring(organisation: Organisation) -> Keyring:
    return organisation.keyring


@pytest.fixture
def store(tmp_path: Path) -> SealedStore:
    return SealedStore(tmp_path / "files")


@pytest.fixture
def policy() -> Policy:
    return Policy()


@dataclass(frozen=True)
class OfficerKeys:
    """An officer row and the private key a login would unseal."""

    officer: Officer
    private_key: bytes
    recovery_code: str


MakeOfficer = Callable[..., OfficerKeys]


@pytest.fixture
def make_officer(db: Session) -> MakeOfficer:
    """Create an officer (cheap KDF) and return it with its private key."""

    def make(name: str, email: str | None = None, *, admin: bool = False) -> OfficerKeys:
        email = email or f"{name.split()[0].lower()}@example.org"
        created = officers.create_officer(db, CHEAP_KDF, email, name, PASSWORD, NOW, is_admin=admin)
        _officer, private_key = officers.authenticate(db, email, PASSWORD)
        return OfficerKeys(created.officer, private_key, created.recovery_code)

    return make
