"""The data model: typed SQLAlchemy 2.0 mappings, data only.

Columns ending in ``_sealed`` or ``_wrapped`` hold ciphertext; nothing a
reporter wrote, chose or uploaded is stored in any other column. What is in
clear is what officers need for the workflow (DESIGN.md): random public ids,
the day a report arrived, status and who holds a key.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    Column,
    Computed,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from whistle.db import Base, RandomId, random_id


class ReportStatus(enum.StrEnum):
    """The stages of ISO 37002: receive (new, acknowledged), assess, address, conclude."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    ASSESSING = "assessing"
    INVESTIGATING = "investigating"
    AWAITING_REPORTER = "awaiting_reporter"
    CLOSED = "closed"


class Outcome(enum.StrEnum):
    SUBSTANTIATED = "substantiated"
    PARTLY_SUBSTANTIATED = "partly_substantiated"
    NOT_SUBSTANTIATED = "not_substantiated"
    REFERRED = "referred"
    WITHDRAWN = "withdrawn"
    #: Not a genuine concern (a flood of junk reports, closed in bulk).
    JUNK = "junk"


class Priority(enum.StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class DetrimentRisk(enum.StrEnum):
    """ISO 37002 8.3.2: the risk that the reporter suffers for having spoken up."""

    NOT_ASSESSED = "not_assessed"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Author(enum.StrEnum):
    REPORTER = "reporter"
    OFFICER = "officer"


class Recipient(enum.StrEnum):
    OFFICER = "officer"
    ORGANISATION = "organisation"


class KeyPurpose(enum.StrEnum):
    DATA = "data"
    INTERNAL = "internal"


class SessionKind(enum.StrEnum):
    OFFICER = "officer"
    REPORTER = "reporter"


def _enum(kind: type[enum.Enum], name: str) -> Enum:
    return Enum(kind, name=name, native_enum=False, values_callable=lambda e: [m.value for m in e], length=20)


class Officer(Base):
    __tablename__ = "officer"

    id: Mapped[int] = mapped_column(RandomId, primary_key=True, default=random_id)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    is_admin: Mapped[bool] = mapped_column(default=False)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    #: The private key sealed under Argon2id(password, password_salt).
    private_key_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    password_salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    password_kdf: Mapped[str] = mapped_column(String(60))
    #: The private key sealed under a key derived from the one-time recovery code.
    private_key_recovery_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    recovery_salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    #: The TOTP secret, sealed under a key derived from the officer's private key.
    totp_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The last TOTP time step accepted, so a code cannot be used twice.
    totp_last_step: Mapped[int] = mapped_column(default=0, server_default="0")
    failed_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: An administrator reset this officer's password and keys; they are emailed about it once.
    reset_notice_due: Mapped[bool] = mapped_column(default=False, server_default=false())

    def __repr__(self) -> str:
        return f"<Officer {self.public_id}>"


#: Report rows open or closed (a literal, as the list's queries write it: see REPORT_INDEXES).
_OPEN = "status != 'closed'"
#: The nearest legal deadline a case has still to meet: none once it is closed or both are met.
#: The database computes it from the clocks (migration 0007), so no code path can leave it stale.
NEXT_DEADLINE = (
    "CASE WHEN status = 'closed' THEN NULL"
    " WHEN acknowledged_on IS NULL AND (feedback_given_on IS NOT NULL OR acknowledge_by <= feedback_by)"
    " THEN acknowledge_by"
    " WHEN feedback_given_on IS NULL THEN feedback_by END"
)
#: The case list's indexes (migrations 0006, 0007): each view's filter, then its order (key, id), so a
#: page is read from where the last ended. Partial ones hold open cases, or running deadlines.
REPORT_INDEXES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "ix_report_received": (("received_on", "id"), None),
    "ix_report_status_received": (("status", "received_on", "id"), None),
    "ix_report_priority_received": (("priority", "received_on", "id"), None),
    "ix_report_acknowledge_by_id": (("acknowledge_by", "id"), None),
    "ix_report_feedback_by_id": (("feedback_by", "id"), None),
    "ix_report_open_assignee": (("assignee_id", "received_on", "id"), _OPEN),
    "ix_report_open_priority": (("priority", "received_on", "id"), _OPEN),
    "ix_report_acknowledge_running": (("acknowledge_by", "id"), f"{_OPEN} AND acknowledged_on IS NULL"),
    "ix_report_feedback_running": (("feedback_by", "id"), f"{_OPEN} AND feedback_given_on IS NULL"),
    "ix_report_next_deadline": (("next_deadline", "id"), "next_deadline IS NOT NULL"),
}


