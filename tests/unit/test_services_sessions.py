"""Server-side sessions called directly: sealed data, cookies that open nothing else, expiry and sweeping."""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.db import make_engine, make_session_factory
from whistle.models import ServerSession, SessionKind
from whistle.services import maintenance, reports, sessions
from whistle.services.attachments import Upload
from whistle.services.context import Keyring, Policy
from whistle.storage import SealedStore

if TYPE_CHECKING:
    from .conftest import MakeOfficer

NOW = dt.datetime(2024, 3, 1, 9, 30, 0, tzinfo=dt.UTC)
IDLE = dt.timedelta(minutes=20)
DATA = b'{"report_id": "r1", "dek": "secret"}'


def _save(
    db: Session,
    cookie: str | None = None,
    data: bytes = DATA,
    kind: SessionKind | None = SessionKind.REPORTER,
    officer_id: int | None = None,
    idle: dt.timedelta = IDLE,
    now: dt.datetime = NOW,
) -> str | None:
    return sessions.save(db, cookie, data, kind, officer_id, idle, now)


def _rows(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(ServerSession)) or 0


def _stored_expiry(db: Session) -> list[dt.datetime]:
    """The sweep times as the database holds them, in UTC without a zone (as SQLite gives them back)."""
    db.expire_all()
    values = db.scalars(select(ServerSession.expires_at).order_by(ServerSession.id))
    return [v.astimezone(dt.UTC).replace(tzinfo=None) if v.tzinfo else v for v in values]


def _naive(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def test_save_then_load_gives_back_the_data_and_the_exact_expiry(db: Session) -> None:
    cookie = _save(db)
    assert sessions.load(db, cookie, NOW + dt.timedelta(minutes=5)) == (DATA, NOW + IDLE)


def test_saving_again_under_the_cookie_updates_the_same_session(db: Session) -> None:
    cookie = _save(db)
    later = NOW + dt.timedelta(minutes=10)
    assert _save(db, cookie, b"changed", now=later) == cookie
    assert _rows(db) == 1
    assert sessions.load(db, cookie, later) == (b"changed", later + IDLE)


def test_each_new_session_has_its_own_id_and_key(db: Session) -> None:
    first, second = _save(db), _save(db)
    assert first.split(".")[0] != second.split(".")[0]
    assert first.split(".")[1] != second.split(".")[1]
    assert _rows(db) == 2


def test_the_database_holds_neither_the_data_nor_the_cookie(db: Session) -> None:
    cookie = _save(db)
    session_id, key = cookie.split(".")
    row = db.scalar(select(ServerSession))
    assert row is not None
    assert DATA not in row.data_sealed
    assert row.token_hash == crypto.token_hash(session_id)
    for part in (session_id.encode(), key.encode()):
        assert part not in row.data_sealed + row.token_hash


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _wrong_key(cookie: str) -> str:
    session_id, _key = cookie.split(".")
    return f"{session_id}.{_b64(crypto.new_key())}"


def _unknown_id(cookie: str) -> str:
    _session_id, key = cookie.split(".")
    return f"{_b64(bytes(32))}.{key}"


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda _cookie: None, id="none"),
        pytest.param(lambda _cookie: "", id="empty"),
        pytest.param(lambda _cookie: "garbage", id="garbage"),
        pytest.param(lambda cookie: cookie.split(".")[0], id="id-without-key"),
        pytest.param(lambda cookie: cookie + "AAAA", id="key-too-long"),
        pytest.param(lambda cookie: cookie.replace(".", ".é", 1), id="not-ascii"),
        pytest.param(lambda _cookie: "a=b.c=d", id="bad-base64"),
        pytest.param(_wrong_key, id="wrong-key"),
        pytest.param(_unknown_id, id="missing-row"),
    ],
)
def test_a_forged_or_unknown_cookie_opens_nothing(db: Session, forge: Callable[[str], str | None]) -> None:
    cookie = _save(db)
    assert sessions.load(db, forge(cookie), NOW) is None
    assert _rows(db) == 1  # and the real session is untouched
    assert sessions.load(db, cookie, NOW) is not None


def test_tampered_session_data_opens_nothing(db: Session) -> None:
    cookie = _save(db)
    row = db.scalar(select(ServerSession))
    assert row is not None
    sealed = bytearray(row.data_sealed)
    sealed[20] ^= 1
    row.data_sealed = bytes(sealed)
    db.flush()
    assert sessions.load(db, cookie, NOW) is None


def test_a_session_expires_at_its_idle_limit_and_its_row_is_deleted(db: Session) -> None:
    cookie = _save(db)
    assert sessions.load(db, cookie, NOW + IDLE - dt.timedelta(seconds=1)) is not None
    assert sessions.load(db, cookie, NOW + IDLE) is None
    assert _rows(db) == 0
    assert sessions.load(db, cookie, NOW) is None


