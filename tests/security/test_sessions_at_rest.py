"""Sessions: the keys a login unlocks are sealed server-side under a key only the cookie holds.

A copy of the database without the cookie, or the cookie without the
database, opens nothing (DESIGN.md, "Sessions"). An officer's private key and
a reporter's data key are never in the session row in any encoding; the row
opens with the cookie's key and with nothing else; logging out and idling past
the limit delete the row; logging in starts a new session id.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets

import pytest
from sqlalchemy import delete, func, select

from tests.conftest import PASSWORD, csrf_token, follow_up, login, runtime_of, submit_report
from tests.security.helpers import (
    bytes_needle,
    find,
    leaks_in_database,
    leaks_in_files,
    receipt_needles,
    text_needle,
)
from whistle import crypto
from whistle.models import ServerSession, SessionKind
from whistle.services import officers, reports
from whistle.services.context import Clock
from whistle.web.sessions import COOKIE_NAME


def _cookie(client) -> str:
    cookie = client.get_cookie(COOKIE_NAME)
    assert cookie is not None, "no session cookie"
    return cookie.value


def _id_hash(cookie: str) -> bytes:
    return crypto.token_hash(cookie.partition(".")[0])


def _row(app, cookie: str) -> ServerSession | None:
    with runtime_of(app).session_factory() as db:
        return db.scalar(select(ServerSession).where(ServerSession.token_hash == _id_hash(cookie)))


def _private_key(app, account) -> bytes:
    rt = runtime_of(app)
    with rt.session_factory() as db:
        _officer, private_key = officers.authenticate(db, account.email, PASSWORD, pepper=rt.keyring.pepper)
    assert len(private_key) == crypto.PRIVATE_KEY_BYTES
    return private_key


def _dek(app, receipt: str) -> bytes:
    rt = runtime_of(app)
    with rt.session_factory() as db:
        _public_id, dek = reports.open_with_receipt(db, rt.keyring, receipt)
    assert len(dek) == crypto.KEY_BYTES
    return dek


def _opened(row: ServerSession, cookie: str) -> bytes:
    """The row's data opened with the cookie's key, as the server does."""
    key = base64.urlsafe_b64decode(cookie.partition(".")[2] + "==")
    return crypto.open_sealed(key, row.data_sealed, crypto.context("session", _id_hash(cookie)))


def _officer(app, account):
    client = app.test_client()
    assert login(client, account).status_code == 303
    assert client.get("/officer/").status_code == 200
    return client


def _reporter(app, client):
    receipt = submit_report(client)
    reporter = app.test_client()
    assert follow_up(reporter, receipt).status_code == 303
    assert reporter.get("/follow-up/case").status_code == 200
    return reporter, receipt


def _refused_officer(client) -> None:
    response = client.get("/officer/")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/officer/login")


def _refused_reporter(client) -> None:
    response = client.get("/follow-up/case")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/follow-up")


# --- what the row holds -----------------------------------------------------------


def test_officer_session_row_does_not_hold_the_private_key(app, alice, instance):
    officer = _officer(app, alice)
    cookie = _cookie(officer)
    private_key = _private_key(app, alice)
    needle = bytes_needle("officer private key", private_key)

    row = _row(app, cookie)
    assert row is not None
    assert row.kind is SessionKind.OFFICER
    assert find(row.data_sealed, [needle]) == []
    # Not anywhere else at rest either, nor in the cookie.
    assert leaks_in_database(runtime_of(app).engine, [needle]) == []
    assert leaks_in_files(instance.path, [needle]) == []
    assert find(cookie.encode(), [needle]) == []
    # It is in there, sealed: the cookie's key opens it (so the check above looked at the right row).
    assert find(_opened(row, cookie), [needle]) == ["officer private key"]


def test_reporter_session_row_does_not_hold_the_receipt_or_data_key(app, client, instance):
    reporter, receipt = _reporter(app, client)
    cookie = _cookie(reporter)
    needles = [bytes_needle("data key", _dek(app, receipt)), *receipt_needles(receipt)]

    row = _row(app, cookie)
    assert row is not None
    assert row.kind is SessionKind.REPORTER
    assert row.officer_id is None
    assert find(row.data_sealed, needles) == []
    assert leaks_in_database(runtime_of(app).engine, needles) == []
    assert leaks_in_files(instance.path, needles) == []
    assert find(cookie.encode(), needles) == []
    opened = _opened(row, cookie)
    assert find(opened, needles) == ["data key"], "the receipt itself is never kept, even sealed"
    assert json.loads(opened[8:])  # what is sealed is the session data behind an 8-byte expiry


# --- one half without the other ---------------------------------------------------


def test_the_cookie_without_the_row_opens_nothing(app, alice, client):
    officer = _officer(app, alice)
    reporter, _receipt = _reporter(app, client)
    with runtime_of(app).session_factory() as db, db.begin():
        assert db.execute(delete(ServerSession)).rowcount >= 2
    _refused_officer(officer)
    _refused_reporter(reporter)
    # Nor does the stale cookie come back to life by being used again.
    _refused_officer(officer)


def test_the_row_without_the_cookie_opens_nothing(app, alice, client):
    officer = _officer(app, alice)
    reporter, _receipt = _reporter(app, client)
    for genuine, refused in ((officer, _refused_officer), (reporter, _refused_reporter)):
        cookie = _cookie(genuine)
        session_id = cookie.partition(".")[0]
        forged_key = base64.urlsafe_b64encode(secrets.token_bytes(crypto.KEY_BYTES)).rstrip(b"=").decode()
        forger = app.test_client()
        forger.set_cookie(COOKIE_NAME, f"{session_id}.{forged_key}")
        refused(forger)
        # The row was there all along: the genuine cookie still works, so the key is what was missing.
        assert _row(app, cookie) is not None
        page = genuine.get("/officer/" if refused is _refused_officer else "/follow-up/case")
        assert page.status_code == 200


@pytest.mark.parametrize(
    "cookie",
    ["", ".", "garbage", "a.b", "x" * 4000, "AAAA.AAAA", "%00.%00", "..", "é.é"],
)
def test_malformed_cookies_open_nothing(app, alice, cookie):
    _officer(app, alice)
    forger = app.test_client()
    forger.set_cookie(COOKIE_NAME, cookie)
    _refused_officer(forger)


# --- the server-side half goes away -----------------------------------------------


def test_logout_deletes_the_row(app, alice):
    officer = _officer(app, alice)
    cookie = _cookie(officer)
    assert _row(app, cookie) is not None
    page = officer.get("/officer/").get_data(as_text=True)
    assert officer.post("/officer/logout", data={"csrf_token": csrf_token(page)}).status_code == 303
    assert _row(app, cookie) is None
    replay = app.test_client()
    replay.set_cookie(COOKIE_NAME, cookie)
    _refused_officer(replay)


def test_leaving_deletes_the_reporter_row(app, client):
    reporter, _receipt = _reporter(app, client)
    cookie = _cookie(reporter)
    page = reporter.get("/follow-up/case").get_data(as_text=True)
    assert reporter.post("/follow-up/leave", data={"csrf_token": csrf_token(page)}).status_code == 303
    assert _row(app, cookie) is None
    replay = app.test_client()
    replay.set_cookie(COOKIE_NAME, cookie)
    _refused_reporter(replay)


def test_idle_expiry_deletes_the_row(app, alice, monkeypatch):
    officer = _officer(app, alice)
    cookie = _cookie(officer)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=runtime_of(app).settings.officer_idle_minutes + 1)
    monkeypatch.setattr(Clock, "now", lambda _self: later)
    _refused_officer(officer)
    assert _row(app, cookie) is None


def test_login_starts_a_new_session(app, alice):
    """A session id planted before login (session fixation) is worth nothing after it."""
    client = app.test_client()
    page = client.get("/officer/login")
    before = _cookie(client)
    assert before.startswith("csrf.")  # only a token so far: no row that a planted cookie could name
    response = client.post(
        "/officer/login",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "email": alice.email,
            "password": PASSWORD,
        },
    )
    assert response.status_code == 303
    after = _cookie(client)
    assert after.partition(".")[0] != before.partition(".")[0]
    assert _row(app, before) is None
    planted = app.test_client()
    planted.set_cookie(COOKIE_NAME, before)
    _refused_officer(planted)


def test_a_form_merely_loaded_writes_no_session_row(app, alice):
    """Opening the report form (for its CSRF token) must leave nothing that dates the visit."""
    reporter = app.test_client()
    reporter.get("/report")
    reporter.get("/follow-up")
    assert _cookie(reporter).startswith("csrf.")
    with runtime_of(app).session_factory() as db:
        assert db.scalar(select(func.count()).select_from(ServerSession)) == 0
    # The token in that cookie still protects the form: a forged cookie is refused.
    forged = app.test_client()
    forged.set_cookie(COOKIE_NAME, "csrf.eyJjc3JmX3Rva2VuIjoiYWJjIn0.forged")
    refused = forged.post("/follow-up", data={"csrf_token": "abc", "receipt": "7K2M-Q9TX-4WRB-ND6H"})
    assert refused.status_code in (400, 422)


def test_a_message_carried_across_the_receipt_page_waits_only_sealed(app, client, instance):
    receipt = submit_report(client)
    draft = "DRAFT-" + secrets.token_hex(8) + ": the rota was changed after the audit."
    reporter = app.test_client()
    page = reporter.get("/follow-up").get_data(as_text=True)
    sent = reporter.post(
        "/follow-up", data={"csrf_token": csrf_token(page), "receipt": receipt, "draft": draft}
    )
    assert sent.status_code == 303
    cookie = _cookie(reporter)
    needles = [text_needle(draft, "draft")]

    row = _row(app, cookie)
    assert row is not None
    assert leaks_in_database(runtime_of(app).engine, needles) == []
    assert leaks_in_files(instance.path, needles) == []
    assert find(_opened(row, cookie), needles) == ["draft"], "it waits in the sealed session"
    assert draft in reporter.get("/follow-up/case").get_data(as_text=True)
    assert find(_opened(_row(app, _cookie(reporter)), _cookie(reporter)), needles) == [], "offered once"
