"""Two-factor login with TOTP (RFC 6238), the way authenticator apps do it.

The secret is 20 random bytes, sealed under a key derived from the officer's
private key, so a copy of the database can neither read it nor compute codes:
only a login that has unsealed the private key with the password can check a
code. Codes have six digits for 30-second steps; the current step and one step
either side are accepted, for phones whose clocks drift a little. The step of
the last accepted code is kept (``totp_last_step``), and no code of that step
or an earlier one is ever accepted again, so a code seen over a shoulder or
caught in transit cannot be replayed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import io
import secrets

import segno
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import update
from sqlalchemy.orm import Session

from whistle import audit, crypto
from whistle.models import Officer
from whistle.services import settings
from whistle.services.errors import CodeRefused, CodeReplayed

SECRET_BYTES = 20
DIGITS = 6
STEP_SECONDS = 30
#: Steps accepted either side of the current one.
WINDOW = 1


def _totp(secret: bytes) -> TOTP:
    # SHA-1 only because authenticator apps compute RFC 6238 codes with HMAC-SHA1 and
    # many support nothing else; HMAC-SHA1 is not weakened by SHA-1's collision attacks.
    # This is the one place in Whistle where SHA-1 may appear.
    return TOTP(secret, DIGITS, hashes.SHA1(), STEP_SECONDS)  # noqa: S303


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def secret_text(secret: bytes) -> str:
    """The secret as authenticator apps take it typed: base32, in groups of four."""
    text = base64.b32encode(secret).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def provisioning_uri(secret: bytes, account: str, issuer: str) -> str:
    """The ``otpauth://`` address that a QR code hands to an authenticator app."""
    return _totp(secret).get_provisioning_uri(account, issuer or None)


def qr_code_svg(uri: str) -> bytes:
    """An SVG document of the QR code: paths only, no script and no style attributes."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(
        out, kind="svg", scale=5, border=4, dark="#000", light="#fff", xmldecl=True, title="QR code"
    )
    return out.getvalue()


def time_step(now: dt.datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def code_at(secret: bytes, step: int) -> str:
    """The code an authenticator shows during ``step`` (used by tests, too)."""
    return _totp(secret).generate(step * STEP_SECONDS).decode()


def _normalise(code: str) -> str:
    cleaned = "".join(code.split()).replace("-", "")
    if len(cleaned) != DIGITS or not cleaned.isascii() or not cleaned.isdigit():
        raise CodeRefused()
    return cleaned


def matching_step(secret: bytes, code: str, now: dt.datetime) -> int:
    """The latest step, of those accepted now, whose code this is; else :class:`CodeRefused`."""
    typed = _normalise(code).encode()
    current = time_step(now)
    matched = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(_totp(secret).generate(step * STEP_SECONDS), typed):
            matched = step
    if matched is None:
        raise CodeRefused()
    return matched


# --- the sealed secret -----------------------------------------------------------


def _key(officer: Officer, private_key: bytes) -> bytes:
    return crypto.expand_key(private_key, officer.public_id.encode(), b"whistle/1 totp")


def _context(public_id: str) -> bytes:
    return crypto.context("officer", public_id, "totp")


def seal_secret(officer: Officer, private_key: bytes, secret: bytes) -> bytes:
    return crypto.seal(_key(officer, private_key), secret, _context(officer.public_id))


def open_secret(officer: Officer, private_key: bytes) -> bytes:
    if officer.totp_secret_sealed is None:
        raise CodeRefused()
    try:
        return crypto.open_sealed(
            _key(officer, private_key), officer.totp_secret_sealed, _context(officer.public_id)
        )
    except crypto.CryptoError as exc:
        raise CodeRefused() from exc


# --- enrolment and checking --------------------------------------------------------


def enrolled(officer: Officer) -> bool:
    return officer.totp_secret_sealed is not None


def required(db: Session) -> bool:
    """Whether administrators have made two-factor login mandatory for every officer."""
    return bool(settings.get(db, "require_two_factor"))


def enable(
    db: Session, officer: Officer, private_key: bytes, secret: bytes, code: str, now: dt.datetime
) -> None:
    """Switch two-factor login on (or move it to a new app) once a code from it is right."""
    step = matching_step(secret, code, now)
    officer.totp_secret_sealed = seal_secret(officer, private_key, secret)
    officer.totp_last_step = step
    audit.record(db, "two_factor_enabled", officer.public_id, now)
    db.flush()


def check_code(db: Session, officer: Officer, private_key: bytes, code: str, now: dt.datetime) -> None:
    """Accept a code once: raise :class:`CodeReplayed` for a step used already.

    The step is recorded with a conditional update, so two requests racing
    with the same code cannot both pass.
    """
    step = matching_step(open_secret(officer, private_key), code, now)
    result = db.execute(
        update(Officer)
        .where(Officer.id == officer.id, Officer.totp_last_step < step)
        .values(totp_last_step=step)
        .execution_options(synchronize_session="fetch")
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise CodeReplayed()
    db.flush()


def turn_off(officer: Officer) -> None:
    """Forget the secret (its key pair is being replaced, or an administrator reset it)."""
    officer.totp_secret_sealed = None
    officer.totp_last_step = 0
