"""Reports: submission, the reporter's way back in, and the officer's reading room."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from dateutil.relativedelta import relativedelta
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.models import (
    Author,
    KeyPurpose,
    KeyWrap,
    Message,
    Officer,
    Outcome,
    Priority,
    Recipient,
    Report,
    ReportStatus,
    StatusChange,
)
from whistle.services import attachments
from whistle.services.attachments import AttachmentInfo, Upload
from whistle.services.context import Keyring, Policy, derive_key
from whistle.services.errors import (
    AlreadySubmitted,
    NobodyToRead,
    ReceiptNotFound,
    ReceiptTriedTooOften,
    ReportNotFound,
    UnknownOfficer,
)
from whistle.services.turns import Work
from whistle.storage import SealedStore

CATEGORIES = {
    "child_at_risk": "A child or young person at risk who is not being protected",
    "exploitation": "Child sexual exploitation",
    "caseloads": "Unsafe caseloads or staffing",
    "supervision": "Lack of supervision or support",
    "poor_practice": "Poor practice or falsified records",
    "reprisals": "Bullying or reprisals for raising concerns",
    "other": "Something else",
}
IMMEDIATE_RISK = {"yes": "Yes", "no": "No", "not_sure": "Not sure"}
RAISED_BEFORE = {"yes": "Yes", "no": "No"}

#: What the reporter sees of each status, in plain words.
STATUS_FOR_REPORTER = {
    ReportStatus.NEW: "Received, waiting to be looked at",
    ReportStatus.ACKNOWLEDGED: "Acknowledged by an officer",
    ReportStatus.ASSESSING: "An officer is assessing your concern",
    ReportStatus.INVESTIGATING: "Your concern is being looked into",
    ReportStatus.AWAITING_REPORTER: "An officer is waiting for your answer",
    ReportStatus.CLOSED: "Closed",
}
STATUS_FOR_OFFICER = {
    ReportStatus.NEW: "New",
    ReportStatus.ACKNOWLEDGED: "Acknowledged",
    ReportStatus.ASSESSING: "Assessing",
    ReportStatus.INVESTIGATING: "Investigating",
    ReportStatus.AWAITING_REPORTER: "Awaiting reporter",
    ReportStatus.CLOSED: "Closed",
}
#: What the reporter is told of how a case ended.
OUTCOME_FOR_REPORTER = {
    Outcome.SUBSTANTIATED: "Your concern was found to be substantiated.",
    Outcome.PARTLY_SUBSTANTIATED: "Your concern was found to be partly substantiated.",
    Outcome.NOT_SUBSTANTIATED: "Your concern was looked into and was not substantiated.",
    Outcome.REFERRED: "Your concern was referred to another body to deal with.",
    Outcome.WITHDRAWN: "The case was closed as withdrawn.",
    Outcome.JUNK: "The case was closed: it was not taken to be a genuine concern.",
}


@dataclass(frozen=True)
class Answers:
    """What a reporter writes and chooses on the form; all of it is sealed."""

    category: str
    what_happened: str
    when_where: str = ""
    immediate_risk: str = "not_sure"
    raised_before: str = "no"
    raised_before_result: str = ""
    excluded_officers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Deadlines:
    acknowledge_by: dt.date
    feedback_by: dt.date


@dataclass(frozen=True)
class Submitted:
    receipt: str
    public_id: str
    received_on: dt.date
    deadlines: Deadlines
    files: list[AttachmentInfo]


@dataclass(frozen=True)
class ThreadMessage:
    author: Author
    officer_name: str | None
    sent_on: dt.date
    body: str
    attachments: list[AttachmentInfo] = field(default_factory=list)


@dataclass(frozen=True)
class ReporterCase:
    public_id: str
    received_on: dt.date
    status: ReportStatus
    status_text: str
    status_changed_on: dt.date
    read_on: dt.date | None
    acknowledged_on: dt.date | None
    feedback_given_on: dt.date | None
    deadlines: Deadlines
    messages: list[ThreadMessage]
    attachments: list[AttachmentInfo]
    #: How many more files the case may hold.
    files_left: int = 0
    #: Each step of the case in plain words, with its day.
    history: list[tuple[str, dt.date]] = field(default_factory=list)
    outcome_text: str = ""
    closing_summary: str = ""
    #: What the reporter sent, opened with their own key, so they can read it again.
    answers: Answers | None = None


# --- deadlines ---------------------------------------------------------------


def deadlines(received_on: dt.date, acknowledged_on: dt.date | None, policy: Policy) -> Deadlines:
    """The two legal clocks: acknowledge within days, feedback within months of
    acknowledging (or of the acknowledgement deadline, if it never came)."""
    acknowledge_by = received_on + dt.timedelta(days=policy.acknowledge_days)
    feedback_from = acknowledged_on or acknowledge_by
    return Deadlines(acknowledge_by, feedback_from + relativedelta(months=policy.feedback_months))


def refresh_clocks(report: Report) -> None:
    """Keep the stored feedback deadline in step with the case (lists filter and sort on it).

    Both clocks run on what the report was given when it arrived: the day to acknowledge
    by never moves, and feedback is due the report's own period after acknowledgement.
    """
    report.feedback_by = (report.acknowledged_on or report.acknowledge_by) + relativedelta(
        months=report.feedback_months
    )


def given_deadlines(report: Report) -> Deadlines:
    """The deadlines a report holds, as stored."""
    return Deadlines(report.acknowledge_by, report.feedback_by)


# --- associated data ---------------------------------------------------------


def answers_context(public_id: str) -> bytes:
    return crypto.context("report", public_id, "answers")


def _receipt_context(public_id: str) -> bytes:
    return crypto.context("report", public_id, "dek", "receipt")


def message_context(public_id: str, message_id: str) -> bytes:
    return crypto.context("report", public_id, "message", message_id)


# --- submission --------------------------------------------------------------


def new_form_token() -> str:
    """The one-time token a report form carries, so that sending it twice makes one report."""
    return crypto.new_token()


def _already_submitted(db: Session, lookup: bytes) -> bool:
    return db.scalar(select(Report.id).where(Report.submission_lookup == lookup)) is not None


def submit_report(
    db: Session,
    store: SealedStore,
    keyring: Keyring,
    policy: Policy,
    answers: Answers,
    uploads: Sequence[Upload],
    today: dt.date,
    form_token: str | None = None,
) -> Submitted:
    """Seal and store a new report; return the receipt, shown once and never kept.

    A form sent again with the same ``form_token`` (a reload of the receipt page) raises
    :class:`AlreadySubmitted` and makes no second report, even when both arrive at once.
    """
    lookup = crypto.submission_lookup(keyring.pepper, form_token) if form_token else None
    if lookup is not None and _already_submitted(db, lookup):
        raise AlreadySubmitted()
    readers = _readers(db, answers.excluded_officers)
    attachments.check_uploads(uploads, policy)

    public_id = crypto.new_public_id()
    dek, internal_key = crypto.new_key(), crypto.new_key()
    receipt = crypto.new_receipt()
    normalised = crypto.normalise_receipt(receipt)
    salt = crypto.new_salt()
    receipt_key = derive_key(normalised.encode(), salt, keyring.kdf, Work.REPORT)

    report = Report(
        public_id=public_id,
        receipt_lookup=crypto.receipt_lookup(keyring.pepper, normalised),
        submission_lookup=lookup,
        dek_receipt_sealed=crypto.seal(receipt_key, dek, _receipt_context(public_id)),
        receipt_salt=salt,
        receipt_kdf=keyring.kdf.encode(),
        received_on=today,
        status=ReportStatus.NEW,
        status_changed_on=today,
        # A report that says someone may be at immediate risk arrives as urgent.
        # Never from the sealed answers: a priority in clear would tell a copy of the database
        # what the reporter said about immediate risk. The officer who reads it is asked to set it.
        priority=Priority.NORMAL,
        answers_sealed=crypto.seal_padded(
            dek, json.dumps(asdict(answers)).encode(), answers_context(public_id)
        ),
    )
    for purpose, key in ((KeyPurpose.DATA, dek), (KeyPurpose.INTERNAL, internal_key)):
        info = crypto.wrap_info(public_id, purpose.value)
        report.wraps.append(
            KeyWrap(
                recipient=Recipient.ORGANISATION,
                purpose=purpose,
                key_wrapped=crypto.wrap_key(keyring.organisation_public_key, key, info),
            )
        )
        for officer in readers:
            report.wraps.append(
                KeyWrap(
                    recipient=Recipient.OFFICER,
                    officer_id=officer.id,
                    purpose=purpose,
                    key_wrapped=crypto.wrap_key(officer.public_key, key, info),
                )
            )
    sealed = attachments.seal_uploads(store, report, dek, uploads, Author.REPORTER, policy, today)
    report.attachments.extend(sealed)
    report.history.append(StatusChange(status=ReportStatus.NEW, changed_on=today, seq=0))
    report.acknowledge_by = today + dt.timedelta(days=policy.acknowledge_days)
    report.feedback_months = policy.feedback_months
    refresh_clocks(report)
    db.add(report)
    try:
        db.flush()
    except IntegrityError:
        # The same form, sent twice at once: the other sending made the report.
        db.rollback()
        if lookup is not None and _already_submitted(db, lookup):
            raise AlreadySubmitted() from None
        raise
    files = [attachments.describe(report, dek, attachment) for attachment in sealed]
    return Submitted(receipt, public_id, today, given_deadlines(report), files)


def _readers(db: Session, excluded_ids: Sequence[str]) -> list[Officer]:
    """The active officers who get a key: everyone the reporter did not exclude."""
    officers = list(db.scalars(select(Officer).where(Officer.is_active).order_by(Officer.id)))
    known = {officer.public_id for officer in officers}
    if not set(excluded_ids) <= known:
        raise UnknownOfficer("an excluded officer is not one of the officers")
    readers = [officer for officer in officers if officer.public_id not in excluded_ids]
    if officers and not readers:
        raise NobodyToRead("at least one officer must be able to read the report")
    return readers


# --- the reporter's way back -------------------------------------------------


def _any_report(_public_id: str) -> bool:
    return True


def open_with_receipt(
    db: Session, keyring: Keyring, receipt: str, may_try: Callable[[str], bool] = _any_report
) -> tuple[str, bytes]:
    """Find a report by its receipt and unseal its data key.

    Unknown, mistyped and deleted receipts raise the same error. A receipt that
    matches no report costs no Argon2id derivation: the report is found by
    HMAC(pepper, receipt), and a receipt has 80 random bits, so nobody can learn
    anything by timing a miss (there is nothing near to find), while a flood of
    guesses costs the server one HMAC and one indexed lookup each.

    ``may_try(report public id)`` says whether a found report may be opened now
    (the web layer's limit on tries of one report, which then costs a derivation
    each); if not, :class:`ReceiptTriedTooOften` is raised. Only someone who holds
    the right receipt can meet it.
    """
    try:
        normalised = crypto.normalise_receipt(receipt)
    except crypto.InvalidCode as exc:
        raise ReceiptNotFound() from exc
    report = db.scalar(
        select(Report).where(Report.receipt_lookup == crypto.receipt_lookup(keyring.pepper, normalised))
    )
    if report is None:
        raise ReceiptNotFound()
    if not may_try(report.public_id):
        raise ReceiptTriedTooOften(report.public_id)
    params = crypto.KdfParams.decode(report.receipt_kdf)
    receipt_key = derive_key(normalised.encode(), report.receipt_salt, params, Work.RECEIPT)
    try:
        dek = crypto.open_sealed(receipt_key, report.dek_receipt_sealed, _receipt_context(report.public_id))
    except crypto.CryptoError as exc:
        raise ReceiptNotFound() from exc
    return report.public_id, dek


def _report(db: Session, public_id: str) -> Report:
    report = db.scalar(select(Report).where(Report.public_id == public_id))
    if report is None:
        raise ReportNotFound(public_id)
    return report


def reporter_case(db: Session, public_id: str, dek: bytes, policy: Policy) -> ReporterCase:
    """What the reporter sees when they come back: status, dates and the thread."""
    report = _report(db, public_id)
    return ReporterCase(
        public_id=report.public_id,
        received_on=report.received_on,
        status=report.status,
        status_text=STATUS_FOR_REPORTER[report.status],
        status_changed_on=report.status_changed_on,
        read_on=report.first_read_on,
        acknowledged_on=report.acknowledged_on,
        feedback_given_on=report.feedback_given_on,
        deadlines=given_deadlines(report),
        messages=thread(report, dek, officer_names=False),
        attachments=attachments.describe_all(report, dek),
        files_left=attachments.files_left(policy, len(report.attachments)),
        history=[(STATUS_FOR_REPORTER[change.status], change.changed_on) for change in report.history],
        outcome_text=OUTCOME_FOR_REPORTER[report.outcome] if report.outcome and report.summary_shared else "",
        closing_summary=_shared_summary(report, dek),
        answers=read_answers(report, dek),
    )


def summary_context(public_id: str) -> bytes:
    return crypto.context("report", public_id, "closing-summary")


def _shared_summary(report: Report, dek: bytes) -> str:
    if not (report.summary_shared and report.closing_summary_sealed):
        return ""
    return crypto.open_sealed(dek, report.closing_summary_sealed, summary_context(report.public_id)).decode()


def read_answers(report: Report, dek: bytes) -> Answers:
    fields = json.loads(crypto.open_sealed(dek, report.answers_sealed, answers_context(report.public_id)))
    return Answers(**{**fields, "excluded_officers": tuple(fields["excluded_officers"])})


def follow_up_bucket(dek: bytes) -> str:
    """The name of a case's counter of follow-ups in the rate limiter's storage.

    That storage holds the time of each post for a while; named by a value only the
    case's key gives, it tells a copy of the server nothing about whose posts they were.
    """
    return crypto.expand_key(dek, b"", b"follow-up rate limit").hex()[:32]


def add_reporter_message(
    db: Session,
    store: SealedStore,
    policy: Policy,
    public_id: str,
    dek: bytes,
    body: str,
    uploads: Sequence[Upload],
    today: dt.date,
) -> None:
    """The reporter answers or adds evidence; officers see there is something new."""
    report = _report(db, public_id)
    sealed = attachments.seal_uploads(store, report, dek, uploads, Author.REPORTER, policy, today)
    if body:
        add_message(report, dek, Author.REPORTER, None, body, today)
    report.attachments.extend(sealed)
    report.unread_reporter_messages = True
    db.flush()


def add_message(
    report: Report, dek: bytes, author: Author, officer: Officer | None, body: str, today: dt.date
) -> None:
    message_id = crypto.new_public_id()
    report.messages.append(
        Message(
            public_id=message_id,
            author=author,
            officer=officer,
            sent_on=today,
            body_sealed=crypto.seal_padded(dek, body.encode(), message_context(report.public_id, message_id)),
            position_sealed=seal_position(dek, report.public_id, message_id, len(report.messages)),
        )
    )


def _position_context(report_public_id: str, message_id: str) -> bytes:
    return message_context(report_public_id, message_id) + b"/position"


def seal_position(dek: bytes, report_public_id: str, message_id: str, position: int) -> bytes:
    """A message's place in its conversation (0 for the first), sealed under the report's key."""
    return crypto.seal(dek, str(position).encode(), _position_context(report_public_id, message_id))


def _place(report: Report, dek: bytes, message: Message) -> tuple[int, int]:
    """Where a message stands in its conversation: earlier messages without a sealed position
    (their keys were given in order then) first, by key; then every other by its position."""
    if message.position_sealed is None:
        return (0, message.id)
    context = _position_context(report.public_id, message.public_id)
    return (1, int(crypto.open_sealed(dek, message.position_sealed, context)))


def thread(report: Report, dek: bytes, *, officer_names: bool) -> list[ThreadMessage]:
    return [
        ThreadMessage(
            author=message.author,
            officer_name=message.officer.display_name if officer_names and message.officer else None,
            sent_on=message.sent_on,
            body=crypto.open_sealed(
                dek, message.body_sealed, message_context(report.public_id, message.public_id)
            ).decode(),
        )
        for message in sorted(report.messages, key=lambda message: _place(report, dek, message))
    ]
