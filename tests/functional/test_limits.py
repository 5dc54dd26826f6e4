"""Rate limits and the bound on key derivations: what a guesser and a flood get."""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select

from tests.conftest import REPORT, add_officer, csrf_token, follow_up, form_post, login, submit_report
from whistle import create_app, crypto
from whistle.config import Settings
from whistle.models import Report
from whistle.services import context, turns


@pytest.fixture
def limited_app(instance):
    app = create_app(
        Settings.load(
            instance.path,
            receipt_attempts_per_receipt="3 per hour",
            receipt_attempts_global="5 per minute",
            login_attempts_per_account="2 per 15 minutes",
            login_attempts_per_device="2 per 15 minutes",
            submissions_global="2 per minute",
        )
    )
    app.config["TESTING"] = True
    yield app
    app.extensions["whistle"].engine.dispose()


@pytest.fixture
def three_tries_app(instance):
    app = create_app(Settings.load(instance.path, receipt_attempts_per_receipt="3 per hour"))
    app.config["TESTING"] = True
    yield app
    app.extensions["whistle"].engine.dispose()


def test_the_right_receipt_of_one_report_is_limited_whatever_its_spelling(three_tries_app, alice):
    app = three_tries_app
    receipt, other = submit_report(app.test_client()), submit_report(app.test_client())
    for typed in (receipt, receipt.lower(), receipt.replace("-", " ")):
        assert follow_up(app.test_client(), typed).status_code == 303
    response = follow_up(app.test_client(), receipt.lower().replace("-", ""))
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert "Too many attempts" in page
    assert "try again in" in page
    assert 60 < int(response.headers["Retry-After"]) <= 3600
    # Another report's receipt is still opened, from anywhere.
    assert follow_up(app.test_client(), other).status_code == 303


def test_wrong_receipts_are_not_counted_so_a_flood_of_them_leaves_nothing_behind(three_tries_app, alice):
    """Only a receipt that opens a report counts: the same wrong receipt tried again and again
    is told it is wrong each time, and no counter is kept for any of them."""
    client = three_tries_app.test_client()
    assert [follow_up(client, "AAAA-BBBB-CCCC-DDDD").status_code for _ in range(5)] == [422] * 5


def test_receipt_attempts_are_limited_globally_not_per_address(limited_app):
    statuses = []
    for number in range(6):
        # A different client (and address) each time: the limit still holds.
        client = limited_app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"192.0.2.{number}"
        statuses.append(follow_up(client, f"AAAA-BBBB-CCCC-DDD{number}").status_code)
    assert statuses == [422] * 5 + [429]


def test_the_right_receipt_still_works_under_the_per_receipt_limit(limited_app, alice):
    client = limited_app.test_client()
    receipt = submit_report(client)
    assert follow_up(client, receipt).status_code == 303


def test_logins_are_limited_per_known_device_and_strangers_use_up_none_of_it(limited_app, alice):
    own = limited_app.test_client()
    assert login(own, alice).status_code == 303  # no device known yet: nothing counted
    own.post("/officer/logout", data={"csrf_token": csrf_token(own.get("/officer/").get_data(as_text=True))})
    for guess in range(10):
        stranger = limited_app.test_client()
        credentials = {"email": alice.email, "password": f"wrong password {guess}"}
        assert form_post(stranger, "/officer/login", credentials).status_code in (422, 429)
    # The strangers used up nothing of the limit of Alice's own browser ...
    assert login(own, alice).status_code == 303
    own.post("/officer/logout", data={"csrf_token": csrf_token(own.get("/officer/").get_data(as_text=True))})
    wrong = {"email": alice.email, "password": "wrong password!"}
    assert form_post(own, "/officer/login", wrong).status_code == 422
    # ... which is its own: two tries in 15 minutes here.
    refused = form_post(own, "/officer/login", wrong)
    assert refused.status_code == 429
    assert "Too many attempts" in refused.get_data(as_text=True)


