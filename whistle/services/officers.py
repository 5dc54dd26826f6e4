"""Officers: their key pairs, logins and the first administrator's setup."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.models import Officer, SetupToken
from whistle.services.context import derive_key
from whistle.services.errors import LoginFailed, OfficerExists, SetupUnavailable, WeakPassword

MIN_PASSWORD_CHARS = 12
_DUMMY_SALT = bytes(crypto.SALT_BYTES)


@dataclass(frozen=True)
class NewOfficer:
    officer: Officer
    #: The one-time recovery key, shown once to the officer and never stored.
    recovery_code: str


def _password_context(public_id: str) -> bytes:
    return crypto.context("officer", public_id, "private-key", "password")


def _recovery_context(public_id: str) -> bytes:
    return crypto.context("officer", public_id, "private-key", "recovery")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise WeakPassword(f"Choose a password of at least {MIN_PASSWORD_CHARS} characters.")


def create_officer(
    db: Session,
    kdf: crypto.KdfParams,
    email: str,
    display_name: str,
    password: str,
    now: dt.datetime,
    *,
    is_admin: bool = False,
) -> NewOfficer:
    """Make an officer with a fresh hybrid key pair, sealed under their password
    and, separately, under a one-time recovery key."""
    check_password(password)
    email = normalise_email(email)
    if db.scalar(select(Officer.id).where(Officer.email == email)) is not None:
        raise OfficerExists(f"An officer with the email address {email} already exists.")
    public_id = crypto.new_public_id()
    pair = crypto.generate_keypair()
    password_salt, recovery_salt = crypto.new_salt(), crypto.new_salt()
    recovery_code = crypto.new_recovery_code()
    password_key = derive_key(password.encode(), password_salt, kdf)
    officer = Officer(
        public_id=public_id,
        email=email,
        display_name=display_name.strip(),
        is_admin=is_admin,
        is_active=True,
        created_at=now,
        public_key=pair.public,
        private_key_sealed=crypto.seal(password_key, pair.private, _password_context(public_id)),
        password_salt=password_salt,
        password_kdf=kdf.encode(),
        private_key_recovery_sealed=crypto.seal(
            crypto.recovery_code_key(recovery_code, recovery_salt), pair.private, _recovery_context(public_id)
        ),
        recovery_salt=recovery_salt,
    )
    db.add(officer)
    db.flush()
    return NewOfficer(officer, recovery_code)


def authenticate(db: Session, kdf: crypto.KdfParams, email: str, password: str) -> tuple[Officer, bytes]:
    """Check a password by unsealing the officer's private key with it.

    An unknown email or a deactivated officer costs the same derivation and
    gives the same error as a wrong password.
    """
    officer = db.scalar(select(Officer).where(Officer.email == normalise_email(email)))
    if officer is None or not officer.is_active:
        derive_key(password.encode(), _DUMMY_SALT, kdf)
        raise LoginFailed()
    key = derive_key(password.encode(), officer.password_salt, crypto.KdfParams.decode(officer.password_kdf))
    try:
        private_key = crypto.open_sealed(
            key, officer.private_key_sealed, _password_context(officer.public_id)
        )
    except crypto.CryptoError as exc:
        raise LoginFailed() from exc
    return officer, private_key


def get_active(db: Session, public_id: str) -> Officer | None:
    return db.scalar(select(Officer).where(Officer.public_id == public_id, Officer.is_active))


def active_officers(db: Session) -> list[Officer]:
    return list(db.scalars(select(Officer).where(Officer.is_active).order_by(Officer.display_name)))


def has_officers(db: Session) -> bool:
    return bool(db.scalar(select(func.count(Officer.id))))


# --- first run -----------------------------------------------------------------


def new_setup_token(db: Session, now: dt.datetime) -> str | None:
    """A one-time token for the first administrator, replacing any earlier one.

    Returns None once the instance has an officer: setup is then closed.
    """
    if has_officers(db):
        return None
    db.execute(delete(SetupToken))
    token = crypto.new_token()
    db.add(SetupToken(token_hash=crypto.token_hash(token), created_at=now))
    db.flush()
    return token


def setup_token_valid(db: Session, token: str) -> bool:
    if has_officers(db):
        return False
    return (
        db.scalar(select(SetupToken.id).where(SetupToken.token_hash == crypto.token_hash(token))) is not None
    )


def set_up_first_admin(
    db: Session,
    kdf: crypto.KdfParams,
    token: str,
    email: str,
    display_name: str,
    password: str,
    now: dt.datetime,
) -> NewOfficer:
    """Use the setup token (once) to create the first administrator."""
    if not setup_token_valid(db, token):
        raise SetupUnavailable()
    check_password(password)
    db.execute(delete(SetupToken))
    return create_officer(db, kdf, email, display_name, password, now, is_admin=True)
