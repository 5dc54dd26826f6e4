"""Threat 5, a web attacker: headers on every response, cookies, templates and the route inventory.

The officer's browser holds decrypted secrets while it shows hostile text, so
every response (pages, errors, static files, redirects) carries a strict
Content-Security-Policy with no inline script, refuses framing and sends no
referrer; the session cookie is a session cookie, HttpOnly, SameSite=Strict
and Secure behind HTTPS; templates need no inline script or style; and every
route is listed here, so a new one shows in review, and every officer route
refuses an anonymous client.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from werkzeug.routing import Rule

from tests.conftest import PASSWORD, csrf_token, follow_up, form_post, login, reports_listed, submit_report
from whistle import create_app
from whistle.config import Settings
from whistle.shipped import folder

REQUIRED_CSP = {
    "default-src": ["'none'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
    "base-uri": ["'none'"],
}
UNSAFE_SOURCES = {"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "'wasm-unsafe-eval'"}
#: Pages load nothing from third parties: every source is the portal itself, or nothing.
ALLOWED_SOURCES = {"'self'", "'none'"}
COOKIE = "whistle"
DEVICE_COOKIE = "whistle_device"


def csp_directives(policy: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        if part.strip():
            name, *sources = part.split()
            assert name.lower() not in directives, f"directive {name} given twice"
            directives[name.lower()] = sources
    return directives


def assert_security_headers(response) -> None:
    headers = response.headers
    policy = headers.get("Content-Security-Policy")
    assert policy, f"no CSP on {response.request.path}"
    assert len(headers.getlist("Content-Security-Policy")) == 1
    directives = csp_directives(policy)
    for name, sources in REQUIRED_CSP.items():
        assert directives.get(name) == sources, (name, policy)
    every_source = {source.lower() for sources in directives.values() for source in sources}
    assert not every_source & UNSAFE_SOURCES, policy
    assert every_source <= ALLOWED_SOURCES, f"a source other than the portal itself: {policy}"
    assert "report-uri" not in directives, "reports would go to a third party"

    assert headers.get("Referrer-Policy") == "no-referrer"
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("X-Frame-Options") == "DENY"
    assert headers.get("Cross-Origin-Opener-Policy") == "same-origin"
    assert headers.get("Cross-Origin-Resource-Policy") == "same-origin"
    assert headers.get("Permissions-Policy")
    assert "camera=()" in headers["Permissions-Policy"]
    assert "no-store" in headers.get("Cache-Control", "")
    if response.mimetype == "text/html":
        # What the policy forbids must not be in the page either, or the page would break.
        assert forbidden_in(response.get_data(as_text=True)) == []


def _officer(app, alice):
    officer = app.test_client()
    assert login(officer, alice).status_code == 303
    return officer


def test_landing_page(client):
    response = client.get("/")
    assert response.status_code == 200
    assert_security_headers(response)


def test_report_form(client):
    response = client.get("/report")
    assert response.status_code == 200
    assert_security_headers(response)


def test_not_found_page(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert_security_headers(response)


def test_static_file(client):
    response = client.get("/static/whistle.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    assert_security_headers(response)
    response.close()


def test_officer_page_after_login(app, alice):
    response = _officer(app, alice).get("/officer/")
    assert response.status_code == 200
    assert 'action="/officer/logout"' in response.get_data(as_text=True), "not the logged-in officer's page"
    assert_security_headers(response)


def test_post_that_fails_validation(client):
    response = follow_up(client, "AAAA-BBBB-CCCC-DDDD")
    assert response.status_code == 422
    assert_security_headers(response)


def test_report_form_sent_back_with_errors(client):
    response = form_post(client, "/report", {"what_happened": ""}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert_security_headers(response)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/follow-up", 400),  # no CSRF token
        ("DELETE", "/", 405),
        ("GET", "/officer/", 303),  # an anonymous client is sent to the login page
        ("GET", "/officer", 308),  # werkzeug's own slash redirect
        ("GET", "/setup/not-a-token", 404),
    ],
)
def test_other_errors_and_redirects(client, method, path, status):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert_security_headers(response)


def test_request_too_large(client):
    response = client.post(
        "/report",
        data=b"x",
        content_type="multipart/form-data; boundary=x",
        environ_overrides={"CONTENT_LENGTH": str(10 * 1024 * 1024 * 1024)},
    )
    assert response.status_code == 413
    assert_security_headers(response)


def test_rate_limited_page(instance):
    app = create_app(Settings.load(instance.path, receipt_attempts_per_receipt="1 per hour"))
    app.config["TESTING"] = True
    try:
        client = app.test_client()
        receipt = submit_report(client)  # only the right receipt of a report is counted
        assert follow_up(client, receipt).status_code == 303
        response = follow_up(client, receipt)
        assert response.status_code == 429
        assert_security_headers(response)
    finally:
        app.extensions["whistle"].engine.dispose()


def test_attachment_downloads_run_nothing(app, client, alice):
    submit_report(client, attachments=[(io.BytesIO(b"<script>alert(1)</script>"), "page.html", "text/html")])
    officer = _officer(app, alice)
    [public_id] = reports_listed(officer)
    page = officer.get(f"/officer/reports/{public_id}").get_data(as_text=True)
    link = re.search(r'href="(/officer/reports/[0-9a-f]+/attachments/[0-9a-f]+)"', page).group(1)
    response = officer.get(link)
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment")
    directives = csp_directives(response.headers["Content-Security-Policy"])
    assert directives["default-src"] == ["'none'"]
    assert "sandbox" in directives
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "no-store" in response.headers["Cache-Control"]


# --- the session cookie -----------------------------------------------------------


def set_cookies(response) -> dict[str, tuple[str, dict[str, str]]]:
    """name -> (value, attributes with lower-cased names) for every Set-Cookie header."""
    cookies = {}
    for header in response.headers.getlist("Set-Cookie"):
        first, *rest = (part.strip() for part in header.split(";"))
        name, _, value = first.partition("=")
        attributes = {}
        for part in rest:
            key, _, attribute = part.partition("=")
            attributes[key.strip().lower()] = attribute.strip()
        cookies[name] = (value, attributes)
    return cookies


def assert_session_cookie(response, *, secure: bool, device: bool = False) -> None:
    """The session cookie, and on an officer's login the device cookie, and no other."""
    cookies = set_cookies(response)
    expected = [COOKIE, DEVICE_COOKIE] if device else [COOKIE]
    assert sorted(cookies) == sorted(expected), response.headers.getlist("Set-Cookie")
    if device:
        assert_device_cookie(cookies[DEVICE_COOKIE], secure=secure)
    value, attributes = cookies[COOKIE]
    assert value
    assert "httponly" in attributes
    assert attributes.get("samesite") == "Strict"
    assert attributes.get("path") == "/"
    assert "expires" not in attributes, "the browser must forget the session when it closes"
    assert "max-age" not in attributes
    assert "domain" not in attributes
    assert ("secure" in attributes) is secure


