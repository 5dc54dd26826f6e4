"""Statistics for the board: aggregates only, never a number that singles out a case.

The figures count the live cases the viewing officer can read (so a case a
reporter kept from them is never counted in their view) and the anonymous
figures kept for deleted cases (:class:`~whistle.models.ClosedCaseFigures`,
which belong to no one). Every count under :data:`SMALLEST_SHOWN` is shown
only as "fewer than 3"; where a table's total would then give that number
away by subtraction, one more count of the table is hidden with it. Medians
and shares taken over fewer than :data:`SMALLEST_SHOWN` cases are not shown.
"""

from __future__ import annotations

import datetime as dt
import statistics as stats
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle.models import ClosedCaseFigures, Officer, Outcome, Report, ReportStatus, closed_case_reader
from whistle.services.cases import OUTCOME_LABELS, readable_by
from whistle.services.context import Policy
from whistle.services.reports import deadlines

#: The smallest count shown as a number.
SMALLEST_SHOWN = 3
FEWER = f"fewer than {SMALLEST_SHOWN}"
HIDDEN = "not shown"
NOT_CATEGORISED = "Not categorised"
STILL_OPEN = "Not closed yet"
K = TypeVar("K")


@dataclass(frozen=True)
class CaseFigures:
    """The anonymous figures of one case: months and whole days, nothing that leads back to it."""

    received_month: str  # YYYY-MM
    officer_category: str | None
    outcome: str | None
    days_to_acknowledge: int | None
    days_to_close: int | None
    #: None while it cannot be said yet (the deadline has not passed on an open case).
    acknowledged_in_time: bool | None
    feedback_in_time: bool | None


def figures_of(report: Report, today: dt.date, policy: Policy) -> CaseFigures:
    """The figures of a case as it stands on ``today``."""
    return _figures(
        report.received_on,
        report.status,
        report.officer_category,
        report.outcome,
        report.acknowledged_on,
        report.acknowledge_by,
        report.feedback_given_on,
        report.feedback_by,
        report.closed_on,
        today=today,
        policy=policy,
    )


#: The clear workflow columns the figures are made from, in :func:`_figures`'s order.
_COLUMNS = (
    Report.received_on,
    Report.status,
    Report.officer_category,
    Report.outcome,
    Report.acknowledged_on,
    Report.acknowledge_by,
    Report.feedback_given_on,
    Report.feedback_by,
    Report.closed_on,
)


def _figures(
    received_on: dt.date,
    status: ReportStatus,
    officer_category: str | None,
    outcome: Outcome | None,
    acknowledged_on: dt.date | None,
    acknowledge_by: dt.date | None,
    feedback_given_on: dt.date | None,
    feedback_by: dt.date | None,
    closed_on: dt.date | None,
    *,
    today: dt.date,
    policy: Policy,
) -> CaseFigures:
    clocks = deadlines(received_on, acknowledged_on, policy)
    closed = status is ReportStatus.CLOSED and closed_on is not None
    return CaseFigures(
        received_month=received_on.strftime("%Y-%m"),
        officer_category=officer_category,
        outcome=outcome.value if closed and outcome else None,
        days_to_acknowledge=(acknowledged_on - received_on).days if acknowledged_on else None,
        days_to_close=(closed_on - received_on).days if closed and closed_on else None,
        acknowledged_in_time=_in_time(
            acknowledged_on, acknowledge_by or clocks.acknowledge_by, today, closed
        ),
        feedback_in_time=_in_time(feedback_given_on, feedback_by or clocks.feedback_by, today, closed),
    )


def _in_time(done_on: dt.date | None, due_by: dt.date, today: dt.date, closed: bool) -> bool | None:
    if done_on is not None:
        return done_on <= due_by
    if closed or due_by < today:
        return False
    return None


# --- what the board sees ----------------------------------------------------------


@dataclass(frozen=True)
class Count:
    """One line of a table. ``value`` is None when the number is not shown."""

    label: str
    value: int | None
    #: Why it is not shown: :data:`FEWER`, or :data:`HIDDEN` when it would give a small one away.
    withheld: str = ""

    @property
    def text(self) -> str:
        return str(self.value) if self.value is not None else self.withheld


