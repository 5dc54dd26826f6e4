"""Reports: submission, the reporter's way back in, and the officer's reading room."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

from dateutil.relativedelta import relativedelta
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.models import Author, KeyPurpose, KeyWrap, Message, Officer, Recipient, Report, ReportStatus
from whistle.services import attachments
from whistle.services.attachments import AttachmentInfo, Upload
from whistle.services.context import Keyring, Policy, derive_key
from whistle.services.errors import NobodyToRead, ReceiptNotFound, ReportNotFound, UnknownOfficer
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
    ReportStatus.IN_PROGRESS: "Being looked into",
    ReportStatus.CLOSED: "Closed",
}
STATUS_FOR_OFFICER = {
    ReportStatus.NEW: "New",
    ReportStatus.ACKNOWLEDGED: "Acknowledged",
    ReportStatus.IN_PROGRESS: "In progress",
    ReportStatus.CLOSED: "Closed",
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
    deadlines: Deadlines
    messages: list[ThreadMessage]
    attachments: list[AttachmentInfo]


@dataclass(frozen=True)
class OfficerCase:
    public_id: str
    received_on: dt.date
    status: ReportStatus
    status_changed_on: dt.date
    deadlines: Deadlines
    answers: Answers
    excluded_names: list[str]
    messages: list[ThreadMessage]
    attachments: list[AttachmentInfo]


@dataclass(frozen=True)
class ReportRow:
    public_id: str
    received_on: dt.date
    status: ReportStatus
    unread_reporter_messages: bool
    read: bool
    deadlines: Deadlines


@dataclass(frozen=True)
class Page:
    rows: list[ReportRow]
    number: int
    total: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


# --- deadlines ---------------------------------------------------------------


def deadlines(received_on: dt.date, acknowledged_on: dt.date | None, policy: Policy) -> Deadlines:
    """The two legal clocks: acknowledge within days, feedback within months."""
    acknowledge_by = received_on + dt.timedelta(days=policy.acknowledge_days)
    feedback_from = acknowledged_on or acknowledge_by
    return Deadlines(acknowledge_by, feedback_from + relativedelta(months=policy.feedback_months))


# --- associated data ---------------------------------------------------------


def _answers_context(public_id: str) -> bytes:
    return crypto.context("report", public_id, "answers")


def _receipt_context(public_id: str) -> bytes:
    return crypto.context("report", public_id, "dek", "receipt")


def message_context(public_id: str, message_id: str) -> bytes:
    return crypto.context("report", public_id, "message", message_id)


# --- submission --------------------------------------------------------------


def submit_report(
    db: Session,
    store: SealedStore,
    keyring: Keyring,
    policy: Policy,
    answers: Answers,
    uploads: Sequence[Upload],
    today: dt.date,
) -> Submitted:
    """Seal and store a new report; return the receipt, shown once and never kept."""
    readers = _readers(db, answers.excluded_officers)
    attachments.check_uploads(uploads, policy)

    public_id = crypto.new_public_id()
    dek, internal_key = crypto.new_key(), crypto.new_key()
    receipt = crypto.new_receipt()
    normalised = crypto.normalise_receipt(receipt)
    salt = crypto.new_salt()
    receipt_key = derive_key(normalised.encode(), salt, keyring.kdf)

    report = Report(
        public_id=public_id,
        receipt_lookup=crypto.receipt_lookup(keyring.pepper, normalised),
        dek_receipt_sealed=crypto.seal(receipt_key, dek, _receipt_context(public_id)),
        receipt_salt=salt,
        receipt_kdf=keyring.kdf.encode(),
        received_on=today,
        status=ReportStatus.NEW,
        status_changed_on=today,
        answers_sealed=crypto.seal(dek, json.dumps(asdict(answers)).encode(), _answers_context(public_id)),
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
    db.add(report)
    db.flush()
    files = [attachments.describe(report, dek, attachment) for attachment in sealed]
    return Submitted(receipt, public_id, today, deadlines(today, None, policy), files)


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

#: Salt for the derivation done when no report matches, so that every receipt
#: attempt costs the same and takes the same path.
_DUMMY_SALT = bytes(crypto.SALT_BYTES)


def open_with_receipt(db: Session, keyring: Keyring, receipt: str) -> tuple[str, bytes]:
    """Find a report by its receipt and unseal its data key.

    Unknown, mistyped and deleted receipts raise the same error after the same
    work: one lookup and one Argon2id derivation.
    """
    try:
        normalised = crypto.normalise_receipt(receipt)
    except crypto.InvalidCode:
        normalised = ""
    report = None
    if normalised:
        report = db.scalar(
            select(Report).where(Report.receipt_lookup == crypto.receipt_lookup(keyring.pepper, normalised))
        )
    if report is None:
        derive_key(normalised.encode() or b"-", _DUMMY_SALT, keyring.kdf)
        raise ReceiptNotFound()
    params = crypto.KdfParams.decode(report.receipt_kdf)
    receipt_key = derive_key(normalised.encode(), report.receipt_salt, params)
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
        deadlines=deadlines(report.received_on, report.acknowledged_on, policy),
        messages=_thread(report, dek, officer_names=False),
        attachments=[attachments.describe(report, dek, a) for a in report.attachments],
    )


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
        _add_message(report, dek, Author.REPORTER, None, body, today)
    report.attachments.extend(sealed)
    report.unread_reporter_messages = True
    db.flush()


def _add_message(
    report: Report, dek: bytes, author: Author, officer: Officer | None, body: str, today: dt.date
) -> None:
    message_id = crypto.new_public_id()
    report.messages.append(
        Message(
            public_id=message_id,
            author=author,
            officer=officer,
            sent_on=today,
            body_sealed=crypto.seal(dek, body.encode(), message_context(report.public_id, message_id)),
        )
    )


def _thread(report: Report, dek: bytes, *, officer_names: bool) -> list[ThreadMessage]:
    return [
        ThreadMessage(
            author=message.author,
            officer_name=message.officer.display_name if officer_names and message.officer else None,
            sent_on=message.sent_on,
            body=crypto.open_sealed(
                dek, message.body_sealed, message_context(report.public_id, message.public_id)
            ).decode(),
        )
        for message in report.messages
    ]


# --- the officer's reading room ----------------------------------------------


def _readable_by(officer: Officer) -> Select[Report]:
    return (
        select(Report)
        .join(KeyWrap, KeyWrap.report_id == Report.id)
        .where(KeyWrap.officer_id == officer.id, KeyWrap.purpose == KeyPurpose.DATA)
    )


def list_reports(db: Session, officer: Officer, policy: Policy, page: int, size: int) -> Page:
    """The reports this officer holds a key for, newest first; nothing is decrypted."""
    base = _readable_by(officer)
    total = db.scalar(select(func.count()).select_from(base.subquery())) or 0
    page = min(max(1, page), max(1, -(-total // size)))
    reports = db.scalars(
        base.order_by(Report.received_on.desc(), Report.id.desc()).offset((page - 1) * size).limit(size)
    )
    rows = [
        ReportRow(
            public_id=report.public_id,
            received_on=report.received_on,
            status=report.status,
            unread_reporter_messages=report.unread_reporter_messages,
            read=report.first_read_on is not None,
            deadlines=deadlines(report.received_on, report.acknowledged_on, policy),
        )
        for report in reports
    ]
    return Page(rows=rows, number=page, total=total, size=size)


def _officer_report(db: Session, officer: Officer, public_id: str) -> tuple[Report, KeyWrap]:
    row = db.execute(
        select(Report, KeyWrap)
        .join(KeyWrap, KeyWrap.report_id == Report.id)
        .where(
            Report.public_id == public_id,
            KeyWrap.officer_id == officer.id,
            KeyWrap.purpose == KeyPurpose.DATA,
        )
    ).one_or_none()
    if row is None:
        raise ReportNotFound(public_id)
    return row[0], row[1]


def _officer_dek(db: Session, officer: Officer, private_key: bytes, public_id: str) -> tuple[Report, bytes]:
    report, wrap = _officer_report(db, officer, public_id)
    info = crypto.wrap_info(report.public_id, KeyPurpose.DATA.value)
    return report, crypto.unwrap_key(private_key, wrap.key_wrapped, info)


def open_report(
    db: Session, officer: Officer, private_key: bytes, public_id: str, policy: Policy, today: dt.date
) -> OfficerCase:
    """Decrypt a report for an officer who holds its key, and mark it read."""
    report, dek = _officer_dek(db, officer, private_key, public_id)
    fields = json.loads(crypto.open_sealed(dek, report.answers_sealed, _answers_context(public_id)))
    answers = Answers(**{**fields, "excluded_officers": tuple(fields["excluded_officers"])})
    if report.first_read_on is None:
        report.first_read_on = today
    report.unread_reporter_messages = False
    excluded = set(answers.excluded_officers)
    excluded_names = [
        officer.display_name for officer in db.scalars(select(Officer).where(Officer.public_id.in_(excluded)))
    ]
    db.flush()
    return OfficerCase(
        public_id=report.public_id,
        received_on=report.received_on,
        status=report.status,
        status_changed_on=report.status_changed_on,
        deadlines=deadlines(report.received_on, report.acknowledged_on, policy),
        answers=answers,
        excluded_names=sorted(excluded_names),
        messages=_thread(report, dek, officer_names=True),
        attachments=[attachments.describe(report, dek, a) for a in report.attachments],
    )


def reply_as_officer(
    db: Session, officer: Officer, private_key: bytes, public_id: str, body: str, today: dt.date
) -> None:
    report, dek = _officer_dek(db, officer, private_key, public_id)
    _add_message(report, dek, Author.OFFICER, officer, body, today)
    db.flush()


def set_status(db: Session, officer: Officer, public_id: str, status: ReportStatus, today: dt.date) -> None:
    report, _wrap = _officer_report(db, officer, public_id)
    if report.status == status:
        return
    report.status = status
    report.status_changed_on = today
    if status is not ReportStatus.NEW and report.acknowledged_on is None:
        report.acknowledged_on = today
    db.flush()


def read_attachment(
    db: Session, store: SealedStore, officer: Officer, private_key: bytes, public_id: str, attachment_id: str
) -> tuple[AttachmentInfo, Iterator[bytes]]:
    """An attachment's description and its decrypted bytes, as a stream."""
    report, dek = _officer_dek(db, officer, private_key, public_id)
    attachment = attachments.find(report, attachment_id)
    return attachments.describe(report, dek, attachment), attachments.read(store, report, dek, attachment)