def assert_device_cookie(cookie: tuple[str, dict[str, str]], *, secure: bool) -> None:
    """Sent to the officer area only, out of scripts' reach, and kept for a year."""
    value, attributes = cookie
    assert value
    assert "httponly" in attributes
    assert attributes.get("samesite") == "Strict"
    assert attributes.get("path") == "/officer"
    assert attributes.get("max-age") == str(365 * 24 * 3600)
    assert "domain" not in attributes
    assert ("secure" in attributes) is secure


def test_landing_page_sets_no_cookie(client):
    assert "Set-Cookie" not in client.get("/").headers


def test_officer_login_cookie(app, alice):
    client = app.test_client()
    response = login(client, alice)
    assert response.status_code == 303
    assert_session_cookie(response, secure=False, device=True)


def test_reporter_cookies(client):
    assert_session_cookie(client.get("/report"), secure=False)
    receipt = submit_report(client)
    reporter = client.application.test_client()
    response = follow_up(reporter, receipt)
    assert response.status_code == 303
    assert_session_cookie(response, secure=False)


@pytest.fixture
def secure_app(instance):
    app = create_app(Settings.load(instance.path, secure_cookies=True))
    app.config["TESTING"] = True
    yield app
    app.extensions["whistle"].engine.dispose()


def test_cookies_are_secure_when_configured(secure_app):
    from tests.conftest import add_officer

    account = add_officer(secure_app, "Carol Officer", "carol@example.org")
    client = secure_app.test_client()
    assert_session_cookie(client.get("/report"), secure=True)
    response = login(client, account)
    assert response.status_code == 303
    assert_session_cookie(response, secure=True, device=True)
    page = client.get("/officer/").get_data(as_text=True)
    logout = client.post("/officer/logout", data={"csrf_token": csrf_token(page)})
    assert logout.status_code == 303
    _value, attributes = set_cookies(logout)[COOKIE]
    assert "secure" in attributes, "the cookie that deletes the session must match the one that set it"