def test_a_flood_of_wrong_receipts_does_not_turn_away_the_right_one(app, alice):
    """By default nothing is limited globally: 150 wrong receipts in a minute (more than the
    120 that used to close the form for everyone), then the right one gets in."""
    receipt = submit_report(app.test_client())
    guesser = app.test_client()
    token = csrf_token(guesser.get("/follow-up").get_data(as_text=True))
    statuses = {
        guesser.post("/follow-up", data={"csrf_token": token, "receipt": crypto.new_receipt()}).status_code
        for _ in range(150)
    }
    assert statuses == {422}
    assert follow_up(app.test_client(), receipt).status_code == 303


def test_a_flood_of_junk_reports_does_not_turn_away_a_genuine_one(app, alice):
    """70 junk reports in a minute (more than the 60 that used to close the form), then a real one."""
    junk = app.test_client()
    token = csrf_token(junk.get("/report").get_data(as_text=True))
    statuses = {
        junk.post(
            "/report", data={"csrf_token": token, **REPORT}, content_type="multipart/form-data"
        ).status_code
        for _ in range(70)
    }
    assert statuses == {200}
    assert submit_report(app.test_client())


def test_resets_are_limited_per_officer_and_made_up_emails_are_not_counted(limited_app, alice):
    client = limited_app.test_client()
    wrong_key = {"recovery_key": "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH", "password": "a long new password"}
    for _ in range(4):
        made_up = form_post(client, "/officer/reset", {"email": "nobody@example.org", **wrong_key})
        assert made_up.status_code == 422
    for _ in range(2):
        assert form_post(client, "/officer/reset", {"email": alice.email, **wrong_key}).status_code == 422
    refused = form_post(client, "/officer/reset", {"email": alice.email, **wrong_key})
    assert refused.status_code == 429
    assert "Too many attempts" in refused.get_data(as_text=True)
    assert 0 < int(refused.headers["Retry-After"]) <= 15 * 60


def test_submissions_are_limited(limited_app, alice):
    client = limited_app.test_client()
    submit_report(client)
    submit_report(client)
    response = form_post(client, "/report", {"what_happened": "third"}, content_type="multipart/form-data")
    assert response.status_code == 429


@contextmanager
def every_slot_taken(slots: int = 1):
    """The gate's only slot held, as a long derivation in another thread would hold it."""
    context.configure_derivations(slots=slots, wait_seconds=0.05)
    try:
        context._gate.turns.enter(turns.Work.OFFICER)
        yield context._gate
    finally:
        context.configure_derivations(slots=2, wait_seconds=5)


def test_a_login_that_waits_too_long_for_a_derivation_gets_503_with_retry_after(app, alice):
    with every_slot_taken() as gate:
        response = login(app.test_client(), alice)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "10"
        assert "busy" in response.get_data(as_text=True)
        gate.turns.leave()
        assert login(app.test_client(), alice).status_code == 303


def test_a_report_that_meets_a_full_queue_is_sent_back_with_everything_typed_kept(app, alice):
    client = app.test_client()
    with every_slot_taken() as gate:
        typed = {**REPORT, "what_happened": "The rota on ward 4 is falsified every week."}
        response = form_post(client, "/report", typed, content_type="multipart/form-data")
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) > 0
        page = response.get_data(as_text=True)
        assert "your report has not been sent yet" in page
        assert "The rota on ward 4 is falsified every week." in page
        with app.extensions["whistle"].session_factory() as db:
            assert db.scalar(select(func.count(Report.id))) == 0
        gate.turns.leave()
        resent = form_post(client, "/report", typed, content_type="multipart/form-data")
        assert resent.status_code == 200
        assert "receipt" in resent.get_data(as_text=True).lower()


def test_while_receipt_checks_wait_their_turn_other_pages_are_served_at_once(app, alice):
    """A flood of posts to the receipt form waits in its queue (here: the only slot is taken and
    the wait is short), costing no CPU, while the landing page is answered at once."""
    receipt = submit_report(app.test_client())
    app.extensions["whistle.turns"] = turns.FairQueues(slots=1, wait_seconds=0.05)
    queues = app.extensions["whistle.turns"]
    queues.enter(turns.Work.REPORT)  # a junk report being sealed
    try:
        waited = follow_up(app.test_client(), receipt)
        assert waited.status_code == 503
        assert "Nothing was lost" in waited.get_data(as_text=True)
        assert app.test_client().get("/").status_code == 200
    finally:
        queues.leave()
    assert follow_up(app.test_client(), receipt).status_code == 303


