"""An officer's account through the browser: two-factor login, slowing after wrong
passwords, and getting back in after a lost password (with the recovery key, or
through an administrator's reset).

Codes are computed the way an authenticator app does it, from the key the
enrolment page shows; time passes with the app's clock moved forward, as in
test_officer's idle-expiry tests.
"""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import (
    PASSWORD,
    OfficerAccount,
    add_officer,
    csrf_token,
    form_post,
    login,
    reports_listed,
    runtime_of,
    submit_report,
)
from tests.functional.test_officer import field_errors, officer_client, pass_time, sent_to_login, text_of
from tests.security.helpers import bytes_needle, is_sqlite, leaks_in_database, leaks_in_files, text_needle
from tests.security.test_headers import assert_security_headers
from tests.unit.test_twofactor import authenticator_code
from whistle.models import Officer, Report
from whistle.services import officers, settings

LOGIN_FAILED = "That email address and password do not match an officer's account."
RESET_FAILED = "That email address and recovery key do not match an officer's account."
NEW_PASSWORD = "a brand new passphrase, long enough"
ENROL = "/officer/account/two-factor"
QR = "/officer/account/two-factor/qr.svg"
CODE = "/officer/login/code"
STEP = dt.timedelta(seconds=30)


# --- helpers ---------------------------------------------------------------------


def app_now(app: Flask) -> dt.datetime:
    return runtime_of(app).clock.now()


def secret_on(page: str) -> bytes:
    match = re.search(r'<p class="receipt" translate="no"><strong>([A-Z2-7 ]+)</strong>', page)
    assert match, "no key on the enrolment page"
    text = match.group(1).replace(" ", "")
    return base64.b32decode(text + "=" * (-len(text) % 8))


def enrol(app: Flask, client: FlaskClient) -> bytes:
    """Set up two-factor login for the logged-in officer; return the secret the page showed."""
    page = client.get(ENROL).get_data(as_text=True)
    secret = secret_on(page)
    response = form_post(client, ENROL, {"code": authenticator_code(secret, app_now(app))})
    assert response.status_code == 303, response.get_data(as_text=True)
    assert "Two-factor login is now on" in text_of(
        client.get(response.headers["Location"]).get_data(as_text=True)
    )
    return secret


def code_now(app: Flask, secret: bytes) -> str:
    return authenticator_code(secret, app_now(app))


