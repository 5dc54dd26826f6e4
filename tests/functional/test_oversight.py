"""Legal hold, the board's statistics, the export of a case and `whistle purge`, through the app.

CSRF stays on; officers log in as they would; the purge runs as the command an
operator puts in cron, against the same instance folder.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from dateutil.relativedelta import relativedelta
from flask import Flask, render_template_string
from flask.cli import ScriptInfo
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import (
    OfficerAccount,
    csrf_token,
    form_post,
    login,
    reports_listed,
    runtime_of,
    submit_report,
)
from whistle import audit
from whistle.cli import cli
from whistle.models import AuditEvent, ClosedCaseFigures, KeyWrap, Report
from whistle.services import export

MARKER = "Marker-c41d the deputy manager signs off visits that never happened"
HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>"&'
NOTE = "Internal note marker-91b2: speak to the team manager first"
REPLY = "Officer reply marker-5e0f: thank you, we are looking into it"
PAYLOAD = bytes(range(256)) * 300 + b"end of evidence"


# --- helpers -----------------------------------------------------------------------


def officer_client(app: Flask, account: OfficerAccount) -> FlaskClient:
    officer = app.test_client()
    assert login(officer, account).status_code == 303
    return officer


def case_url(public_id: str, suffix: str = "") -> str:
    return f"/officer/reports/{public_id}{suffix}"


def post_on_case(officer: FlaskClient, public_id: str, suffix: str, data: dict[str, object]):
    return form_post(officer, case_url(public_id), data, action=case_url(public_id, suffix))


def audit_entries(app: Flask, kind: str) -> list[AuditEvent]:
    with runtime_of(app).session_factory() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.kind == kind).order_by(AuditEvent.id)))


def report_row(app: Flask, public_id: str) -> Report | None:
    with runtime_of(app).session_factory() as db:
        return db.scalar(select(Report).where(Report.public_id == public_id))


def blob_files(app: Flask) -> set[str]:
    root = runtime_of(app).settings.files_path
    return {path.name for path in Path(root).rglob("*") if path.is_file()}


def unzip(response) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    assert archive.testzip() is None
    return archive


@pytest.fixture
def case(app: Flask, client: FlaskClient, alice: OfficerAccount, bob: OfficerAccount) -> str:
    """A case Bob is kept from, with hostile text, a file, a reply and a note."""
    submit_report(
        client,
        what_happened=f"{MARKER}\n{HOSTILE}",
        when_where=HOSTILE,
        excluded_officers=[bob.public_id],
        attachments=[
            (io.BytesIO(PAYLOAD), "evidence.bin", "application/octet-stream"),
            (io.BytesIO(b"second"), "..", "application/octet-stream"),
        ],
    )
    officer = officer_client(app, alice)
    (public_id,) = reports_listed(officer)
    assert post_on_case(officer, public_id, "/messages", {"body": REPLY}).status_code == 303
    assert post_on_case(officer, public_id, "/notes", {"note-body": NOTE}).status_code == 303
    return public_id


# --- export ------------------------------------------------------------------------


def test_the_export_without_notes_holds_summary_thread_and_files_byte_for_byte(app, alice, case):
    officer = officer_client(app, alice)
    response = officer.get(case_url(case, "/export?notes=0"))

    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert f"case-{case}-" in response.headers["Content-Disposition"]
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert int(response.headers["Content-Length"]) == len(response.get_data())
    archive = unzip(response)
    # One day's files are numbered by name (their keys give no order).
    assert archive.namelist() == ["summary.html", "thread.html", "files/01-file", "files/02-evidence.bin"]
    assert archive.read("files/02-evidence.bin") == PAYLOAD
    assert archive.read("files/01-file") == b"second"
    summary = archive.read("summary.html").decode()
    thread = archive.read("thread.html").decode()
    assert MARKER in summary
    assert REPLY in thread
    assert all(NOTE not in archive.read(name).decode(errors="replace") for name in archive.namelist())
    assert "Alice Officer" in summary  # who can read it, who did what
    assert "Bob Officer" in summary  # the reporter kept it from Bob: the summary says so


def test_the_export_escapes_hostile_report_text(app, alice, case):
    archive = unzip(officer_client(app, alice).get(case_url(case, "/export?notes=1")))
    summary = archive.read("summary.html").decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&quot;&amp;" in summary
    for name in ("summary.html", "thread.html", "notes.html"):
        page = archive.read(name).decode()
        assert "<script" not in page.lower()
        assert "onerror=alert" not in page.replace("&lt;img src=x onerror=alert", "")
        assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'">' in page


def test_the_export_with_notes_adds_them(app, alice, case):
    archive = unzip(officer_client(app, alice).get(case_url(case, "/export?notes=1")))
    assert "notes.html" in archive.namelist()
    assert NOTE in archive.read("notes.html").decode()


def test_every_export_is_audited_with_or_without_notes(app, alice, case):
    officer = officer_client(app, alice)
    officer.get(case_url(case, "/export?notes=1"))
    officer.get(case_url(case, "/export"))
    entries = audit_entries(app, "report_exported")
    assert [(e.report, e.actor, e.detail) for e in entries] == [
        (case, alice.public_id, "with notes"),
        (case, alice.public_id, "without notes"),
    ]


def test_an_excluded_officer_cannot_export_the_case(app, bob, case):
    response = officer_client(app, bob).get(case_url(case, "/export?notes=1"))
    assert response.status_code == 404
    assert MARKER not in response.get_data(as_text=True)
    assert audit_entries(app, "report_exported") == []


def test_an_unknown_case_is_not_found(app, alice):
    assert officer_client(app, alice).get(case_url("0" * 32, "/export")).status_code == 404


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("..", "file"),
        (".hidden", "hidden"),
        ("C:\\x\\a:b*c?.txt", "a_b_c_.txt"),
        ("line\nbreak\x00.txt", "line_break_.txt"),
        ("trailing. . ", "trailing"),
        ("", "file"),
        ("é" * 300 + ".docx", "é" * 115 + ".docx"),  # 120 characters in all
    ],
)
def test_names_in_the_zip_stay_plain_files(name, safe):
    assert export.safe_name(name) == safe


# --- legal hold --------------------------------------------------------------------


def test_an_officer_puts_a_case_on_legal_hold_and_releases_it(app, alice, case):
    officer = officer_client(app, alice)
    response = post_on_case(officer, case, "/hold", {"hold": "on"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(case_url(case))
    assert report_row(app, case).legal_hold is True
    assert post_on_case(officer, case, "/hold", {"hold": "on"}).status_code == 303  # no second entry
    assert post_on_case(officer, case, "/hold", {"hold": "off"}).status_code == 303
    assert report_row(app, case).legal_hold is False
    assert [e.actor for e in audit_entries(app, "legal_hold_set")] == [alice.public_id]
    assert [e.report for e in audit_entries(app, "legal_hold_released")] == [case]


def test_an_excluded_officer_cannot_hold_the_case(app, bob, case):
    officer = officer_client(app, bob)
    token = csrf_token(officer.get("/officer/").get_data(as_text=True))
    response = officer.post(case_url(case, "/hold"), data={"csrf_token": token, "hold": "on"})
    assert response.status_code == 404
    assert report_row(app, case).legal_hold is False


@pytest.mark.parametrize("data", [{"hold": "maybe"}, {}])
def test_a_hold_request_must_say_on_or_off(app, alice, case, data):
    response = post_on_case(officer_client(app, alice), case, "/hold", data)
    assert response.status_code == 400
    assert report_row(app, case).legal_hold is False


def test_a_hold_request_without_a_csrf_token_is_refused(app, alice, case):
    response = officer_client(app, alice).post(case_url(case, "/hold"), data={"hold": "on"})
    assert response.status_code == 400
    assert report_row(app, case).legal_hold is False


def test_the_case_controls_macro_posts_what_the_routes_expect(app, alice, case):
    """The macro another page includes (the case page) drives the routes as they are."""
    source = '{% from "oversight/_case_controls.html" import case_controls %}{{ case_controls(pid, held) }}'
    with app.test_request_context():
        to_hold = render_template_string(source, pid=case, held=False)
        to_release = render_template_string(source, pid=case, held=True)
    officer = officer_client(app, alice)
    for page, expected in ((to_hold, True), (to_release, False)):
        action = re.search(r'<form method="post" action="([^"]+)"', page).group(1)
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
        assert action == case_url(case, "/hold")
        assert post_on_case(officer, case, "/hold", {"hold": fields["hold"]}).status_code == 303
        assert report_row(app, case).legal_hold is expected
    links = re.findall(r'href="(/officer/reports/[^"]+/export[^"]*)"', to_hold)
    assert [link.rsplit("=", 1)[1] for link in links] == ["0", "1"]
    archives = [unzip(officer.get(link.replace("&amp;", "&"))) for link in links]
    assert ["notes.html" in archive.namelist() for archive in archives] == [False, True]


# --- the guard ---------------------------------------------------------------------


def test_every_oversight_route_refuses_an_anonymous_client(app, client, case):
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("oversight.")]
    assert len(rules) == 3
    token = csrf_token(client.get("/officer/login").get_data(as_text=True))
    for rule in rules:
        url = app.url_map.bind("localhost").build(rule.endpoint, dict.fromkeys(rule.arguments, case))
        for method in sorted((rule.methods or set()) - {"OPTIONS", "HEAD"}):
            data = {"csrf_token": token, "hold": "on"} if method == "POST" else None
            response = client.open(url, method=method, data=data)
            assert response.status_code == 303, (url, method)
            assert response.headers["Location"].endswith("/officer/login")
    assert report_row(app, case).legal_hold is False
    assert audit_entries(app, "report_exported") == []


# --- statistics --------------------------------------------------------------------


def cases_figure(page: str) -> str:
    match = re.search(r"<dt>Cases</dt><dd>([^<]*)</dd>", page)
    assert match, "no case count on the page"
    return match.group(1)


def test_statistics_count_only_what_the_officer_can_read_and_withhold_small_numbers(app, client, alice, bob):
    for _ in range(3):
        submit_report(client, excluded_officers=[bob.public_id])
    for_alice = officer_client(app, alice).get("/officer/statistics")
    for_bob = officer_client(app, bob).get("/officer/statistics")
    assert for_alice.status_code == for_bob.status_code == 200
    alice_page, bob_page = for_alice.get_data(as_text=True), for_bob.get_data(as_text=True)
    assert cases_figure(alice_page) == "3"
    assert cases_figure(bob_page) == "fewer than 3"
    assert "No cases." in bob_page
    # Figures only: no case is named or linked.
    assert "/officer/reports/" not in alice_page
    assert MARKER not in alice_page


def test_statistics_filter_by_year(app, client, alice):
    for _ in range(3):
        submit_report(client)
    this_year = runtime_of(app).clock.today().year
    officer = officer_client(app, alice)
    assert cases_figure(officer.get(f"/officer/statistics?year={this_year}").get_data(as_text=True)) == "3"
    page = officer.get(f"/officer/statistics?year={this_year - 1}").get_data(as_text=True)
    assert cases_figure(page) == "fewer than 3"
    assert cases_figure(officer.get("/officer/statistics?year=junk").get_data(as_text=True)) == "3"
    assert cases_figure(officer.get("/officer/statistics?year=99999").get_data(as_text=True)) == "3"
    assert cases_figure(officer.get(f"/officer/statistics?year={'9' * 5000}").get_data(as_text=True)) == "3"


@pytest.mark.parametrize("path", ["/officer/statistics", "/officer/reports/{case}/export"])
def test_a_query_string_that_is_not_utf8_is_a_bad_request(app, alice, case, path):
    response = officer_client(app, alice).get(
        path.format(case=case), environ_overrides={"QUERY_STRING": "year=\xff\xfe&notes=\xff"}
    )
    assert response.status_code == 400
    assert audit_entries(app, "report_exported") == []


# --- whistle purge -----------------------------------------------------------------


@pytest.fixture
def command_line(monkeypatch) -> Iterator[None]:
    """The command sets a umask (and Flask an environment variable): give them back."""
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "false")
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def purge(app: Flask):
    """`whistle purge`, on the test's app (whose engine the fixture closes)."""
    return CliRunner().invoke(cli, ["purge"], obj=ScriptInfo(create_app=lambda: app))


