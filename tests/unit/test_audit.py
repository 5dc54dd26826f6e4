"""The hash-chained audit log: what is appended verifies, and every way of tampering with it shows.

Rows are tampered with the way someone with a copy of the database would do it:
plain SQL on the table, not the log's own functions. Every test runs on SQLite, and
on a scratch PostgreSQL database too when WHISTLE_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from whistle import audit, crypto
from whistle.db import make_engine, make_session_factory, upgrade
from whistle.models import AuditEvent, AuditHead

from .databases import PG_ENV, SKIP_REASON, empty_postgresql, scratch_postgresql

T0 = dt.datetime(2024, 3, 1, 9, 30, 15, 654321, tzinfo=dt.UTC)
ALICE = crypto.new_public_id()
BOB = crypto.new_public_id()
REPORT = crypto.new_public_id()
TABLE = AuditEvent.__table__


# --- the database: SQLite, and PostgreSQL when configured --------------------------


@pytest.fixture(scope="module")
def postgresql_url() -> Iterator[str]:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(SKIP_REASON)
    with scratch_postgresql(url, "audit") as scratch:
        upgrade(scratch)
        yield scratch


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'whistle.db'}"
        upgrade(url)
        engine = make_engine(url)
    else:
        engine = make_engine(request.getfixturevalue("postgresql_url"))
        empty_postgresql(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    session = make_session_factory(engine)()
    try:
        yield session
    finally:
        session.close()


# --- helpers -----------------------------------------------------------------------


SHAPES: list[tuple[str, str, dict[str, str]]] = [
    ("login", ALICE, {}),
    ("report_opened", ALICE, {"report": REPORT}),
    ("access_granted", ALICE, {"report": REPORT, "subject": BOB}),
    ("status_changed", BOB, {"report": REPORT, "detail": "investigating"}),
    ("setting_changed", audit.COMMAND_LINE, {"detail": "retention_months"}),
]


def _fill(db: Session, entries: int = 5) -> list[int]:
    """A committed log of varied entries, a minute apart; their ids, in order."""
    ids = []
    for n in range(entries):
        kind, actor, fields = SHAPES[n % len(SHAPES)]
        ids.append(audit.record(db, kind, actor, T0 + dt.timedelta(minutes=n), **fields).id)
    db.commit()
    return ids


def _row(db: Session, event_id: int) -> dict[str, Any]:
    return dict(db.execute(select(TABLE).where(TABLE.c.id == event_id)).mappings().one())


def _tamper(db: Session, event_id: int, **values: Any) -> None:
    db.execute(update(TABLE).where(TABLE.c.id == event_id).values(**values))
    db.commit()


def _utc_naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


# --- appending and verifying ---------------------------------------------------------


def test_an_empty_log_verifies(db: Session) -> None:
    verdict = audit.verify(db)
    assert verdict == audit.Verdict(entries=0, head=audit.GENESIS)
    assert verdict.ok
    assert audit.count(db) == 0


def test_entries_chain_one_to_the_next_and_verify_after_a_round_trip(engine: Engine, db: Session) -> None:
    ids = _fill(db, 7)

    with make_session_factory(engine)() as fresh:  # read back from the database alone
        events = fresh.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        verdict = audit.verify(fresh)
        head = fresh.scalar(select(AuditHead.entries))

    assert [e.id for e in events] == ids
    assert events[0].previous_hash == audit.GENESIS
    for before, after in itertools.pairwise(events):
        assert after.previous_hash == before.entry_hash
    assert len({e.entry_hash for e in events}) == 7
    assert verdict == audit.Verdict(entries=7, head=events[-1].entry_hash)
    assert verdict.ok
    assert head == 7
    assert audit.count(db) == 7
    assert [(e.kind, e.actor, e.report, e.subject, e.detail) for e in events[:5]] == [
        ("login", ALICE, None, None, ""),
        ("report_opened", ALICE, REPORT, None, ""),
        ("access_granted", ALICE, REPORT, BOB, ""),
        ("status_changed", BOB, REPORT, None, "investigating"),
        ("setting_changed", audit.COMMAND_LINE, None, None, "retention_months"),
    ]


def test_each_entry_hash_is_the_digest_of_its_fields_and_the_previous_hash(db: Session) -> None:
    first = audit.record(db, "login", ALICE, T0)
    second = audit.record(db, "report_opened", ALICE, T0, report=REPORT)
    assert first.entry_hash == audit.entry_digest(audit.GENESIS, first)
    assert second.entry_hash == audit.entry_digest(first.entry_hash, second)
    # The same fields after another entry give another hash: position is part of it.
    assert audit.entry_digest(audit.GENESIS, second) != second.entry_hash


def test_a_long_detail_is_cut_to_its_column_and_still_verifies(db: Session) -> None:
    event = audit.record(db, "setting_changed", ALICE, T0, detail="x" * 300)
    db.commit()
    db.expire_all()
    assert _row(db, event.id)["detail"] == "x" * 120
    assert audit.verify(db).ok


# --- time ----------------------------------------------------------------------------------


ORGANISATION = crypto.generate_keypair()


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(T0, id="utc"),
        pytest.param(T0.astimezone(dt.timezone(dt.timedelta(hours=2))), id="two-hours-east"),
        pytest.param(T0.astimezone(dt.timezone(dt.timedelta(hours=-5, minutes=-30))), id="west"),
    ],
)
def test_only_the_day_is_kept_in_clear_and_the_recovery_key_opens_the_second(
    engine: Engine, now: dt.datetime
) -> None:
    """An officer's exact time would anchor a reporter's actions: a copy of the database shows the day."""
    with make_session_factory(engine, {audit.TIME_KEY: ORGANISATION.public})() as db:
        event_id = audit.record(db, "login", ALICE, now).id
        db.commit()
    with make_session_factory(engine)() as fresh:
        stored = fresh.get(AuditEvent, event_id)
        assert stored is not None
        assert audit.verify(fresh).ok
        row = _row(fresh, event_id)
        assert (stored.at, stored.day) == (None, dt.date(2024, 3, 1))
        assert b"09:30" not in b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row.values())
        assert audit.exact_time(ORGANISATION.private, stored) == dt.datetime(
            2024, 3, 1, 9, 30, 15, tzinfo=dt.UTC
        )
        with pytest.raises(crypto.CryptoError):
            audit.exact_time(crypto.generate_keypair().private, stored)


def test_without_a_key_to_seal_for_no_exact_time_is_kept(db: Session) -> None:
    event = audit.record(db, "login", ALICE, dt.datetime(2024, 3, 1, 23, 30, 15, 999))
    db.commit()
    db.expire_all()
    assert (event.day, event.time_sealed, event.at) == (dt.date(2024, 3, 1), None, None)
    assert audit.exact_time(ORGANISATION.private, event) is None
    assert audit.verify(db).ok


def test_changing_a_sealed_time_breaks_the_chain(engine: Engine) -> None:
    with make_session_factory(engine, {audit.TIME_KEY: ORGANISATION.public})() as db:
        first = audit.record(db, "login", ALICE, T0).id
        audit.record(db, "login", BOB, T0)
        other = audit.record(db, "logout", BOB, T0 + dt.timedelta(hours=3))
        db.commit()
        db.execute(update(AuditEvent).where(AuditEvent.id == first).values(time_sealed=other.time_sealed))
        db.commit()
        assert audit.verify(db).first_bad == first


# --- tampering ---------------------------------------------------------------------------

CHANGES: dict[str, Any] = {
    "kind": "logout",
    "actor": BOB,
    "report": crypto.new_public_id(),
    "subject": ALICE,
    "detail": "closed",
    "at": T0 + dt.timedelta(days=1),
    "previous_hash": bytes(range(32)),
    "entry_hash": bytes(range(1, 33)),
}


@pytest.mark.parametrize("position", [0, 2, 4], ids=["first", "middle", "last"])
@pytest.mark.parametrize("column", list(CHANGES))
def test_changing_any_column_of_any_row_names_that_row(db: Session, column: str, position: int) -> None:
    ids = _fill(db, 5)
    target = ids[position]
    assert _row(db, target)[column] != CHANGES[column]

    _tamper(db, target, **{column: CHANGES[column]})

    verdict = audit.verify(db)
    assert verdict.first_bad == target
    assert not verdict.ok
    assert verdict.entries == position + 1


def test_moving_the_time_by_a_second_is_found(db: Session) -> None:
    ids = _fill(db, 3)
    _tamper(db, ids[1], at=T0 + dt.timedelta(minutes=1, seconds=1))
    assert audit.verify(db).first_bad == ids[1]


def test_rehashing_a_changed_row_is_found_at_the_next_row(db: Session) -> None:
    """Someone who changes a row and recomputes its hash still breaks the link to the next one."""
    ids = _fill(db, 5)
    forged = db.get(AuditEvent, ids[2])
    assert forged is not None
    forged.detail = "forged"
    forged.entry_hash = audit.entry_digest(forged.previous_hash, forged)
    db.commit()

    assert audit.verify(db).first_bad == ids[3]


def test_deleting_a_middle_row_names_the_row_after_it(db: Session) -> None:
    ids = _fill(db, 5)
    db.execute(delete(TABLE).where(TABLE.c.id == ids[2]))
    db.commit()

    verdict = audit.verify(db)
    assert verdict.first_bad == ids[3]
    assert not verdict.ok


def test_deleting_the_first_row_names_the_new_first_row(db: Session) -> None:
    ids = _fill(db, 3)
    db.execute(delete(TABLE).where(TABLE.c.id == ids[0]))
    db.commit()
    assert audit.verify(db).first_bad == ids[1]


@pytest.mark.parametrize("removed", [1, 2])
def test_deleting_rows_from_the_end_shows_as_missing_at_the_end(db: Session, removed: int) -> None:
    ids = _fill(db, 5)
    db.execute(delete(TABLE).where(TABLE.c.id.in_(ids[-removed:])))
    db.commit()

    verdict = audit.verify(db)
    assert (verdict.first_bad, verdict.missing_at_end, verdict.entries) == (None, removed, 5 - removed)
    assert not verdict.ok
    assert verdict.head == _row(db, ids[-removed - 1])["entry_hash"]


def test_emptying_the_log_shows_every_entry_as_missing(db: Session) -> None:
    _fill(db, 4)
    db.execute(delete(TABLE))
    db.commit()

    verdict = audit.verify(db)
    assert (verdict.entries, verdict.first_bad, verdict.missing_at_end, verdict.ok) == (0, None, 4, False)


@pytest.mark.parametrize(("first", "second"), [(1, 3), (0, 4), (2, 3)])
def test_swapping_two_rows_names_the_first_of_them(db: Session, first: int, second: int) -> None:
    ids = _fill(db, 5)
    a, b = _row(db, ids[first]), _row(db, ids[second])
    content = [column for column in a if column != "id"]
    # Through a placeholder hash, as entry_hash is unique.
    _tamper(db, ids[first], entry_hash=bytes(32))
    _tamper(db, ids[second], **{column: a[column] for column in content})
    _tamper(db, ids[first], **{column: b[column] for column in content})

    verdict = audit.verify(db)
    assert verdict.first_bad == ids[first]
    assert audit.count(db) == 5


def test_appending_after_tampering_does_not_hide_it(db: Session) -> None:
    ids = _fill(db, 3)
    _tamper(db, ids[1], detail="rewritten")
    audit.record(db, "login", ALICE, T0 + dt.timedelta(hours=1))
    db.commit()

    verdict = audit.verify(db)
    assert verdict.first_bad == ids[1]


# --- writers one at a time -----------------------------------------------------------------


def test_two_writers_at_once_append_one_after_the_other(engine: Engine) -> None:
    """The second writer waits for the first one's head lock, so the chain never forks."""
    factory = make_session_factory(engine)
    first = factory()
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            with factory() as second:
                audit.record(second, "login", BOB, T0 + dt.timedelta(seconds=5))
                second.commit()
        except BaseException as error:  # reported below, in the test's own thread
            errors.append(error)

    try:
        audit.record(first, "login", ALICE, T0)
        writer = threading.Thread(target=second_writer)
        writer.start()
        time.sleep(0.5)
        assert writer.is_alive(), "the second writer should be waiting for the first to finish"
        first.commit()
        writer.join(timeout=30)
        assert not writer.is_alive()
    finally:
        first.close()
    assert errors == []

    with factory() as db:
        events = db.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        assert [e.actor for e in events] == [ALICE, BOB]
        assert events[1].previous_hash == events[0].entry_hash
        assert audit.verify(db).ok
