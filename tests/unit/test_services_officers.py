"""The officer services called directly: key pairs, logins, recovery codes and first-run setup."""

from __future__ import annotations

import datetime as dt

import argon2
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.models import Officer, SetupToken
from whistle.services import context, officers
from whistle.services.errors import (
    LoginFailed,
    OfficerExists,
    SetupUnavailable,
    WeakPassword,
)

from .conftest import CHEAP_KDF, NOW, PASSWORD


def _create(
    db: Session, email: str = "alice@example.org", name: str = "Alice Officer", *, is_admin: bool = False
) -> officers.NewOfficer:
    return officers.create_officer(db, CHEAP_KDF, email, name, PASSWORD, NOW, is_admin=is_admin)


def test_create_then_authenticate_gives_the_private_key_of_the_officer(db: Session) -> None:
    created = _create(db, "  Alice@Example.ORG ", "  Alice Officer  ", is_admin=True)
    officer = created.officer
    assert (officer.email, officer.display_name, officer.is_admin, officer.is_active) == (
        "alice@example.org",
        "Alice Officer",
        True,
        True,
    )
    assert officer.password_kdf == CHEAP_KDF.encode()

    found, private_key = officers.authenticate(db, "ALICE@example.org ", PASSWORD)
    assert found is officer
    assert crypto.public_key_of(private_key) == officer.public_key
    # The private key is stored sealed, never in clear.
    assert private_key not in officer.private_key_sealed
    assert private_key not in officer.private_key_recovery_sealed
    assert "Alice" not in repr(officer)


def test_officers_are_not_admins_unless_asked(db: Session) -> None:
    assert _create(db).officer.is_admin is False


def test_each_officer_has_a_key_pair_of_their_own(db: Session) -> None:
    alice = _create(db).officer
    bob = _create(db, "bob@example.org", "Bob Officer").officer
    assert alice.public_key != bob.public_key
    assert alice.public_id != bob.public_id
    assert len(alice.public_key) == crypto.PUBLIC_KEY_BYTES


@pytest.mark.parametrize(
    ("email", "password"),
    [
        pytest.param("alice@example.org", PASSWORD + "!", id="wrong-password"),
        pytest.param("alice@example.org", "", id="empty-password"),
        pytest.param("nobody@example.org", PASSWORD, id="unknown-email"),
    ],
)
def test_login_fails(db: Session, email: str, password: str) -> None:
    _create(db)
    with pytest.raises(LoginFailed):
        officers.authenticate(db, email, password)


def test_a_deactivated_officer_cannot_log_in(db: Session) -> None:
    officer = _create(db).officer
    officer.is_active = False
    db.flush()
    with pytest.raises(LoginFailed):
        officers.authenticate(db, "alice@example.org", PASSWORD)
    assert officers.get_active(db, officer.public_id) is None


@pytest.mark.parametrize("password", ["", "short", "x" * (officers.MIN_PASSWORD_CHARS - 1)])
def test_a_password_under_twelve_characters_is_weak(db: Session, password: str) -> None:
    with pytest.raises(WeakPassword, match="at least 12"):
        officers.create_officer(db, CHEAP_KDF, "alice@example.org", "Alice", password, NOW)
    assert not officers.has_officers(db)


def test_a_password_of_twelve_characters_that_is_hard_to_guess_is_enough(db: Session) -> None:
    password = "Tram-olive-94"
    officers.create_officer(db, CHEAP_KDF, "alice@example.org", "Alice", password, NOW)
    officers.authenticate(db, "alice@example.org", password)


@pytest.mark.parametrize(
    "password",
    ["aaaaaaaaaaaa", "password1234", "qwertyuiop12", "alice@example.org", "Alice Liddell 1"],
)
def test_a_long_password_that_is_easy_to_guess_is_refused_with_a_reason(db: Session, password: str) -> None:
    """A copy of the database lets a password seal be guessed offline: length alone is no defence."""
    with pytest.raises(WeakPassword, match="would be easy to guess"):
        officers.create_officer(db, CHEAP_KDF, "alice@example.org", "Alice Liddell", password, NOW)
    assert not officers.has_officers(db)


def test_an_email_is_used_once_whatever_its_case(db: Session) -> None:
    _create(db)
    with pytest.raises(OfficerExists):
        _create(db, " ALICE@example.org", "Another Alice")
    assert db.scalar(select(func.count()).select_from(Officer)) == 1


def test_the_recovery_code_opens_the_private_key(db: Session) -> None:
    created = _create(db)
    officer = created.officer
    context = crypto.context("officer", officer.public_id, "private-key", "recovery")

    def open_with(code: str) -> bytes:
        key = crypto.recovery_code_key(code, officer.recovery_salt)
        return crypto.open_sealed(key, officer.private_key_recovery_sealed, context)

    assert crypto.public_key_of(open_with(created.recovery_code)) == officer.public_key
    # Typed back in lower case with spaces, it still works; another code does not.
    assert open_with(created.recovery_code.lower().replace("-", " ")) == open_with(created.recovery_code)
    with pytest.raises(crypto.CryptoError):
        open_with(crypto.new_recovery_code())