def _index(name: str, columns: tuple[str, ...], where: str | None) -> Index:
    if where is None:
        return Index(name, *columns)
    return Index(name, *columns, sqlite_where=text(where), postgresql_where=text(where))


class Report(Base):
    __tablename__ = "report"
    __table_args__ = tuple(_index(name, *spec) for name, spec in REPORT_INDEXES.items())

    id: Mapped[int] = mapped_column(RandomId, primary_key=True, default=random_id)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    #: HMAC-SHA256(pepper, receipt): how a returning reporter's report is found.
    receipt_lookup: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    #: The data key sealed under Argon2id(receipt, receipt_salt).
    dek_receipt_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    receipt_salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    receipt_kdf: Mapped[str] = mapped_column(String(60))
    #: HMAC-SHA256(pepper, the one-time token of the form that sent it): a form sent again
    #: (a reload of the receipt page) is recognised and makes no second report.
    submission_lookup: Mapped[bytes | None] = mapped_column(LargeBinary(32), index=True, unique=True)
    #: Day precision only: no reporter-side time of day is kept.
    received_on: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[ReportStatus] = mapped_column(_enum(ReportStatus, "report_status"))
    status_changed_on: Mapped[dt.date] = mapped_column(Date)
    first_read_on: Mapped[dt.date | None] = mapped_column(Date)
    acknowledged_on: Mapped[dt.date | None] = mapped_column(Date)
    unread_reporter_messages: Mapped[bool] = mapped_column(default=False)
    #: Everything the reporter answered on the form (JSON), sealed under the data key.
    answers_sealed: Mapped[bytes] = mapped_column(LargeBinary)

    # Workflow fields set by officers: clear, so lists can filter and sort on them.
    priority: Mapped[Priority] = mapped_column(
        _enum(Priority, "priority"), default=Priority.NORMAL, server_default="normal"
    )
    #: Derived from the clocks, kept so that lists sort and filter on an index.
    acknowledge_by: Mapped[dt.date] = mapped_column(Date)
    feedback_by: Mapped[dt.date] = mapped_column(Date)
    #: The feedback period (months from acknowledgement) in force when the report arrived: the
    #: report keeps the deadlines it was given, whatever an administrator sets later.
    feedback_months: Mapped[int] = mapped_column(SmallInteger, server_default="3")
    #: The sooner of the two still to meet (:data:`NEXT_DEADLINE`): overdue and due-soon are one
    #: range of its index, read in the order an officer works through them.
    next_deadline: Mapped[dt.date | None] = mapped_column(Date, Computed(NEXT_DEADLINE, persisted=True))
    assignee_id: Mapped[int | None] = mapped_column(
        RandomId, ForeignKey("officer.id", ondelete="SET NULL"), index=True
    )
    officer_category: Mapped[str | None] = mapped_column(String(60))
    detriment_risk: Mapped[DetrimentRisk] = mapped_column(
        _enum(DetrimentRisk, "detriment_risk"),
        default=DetrimentRisk.NOT_ASSESSED,
        server_default="not_assessed",
    )
    #: Protective actions for the reporter, sealed under the internal key.
    protective_actions_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    outcome: Mapped[Outcome | None] = mapped_column(_enum(Outcome, "outcome"))
    closed_on: Mapped[dt.date | None] = mapped_column(Date, index=True)
    #: The closing summary (feedback), sealed under the data key so the reporter can read it.
    closing_summary_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    summary_shared: Mapped[bool] = mapped_column(default=False, server_default="0")
    #: The day an officer marked a reply as the feedback the law requires.
    feedback_given_on: Mapped[dt.date | None] = mapped_column(Date)
    #: A case on legal hold is never deleted by the retention rule.
    legal_hold: Mapped[bool] = mapped_column(default=False, server_default="0")

    assignee: Mapped[Officer | None] = relationship(foreign_keys=[assignee_id])
    labels: Mapped[list[Label]] = relationship(secondary="report_label", order_by="Label.name")
    history: Mapped[list[StatusChange]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="StatusChange.seq"
    )
    notes: Mapped[list[Note]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="Note.written_at"
    )

    wraps: Mapped[list[KeyWrap]] = relationship(back_populates="report", cascade="all, delete-orphan")
    messages: Mapped[list[Message]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="Message.sent_on"
    )
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="Attachment.uploaded_on"
    )

    def __repr__(self) -> str:
        return f"<Report {self.public_id} {self.status}>"


