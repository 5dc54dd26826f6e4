"""Bad input, by mistake or on purpose: every answer is a plain page with the right status, never a 500.

Missing or forged CSRF tokens, text that is too long or holds NUL bytes, requests
and files over the limits, invalid choices, wrong methods, unknown pages and bytes
that are not UTF-8.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html as html_lib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import (
    PASSWORD,
    REPORT,
    Instance,
    OfficerAccount,
    add_officer,
    csrf_token,
    follow_up,
    form_post,
    login,
    reports_listed,
    runtime_of,
    submit_report,
)
from whistle import create_app
from whistle.config import Settings
from whistle.services.context import Clock

EXPIRED_NOTICE = "For your safety this page expired while it was open."
TYPED = "The duty manager told us to backdate the visit records for the inspection."


# --- helpers -----------------------------------------------------------------


def text_of(page: str) -> str:
    """The words a person reads on a page: tags dropped, entities decoded, spaces collapsed."""
    inline = re.sub(r"</?(?:strong|em|span|a|abbr|code)\b[^>]*>", "", page)
    words = re.sub(r"<[^>]+>", " ", inline)
    return " ".join(html_lib.unescape(words).split())


def textarea(page: str, name: str) -> str:
    match = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert match, f"no textarea {name} on the page"
    return html_lib.unescape(match.group(1)).lstrip("\r\n")


def field_errors(page: str) -> list[str]:
    return [text_of(error) for error in re.findall(r'<p class="field-error"[^>]*>(.*?)</p>', page, re.S)]


def officer_client(app: Flask, account: OfficerAccount) -> FlaskClient:
    officer = app.test_client()
    response = login(officer, account)
    assert response.status_code == 303, response.get_data(as_text=True)
    return officer


def stored_files(instance: Instance) -> list[Path]:
    return [path for path in (instance.path / "files").rglob("*") if path.is_file()]


def assert_plain_error_page(page: str) -> None:
    """An error page in plain words: no traceback, no exception text, no framework wording."""
    for leak in ("Traceback", "Exception", "Error:", "werkzeug", "CSRF", "Bad Request", 'File "'):
        assert leak not in page, leak


def post_report(client: FlaskClient, **fields: object):
    return form_post(client, "/report", {**REPORT, **fields}, content_type="multipart/form-data")


@dataclasses.dataclass(frozen=True)
class ShiftedClock(Clock):
    """The real clock, moved forward by ``offset``: lets a test pass the time."""

    offset: dt.timedelta = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


def pass_time(app: Flask, offset: dt.timedelta) -> None:
    rt = runtime_of(app)
    moved = dataclasses.replace(rt, clock=ShiftedClock(rt.clock.timezone, offset))
    app.extensions["whistle"] = moved
    app.session_interface.runtime = moved  # type: ignore[attr-defined]


def app_with(instance: Instance, **settings: object) -> Iterator[Flask]:
    app = create_app(Settings.load(instance.path, **settings))
    app.config["TESTING"] = True
    yield app
    runtime_of(app).engine.dispose()


@pytest.fixture
def small_request_app(instance: Instance) -> Iterator[Flask]:
    yield from app_with(instance, max_request_bytes=200_000)


@pytest.fixture
def small_file_app(instance: Instance) -> Iterator[Flask]:
    yield from app_with(instance, max_file_bytes=1000, max_request_bytes=10_000_000)


# --- CSRF ----------------------------------------------------------------------------


def test_login_without_a_csrf_token_is_a_plain_400(app, alice):
    client = app.test_client()

    response = client.post("/officer/login", data={"email": alice.email, "password": PASSWORD})

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Something in that request was not right" in page
    assert_plain_error_page(page)
    assert client.get("/officer/").status_code == 303


def test_login_with_a_forged_or_borrowed_csrf_token_is_refused(app, alice):
    victim = app.test_client()
    borrowed = csrf_token(victim.get("/officer/login").get_data(as_text=True))
    attacker = app.test_client()
    attacker.get("/officer/login")

    for token in ("forged", borrowed):
        response = attacker.post(
            "/officer/login", data={"csrf_token": token, "email": alice.email, "password": PASSWORD}
        )
        assert response.status_code == 400, token
        assert_plain_error_page(response.get_data(as_text=True))
    assert attacker.get("/officer/").status_code == 303


def test_a_report_without_a_csrf_token_keeps_what_was_typed(app, alice):
    client = app.test_client()

    response = client.post(
        "/report", data={**REPORT, "what_happened": TYPED}, content_type="multipart/form-data"
    )

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert EXPIRED_NOTICE in text_of(page)
    assert textarea(page, "what_happened") == TYPED
    assert "Your report has been sent" not in page
    assert reports_listed(officer_client(app, alice)) == []


def test_a_report_with_a_forged_csrf_token_keeps_what_was_typed(app, alice):
    client = app.test_client()
    client.get("/report")

    response = client.post(
        "/report",
        data={**REPORT, "what_happened": TYPED, "csrf_token": "IjAwMDAi.forged.token"},
        content_type="multipart/form-data",
    )

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert EXPIRED_NOTICE in text_of(page)
    assert textarea(page, "what_happened") == TYPED
    assert reports_listed(officer_client(app, alice)) == []


def test_a_report_form_left_open_past_the_idle_limit_can_be_sent_again(app, alice):
    client = app.test_client()
    token = csrf_token(client.get("/report").get_data(as_text=True))
    pass_time(app, dt.timedelta(minutes=45))

    stale = client.post(
        "/report",
        data={**REPORT, "what_happened": TYPED, "csrf_token": token},
        content_type="multipart/form-data",
    )

    assert stale.status_code == 422
    page = stale.get_data(as_text=True)
    assert EXPIRED_NOTICE in text_of(page)
    assert textarea(page, "what_happened") == TYPED
    again = client.post(
        "/report",
        data={**REPORT, "what_happened": textarea(page, "what_happened"), "csrf_token": csrf_token(page)},
        content_type="multipart/form-data",
    )
    assert again.status_code == 200
    assert "Your report has been sent" in again.get_data(as_text=True)


def test_a_reply_without_a_csrf_token_is_refused_and_not_stored(app, alice):
    reporter = app.test_client()
    follow_up(reporter, submit_report(app.test_client()))
    assert reporter.get("/follow-up/case").status_code == 200

    response = reporter.post(
        "/follow-up/case", data={"body": "Sent by another site"}, content_type="multipart/form-data"
    )

    assert response.status_code == 422
    assert EXPIRED_NOTICE in text_of(response.get_data(as_text=True))
    assert "Sent by another site" not in text_of(reporter.get("/follow-up/case").get_data(as_text=True))
    assert "New message" not in officer_client(app, alice).get("/officer/").get_data(as_text=True)


# --- text ----------------------------------------------------------------------------


def test_over_long_text_is_refused_and_given_back(app, alice):
    long_text = ("Missed visit. " * 1500)[:20_001]
    assert len(long_text) == 20_001

    response = post_report(app.test_client(), what_happened=long_text)

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Error: Please keep this under 20,000 characters." in field_errors(page)
    assert textarea(page, "what_happened") == long_text
    assert reports_listed(officer_client(app, alice)) == []


def test_text_of_exactly_the_limit_is_accepted(app, alice):
    text = ("Missed visit. " * 1500)[:20_000]

    submit_report(app.test_client(), what_happened=text)

    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    assert text.strip() in html_lib.unescape(
        officer.get(f"/officer/reports/{report_id}").get_data(as_text=True)
    )


def test_a_nul_byte_in_the_report_is_refused_plainly(app, alice):
    response = post_report(app.test_client(), what_happened="Before\x00after")

    assert response.status_code == 422
    assert any("NUL byte" in error for error in field_errors(response.get_data(as_text=True)))
    assert reports_listed(officer_client(app, alice)) == []


def test_nul_bytes_elsewhere_are_refused_not_a_500(app, alice):
    receipt = submit_report(app.test_client())

    follow = follow_up(app.test_client(), receipt + "\x00")
    officer_login = form_post(
        app.test_client(), "/officer/login", {"email": alice.email + "\x00", "password": PASSWORD}
    )
    reporter = app.test_client()
    follow_up(reporter, receipt)
    reply = form_post(reporter, "/follow-up/case", {"body": "a\x00b"}, content_type="multipart/form-data")
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    officer_reply = form_post(
        officer,
        f"/officer/reports/{report_id}",
        {"body": "a\x00b"},
        action=f"/officer/reports/{report_id}/messages",
    )

    for response in (follow, officer_login, reply, officer_reply):
        assert response.status_code == 422, response.request.path
    for response in (officer_login, reply, officer_reply):
        assert any("NUL byte" in e for e in field_errors(response.get_data(as_text=True))), (
            response.request.path
        )


# --- size limits -------------------------------------------------------------------


def test_a_request_over_the_limit_gets_a_413_page(small_request_app, instance):
    app = small_request_app
    alice = add_officer(app, "Alice Officer", "alice@example.org", admin=True)
    client = app.test_client()

    response = post_report(client, attachments=[(io.BytesIO(b"x" * 300_000), "video.mp4")])

    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "That was too large to send" in page
    assert_plain_error_page(page)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert reports_listed(officer_client(app, alice)) == []
    assert stored_files(instance) == []


def test_a_file_over_the_limit_is_refused_and_nothing_is_kept(small_file_app, instance):
    app = small_file_app
    alice = add_officer(app, "Alice Officer", "alice@example.org", admin=True)

    response = post_report(
        app.test_client(),
        what_happened=TYPED,
        attachments=[(io.BytesIO(b"a" * 1000), "small.txt"), (io.BytesIO(b"b" * 5000), "big.bin")],
    )

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Error: The file big.bin is larger than the limit." in field_errors(page)
    assert textarea(page, "what_happened") == TYPED
    assert "big.bin" in text_of(page[: page.index("<h1>")])  # named at the top, to choose again
    assert reports_listed(officer_client(app, alice)) == []
    assert stored_files(instance) == []


def test_a_file_of_exactly_the_limit_is_accepted(small_file_app, instance):
    app = small_file_app
    alice = add_officer(app, "Alice Officer", "alice@example.org", admin=True)

    submit_report(app.test_client(), attachments=[(io.BytesIO(b"a" * 1000), "exact.txt")])

    assert len(reports_listed(officer_client(app, alice))) == 1
    assert len(stored_files(instance)) == 1


def test_a_reply_with_a_file_over_the_limit_keeps_nothing(small_file_app, instance):
    app = small_file_app
    alice = add_officer(app, "Alice Officer", "alice@example.org", admin=True)
    reporter = app.test_client()
    follow_up(reporter, submit_report(app.test_client()))

    response = form_post(
        reporter,
        "/follow-up/case",
        {"body": "Here is the recording.", "attachments": [(io.BytesIO(b"b" * 5000), "big.m4a")]},
        content_type="multipart/form-data",
    )

    assert response.status_code == 422
    assert "Error: The file big.m4a is larger than the limit." in field_errors(
        response.get_data(as_text=True)
    )
    assert "Here is the recording." not in reporter.get("/follow-up/case").get_data(as_text=True)
    officer = officer_client(app, alice)
    assert "New message" not in officer.get("/officer/").get_data(as_text=True)
    assert stored_files(instance) == []


def test_more_files_than_allowed_are_refused(app, alice, instance):
    files = [(io.BytesIO(b"page %d" % n), f"page{n}.txt") for n in range(11)]

    response = post_report(app.test_client(), what_happened=TYPED, attachments=files)

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Error: You can add up to 10 files at a time." in field_errors(page)
    assert textarea(page, "what_happened") == TYPED
    assert reports_listed(officer_client(app, alice)) == []
    assert stored_files(instance) == []


# --- choices, methods, unknown pages -------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("category", "nonsense"),
        ("immediate_risk", "maybe"),
        ("raised_before", "perhaps"),
        ("excluded_officers", "0" * 32),
        ("category", ""),
    ],
)
def test_invalid_choices_are_refused_not_a_500(app, alice, field, value):
    response = post_report(app.test_client(), **{field: value}, what_happened=TYPED)

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "There is a problem" in page
    assert textarea(page, "what_happened") == TYPED
    assert reports_listed(officer_client(app, alice)) == []


def test_an_invalid_status_is_refused(client, app, alice):
    submit_report(client)
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)

    response = form_post(
        officer,
        f"/officer/reports/{report_id}",
        {"status": "archived"},
        action=f"/officer/reports/{report_id}/status",
    )

    assert response.status_code == 422
    assert "New since" in text_of(officer.get(f"/officer/reports/{report_id}").get_data(as_text=True))


def test_an_empty_officer_reply_is_refused(client, app, alice):
    submit_report(client)
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)

    response = form_post(
        officer,
        f"/officer/reports/{report_id}",
        {"body": ""},
        action=f"/officer/reports/{report_id}/messages",
    )

    assert response.status_code == 422
    assert "Error: Write a reply first." in field_errors(response.get_data(as_text=True))


@pytest.mark.parametrize(
    "method, path",
    [
        ("PUT", "/report"),
        ("DELETE", "/officer/"),
        ("GET", "/officer/logout"),
        ("GET", "/follow-up/leave"),
        ("PATCH", "/follow-up/case"),
        ("DELETE", "/"),
    ],
)
def test_wrong_methods_get_a_405_page(app, alice, method, path):
    response = app.test_client().open(path, method=method)

    assert response.status_code == 405
    page = response.get_data(as_text=True)
    assert "That is not possible here" in page
    assert_plain_error_page(page)


def test_an_unknown_page_is_a_404_with_the_security_headers(app):
    response = app.test_client().get("/no/such/page")

    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in response.headers


# --- bytes that are not UTF-8 ------------------------------------------------------


def multipart(
    fields: list[tuple[bytes, bytes]], files: list[tuple[bytes, bytes, bytes]] | None = None
) -> tuple[bytes, str]:
    boundary = b"----whistle-test-boundary"
    parts = [
        b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (boundary, name, value)
        for name, value in fields
    ]
    parts += [
        b'--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n%s\r\n" % (boundary, name, filename, data)
        for name, filename, data in files or []
    ]
    body = b"".join(parts) + b"--%s--\r\n" % boundary
    return body, f"multipart/form-data; boundary={boundary.decode()}"


def report_fields(token: str, what_happened: bytes) -> list[tuple[bytes, bytes]]:
    fields = {**REPORT, "what_happened": what_happened, "csrf_token": token.encode()}
    return [
        (name.encode(), value if isinstance(value, bytes) else value.encode())
        for name, value in fields.items()
    ]


def test_invalid_utf8_in_a_multipart_field_is_read_with_replacement_characters(app, alice):
    client = app.test_client()
    token = csrf_token(client.get("/report").get_data(as_text=True))
    body, content_type = multipart(report_fields(token, b"Broken \xff\xfe bytes \xc3( here"))

    response = client.post("/report", data=body, content_type=content_type)

    assert response.status_code == 200
    assert "Your report has been sent" in response.get_data(as_text=True)
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    page = officer.get(f"/officer/reports/{report_id}")
    assert page.status_code == 200
    assert "Broken \ufffd\ufffd bytes \ufffd( here" in page.get_data(as_text=True)


def test_invalid_utf8_in_a_file_name_is_refused_not_a_500(app, alice):
    client = app.test_client()
    token = csrf_token(client.get("/report").get_data(as_text=True))
    body, content_type = multipart(
        report_fields(token, b"Plain words"), [(b"attachments", b"scan\xff.pdf", b"%PDF")]
    )

    response = client.post("/report", data=body, content_type=content_type)

    # Such a body cannot be read as a form at all: the reporter gets the form back.
    assert response.status_code == 422
    assert "Raise a concern" in response.get_data(as_text=True)
    assert reports_listed(officer_client(app, alice)) == []


def test_invalid_utf8_in_a_multipart_reply_is_not_a_500(app, alice):
    reporter = app.test_client()
    follow_up(reporter, submit_report(app.test_client()))
    token = csrf_token(reporter.get("/follow-up/case").get_data(as_text=True))
    body, content_type = multipart([(b"csrf_token", token.encode()), (b"body", b"Broken \xff\xfe bytes")])

    response = reporter.post("/follow-up/case", data=body, content_type=content_type)

    assert response.status_code == 303
    assert "Broken \ufffd\ufffd bytes" in reporter.get("/follow-up/case").get_data(as_text=True)


def test_invalid_utf8_in_urlencoded_forms_is_not_a_500(app, alice):
    follow = app.test_client()
    token = csrf_token(follow.get("/follow-up").get_data(as_text=True))
    receipt_response = follow.post(
        "/follow-up",
        data=b"csrf_token=" + token.encode() + b"&receipt=%FF%FE%C3%28-%C0%AF",
        content_type="application/x-www-form-urlencoded",
    )
    officer = app.test_client()
    token = csrf_token(officer.get("/officer/login").get_data(as_text=True))
    login_response = officer.post(
        "/officer/login",
        data=b"csrf_token=" + token.encode() + b"&email=alice%FF%40example.org&password=" + b"%FF%FE" * 10,
        content_type="application/x-www-form-urlencoded",
    )
    report = app.test_client()
    token = csrf_token(report.get("/report").get_data(as_text=True))
    report_response = report.post(
        "/report",
        data=b"csrf_token="
        + token.encode()
        + b"&category=caseloads%FF&what_happened=%FF%FE&immediate_risk=no&raised_before=no",
        content_type="application/x-www-form-urlencoded",
    )

    assert receipt_response.status_code == 422
    assert "We could not find a report" in text_of(receipt_response.get_data(as_text=True))
    assert login_response.status_code == 422
    assert report_response.status_code == 422
    assert reports_listed(officer_client(app, alice)) == []


def test_raw_bytes_that_are_not_utf8_in_an_urlencoded_body_are_a_plain_400(app, alice):
    client = app.test_client()
    token = csrf_token(client.get("/follow-up").get_data(as_text=True))

    response = client.post(
        "/follow-up",
        data=b"csrf_token=" + token.encode() + b"&receipt=\xff\xfe\xc3(",
        content_type="application/x-www-form-urlencoded",
    )

    # The body cannot be read as a form at all, so the CSRF token is missing too.
    assert response.status_code == 400
    assert_plain_error_page(response.get_data(as_text=True))


def test_invalid_utf8_in_the_query_string_and_path_is_not_a_500(app, alice):
    officer = officer_client(app, alice)

    assert officer.get("/officer/?page=%FF%FE").status_code == 200
    assert officer.get("/officer/reports/%FF%FE").status_code == 404
    assert app.test_client().get("/%FF%FE").status_code == 404


def test_a_part_whose_name_cannot_be_read_is_left_out_not_a_500(app, alice):
    """A multipart part named with a line break in it: read as named None by the parser, it
    once failed the CSRF check itself (a 500). It is left out; the rest of the form is judged."""
    reporter = app.test_client()
    follow_up(reporter, submit_report(app.test_client()))
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    path = f"/officer/reports/{report_id}/messages"
    token = csrf_token(officer.get(f"/officer/reports/{report_id}").get_data(as_text=True))
    nameless = [(b"x-\n", b""), (b"\n", b"stray")]

    body, content_type = multipart(nameless, [(b"x\n", b"scan.pdf", b"%PDF")])
    refused = officer.post(path, data=body, content_type=content_type)
    assert refused.status_code == 400  # no token: the plain refusal, not a 500

    fields = [(b"csrf_token", token.encode()), (b"body", b"Seen, thank you"), *nameless]
    body, content_type = multipart(fields, [(b"x\n", b"scan.pdf", b"%PDF")])
    sent = officer.post(path, data=body, content_type=content_type)
    assert sent.status_code == 303
    assert "Seen, thank you" in text_of(reporter.get("/follow-up/case").get_data(as_text=True))