@dataclass(frozen=True)
class Measure:
    """A median (days) or a share (per cent); None when too few cases lie behind it."""

    value: float | None

    @property
    def shown(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class BoardStatistics:
    year: int | None
    years: list[int]
    total: Count
    by_month: list[Count]
    by_category: list[Count]
    by_outcome: list[Count]
    median_days_to_acknowledge: Measure
    median_days_to_close: Measure
    #: Per cent of the cases whose deadline has passed that met it.
    acknowledged_in_time: Measure
    feedback_in_time: Measure


def _live_figures(db: Session, officer: Officer, today: dt.date, policy: Policy) -> list[CaseFigures]:
    """The figures of every live case this officer can read, from clear workflow columns only."""
    readable = readable_by(officer).with_only_columns(Report.id)
    rows = db.execute(select(*_COLUMNS).where(Report.id.in_(readable)))
    return [_figures(*row, today=today, policy=policy) for row in rows]


def _kept_figures(db: Session, officer: Officer) -> list[CaseFigures]:
    """The kept figures of deleted cases this officer could open when they were deleted."""
    theirs = select(closed_case_reader.c.figures_id).where(closed_case_reader.c.officer_id == officer.id)
    return [
        CaseFigures(
            received_month=row.received_month,
            officer_category=row.officer_category,
            outcome=row.outcome,
            days_to_acknowledge=row.days_to_acknowledge,
            days_to_close=row.days_to_close,
            acknowledged_in_time=row.acknowledged_in_time,
            feedback_in_time=row.feedback_in_time,
        )
        for row in db.scalars(select(ClosedCaseFigures).where(ClosedCaseFigures.id.in_(theirs)))
    ]


def board_statistics(
    db: Session, officer: Officer, today: dt.date, policy: Policy, *, year: int | None = None
) -> BoardStatistics:
    """The board's figures as this officer may see them, for one year or for all."""
    every = _live_figures(db, officer, today, policy) + _kept_figures(db, officer)
    years = sorted({int(f.received_month[:4]) for f in every}, reverse=True)
    cases = [f for f in every if year is None or f.received_month.startswith(f"{year:04d}-")]
    outcome_order = [*(o.value for o in Outcome), None]
    by_outcome = Counter(f.outcome for f in cases)
    return BoardStatistics(
        year=year,
        years=years,
        total=_count("All cases", len(cases)),
        by_month=_table(Counter(f.received_month for f in cases), _month_label),
        by_category=_table(
            Counter(f.officer_category or NOT_CATEGORISED for f in cases),
            str,
            order=lambda label: (label == NOT_CATEGORISED, label.casefold()),
        ),
        by_outcome=_table(
            by_outcome,
            _outcome_label,
            order=lambda value: outcome_order.index(value) if value in outcome_order else len(outcome_order),
        ),
        median_days_to_acknowledge=_median(f.days_to_acknowledge for f in cases),
        median_days_to_close=_median(f.days_to_close for f in cases),
        acknowledged_in_time=_share(f.acknowledged_in_time for f in cases),
        feedback_in_time=_share(f.feedback_in_time for f in cases),
    )


def _month_label(month: str) -> str:
    return dt.date(int(month[:4]), int(month[5:7]), 1).strftime("%B %Y")


def _outcome_label(value: str | None) -> str:
    if value is None:
        return STILL_OPEN
    try:
        return OUTCOME_LABELS[Outcome(value)]
    except ValueError:
        return value


def _count(label: str, value: int) -> Count:
    return Count(label, value) if value >= SMALLEST_SHOWN else Count(label, None, FEWER)


def _table(
    counts: Mapping[K, int], label: Callable[[K], str], order: Callable[[K], Any] | None = None
) -> list[Count]:
    """One table of counts: small ones withheld, and one more when subtraction would give one away."""
    keys = sorted(counts, key=order) if order else sorted(counts)  # type: ignore[type-var]
    values = [counts[key] for key in keys]
    withheld = [FEWER if value < SMALLEST_SHOWN else "" for value in values]
    if withheld.count(FEWER) == 1 and len(values) > 1:
        # The total is known (it is shown, or is the sum of another table), so a
        # single withheld count could be worked out: hide the smallest other one too.
        smallest = min((i for i, reason in enumerate(withheld) if not reason), key=lambda i: values[i])
        withheld[smallest] = HIDDEN
    return [
        Count(label(key), None if reason else value, reason)
        for key, value, reason in zip(keys, values, withheld, strict=True)
    ]


def _median(values: Iterable[int | None]) -> Measure:
    known = [value for value in values if value is not None]
    return Measure(float(stats.median(known)) if len(known) >= SMALLEST_SHOWN else None)


def _share(values: Iterable[bool | None]) -> Measure:
    known = [value for value in values if value is not None]
    if len(known) < SMALLEST_SHOWN:
        return Measure(None)
    return Measure(100.0 * sum(known) / len(known))