def test_active_officers_are_sorted_by_name_and_leave_out_the_deactivated(db: Session) -> None:
    carol = _create(db, "carol@example.org", "Carol Officer").officer
    _create(db, "alice@example.org", "Alice Officer")
    _create(db, "bob@example.org", "Bob Officer")
    carol.is_active = False
    db.flush()
    assert [o.display_name for o in officers.active_officers(db)] == ["Alice Officer", "Bob Officer"]
    assert officers.get_active(db, carol.public_id) is None


def test_get_active_finds_an_officer_by_public_id(db: Session) -> None:
    officer = _create(db).officer
    assert officers.get_active(db, officer.public_id) is officer
    assert officers.get_active(db, crypto.new_public_id()) is None


# --- first run -------------------------------------------------------------------


def _setup_tokens(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(SetupToken)) or 0


def test_the_setup_token_makes_the_first_admin_once(db: Session) -> None:
    token = officers.new_setup_token(db, NOW)
    assert token is not None
    assert officers.setup_token_valid(db, token)
    # Only its hash is stored.
    assert db.scalar(select(SetupToken.token_hash)) == crypto.token_hash(token)

    created = officers.set_up_first_admin(
        db, CHEAP_KDF, token, "Admin@Example.org", "Ada Admin", PASSWORD, NOW
    )
    assert (created.officer.email, created.officer.is_admin) == ("admin@example.org", True)
    officer, private_key = officers.authenticate(db, "admin@example.org", PASSWORD)
    assert crypto.public_key_of(private_key) == officer.public_key
    assert _setup_tokens(db) == 0

    assert not officers.setup_token_valid(db, token)
    with pytest.raises(SetupUnavailable):
        officers.set_up_first_admin(db, CHEAP_KDF, token, "eve@example.org", "Eve", PASSWORD, NOW)
    assert officers.new_setup_token(db, NOW) is None
    assert _setup_tokens(db) == 0
    assert [o.email for o in officers.active_officers(db)] == ["admin@example.org"]


def test_a_new_setup_token_replaces_the_old_one(db: Session) -> None:
    old = officers.new_setup_token(db, NOW)
    new = officers.new_setup_token(db, NOW + dt.timedelta(minutes=5))
    assert old is not None and new is not None and old != new
    assert not officers.setup_token_valid(db, old)
    assert officers.setup_token_valid(db, new)
    assert _setup_tokens(db) == 1
    with pytest.raises(SetupUnavailable):
        officers.set_up_first_admin(db, CHEAP_KDF, old, "admin@example.org", "Ada", PASSWORD, NOW)
    assert not officers.has_officers(db)


def test_an_unknown_setup_token_is_refused(db: Session) -> None:
    officers.new_setup_token(db, NOW)
    for token in (crypto.new_token(), ""):
        assert not officers.setup_token_valid(db, token)
        with pytest.raises(SetupUnavailable):
            officers.set_up_first_admin(db, CHEAP_KDF, token, "admin@example.org", "Ada", PASSWORD, NOW)
    assert not officers.has_officers(db)


def test_no_setup_token_once_an_officer_exists(db: Session) -> None:
    token = officers.new_setup_token(db, NOW)
    assert token is not None
    _create(db)  # an officer added from the command line closes setup
    assert officers.new_setup_token(db, NOW) is None
    assert not officers.setup_token_valid(db, token)
    with pytest.raises(SetupUnavailable):
        officers.set_up_first_admin(db, CHEAP_KDF, token, "admin@example.org", "Ada", PASSWORD, NOW)


def test_a_weak_password_does_not_use_up_the_setup_token(db: Session) -> None:
    token = officers.new_setup_token(db, NOW)
    assert token is not None
    with pytest.raises(WeakPassword):
        officers.set_up_first_admin(db, CHEAP_KDF, token, "admin@example.org", "Ada", "short", NOW)
    assert officers.setup_token_valid(db, token)
    officers.set_up_first_admin(db, CHEAP_KDF, token, "admin@example.org", "Ada", PASSWORD, NOW)
    assert officers.has_officers(db)


# --- the bound on concurrent derivations --------------------------------------------


def test_a_failed_derivation_gives_its_slot_back() -> None:
    gate = context.DerivationGate(slots=1, wait_seconds=0.01)
    salt = crypto.new_salt()
    with pytest.raises(argon2.exceptions.HashingError):  # an empty salt is refused
        gate.derive_key(b"secret", b"", CHEAP_KDF)
    assert gate.derive_key(b"secret", salt, CHEAP_KDF) == crypto.derive_key(b"secret", salt, CHEAP_KDF)


def test_services_derive_through_the_configured_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "_gate", context._gate)  # restored after the test
    context.configure_derivations(slots=3, wait_seconds=0.5)
    assert (context._gate.slots, context._gate.wait_seconds) == (3, 0.5)
    salt = crypto.new_salt()
    assert context.derive_key(b"secret", salt, CHEAP_KDF) == crypto.derive_key(b"secret", salt, CHEAP_KDF)
