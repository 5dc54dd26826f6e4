"""Server-side sessions: the data of a login sealed under a key held in the cookie.

The cookie carries ``<session id>.<session key>``. The database keeps only the
hash of the id and the data sealed under the key, so a copy of the database
without the cookie, or the cookie without the database, opens nothing.
Logging out or idling past the limit deletes the server-side half.

A session's row must not tell when its holder was active: a reporter's would
date the reporter, and an officer's would anchor the reporters' actions around
it. Every row's sweep time is rounded up to the hour, and the exact idle limit
is sealed inside.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.models import ServerSession, SessionKind

_ID_BYTES = 32
#: Rewrite a session (to push its idle limit back) at most this often.
REFRESH_AFTER = dt.timedelta(minutes=1)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _split(cookie: str) -> tuple[bytes, bytes] | None:
    session_id, _, key = cookie.partition(".")
    try:
        raw_id, raw_key = _unb64(session_id), _unb64(key)
    except (binascii.Error, ValueError):
        return None
    if len(raw_id) != _ID_BYTES or len(raw_key) != crypto.KEY_BYTES:
        return None
    return raw_id, raw_key


def _context(id_hash: bytes) -> bytes:
    return crypto.context("session", id_hash)


def load(db: Session, cookie: str | None, now: dt.datetime) -> tuple[bytes, dt.datetime] | None:
    """The session's data and exact expiry, or None if absent, forged or expired."""
    parts = _split(cookie) if cookie else None
    if parts is None:
        return None
    raw_id, key = parts
    id_hash = crypto.token_hash(_b64(raw_id))
    row = db.scalar(select(ServerSession).where(ServerSession.token_hash == id_hash))
    if row is None:
        return None
    try:
        sealed = crypto.open_sealed(key, row.data_sealed, _context(id_hash))
    except crypto.CryptoError:
        return None
    expires = dt.datetime.fromtimestamp(int.from_bytes(sealed[:8], "big"), dt.UTC)
    if expires <= now:
        db.delete(row)
        db.flush()
        return None
    return sealed[8:], expires


def needs_refresh(expires: dt.datetime, idle: dt.timedelta, now: dt.datetime) -> bool:
    return expires - now < idle - REFRESH_AFTER


def save(
    db: Session,
    cookie: str | None,
    data: bytes,
    kind: SessionKind | None,
    officer_id: int | None,
    idle: dt.timedelta,
    now: dt.datetime,
) -> str | None:
    """Store the session's data; return the cookie value (new when ``cookie`` is None).

    Returns None when the session was ended meanwhile (a logout in another tab,
    or expiry): an ended session is never brought back to life.
    """
    parts = _split(cookie) if cookie else None
    if parts is None:
        raw_id, key = secrets.token_bytes(_ID_BYTES), crypto.new_key()
    else:
        raw_id, key = parts
    id_hash = crypto.token_hash(_b64(raw_id))
    expires = now + idle
    sweep_at = (expires + dt.timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    sealed = crypto.seal(key, int(expires.timestamp()).to_bytes(8, "big") + data, _context(id_hash))
    row = db.scalar(select(ServerSession).where(ServerSession.token_hash == id_hash))
    if row is None:
        if parts is not None:
            return None
        row = ServerSession(token_hash=id_hash)
        db.add(row)
    row.kind = kind
    row.officer_id = officer_id
    row.expires_at = sweep_at
    row.data_sealed = sealed
    db.flush()
    return f"{_b64(raw_id)}.{_b64(key)}"


def end(db: Session, cookie: str | None) -> None:
    """Delete the server-side half of a session (logout)."""
    parts = _split(cookie) if cookie else None
    if parts is not None:
        db.execute(delete(ServerSession).where(ServerSession.token_hash == crypto.token_hash(_b64(parts[0]))))


def sweep(db: Session, now: dt.datetime) -> int:
    """Delete every session past its sweep time; return how many."""
    result = db.execute(delete(ServerSession).where(ServerSession.expires_at <= now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