def wrong_code(app: Flask, secret: bytes) -> str:
    now = app_now(app)
    window = {authenticator_code(secret, now + drift * STEP) for drift in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222") if code not in window)


def send_code(client: FlaskClient, code: str):
    return form_post(client, CODE, {"code": code})


def log_in_with_code(app: Flask, account: OfficerAccount, secret: bytes) -> FlaskClient:
    client = app.test_client()
    first = login(client, account)
    assert first.status_code == 303 and first.headers["Location"].endswith(CODE)
    second = send_code(client, code_now(app, secret))
    assert second.status_code == 303, second.get_data(as_text=True)
    return client


def log_out(client: FlaskClient) -> None:
    page = client.get("/officer/").get_data(as_text=True)
    assert client.post("/officer/logout", data={"csrf_token": csrf_token(page)}).status_code == 303


def enrolled_alice(app: Flask, alice: OfficerAccount) -> bytes:
    client = officer_client(app, alice)
    secret = enrol(app, client)
    log_out(client)
    # The enrolment used this step's code; a login needs a later one.
    pass_time(app, dt.timedelta(minutes=1))
    return secret


def require_two_factor(app: Flask, admin: OfficerAccount) -> None:
    rt = runtime_of(app)
    with rt.session_factory() as db, db.begin():
        settings.change(db, admin.public_id, {"require_two_factor": True}, rt.clock.now())


def attempt(app: Flask, email: str, password: str):
    return form_post(app.test_client(), "/officer/login", {"email": email, "password": password})


# --- enrolment ---------------------------------------------------------------------


def test_enrolment_shows_the_key_and_a_qr_code_then_needs_a_code(app, alice):
    client = officer_client(app, alice)
    response = client.get(ENROL)
    assert_security_headers(response)
    page = response.get_data(as_text=True)
    secret = secret_on(page)
    assert len(secret) == 20
    assert f'<img src="{QR}"' in page

    qr = client.get(QR)
    assert qr.status_code == 200
    assert_security_headers(qr)
    assert qr.mimetype == "image/svg+xml"
    svg = qr.get_data(as_text=True)
    assert "<svg" in svg and "<path" in svg
    assert not re.search(r"\sstyle\s*=|<style|<script|\son[a-z]+\s*=", svg, re.I)
    assert "no-store" in qr.headers["Cache-Control"]

    # The key stays the same while the page is reloaded, so a scanned code stays good.
    assert secret_on(client.get(ENROL).get_data(as_text=True)) == secret
    refused = form_post(client, ENROL, {"code": wrong_code(app, secret)})
    assert refused.status_code == 422
    assert "That code is not right" in " ".join(field_errors(refused.get_data(as_text=True)))

    accepted = form_post(client, ENROL, {"code": code_now(app, secret)})
    assert accepted.status_code == 303
    done = client.get(accepted.headers["Location"]).get_data(as_text=True)
    assert "Two-factor login is now on" in text_of(done)
    # Once on, the key is no longer shown nor drawn.
    assert client.get(QR).status_code == 404
    assert 'class="receipt"' not in done


def test_the_qr_code_needs_an_enrolment_in_progress(app, alice):
    assert officer_client(app, alice).get(QR).status_code == 404


def test_a_code_sent_without_an_enrolment_in_progress_sets_up_nothing(app, alice):
    client = officer_client(app, alice)
    token = csrf_token(client.get("/officer/").get_data(as_text=True))
    response = client.post(ENROL, data={"csrf_token": token, "code": "123456"})
    assert response.status_code == 303 and response.headers["Location"].endswith(ENROL)
    rt = runtime_of(app)
    with rt.session_factory() as db:
        assert (
            db.scalar(select(Officer.totp_secret_sealed).where(Officer.public_id == alice.public_id)) is None
        )


def test_moving_to_a_new_phone_replaces_the_old_secret(app, alice):
    old = enrolled_alice(app, alice)
    client = log_in_with_code(app, alice, old)
    status = client.get(ENROL).get_data(as_text=True)
    assert "Two-factor login is on" in text_of(status)
    page = client.get(f"{ENROL}?again=1").get_data(as_text=True)
    new = secret_on(page)
    assert new != old
    # Leaving the set-up half done keeps the old app working, and forgets the new key.
    client.get(ENROL)
    assert client.get(QR).status_code == 404
    new = secret_on(client.get(f"{ENROL}?again=1").get_data(as_text=True))
    pass_time(app, dt.timedelta(minutes=2))
    moved = {"code": code_now(app, new), "current": alice.password}
    assert form_post(client, f"{ENROL}?again=1", moved, action=ENROL).status_code == 303
    log_out(client)

    pass_time(app, dt.timedelta(minutes=3))
    officer = app.test_client()
    login(officer, alice)
    if code_now(app, old) != code_now(app, new):
        assert send_code(officer, code_now(app, old)).status_code == 422
    assert send_code(officer, code_now(app, new)).status_code == 303


def test_login_with_two_factor_asks_for_the_code_after_the_password(app, client, alice):
    submit_report(client)
    secret = enrolled_alice(app, alice)

    officer = app.test_client()
    response = login(officer, alice)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(CODE)
    page = officer.get(CODE).get_data(as_text=True)
    assert "Enter your code" in text_of(page)
    assert 'autocomplete="one-time-code"' in page

    response = send_code(officer, code_now(app, secret))
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/officer/")
    assert len(reports_listed(officer)) == 1


def test_a_reply_written_before_the_login_ended_waits_through_the_two_factor_step(app, client, alice):
    submit_report(client)
    secret = enrolled_alice(app, alice)
    officer = log_in_with_code(app, alice, secret)
    (report_id,) = reports_listed(officer)
    case_page = officer.get(f"/officer/reports/{report_id}").get_data(as_text=True)
    typed = "We have spoken to the ward manager."

    pass_time(app, dt.timedelta(minutes=40))
    ended = officer.post(
        f"/officer/reports/{report_id}/messages", data={"csrf_token": csrf_token(case_page), "body": typed}
    ).get_data(as_text=True)
    draft = {"draft": typed, "draft_for": f"{report_id}/messages"}
    first = officer.post(
        "/officer/login",
        data={"csrf_token": csrf_token(ended), "email": alice.email, "password": alice.password, **draft},
    )
    assert first.headers["Location"].endswith(CODE)
    second = send_code(officer, code_now(app, secret))

    assert second.status_code == 303
    assert second.headers["Location"].endswith(f"/officer/reports/{report_id}")
    page = officer.get(second.headers["Location"]).get_data(as_text=True)
    assert re.search(
        r'<textarea[^>]*name="body"[^>]*>\s*We have spoken to the ward manager.</textarea>', page
    )


def test_a_wrong_code_is_refused(app, alice):
    secret = enrolled_alice(app, alice)
    officer = app.test_client()
    login(officer, alice)
    response = send_code(officer, wrong_code(app, secret))
    assert response.status_code == 422
    assert field_errors(response.get_data(as_text=True)) == [
        "Error: That code is not right. Enter the 6-digit code your authenticator app shows now."
    ]
    assert sent_to_login(officer.get("/officer/"))


def test_a_code_used_once_is_refused_the_second_time(app, alice):
    secret = enrolled_alice(app, alice)
    code = code_now(app, secret)
    first = app.test_client()
    login(first, alice)
    assert send_code(first, code).status_code == 303

    # The same code, within its 30 seconds, by someone who saw it.
    second = app.test_client()
    login(second, alice)
    response = send_code(second, code)
    assert response.status_code == 422
    assert "has been used already" in " ".join(field_errors(response.get_data(as_text=True)))
    assert sent_to_login(second.get("/officer/"))
    assert first.get("/officer/").status_code == 200


def test_a_login_waiting_for_its_code_opens_nothing(app, alice):
    secret = enrolled_alice(app, alice)
    officer = app.test_client()
    login(officer, alice)
    pending_cookie = officer.get_cookie("whistle").value
    for path in ("/officer/", ENROL, "/admin/"):
        # The guard refuses a pending login, and that ends it.
        login(officer, alice)
        assert sent_to_login(officer.get(path)), path
    assert sent_to_login(officer.get(CODE))

    login(officer, alice)
    assert send_code(officer, code_now(app, secret)).status_code == 303
    assert officer.get_cookie("whistle").value != pending_cookie


def test_a_login_waits_five_minutes_for_its_code(app, alice):
    secret = enrolled_alice(app, alice)
    officer = app.test_client()
    login(officer, alice)
    token = csrf_token(officer.get(CODE).get_data(as_text=True))
    pass_time(app, dt.timedelta(minutes=7))
    response = officer.post(CODE, data={"csrf_token": token, "code": code_now(app, secret)})
    assert sent_to_login(response)
    assert sent_to_login(officer.get("/officer/"))


def test_the_code_page_without_a_password_first_sends_to_login(client):
    assert sent_to_login(client.get(CODE))


# --- wrong passwords ---------------------------------------------------------------------


def test_a_strangers_wrong_passwords_slow_new_devices_but_never_the_officers_own(app, alice):
    # Alice has logged in from this browser before, and logged out.
    own = app.test_client()
    assert login(own, alice).status_code == 303
    log_out(own)

    for guess in range(officers.FREE_FAILURES):
        assert attempt(app, alice.email, f"wrong guess number {guess}").status_code == 422
    # A browser she has never logged in from must wait, even with the right password ...
    delayed = attempt(app, alice.email, PASSWORD)
    assert delayed.status_code == 429
    assert int(delayed.headers["Retry-After"]) >= 1
    assert "Several wrong passwords were tried for this account just now" in text_of(
        delayed.get_data(as_text=True)
    )
    # ... but her own browser does not, whatever the stranger keeps trying.
    for guess in range(20):
        attempt(app, alice.email, f"another wrong guess {guess}")
    assert login(own, alice).status_code == 303
    assert own.get("/officer/").status_code == 200

    # And a new browser only waits: no refusal lasts longer than a minute.
    pass_time(app, dt.timedelta(seconds=61))
    client = app.test_client()
    assert login(client, alice).status_code == 303
    assert client.get("/officer/").status_code == 200


def test_a_forged_device_cookie_is_a_new_device(app, alice, bob):
    bobs = app.test_client()
    assert login(bobs, bob).status_code == 303
    for guess in range(officers.FREE_FAILURES):
        attempt(app, alice.email, f"wrong guess number {guess}")
    # Bob's device is known for Bob, not for Alice; a made-up cookie is nobody's.
    assert login(bobs, alice).status_code == 429
    forged = app.test_client()
    forged.set_cookie("whistle_device", "eyJvZmZpY2VyIjoiYWxpY2UifQ.forged.signature", path="/officer")
    assert login(forged, alice).status_code == 429


def test_unknown_and_wrong_get_the_same_page(app, alice, bob):
    wrong = attempt(app, alice.email, "not the password at all")
    unknown = attempt(app, "mallory@example.org", PASSWORD)

    assert wrong.status_code == unknown.status_code == 422
    pages = [text_of(r.get_data(as_text=True)) for r in (wrong, unknown)]
    assert pages[0] == pages[1]
    assert LOGIN_FAILED in pages[0]
    # Nothing else differs either: headers, apart from the new session cookie's value.
    names = [sorted(k for k, _ in r.headers if k != "Set-Cookie") for r in (wrong, unknown)]
    assert names[0] == names[1]


def test_failed_logins_and_the_slowing_are_audited(app, alice):
    from whistle.models import AuditEvent

    for _ in range(officers.FREE_FAILURES + 5):
        attempt(app, alice.email, "Marker-wrong-password")
    rt = runtime_of(app)
    with rt.session_factory() as db:
        events = [
            (e.kind, e.subject, e.detail) for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]
    # Attempts refused while the browser must wait are not counted, nor written down.
    assert events.count(("login_failed", alice.public_id, "password")) == officers.FREE_FAILURES
    assert ("login_slowed", alice.public_id, "") in events
    assert "Marker" not in repr(events)


def test_wrong_codes_slow_the_login_too(app, alice):
    secret = enrolled_alice(app, alice)
    officer = app.test_client()
    login(officer, alice)
    for _ in range(officers.FREE_FAILURES - 1):
        assert send_code(officer, wrong_code(app, secret)).status_code == 422
    ended = send_code(officer, wrong_code(app, secret))
    assert ended.status_code == 422
    assert "Your login was not completed" in text_of(ended.get_data(as_text=True))
    assert sent_to_login(officer.get(CODE))

    # This browser has not completed a login yet: it waits before the password is tried again.
    assert attempt(app, alice.email, PASSWORD).status_code == 429
    pass_time(app, dt.timedelta(minutes=2))
    log_in_with_code(app, alice, secret)


# --- mandatory two-factor ----------------------------------------------------------


def test_when_two_factor_is_mandatory_an_officer_must_enrol_first(app, client, alice, bob):
    submit_report(client)
    require_two_factor(app, alice)
    officer = app.test_client()
    response = login(officer, bob)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(ENROL)

    [public_id] = _report_ids(app)
    for path in ("/officer/", f"/officer/reports/{public_id}"):
        refused = officer.get(path)
        assert refused.status_code == 303 and refused.headers["Location"].endswith(ENROL), path
    page = officer.get(ENROL)
    assert page.status_code == 200
    assert "Your organisation requires two-factor login" in text_of(page.get_data(as_text=True))
    assert officer.get(QR).status_code == 200
    # A form elsewhere is refused too.
    note = officer.post(
        f"/officer/reports/{public_id}/notes",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "note-body": "x"},
    )
    assert note.status_code == 303 and note.headers["Location"].endswith(ENROL)

    enrol(app, officer)
    assert officer.get("/officer/").status_code == 200
    assert officer.get(f"/officer/reports/{public_id}").status_code == 200