class KeyWrap(Base):
    """A report key wrapped with HPKE for one officer or for the organisation."""

    __tablename__ = "key_wrap"
    __table_args__ = (
        UniqueConstraint("report_id", "recipient", "officer_id", "purpose"),
        # An officer's keys, by purpose: what the case list's semi-join and counts read.
        Index("ix_key_wrap_officer", "officer_id", "purpose", "report_id"),
    )

    id: Mapped[int] = mapped_column(RandomId, primary_key=True, default=random_id)
    report_id: Mapped[int] = mapped_column(RandomId, ForeignKey("report.id", ondelete="CASCADE"), index=True)
    recipient: Mapped[Recipient] = mapped_column(_enum(Recipient, "recipient"))
    officer_id: Mapped[int | None] = mapped_column(RandomId, ForeignKey("officer.id", ondelete="CASCADE"))
    purpose: Mapped[KeyPurpose] = mapped_column(_enum(KeyPurpose, "key_purpose"))
    key_wrapped: Mapped[bytes] = mapped_column(LargeBinary)

    report: Mapped[Report] = relationship(back_populates="wraps")

    def __repr__(self) -> str:
        return f"<KeyWrap report={self.report_id} {self.recipient} {self.purpose}>"


class Message(Base):
    __tablename__ = "message"

    id: Mapped[int] = mapped_column(RandomId, primary_key=True, default=random_id)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    report_id: Mapped[int] = mapped_column(RandomId, ForeignKey("report.id", ondelete="CASCADE"), index=True)
    author: Mapped[Author] = mapped_column(_enum(Author, "author"))
    officer_id: Mapped[int | None] = mapped_column(RandomId, ForeignKey("officer.id", ondelete="SET NULL"))
    #: Day precision for every message, so the reporter's are not told apart by time.
    sent_on: Mapped[dt.date] = mapped_column(Date)
    body_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    #: The message's place in its conversation, sealed: in clear it would place a reporter's reply
    #: between two officer replies whose exact times are audited. Empty on messages written before
    #: positions were sealed, whose (increasing) keys still give their order.
    position_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)

    report: Mapped[Report] = relationship(back_populates="messages")
    officer: Mapped[Officer | None] = relationship()

    def __repr__(self) -> str:
        return f"<Message {self.public_id} by {self.author}>"


class Attachment(Base):
    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(RandomId, primary_key=True, default=random_id)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    report_id: Mapped[int] = mapped_column(RandomId, ForeignKey("report.id", ondelete="CASCADE"), index=True)
    author: Mapped[Author] = mapped_column(_enum(Author, "author"))
    uploaded_on: Mapped[dt.date] = mapped_column(Date)
    #: File name, content type and size (JSON), sealed under the data key.
    meta_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    #: The random name of the sealed file in the store.
    blob_name: Mapped[str] = mapped_column(String(64), unique=True)

    report: Mapped[Report] = relationship(back_populates="attachments")

    def __repr__(self) -> str:
        return f"<Attachment {self.public_id}>"


