"""Retention: closed cases are deleted a set number of months after closing, unless on legal hold.

Deleting a case removes its sealed files from the store and its row, and with
the row every key wrap, message, attachment row, note, step of its history
and notification mark. What stays is an audit entry naming the report's
public id (no content) and the case's anonymous figures
(:class:`~whistle.models.ClosedCaseFigures`), so the board's statistics
survive. Running the purge twice deletes nothing more: it is safe from cron.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import asdict, dataclass

from dateutil.relativedelta import relativedelta
from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.orm import Session

from whistle import audit
from whistle.models import CaseNotice, ClosedCaseFigures, KeyPurpose, Report, ReportStatus, closed_case_reader
from whistle.services.cases import Actor, readable_by
from whistle.services.context import Moment, Policy
from whistle.services.errors import ReportNotFound
from whistle.services.statistics import figures_of
from whistle.storage import SealedStore


@dataclass(frozen=True)
class Purged:
    #: Cases deleted by this run.
    deleted: int
    #: Cases past the retention period that were kept because they are on legal hold.
    held: int


def deletion_cutoff(today: dt.date, retention_months: int) -> dt.date:
    """Cases closed on or before this day are due for deletion."""
    return today - relativedelta(months=retention_months)


def purge(db: Session, store: SealedStore, retention_months: int, policy: Policy, at: Moment) -> Purged:
    """Delete every closed case past the retention period that is not on legal hold."""
    due = and_(
        Report.status == ReportStatus.CLOSED,
        Report.closed_on.is_not(None),
        Report.closed_on <= deletion_cutoff(at.today, retention_months),
    )
    held = db.scalar(select(func.count(Report.id)).where(due, Report.legal_hold)) or 0
    # Locked, so that a legal hold set while the purge runs waits for it (PostgreSQL).
    doomed = list(
        db.scalars(
            select(Report).where(due, Report.legal_hold.is_(False)).order_by(Report.id).with_for_update()
        )
    )
    figures: list[tuple[ClosedCaseFigures, list[int]]] = []
    blob_names: list[str] = []
    for report in doomed:
        readers = [
            w.officer_id for w in report.wraps if w.officer_id is not None and w.purpose is KeyPurpose.DATA
        ]
        figures.append((ClosedCaseFigures(**asdict(figures_of(report, at.today, policy))), readers))
        blob_names.extend(attachment.blob_name for attachment in report.attachments)
        db.execute(delete(CaseNotice).where(CaseNotice.report_id == report.id))
        db.delete(report)
        audit.record(db, "report_deleted", audit.SYSTEM, at.now, report=report.public_id)
    # Stored in no particular order, so a row's place does not pair it with a deleted report.
    secrets.SystemRandom().shuffle(figures)
    db.add_all(kept for kept, _ in figures)
    db.flush()
    rows = [{"figures_id": kept.id, "officer_id": o} for kept, officers in figures for o in officers]
    if rows:
        db.execute(insert(closed_case_reader), rows)
    # The rows are gone from this transaction; the files go now. Should the
    # commit fail, the next run deletes the case again (a missing file is no error).
    for name in blob_names:
        store.delete(name)
    return Purged(deleted=len(doomed), held=held)


# --- legal hold ------------------------------------------------------------------


def _readable(db: Session, actor: Actor, public_id: str) -> Report:
    report = db.scalar(readable_by(actor.officer).where(Report.public_id == public_id))
    if report is None:
        raise ReportNotFound(public_id)
    return report


def on_legal_hold(db: Session, actor: Actor, public_id: str) -> bool:
    return _readable(db, actor, public_id).legal_hold


def set_legal_hold(db: Session, actor: Actor, public_id: str, hold: bool, at: Moment) -> bool:
    """Put a case on legal hold (never deleted) or release it; return whether anything changed."""
    report = _readable(db, actor, public_id)
    if report.legal_hold == hold:
        return False
    report.legal_hold = hold
    kind = "legal_hold_set" if hold else "legal_hold_released"
    audit.record(db, kind, actor.name, at.now, report=public_id)
    db.flush()
    return True
