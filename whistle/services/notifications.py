"""Email to officers when there is something to look at: never what it is.

``whistle notify`` (run from cron, e.g. every 15 minutes) tells each active
officer, in at most one email per run, that there is something for them in
Whistle: a new case they can read, a reporter's reply they have not opened, or
a deadline of one of their cases that is two days away or has passed. The
email says only that, with a link to the officer area; nothing is ever sent
about or to a reporter, and an officer is told only about cases they hold a
key for, so a reporter's exclusions hold here too.

What each officer was told about each case is kept in
:class:`~whistle.models.CaseNotice`, so the same thing is never sent twice.

Timing is itself information (threat 3 of DESIGN.md): an email sent minutes
after a reporter wrote would date what they did. So news that a reporter
caused (a new case, a reply) is held until the clock hour after the one it
was first noticed in, and only that hour is stored, until the email goes.
News that nobody caused at a moment (a deadline) goes at once, and carries
whatever else is waiting for that officer.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import ssl
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from whistle.models import (
    Attachment,
    Author,
    CaseNotice,
    KeyPurpose,
    KeyWrap,
    Message,
    Officer,
    Report,
    ReportStatus,
)
from whistle.services.context import Moment

SUBJECT = "Something to look at in Whistle"
TEXT = "You have something to look at in Whistle."
#: A deadline this close (or past) is worth an email.
DEADLINE_WARNING = dt.timedelta(days=2)


@dataclass(frozen=True)
class MailSettings:
    """How to reach the organisation's mail server. An empty host means notifications are off."""

    host: str = ""
    port: int = 587
    username: str = ""
    password: str = field(default="", repr=False)
    sender: str = ""
    starttls: bool = True
    timeout: float = 30.0

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class Notified:
    enabled: bool
    #: Emails the server accepted.
    sent: int = 0
    #: Emails that could not be sent; what they were for is tried again next run.
    failed: int = 0
    #: Officers with news a reporter caused, held to the next hour.
    waiting: int = 0


@dataclass
class _Case:
    """One case as one officer sees it, from clear workflow columns only."""

    report_id: int
    status: ReportStatus
    unread_reporter_messages: bool
    acknowledged_on: dt.date | None
    acknowledge_by: dt.date | None
    feedback_given_on: dt.date | None
    feedback_by: dt.date | None


@dataclass
class _Recipient:
    officer_id: int
    email: str
    send: bool = False
    waiting: bool = False
    marks: list[tuple[CaseNotice, _Case, str, int]] = field(default_factory=list)


def hour_of(moment: dt.datetime) -> dt.datetime:
    """The UTC hour a moment falls in: the only precision kept about reporter activity."""
    return _as_utc(moment).replace(minute=0, second=0, microsecond=0)


