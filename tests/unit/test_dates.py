"""How a day reads on the pages: the same words strftime gives in the C locale, month by month."""

from __future__ import annotations

import datetime as dt

import pytest

from whistle.web.dates import day


@pytest.mark.parametrize("month", range(1, 13))
def test_a_day_reads_as_day_month_year_in_every_month(month: int) -> None:
    value = dt.date(2024, month, 4)
    assert day(value) == f"4 {value.strftime('%b')} 2024"


def test_a_day_has_no_leading_zero_and_a_moment_reads_as_its_day() -> None:
    assert day(dt.date(2025, 12, 31)) == "31 Dec 2025"
    assert day(dt.datetime(2026, 1, 9, 23, 59, tzinfo=dt.UTC)) == "9 Jan 2026"
