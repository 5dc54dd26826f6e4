"""Organisation recovery: the offline recovery key gives an officer back their cases.

For when officers have lost their passwords and recovery keys. The private
half of the organisation key is typed or read from a file at the command
line, used, and forgotten; it is never stored. Reporter exclusions still hold:
an officer a reporter excluded is never given that report.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle import audit, crypto
from whistle.models import KeyPurpose, KeyWrap, Officer, Recipient, Report
from whistle.services.cases import wrap_for
from whistle.services.context import Keyring
from whistle.services.errors import UnknownOfficer, WrongRecoveryKey
from whistle.services.reports import read_answers


@dataclass(frozen=True)
class Recovered:
    granted: int
    already_held: int
    excluded: int


def _organisation_keys(report: Report, private_key: bytes) -> dict[KeyPurpose, bytes]:
    keys = {}
    for wrap in report.wraps:
        if wrap.recipient is Recipient.ORGANISATION:
            info = crypto.wrap_info(report.public_id, wrap.purpose.value)
            keys[wrap.purpose] = crypto.unwrap_key(private_key, wrap.key_wrapped, info)
    return keys


def recover_access(
    db: Session, keyring: Keyring, organisation_private_key: bytes, email: str, now: dt.datetime
) -> Recovered:
    """Wrap every report's keys for this officer, except where the reporter excluded them."""
    if not hmac.compare_digest(
        crypto.public_key_of(organisation_private_key), keyring.organisation_public_key
    ):
        raise WrongRecoveryKey()
    officer = db.scalar(select(Officer).where(Officer.email == email.strip().lower(), Officer.is_active))
    if officer is None:
        raise UnknownOfficer(email)
    held = set(
        db.scalars(
            select(KeyWrap.report_id).where(
                KeyWrap.officer_id == officer.id, KeyWrap.purpose == KeyPurpose.DATA
            )
        )
    )
    granted = already = excluded = 0
    for report in db.scalars(select(Report).order_by(Report.id)):
        if report.id in held:
            already += 1
            continue
        keys = _organisation_keys(report, organisation_private_key)
        if officer.public_id in read_answers(report, keys[KeyPurpose.DATA]).excluded_officers:
            excluded += 1
            continue
        wrap_for(report, officer, keys)
        audit.record(
            db,
            "access_recovered",
            audit.COMMAND_LINE,
            now,
            report=report.public_id,
            subject=officer.public_id,
        )
        granted += 1
    db.flush()
    return Recovered(granted, already, excluded)
