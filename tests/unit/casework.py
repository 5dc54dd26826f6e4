"""Helpers for unit tests that walk cases through their life on given days."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle.models import DetrimentRisk, Outcome, Report, ReportStatus
from whistle.services import cases, reports
from whistle.services.attachments import Upload
from whistle.services.context import Keyring, Moment, Policy
from whistle.storage import SealedStore

from .conftest import OfficerKeys

MARKER = "Marker-7f3a: caseloads in the east team are far beyond safe limits"


def on(day: dt.date, hour: int = 10) -> Moment:
    return Moment(dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC), day)


def actor(keys: OfficerKeys) -> cases.Actor:
    return cases.Actor(keys.officer, keys.private_key)


def submit(
    db: Session,
    store: SealedStore,
    keyring: Keyring,
    policy: Policy,
    received: dt.date,
    *,
    files: Sequence[tuple[str, bytes]] = (),
    excluded: Sequence[OfficerKeys] = (),
    what_happened: str = MARKER,
) -> str:
    answers = reports.Answers(
        category="caseloads",
        what_happened=what_happened,
        excluded_officers=tuple(keys.officer.public_id for keys in excluded),
    )
    uploads = [Upload(name, "application/octet-stream", io.BytesIO(data)) for name, data in files]
    return reports.submit_report(db, store, keyring, policy, answers, uploads, received).public_id


def acknowledge(db: Session, by: OfficerKeys, public_id: str, day: dt.date, policy: Policy) -> None:
    cases.set_status(db, actor(by), public_id, ReportStatus.ACKNOWLEDGED, policy, on(day))


def categorise(db: Session, by: OfficerKeys, public_id: str, category: str, day: dt.date) -> None:
    cases.set_triage(db, actor(by), public_id, category, DetrimentRisk.LOW, "", on(day))


def close(
    db: Session,
    by: OfficerKeys,
    public_id: str,
    day: dt.date,
    policy: Policy,
    outcome: Outcome = Outcome.SUBSTANTIATED,
    *,
    share: bool = True,
) -> None:
    cases.close_case(
        db,
        actor(by),
        public_id,
        outcome,
        "Closing summary " + MARKER,
        policy,
        on(day),
        share_with_reporter=share,
    )


def report_row(db: Session, public_id: str) -> Report | None:
    return db.scalar(select(Report).where(Report.public_id == public_id))