def _as_utc(moment: dt.datetime) -> dt.datetime:
    """SQLite gives back naive UTC, PostgreSQL an aware time: the same instant either way."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def deadline_state(case: _Case, today: dt.date) -> str:
    """The case's nearest legal deadline if it is within two days or past, e.g.
    ``acknowledge-overdue:2024-02-07``; empty when none is."""
    if case.status is ReportStatus.CLOSED:
        return ""
    for name, done, due in (
        ("acknowledge", case.acknowledged_on, case.acknowledge_by),
        ("feedback", case.feedback_given_on, case.feedback_by),
    ):
        if done is None and due is not None:
            if due < today:
                return f"{name}-overdue:{due.isoformat()}"
            if due <= today + DEADLINE_WARNING:
                return f"{name}-due:{due.isoformat()}"
            return ""
    return ""


def _candidates(db: Session, today: dt.date) -> list[tuple[int, str, _Case]]:
    """(officer id, email, case) for every active officer and every case of theirs that may need telling."""
    horizon = today + DEADLINE_WARNING
    might_need_telling = or_(
        Report.status == ReportStatus.NEW,
        Report.unread_reporter_messages,
        and_(
            Report.status != ReportStatus.CLOSED,
            or_(
                and_(Report.acknowledged_on.is_(None), Report.acknowledge_by <= horizon),
                and_(Report.feedback_given_on.is_(None), Report.feedback_by <= horizon),
            ),
        ),
    )
    rows = db.execute(
        select(
            Officer.id,
            Officer.email,
            Report.id,
            Report.status,
            Report.unread_reporter_messages,
            Report.acknowledged_on,
            Report.acknowledge_by,
            Report.feedback_given_on,
            Report.feedback_by,
        )
        .join(KeyWrap, KeyWrap.officer_id == Officer.id)
        .join(Report, Report.id == KeyWrap.report_id)
        .where(Officer.is_active, KeyWrap.purpose == KeyPurpose.DATA, might_need_telling)
        .order_by(Officer.id, Report.id)
    )
    return [(row[0], row[1], _Case(*row[2:])) for row in rows]


def _reporter_activity(db: Session, report_ids: Sequence[int]) -> dict[int, int]:
    """How many things (messages and files) the reporter has sent on each case."""
    counts: dict[int, int] = defaultdict(int)
    if not report_ids:
        return counts
    for model in (Message, Attachment):
        rows = db.execute(
            select(model.report_id, func.count(model.id))
            .where(model.author == Author.REPORTER, model.report_id.in_(report_ids))
            .group_by(model.report_id)
        )
        for report_id, count in rows:
            counts[report_id] += count
    return counts


def _notices(db: Session, report_ids: Sequence[int]) -> dict[tuple[int, int], CaseNotice]:
    if not report_ids:
        return {}
    return {
        (notice.officer_id, notice.report_id): notice
        for notice in db.scalars(select(CaseNotice).where(CaseNotice.report_id.in_(report_ids)))
    }


def plan(db: Session, at: Moment) -> list[_Recipient]:
    """Decide who gets an email this run, and note what reporter news is waiting for the next hour."""
    hour = hour_of(at.now)
    candidates = _candidates(db, at.today)
    unread = sorted({case.report_id for _o, _e, case in candidates if case.unread_reporter_messages})
    activity = _reporter_activity(db, unread)
    notices = _notices(db, sorted({case.report_id for _o, _e, case in candidates}))
    recipients: dict[int, _Recipient] = {}
    for officer_id, email, case in candidates:
        recipient = recipients.setdefault(officer_id, _Recipient(officer_id, email))
        notice = notices.get((officer_id, case.report_id))
        if notice is None:
            notice = CaseNotice(
                officer_id=officer_id,
                report_id=case.report_id,
                told_new=False,
                told_replies=0,
                told_deadline="",
            )
        sent_by_reporter = activity.get(case.report_id, 0)
        reporter_news = (case.status is ReportStatus.NEW and not notice.told_new) or (
            case.unread_reporter_messages and sent_by_reporter > notice.told_replies
        )
        deadline = deadline_state(case, at.today)
        if reporter_news:
            if notice.pending_since is None:
                notice.pending_since = hour
            if _as_utc(notice.pending_since) < hour:
                recipient.send = True
            else:
                recipient.waiting = True
        else:
            notice.pending_since = None
        if deadline and deadline != notice.told_deadline:
            recipient.send = True
        if reporter_news or (deadline and deadline != notice.told_deadline):
            if notice.id is None:
                db.add(notice)
            recipient.marks.append((notice, case, deadline, sent_by_reporter))
    db.flush()
    return list(recipients.values())


def _mark_told(recipient: _Recipient) -> None:
    """Everything this officer had waiting counts as told: the email covered all of it."""
    for notice, case, deadline, sent_by_reporter in recipient.marks:
        notice.told_new = notice.told_new or case.status is ReportStatus.NEW
        if case.unread_reporter_messages:
            notice.told_replies = max(notice.told_replies, sent_by_reporter)
        if deadline:
            notice.told_deadline = deadline
        notice.pending_since = None


RESET_SUBJECT = "Your Whistle password was reset"
RESET_TEXT = (
    "An administrator reset your password for Whistle, and with it the keys your account holds.\n"
    "If you did not ask for this, tell your organisation's Whistle lead at once: someone else may be\n"
    "using your account. Your old password and recovery key no longer open anything."
)


def email_for(
    mail: MailSettings, to: str, officer_area: str, subject: str = SUBJECT, text: str = TEXT
) -> EmailMessage:
    """An email Whistle sends: no case, no count, no kind of case event."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = mail.sender
    message["To"] = to
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=mail.sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(f"{text}\n\n{officer_area}\n")
    return message


def _connect(mail: MailSettings) -> smtplib.SMTP:
    smtp = smtplib.SMTP(mail.host, mail.port, timeout=mail.timeout)
    try:
        if mail.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if mail.username:
            smtp.login(mail.username, mail.password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def notify(db: Session, mail: MailSettings, officer_area: str, at: Moment) -> Notified:
    """Send this run's emails and record what they told. Off when no mail host is set."""
    if not mail.enabled:
        return Notified(enabled=False)
    recipients = plan(db, at)
    due = [recipient for recipient in recipients if recipient.send]
    waiting = sum(1 for recipient in recipients if recipient.waiting and not recipient.send)
    resets = list(db.scalars(select(Officer).where(Officer.reset_notice_due, Officer.is_active)))
    if not due and not resets:
        return Notified(enabled=True, waiting=waiting)
    sent = failed = told = 0
    try:
        smtp = _connect(mail)
    except (OSError, smtplib.SMTPException):
        return Notified(enabled=True, failed=len(due) + len(resets), waiting=waiting)
    try:
        for officer in resets:
            try:
                smtp.send_message(email_for(mail, officer.email, officer_area, RESET_SUBJECT, RESET_TEXT))
            except (OSError, smtplib.SMTPException):
                failed += 1
                continue
            officer.reset_notice_due = False
            sent += 1
        for recipient in due:
            try:
                smtp.send_message(email_for(mail, recipient.email, officer_area))
            except smtplib.SMTPServerDisconnected:
                failed += len(due) - told  # this one and every one not tried
                break
            except (OSError, smtplib.SMTPException):
                failed += 1
                continue
            _mark_told(recipient)
            sent += 1
            told += 1
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
    db.flush()
    return Notified(enabled=True, sent=sent, failed=failed, waiting=waiting)
