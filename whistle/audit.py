"""The append-only, hash-chained audit log.

Every entry holds the hash of the one before it, so changing, removing or
reordering a row breaks the chain at that row; the count kept in
``audit_head`` shows rows removed from the end. Entries name who acted, the
kind of event and the report, never content. Reporter actions are not
recorded at all: an entry's time would date what the reporter did.

What the chain cannot do alone: someone who can rewrite the whole table can
rebuild a consistent chain. ``whistle audit verify`` prints the head hash so
that it can be noted somewhere else (a ticket, a printed log) and compared later.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from whistle.models import AuditEvent, AuditHead

GENESIS = bytes(32)
SYSTEM = "system"
COMMAND_LINE = "command line"


def _utc_seconds(moment: dt.datetime) -> dt.datetime:
    """The same instant however the database hands it back (aware or naive UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0)


def entry_digest(previous: bytes, event: AuditEvent) -> bytes:
    fields = [
        _utc_seconds(event.at).isoformat(),
        event.kind,
        event.actor,
        event.report,
        event.subject,
        event.detail,
    ]
    return hashlib.sha256(previous + json.dumps(fields, separators=(",", ":")).encode()).digest()


def record(
    db: Session,
    kind: str,
    actor: str,
    now: dt.datetime,
    *,
    report: str | None = None,
    subject: str | None = None,
    detail: str = "",
) -> AuditEvent:
    """Append an entry. Taking the head row's lock first serialises writers."""
    locked = db.execute(update(AuditHead).where(AuditHead.id == 1).values(entries=AuditHead.entries + 1))
    if locked.rowcount != 1:  # type: ignore[attr-defined]
        raise RuntimeError("the audit log's head row is missing: run `whistle db upgrade`")
    previous = db.scalar(select(AuditEvent.entry_hash).order_by(AuditEvent.id.desc()).limit(1)) or GENESIS
    event = AuditEvent(
        at=_utc_seconds(now).replace(tzinfo=dt.UTC),
        kind=kind,
        actor=actor,
        report=report,
        subject=subject,
        detail=detail[:120],
        previous_hash=previous,
    )
    event.entry_hash = entry_digest(previous, event)
    db.add(event)
    db.flush()
    return event


@dataclass(frozen=True)
class Verdict:
    entries: int
    head: bytes
    #: The id of the first entry that does not fit the chain, if any.
    first_bad: int | None = None
    #: Set when entries are missing from the end of the log.
    missing_at_end: int = 0

    @property
    def ok(self) -> bool:
        return self.first_bad is None and self.missing_at_end == 0


def verify(db: Session) -> Verdict:
    previous = GENESIS
    count = 0
    for event in db.scalars(select(AuditEvent).order_by(AuditEvent.id)):
        count += 1
        if event.previous_hash != previous or event.entry_hash != entry_digest(previous, event):
            return Verdict(count, previous, first_bad=event.id)
        previous = event.entry_hash
    expected = db.scalar(select(AuditHead.entries).where(AuditHead.id == 1)) or 0
    return Verdict(count, previous, missing_at_end=max(0, expected - count))


def count(db: Session) -> int:
    return db.scalar(select(func.count(AuditEvent.id))) or 0
