"""The officer area, as an officer, an outsider or a reporter poking at it would see it.

Logins and sessions (refusals, logout, fixation, idle expiry), the guard on every
route, pagination, downloads, hostile report text, and the first-run setup link.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html as html_lib
import io
import re
import secrets
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.http import parse_options_header

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
from whistle.models import Officer
from whistle.services import cases, officers
from whistle.services.context import Clock

COOKIE = "whistle"
LOGIN_FAILED = "That email address and password do not match an officer's account."
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
HOSTILE_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"


# --- helpers -----------------------------------------------------------------


def text_of(page: str) -> str:
    """The words a person reads on a page: tags dropped, entities decoded, spaces collapsed."""
    inline = re.sub(r"</?(?:strong|em|span|a|abbr|code)\b[^>]*>", "", page)
    words = re.sub(r"<[^>]+>", " ", inline)
    return " ".join(html_lib.unescape(words).split())


def field_errors(page: str) -> list[str]:
    return [text_of(error) for error in re.findall(r'<p class="field-error"[^>]*>(.*?)</p>', page, re.S)]


def officer_client(app: Flask, account: OfficerAccount) -> FlaskClient:
    officer = app.test_client()
    response = login(officer, account)
    assert response.status_code == 303, response.get_data(as_text=True)
    return officer


def cookie_value(client: FlaskClient) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None, "the client holds no session cookie"
    return cookie.value


def client_with_cookie(app: Flask, value: str) -> FlaskClient:
    other = app.test_client()
    other.set_cookie(COOKIE, value)
    return other


def sent_to_login(response) -> bool:
    return response.status_code == 303 and response.headers["Location"].endswith("/officer/login")


def attachment_links(page: str) -> list[str]:
    return re.findall(r'href="(/officer/reports/[0-9a-f]+/attachments/[0-9a-f]+)"', page)


def deactivate(app: Flask, account: OfficerAccount) -> None:
    rt = runtime_of(app)
    with rt.session_factory() as db, db.begin():
        db.query(Officer).filter(Officer.public_id == account.public_id).one().is_active = False


@dataclasses.dataclass(frozen=True)
class ShiftedClock(Clock):
    """The real clock, moved forward by ``offset``: lets a test pass the time."""

    offset: dt.timedelta = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


def pass_time(app: Flask, offset: dt.timedelta) -> None:
    """Move the app's clock to ``offset`` after the real time (for views and sessions)."""
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
def small_pages_app(instance: Instance) -> Iterator[Flask]:
    yield from app_with(instance, page_size=2)


# --- logging in ----------------------------------------------------------------------


def test_wrong_password_and_unknown_email_get_the_same_answer(app, alice):
    wrong_password = form_post(
        app.test_client(), "/officer/login", {"email": alice.email, "password": "not the password at all"}
    )
    unknown_email = form_post(
        app.test_client(), "/officer/login", {"email": "mallory@example.org", "password": PASSWORD}
    )

    assert wrong_password.status_code == unknown_email.status_code == 422
    assert field_errors(wrong_password.get_data(as_text=True)) == [f"Error: {LOGIN_FAILED}"]
    assert text_of(wrong_password.get_data(as_text=True)) == text_of(unknown_email.get_data(as_text=True))


def test_a_failed_login_gives_no_access(app, alice):
    client = app.test_client()
    form_post(client, "/officer/login", {"email": alice.email, "password": "not the password at all"})

    assert sent_to_login(client.get("/officer/"))


def test_email_is_matched_without_regard_to_case_or_spaces(app, alice):
    client = app.test_client()
    response = form_post(client, "/officer/login", {"email": "  ALICE@Example.org ", "password": PASSWORD})

    assert response.status_code == 303
    assert client.get("/officer/").status_code == 200


def test_a_deactivated_officer_cannot_log_in_and_their_session_stops_working(app, alice):
    existing = officer_client(app, alice)
    assert existing.get("/officer/").status_code == 200

    deactivate(app, alice)

    assert sent_to_login(existing.get("/officer/"))
    attempt = login(app.test_client(), alice)
    assert attempt.status_code == 422
    assert field_errors(attempt.get_data(as_text=True)) == [f"Error: {LOGIN_FAILED}"]


# --- the guard on every route ----------------------------------------------------------