def test_activity_pushes_the_expiry_back(db: Session) -> None:
    cookie = _save(db)
    later = NOW + dt.timedelta(minutes=15)
    _save(db, cookie, now=later)
    assert sessions.load(db, cookie, NOW + IDLE + dt.timedelta(minutes=1)) == (DATA, later + IDLE)


def test_needs_refresh_after_a_minute_of_activity() -> None:
    expires = NOW + IDLE
    assert not sessions.needs_refresh(expires, IDLE, NOW)
    assert not sessions.needs_refresh(expires, IDLE, NOW + dt.timedelta(seconds=59))
    assert not sessions.needs_refresh(expires, IDLE, NOW + sessions.REFRESH_AFTER)
    assert sessions.needs_refresh(expires, IDLE, NOW + dt.timedelta(seconds=61))


@pytest.mark.parametrize("kind", [SessionKind.REPORTER, None])
def test_a_reporter_session_row_only_tells_the_hour(db: Session, kind: SessionKind | None) -> None:
    _save(db, kind=kind, now=dt.datetime(2024, 3, 1, 9, 2, 7, 123456, tzinfo=dt.UTC))
    _save(db, kind=kind, now=dt.datetime(2024, 3, 1, 9, 31, 59, tzinfo=dt.UTC))
    # Sessions idle until 09:22 and 09:51 are both swept at 10:00: the row does not tell them apart.
    assert _stored_expiry(db) == [dt.datetime(2024, 3, 1, 10, 0)] * 2


def test_a_reporter_session_is_never_swept_before_it_expires(db: Session) -> None:
    on_the_hour = dt.datetime(2024, 3, 1, 9, 40, tzinfo=dt.UTC)  # idle until exactly 10:00
    cookie = _save(db, now=on_the_hour)
    (stored,) = _stored_expiry(db)
    assert stored >= _naive(on_the_hour + IDLE)
    assert (stored.minute, stored.second, stored.microsecond) == (0, 0, 0)
    assert sessions.sweep(db, on_the_hour + IDLE - dt.timedelta(seconds=1)) == 0
    assert sessions.load(db, cookie, on_the_hour + IDLE - dt.timedelta(seconds=1)) is not None


def test_an_officer_session_row_dates_nothing_finer_than_the_hour(
    db: Session, make_officer: MakeOfficer
) -> None:
    """An officer's exact activity would anchor reporters' actions around it: the hour only."""
    officer = make_officer("Alice Officer").officer
    now = dt.datetime(2024, 3, 1, 9, 2, 7, tzinfo=dt.UTC)
    cookie = _save(
        db, kind=SessionKind.OFFICER, officer_id=officer.id, idle=dt.timedelta(minutes=30), now=now
    )
    assert _stored_expiry(db) == [dt.datetime(2024, 3, 1, 10, 0)]
    row = db.scalar(select(ServerSession))
    assert row is not None
    assert (row.kind, row.officer_id) == (SessionKind.OFFICER, officer.id)
    assert sessions.load(db, cookie, now) == (DATA, now + dt.timedelta(minutes=30))


def test_end_deletes_the_server_side_half(db: Session) -> None:
    kept = _save(db)
    ended = _save(db)
    sessions.end(db, ended)
    assert sessions.load(db, ended, NOW) is None
    assert sessions.load(db, kept, NOW) is not None
    assert _rows(db) == 1


def test_an_ended_session_is_not_brought_back_by_a_late_save(db: Session) -> None:
    # A slow request that finishes after a logout in another tab must not log back in.
    cookie = _save(db)
    sessions.end(db, cookie)
    assert _save(db, cookie, b"late", now=NOW + dt.timedelta(minutes=1)) is None
    assert sessions.load(db, cookie, NOW + dt.timedelta(minutes=1)) is None
    assert _rows(db) == 0


@pytest.mark.parametrize("cookie", [None, "", "garbage"])
def test_end_without_a_valid_cookie_changes_nothing(db: Session, cookie: str | None) -> None:
    _save(db)
    sessions.end(db, cookie)
    assert _rows(db) == 1


