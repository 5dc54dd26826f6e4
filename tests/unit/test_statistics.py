"""Statistics for the board: aggregates only, small numbers withheld, exclusions respected."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from whistle.models import ClosedCaseFigures, Outcome, closed_case_reader
from whistle.services import statistics
from whistle.services.context import Policy
from whistle.services.statistics import FEWER, HIDDEN, Count
from whistle.storage import SealedStore

from .casework import acknowledge, categorise, close, submit

if TYPE_CHECKING:
    from .conftest import MakeOfficer, OfficerKeys, Organisation

TODAY = dt.date(2024, 12, 2)


@pytest.fixture
def alice(make_officer: MakeOfficer) -> OfficerKeys:
    return make_officer("Alice Officer")


def _cases(
    db: Session,
    store: SealedStore,
    organisation: Organisation,
    policy: Policy,
    alice: OfficerKeys,
    received: dt.date,
    count: int,
    *,
    category: str = "",
    excluded: tuple[OfficerKeys, ...] = (),
) -> list[str]:
    ids = []
    for _ in range(count):
        public_id = submit(db, store, organisation.keyring, policy, received, excluded=excluded)
        if category:
            categorise(db, alice, public_id, category, received)
        ids.append(public_id)
    return ids


def _table(counts: list[Count]) -> dict[str, str]:
    return {count.label: count.text for count in counts}


def test_counts_under_three_are_shown_as_fewer_than_three(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    _cases(db, store, organisation, policy, alice, dt.date(2024, 3, 4), 4, category="Staffing")
    _cases(db, store, organisation, policy, alice, dt.date(2024, 4, 8), 3, category="Records")
    _cases(db, store, organisation, policy, alice, dt.date(2024, 5, 6), 1, category="Bullying")
    _cases(db, store, organisation, policy, alice, dt.date(2024, 6, 3), 2, category="Safeguarding")

    figures = statistics.board_statistics(db, alice.officer, TODAY, policy)

    assert figures.total == Count("All cases", 10)
    assert _table(figures.by_month) == {
        "March 2024": "4",
        "April 2024": "3",
        "May 2024": FEWER,
        "June 2024": FEWER,
    }
    assert _table(figures.by_category) == {
        "Bullying": FEWER,
        "Records": "3",
        "Safeguarding": FEWER,
        "Staffing": "4",
    }
    withheld = [c for table in (figures.by_month, figures.by_category) for c in table if c.value is None]
    assert withheld and all(c.withheld == FEWER for c in withheld)
    every_number = [
        c.value for c in (figures.total, *figures.by_month, *figures.by_category, *figures.by_outcome)
    ]
    assert all(value is None or value >= 3 for value in every_number)


def test_a_single_small_count_is_not_left_to_be_worked_out_from_the_total(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    _cases(db, store, organisation, policy, alice, dt.date(2024, 3, 4), 5, category="Staffing")
    _cases(db, store, organisation, policy, alice, dt.date(2024, 3, 5), 4, category="Records")
    _cases(db, store, organisation, policy, alice, dt.date(2024, 3, 6), 1, category="Bullying")

    figures = statistics.board_statistics(db, alice.officer, TODAY, policy)

    assert figures.total.value == 10
    # 10 - 5 - 4 would give the one case away: the smallest other count is hidden too.
    assert _table(figures.by_category) == {"Bullying": FEWER, "Records": HIDDEN, "Staffing": "5"}
    assert _table(figures.by_month) == {"March 2024": "10"}
    assert _table(figures.by_outcome) == {statistics.STILL_OPEN: "10"}


def test_a_total_under_three_is_withheld_too(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    _cases(db, store, organisation, policy, alice, dt.date(2024, 3, 4), 2)
    figures = statistics.board_statistics(db, alice.officer, TODAY, policy)
    assert figures.total == Count("All cases", None, FEWER)
    assert _table(figures.by_category) == {statistics.NOT_CATEGORISED: FEWER}


def test_medians_and_shares_need_three_cases(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    received = dt.date(2024, 1, 8)
    ids = _cases(db, store, organisation, policy, alice, received, 2)
    acknowledge(db, alice, ids[0], dt.date(2024, 1, 10), policy)  # 2 days
    acknowledge(db, alice, ids[1], dt.date(2024, 1, 20), policy)  # 12 days: late
    close(db, alice, ids[0], dt.date(2024, 2, 7), policy)  # 30 days, feedback in time

    figures = statistics.board_statistics(db, alice.officer, TODAY, policy)
    assert not figures.median_days_to_acknowledge.shown
    assert not figures.median_days_to_close.shown
    assert not figures.acknowledged_in_time.shown
    assert not figures.feedback_in_time.shown

    (third,) = _cases(db, store, organisation, policy, alice, received, 1)
    acknowledge(db, alice, third, dt.date(2024, 1, 12), policy)  # 4 days
    close(db, alice, third, dt.date(2024, 1, 28), policy)  # 20 days
    (fourth,) = _cases(db, store, organisation, policy, alice, received, 1)
    close(db, alice, fourth, dt.date(2024, 1, 18), policy, Outcome.WITHDRAWN)  # 10 days, acknowledged late

    figures = statistics.board_statistics(db, alice.officer, TODAY, policy)
    assert figures.median_days_to_acknowledge.value == 7  # of 2, 4, 10, 12
    assert figures.median_days_to_close.value == 20  # of 10, 20, 30
    assert figures.acknowledged_in_time.value == 50  # 2 of 4
    # Feedback: two closed with feedback in time, one still open and long overdue.
    assert figures.feedback_in_time.value == pytest.approx(100 * 3 / 4)


def test_open_cases_whose_deadline_has_not_come_are_not_counted_as_late(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    _cases(db, store, organisation, policy, alice, dt.date(2024, 11, 28), 3)
    figures = statistics.board_statistics(db, alice.officer, TODAY, policy)
    assert figures.total.value == 3
    assert not figures.acknowledged_in_time.shown  # none is due yet
    assert not figures.feedback_in_time.shown
    later = statistics.board_statistics(db, alice.officer, dt.date(2024, 12, 9), policy)
    assert later.acknowledged_in_time.value == 0


def test_an_excluded_officer_never_counts_the_case(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    march = dt.date(2024, 3, 4)
    _cases(db, store, organisation, policy, alice, march, 3, category="Staffing")
    _cases(db, store, organisation, policy, alice, march, 1, category="Staffing", excluded=(bob,))
    _cases(db, store, organisation, policy, alice, march, 3, category="Conduct of a manager", excluded=(bob,))

    for_alice = statistics.board_statistics(db, alice.officer, TODAY, policy)
    for_bob = statistics.board_statistics(db, bob.officer, TODAY, policy)

    assert for_alice.total.value == 7
    assert _table(for_alice.by_category) == {"Conduct of a manager": "3", "Staffing": "4"}
    assert for_bob.total.value == 3
    assert _table(for_bob.by_month) == {"March 2024": "3"}
    assert _table(for_bob.by_category) == {"Staffing": "3"}


def test_kept_figures_of_deleted_cases_count_only_for_those_who_could_open_them(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    _cases(
        db, store, organisation, policy, alice, dt.date(2023, 5, 2), 3, category="Staffing", excluded=(bob,)
    )
    for days in (3, 5, 9):
        kept = ClosedCaseFigures(
            received_month="2023-05",
            officer_category="Staffing",
            outcome="substantiated",
            days_to_acknowledge=days,
            days_to_close=days * 10,
            acknowledged_in_time=days <= 7,
            feedback_in_time=True,
        )
        db.add(kept)
        db.flush()
        db.execute(insert(closed_case_reader).values(figures_id=kept.id, officer_id=alice.officer.id))
    db.flush()
    figures = statistics.board_statistics(db, alice.officer, TODAY, policy)
    assert figures.total.value == 6
    assert _table(figures.by_outcome) == {"Substantiated": "3", statistics.STILL_OPEN: "3"}
    assert figures.median_days_to_close.value == 50
    # Bob was excluded from all six: neither the live cases nor the deleted ones count for him.
    for_bob = statistics.board_statistics(db, bob.officer, TODAY, policy)
    assert (for_bob.years, for_bob.by_outcome, for_bob.median_days_to_close.value) == ([], [], None)


def test_a_year_narrows_every_figure(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    _cases(db, store, organisation, policy, alice, dt.date(2023, 12, 29), 3)
    _cases(db, store, organisation, policy, alice, dt.date(2024, 1, 2), 4)

    every = statistics.board_statistics(db, alice.officer, TODAY, policy)
    of_2023 = statistics.board_statistics(db, alice.officer, TODAY, policy, year=2023)
    of_2022 = statistics.board_statistics(db, alice.officer, TODAY, policy, year=2022)

    assert every.years == [2024, 2023]
    assert every.total.value == 7
    assert of_2023.total.value == 3
    assert _table(of_2023.by_month) == {"December 2023": "3"}
    assert of_2022.total.text == FEWER
    assert of_2022.by_month == []


def test_an_officer_with_no_cases_sees_nothing_but_withheld_totals(
    db: Session, policy: Policy, alice: OfficerKeys
) -> None:
    figures = statistics.board_statistics(db, alice.officer, TODAY, policy)
    assert figures.total.text == FEWER
    assert (figures.by_month, figures.by_category, figures.by_outcome, figures.years) == ([], [], [], [])
    assert not figures.median_days_to_close.shown


def test_outcomes_are_listed_in_their_own_order_with_their_labels(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy, alice: OfficerKeys
) -> None:
    received = dt.date(2024, 2, 5)
    for outcome in (Outcome.WITHDRAWN, Outcome.SUBSTANTIATED):
        for public_id in _cases(db, store, organisation, policy, alice, received, 3):
            close(db, alice, public_id, dt.date(2024, 3, 1), policy, outcome)
    for _ in range(3):
        kept = ClosedCaseFigures(received_month="2024-02", outcome="an old outcome")
        db.add(kept)
        db.flush()
        db.execute(insert(closed_case_reader).values(figures_id=kept.id, officer_id=alice.officer.id))
    figures = statistics.board_statistics(db, alice.officer, TODAY, policy)
    assert [(c.label, c.text) for c in figures.by_outcome] == [
        ("Substantiated", "3"),
        ("Withdrawn", "3"),
        ("an old outcome", "3"),
    ]
