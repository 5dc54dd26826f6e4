"""Case handling called directly: the officer's lists and views, the legal clocks, one case and
everything done with it, access to it, and what the audit log records of it.

Every test runs on a database made by the migrations (SQLite, and PostgreSQL too when
WHISTLE_TEST_DATABASE_URL is set), with real keys and real sealing; nothing of Whistle
is mocked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from whistle import audit, crypto
from whistle.db import make_engine, make_session_factory, upgrade
from whistle.models import (
    AuditEvent,
    Author,
    DetrimentRisk,
    KeyPurpose,
    KeyWrap,
    Message,
    Note,
    Officer,
    Outcome,
    Priority,
    Recipient,
    Report,
    ReportStatus,
)
from whistle.services import cases, reports
from whistle.services.attachments import GENERIC_TYPE, Upload
from whistle.services.context import Keyring, Moment, Policy
from whistle.services.errors import (
    AttachmentNotFound,
    LastReader,
    NeedsOutcome,
    OfficerExcluded,
    ReportNotFound,
    UnknownOfficer,
)
from whistle.storage import SealedStore

from .databases import PG_ENV, SKIP_REASON, empty_postgresql, scratch_postgresql

if TYPE_CHECKING:
    from .conftest import MakeOfficer, OfficerKeys, Organisation

RECEIVED = dt.date(2024, 1, 31)
ANSWERS = reports.Answers(
    category="caseloads",
    what_happened="Caseloads are far beyond safe limits; home visits to children are being missed.",
    when_where="Since the spring, in the east locality team",
    immediate_risk="no",
    raised_before="yes",
    raised_before_result="Raised with my manager; nothing changed.",
)

# Texts that must stay sealed: none of them may reach a clear column or the audit log.
REPLY_TEXT = "Marker-reply: we have spoken to the team manager about the rota."
FEEDBACK_TEXT = "Marker-feedback: an independent review of caseloads has been commissioned."
NOTE_TEXT = "Marker-note: the reporter is probably on the night rota, be careful."
ACTIONS_TEXT = "Marker-actions: move the reporter's supervision to another manager."
SUMMARY_TEXT = "Marker-summary: caseloads were found to exceed the safe limit and were reduced."
CATEGORY_TEXT = "Staffing"
FILE_NAME = "marker-minutes.docx"


# --- the database: SQLite, and PostgreSQL when configured --------------------------


@pytest.fixture(scope="module")
def postgresql_url() -> Iterator[str]:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(SKIP_REASON)
    with scratch_postgresql(url, "cases") as scratch:
        upgrade(scratch)
        yield scratch


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'whistle.db'}"
        upgrade(url)
        engine = make_engine(url)
    else:
        engine = make_engine(request.getfixturevalue("postgresql_url"))
        empty_postgresql(engine)
    session = make_session_factory(engine)()
    try:
        yield session
    finally:
        session.close()
        engine.dispose()


# --- helpers -----------------------------------------------------------------------


def _at(day: dt.date, hour: int = 10) -> Moment:
    return Moment(dt.datetime.combine(day, dt.time(hour, 15), tzinfo=dt.UTC), day)


def _actor(keys: OfficerKeys) -> cases.Actor:
    return cases.Actor(keys.officer, keys.private_key)


def _submit(
    db: Session,
    store: SealedStore,
    keyring: Keyring,
    policy: Policy,
    answers: reports.Answers = ANSWERS,
    uploads: tuple[Upload, ...] = (),
    today: dt.date = RECEIVED,
) -> reports.Submitted:
    """A report as a reporter sends it; one of immediate risk is then marked urgent, as the
    officer who reads it is asked to (nothing in clear says so before)."""
    submitted = reports.submit_report(db, store, keyring, policy, answers, list(uploads), today)
    if answers.immediate_risk == "yes":
        _report(db, submitted.public_id).priority = Priority.URGENT
        db.flush()
    return submitted


def _upload(name: str, data: bytes, content_type: str = "text/plain") -> Upload:
    return Upload(name, content_type, io.BytesIO(data))


def _answers(*officers: OfficerKeys, **changes: str) -> reports.Answers:
    return dataclasses.replace(
        ANSWERS, excluded_officers=tuple(o.officer.public_id for o in officers), **changes
    )


def _report(db: Session, public_id: str) -> Report:
    report = db.scalar(select(Report).where(Report.public_id == public_id))
    assert report is not None
    return report


def _utc_naive(moment: dt.datetime) -> dt.datetime:
    """A stored time as naive UTC: SQLite hands it back naive, PostgreSQL aware."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _ids(page: cases.CasePage) -> list[str]:
    return [row.public_id for row in page.rows]


def _row(db: Session, officer: Officer, public_id: str, today: dt.date) -> cases.CaseRow:
    (row,) = [r for r in cases.list_cases(db, officer, today).rows if r.public_id == public_id]
    return row


def _in_view(db: Session, officer: Officer, view: cases.View, today: dt.date) -> set[str]:
    return set(_ids(cases.list_cases(db, officer, today, view=view)))


def _counts(db: Session, officer: Officer, today: dt.date) -> dict[cases.View, int]:
    """The view counts, which are exact below the cap."""
    tallies = cases.view_counts(db, officer, today)
    assert not any(tally.more for tally in tallies.values())
    return {view: tally.count for view, tally in tallies.items()}


BEFORE, LAST = cases.Direction.BEFORE, cases.Direction.LAST


def _wrapped_for(db: Session, report: Report, officer: Officer) -> set[KeyPurpose]:
    return set(
        db.scalars(
            select(KeyWrap.purpose).where(KeyWrap.report_id == report.id, KeyWrap.officer_id == officer.id)
        )
    )


def _kinds(db: Session) -> Counter[str]:
    return Counter(db.scalars(select(AuditEvent.kind)))


def _organisation_key(organisation: Organisation, report: Report, purpose: KeyPurpose) -> bytes:
    (wrap,) = [w for w in report.wraps if w.recipient is Recipient.ORGANISATION and w.purpose is purpose]
    return crypto.unwrap_key(
        organisation.private_key, wrap.key_wrapped, crypto.wrap_info(report.public_id, purpose.value)
    )


def _raw_row(db: Session, table: str, row_id: int) -> bytes:
    """Every column of a row as the database holds it, as bytes, for searching."""
    row = db.execute(text(f"SELECT * FROM {table} WHERE id = :id"), {"id": row_id}).one()  # noqa: S608
    return b"\x00".join(
        bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode() for value in row
    )


# --- the officer's list (moved from test_services_reports) ---------------------------