def test_sweep_deletes_the_expired_rows_and_counts_them(db: Session, make_officer: MakeOfficer) -> None:
    officer = make_officer("Alice Officer").officer
    officer_cookie = _save(
        db, kind=SessionKind.OFFICER, officer_id=officer.id, idle=dt.timedelta(minutes=10)
    )  # idle until 09:40, swept from 10:00
    reporter_cookie = _save(db)  # idle until 09:50, swept from 10:00
    later_cookie = _save(db, now=NOW + dt.timedelta(hours=1))  # swept from 11:00

    assert sessions.sweep(db, NOW + dt.timedelta(minutes=29)) == 0
    # Past its idle limit, a session opens nothing even before it is swept.
    assert sessions.load(db, officer_cookie, NOW + dt.timedelta(minutes=11)) is None
    assert sessions.sweep(db, dt.datetime(2024, 3, 1, 10, 0, tzinfo=dt.UTC)) == 1
    assert sessions.load(db, reporter_cookie, NOW) is None
    assert sessions.load(db, later_cookie, NOW + dt.timedelta(hours=1)) is not None
    assert _rows(db) == 1
    assert sessions.sweep(db, dt.datetime(2024, 3, 2, tzinfo=dt.UTC)) == 1
    assert _rows(db) == 0


# --- housekeeping at start-up ------------------------------------------------------


def _age(path: Path, by: dt.timedelta) -> None:
    then = (dt.datetime.now(dt.UTC) - by).timestamp()
    os.utime(path, (then, then))


def _blob(store: SealedStore, data: bytes = b"sealed") -> Path:
    """A sealed file, settled into its place."""
    with store.create() as (name, handle):
        handle.write(data)
    store.settle(dt.datetime.now(dt.UTC).timestamp())
    return store.root / name[:2] / name


def test_maintenance_sweeps_old_leftovers_and_expired_sessions_only(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy
) -> None:
    now = dt.datetime.now(dt.UTC)
    submitted = reports.submit_report(
        db,
        store,
        keyring,
        policy,
        reports.Answers("other", "A concern"),
        [Upload("a.txt", "text/plain", io.BytesIO(b"evidence"))],
        now.date(),
    )
    db.flush()
    store.settle(now.timestamp())
    (attached,) = [path for path in store.root.rglob("*") if path.is_file()]
    old_orphan, young_orphan = _blob(store), _blob(store)
    old_partial = old_orphan.parent / (".part-" + "ab" * 24)  # what a crash mid-write leaves
    young_partial = old_orphan.parent / (".part-" + "cd" * 24)
    old_partial.write_bytes(b"half")
    young_partial.write_bytes(b"half")
    _age(old_partial, maintenance.GRACE + dt.timedelta(minutes=5))
    # Published files only carry their day: an orphan goes once a whole day more has passed.
    for path in (attached, old_orphan):
        _age(path, dt.timedelta(days=2, minutes=5))
    expired = _save(db, now=now - dt.timedelta(hours=3))
    live = _save(db, now=now)

    swept = maintenance.sweep(db, store, now)

    assert swept == maintenance.Swept(partial_files=1, orphaned_files=1, expired_sessions=1)
    assert not old_orphan.exists() and not old_partial.exists()
    assert attached.exists() and young_orphan.exists() and young_partial.exists()
    assert sessions.load(db, expired, now) is None
    assert sessions.load(db, live, now) is not None
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)
    db.expire_all()
    assert [a.size for a in reports.reporter_case(db, public_id, dek, policy).attachments] == [8]


def test_maintenance_with_nothing_to_sweep(db: Session, store: SealedStore) -> None:
    young = _blob(store)
    assert maintenance.sweep(db, store, dt.datetime.now(dt.UTC)) == maintenance.Swept(0, 0, 0)
    assert young.exists()


def test_maintenance_leaves_the_file_store_root_with_its_day_only(db: Session, store: SealedStore) -> None:
    """A store written by an earlier version kept, on its root, the moment a folder was made for
    an upload: the start-up sweep keeps only that day."""
    moment = dt.datetime(2026, 3, 4, 14, 3, 27, tzinfo=dt.UTC).timestamp()
    os.utime(store.root, (moment, moment))
    now = dt.datetime.now(dt.UTC)
    maintenance.sweep(db, store, now)
    assert store.root.stat().st_mtime == dt.datetime.combine(now.date(), dt.time(), dt.UTC).timestamp()


def test_a_healthy_instance_has_no_part_unavailable(db: Session, store: SealedStore) -> None:
    assert maintenance.unavailable(db, store) == []


def test_a_store_that_is_not_a_folder_and_a_database_that_cannot_open_are_unavailable(
    store: SealedStore, tmp_path: Path
) -> None:
    store.root.rmdir()
    store.root.write_bytes(b"")
    engine = make_engine(f"sqlite:///{tmp_path / 'gone' / 'whistle.db'}")
    try:
        with make_session_factory(engine)() as unreachable:
            assert maintenance.unavailable(unreachable, store) == ["database", "file store"]
    finally:
        engine.dispose()