def test_https_responses_ask_for_https_from_now_on(secure_app):
    response = secure_app.test_client().get("/", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert_security_headers(response)


def test_forms_work_over_https_without_a_referer(secure_app):
    """A browser that obeys Referrer-Policy: no-referrer sends no Referer with a form."""
    from tests.conftest import add_officer

    account = add_officer(secure_app, "Carol Officer", "carol@example.org")
    client = secure_app.test_client()
    page = client.get("/officer/login", base_url="https://localhost")
    assert_session_cookie(page, secure=True)
    data = {
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        "email": account.email,
        "password": PASSWORD,
    }
    response = client.post("/officer/login", base_url="https://localhost", data=data)
    assert response.status_code == 303, response.status
    assert_session_cookie(response, secure=True, device=True)


# --- templates --------------------------------------------------------------------

TEMPLATES = folder("templates")
#: What would need 'unsafe-inline' (or run script) under the CSP.
FORBIDDEN = {
    "inline <script>": re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>|<script\b[^>]*>\s*[^<\s]", re.I),
    "<style> block": re.compile(r"<style\b", re.I),
    "style attribute": re.compile(r"<[a-z][^>]*?\sstyle\s*=|\{\{[^}]*\bstyle\s*=[^}]*\}\}", re.I),
    "event handler attribute": re.compile(
        r"<[a-z][^>]*?\son[a-z]+\s*=|\{\{[^}]*\bon[a-z]+\s*=[^}]*\}\}", re.I
    ),
    "javascript: URL": re.compile(r"javascript\s*:", re.I),
}


def forbidden_in(html: str) -> list[tuple[str, str]]:
    return [(kind, match.group(0)) for kind, pattern in FORBIDDEN.items() for match in pattern.finditer(html)]


def test_the_pattern_catches_what_it_should():
    html = (
        '<script>alert(1)</script><script src="/static/a.js"></script><style>p{}</style>'
        '<p style="color:red" onclick="x()">{{ field(onchange="y()") }}</p><a href="javascript:z()">'
    )
    kinds = [kind for kind, _ in forbidden_in(html)]
    assert sorted(kinds) == sorted(
        [
            "inline <script>",
            "<style> block",
            "style attribute",
            "event handler attribute",
            "event handler attribute",
            "javascript: URL",
        ]
    )
    assert forbidden_in('<script src="/static/a.js"></script><button class="one" data-on="x">') == []


def template_files() -> list[Path]:
    return sorted(path for path in TEMPLATES.rglob("*") if path.is_file())


def test_templates_need_no_inline_script_or_style():
    files = template_files()
    assert len(files) >= 10
    found = {str(path.relative_to(TEMPLATES)): forbidden_in(path.read_text()) for path in files}
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_hostile_report_text_stays_inert_in_the_officer_view(app, client, alice):
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)><a href="javascript:alert(3)">x</a>'
    submit_report(
        client,
        what_happened=hostile,
        when_where=hostile,
        raised_before_result=hostile,
        attachments=[(io.BytesIO(b"x"), '<svg onload=alert(4)>".txt')],
    )
    officer = _officer(app, alice)
    [public_id] = reports_listed(officer)
    page = officer.get(f"/officer/reports/{public_id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    hits = [hit for hit in forbidden_in(page) if "alert" in hit[1]]
    assert hits == []


# --- routes -------------------------------------------------------------------

#: Every route of the portal. A new or changed route must be added here, in review.
ROUTES = {
    ("/admin/", "admin.list_officers", "GET,HEAD,OPTIONS"),
    ("/admin/invitations", "admin.invite_officer", "OPTIONS,POST"),
    ("/admin/officers/deactivate", "admin.deactivate_officer", "OPTIONS,POST"),
    ("/admin/officers/reactivate", "admin.reactivate_officer", "OPTIONS,POST"),
    ("/admin/officers/reset", "admin.reset_officer", "OPTIONS,POST"),
    ("/admin/officers/two-factor/reset", "admin.reset_two_factor", "OPTIONS,POST"),
    ("/admin/audit", "admin.show_audit", "GET,HEAD,OPTIONS"),
    ("/admin/settings", "admin.edit_settings", "GET,HEAD,OPTIONS"),
    ("/admin/settings", "admin.save_settings", "OPTIONS,POST"),
    ("/", "reporter.index", "GET,HEAD,OPTIONS"),
    ("/report", "reporter.new_report", "GET,HEAD,OPTIONS,POST"),
    ("/follow-up", "reporter.follow_up", "GET,HEAD,OPTIONS,POST"),
    ("/follow-up/case", "reporter.show_case", "GET,HEAD,OPTIONS"),
    ("/follow-up/case", "reporter.add_message", "OPTIONS,POST"),
    ("/follow-up/leave", "reporter.leave", "OPTIONS,POST"),
    ("/officer/login", "officer.login", "GET,HEAD,OPTIONS,POST"),
    ("/officer/login/code", "officer.enter_code", "GET,HEAD,OPTIONS,POST"),
    ("/officer/reset", "account.reset", "GET,HEAD,OPTIONS,POST"),
    ("/officer/welcome/<token>", "account.welcome", "GET,HEAD,OPTIONS,POST"),
    ("/officer/account/two-factor", "account.enrol_two_factor", "GET,HEAD,OPTIONS,POST"),
    ("/officer/account/two-factor/qr.svg", "account.show_qr_code", "GET,HEAD,OPTIONS"),
    ("/officer/logout", "officer.logout", "OPTIONS,POST"),
    ("/officer/", "officer.list_reports", "GET,HEAD,OPTIONS"),
    ("/officer/reports/<public_id:public_id>", "officer.show_report", "GET,HEAD,OPTIONS"),
    ("/officer/reports/<public_id:public_id>/messages", "officer.add_message", "OPTIONS,POST"),
    ("/officer/reports/<public_id:public_id>/status", "officer.change_status", "OPTIONS,POST"),
    ("/officer/reports/<public_id:public_id>/labels", "officer.update_labels", "OPTIONS,POST"),
    ("/officer/reports/<public_id:public_id>/notes", "officer.add_note", "OPTIONS,POST"),
    ("/officer/reports/<public_id:public_id>/priority", "officer.change_priority", "OPTIONS,POST"),
    ("/officer/reports/<public_id:public_id>/assignee", "officer.assign_officer", "OPTIONS,POST"),
    ("/officer/reports/<public_id:public_id>/access", "officer.grant_access", "OPTIONS,POST"),
    ("/officer/reports/<public_id:public_id>/access/revoke", "officer.revoke_access", "OPTIONS,POST"),
    ("/officer/reports/<public_id:public_id>/close", "officer.close_case", "OPTIONS,POST"),
    ("/officer/reports/junk", "officer.close_junk", "OPTIONS,POST"),
    ("/officer/reports/<public_id:public_id>/triage", "officer.update_triage", "OPTIONS,POST"),
    (
        "/officer/reports/<public_id:public_id>/attachments/<public_id:attachment_id>",
        "officer.download_attachment",
        "GET,HEAD,OPTIONS",
    ),
    ("/officer/reports/<public_id:public_id>/hold", "oversight.set_legal_hold", "OPTIONS,POST"),
    ("/officer/reports/<public_id:public_id>/export", "oversight.export_report", "GET,HEAD,OPTIONS"),
    ("/officer/statistics", "oversight.show_statistics", "GET,HEAD,OPTIONS"),
    ("/setup/<token>", "setup.first_admin", "GET,HEAD,OPTIONS,POST"),
    ("/static/<path:filename>", "static", "GET,HEAD,OPTIONS"),
    ("/health", "health", "GET,HEAD,OPTIONS"),
}
#: Pages for people who are not logged in. (officer.enter_code is not here: without a
#: login waiting for its code, it too sends a client to the login page.)
PUBLIC_OFFICER_ENDPOINTS = {"officer.login", "account.reset", "account.welcome"}


def test_route_inventory(app):
    routes = {
        (rule.rule, rule.endpoint, ",".join(sorted(rule.methods or ()))) for rule in app.url_map.iter_rules()
    }
    assert routes - ROUTES == set(), "new routes: add them to ROUTES once reviewed"
    assert ROUTES - routes == set(), "routes gone or changed: update ROUTES"


def _officer_rules(app) -> list[Rule]:
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(("officer.", "account."))
        and rule.endpoint not in PUBLIC_OFFICER_ENDPOINTS
    ]
    assert len(rules) >= 6
    return rules


