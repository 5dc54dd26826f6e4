"""`whistle notify` against a real SMTP server (aiosmtpd on loopback), as cron would run it.

What is checked is what lands in the officers' mailboxes: one email per
officer per run at most, never any case content, never about a case the
officer cannot read, never the same thing twice, and nothing at all when no
mail host is set. News a reporter caused is held to the next clock hour, so
the tests move the app's clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner, Result
from flask import Flask
from flask.cli import ScriptInfo
from sqlalchemy import select

from tests.conftest import (
    REPORT,
    Instance,
    OfficerAccount,
    add_officer,
    follow_up,
    form_post,
    login,
    reports_listed,
    runtime_of,
    submit_report,
)
from whistle import create_app
from whistle.cli import cli
from whistle.config import Settings
from whistle.models import CaseNotice, Officer, Report
from whistle.services.context import Clock

MARKER = "Marker-0b7e the night staff are not checking the children's rooms"
REPLY = "Marker-a2c9 a reply from the reporter with more detail"
BASE_URL = "https://speakup.example.org"


# --- a real SMTP server ------------------------------------------------------------


class Mailbox:
    """Collects what the SMTP server accepts."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted"

    def take(self) -> list[tuple[list[str], EmailMessage]]:
        taken = [(to, message_from_bytes(raw, policy=policy.default)) for to, raw in self.received]
        self.received.clear()
        return taken  # type: ignore[return-value]

    def raw(self) -> list[bytes]:
        return [raw for _to, raw in self.received]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def mailbox(smtp_port: int) -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


# --- the app, its clock and the command ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class ShiftedClock(Clock):
    offset: dt.timedelta = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


def pass_time(app: Flask, offset: dt.timedelta) -> None:
    """Move the app's clock (for the pages and for the command) to ``offset`` from now."""
    rt = runtime_of(app)
    moved = dataclasses.replace(rt, clock=ShiftedClock(rt.clock.timezone, offset))
    app.extensions["whistle"] = moved
    app.session_interface.runtime = moved  # type: ignore[attr-defined]


def mail_app(instance: Instance, **settings: object) -> Iterator[Flask]:
    app = create_app(Settings.load(instance.path, base_url=BASE_URL, **settings))
    app.config["TESTING"] = True
    yield app
    runtime_of(app).engine.dispose()


@pytest.fixture
def app(instance: Instance, smtp_port: int) -> Iterator[Flask]:
    """The app with mail configured: the loopback server, no TLS (it has none)."""
    yield from mail_app(
        instance,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_from="whistle@example.org",
        smtp_starttls=False,
    )


