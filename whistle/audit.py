"""The append-only, hash-chained audit log.

Every entry holds the hash of the one before it, so changing, removing or
reordering a row breaks the chain at that row; the count kept in
``audit_head`` shows rows removed from the end. Entries name who acted, the
kind of event and the report, never content. Reporter actions are not
recorded at all: an entry's time would date what the reporter did.

An entry keeps its day in clear; its exact time is sealed (HPKE) for the
organisation's offline recovery key, which ``whistle audit times`` uses to read
it when an investigation needs it. The key to seal for is read from the
database session's ``info`` (:data:`TIME_KEY`), which the app and the command
line set; without one, the exact time is not kept at all.

What the chain cannot do alone: someone who can rewrite the whole table can
rebuild a consistent chain. ``whistle audit verify`` prints the head hash so
that it can be noted somewhere else (a ticket, a printed log) and compared later.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.models import AuditEvent, AuditHead

GENESIS = bytes(32)
SYSTEM = "system"
COMMAND_LINE = "command line"
#: Where a database session carries the organisation's public key, for sealing exact times.
TIME_KEY = "audit_time_key"
_TIME_INFO = crypto.context("audit", "time")


def _utc_seconds(moment: dt.datetime) -> dt.datetime:
    """The same instant however the database hands it back (aware or naive UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0)


def entry_digest(previous: bytes, event: AuditEvent) -> bytes:
    if event.at is not None:  # an entry from before exact times were sealed
        when = _utc_seconds(event.at).isoformat()
    else:
        assert event.day is not None
        when = f"{event.day.isoformat()}/{(event.time_sealed or b'').hex()}"
    fields = [
        when,
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
    moment = _utc_seconds(now)
    time_key = db.info.get(TIME_KEY)
    event = AuditEvent(
        day=moment.date(),
        time_sealed=crypto.wrap_key(time_key, moment.isoformat().encode(), _TIME_INFO) if time_key else None,
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


def exact_time(private_key: bytes, event: AuditEvent) -> dt.datetime | None:
    """The exact time of an entry (UTC), opened with the organisation's private key; None where
    none was kept. Raises :class:`crypto.CryptoError` for another organisation's key."""
    if event.at is not None:
        return _utc_seconds(event.at).replace(tzinfo=dt.UTC)
    if event.time_sealed is None:
        return None
    opened = crypto.unwrap_key(private_key, event.time_sealed, _TIME_INFO).decode()
    return dt.datetime.fromisoformat(opened).replace(tzinfo=dt.UTC)


def exact_times(
    db: Session, private_key: bytes, *, report: str | None = None
) -> Iterator[tuple[AuditEvent, dt.datetime | None]]:
    """Every entry (or those about one report), oldest first, with its exact time."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if report is not None:
        query = query.where(AuditEvent.report == report)
    for event in db.scalars(query):
        yield event, exact_time(private_key, event)


def count(db: Session) -> int:
    return db.scalar(select(func.count(AuditEvent.id))) or 0
