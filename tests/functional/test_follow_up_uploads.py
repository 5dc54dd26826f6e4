"""Evidence added from the case page: a cap of files per case, and a limit on posts per case."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import follow_up, form_post, login, reports_listed, submit_report
from whistle import create_app
from whistle.config import Settings

CASE = "/follow-up/case"


def app_with(instance, **settings: object) -> Iterator[Flask]:
    app = create_app(Settings.load(instance.path, **settings))
    app.config["TESTING"] = True
    yield app
    app.extensions["whistle"].engine.dispose()


@pytest.fixture
def capped_app(instance) -> Iterator[Flask]:
    yield from app_with(instance, max_files=2, max_files_per_case=3)


@pytest.fixture
def limited_app(instance) -> Iterator[Flask]:
    yield from app_with(instance, follow_ups_per_case="2 per hour")


def returning_reporter(app: Flask, **report: object) -> FlaskClient:
    reporter = app.test_client()
    receipt = submit_report(app.test_client(), **report)
    assert follow_up(reporter, receipt).status_code == 303
    return reporter


def notes(count: int, start: int = 0) -> list[tuple[io.BytesIO, str]]:
    return [(io.BytesIO(b"note %d" % number), f"note-{number}.txt") for number in range(start, start + count)]


def send(reporter: FlaskClient, body: str, files: list[tuple[io.BytesIO, str]] | None = None):
    data: dict[str, object] = {"body": body}
    if files:
        data["attachments"] = files
    return form_post(reporter, CASE, data, content_type="multipart/form-data")


def files_the_officer_sees(app: Flask, officer) -> list[str]:
    client = app.test_client()
    login(client, officer)
    (report_id,) = reports_listed(client)
    page = client.get(f"/officer/reports/{report_id}").get_data(as_text=True)
    return re.findall(r'href="/officer/reports/[0-9a-f]+/attachments/[0-9a-f]+" download>([^<]+)<', page)


def test_a_case_takes_no_more_files_than_its_cap_and_the_page_says_so(capped_app, alice):
    reporter = returning_reporter(capped_app, attachments=notes(2))

    over = send(reporter, "TYPED-ABOVE-THE-CAP two more notes", notes(2, start=2))

    assert over.status_code == 422
    page = over.get_data(as_text=True)
    assert "Your report can hold 1 more file. Please choose fewer." in page
    assert "TYPED-ABOVE-THE-CAP two more notes" in page
    assert send(reporter, "one more note", notes(1, start=2)).status_code == 303

    full = reporter.get(CASE).get_data(as_text=True)
    assert "Your report holds 3 files, the most it can hold. You can still send messages" in full
    assert 'type="file"' not in full
    refused = send(reporter, "TYPED-WHEN-FULL a fourth note", notes(1, start=3))
    assert refused.status_code == 422
    assert "already holds 3 files, the most it can hold" in refused.get_data(as_text=True)
    assert "TYPED-WHEN-FULL a fourth note" in refused.get_data(as_text=True)
    assert send(reporter, "a message still goes through").status_code == 303

    assert sorted(files_the_officer_sees(capped_app, alice)) == ["note-0.txt", "note-1.txt", "note-2.txt"]


def test_the_page_says_how_many_files_a_case_can_still_take_when_fewer_than_a_message_may_carry(
    capped_app, alice
):
    roomy = returning_reporter(capped_app, attachments=notes(1))
    nearly_full = returning_reporter(capped_app, attachments=notes(2))

    assert "can hold" not in roomy.get(CASE).get_data(as_text=True)  # 2 more: as many as one message takes
    assert "Your report can hold 1 more file." in nearly_full.get(CASE).get_data(as_text=True)


def test_a_flood_of_evidence_on_one_case_stops_at_the_default_cap(app, alice):
    reporter = returning_reporter(app)

    statuses = [send(reporter, "", notes(10, start=10 * post)).status_code for post in range(15)]

    assert statuses == [303] * 5 + [422] * 10
    assert len(files_the_officer_sees(app, alice)) == 50


def test_posts_on_one_case_are_limited_and_the_refusal_keeps_what_was_typed(limited_app, alice):
    reporter = returning_reporter(limited_app)
    assert [send(reporter, f"message {number}").status_code for number in range(2)] == [303, 303]

    refused = send(reporter, "TYPED-WHILE-LIMITED please read this")

    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    page = refused.get_data(as_text=True)
    assert "You have sent a lot in a short time. Please wait" in page
    assert "TYPED-WHILE-LIMITED please read this" in page
    # Another reporter's case has a counter of its own.
    other = returning_reporter(limited_app)
    assert send(other, "a reporter on another case").status_code == 303