@pytest.fixture
def a_report(client, app, alice) -> dict[str, str]:
    """A report with a file, and the officer routes that reach it."""
    submit_report(
        client,
        what_happened="Supervision has not happened for six months.",
        attachments=[(io.BytesIO(b"%PDF-1.4 notes"), "notes.pdf")],
    )
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    (download,) = attachment_links(officer.get(f"/officer/reports/{report_id}").get_data(as_text=True))
    return {"report_id": report_id, "download": download}


def officer_routes(ids: dict[str, str]) -> list[tuple[str, str, dict[str, str]]]:
    report = f"/officer/reports/{ids['report_id']}"
    return [
        ("GET", "/officer/", {}),
        ("GET", report, {}),
        ("GET", ids["download"], {}),
        ("POST", f"{report}/messages", {"body": "Hijacked reply"}),
        ("POST", f"{report}/status", {"status": "closed"}),
        ("POST", "/officer/logout", {}),
    ]


def assert_untouched(app: Flask, alice: OfficerAccount, report_id: str) -> None:
    page = text_of(officer_client(app, alice).get(f"/officer/reports/{report_id}").get_data(as_text=True))
    assert "Hijacked reply" not in page
    assert "New since" in page


def test_every_officer_route_refuses_an_anonymous_client(app, alice, a_report):
    for method, path, data in officer_routes(a_report):
        bare = app.test_client().open(path, method=method, data=data)
        assert bare.status_code in (303, 400, 200), (method, path, bare.status_code)
        if bare.status_code == 200:  # a reply or note comes back on the login page, and only there
            assert "Officer log in" in bare.get_data(as_text=True), (method, path)
        assert "Supervision has not happened" not in bare.get_data(as_text=True)
        if bare.status_code == 303:
            assert sent_to_login(bare), (method, path)

        # With a valid CSRF token, so that only the login guard stands in the way.
        anonymous = app.test_client()
        token = csrf_token(anonymous.get("/officer/login").get_data(as_text=True))
        response = anonymous.open(path, method=method, data={**data, "csrf_token": token})
        assert sent_to_login(response), (method, path, response.status_code)
        assert "Supervision has not happened" not in response.get_data(as_text=True)
        assert b"%PDF-1.4 notes" not in response.data

    assert_untouched(app, alice, a_report["report_id"])


def test_every_officer_route_refuses_a_reporter_session(app, alice, a_report):
    receipt_client = app.test_client()
    receipt = submit_report(receipt_client, what_happened="Another concern, with its own receipt.")

    for method, path, data in officer_routes(a_report):
        reporter = app.test_client()
        assert follow_up(reporter, receipt).status_code == 303
        case = reporter.get("/follow-up/case")
        assert case.status_code == 200, "the reporter session should be live before the attempt"
        token = csrf_token(case.get_data(as_text=True))

        response = reporter.open(path, method=method, data={**data, "csrf_token": token})

        assert sent_to_login(response), (method, path, response.status_code)
        assert "Supervision has not happened" not in response.get_data(as_text=True)
        assert b"%PDF-1.4 notes" not in response.data

    assert_untouched(app, alice, a_report["report_id"])


# --- sessions ------------------------------------------------------------------------


def test_logout_deletes_the_server_side_session(app, alice):
    officer = officer_client(app, alice)
    kept = cookie_value(officer)
    assert client_with_cookie(app, kept).get("/officer/").status_code == 200, "a copied cookie works"

    response = form_post(officer, "/officer/", {}, action="/officer/logout")

    assert sent_to_login(response)
    assert sent_to_login(officer.get("/officer/"))
    assert sent_to_login(client_with_cookie(app, kept).get("/officer/"))


def test_the_session_cookie_changes_at_login(app, alice):
    client = app.test_client()
    page = client.get("/officer/login").get_data(as_text=True)
    before = cookie_value(client)

    response = client.post(
        "/officer/login", data={"csrf_token": csrf_token(page), "email": alice.email, "password": PASSWORD}
    )

    assert response.status_code == 303
    after = cookie_value(client)
    assert after != before
    assert client_with_cookie(app, after).get("/officer/").status_code == 200
    assert sent_to_login(client_with_cookie(app, before).get("/officer/"))


def test_an_officer_active_within_the_idle_limit_stays_logged_in(app, alice):
    officer = officer_client(app, alice)

    pass_time(app, dt.timedelta(minutes=10))
    assert officer.get("/officer/").status_code == 200
    pass_time(app, dt.timedelta(minutes=35))  # 25 minutes after the last request

    assert officer.get("/officer/").status_code == 200