def test_an_administrator_without_two_factor_is_held_back_too(app, alice):
    require_two_factor(app, alice)
    officer = officer_client(app, alice)
    refused = officer.get("/admin/")
    assert refused.status_code == 303 and refused.headers["Location"].endswith(ENROL)
    # Logging out stays possible.
    page = officer.get(ENROL).get_data(as_text=True)
    assert officer.post("/officer/logout", data={"csrf_token": csrf_token(page)}).status_code == 303
    assert sent_to_login(officer.get(ENROL))


def test_an_officer_already_logged_in_is_sent_to_enrol_when_it_becomes_mandatory(app, alice, bob):
    officer = officer_client(app, bob)
    assert officer.get("/officer/").status_code == 200
    require_two_factor(app, alice)
    refused = officer.get("/officer/")
    assert refused.status_code == 303 and refused.headers["Location"].endswith(ENROL)


def _report_ids(app: Flask) -> list[str]:
    rt = runtime_of(app)
    with rt.session_factory() as db:
        return list(db.scalars(select(Report.public_id)))


# --- the secret at rest ----------------------------------------------------------


def test_the_totp_secret_is_not_stored_in_clear(app, instance, alice):
    secret = enrolled_alice(app, alice)
    rt = runtime_of(app)
    with rt.session_factory() as db:
        sealed = db.scalar(select(Officer.totp_secret_sealed).where(Officer.public_id == alice.public_id))
    assert sealed, "two-factor login was not stored"
    base32 = base64.b32encode(secret).decode().rstrip("=")
    needles = [bytes_needle("secret", secret), text_needle(base32, "secret (base32)")]
    # Before and after a login that uses it: nothing at rest shows it.
    assert leaks_in_database(rt.engine, needles) == []
    log_in_with_code(app, alice, secret)
    assert leaks_in_database(rt.engine, needles) == []
    if is_sqlite(app):
        assert leaks_in_files(instance.path, needles) == []