def _close(app: Flask, officer: FlaskClient, public_id: str, months_ago: int) -> None:
    data = {"outcome": "substantiated", "summary": "Closing " + MARKER, "share": "y"}
    assert post_on_case(officer, public_id, "/close", data).status_code == 303
    rt = runtime_of(app)
    with rt.session_factory() as db, db.begin():
        report = db.scalar(select(Report).where(Report.public_id == public_id))
        report.closed_on = rt.clock.today() - relativedelta(months=months_ago)


def test_purge_deletes_what_is_due_and_keeps_what_is_held(app, client, alice, command_line):
    for _ in range(3):
        submit_report(client, attachments=[(io.BytesIO(PAYLOAD), "evidence.bin", "application/octet-stream")])
    officer = officer_client(app, alice)
    due, recent, held = reports_listed(officer)
    files_before = blob_files(app)
    assert len(files_before) == 3
    _close(app, officer, due, 13)
    _close(app, officer, recent, 11)
    _close(app, officer, held, 13)
    assert post_on_case(officer, held, "/hold", {"hold": "on"}).status_code == 303
    with runtime_of(app).session_factory() as db:
        due_id = db.scalar(select(Report.id).where(Report.public_id == due))

    result = purge(app)

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Deleted 1 closed case(s) past the retention period of 12 month(s).",
        "Kept 1 case(s) past it because they are on legal hold.",
    ]
    assert report_row(app, due) is None
    assert report_row(app, recent) is not None and report_row(app, held) is not None
    assert len(blob_files(app)) == 2 and blob_files(app) < files_before
    with runtime_of(app).session_factory() as db:
        assert db.scalars(select(KeyWrap).where(KeyWrap.report_id == due_id)).all() == []
        assert len(db.scalars(select(ClosedCaseFigures)).all()) == 1
        assert audit.verify(db).ok
    (entry,) = audit_entries(app, "report_deleted")
    assert (entry.report, entry.detail, entry.subject) == (due, "", None)
    assert officer.get(case_url(due)).status_code == 404

    again = purge(app)
    assert again.exit_code == 0
    assert again.output.startswith("Deleted 0 closed case(s)")
    assert len(audit_entries(app, "report_deleted")) == 1


def test_purge_uses_the_retention_period_administrators_set(app, client, alice, command_line):
    from whistle.services import settings as settings_service

    submit_report(client)
    officer = officer_client(app, alice)
    (public_id,) = reports_listed(officer)
    _close(app, officer, public_id, 13)
    rt = runtime_of(app)
    with rt.session_factory() as db, db.begin():
        settings_service.change(db, alice.public_id, {"retention_months": 24}, dt.datetime.now(dt.UTC))
    result = purge(app)
    assert result.exit_code == 0, result.output
    assert "Deleted 0 closed case(s) past the retention period of 24 month(s)." in result.output
    assert report_row(app, public_id) is not None