def test_an_idle_officer_is_logged_out_after_thirty_minutes(app, alice):
    officer = officer_client(app, alice)
    kept = cookie_value(officer)

    pass_time(app, dt.timedelta(minutes=31))

    assert sent_to_login(officer.get("/officer/"))
    pass_time(app, dt.timedelta(0))
    assert sent_to_login(client_with_cookie(app, kept).get("/officer/")), "the server-side half is gone"


def test_idle_time_counts_from_the_last_request(app, alice):
    officer = officer_client(app, alice)

    pass_time(app, dt.timedelta(minutes=10))
    assert officer.get("/officer/").status_code == 200
    pass_time(app, dt.timedelta(minutes=10 + 31))

    assert sent_to_login(officer.get("/officer/"))


def _textarea(page: str, name: str) -> str:
    match = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert match, f"no textarea {name} on the page"
    return html_lib.unescape(match.group(1)).lstrip("\r\n")


@pytest.mark.parametrize(
    ("action", "field", "button"), [("messages", "body", "Send reply"), ("notes", "note-body", "Add note")]
)
def test_a_reply_or_note_written_past_the_idle_limit_comes_back_to_send_after_logging_in(
    app, client, alice, action, field, button
):
    submit_report(client)
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    case_page = officer.get(f"/officer/reports/{report_id}").get_data(as_text=True)
    typed = "Spoke to the team manager <Mon>;\nthe rota will be checked."

    pass_time(app, dt.timedelta(minutes=31))
    ended = officer.post(
        f"/officer/reports/{report_id}/{action}", data={"csrf_token": csrf_token(case_page), field: typed}
    )

    page = ended.get_data(as_text=True)
    assert ended.status_code == 200
    assert "Officer log in" in page
    assert "has not been saved yet" in page
    assert _textarea(page, "draft") == typed
    logged_in = officer.post(
        "/officer/login",
        data={
            "csrf_token": csrf_token(page),
            "email": alice.email,
            "password": alice.password,
            "draft": typed,
            "draft_for": f"{report_id}/{action}",
        },
    )
    assert logged_in.status_code == 303
    assert logged_in.headers["Location"].endswith(f"/officer/reports/{report_id}")
    restored = officer.get(logged_in.headers["Location"]).get_data(as_text=True)
    box = restored[restored.index(f'action="/officer/reports/{report_id}/{action}"') :]
    assert _textarea(box, field) == typed
    assert f"press {button} to send it" in re.sub(r"</?strong>", "", restored).replace("save it", "send it")
    assert typed not in re.sub(r"<textarea.*?</textarea>", "", restored, flags=re.S), "not sent by itself"

    sent = officer.post(
        f"/officer/reports/{report_id}/{action}", data={"csrf_token": csrf_token(restored), field: typed}
    )
    assert sent.status_code == 303
    shown = officer.get(f"/officer/reports/{report_id}").get_data(as_text=True)
    assert html_lib.escape(typed, quote=False).split("\n")[0] in shown


def test_a_form_refused_for_its_token_while_logged_in_is_not_taken_for_an_ended_login(app, client, alice):
    submit_report(client)
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)

    refused = officer.post(f"/officer/reports/{report_id}/messages", data={"csrf_token": "x", "body": "Hi"})

    assert refused.status_code == 400
    assert "Officer log in" not in refused.get_data(as_text=True)


# --- pagination ----------------------------------------------------------------------


def listed(response) -> list[str]:
    return re.findall(r'href="/officer/reports/([0-9a-f]{32})"', response.get_data(as_text=True))


def link(response, text: str) -> str | None:
    """The address of the pagination link with this text, or None if the page has none."""
    found = re.search(rf'<a href="([^"]*)"[^>]*>{text}</a>', response.get_data(as_text=True))
    return found[1].replace("&amp;", "&") if found else None


@pytest.fixture
def five_reports(small_pages_app: Flask) -> FlaskClient:
    """An officer's client on an app with pages of two, and five reports to page through."""
    app = small_pages_app
    app.config["PROPAGATE_EXCEPTIONS"] = False  # show the page a browser would get
    alice = add_officer(app, "Alice Officer", "alice@example.org", admin=True)
    reporter = app.test_client()
    for n in range(5):
        submit_report(reporter, what_happened=f"Concern number {n}")
    return officer_client(app, alice)


