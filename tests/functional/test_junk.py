"""A flood of junk reports, closed in bulk from the case list so that it buries no real case."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import add_officer, csrf_token
from tests.functional.test_case_handling import (
    audit_entries,
    case_text,
    officer_client,
    report_submitted,
    reporter_text,
    text_of,
)


def close_as_junk(client: FlaskClient, report_ids: list[str]):
    token = csrf_token(client.get("/officer/").get_data(as_text=True))
    return client.post("/officer/reports/junk", data={"csrf_token": token, "reports": report_ids})


def open_count(app: Flask, client: FlaskClient) -> int:
    page = text_of(client.get("/officer/?view=new").get_data(as_text=True))
    return page.count("Close the case received")


def still_open(client: FlaskClient, report_id: str) -> bool:
    """The case list offers it to be closed as junk: it is open."""
    return f'value="{report_id}" form="junk-form"' in client.get("/officer/").get_data(as_text=True)


def test_an_officer_closes_the_ticked_cases_as_junk_and_the_rest_stay_open(app, alice):
    junk = [report_submitted(app, what_happened=f"spam spam {n}") for n in range(3)]
    real_id, _receipt = report_submitted(app)
    officer = officer_client(app, alice)
    assert open_count(app, officer) == 4

    response = close_as_junk(officer, [report_id for report_id, _ in junk])
    assert response.status_code == 303
    listing = text_of(officer.get(response.headers["Location"]).get_data(as_text=True))
    assert "3 cases closed as junk." in listing
    assert open_count(app, officer) == 1
    for report_id, receipt in junk:
        assert not still_open(officer, report_id)
        assert "case closed (junk)" in case_text(officer, report_id)
        assert ("case_closed", alice.public_id) in audit_entries(app, report_id)
        # Nothing of it is shared with whoever sent it.
        assert "Closed as junk" not in reporter_text(app, receipt)
    assert still_open(officer, real_id)


def test_a_case_the_officer_cannot_open_closes_nothing(app, alice):
    bob = add_officer(app, "Bob Officer", "bob@example.org")
    hidden_id, _ = report_submitted(app, excluded_officers=[bob.public_id])
    visible_id, _ = report_submitted(app)
    officer = officer_client(app, bob)
    assert close_as_junk(officer, [visible_id, hidden_id]).status_code == 404
    assert still_open(officer, visible_id)
    assert still_open(officer_client(app, alice), hidden_id)


def test_nothing_ticked_or_a_mangled_id_is_told_plainly(app, alice):
    report_submitted(app)
    officer = officer_client(app, alice)
    for ticked in ([], ["not-a-case"], ["0" * 31 + "\x00"]):
        response = close_as_junk(officer, ticked)
        assert response.status_code == 422, ticked
        page = text_of(response.get_data(as_text=True))
        assert "Nothing was closed" in page
    assert open_count(app, officer) == 1