# --- reset with the recovery key ----------------------------------------------------


def reset(app: Flask, email: str, recovery_key: str, password: str = NEW_PASSWORD):
    return form_post(
        app.test_client(),
        "/officer/reset",
        {"email": email, "recovery_key": recovery_key, "password": password},
    )


def recovery_key_on(page: str) -> str:
    match = re.search(r'<p class="receipt" translate="no"><strong>([0-9A-Z-]+)</strong>', page)
    assert match, "no recovery key on the page"
    return match.group(1)


def test_the_login_page_leads_to_the_reset(client):
    assert 'href="/officer/reset"' in client.get("/officer/login").get_data(as_text=True)


def test_a_reset_with_the_recovery_key_keeps_access_to_every_report(app, client, alice):
    submit_report(client)
    response = reset(app, alice.email, alice.recovery_code.lower().replace("-", " "))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "You keep access to all your cases" in text_of(page)
    new_key = recovery_key_on(page)
    assert new_key != alice.recovery_code

    assert attempt(app, alice.email, PASSWORD).status_code == 422
    officer = officer_client(
        app, OfficerAccount(alice.public_id, alice.email, alice.name, NEW_PASSWORD, new_key)
    )
    [public_id] = reports_listed(officer)
    assert officer.get(f"/officer/reports/{public_id}").status_code == 200

    # The old recovery key no longer works; the new one does.
    refused = reset(app, alice.email, alice.recovery_code, "yet another long password")
    assert refused.status_code == 422
    assert field_errors(refused.get_data(as_text=True)) == [f"Error: {RESET_FAILED}"]
    assert reset(app, alice.email, new_key, "yet another long password").status_code == 200