def test_reports_are_listed_a_page_at_a_time(five_reports):
    officer = five_reports

    first = officer.get("/officer/")
    second = officer.get(link(first, "Next page"))
    third = officer.get(link(second, "Next page"))

    assert [p.status_code for p in (first, second, third)] == [200, 200, 200]
    rows = [listed(p) for p in (first, second, third)]
    assert [len(r) for r in rows] == [2, 2, 1]
    assert len({report for page in rows for report in page}) == 5
    assert "5 reports you can open." in text_of(first.get_data(as_text=True))
    assert link(first, "Previous page") is None and link(first, "First page") is None
    assert link(third, "Next page") is None and link(third, "Last page") is None
    # Back again, page by page, and straight to either end.
    assert listed(officer.get(link(third, "Previous page"))) == rows[1]
    assert listed(officer.get(link(second, "Previous page"))) == rows[0]
    assert listed(officer.get(link(third, "First page"))) == rows[0]
    last = officer.get(link(first, "Last page"))
    assert listed(last) == [*rows[1], *rows[2]][-2:]  # the last page is full: the two oldest
    assert link(last, "Next page") is None
    assert listed(officer.get(link(last, "Previous page"))) == [*rows[0], *rows[1]][-3:-1]


def test_every_sort_pages_through_every_case_once_in_its_order(five_reports):
    officer = five_reports
    for sort in ("received", "priority", "status", "acknowledge_by", "feedback_by"):
        seen, address = [], f"/officer/?sort={sort}"
        while address:
            response = officer.get(address)
            seen += listed(response)
            address = link(response, "Next page")
        assert len(seen) == len(set(seen)) == 5, sort
        backwards, address = [], link(officer.get(f"/officer/?sort={sort}"), "Last page")
        while address:
            response = officer.get(address)
            backwards = listed(response) + [r for r in backwards if r not in listed(response)]
            address = link(response, "Previous page")
        assert backwards == seen, sort


def test_odd_cursors_give_the_first_page_not_an_error(five_reports):
    officer = five_reports
    first = listed(officer.get("/officer/"))

    malformed = [
        "abc",
        "",
        "0",
        "-3",
        "1.5",
        "0.2026-02-30.1",
        "0.0000-01-01.1",
        "0.2026-01-01.99999999999999999999",
        "0.2026-01-01.9999999999999999999",  # 19 digits, past the largest key
    ]
    nowhere = ["99.2026-01-01.1"]  # a group no sort has
    for direction in ("after", "before"):
        for odd in [*malformed, *nowhere]:
            response = officer.get(f"/officer/?{direction}={odd}")
            assert response.status_code == 200, (direction, odd)
            assert listed(response) == first, (direction, odd)
    # Well made, but nothing lies beyond: the first page rather than an empty one.
    for address in ("/officer/?after=0.1970-01-01.0", "/officer/?before=0.9999-12-31.999999999999999999"):
        assert listed(officer.get(address)) == first, address
    assert officer.get("/officer/?page=3").status_code == 200  # an address from before cursors


def test_view_counts_stop_at_the_cap(small_pages_app, monkeypatch):
    app = small_pages_app
    monkeypatch.setattr(cases, "COUNT_CAP", 3)
    alice = add_officer(app, "Alice Officer", "alice@example.org", admin=True)
    reporter = app.test_client()
    for _ in range(4):
        submit_report(reporter)
    officer = officer_client(app, alice)

    page = text_of(officer.get("/officer/").get_data(as_text=True))

    assert "3+ reports you can open." in page
    assert "New 3+ cases" in page


# --- downloads -----------------------------------------------------------------------


def test_a_download_is_an_attachment_with_its_name_and_a_sandbox(client, app, alice):
    body = b"%PDF-1.4\n<html><script>alert(1)</script></html>"
    submit_report(client, attachments=[(io.BytesIO(body), "Protokoll März 2024.pdf", "text/html")])
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    (link,) = attachment_links(officer.get(f"/officer/reports/{report_id}").get_data(as_text=True))

    response = officer.get(link)

    assert response.status_code == 200
    disposition, options = parse_options_header(response.headers["Content-Disposition"])
    assert disposition == "attachment"
    assert options["filename"] == "Protokoll März 2024.pdf"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.data == body


