"""How dates read on pages: one spelling for each, and the organisation's time zone, as template filters.

Filters rather than ``.strftime(...)`` in templates: one place says how a date
reads, and a filter is a plain call where a method call in a template goes
through Jinja's generic call path, which matters in a list of fifty cases.
"""

from __future__ import annotations

import datetime as dt

from flask import Flask

from whistle.web.runtime import runtime


def local_time(moment: dt.datetime) -> dt.datetime:
    """An officer-side time in the organisation's time zone (stored times are UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(runtime().clock.timezone)


#: Month names as the pages spell them, in English whatever the server's locale says.
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day(value: dt.date) -> str:
    """4 Mar 2024: in tables and lists.

    Put together rather than by ``strftime``, which costs several times as much: a page of
    the case list writes three or four dates for each of its fifty rows.
    """
    return f"{value.day} {_MONTHS[value.month]} {value.year}"


def long_day(value: dt.date) -> str:
    """4 March 2024: in sentences and headings."""
    return value.strftime("%-d %B %Y")


def day_time(value: dt.datetime) -> str:
    """4 Mar 2024 09:30: a moment, already in the time zone it should be read in."""
    return value.strftime("%-d %b %Y %H:%M")


def install(app: Flask) -> None:
    app.jinja_env.filters.update(local_time=local_time, day=day, long_day=long_day, day_time=day_time)