class StatusChange(Base):
    """A step of the case, shown to the reporter in plain words with its day."""

    __tablename__ = "status_change"

    id: Mapped[int] = mapped_column(RandomId, primary_key=True, default=random_id)
    report_id: Mapped[int] = mapped_column(RandomId, ForeignKey("report.id", ondelete="CASCADE"), index=True)
    status: Mapped[ReportStatus] = mapped_column(_enum(ReportStatus, "report_status"))
    changed_on: Mapped[dt.date] = mapped_column(Date)
    #: The step's place in its case's history (0 is the report arriving).
    seq: Mapped[int] = mapped_column(default=0, server_default="0")
    officer_id: Mapped[int | None] = mapped_column(RandomId, ForeignKey("officer.id", ondelete="SET NULL"))

    report: Mapped[Report] = relationship(back_populates="history")

    def __repr__(self) -> str:
        return f"<StatusChange {self.status} on {self.changed_on}>"


class Note(Base):
    """An officers' internal note, sealed under the report's internal key."""

    __tablename__ = "note"

    id: Mapped[int] = mapped_column(RandomId, primary_key=True, default=random_id)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    report_id: Mapped[int] = mapped_column(RandomId, ForeignKey("report.id", ondelete="CASCADE"), index=True)
    officer_id: Mapped[int | None] = mapped_column(RandomId, ForeignKey("officer.id", ondelete="SET NULL"))
    written_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    body_sealed: Mapped[bytes] = mapped_column(LargeBinary)

    report: Mapped[Report] = relationship(back_populates="notes")
    officer: Mapped[Officer | None] = relationship()

    def __repr__(self) -> str:
        return f"<Note {self.public_id}>"


class AuditEvent(Base):
    """One entry of the append-only, hash-chained audit log. Never any content."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The day of the entry (UTC), the finest time kept in clear: an exact officer time is an
    #: anchor against which a reporter's actions could be dated.
    day: Mapped[dt.date | None] = mapped_column(Date)
    #: The exact time, sealed for the organisation's offline recovery key (``whistle audit times``).
    time_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: The exact time in clear, of entries written before times were sealed; empty since.
    at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(40), index=True)
    #: Who acted: an officer's public id, or "system" / "command line".
    actor: Mapped[str] = mapped_column(String(40))
    #: The report concerned, by public id (kept after the report is deleted).
    report: Mapped[str | None] = mapped_column(String(32), index=True)
    #: Another officer concerned (a grant, a deactivation), by public id.
    subject: Mapped[str | None] = mapped_column(String(40))
    #: A short, content-free detail: a status name, a setting's name.
    detail: Mapped[str] = mapped_column(String(120), default="")
    previous_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    entry_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)

    def __repr__(self) -> str:
        return f"<AuditEvent {self.id} {self.kind}>"


class AuditHead(Base):
    """A single row locked by every append, so the chain never forks."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    entries: Mapped[int] = mapped_column(default=0)


class Invitation(Base):
    """A one-time link with which a new officer sets their password (and gets their keys)."""

    __tablename__ = "invitation"

    id: Mapped[int] = mapped_column(RandomId, primary_key=True, default=random_id)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    display_name: Mapped[str] = mapped_column(String(100))
    is_admin: Mapped[bool] = mapped_column(default=False)
    invited_by: Mapped[int | None] = mapped_column(RandomId, ForeignKey("officer.id", ondelete="SET NULL"))
    #: The officer a reset link is for; a link without one only ever makes a new officer.
    officer_id: Mapped[int | None] = mapped_column(RandomId, ForeignKey("officer.id", ondelete="CASCADE"))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"<Invitation {self.id}>"


class Setting(Base):
    """A setting administrators change in the app (organisation name, guidance, periods)."""

    __tablename__ = "setting"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    #: JSON text.
    value: Mapped[str] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<Setting {self.name}>"