def test_list_cases_is_newest_first_paginated_and_only_what_the_officer_can_read(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    oldest = _submit(db, store, keyring, policy, today=dt.date(2024, 1, 2)).public_id
    newest = _submit(db, store, keyring, policy, today=dt.date(2024, 3, 5)).public_id
    same_day = [_submit(db, store, keyring, policy, today=dt.date(2024, 2, 1)).public_id for _ in range(2)]
    # Within a day the list goes by the cases' random keys, which say nothing of which came first.
    keys = dict(db.execute(select(Report.public_id, Report.id).where(Report.public_id.in_(same_day))).all())
    middle_second, middle_first = sorted(same_day, key=keys.__getitem__, reverse=True)
    hidden = _submit(db, store, keyring, policy, _answers(alice), today=dt.date(2024, 4, 1)).public_id
    today = dt.date(2024, 4, 2)

    first = cases.list_cases(db, alice.officer, today, size=3)
    assert _ids(first) == [newest, middle_second, middle_first]
    assert first.previous is None
    assert cases.count_cases(db, alice.officer, today, cases.View.ALL) == cases.Tally(4)
    assert (first.view, first.sort) == (cases.View.ALL, cases.Sort.RECEIVED)
    assert first.next is not None
    second = cases.list_cases(db, alice.officer, today, size=3, cursor=first.next)
    assert _ids(second) == [oldest]
    assert (second.previous, second.next) == (cases.Cursor.parse(str(second.previous)), None)
    back = cases.list_cases(db, alice.officer, today, size=3, cursor=second.previous, direction=BEFORE)
    assert _ids(back) == _ids(first)
    assert back.previous is None  # nothing before the first page
    last = cases.list_cases(db, alice.officer, today, size=3, direction=cases.Direction.LAST)
    assert _ids(last) == [middle_second, middle_first, oldest]
    assert last.next is None and last.previous is not None
    # A page that ends between two cases of the same day: the next one goes on with the rest of
    # that day, then the days before it; and back again the same way.
    pair = cases.list_cases(db, alice.officer, today, size=2)
    assert _ids(pair) == [newest, middle_second]
    after_pair = cases.list_cases(db, alice.officer, today, size=2, cursor=pair.next)
    assert _ids(after_pair) == [middle_first, oldest]
    back_to_pair = cases.list_cases(
        db, alice.officer, today, size=2, cursor=after_pair.previous, direction=BEFORE
    )
    assert _ids(back_to_pair) == [newest, middle_second]

    everything = cases.list_cases(db, bob.officer, today, size=50)
    assert _ids(everything) == [hidden, newest, middle_second, middle_first, oldest]
    assert hidden not in _ids(cases.list_cases(db, alice.officer, today, size=50))

    row = first.rows[0]
    assert row.received_on == dt.date(2024, 3, 5)
    assert row.status is ReportStatus.NEW
    assert (row.read, row.unread_reporter_messages) == (False, False)
    clocks = reports.deadlines(dt.date(2024, 3, 5), None, policy)
    assert (row.acknowledge_by, row.feedback_by) == (clocks.acknowledge_by, clocks.feedback_by)


def test_an_officer_with_no_reports_gets_one_empty_page(
    db: Session, policy: Policy, make_officer: MakeOfficer
) -> None:
    page_officer = make_officer("Alice Officer").officer
    page = cases.list_cases(db, page_officer, RECEIVED, size=50)
    assert (page.rows, page.previous, page.next) == ([], None, None)
    assert str(cases.count_cases(db, page_officer, RECEIVED, cases.View.ALL)) == "0"


# --- opening a case (moved from test_services_reports) ------------------------------


def test_open_case_decrypts_marks_it_read_and_clears_the_unread_flag(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    carol = make_officer("Carol Officer")
    submitted = _submit(db, store, keyring, policy, _answers(carol, bob))
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)
    reports.add_reporter_message(db, store, policy, public_id, dek, "More detail.", [], dt.date(2024, 2, 1))
    assert _row(db, alice.officer, public_id, dt.date(2024, 2, 1)).unread_reporter_messages

    case = cases.open_case(db, _actor(alice), public_id, policy, _at(dt.date(2024, 2, 2)))
    assert case.public_id == public_id
    assert case.answers.what_happened == ANSWERS.what_happened
    assert case.answers.raised_before_result == ANSWERS.raised_before_result
    assert list(case.answers.excluded_officers) == [carol.officer.public_id, bob.officer.public_id]
    assert case.excluded_names == ["Bob Officer", "Carol Officer"]
    assert case.status is ReportStatus.NEW
    assert case.deadlines == reports.deadlines(RECEIVED, None, policy)
    report = _report(db, public_id)
    assert report.first_read_on == dt.date(2024, 2, 2)
    assert report.unread_reporter_messages is False
    row = _row(db, alice.officer, public_id, dt.date(2024, 2, 2))
    assert (row.read, row.unread_reporter_messages) == (True, False)
    assert reports.reporter_case(db, public_id, dek, policy).read_on == dt.date(2024, 2, 2)

    cases.open_case(db, _actor(alice), public_id, policy, _at(dt.date(2024, 2, 9)))
    assert report.first_read_on == dt.date(2024, 2, 2)


def test_open_case_gives_back_the_answers_as_submitted(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    submitted = _submit(db, store, keyring, policy)
    case = cases.open_case(db, _actor(alice), submitted.public_id, policy, _at(RECEIVED))
    assert case.answers == ANSWERS


def test_an_excluded_officer_cannot_reach_the_report_in_any_way(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    make_officer("Alice Officer")
    bob = make_officer("Bob Officer")
    submitted = _submit(db, store, keyring, policy, _answers(bob), (_upload("a.txt", b"evidence"),))
    public_id = submitted.public_id
    attachment_id = _report(db, public_id).attachments[0].public_id
    report = _report(db, public_id)
    before = (report.status, report.first_read_on, len(report.messages))

    with pytest.raises(ReportNotFound):
        cases.open_case(db, _actor(bob), public_id, policy, _at(RECEIVED))
    with pytest.raises(ReportNotFound):
        cases.reply(db, _actor(bob), public_id, "Hello", _at(RECEIVED))
    with pytest.raises(ReportNotFound):
        cases.set_status(db, _actor(bob), public_id, ReportStatus.INVESTIGATING, policy, _at(RECEIVED))
    with pytest.raises(ReportNotFound):
        cases.read_attachment(db, store, _actor(bob), public_id, attachment_id, _at(RECEIVED))
    assert (report.status, report.first_read_on, len(report.messages)) == before


def test_an_unknown_report_is_not_found(
    db: Session, store: SealedStore, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    unknown = crypto.new_public_id()
    with pytest.raises(ReportNotFound):
        cases.open_case(db, _actor(alice), unknown, policy, _at(RECEIVED))
    with pytest.raises(ReportNotFound):
        reports.reporter_case(db, unknown, crypto.new_key(), policy)
    with pytest.raises(ReportNotFound):
        reports.add_reporter_message(db, store, policy, unknown, crypto.new_key(), "Hello", [], RECEIVED)


# --- the dialogue (moved from test_services_reports) --------------------------------


def test_the_thread_is_in_order_and_names_officers_only_on_the_officer_side(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    submitted = _submit(db, store, keyring, policy)
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)

    cases.reply(db, _actor(alice), public_id, "Thank you. Which team?", _at(dt.date(2024, 2, 1)))
    reports.add_reporter_message(db, store, policy, public_id, dek, "The east team.", [], dt.date(2024, 2, 3))
    cases.reply(db, _actor(bob), public_id, "We are looking.", _at(dt.date(2024, 2, 4)))
    reports.add_reporter_message(
        db, store, policy, public_id, dek, "Thanks <b>!</b>", [], dt.date(2024, 2, 5)
    )

    expected = [
        (Author.OFFICER, "Alice Officer", dt.date(2024, 2, 1), "Thank you. Which team?"),
        (Author.REPORTER, None, dt.date(2024, 2, 3), "The east team."),
        (Author.OFFICER, "Bob Officer", dt.date(2024, 2, 4), "We are looking."),
        (Author.REPORTER, None, dt.date(2024, 2, 5), "Thanks <b>!</b>"),
    ]
    officer_case = cases.open_case(db, _actor(alice), public_id, policy, _at(RECEIVED))
    assert [(m.author, m.officer_name, m.sent_on, m.body) for m in officer_case.messages] == expected

    db.expire_all()  # read back from the database, not from the session's memory
    reporter_case = reports.reporter_case(db, public_id, dek, policy)
    assert [(m.author, m.officer_name, m.sent_on, m.body) for m in reporter_case.messages] == [
        (author, None, day, body) for author, _name, day, body in expected
    ]
    # The bodies are sealed, each bound to its own row.
    for message in db.scalars(select(Message)):
        assert b"east team" not in message.body_sealed


# --- status (moved from test_services_reports) ---------------------------------------


def test_set_status_acknowledges_once_and_ignores_no_change(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    submitted = _submit(db, store, keyring, policy)
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)
    report = _report(db, public_id)
    actor = _actor(alice)

    cases.set_status(db, actor, public_id, ReportStatus.NEW, policy, _at(dt.date(2024, 2, 1)))
    assert (report.status_changed_on, report.acknowledged_on) == (RECEIVED, None)

    cases.set_status(db, actor, public_id, ReportStatus.ACKNOWLEDGED, policy, _at(dt.date(2024, 2, 2)))
    assert (report.status, report.status_changed_on, report.acknowledged_on) == (
        ReportStatus.ACKNOWLEDGED,
        dt.date(2024, 2, 2),
        dt.date(2024, 2, 2),
    )
    cases.set_status(db, actor, public_id, ReportStatus.INVESTIGATING, policy, _at(dt.date(2024, 2, 9)))
    assert (report.status, report.status_changed_on, report.acknowledged_on) == (
        ReportStatus.INVESTIGATING,
        dt.date(2024, 2, 9),
        dt.date(2024, 2, 2),
    )
    cases.set_status(db, actor, public_id, ReportStatus.INVESTIGATING, policy, _at(dt.date(2024, 2, 20)))
    assert report.status_changed_on == dt.date(2024, 2, 9)
    cases.set_status(db, actor, public_id, ReportStatus.NEW, policy, _at(dt.date(2024, 2, 21)))
    assert (report.status, report.acknowledged_on) == (ReportStatus.NEW, dt.date(2024, 2, 2))

    db.expire_all()
    case = reports.reporter_case(db, public_id, dek, policy)
    assert case.status_changed_on == dt.date(2024, 2, 21)
    assert case.deadlines == reports.Deadlines(dt.date(2024, 2, 7), dt.date(2024, 5, 2))
    # Four changes were made; the one that changed nothing was not recorded.
    assert _kinds(db)["status_changed"] == 3


def test_closing_a_new_report_counts_as_acknowledging_it(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    public_id = _submit(db, store, keyring, policy).public_id
    # Closing is not a status change: it needs an outcome and a summary.
    with pytest.raises(NeedsOutcome):
        cases.set_status(db, _actor(alice), public_id, ReportStatus.CLOSED, policy, _at(dt.date(2024, 2, 3)))
    report = _report(db, public_id)
    assert (report.status, report.acknowledged_on) == (ReportStatus.NEW, None)

    cases.close_case(
        db,
        _actor(alice),
        public_id,
        Outcome.WITHDRAWN,
        "Withdrawn at the reporter's request.",
        policy,
        _at(dt.date(2024, 2, 3)),
        share_with_reporter=False,
    )
    assert (report.status, report.acknowledged_on) == (ReportStatus.CLOSED, dt.date(2024, 2, 3))


# --- attachments (moved from test_services_reports) -----------------------------------


def test_read_attachment_yields_the_exact_bytes_and_its_description(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    big = os.urandom(3 * crypto.CHUNK_BYTES + 123)
    uploads = (_upload("minutes.docx", big, "application/msword"), _upload("empty", b"", ""))
    submitted = _submit(db, store, keyring, policy, uploads=uploads)
    db.expire_all()
    described = cases.open_case(db, _actor(alice), submitted.public_id, policy, _at(RECEIVED)).attachments
    assert [info.filename for info in described] == ["empty", "minutes.docx"]  # by name within a day
    ids = [described[1].public_id, described[0].public_id]

    info, chunks = cases.read_attachment(db, store, _actor(alice), submitted.public_id, ids[0], _at(RECEIVED))
    assert b"".join(chunks) == big
    assert (info.filename, info.content_type, info.size, info.author, info.uploaded_on) == (
        "minutes.docx",
        "application/msword",
        len(big),
        Author.REPORTER,
        RECEIVED,
    )
    info, chunks = cases.read_attachment(db, store, _actor(alice), submitted.public_id, ids[1], _at(RECEIVED))
    assert b"".join(chunks) == b""
    assert (info.filename, info.content_type, info.size) == ("empty", GENERIC_TYPE, 0)

    # On disk the file is sealed and its name is random.
    blobs = sorted(path for path in store.root.rglob("*") if path.is_file())
    (blob,) = [path for path in blobs if path.stat().st_size > len(big)]
    assert big[:64] not in blob.read_bytes()
    assert "minutes" not in str(blob)
    # Each download is recorded, naming the file by its id only.
    downloads = db.scalars(select(AuditEvent).where(AuditEvent.kind == "attachment_downloaded")).all()
    assert [(e.report, e.subject) for e in downloads] == [(submitted.public_id, i) for i in ids]


def test_an_unknown_attachment_or_one_of_another_report_is_not_found(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    first = _submit(db, store, keyring, policy, uploads=(_upload("a.txt", b"a"),))
    second = _submit(db, store, keyring, policy, uploads=(_upload("b.txt", b"b"),))
    db.expire_all()
    other_id = _report(db, second.public_id).attachments[0].public_id
    for attachment_id in (crypto.new_public_id(), other_id):
        with pytest.raises(AttachmentNotFound):
            cases.read_attachment(db, store, _actor(alice), first.public_id, attachment_id, _at(RECEIVED))


# --- priority on arrival --------------------------------------------------------------


@pytest.mark.parametrize(
    ("immediate_risk", "priority"),
    [("yes", Priority.NORMAL), ("not_sure", Priority.NORMAL), ("no", Priority.NORMAL)],
)
def test_what_the_reporter_said_of_immediate_risk_never_shows_in_the_clear_priority(
    db: Session,
    store: SealedStore,
    keyring: Keyring,
    policy: Policy,
    make_officer: MakeOfficer,
    immediate_risk: str,
    priority: Priority,
) -> None:
    alice = make_officer("Alice Officer")
    answers = _answers(immediate_risk=immediate_risk)
    public_id = reports.submit_report(db, store, keyring, policy, answers, [], RECEIVED).public_id
    row = _row(db, alice.officer, public_id, RECEIVED)
    assert row.priority is priority
    in_urgent = public_id in _in_view(db, alice.officer, cases.View.URGENT, RECEIVED)
    assert in_urgent is (priority is Priority.URGENT)


# --- views and their counts -----------------------------------------------------------


TODAY = dt.date(2024, 3, 1)


def test_each_view_holds_the_cases_it_names_and_the_counts_agree(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    a = _actor(alice)

    def submit(day: dt.date, answers: reports.Answers = ANSWERS) -> str:
        return _submit(db, store, keyring, policy, answers, today=day).public_id

    # New, not acknowledged in 7 days: acknowledgement overdue.
    late_ack = submit(dt.date(2024, 2, 20))
    # New, acknowledgement due on 5 March: within 7 days.
    new_due = submit(dt.date(2024, 2, 27))
    # Immediate risk, arrived today: urgent, and due within 7 days (on 8 March, the horizon).
    urgent = submit(TODAY, _answers(immediate_risk="yes"))
    # Acknowledged and assigned to Alice; feedback due 12 April: in no deadline view.
    mine = submit(dt.date(2024, 1, 10))
    cases.set_status(db, a, mine, ReportStatus.ACKNOWLEDGED, policy, _at(dt.date(2024, 1, 12)))
    cases.assign(db, a, mine, alice.officer.public_id, _at(dt.date(2024, 1, 12)))
    # Bob's case: acknowledged on 5 December, feedback due 5 March: within 7 days.
    bobs = submit(dt.date(2023, 12, 1))
    cases.set_status(db, a, bobs, ReportStatus.INVESTIGATING, policy, _at(dt.date(2023, 12, 5)))
    cases.assign(db, a, bobs, bob.officer.public_id, _at(dt.date(2023, 12, 5)))
    # Acknowledged on 3 November: feedback was due on 3 February and not given: overdue.
    late_feedback = submit(dt.date(2023, 11, 1))
    cases.set_status(db, a, late_feedback, ReportStatus.ASSESSING, policy, _at(dt.date(2023, 11, 3)))
    # The same, but feedback was given in time: in no deadline view.
    answered = submit(dt.date(2023, 11, 1))
    cases.set_status(db, a, answered, ReportStatus.ASSESSING, policy, _at(dt.date(2023, 11, 3)))
    cases.reply(db, a, answered, FEEDBACK_TEXT, _at(dt.date(2024, 1, 20)), is_feedback=True)
    # Closed long ago, urgent, Alice's, feedback never given: in no view but "all".
    closed = submit(dt.date(2023, 10, 1), _answers(immediate_risk="yes"))
    cases.assign(db, a, closed, alice.officer.public_id, _at(dt.date(2023, 10, 2)))
    cases.close_case(
        db,
        a,
        closed,
        Outcome.REFERRED,
        SUMMARY_TEXT,
        policy,
        _at(dt.date(2023, 10, 3)),
        share_with_reporter=False,
    )
    # Kept from Alice: overdue and urgent, but never hers to see or count.
    hidden = submit(dt.date(2024, 2, 1), _answers(alice, immediate_risk="yes"))

    expected = {
        cases.View.ALL: {late_ack, new_due, urgent, mine, bobs, late_feedback, answered, closed},
        cases.View.NEW: {late_ack, new_due, urgent},
        cases.View.MINE: {mine},
        cases.View.URGENT: {urgent},
        cases.View.DUE_SOON: {new_due, urgent, bobs},
        cases.View.OVERDUE: {late_ack, late_feedback},
    }
    for view, members in expected.items():
        assert _in_view(db, alice.officer, view, TODAY) == members, view
    assert _counts(db, alice.officer, TODAY) == {view: len(m) for view, m in expected.items()}
    # Every sort of a view lists the view's cases, whichever groups it reads them in (a sort by
    # status reads only the statuses the view can hold; by next deadline, a deadline view reads one).
    for view, members in expected.items():
        for sort in cases.Sort:
            assert set(_ids(cases.list_cases(db, alice.officer, TODAY, view=view, sort=sort))) == members, (
                view,
                sort,
            )

    # Bob may see the hidden case; his own views differ only where the case is his.
    assert _counts(db, bob.officer, TODAY) == {
        cases.View.ALL: 9,
        cases.View.NEW: 4,
        cases.View.MINE: 1,
        cases.View.URGENT: 2,
        cases.View.DUE_SOON: 3,
        cases.View.OVERDUE: 3,
    }
    assert _in_view(db, bob.officer, cases.View.MINE, TODAY) == {bobs}

    # The flags on each row say the same as the views.
    rows = {row.public_id: row for row in cases.list_cases(db, alice.officer, TODAY).rows}
    assert {i for i, row in rows.items() if row.overdue} == expected[cases.View.OVERDUE]
    assert {i for i, row in rows.items() if row.due_soon} == expected[cases.View.DUE_SOON]
    # A deadline that has been met is not shown as one still to meet.
    assert (rows[mine].acknowledge_by, rows[mine].feedback_by) == (None, dt.date(2024, 4, 12))
    assert (rows[answered].acknowledge_by, rows[answered].feedback_by) == (None, None)
    # The next deadline the database works out: the sooner of those still to meet, none once met or closed.
    assert {public_id: rows[public_id].next_deadline for public_id in expected[cases.View.ALL]} == {
        late_ack: dt.date(2024, 2, 27),
        new_due: dt.date(2024, 3, 5),
        urgent: dt.date(2024, 3, 8),
        mine: dt.date(2024, 4, 12),
        bobs: dt.date(2024, 3, 5),
        late_feedback: dt.date(2024, 2, 3),
        answered: None,
        closed: None,
    }
    assert (rows[late_ack].acknowledge_by, rows[late_ack].feedback_by) == (
        dt.date(2024, 2, 27),
        dt.date(2024, 5, 27),
    )
    assert rows[mine].assignee == "Alice Officer"
    assert rows[late_ack].assignee is None
    assert hidden not in rows


def test_a_view_is_paginated_on_its_own_total(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    for day in range(1, 6):
        _submit(db, store, keyring, policy, _answers(immediate_risk="yes"), today=dt.date(2024, 2, day))
    for day in range(1, 4):
        _submit(db, store, keyring, policy, today=dt.date(2024, 2, day))

    last = cases.list_cases(db, alice.officer, TODAY, view=cases.View.URGENT, size=2, direction=LAST)
    assert len(last.rows) == 2
    assert cases.count_cases(db, alice.officer, TODAY, cases.View.URGENT) == cases.Tally(5)
    assert [row.received_on for row in last.rows] == [dt.date(2024, 2, 2), dt.date(2024, 2, 1)]
    assert all(row.priority is Priority.URGENT for row in last.rows)
    before = cases.list_cases(
        db, alice.officer, TODAY, view=cases.View.URGENT, size=2, cursor=last.previous, direction=BEFORE
    )
    assert [row.received_on for row in before.rows] == [dt.date(2024, 2, 4), dt.date(2024, 2, 3)]


@pytest.mark.parametrize(
    ("received", "last_day_in_time"),
    [
        pytest.param(dt.date(2024, 1, 31), dt.date(2024, 2, 7), id="seven-days"),
        pytest.param(dt.date(2024, 2, 26), dt.date(2024, 3, 4), id="across-a-leap-day"),
        pytest.param(dt.date(2024, 12, 28), dt.date(2025, 1, 4), id="across-the-new-year"),
    ],
)
def test_a_case_not_acknowledged_after_seven_days_is_overdue(
    db: Session,
    store: SealedStore,
    keyring: Keyring,
    policy: Policy,
    make_officer: MakeOfficer,
    received: dt.date,
    last_day_in_time: dt.date,
) -> None:
    alice = make_officer("Alice Officer")
    public_id = _submit(db, store, keyring, policy, today=received).public_id

    on_the_day = _row(db, alice.officer, public_id, last_day_in_time)
    assert (on_the_day.overdue, on_the_day.due_soon) == (False, True)
    assert on_the_day.acknowledge_by == last_day_in_time
    day_after = last_day_in_time + dt.timedelta(days=1)
    late = _row(db, alice.officer, public_id, day_after)
    assert (late.overdue, late.due_soon) == (True, False)
    assert _in_view(db, alice.officer, cases.View.OVERDUE, day_after) == {public_id}
    assert _in_view(db, alice.officer, cases.View.DUE_SOON, day_after) == set()

    # Acknowledged late: no longer overdue; feedback is now due three months from that day.
    cases.set_status(db, _actor(alice), public_id, ReportStatus.ACKNOWLEDGED, policy, _at(day_after))
    acknowledged = _row(db, alice.officer, public_id, day_after)
    assert (acknowledged.overdue, acknowledged.due_soon, acknowledged.acknowledge_by) == (False, False, None)
    assert _in_view(db, alice.officer, cases.View.OVERDUE, day_after) == set()


@pytest.mark.parametrize(
    ("acknowledged", "feedback_by"),
    [
        pytest.param(dt.date(2024, 11, 30), dt.date(2025, 2, 28), id="month-end"),
        pytest.param(dt.date(2023, 11, 29), dt.date(2024, 2, 29), id="leap-year"),
        pytest.param(dt.date(2024, 1, 31), dt.date(2024, 4, 30), id="into-a-shorter-month"),
    ],
)
def test_feedback_is_overdue_three_months_after_acknowledgement(
    db: Session,
    store: SealedStore,
    keyring: Keyring,
    policy: Policy,
    make_officer: MakeOfficer,
    acknowledged: dt.date,
    feedback_by: dt.date,
) -> None:
    alice = make_officer("Alice Officer")
    public_id = _submit(db, store, keyring, policy, today=acknowledged - dt.timedelta(days=2)).public_id
    cases.set_status(db, _actor(alice), public_id, ReportStatus.ACKNOWLEDGED, policy, _at(acknowledged))

    case = cases.open_case(db, _actor(alice), public_id, policy, _at(acknowledged))
    assert case.deadlines.feedback_by == feedback_by
    in_time = _row(db, alice.officer, public_id, feedback_by)
    assert (in_time.feedback_by, in_time.overdue, in_time.due_soon) == (feedback_by, False, True)
    day_after = feedback_by + dt.timedelta(days=1)
    assert _row(db, alice.officer, public_id, day_after).overdue
    assert _in_view(db, alice.officer, cases.View.OVERDUE, day_after) == {public_id}
    # A week before, it is not yet due within 7 days; the day after that, it is.
    assert not _row(db, alice.officer, public_id, feedback_by - dt.timedelta(days=8)).due_soon
    assert _row(db, alice.officer, public_id, feedback_by - dt.timedelta(days=7)).due_soon


def test_the_deadlines_follow_the_policy_given(
    db: Session, store: SealedStore, keyring: Keyring, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    short = Policy(acknowledge_days=3, feedback_months=1)
    public_id = _submit(db, store, keyring, short, today=dt.date(2024, 1, 31)).public_id
    assert _row(db, alice.officer, public_id, dt.date(2024, 2, 4)).overdue
    cases.set_status(db, _actor(alice), public_id, ReportStatus.ACKNOWLEDGED, short, _at(dt.date(2024, 2, 4)))
    assert _row(db, alice.officer, public_id, dt.date(2024, 2, 4)).feedback_by == dt.date(2024, 3, 4)
    assert _row(db, alice.officer, public_id, dt.date(2024, 3, 5)).overdue


def test_a_reply_marked_as_feedback_stops_the_feedback_clock(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    actor = _actor(alice)
    public_id = _submit(db, store, keyring, policy, today=dt.date(2023, 11, 1)).public_id
    cases.set_status(db, actor, public_id, ReportStatus.INVESTIGATING, policy, _at(dt.date(2023, 11, 3)))
    late = dt.date(2024, 2, 10)
    assert _row(db, alice.officer, public_id, late).overdue

    cases.reply(db, actor, public_id, REPLY_TEXT, _at(late))
    assert _row(db, alice.officer, public_id, late).overdue, "an ordinary reply is not the feedback"
    assert cases.open_case(db, actor, public_id, policy, _at(late)).feedback_given_on is None

    cases.reply(db, actor, public_id, FEEDBACK_TEXT, _at(late), is_feedback=True)
    row = _row(db, alice.officer, public_id, late)
    assert (row.overdue, row.due_soon, row.feedback_by) == (False, False, None)
    assert _in_view(db, alice.officer, cases.View.OVERDUE, late) == set()
    # Later feedback does not move the day the feedback was given.
    cases.reply(db, actor, public_id, "More news.", _at(dt.date(2024, 3, 1)), is_feedback=True)
    case = cases.open_case(db, actor, public_id, policy, _at(dt.date(2024, 3, 1)))
    assert case.feedback_given_on == late
    sent = db.scalars(select(AuditEvent.detail).where(AuditEvent.kind == "message_sent")).all()
    assert sent == ["", "feedback", "feedback"]


def test_a_closed_case_is_never_overdue_nor_due(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    public_id = _submit(db, store, keyring, policy, _answers(immediate_risk="yes")).public_id
    cases.assign(db, _actor(alice), public_id, alice.officer.public_id, _at(RECEIVED))
    cases.close_case(
        db,
        _actor(alice),
        public_id,
        Outcome.NOT_SUBSTANTIATED,
        SUMMARY_TEXT,
        policy,
        _at(RECEIVED),
        share_with_reporter=False,
    )
    for today in (RECEIVED, dt.date(2024, 4, 30), dt.date(2024, 5, 1), dt.date(2030, 1, 1)):
        row = _row(db, alice.officer, public_id, today)
        assert (row.status, row.overdue, row.due_soon) == (ReportStatus.CLOSED, False, False)
        counts = _counts(db, alice.officer, today)
        assert counts[cases.View.ALL] == 1
        assert {view: n for view, n in counts.items() if view is not cases.View.ALL} == dict.fromkeys(
            [v for v in cases.View if v is not cases.View.ALL], 0
        )


# --- sorting --------------------------------------------------------------------------


@pytest.fixture
def sortable(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> tuple[OfficerKeys, dict[str, str]]:
    """Five cases with different priorities, days and statuses."""
    alice = make_officer("Alice Officer")
    actor = _actor(alice)

    def submit(day: dt.date, risk: str = "no") -> str:
        return _submit(db, store, keyring, policy, _answers(immediate_risk=risk), today=day).public_id

    ids = {
        "low": submit(dt.date(2024, 2, 5)),
        "normal-old": submit(dt.date(2024, 1, 3)),
        "urgent": submit(dt.date(2024, 1, 20), "yes"),
        "high": submit(dt.date(2024, 1, 10)),
        "normal-new": submit(dt.date(2024, 2, 1)),
    }
    cases.set_priority(db, actor, ids["low"], Priority.LOW, _at(dt.date(2024, 2, 5)))
    cases.set_priority(db, actor, ids["high"], Priority.HIGH, _at(dt.date(2024, 1, 10)))
    cases.set_status(db, actor, ids["high"], ReportStatus.INVESTIGATING, policy, _at(dt.date(2024, 1, 11)))
    cases.set_status(
        db, actor, ids["normal-old"], ReportStatus.ACKNOWLEDGED, policy, _at(dt.date(2024, 1, 9))
    )
    cases.set_status(
        db, actor, ids["urgent"], ReportStatus.AWAITING_REPORTER, policy, _at(dt.date(2024, 1, 21))
    )
    return alice, ids


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        (cases.Sort.RECEIVED, ["low", "normal-new", "urgent", "high", "normal-old"]),
        # Urgent, high, normal, low; newest first within a priority.
        (cases.Sort.PRIORITY, ["urgent", "high", "normal-new", "normal-old", "low"]),
        # Still to acknowledge first (normal-new 8 Feb, low 12 Feb), then the acknowledged ones
        # by their (met) deadline: normal-old 10 Jan, high 17 Jan, urgent 27 Jan.
        (cases.Sort.ACKNOWLEDGE_BY, ["normal-new", "low", "normal-old", "high", "urgent"]),
        # Acknowledged ones three months from acknowledging, the others from the acknowledgement deadline.
        (cases.Sort.FEEDBACK_BY, ["normal-old", "high", "urgent", "normal-new", "low"]),
        # In the order of the workflow (new, acknowledged, ..., awaiting reporter), newest first within.
        (cases.Sort.STATUS, ["low", "normal-new", "normal-old", "high", "urgent"]),
    ],
)
def test_each_sort_orders_the_list(
    db: Session, sortable: tuple[OfficerKeys, dict[str, str]], sort: cases.Sort, order: list[str]
) -> None:
    alice, ids = sortable
    page = cases.list_cases(db, alice.officer, TODAY, sort=sort)
    names = {public_id: name for name, public_id in ids.items()}
    assert [names[public_id] for public_id in _ids(page)] == order
    assert page.sort is sort
    # A sort applies before the page is cut, not within a page, and the next pages carry on in order.
    first_two = cases.list_cases(db, alice.officer, TODAY, sort=sort, size=2)
    assert [names[i] for i in _ids(first_two)] == order[:2]
    next_two = cases.list_cases(db, alice.officer, TODAY, sort=sort, size=2, cursor=first_two.next)
    assert [names[i] for i in _ids(next_two)] == order[2:4]
    last_two = cases.list_cases(db, alice.officer, TODAY, sort=sort, size=2, direction=LAST)
    assert [names[i] for i in _ids(last_two)] == order[3:]


@pytest.mark.parametrize(
    "sort", [cases.Sort.ACKNOWLEDGE_BY, cases.Sort.FEEDBACK_BY, cases.Sort.NEXT_DEADLINE]
)
def test_sorting_by_a_deadline_puts_the_deadlines_still_to_meet_first(
    db: Session,
    store: SealedStore,
    keyring: Keyring,
    policy: Policy,
    make_officer: MakeOfficer,
    sort: cases.Sort,
) -> None:
    alice = make_officer("Alice Officer")
    actor = _actor(alice)
    done = _submit(db, store, keyring, policy, today=dt.date(2023, 6, 1)).public_id
    cases.set_status(db, actor, done, ReportStatus.ASSESSING, policy, _at(dt.date(2023, 6, 2)))
    cases.reply(db, actor, done, FEEDBACK_TEXT, _at(dt.date(2023, 7, 1)), is_feedback=True)
    pending = _submit(db, store, keyring, policy, today=dt.date(2024, 2, 28)).public_id

    rows = cases.list_cases(db, alice.officer, TODAY, sort=sort).rows
    assert [row.public_id for row in rows] == [pending, done]


def test_the_deadline_views_open_with_the_nearest_deadline_first_and_page_on_in_that_order(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    actor = _actor(alice)

    received: dict[str, dt.date] = {}

    def submit(day: dt.date, acknowledged: dt.date | None = None) -> str:
        public_id = _submit(db, store, keyring, policy, today=day).public_id
        received[public_id] = day
        if acknowledged:
            cases.set_status(db, actor, public_id, ReportStatus.ASSESSING, policy, _at(acknowledged))
        return public_id

    # Overdue on 1 March, by the deadline each has still to meet (received newest first, they
    # would read in another order).
    overdue = [
        submit(dt.date(2023, 11, 1), acknowledged=dt.date(2023, 11, 3)),  # feedback by 3 February
        submit(dt.date(2024, 2, 1)),  # acknowledge by 8 February
        submit(dt.date(2024, 2, 10)),  # 17 February
        submit(dt.date(2024, 2, 15)),  # 22 February
    ]
    due_soon = [
        submit(dt.date(2024, 2, 24)),  # acknowledge by 2 March
        submit(dt.date(2023, 12, 1), acknowledged=dt.date(2023, 12, 4)),  # feedback by 4 March
        submit(dt.date(2024, 2, 28)),  # acknowledge by 6 March
        submit(TODAY),  # 8 March, the last day of the week ahead
    ]

    for view, expected in ((cases.View.OVERDUE, overdue), (cases.View.DUE_SOON, due_soon)):
        page = cases.list_cases(db, alice.officer, TODAY, view=view)
        assert (page.sort, page.chosen_sort) == (cases.Sort.NEXT_DEADLINE, None)
        assert _ids(page) == expected
        assert [row.next_deadline for row in page.rows] == sorted(row.next_deadline for row in page.rows)
        first = cases.list_cases(db, alice.officer, TODAY, view=view, size=3)
        assert _ids(first) == expected[:3]
        following = cases.list_cases(db, alice.officer, TODAY, view=view, size=3, cursor=first.next)
        assert _ids(following) == expected[3:]
        assert (
            _ids(cases.list_cases(db, alice.officer, TODAY, view=view, size=3, direction=LAST))
            == expected[1:]
        )
        # The officer may still choose another order.
        newest = cases.list_cases(db, alice.officer, TODAY, view=view, sort=cases.Sort.RECEIVED)
        assert _ids(newest) == sorted(expected, key=received.__getitem__, reverse=True) != expected
        assert newest.chosen_sort is cases.Sort.RECEIVED


# --- one case: close, share, reopen, history -------------------------------------------


def test_closing_with_the_summary_shared_gives_the_reporter_the_outcome_and_summary(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    submitted = _submit(db, store, keyring, policy)
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)
    cases.set_status(
        db, _actor(alice), public_id, ReportStatus.INVESTIGATING, policy, _at(dt.date(2024, 2, 2))
    )

    cases.close_case(
        db,
        _actor(alice),
        public_id,
        Outcome.SUBSTANTIATED,
        SUMMARY_TEXT,
        policy,
        _at(dt.date(2024, 3, 4)),
        share_with_reporter=True,
    )

    db.expire_all()
    seen = reports.reporter_case(db, public_id, dek, policy)
    assert seen.status is ReportStatus.CLOSED
    assert seen.outcome_text == reports.OUTCOME_FOR_REPORTER[Outcome.SUBSTANTIATED]
    assert seen.closing_summary == SUMMARY_TEXT
    case = cases.open_case(db, _actor(alice), public_id, policy, _at(dt.date(2024, 3, 4)))
    assert (case.outcome, case.closing_summary, case.summary_shared) == (
        Outcome.SUBSTANTIATED,
        SUMMARY_TEXT,
        True,
    )
    # The shared summary is the feedback the law asks for.
    assert case.feedback_given_on == dt.date(2024, 3, 4)
    report = _report(db, public_id)
    assert report.closed_on == dt.date(2024, 3, 4)
    assert SUMMARY_TEXT.encode() not in _raw_row(db, "report", report.id)


def test_closing_without_sharing_tells_the_reporter_neither_outcome_nor_summary(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    submitted = _submit(db, store, keyring, policy)
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)

    cases.close_case(
        db,
        _actor(alice),
        public_id,
        Outcome.NOT_SUBSTANTIATED,
        SUMMARY_TEXT,
        policy,
        _at(dt.date(2024, 3, 4)),
        share_with_reporter=False,
    )

    db.expire_all()
    seen = reports.reporter_case(db, public_id, dek, policy)
    assert seen.status is ReportStatus.CLOSED
    assert (seen.outcome_text, seen.closing_summary) == ("", "")
    assert SUMMARY_TEXT not in repr(seen)
    case = cases.open_case(db, _actor(alice), public_id, policy, _at(dt.date(2024, 3, 4)))
    assert (case.outcome, case.closing_summary, case.summary_shared) == (
        Outcome.NOT_SUBSTANTIATED,
        SUMMARY_TEXT,
        False,
    )
    assert case.feedback_given_on is None


def test_closing_again_changes_the_outcome_and_keeps_earlier_feedback(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    actor = _actor(alice)
    submitted = _submit(db, store, keyring, policy)
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)
    cases.reply(db, actor, public_id, FEEDBACK_TEXT, _at(dt.date(2024, 2, 20)), is_feedback=True)
    cases.close_case(
        db,
        actor,
        public_id,
        Outcome.REFERRED,
        "Sent to the LADO.",
        policy,
        _at(dt.date(2024, 3, 1)),
        share_with_reporter=True,
    )
    cases.close_case(
        db,
        actor,
        public_id,
        Outcome.PARTLY_SUBSTANTIATED,
        SUMMARY_TEXT,
        policy,
        _at(dt.date(2024, 3, 8)),
        share_with_reporter=True,
    )

    db.expire_all()
    case = cases.open_case(db, actor, public_id, policy, _at(dt.date(2024, 3, 8)))
    assert (case.outcome, case.closing_summary) == (Outcome.PARTLY_SUBSTANTIATED, SUMMARY_TEXT)
    assert case.feedback_given_on == dt.date(2024, 2, 20)
    # Closed once: the second close is not a second step in the case's history.
    assert [(h.status, h.changed_on) for h in case.history] == [
        (ReportStatus.NEW, RECEIVED),
        (ReportStatus.ACKNOWLEDGED, dt.date(2024, 2, 20)),  # by the first reply
        (ReportStatus.CLOSED, dt.date(2024, 3, 1)),
    ]
    assert reports.reporter_case(db, public_id, dek, policy).closing_summary == SUMMARY_TEXT
    assert _kinds(db)["case_closed"] == 2
    assert db.scalars(select(AuditEvent.detail).where(AuditEvent.kind == "case_closed")).all() == [
        "referred",
        "partly_substantiated",
    ]


def test_reopening_a_closed_case_clears_its_outcome_and_closing_day(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    actor = _actor(alice)
    submitted = _submit(db, store, keyring, policy)
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)
    cases.close_case(
        db,
        actor,
        public_id,
        Outcome.SUBSTANTIATED,
        SUMMARY_TEXT,
        policy,
        _at(dt.date(2024, 3, 1)),
        share_with_reporter=True,
    )

    cases.set_status(db, actor, public_id, ReportStatus.INVESTIGATING, policy, _at(dt.date(2024, 3, 9)))

    db.expire_all()
    report = _report(db, public_id)
    assert (report.status, report.outcome, report.closed_on) == (ReportStatus.INVESTIGATING, None, None)
    assert report.status_changed_on == dt.date(2024, 3, 9)
    seen = reports.reporter_case(db, public_id, dek, policy)
    assert (seen.status, seen.outcome_text) == (ReportStatus.INVESTIGATING, "")
    case = cases.open_case(db, actor, public_id, policy, _at(dt.date(2024, 3, 9)))
    assert case.outcome is None
    assert [h.status for h in case.history] == [
        ReportStatus.NEW,
        ReportStatus.CLOSED,
        ReportStatus.INVESTIGATING,
    ]
    row = _row(db, alice.officer, public_id, dt.date(2024, 3, 9))
    assert (row.status, row.overdue) == (ReportStatus.INVESTIGATING, False)


def test_the_history_lists_each_step_with_its_day_on_both_sides(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    submitted = _submit(db, store, keyring, policy)
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)
    steps = [
        (alice, ReportStatus.ACKNOWLEDGED, dt.date(2024, 2, 1)),
        (bob, ReportStatus.ASSESSING, dt.date(2024, 2, 5)),
        (bob, ReportStatus.AWAITING_REPORTER, dt.date(2024, 2, 12)),
        (alice, ReportStatus.INVESTIGATING, dt.date(2024, 2, 20)),
    ]
    for officer, status, day in steps:
        cases.set_status(db, _actor(officer), public_id, status, policy, _at(day))
    cases.close_case(
        db,
        _actor(alice),
        public_id,
        Outcome.SUBSTANTIATED,
        SUMMARY_TEXT,
        policy,
        _at(dt.date(2024, 3, 1)),
        share_with_reporter=True,
    )

    db.expire_all()
    reporter_history = reports.reporter_case(db, public_id, dek, policy).history
    assert reporter_history == [
        (reports.STATUS_FOR_REPORTER[ReportStatus.NEW], RECEIVED),
        (reports.STATUS_FOR_REPORTER[ReportStatus.ACKNOWLEDGED], dt.date(2024, 2, 1)),
        (reports.STATUS_FOR_REPORTER[ReportStatus.ASSESSING], dt.date(2024, 2, 5)),
        (reports.STATUS_FOR_REPORTER[ReportStatus.AWAITING_REPORTER], dt.date(2024, 2, 12)),
        (reports.STATUS_FOR_REPORTER[ReportStatus.INVESTIGATING], dt.date(2024, 2, 20)),
        (reports.STATUS_FOR_REPORTER[ReportStatus.CLOSED], dt.date(2024, 3, 1)),
    ]
    # The reporter is never told who did what.
    assert "Officer" not in repr(reporter_history)
    officer_history = cases.open_case(db, _actor(bob), public_id, policy, _at(dt.date(2024, 3, 2))).history
    assert officer_history == [
        cases.HistoryEntry(ReportStatus.NEW, RECEIVED, None),
        cases.HistoryEntry(ReportStatus.ACKNOWLEDGED, dt.date(2024, 2, 1), "Alice Officer"),
        cases.HistoryEntry(ReportStatus.ASSESSING, dt.date(2024, 2, 5), "Bob Officer"),
        cases.HistoryEntry(ReportStatus.AWAITING_REPORTER, dt.date(2024, 2, 12), "Bob Officer"),
        cases.HistoryEntry(ReportStatus.INVESTIGATING, dt.date(2024, 2, 20), "Alice Officer"),
        cases.HistoryEntry(ReportStatus.CLOSED, dt.date(2024, 3, 1), "Alice Officer"),
    ]


# --- priority, lead officer, triage, notes ---------------------------------------------


def test_priority_changes_are_kept_and_recorded_once(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    public_id = _submit(db, store, keyring, policy).public_id

    cases.set_priority(db, _actor(alice), public_id, Priority.HIGH, _at(RECEIVED))
    cases.set_priority(db, _actor(alice), public_id, Priority.HIGH, _at(RECEIVED))
    cases.set_priority(db, _actor(alice), public_id, Priority.URGENT, _at(RECEIVED))

    db.expire_all()
    assert cases.open_case(db, _actor(alice), public_id, policy, _at(RECEIVED)).priority is Priority.URGENT
    assert _in_view(db, alice.officer, cases.View.URGENT, RECEIVED) == {public_id}
    changes = db.scalars(select(AuditEvent.detail).where(AuditEvent.kind == "priority_changed")).all()
    assert changes == ["high", "urgent"]


def test_only_a_reader_can_lead_a_case_and_nobody_clears_the_lead(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob, carol = (
        make_officer("Alice Officer"),
        make_officer("Bob Officer"),
        make_officer("Carol Officer"),
    )
    public_id = _submit(db, store, keyring, policy, _answers(carol)).public_id
    dave = make_officer("Dave Officer")  # joined after the report arrived: holds no key for it
    actor = _actor(alice)

    cases.assign(db, actor, public_id, bob.officer.public_id, _at(RECEIVED))
    assert cases.open_case(db, actor, public_id, policy, _at(RECEIVED)).assignee_id == bob.officer.public_id
    assert _row(db, alice.officer, public_id, RECEIVED).assignee == "Bob Officer"
    assert _in_view(db, bob.officer, cases.View.MINE, RECEIVED) == {public_id}
    assert _in_view(db, alice.officer, cases.View.MINE, RECEIVED) == set()

    for outsider in (carol, dave):
        with pytest.raises(UnknownOfficer):
            cases.assign(db, actor, public_id, outsider.officer.public_id, _at(RECEIVED))
    with pytest.raises(UnknownOfficer):
        cases.assign(db, actor, public_id, crypto.new_public_id(), _at(RECEIVED))
    bob.officer.is_active = False  # a reader who has left cannot lead
    db.flush()
    with pytest.raises(UnknownOfficer):
        cases.assign(db, actor, public_id, bob.officer.public_id, _at(RECEIVED))
    assert _report(db, public_id).assignee_id == bob.officer.id

    cases.assign(db, actor, public_id, None, _at(RECEIVED))
    db.expire_all()  # as the next request would see it (see the test below for this unit of work)
    assert cases.open_case(db, actor, public_id, policy, _at(RECEIVED)).assignee_id is None
    assert _row(db, alice.officer, public_id, RECEIVED).assignee is None
    assigned = db.execute(select(AuditEvent.subject).where(AuditEvent.kind == "assigned")).scalars().all()
    assert assigned == [bob.officer.public_id, None]


def test_a_new_lead_is_shown_at_once_in_the_same_unit_of_work(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    public_id = _submit(db, store, keyring, policy).public_id
    actor = _actor(alice)
    cases.assign(db, actor, public_id, bob.officer.public_id, _at(RECEIVED))
    assert cases.open_case(db, actor, public_id, policy, _at(RECEIVED)).assignee_id == bob.officer.public_id

    cases.assign(db, actor, public_id, alice.officer.public_id, _at(RECEIVED))

    assert cases.open_case(db, actor, public_id, policy, _at(RECEIVED)).assignee_id == alice.officer.public_id
    assert _row(db, alice.officer, public_id, RECEIVED).assignee == "Alice Officer"


def test_triage_seals_the_protective_actions_and_they_stay_after_closing(
    db: Session,
    store: SealedStore,
    organisation: Organisation,
    policy: Policy,
    make_officer: MakeOfficer,
) -> None:
    alice = make_officer("Alice Officer")
    submitted = _submit(db, store, organisation.keyring, policy)
    public_id, dek = reports.open_with_receipt(db, organisation.keyring, submitted.receipt)
    actor = _actor(alice)

    cases.set_triage(db, actor, public_id, CATEGORY_TEXT, DetrimentRisk.HIGH, ACTIONS_TEXT, _at(RECEIVED))

    report = _report(db, public_id)
    assert ACTIONS_TEXT.encode() not in _raw_row(db, "report", report.id)
    assert report.protective_actions_sealed is not None
    # Sealed under the internal key: the reporter's key does not open it.
    context = crypto.context("report", public_id, "internal", "protective-actions")
    with pytest.raises(crypto.CryptoError):
        crypto.open_sealed(dek, report.protective_actions_sealed, context)
    internal = _organisation_key(organisation, report, KeyPurpose.INTERNAL)
    assert crypto.open_sealed(internal, report.protective_actions_sealed, context).decode() == ACTIONS_TEXT
    assert ACTIONS_TEXT not in repr(reports.reporter_case(db, public_id, dek, policy))

    cases.close_case(
        db,
        actor,
        public_id,
        Outcome.SUBSTANTIATED,
        SUMMARY_TEXT,
        policy,
        _at(dt.date(2024, 3, 1)),
        share_with_reporter=True,
    )
    db.expire_all()
    case = cases.open_case(db, actor, public_id, policy, _at(dt.date(2024, 3, 1)))
    assert (case.officer_category, case.detriment_risk, case.protective_actions) == (
        CATEGORY_TEXT,
        DetrimentRisk.HIGH,
        ACTIONS_TEXT,
    )
    assert db.scalars(select(AuditEvent.detail).where(AuditEvent.kind == "triage_updated")).all() == ["high"]

    # Cleared: no category, no actions, nothing sealed left behind.
    cases.set_triage(db, actor, public_id, "", DetrimentRisk.LOW, "", _at(dt.date(2024, 3, 2)))
    db.expire_all()
    case = cases.open_case(db, actor, public_id, policy, _at(dt.date(2024, 3, 2)))
    assert (case.officer_category, case.detriment_risk, case.protective_actions) == (
        None,
        DetrimentRisk.LOW,
        "",
    )
    assert _report(db, public_id).protective_actions_sealed is None


def test_notes_are_sealed_under_the_internal_key_and_never_reach_the_reporter(
    db: Session,
    store: SealedStore,
    organisation: Organisation,
    policy: Policy,
    make_officer: MakeOfficer,
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    submitted = _submit(db, store, organisation.keyring, policy)
    public_id, dek = reports.open_with_receipt(db, organisation.keyring, submitted.receipt)

    cases.add_note(db, _actor(alice), public_id, NOTE_TEXT, _at(dt.date(2024, 2, 1), hour=9))
    cases.add_note(db, _actor(bob), public_id, "Second note.", _at(dt.date(2024, 2, 2), hour=16))

    db.expire_all()
    case = cases.open_case(db, _actor(bob), public_id, policy, _at(dt.date(2024, 2, 2)))
    assert [(n.author, n.body) for n in case.notes] == [
        ("Alice Officer", NOTE_TEXT),
        ("Bob Officer", "Second note."),
    ]
    assert [_utc_naive(n.written_at) for n in case.notes] == [
        dt.datetime(2024, 2, 1, 9, 15),
        dt.datetime(2024, 2, 2, 16, 15),
    ]
    report = _report(db, public_id)
    internal = _organisation_key(organisation, report, KeyPurpose.INTERNAL)
    for note in db.scalars(select(Note)):
        assert NOTE_TEXT.encode() not in _raw_row(db, "note", note.id)
        context = crypto.context("report", public_id, "note", note.public_id)
        with pytest.raises(crypto.CryptoError):
            crypto.open_sealed(dek, note.body_sealed, context)
        assert crypto.open_sealed(internal, note.body_sealed, context)
    seen = reports.reporter_case(db, public_id, dek, policy)
    assert NOTE_TEXT not in repr(seen)
    assert "Second note." not in repr(seen)
    assert seen.messages == []


def test_the_note_of_a_departed_officer_keeps_its_text_without_an_author(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    public_id = _submit(db, store, keyring, policy).public_id
    cases.add_note(db, _actor(bob), public_id, NOTE_TEXT, _at(RECEIVED))
    db.commit()
    db.delete(bob.officer)
    db.commit()
    db.expire_all()

    case = cases.open_case(db, _actor(alice), public_id, policy, _at(RECEIVED))
    assert [(n.author, n.body) for n in case.notes] == [(None, NOTE_TEXT)]
    assert [o.display_name for o in case.readers] == ["Alice Officer"]


# --- access: grant and revoke -----------------------------------------------------------


def test_a_grant_gives_both_keys_so_the_new_reader_opens_everything(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    public_id = _submit(db, store, keyring, policy).public_id
    carol = make_officer("Carol Officer")  # joined later: holds no key yet
    cases.add_note(db, _actor(alice), public_id, NOTE_TEXT, _at(RECEIVED))
    cases.set_triage(
        db, _actor(alice), public_id, CATEGORY_TEXT, DetrimentRisk.MEDIUM, ACTIONS_TEXT, _at(RECEIVED)
    )
    report = _report(db, public_id)
    with pytest.raises(ReportNotFound):
        cases.open_case(db, _actor(carol), public_id, policy, _at(RECEIVED))
    before = cases.open_case(db, _actor(alice), public_id, policy, _at(RECEIVED))
    assert [o.display_name for o in before.can_be_granted] == ["Carol Officer"]

    cases.grant(db, _actor(alice), public_id, carol.officer.public_id, _at(dt.date(2024, 2, 1)))

    assert _wrapped_for(db, report, carol.officer) == {KeyPurpose.DATA, KeyPurpose.INTERNAL}
    db.expire_all()
    case = cases.open_case(db, _actor(carol), public_id, policy, _at(dt.date(2024, 2, 1)))
    assert case.answers == ANSWERS
    assert [n.body for n in case.notes] == [NOTE_TEXT]
    assert case.protective_actions == ACTIONS_TEXT
    assert [o.display_name for o in case.readers] == ["Alice Officer", "Carol Officer"]
    assert case.can_be_granted == []
    assert _ids(cases.list_cases(db, carol.officer, RECEIVED)) == [public_id]
    (granted,) = db.scalars(select(AuditEvent).where(AuditEvent.kind == "access_granted"))
    assert (granted.actor, granted.report, granted.subject) == (
        alice.officer.public_id,
        public_id,
        carol.officer.public_id,
    )


def test_granting_twice_changes_nothing(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    public_id = _submit(db, store, keyring, policy).public_id
    carol = make_officer("Carol Officer")
    report = _report(db, public_id)

    cases.grant(db, _actor(alice), public_id, carol.officer.public_id, _at(RECEIVED))
    wraps = db.scalars(select(KeyWrap.id).where(KeyWrap.report_id == report.id)).all()
    cases.grant(db, _actor(alice), public_id, carol.officer.public_id, _at(RECEIVED))
    cases.grant(db, _actor(carol), public_id, alice.officer.public_id, _at(RECEIVED))

    assert db.scalars(select(KeyWrap.id).where(KeyWrap.report_id == report.id)).all() == wraps
    assert _kinds(db)["access_granted"] == 1


def test_a_grant_never_reaches_an_officer_the_reporter_excluded(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    public_id = _submit(db, store, keyring, policy, _answers(bob)).public_id
    report = _report(db, public_id)
    assert cases.open_case(db, _actor(alice), public_id, policy, _at(RECEIVED)).can_be_granted == []

    with pytest.raises(OfficerExcluded):
        cases.grant(db, _actor(alice), public_id, bob.officer.public_id, _at(RECEIVED))

    assert _wrapped_for(db, report, bob.officer) == set()
    with pytest.raises(ReportNotFound):
        cases.open_case(db, _actor(bob), public_id, policy, _at(RECEIVED))
    assert _kinds(db)["access_granted"] == 0


def test_a_grant_to_an_unknown_or_deactivated_officer_is_refused(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    public_id = _submit(db, store, keyring, policy).public_id
    carol = make_officer("Carol Officer")
    carol.officer.is_active = False
    db.flush()
    assert cases.open_case(db, _actor(alice), public_id, policy, _at(RECEIVED)).can_be_granted == []

    for officer_id in (carol.officer.public_id, crypto.new_public_id(), ""):
        with pytest.raises(UnknownOfficer):
            cases.grant(db, _actor(alice), public_id, officer_id, _at(RECEIVED))

    assert _wrapped_for(db, _report(db, public_id), carol.officer) == set()
    assert _kinds(db)["access_granted"] == 0


def test_revoking_removes_both_keys_and_the_lead(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    public_id = _submit(db, store, keyring, policy).public_id
    report = _report(db, public_id)
    cases.assign(db, _actor(alice), public_id, bob.officer.public_id, _at(RECEIVED))

    cases.revoke(db, _actor(alice), public_id, bob.officer.public_id, _at(dt.date(2024, 2, 1)))

    db.expire_all()
    assert _wrapped_for(db, report, bob.officer) == set()
    assert _report(db, public_id).assignee_id is None
    assert cases.list_cases(db, bob.officer, RECEIVED).rows == []
    assert _counts(db, bob.officer, RECEIVED) == dict.fromkeys(cases.View, 0)
    with pytest.raises(ReportNotFound):
        cases.open_case(db, _actor(bob), public_id, policy, _at(dt.date(2024, 2, 1)))
    case = cases.open_case(db, _actor(alice), public_id, policy, _at(dt.date(2024, 2, 1)))
    assert [o.display_name for o in case.readers] == ["Alice Officer"]
    # Not excluded by the reporter, Bob can be given the case again.
    assert [o.display_name for o in case.can_be_granted] == ["Bob Officer"]
    (revoked,) = db.scalars(select(AuditEvent).where(AuditEvent.kind == "access_revoked"))
    assert (revoked.actor, revoked.report, revoked.subject) == (
        alice.officer.public_id,
        public_id,
        bob.officer.public_id,
    )


def test_revoking_someone_else_keeps_the_lead(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob, carol = (
        make_officer("Alice Officer"),
        make_officer("Bob Officer"),
        make_officer("Carol Officer"),
    )
    public_id = _submit(db, store, keyring, policy).public_id
    cases.assign(db, _actor(alice), public_id, alice.officer.public_id, _at(RECEIVED))

    cases.revoke(db, _actor(bob), public_id, carol.officer.public_id, _at(RECEIVED))

    db.expire_all()
    assert _report(db, public_id).assignee_id == alice.officer.id
    assert _wrapped_for(db, _report(db, public_id), carol.officer) == set()
    assert _wrapped_for(db, _report(db, public_id), bob.officer) == {KeyPurpose.DATA, KeyPurpose.INTERNAL}


def test_a_revoked_key_stays_revoked_when_the_case_is_changed_afterwards(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    public_id = _submit(db, store, keyring, policy).public_id
    report = _report(db, public_id)
    assert len(report.wraps) == 6  # loaded in this session, as a longer unit of work would have them

    cases.revoke(db, _actor(alice), public_id, bob.officer.public_id, _at(RECEIVED))
    cases.set_priority(db, _actor(alice), public_id, Priority.HIGH, _at(RECEIVED))
    cases.add_note(db, _actor(alice), public_id, NOTE_TEXT, _at(RECEIVED))
    db.commit()

    db.expire_all()
    assert _wrapped_for(db, _report(db, public_id), bob.officer) == set()


def test_the_last_reader_cannot_be_revoked_and_only_readers_can_be(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    public_id = _submit(db, store, keyring, policy, _answers(bob)).public_id
    carol = make_officer("Carol Officer")

    with pytest.raises(LastReader):
        cases.revoke(db, _actor(alice), public_id, alice.officer.public_id, _at(RECEIVED))
    for outsider in (bob, carol):
        with pytest.raises(UnknownOfficer):
            cases.revoke(db, _actor(alice), public_id, outsider.officer.public_id, _at(RECEIVED))
    with pytest.raises(UnknownOfficer):
        cases.revoke(db, _actor(alice), public_id, crypto.new_public_id(), _at(RECEIVED))

    assert _wrapped_for(db, _report(db, public_id), alice.officer) == {KeyPurpose.DATA, KeyPurpose.INTERNAL}
    assert _kinds(db)["access_revoked"] == 0


def test_the_last_active_reader_cannot_be_revoked(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    public_id = _submit(db, store, keyring, policy).public_id
    bob.officer.is_active = False  # Bob has left; his keys are still on the case
    db.flush()

    with pytest.raises(LastReader):
        cases.revoke(db, _actor(alice), public_id, alice.officer.public_id, _at(RECEIVED))


# --- an excluded officer sees nothing and can do nothing -------------------------------


def test_an_excluded_officer_finds_no_trace_in_any_list_or_count_and_reaches_nothing(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    # Kept from Bob: urgent, overdue, new, assigned to Alice.
    kept = _submit(
        db,
        store,
        keyring,
        policy,
        _answers(bob, immediate_risk="yes"),
        (_upload(FILE_NAME, b"evidence"),),
        today=dt.date(2024, 2, 1),
    ).public_id
    cases.assign(db, _actor(alice), kept, alice.officer.public_id, _at(dt.date(2024, 2, 1)))
    # One Bob can see, so that his lists are not empty by accident.
    visible = _submit(db, store, keyring, policy, today=dt.date(2024, 2, 27)).public_id
    report = _report(db, kept)
    attachment_id = report.attachments[0].public_id
    db.commit()
    before = _raw_row(db, "report", report.id)
    events_before = audit.count(db)

    for view in cases.View:
        assert kept not in _in_view(db, bob.officer, view, TODAY), view
        for sort in cases.Sort:
            assert kept not in _ids(cases.list_cases(db, bob.officer, TODAY, view=view, sort=sort))
    assert _counts(db, bob.officer, TODAY) == {
        cases.View.ALL: 1,
        cases.View.NEW: 1,
        cases.View.MINE: 0,
        cases.View.URGENT: 0,
        cases.View.DUE_SOON: 1,
        cases.View.OVERDUE: 0,
    }
    assert _ids(cases.list_cases(db, bob.officer, TODAY)) == [visible]

    b = _actor(bob)
    at = _at(TODAY)
    operations = {
        "open_case": lambda: cases.open_case(db, b, kept, policy, at),
        "reply": lambda: cases.reply(db, b, kept, REPLY_TEXT, at, is_feedback=True),
        "set_status": lambda: cases.set_status(db, b, kept, ReportStatus.INVESTIGATING, policy, at),
        "set_status closed": lambda: cases.set_status(db, b, kept, ReportStatus.CLOSED, policy, at),
        "close_case": lambda: cases.close_case(
            db, b, kept, Outcome.WITHDRAWN, SUMMARY_TEXT, policy, at, share_with_reporter=True
        ),
        "set_priority": lambda: cases.set_priority(db, b, kept, Priority.LOW, at),
        "assign": lambda: cases.assign(db, b, kept, bob.officer.public_id, at),
        "unassign": lambda: cases.assign(db, b, kept, None, at),
        "set_triage": lambda: cases.set_triage(db, b, kept, "x", DetrimentRisk.LOW, ACTIONS_TEXT, at),
        "add_note": lambda: cases.add_note(db, b, kept, NOTE_TEXT, at),
        "read_attachment": lambda: cases.read_attachment(db, store, b, kept, attachment_id, at),
        "grant self": lambda: cases.grant(db, b, kept, bob.officer.public_id, at),
        "revoke": lambda: cases.revoke(db, b, kept, alice.officer.public_id, at),
        "case_history": lambda: cases.case_history(db, b, kept),
    }
    for name, operation in operations.items():
        with pytest.raises(ReportNotFound):
            operation()
        db.flush()
        assert _raw_row(db, "report", report.id) == before, name

    assert audit.count(db) == events_before
    assert _wrapped_for(db, report, bob.officer) == set()
    assert db.scalars(select(AuditEvent).where(AuditEvent.actor == bob.officer.public_id)).all() == []


# --- what the audit log records -----------------------------------------------------------


def test_every_operation_writes_its_own_kind_of_audit_entry_and_never_content(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    submitted = _submit(db, store, keyring, policy, uploads=(_upload(FILE_NAME, b"evidence"),))
    public_id = submitted.public_id
    carol = make_officer("Carol Officer")
    attachment_id = _report(db, public_id).attachments[0].public_id
    a = _actor(alice)
    at = _at(dt.date(2024, 2, 1))
    assert audit.count(db) == 0, "submitting a report is not recorded: its time would date the reporter"

    cases.open_case(db, a, public_id, policy, at)
    cases.reply(db, a, public_id, REPLY_TEXT, at)
    cases.reply(db, a, public_id, FEEDBACK_TEXT, at, is_feedback=True)
    cases.set_status(db, a, public_id, ReportStatus.INVESTIGATING, policy, at)
    cases.set_status(db, a, public_id, ReportStatus.INVESTIGATING, policy, at)  # no change
    cases.set_priority(db, a, public_id, Priority.HIGH, at)
    cases.set_priority(db, a, public_id, Priority.HIGH, at)  # no change
    cases.assign(db, a, public_id, bob.officer.public_id, at)
    cases.set_triage(db, a, public_id, CATEGORY_TEXT, DetrimentRisk.MEDIUM, ACTIONS_TEXT, at)
    cases.add_note(db, a, public_id, NOTE_TEXT, at)
    _info, chunks = cases.read_attachment(db, store, a, public_id, attachment_id, at)
    assert b"".join(chunks) == b"evidence"
    cases.grant(db, a, public_id, carol.officer.public_id, at)
    cases.grant(db, a, public_id, carol.officer.public_id, at)  # no change
    cases.revoke(db, a, public_id, carol.officer.public_id, at)
    cases.close_case(
        db, a, public_id, Outcome.SUBSTANTIATED, SUMMARY_TEXT, policy, at, share_with_reporter=True
    )
    history = cases.case_history(db, a, public_id)
    db.commit()

    assert _kinds(db) == {
        "report_opened": 1,
        "message_sent": 2,
        "status_changed": 2,  # the first reply acknowledges; then investigating
        "priority_changed": 1,
        "assigned": 1,
        "triage_updated": 1,
        "note_added": 1,
        "attachment_downloaded": 1,
        "access_granted": 1,
        "access_revoked": 1,
        "case_closed": 1,
    }
    assert [e.kind for e in history] == [
        "report_opened",
        "message_sent",
        "status_changed",
        "message_sent",
        "status_changed",
        "priority_changed",
        "assigned",
        "triage_updated",
        "note_added",
        "attachment_downloaded",
        "access_granted",
        "access_revoked",
        "case_closed",
    ]
    events = db.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert {(e.actor, e.report) for e in events} == {(alice.officer.public_id, public_id)}
    assert [(e.kind, e.subject, e.detail) for e in events if e.subject or e.detail] == [
        ("status_changed", None, "acknowledged"),
        ("message_sent", None, "feedback"),
        ("status_changed", None, "investigating"),
        ("priority_changed", None, "high"),
        ("assigned", bob.officer.public_id, ""),
        ("triage_updated", None, "medium"),
        ("attachment_downloaded", attachment_id, ""),
        ("access_granted", carol.officer.public_id, ""),
        ("access_revoked", carol.officer.public_id, ""),
        ("case_closed", None, "substantiated"),
    ]
    assert audit.verify(db).ok

    markers = [
        REPLY_TEXT,
        FEEDBACK_TEXT,
        NOTE_TEXT,
        ACTIONS_TEXT,
        SUMMARY_TEXT,
        CATEGORY_TEXT,
        FILE_NAME,
        ANSWERS.what_happened,
        submitted.receipt,
    ]
    for event in events:
        stored = _raw_row(db, "audit_event", event.id)
        for marker in markers:
            assert marker.encode() not in stored, (event.kind, marker)
        assert b"Marker" not in stored, event.kind


def test_the_history_of_a_case_holds_its_own_entries_only(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    first = _submit(db, store, keyring, policy).public_id
    second = _submit(db, store, keyring, policy).public_id
    cases.open_case(db, _actor(alice), first, policy, _at(RECEIVED))
    cases.open_case(db, _actor(alice), second, policy, _at(RECEIVED))
    cases.add_note(db, _actor(alice), second, NOTE_TEXT, _at(RECEIVED))
    audit.record(db, "login", alice.officer.public_id, _at(RECEIVED).now)

    assert [(e.kind, e.report) for e in cases.case_history(db, _actor(alice), first)] == [
        ("report_opened", first)
    ]
    assert [e.kind for e in cases.case_history(db, _actor(alice), second)] == ["report_opened", "note_added"]


def test_the_actor_is_named_by_public_id_and_its_key_is_not_shown(make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    actor = _actor(alice)
    assert actor.name == alice.officer.public_id
    assert alice.private_key.hex() not in repr(actor)
    assert repr(alice.private_key) not in repr(actor)


def test_a_first_reply_acknowledges_a_new_report_and_a_later_one_changes_nothing(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    actor = _actor(make_officer("Alice Officer"))
    public_id, dek = reports.open_with_receipt(db, keyring, _submit(db, store, keyring, policy).receipt)

    cases.reply(db, actor, public_id, REPLY_TEXT, _at(dt.date(2024, 2, 1)))
    cases.reply(db, actor, public_id, REPLY_TEXT, _at(dt.date(2024, 2, 9)))

    seen = reports.reporter_case(db, public_id, dek, policy)
    assert (seen.status, seen.acknowledged_on) == (ReportStatus.ACKNOWLEDGED, dt.date(2024, 2, 1))
    assert seen.deadlines.feedback_by == dt.date(2024, 5, 1)
    assert [step for _text, step in seen.history] == [RECEIVED, dt.date(2024, 2, 1)]