@pytest.mark.parametrize("name", ["Łódź notatki.pdf", "Отчёт.docx", "€ costs 📎.xlsx"])
def test_a_file_named_outside_latin1_downloads_with_its_name(client, app, alice, name):
    submit_report(client, attachments=[(io.BytesIO(b"evidence"), name)])
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    page = officer.get(f"/officer/reports/{report_id}").get_data(as_text=True)
    assert name in html_lib.unescape(page)
    (link,) = attachment_links(page)

    response = officer.get(link)

    assert response.status_code == 200
    header = response.headers["Content-Disposition"]
    header.encode("latin-1")  # what any WSGI server must be able to send
    assert parse_options_header(header) == ("attachment", {"filename": name})
    assert response.data == b"evidence"


def test_quotes_and_semicolons_in_a_file_name_cannot_forge_the_header(client, app, alice):
    # A browser would send %22 for a quote; an attacker sends a raw request with an escaped one.
    name = 'minutes";filename="evil.html;.pdf'
    token = csrf_token(client.get("/report").get_data(as_text=True))
    boundary = "----whistle-test-boundary"
    fields = {**REPORT, "csrf_token": token}
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
        for key, value in fields.items()
    )
    quoted = name.replace('"', '\\"')
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="attachments"; filename="{quoted}"\r\n'
        f"Content-Type: text/html\r\n\r\nevidence\r\n--{boundary}--\r\n"
    )
    sent = client.post(
        "/report", data=body.encode(), content_type=f"multipart/form-data; boundary={boundary}"
    )
    assert sent.status_code == 200
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    page = officer.get(f"/officer/reports/{report_id}").get_data(as_text=True)
    assert name in html_lib.unescape(page)
    (link,) = attachment_links(page)

    response = officer.get(link)

    assert parse_options_header(response.headers["Content-Disposition"]) == ("attachment", {"filename": name})
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.data == b"evidence"


def test_a_file_larger_than_one_chunk_round_trips_exactly(client, app, alice):
    body = secrets.token_bytes(300_000)
    submit_report(client, attachments=[(io.BytesIO(body), "recording.m4a")])
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    (link,) = attachment_links(officer.get(f"/officer/reports/{report_id}").get_data(as_text=True))

    response = officer.get(link)

    assert response.status_code == 200
    assert response.headers["Content-Length"] == "300000"
    assert len(response.data) == 300_000
    assert response.data == body


def test_unknown_or_misplaced_attachments_are_not_found(client, app, alice):
    submit_report(client, what_happened="First", attachments=[(io.BytesIO(b"first file"), "one.txt")])
    submit_report(client, what_happened="Second", attachments=[(io.BytesIO(b"second file"), "two.txt")])
    officer = officer_client(app, alice)
    first, second = reports_listed(officer)
    (first_link,) = attachment_links(officer.get(f"/officer/reports/{first}").get_data(as_text=True))
    (second_link,) = attachment_links(officer.get(f"/officer/reports/{second}").get_data(as_text=True))
    second_attachment = second_link.rsplit("/", 1)[1]
    assert officer.get(first_link).status_code == 200

    unknown = officer.get(f"/officer/reports/{first}/attachments/{secrets.token_hex(16)}")
    misplaced = officer.get(f"/officer/reports/{first}/attachments/{second_attachment}")
    no_report = officer.get(f"/officer/reports/{secrets.token_hex(16)}/attachments/{second_attachment}")

    for response in (unknown, misplaced, no_report):
        assert response.status_code == 404
        assert b"second file" not in response.data
        assert "Page not found" in response.get_data(as_text=True)


def test_an_unknown_report_is_not_found(app, alice):
    officer = officer_client(app, alice)

    for path in (f"/officer/reports/{secrets.token_hex(16)}", "/officer/reports/..%2F..%2Fetc"):
        assert officer.get(path).status_code == 404, path


def test_a_nul_byte_in_a_report_address_is_not_found(client, app, alice):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # show the page a browser would get
    submit_report(client)
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)

    responses = {
        "report": officer.get("/officer/reports/%00"),
        "report+nul": officer.get(f"/officer/reports/{report_id}%00"),
        "messages": form_post(
            officer, f"/officer/reports/{report_id}", {"body": "x"}, action="/officer/reports/%00/messages"
        ),
        "status": form_post(
            officer,
            f"/officer/reports/{report_id}",
            {"status": "closed"},
            action="/officer/reports/%00/status",
        ),
    }

    assert {name: r.status_code for name, r in responses.items()} == dict.fromkeys(responses, 404)