def _url(app, rule: Rule) -> str:
    values = {name: "0123456789abcdef0123456789abcdef" for name in rule.arguments}
    return app.url_map.bind("localhost").build(rule.endpoint, values)


def _assert_sent_to_login(response) -> None:
    assert response.status_code in (302, 303), response.status
    assert response.headers["Location"].split("?")[0].endswith("/officer/login")


def _request_every_officer_route(app, client) -> int:
    tried = 0
    for rule in _officer_rules(app):
        url = _url(app, rule)
        for method in sorted((rule.methods or set()) - {"OPTIONS"}):
            data = None
            if method == "POST":
                # A valid CSRF token, so what answers is the officer guard, not CSRF protection.
                token = csrf_token(client.get("/officer/login").get_data(as_text=True))
                data = {"csrf_token": token, "body": "x", "status": "closed"}
            response = client.open(url, method=method, data=data)
            _assert_sent_to_login(response)
            tried += 1
    return tried


def test_every_officer_route_refuses_an_anonymous_client(app, client):
    assert _request_every_officer_route(app, client) >= 8


def test_every_officer_route_refuses_a_reporter(app, client):
    receipt = submit_report(client)
    reporter = app.test_client()
    assert follow_up(reporter, receipt).status_code == 303
    for rule in _officer_rules(app):
        if "GET" in (rule.methods or set()):
            # Each refusal ends the reporter's session, so come back in before each.
            assert follow_up(reporter, receipt).status_code == 303
            assert reporter.get("/follow-up/case").status_code == 200
            _assert_sent_to_login(reporter.get(_url(app, rule)))


def test_every_officer_route_refuses_a_logged_out_officer(app, alice):
    officer = _officer(app, alice)
    assert officer.get("/officer/").status_code == 200
    page = officer.get("/officer/").get_data(as_text=True)
    assert officer.post("/officer/logout", data={"csrf_token": csrf_token(page)}).status_code == 303
    assert _request_every_officer_route(app, officer) >= 8


def test_a_raw_control_character_in_a_query_is_a_bad_request_even_where_routing_would_redirect(app, instance):
    """Routing redirects (a doubled slash, a missing trailing slash) copy the query into Location."""
    client = app.test_client()
    for path in ("/static/" + str(instance.path / "secret_key"), "/admin", "/static/whistle.css"):
        for query in ("\n", "\r", "a=\x01"):
            with client.get(path, environ_overrides={"QUERY_STRING": query}) as response:
                assert response.status_code == 400, (path, repr(query))
                assert "secret" not in response.get_data(as_text=True)