def test_a_reset_ends_the_officers_sessions(app, alice):
    officer = officer_client(app, alice)
    assert reset(app, alice.email, alice.recovery_code).status_code == 200
    assert sent_to_login(officer.get("/officer/"))


def test_an_unknown_email_and_a_wrong_key_get_the_same_page(app, alice, bob):
    unknown = reset(app, "mallory@example.org", alice.recovery_code)
    wrong = reset(app, alice.email, bob.recovery_code)
    assert unknown.status_code == wrong.status_code == 422
    assert text_of(unknown.get_data(as_text=True)) == text_of(wrong.get_data(as_text=True))
    # Neither changed anything.
    assert login(app.test_client(), alice).status_code == 303


def test_a_reset_keeps_two_factor_on(app, alice):
    secret = enrolled_alice(app, alice)
    assert reset(app, alice.email, alice.recovery_code).status_code == 200
    account = OfficerAccount(alice.public_id, alice.email, alice.name, NEW_PASSWORD, "")
    log_in_with_code(app, account, secret)


# --- reset by an administrator (no recovery key) ---------------------------------


def admin_reset(app: Flask, admin: OfficerAccount, officer: OfficerAccount) -> str:
    rt = runtime_of(app)
    with rt.session_factory() as db, db.begin():
        acting = db.scalar(select(Officer).where(Officer.public_id == admin.public_id))
        return officers.reset_without_recovery(db, rt.keyring.kdf, acting, officer.public_id, rt.clock.now())