@pytest.fixture(autouse=True)
def _command_line(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The command sets a umask (and Flask an environment variable): give them back."""
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "false")
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def notify(app: Flask) -> Result:
    return CliRunner().invoke(cli, ["notify"], obj=ScriptInfo(create_app=lambda: app))


def run_at(app: Flask, hours: float) -> Result:
    pass_time(app, dt.timedelta(hours=hours))
    result = notify(app)
    assert result.exit_code == 0, result.output
    return result


def recipients(taken: list[tuple[list[str], EmailMessage]]) -> list[str]:
    return sorted(address for to, _message in taken for address in to)


def officer_client(app: Flask, account: OfficerAccount):
    officer = app.test_client()
    assert login(officer, account).status_code == 303
    return officer


@pytest.fixture
def carol(app: Flask) -> OfficerAccount:
    return add_officer(app, "Carol Officer", "carol@example.org")


# --- the tests ---------------------------------------------------------------------


def test_each_officer_gets_one_email_that_says_nothing_of_the_cases(app, client, mailbox, alice, bob, carol):
    receipts = [submit_report(client, what_happened=MARKER) for _ in range(2)]
    public_ids = reports_listed(officer_client(app, alice))

    first = run_at(app, 0)
    assert mailbox.received == []  # a reporter's news waits for the next hour
    assert "Sent 0 email(s); 3 officer(s) have news held to the next hour." in first.output

    second = run_at(app, 1)
    assert "Sent 3 email(s)" in second.output
    raw = mailbox.raw()
    taken = mailbox.take()
    assert recipients(taken) == ["alice@example.org", "bob@example.org", "carol@example.org"]
    for to, message in taken:
        assert message["To"] == to[0]
        assert message["From"] == "whistle@example.org"
        assert message["Subject"] == "Something to look at in Whistle"
        assert (
            message.get_content().replace("\r\n", "\n").strip()
            == f"You have something to look at in Whistle.\n\n{BASE_URL}/officer/"
        )
    everything = b"\n".join(raw).decode(errors="replace")
    for secret in [MARKER, REPORT["when_where"], REPORT["raised_before_result"], *receipts, *public_ids]:
        assert secret not in everything
    assert "caseloads" not in everything.lower()
    assert re.search(r"report|case|reply|overdue|deadline", everything, re.I) is None


def test_an_excluded_officer_is_not_told_about_the_case(app, client, mailbox, alice, bob):
    submit_report(client, what_happened=MARKER, excluded_officers=[bob.public_id])
    run_at(app, 0)
    run_at(app, 1)
    assert recipients(mailbox.take()) == ["alice@example.org"]


def test_nothing_is_sent_twice_and_new_news_is_sent_once(app, client, mailbox, alice):
    receipt = submit_report(client, what_happened=MARKER)
    run_at(app, 0)
    run_at(app, 1)
    assert recipients(mailbox.take()) == ["alice@example.org"]
    for hours in (1, 1.5, 3, 30):
        run_at(app, hours)
    assert mailbox.received == []

    # The reporter writes again: once, an hour later, Alice is told once.
    reporter = app.test_client()
    pass_time(app, dt.timedelta(hours=30))
    assert follow_up(reporter, receipt).status_code == 303
    response = form_post(reporter, "/follow-up/case", {"body": REPLY}, content_type="multipart/form-data")
    assert response.status_code == 303
    run_at(app, 30)
    assert mailbox.received == []
    run_at(app, 31)
    taken = mailbox.take()
    assert recipients(taken) == ["alice@example.org"]
    assert REPLY.encode() not in taken[0][1].as_bytes()
    run_at(app, 32)
    assert mailbox.received == []


def test_a_reply_the_officer_has_already_read_is_not_sent(app, client, mailbox, alice):
    receipt = submit_report(client)
    run_at(app, 0)
    run_at(app, 1)
    mailbox.take()
    reporter = app.test_client()
    assert follow_up(reporter, receipt).status_code == 303
    form_post(reporter, "/follow-up/case", {"body": REPLY}, content_type="multipart/form-data")
    run_at(app, 2)  # noticed, held
    officer = officer_client(app, alice)
    (public_id,) = reports_listed(officer)
    assert officer.get(f"/officer/reports/{public_id}").status_code == 200
    run_at(app, 3)
    assert mailbox.received == []


def test_what_is_stored_about_reporter_news_is_an_hour_at_most(app, client, mailbox, alice):
    submit_report(client)
    run_at(app, 0)
    rt = runtime_of(app)
    with rt.session_factory() as db:
        (notice,) = db.scalars(select(CaseNotice))
        assert notice.pending_since is not None
        assert (
            notice.pending_since.minute,
            notice.pending_since.second,
            notice.pending_since.microsecond,
        ) == (
            0,
            0,
            0,
        )
    run_at(app, 1)
    with rt.session_factory() as db:
        (notice,) = db.scalars(select(CaseNotice))
        assert notice.pending_since is None  # told: no time is kept at all
        assert notice.told_new is True


def test_a_deadline_that_has_passed_is_sent_at_once_and_once(app, client, mailbox, alice, bob):
    submit_report(client)
    rt = runtime_of(app)
    with rt.session_factory() as db, db.begin():
        report = db.scalar(select(Report))
        report.received_on = rt.clock.today() - dt.timedelta(days=10)
        report.acknowledge_by = rt.clock.today() - dt.timedelta(days=3)
    result = run_at(app, 0)  # overdue: no reporter behind its timing, so no wait
    assert "Sent 2 email(s)" in result.output
    assert recipients(mailbox.take()) == ["alice@example.org", "bob@example.org"]
    run_at(app, 1)
    run_at(app, 26)
    assert mailbox.received == []  # the new case was covered by the same email


def hours_to_noon(app: Flask, days: int) -> float:
    """Hours from now to noon, the organisation's time, ``days`` days from today."""
    clock = Clock(runtime_of(app).clock.timezone)
    day = clock.today() + dt.timedelta(days=days)
    noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=clock.timezone)
    return (noon - clock.now()).total_seconds() / 3600