# --- hostile content -------------------------------------------------------------------


def test_hostile_report_text_reaches_the_officer_escaped(client, app, alice):
    receipt = submit_report(
        client,
        what_happened=HOSTILE,
        when_where=HOSTILE,
        attachments=[(io.BytesIO(b"x"), "<img src=x onerror=alert(3)>.png")],
    )
    reporter = app.test_client()
    follow_up(reporter, receipt)
    form_post(reporter, "/follow-up/case", {"body": HOSTILE}, content_type="multipart/form-data")
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)

    page = officer.get(f"/officer/reports/{report_id}").get_data(as_text=True)

    assert "<script>alert(1)" not in page
    assert "<img src=x" not in page
    assert "onerror=alert(2)>" not in page
    assert page.count(HOSTILE_ESCAPED) == 3
    assert "&lt;img src=x onerror=alert(3)&gt;.png" in page


def test_an_officer_reply_reaches_the_reporter_escaped(client, app, alice):
    receipt = submit_report(client)
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    form_post(
        officer,
        f"/officer/reports/{report_id}",
        {"body": HOSTILE},
        action=f"/officer/reports/{report_id}/messages",
    )
    reporter = app.test_client()
    follow_up(reporter, receipt)

    page = reporter.get("/follow-up/case").get_data(as_text=True)

    assert "<script>alert(1)" not in page
    assert HOSTILE_ESCAPED in page


# --- the first administrator ---------------------------------------------------------


def new_setup_token(app: Flask) -> str | None:
    rt = runtime_of(app)
    with rt.session_factory() as db, db.begin():
        return officers.new_setup_token(db, rt.clock.now())


def test_the_setup_link_creates_the_first_administrator_once(app):
    token = new_setup_token(app)
    assert token
    client = app.test_client()

    form = client.get(f"/setup/{token}")
    assert form.status_code == 200
    assert "Set up Whistle" in form.get_data(as_text=True)
    done = client.post(
        f"/setup/{token}",
        data={
            "csrf_token": csrf_token(form.get_data(as_text=True)),
            "display_name": "Dana Admin",
            "email": "dana@example.org",
            "password": "a long and private passphrase",
        },
    )

    assert done.status_code == 200
    text = text_of(done.get_data(as_text=True))
    assert "Your account is ready" in text
    assert re.search(r"\b(?:[0-9A-Z]{4}-){7}[0-9A-Z]{4}\b", text), "no recovery code shown"
    assert client.get(f"/setup/{token}").status_code == 404
    again = client.post(
        f"/setup/{token}",
        data={
            "csrf_token": csrf_token(form.get_data(as_text=True)),
            "display_name": "Mallory",
            "email": "mallory@example.org",
            "password": "another long passphrase",
        },
    )
    assert again.status_code == 404
    dana = OfficerAccount("", "dana@example.org", "Dana Admin", "a long and private passphrase", "")
    assert officer_client(app, dana).get("/officer/").status_code == 200
    mallory = OfficerAccount("", "mallory@example.org", "Mallory", "another long passphrase", "")
    assert login(app.test_client(), mallory).status_code == 422
    assert "Dana Admin" in app.test_client().get("/").get_data(as_text=True)


def test_a_wrong_setup_token_is_not_found(app):
    assert new_setup_token(app)

    for wrong in (secrets.token_urlsafe(32), "x", "0" * 43):
        assert app.test_client().get(f"/setup/{wrong}").status_code == 404


def test_a_weak_password_at_setup_keeps_the_link_usable(app):
    token = new_setup_token(app)
    client = app.test_client()

    response = form_post(
        client, f"/setup/{token}", {"display_name": "Dana", "email": "dana@example.org", "password": "short"}
    )

    assert response.status_code == 422
    assert client.get(f"/setup/{token}").status_code == 200


def test_no_setup_token_once_an_officer_exists(app):
    token = new_setup_token(app)
    assert token
    add_officer(app, "Alice Officer", "alice@example.org", admin=True)

    assert new_setup_token(app) is None
    assert app.test_client().get(f"/setup/{token}").status_code == 404


def test_a_login_carrying_a_draft_without_its_case_gives_the_text_back_not_an_error(app, alice):
    client = app.test_client()
    response = form_post(client, "/officer/login", {"draft": "What I was writing when it timed out."})
    assert response.status_code == 422
    assert "What I was writing when it timed out." in response.get_data(as_text=True)