report_label = Table(
    "report_label",
    Base.metadata,
    Column("report_id", RandomId, ForeignKey("report.id", ondelete="CASCADE"), primary_key=True),
    Column("label_id", RandomId, ForeignKey("label.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Label(Base):
    """A label officers define and put on cases (a workflow field, kept in clear)."""

    __tablename__ = "label"

    id: Mapped[int] = mapped_column(RandomId, primary_key=True, default=random_id)
    name: Mapped[str] = mapped_column(String(40), unique=True)

    def __repr__(self) -> str:
        return f"<Label {self.name}>"


class ClosedCaseFigures(Base):
    """The anonymous figures of a case, kept for statistics after the case is deleted.

    Months and whole days only, no id: nothing here leads back to a report.
    """

    __tablename__ = "closed_case_figures"

    id: Mapped[int] = mapped_column(RandomId, primary_key=True, default=random_id)
    received_month: Mapped[str] = mapped_column(String(7), index=True)  # YYYY-MM
    officer_category: Mapped[str | None] = mapped_column(String(60))
    outcome: Mapped[str | None] = mapped_column(String(30))
    days_to_acknowledge: Mapped[int | None]
    days_to_close: Mapped[int | None]
    acknowledged_in_time: Mapped[bool | None]
    feedback_in_time: Mapped[bool | None]

    def __repr__(self) -> str:
        return f"<ClosedCaseFigures {self.received_month}>"


#: Who could open a case when it was deleted: its kept figures count for them only, so an
#: officer the reporter excluded does not learn of the case from the statistics either.
closed_case_reader = Table(
    "closed_case_reader",
    Base.metadata,
    Column(
        "figures_id", RandomId, ForeignKey("closed_case_figures.id", ondelete="CASCADE"), primary_key=True
    ),
    Column(
        "officer_id", RandomId, ForeignKey("officer.id", ondelete="CASCADE"), primary_key=True, index=True
    ),
)


class ServerSession(Base):
    """The server-side half of a login: its data sealed under a key in the cookie."""

    __tablename__ = "server_session"

    id: Mapped[int] = mapped_column(RandomId, primary_key=True, default=random_id)
    #: SHA-256 of the session id that travels in the cookie.
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    kind: Mapped[SessionKind | None] = mapped_column(_enum(SessionKind, "session_kind"))
    officer_id: Mapped[int | None] = mapped_column(
        RandomId, ForeignKey("officer.id", ondelete="CASCADE"), index=True
    )
    #: When the row may be swept; a reporter's is coarse (see services.sessions).
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    data_sealed: Mapped[bytes] = mapped_column(LargeBinary)

    def __repr__(self) -> str:
        return f"<ServerSession {self.id} {self.kind}>"


class SetupToken(Base):
    """The one-time link that lets the first administrator set up an instance."""

    __tablename__ = "setup_token"

    id: Mapped[int] = mapped_column(RandomId, primary_key=True, default=random_id)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"<SetupToken {self.id}>"


class CaseNotice(Base):
    """What one officer has been emailed about one case, so that nothing is sent twice.

    Flags, a count and a deadline only: never content. The one time kept,
    ``pending_since``, is an hour (no minutes) and only until the email goes:
    it says when reporter activity was first noticed, so that the email is
    held to the next hour and its sending time dates the activity no closer.
    """

    __tablename__ = "case_notice"
    __table_args__ = (UniqueConstraint("officer_id", "report_id"),)

    id: Mapped[int] = mapped_column(RandomId, primary_key=True, default=random_id)
    officer_id: Mapped[int] = mapped_column(
        RandomId, ForeignKey("officer.id", ondelete="CASCADE"), index=True
    )
    report_id: Mapped[int] = mapped_column(RandomId, ForeignKey("report.id", ondelete="CASCADE"), index=True)
    #: The officer was told the case is new.
    told_new: Mapped[bool] = mapped_column(default=False, server_default="0")
    #: How many things the reporter had sent (messages and files) when the officer was last told.
    told_replies: Mapped[int] = mapped_column(default=0, server_default="0")
    #: The deadline state last told, e.g. "acknowledge-overdue:2024-02-07".
    told_deadline: Mapped[str] = mapped_column(String(40), default="", server_default="")
    #: The hour (UTC, minutes and seconds zero) reporter activity was first noticed; cleared once told.
    pending_since: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"<CaseNotice officer={self.officer_id} report={self.report_id}>"
