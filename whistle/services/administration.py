"""What administrators do: invite and deactivate officers, see who can open how much,
and read the audit log. Nothing here decrypts a report."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from whistle import audit
from whistle.models import AuditEvent, KeyPurpose, KeyWrap, Officer, Report, ServerSession
from whistle.services.cases import readable_by
from whistle.services.errors import OfficerExists, UnknownOfficer
from whistle.services.officers import new_invitation, normalise_email


@dataclass(frozen=True)
class OfficerOverview:
    officer: Officer
    cases: int
    two_factor: bool


def officers_overview(db: Session, viewer: Officer) -> list[OfficerOverview]:
    """Every officer with the number of cases they can open: a count, never a list.

    Only cases the viewer can open themselves are counted: a colleague's larger
    count would tell an administrator a reporter excluded them from a case.
    """
    visible = readable_by(viewer).with_only_columns(Report.id)
    rows = db.execute(
        select(KeyWrap.officer_id, func.count(KeyWrap.id))
        .where(
            KeyWrap.purpose == KeyPurpose.DATA,
            KeyWrap.officer_id.is_not(None),
            KeyWrap.report_id.in_(visible),
        )
        .group_by(KeyWrap.officer_id)
    )
    counts = {officer_id: number for officer_id, number in rows}
    return [
        OfficerOverview(officer, counts.get(officer.id, 0), officer.totp_secret_sealed is not None)
        for officer in db.scalars(select(Officer).order_by(Officer.is_active.desc(), Officer.display_name))
    ]


def invite(
    db: Session, admin: Officer, email: str, display_name: str, is_admin: bool, now: dt.datetime
) -> str:
    """A one-time link (valid for a week) with which the new officer sets their password.

    Their key pair is made when they do, so the administrator never holds it.
    """
    email = normalise_email(email)
    if db.scalar(select(Officer.id).where(Officer.email == email)) is not None:
        raise OfficerExists(f"An officer with the email address {email} already exists.")
    token = new_invitation(db, email, display_name.strip(), is_admin, admin, now)
    role = "administrator" if is_admin else "officer"
    audit.record(db, "officer_invited", admin.public_id, now, detail=role)
    db.flush()
    return token


def set_active(db: Session, admin: Officer, officer_id: str, active: bool, now: dt.datetime) -> Officer:
    """Deactivate (or reactivate) an officer; deactivation ends their sessions at once."""
    officer = db.scalar(select(Officer).where(Officer.public_id == officer_id))
    if officer is None or officer.id == admin.id:
        raise UnknownOfficer(officer_id)
    if officer.is_active == active:
        return officer
    officer.is_active = active
    if not active:
        # Their keys to every case go with their sessions: a reactivated account (or a copy of
        # the database and their password) opens nothing until colleagues grant access again.
        for report_id in db.scalars(
            select(Report.public_id)
            .join(KeyWrap, KeyWrap.report_id == Report.id)
            .where(KeyWrap.officer_id == officer.id, KeyWrap.purpose == KeyPurpose.DATA)
        ):
            audit.record(db, "access_lost", admin.public_id, now, report=report_id, subject=officer.public_id)
        db.execute(delete(KeyWrap).where(KeyWrap.officer_id == officer.id))
        db.execute(delete(ServerSession).where(ServerSession.officer_id == officer.id))
    kind = "officer_reactivated" if active else "officer_deactivated"
    audit.record(db, kind, admin.public_id, now, subject=officer.public_id)
    db.flush()
    return officer


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    number: int
    total: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def audit_log(db: Session, viewer: Officer, page: int, size: int = 100) -> AuditPage:
    """The log, newest first, without entries about reports the viewer cannot open.

    Reporter exclusions hold here too: an administrator the reporter excluded
    sees no trace of that case.
    """
    visible = readable_by(viewer).with_only_columns(Report.public_id)
    query = select(AuditEvent).where(or_(AuditEvent.report.is_(None), AuditEvent.report.in_(visible)))
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = min(max(1, page), max(1, -(-total // size)))
    events = list(db.scalars(query.order_by(AuditEvent.id.desc()).offset((page - 1) * size).limit(size)))
    return AuditPage(events, page, total, size)