@contextmanager
def statements(app):
    """The SQL statements the app sends while the block runs."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        sent.append(statement)

    engine = app.extensions["whistle"].engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_refused_guess_costs_no_query_and_no_session_lookup(limited_app):
    """Under a flood of guesses most answers are refusals: a refusal comes before the
    session, the CSRF check and the form, and its page is not rendered again."""
    client = limited_app.test_client()
    token = csrf_token(client.get("/follow-up").get_data(as_text=True))
    assert client.get_cookie("whistle") is not None  # the guesser holds a session, as a browser would
    statuses = [
        client.post("/follow-up", data={"csrf_token": token, "receipt": f"AAAA-BBBB-CCCC-DDD{n}"}).status_code
        for n in range(6)
    ]
    assert statuses == [422] * 5 + [429]
    with statements(limited_app) as sent:
        refused = client.post("/follow-up", data={"csrf_token": token, "receipt": "EEEE-FFFF-GGGG-HHHH"})
    assert refused.status_code == 429
    assert sent == []
    assert "Please try again in" in refused.get_data(as_text=True)
    assert 0 < int(refused.headers["Retry-After"]) <= 61
    assert "Northshire Council" in refused.get_data(as_text=True)  # the organisation's name, as on every page


def test_a_guess_without_a_csrf_token_is_still_a_plain_400(limited_app):
    client = limited_app.test_client()
    client.get("/follow-up")
    response = client.post("/follow-up", data={"receipt": "AAAA-BBBB-CCCC-DDDD"})
    assert response.status_code == 400


def test_a_page_that_needs_no_session_does_not_open_it(app):
    client = app.test_client()
    client.get("/follow-up")  # a session now exists, and its cookie is sent with every request
    assert client.get_cookie("whistle") is not None
    with statements(app) as sent, client.get("/static/whistle.css") as response:
        assert response.status_code == 200
    assert sent == []


def test_a_rate_limit_storage_that_is_down_refuses_the_limited_forms_and_says_nothing_was_lost(
    instance, caplog
):
    """Redis down (nothing listens on port 1): the reset form is refused with a 503 page rather
    than run without a limit, and so is a right receipt (its tries are counted); pages without a
    limit still answer, and so do the report form (no global limit by default), a wrong receipt
    (not counted) and a login (its slowing is kept in the database)."""
    app = create_app(Settings.load(instance.path, rate_limit_storage="redis://127.0.0.1:1/0"))
    app.config["TESTING"] = True
    client = app.test_client()
    add_officer(app, "Alice Officer", "alice@example.org")
    try:
        assert client.get("/").status_code == 200
        reset = {"email": "alice@example.org", "recovery_key": "AAAA-BBBB", "password": "a long new password"}
        with caplog.at_level(logging.ERROR, logger="whistle"):
            refused = form_post(client, "/officer/reset", reset)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "60"
        page = refused.get_data(as_text=True)
        assert "The portal cannot take this right now" in page
        assert "nothing was lost: go back, and send the page again in a minute." in page
        assert "rate-limit storage unavailable" in caplog.text
        sent = form_post(client, "/report", REPORT, content_type="multipart/form-data")
        assert sent.status_code == 200
        with app.extensions["whistle"].session_factory() as db:
            assert db.scalar(select(func.count(Report.id))) == 1
        receipt = re.search(
            r"\b([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})\b", sent.get_data(as_text=True)
        )
        assert receipt
        assert follow_up(client, receipt.group(1)).status_code == 503
        assert follow_up(client, "AAAA-BBBB-CCCC-DDDD").status_code == 422
        credentials = {"email": "alice@example.org", "password": "not the password"}
        assert form_post(client, "/officer/login", credentials).status_code == 422
    finally:
        app.extensions["whistle"].engine.dispose()
