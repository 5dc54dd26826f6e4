"""The data model: typed SQLAlchemy 2.0 mappings, data only.

Columns ending in ``_sealed`` or ``_wrapped`` hold ciphertext; nothing a
reporter wrote, chose or uploaded is stored in any other column. What is in
clear is what officers need for the workflow (DESIGN.md): random public ids,
the day a report arrived, status and who holds a key.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Date, DateTime, Enum, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from whistle.db import Base


class ReportStatus(enum.StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"


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

    id: Mapped[int] = mapped_column(primary_key=True)
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

    def __repr__(self) -> str:
        return f"<Officer {self.public_id}>"


class Report(Base):
    __tablename__ = "report"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    #: HMAC-SHA256(pepper, receipt): how a returning reporter's report is found.
    receipt_lookup: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    #: The data key sealed under Argon2id(receipt, receipt_salt).
    dek_receipt_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    receipt_salt: Mapped[bytes] = mapped_column(LargeBinary(16))
    receipt_kdf: Mapped[str] = mapped_column(String(60))
    #: Day precision only: no reporter-side time of day is kept.
    received_on: Mapped[dt.date] = mapped_column(Date, index=True)
    status: Mapped[ReportStatus] = mapped_column(_enum(ReportStatus, "report_status"), index=True)
    status_changed_on: Mapped[dt.date] = mapped_column(Date)
    first_read_on: Mapped[dt.date | None] = mapped_column(Date)
    acknowledged_on: Mapped[dt.date | None] = mapped_column(Date)
    unread_reporter_messages: Mapped[bool] = mapped_column(default=False)
    #: Everything the reporter answered on the form (JSON), sealed under the data key.
    answers_sealed: Mapped[bytes] = mapped_column(LargeBinary)

    wraps: Mapped[list[KeyWrap]] = relationship(back_populates="report", cascade="all, delete-orphan")
    messages: Mapped[list[Message]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="Message.id"
    )
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="Attachment.id"
    )

    def __repr__(self) -> str:
        return f"<Report {self.public_id} {self.status}>"


class KeyWrap(Base):
    """A report key wrapped with HPKE for one officer or for the organisation."""

    __tablename__ = "key_wrap"
    __table_args__ = (UniqueConstraint("report_id", "recipient", "officer_id", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report.id", ondelete="CASCADE"), index=True)
    recipient: Mapped[Recipient] = mapped_column(_enum(Recipient, "recipient"))
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("officer.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[KeyPurpose] = mapped_column(_enum(KeyPurpose, "key_purpose"))
    key_wrapped: Mapped[bytes] = mapped_column(LargeBinary)

    report: Mapped[Report] = relationship(back_populates="wraps")

    def __repr__(self) -> str:
        return f"<KeyWrap report={self.report_id} {self.recipient} {self.purpose}>"


class Message(Base):
    __tablename__ = "message"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report.id", ondelete="CASCADE"), index=True)
    author: Mapped[Author] = mapped_column(_enum(Author, "author"))
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("officer.id", ondelete="SET NULL"))
    #: Day precision for every message, so the reporter's are not told apart by time.
    sent_on: Mapped[dt.date] = mapped_column(Date)
    body_sealed: Mapped[bytes] = mapped_column(LargeBinary)

    report: Mapped[Report] = relationship(back_populates="messages")
    officer: Mapped[Officer | None] = relationship()

    def __repr__(self) -> str:
        return f"<Message {self.public_id} by {self.author}>"


class Attachment(Base):
    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("report.id", ondelete="CASCADE"), index=True)
    author: Mapped[Author] = mapped_column(_enum(Author, "author"))
    uploaded_on: Mapped[dt.date] = mapped_column(Date)
    #: File name, content type and size (JSON), sealed under the data key.
    meta_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    #: The random name of the sealed file in the store.
    blob_name: Mapped[str] = mapped_column(String(64), unique=True)

    report: Mapped[Report] = relationship(back_populates="attachments")

    def __repr__(self) -> str:
        return f"<Attachment {self.public_id}>"


class ServerSession(Base):
    """The server-side half of a login: its data sealed under a key in the cookie."""

    __tablename__ = "server_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: SHA-256 of the session id that travels in the cookie.
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    kind: Mapped[SessionKind | None] = mapped_column(_enum(SessionKind, "session_kind"))
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("officer.id", ondelete="CASCADE"), index=True)
    #: When the row may be swept; a reporter's is coarse (see services.sessions).
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    data_sealed: Mapped[bytes] = mapped_column(LargeBinary)

    def __repr__(self) -> str:
        return f"<ServerSession {self.id} {self.kind}>"


class SetupToken(Base):
    """The one-time link that lets the first administrator set up an instance."""

    __tablename__ = "setup_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"<SetupToken {self.id}>"
