"""Retention: closed cases are deleted after the retention period, unless on legal hold.

Run on a fresh SQLite file made by the migrations, with real keys, real sealing
and a real store folder; the purge is given the day, so "13 months later" is a date.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from whistle import audit
from whistle.models import (
    Attachment,
    AuditEvent,
    ClosedCaseFigures,
    KeyWrap,
    Message,
    Note,
    Outcome,
    Report,
    ReportStatus,
    StatusChange,
)
from whistle.services import cases, reports, retention, statistics
from whistle.services.context import Policy
from whistle.services.errors import ReceiptNotFound, ReportNotFound
from whistle.storage import SealedStore

from .casework import MARKER, acknowledge, actor, categorise, close, on, report_row, submit

if TYPE_CHECKING:
    from .conftest import MakeOfficer, OfficerKeys, Organisation

TODAY = dt.date(2025, 6, 16)
RECEIVED = dt.date(2024, 1, 10)
CLOSED_13_MONTHS_AGO = dt.date(2024, 5, 16)
CLOSED_11_MONTHS_AGO = dt.date(2024, 7, 16)


def _blobs(store: SealedStore) -> set[str]:
    return {path.name for path in Path(store.root).rglob("*") if path.is_file()}


def _count(db: Session, model: type, **where: object) -> int:
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return db.scalar(query) or 0


def _closed_case(
    db: Session,
    store: SealedStore,
    organisation: Organisation,
    policy: Policy,
    alice: OfficerKeys,
    closed_on: dt.date,
    *,
    files: tuple[tuple[str, bytes], ...] = (("evidence.bin", b"\x00\x01 evidence " * 500),),
) -> str:
    public_id = submit(db, store, organisation.keyring, policy, RECEIVED, files=files)
    acknowledge(db, alice, public_id, dt.date(2024, 1, 12), policy)
    categorise(db, alice, public_id, "Staffing", dt.date(2024, 1, 12))
    cases.reply(db, actor(alice), public_id, "Thank you " + MARKER, on(dt.date(2024, 1, 12)))
    cases.add_note(db, actor(alice), public_id, "Note " + MARKER, on(dt.date(2024, 1, 12)))
    close(db, alice, public_id, closed_on, policy, Outcome.PARTLY_SUBSTANTIATED)
    db.commit()
    return public_id


@pytest.fixture
def alice(make_officer: MakeOfficer) -> OfficerKeys:
    return make_officer("Alice Officer")


def test_a_case_closed_13_months_ago_goes_and_one_closed_11_months_ago_stays(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    old = _closed_case(db, store, organisation, policy, alice, CLOSED_13_MONTHS_AGO)
    blobs_before = _blobs(store)
    recent = _closed_case(db, store, organisation, policy, alice, CLOSED_11_MONTHS_AGO)
    recent_blobs = _blobs(store) - blobs_before
    old_row = report_row(db, old)
    assert old_row is not None
    old_id, old_blobs = old_row.id, {a.blob_name for a in old_row.attachments}
    assert old_blobs and old_blobs <= blobs_before

    result = retention.purge(db, store, 12, policy, on(TODAY))
    db.commit()

    assert result == retention.Purged(deleted=1, held=0)
    assert report_row(db, old) is None
    assert report_row(db, recent) is not None
    # The sealed files are gone from the store folder; the other case's are untouched.
    assert _blobs(store) == recent_blobs
    for model in (KeyWrap, Message, Attachment, Note, StatusChange):
        assert _count(db, model, report_id=old_id) == 0, model.__name__
    assert _count(db, KeyWrap) > 0  # the kept case still has its wraps


def test_the_deleted_case_leaves_one_audit_entry_with_its_id_and_no_content(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    old = _closed_case(db, store, organisation, policy, alice, CLOSED_13_MONTHS_AGO)
    retention.purge(db, store, 12, policy, on(TODAY))
    db.commit()

    (entry,) = db.scalars(select(AuditEvent).where(AuditEvent.kind == "report_deleted"))
    assert (entry.report, entry.actor, entry.subject, entry.detail) == (old, audit.SYSTEM, None, "")
    for event in db.scalars(select(AuditEvent)):
        assert "Marker" not in " ".join(
            str(v) for v in (event.kind, event.actor, event.subject, event.detail)
        )
    assert audit.verify(db).ok


def test_the_receipt_no_longer_opens_anything(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    submitted = reports.submit_report(
        db,
        store,
        organisation.keyring,
        policy,
        reports.Answers(category="other", what_happened=MARKER),
        [],
        RECEIVED,
    )
    close(db, alice, submitted.public_id, CLOSED_13_MONTHS_AGO, policy)
    assert reports.open_with_receipt(db, organisation.keyring, submitted.receipt)[0] == submitted.public_id
    retention.purge(db, store, 12, policy, on(TODAY))
    db.commit()
    with pytest.raises(ReceiptNotFound):
        reports.open_with_receipt(db, organisation.keyring, submitted.receipt)


def test_running_it_again_deletes_nothing_more(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    _closed_case(db, store, organisation, policy, alice, CLOSED_13_MONTHS_AGO)
    assert retention.purge(db, store, 12, policy, on(TODAY)).deleted == 1
    db.commit()
    entries = audit.count(db)
    figures = _count(db, ClosedCaseFigures)
    assert retention.purge(db, store, 12, policy, on(TODAY)) == retention.Purged(deleted=0, held=0)
    db.commit()
    assert (audit.count(db), _count(db, ClosedCaseFigures)) == (entries, figures)


@pytest.mark.parametrize(
    ("closed_on", "today", "deleted"),
    [
        (dt.date(2024, 6, 16), dt.date(2025, 6, 16), 1),  # exactly 12 months
        (dt.date(2024, 6, 17), dt.date(2025, 6, 16), 0),  # a day short
        (dt.date(2024, 1, 31), dt.date(2025, 1, 31), 1),
        (dt.date(2024, 2, 29), dt.date(2025, 3, 1), 1),  # closed on a leap day
    ],
)
def test_the_period_counts_whole_months_from_the_day_of_closing(
    db: Session,
    store: SealedStore,
    organisation: Organisation,
    policy: Policy,
    alice: OfficerKeys,
    closed_on: dt.date,
    today: dt.date,
    deleted: int,
) -> None:
    _closed_case(db, store, organisation, policy, alice, closed_on, files=())
    assert retention.purge(db, store, 12, policy, on(today)).deleted == deleted


def test_the_retention_period_is_the_one_given(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    _closed_case(db, store, organisation, policy, alice, CLOSED_13_MONTHS_AGO)
    assert retention.purge(db, store, 24, policy, on(TODAY)).deleted == 0
    assert retention.purge(db, store, 6, policy, on(TODAY)).deleted == 1


def test_open_and_reopened_cases_are_never_deleted(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    submit(db, store, organisation.keyring, policy, dt.date(2015, 1, 5))
    reopened = _closed_case(db, store, organisation, policy, alice, CLOSED_13_MONTHS_AGO)
    cases.set_status(db, actor(alice), reopened, ReportStatus.INVESTIGATING, policy, on(TODAY))
    assert retention.purge(db, store, 1, policy, on(TODAY)).deleted == 0
    assert _count(db, Report) == 2


def test_legal_hold_keeps_a_case_until_it_is_released(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    held = _closed_case(db, store, organisation, policy, alice, CLOSED_13_MONTHS_AGO)
    blobs = _blobs(store)
    assert retention.set_legal_hold(db, actor(alice), held, True, on(TODAY)) is True
    assert retention.set_legal_hold(db, actor(alice), held, True, on(TODAY)) is False  # already on hold
    assert retention.on_legal_hold(db, actor(alice), held)

    assert retention.purge(db, store, 12, policy, on(TODAY)) == retention.Purged(deleted=0, held=1)
    assert report_row(db, held) is not None
    assert _blobs(store) == blobs

    assert retention.set_legal_hold(db, actor(alice), held, False, on(TODAY)) is True
    assert retention.purge(db, store, 12, policy, on(TODAY)) == retention.Purged(deleted=1, held=0)
    assert _blobs(store) == set()
    kinds = [
        event.kind
        for event in db.scalars(select(AuditEvent).where(AuditEvent.report == held).order_by(AuditEvent.id))
    ]
    assert kinds[-3:] == ["legal_hold_set", "legal_hold_released", "report_deleted"]
    assert kinds.count("legal_hold_set") == 1


def test_only_an_officer_who_can_open_the_case_can_hold_it(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    public_id = submit(db, store, organisation.keyring, policy, RECEIVED, excluded=[bob])
    with pytest.raises(ReportNotFound):
        retention.set_legal_hold(db, actor(bob), public_id, True, on(TODAY))
    with pytest.raises(ReportNotFound):
        retention.on_legal_hold(db, actor(bob), public_id)
    with pytest.raises(ReportNotFound):
        retention.set_legal_hold(db, actor(alice), "0" * 32, True, on(TODAY))
    assert not retention.on_legal_hold(db, actor(alice), public_id)


def test_the_figures_survive_deletion_and_count_in_the_statistics(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    ids = [_closed_case(db, store, organisation, policy, alice, CLOSED_13_MONTHS_AGO) for _ in range(3)]
    before = statistics.board_statistics(db, alice.officer, TODAY, policy)
    assert retention.purge(db, store, 12, policy, on(TODAY)).deleted == 3
    db.commit()
    assert all(report_row(db, public_id) is None for public_id in ids)

    rows = list(db.scalars(select(ClosedCaseFigures)))
    assert len(rows) == 3
    row = rows[0]
    assert (row.received_month, row.officer_category, row.outcome) == (
        "2024-01",
        "Staffing",
        "partly_substantiated",
    )
    assert (row.days_to_acknowledge, row.days_to_close) == (2, (CLOSED_13_MONTHS_AGO - RECEIVED).days)
    assert (row.acknowledged_in_time, row.feedback_in_time) == (True, False)  # feedback came at closing, late

    after = statistics.board_statistics(db, alice.officer, TODAY, policy)
    assert after == before
    assert after.total.value == 3
    assert [(c.label, c.value) for c in after.by_category] == [("Staffing", 3)]
    assert after.median_days_to_acknowledge.value == 2


def test_figures_record_whether_the_deadlines_were_met(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    prompt = submit(db, store, organisation.keyring, policy, RECEIVED)
    acknowledge(db, alice, prompt, dt.date(2024, 1, 17), policy)  # the 7th day
    close(db, alice, prompt, dt.date(2024, 3, 1), policy, Outcome.WITHDRAWN)
    ignored = submit(db, store, organisation.keyring, policy, RECEIVED)
    close(db, alice, ignored, dt.date(2024, 4, 1), policy, Outcome.NOT_SUBSTANTIATED, share=False)
    retention.purge(db, store, 12, policy, on(TODAY))
    figures = {row.outcome: row for row in db.scalars(select(ClosedCaseFigures))}
    assert figures["withdrawn"].acknowledged_in_time is True
    assert figures["withdrawn"].feedback_in_time is True
    assert figures["withdrawn"].days_to_acknowledge == 7
    # Closed without ever being acknowledged: the closing counts as the acknowledgement, late.
    assert figures["not_substantiated"].days_to_acknowledge == (dt.date(2024, 4, 1) - RECEIVED).days
    assert figures["not_substantiated"].acknowledged_in_time is False
    assert figures["not_substantiated"].feedback_in_time is False


def test_the_kept_figures_name_no_report() -> None:
    columns = set(ClosedCaseFigures.__table__.columns.keys())
    assert columns == {
        "id",
        "received_month",
        "officer_category",
        "outcome",
        "days_to_acknowledge",
        "days_to_close",
        "acknowledged_in_time",
        "feedback_in_time",
    }
    assert not ClosedCaseFigures.__table__.foreign_keys


def test_a_hold_is_a_clear_flag_and_an_audit_entry_naming_who_set_it(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    public_id = submit(db, store, organisation.keyring, policy, RECEIVED)
    retention.set_legal_hold(db, actor(alice), public_id, True, on(TODAY))
    row = report_row(db, public_id)
    assert row is not None and row.legal_hold is True
    (entry,) = db.scalars(select(AuditEvent).where(AuditEvent.kind == "legal_hold_set"))
    assert (entry.actor, entry.report, entry.detail) == (alice.officer.public_id, public_id, "")


def test_deletion_cutoff() -> None:
    assert retention.deletion_cutoff(dt.date(2025, 3, 31), 1) == dt.date(2025, 2, 28)
    assert retention.deletion_cutoff(dt.date(2024, 2, 29), 12) == dt.date(2023, 2, 28)


def test_policy_default_is_used_when_a_case_lacks_stored_deadlines(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    public_id = _closed_case(db, store, organisation, policy, alice, CLOSED_13_MONTHS_AGO, files=())
    row = report_row(db, public_id)
    assert row is not None
    row.acknowledge_by = None
    row.feedback_by = None
    figures = statistics.figures_of(row, TODAY, Policy(acknowledge_days=1))
    assert figures.acknowledged_in_time is False  # acknowledged after 2 days, 1 allowed