def test_a_reset_by_an_administrator_gives_new_keys_and_lists_the_cases_to_grant(app, client, alice, bob):
    submit_report(client)
    submit_report(client)
    with runtime_of(app).session_factory() as db:
        received = sorted(day.strftime("%-d %B %Y") for day in db.scalars(select(Report.received_on)))
    bob_before = officer_client(app, bob)
    [first, second] = reports_listed(bob_before)

    token = admin_reset(app, alice, bob)
    assert sent_to_login(bob_before.get("/officer/")), "the reset ends the officer's sessions"
    assert attempt(app, bob.email, PASSWORD).status_code == 422

    welcome = app.test_client()
    page = welcome.get(f"/officer/welcome/{token}")
    assert page.status_code == 200
    assert "you get new keys" in text_of(page.get_data(as_text=True))
    done = form_post(welcome, f"/officer/welcome/{token}", {"password": NEW_PASSWORD})
    assert done.status_code == 200
    words = text_of(done.get_data(as_text=True))
    assert "2 cases now need a grant from a colleague" in words
    for day in received:
        assert f"Received {day}" in words
    new_key = recovery_key_on(done.get_data(as_text=True))

    # The link works once.
    assert app.test_client().get(f"/officer/welcome/{token}").status_code == 404

    bob_after = officer_client(app, OfficerAccount(bob.public_id, bob.email, bob.name, NEW_PASSWORD, new_key))
    assert reports_listed(bob_after) == []
    assert bob_after.get(f"/officer/reports/{first}").status_code == 404
    assert bob_after.get(f"/officer/reports/{second}").status_code == 404

    # A colleague gives one back.
    alice_client = officer_client(app, alice)
    granted = form_post(
        alice_client,
        f"/officer/reports/{first}",
        {"officer": bob.public_id},
        action=f"/officer/reports/{first}/access",
    )
    assert granted.status_code == 303
    assert bob_after.get(f"/officer/reports/{first}").status_code == 200
    assert bob_after.get(f"/officer/reports/{second}").status_code == 404


def test_a_weak_password_keeps_the_welcome_link_usable(app, alice, bob):
    token = admin_reset(app, alice, bob)
    client = app.test_client()
    refused = form_post(client, f"/officer/welcome/{token}", {"password": "short"})
    assert refused.status_code == 422
    assert form_post(client, f"/officer/welcome/{token}", {"password": NEW_PASSWORD}).status_code == 200


@pytest.mark.parametrize("token", ["not-a-token", "x" * 43])
def test_an_unknown_welcome_link_is_not_found(client, token):
    assert client.get(f"/officer/welcome/{token}").status_code == 404


def test_a_welcome_link_expires(app, alice, bob):
    token = admin_reset(app, alice, bob)
    pass_time(app, officers.INVITATION_LIFETIME + dt.timedelta(minutes=1))
    assert app.test_client().get(f"/officer/welcome/{token}").status_code == 404


def test_an_officer_with_no_cases_is_told_nothing_needs_a_grant(app, alice):
    carol = add_officer(app, "Carol Officer", "carol@example.org")
    token = admin_reset(app, alice, carol)
    done = form_post(app.test_client(), f"/officer/welcome/{token}", {"password": NEW_PASSWORD})
    assert "nothing needs to be given to you again" in text_of(done.get_data(as_text=True))


@pytest.mark.parametrize("current", ["", "not my password at all", "000000"])
def test_someone_at_a_logged_in_screen_cannot_move_two_factor_to_their_phone(app, alice, current):
    """Whoever holds the session must also know the password, or hold the current app."""
    old = enrolled_alice(app, alice)
    client = log_in_with_code(app, alice, old)
    pass_time(app, dt.timedelta(minutes=2))
    page = client.get(f"{ENROL}?again=1").get_data(as_text=True)
    theirs = secret_on(page)
    assert "Your password, or a code from the app you use now" in text_of(page)
    if current == "000000" and code_now(app, old) == current:
        current = "111111"
    refused = form_post(
        client, f"{ENROL}?again=1", {"code": code_now(app, theirs), "current": current}, action=ENROL
    )
    assert refused.status_code == 422
    assert "enter your password or your current app" in text_of(refused.get_data(as_text=True))
    log_out(client)
    pass_time(app, dt.timedelta(minutes=4))
    officer = app.test_client()
    login(officer, alice)
    if code_now(app, old) != code_now(app, theirs):
        assert send_code(officer, code_now(app, theirs)).status_code == 422
    last = send_code(officer, code_now(app, old))
    assert last.status_code == 303, text_of(last.get_data(as_text=True))


def test_a_code_from_the_current_app_also_confirms_the_move(app, alice):
    old = enrolled_alice(app, alice)
    client = log_in_with_code(app, alice, old)
    pass_time(app, dt.timedelta(minutes=2))
    new = secret_on(client.get(f"{ENROL}?again=1").get_data(as_text=True))
    moved = {"code": code_now(app, new), "current": code_now(app, old)}
    assert form_post(client, f"{ENROL}?again=1", moved, action=ENROL).status_code == 303