def test_a_deadline_two_days_away_is_sent(app, client, mailbox, alice):
    submit_report(client)
    rt = runtime_of(app)
    today = rt.clock.today()
    with rt.session_factory() as db, db.begin():
        report = db.scalar(select(Report))
        report.status = report.status.ACKNOWLEDGED
        report.acknowledged_on = today
        report.feedback_by = today + dt.timedelta(days=3)
        officer = db.scalar(select(Officer).where(Officer.email == alice.email))
        db.add(CaseNotice(officer_id=officer.id, report_id=report.id, told_new=True))
    run_at(app, hours_to_noon(app, 0))
    assert mailbox.received == []  # three days away: not yet
    run_at(app, hours_to_noon(app, 1))
    assert recipients(mailbox.take()) == ["alice@example.org"]  # two days away
    run_at(app, hours_to_noon(app, 2))
    assert mailbox.received == []  # the same deadline
    run_at(app, hours_to_noon(app, 4))
    assert recipients(mailbox.take()) == ["alice@example.org"]  # now it has passed


def test_nothing_is_sent_when_no_mail_host_is_set(instance, client, mailbox, smtp_port):
    for plain in mail_app(instance, smtp_port=smtp_port, smtp_from="whistle@example.org"):
        add_officer(plain, "Alice Officer", "alice@example.org")
        submit_report(plain.test_client())
        for hours in (0, 1, 2):
            pass_time(plain, dt.timedelta(hours=hours))
            result = notify(plain)
            assert result.exit_code == 0, result.output
            assert result.output.strip() == "Notifications are off: smtp_host is not set."
        with runtime_of(plain).session_factory() as db:
            assert db.scalars(select(CaseNotice)).all() == []
    assert mailbox.received == []


def test_a_server_that_cannot_be_reached_fails_the_run_and_the_email_goes_later(
    instance, client, alice, smtp_port
):
    submit_report(client)
    for app in mail_app(
        instance,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_from="whistle@example.org",
        smtp_starttls=False,
    ):
        run_at(app, 0)
        pass_time(app, dt.timedelta(hours=1))
        failed = notify(app)
        assert failed.exit_code != 0
        assert "1 email(s) could not be sent" in failed.output
        box = Mailbox()
        controller = Controller(box, hostname="127.0.0.1", port=smtp_port)
        controller.start()
        try:
            run_at(app, 1)
        finally:
            controller.stop()
        assert [to for to, _raw in box.received] == [["alice@example.org"]]


def test_the_sender_must_be_set(instance, smtp_port):
    for app in mail_app(instance, smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_starttls=False):
        result = notify(app)
        assert result.exit_code != 0
        assert "smtp_from" in result.output


def test_an_officer_is_emailed_once_when_an_administrator_resets_their_password(app, mailbox, alice, bob):
    """Whoever used the reset link, the officer whose account it was learns of it."""
    from tests.functional.test_account import admin_reset

    admin_reset(app, alice, bob)
    result = run_at(app, 0)
    assert "Sent 1 email(s)" in result.output
    ((to, message),) = mailbox.take()
    assert to == ["bob@example.org"]
    assert message["Subject"] == "Your Whistle password was reset"
    assert "If you did not ask for this" in message.get_content()
    run_at(app, 1)
    assert mailbox.take() == []
