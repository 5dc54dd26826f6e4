"""Junk reports: a flood of them is closed in bulk, so that it does not bury real cases.

Anyone can send a report, and nothing may tell one sender from another, so a
script can fill the list with junk. An officer ticks the junk on the case list
and closes it in one go, with the outcome "junk": nothing is shared with the
reporter, each case is audited as closed like any other, and the statistics
count junk apart from real outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from whistle.models import Outcome, Report, ReportStatus
from whistle.services import cases
from whistle.services.context import Moment, Policy
from whistle.services.errors import ReportNotFound

#: How many cases one request may close (a page of the case list holds fewer).
MOST_AT_ONCE = 200
SUMMARY = "Closed as junk with other reports of a flood."


def close_as_junk(
    db: Session, actor: cases.Actor, public_ids: Sequence[str], policy: Policy, at: Moment
) -> int:
    """Close each of these cases that is open as junk (each audited as closed); return how many.

    A case the officer cannot open raises ``ReportNotFound`` (the web layer then rolls
    everything back), exactly as if it did not exist.
    """
    wanted = list(dict.fromkeys(public_ids))[:MOST_AT_ONCE]
    readable = cases.readable_by(actor.officer).with_only_columns(Report.public_id, Report.status)
    rows = db.execute(readable.where(Report.public_id.in_(wanted)))
    found = {public_id: status for public_id, status in rows}
    if unknown := [public_id for public_id in wanted if public_id not in found]:
        raise ReportNotFound(unknown[0])
    still_open = [public_id for public_id in wanted if found[public_id] is not ReportStatus.CLOSED]
    for public_id in still_open:
        cases.close_case(db, actor, public_id, Outcome.JUNK, SUMMARY, policy, at, share_with_reporter=False)
    return len(still_open)
