"""Threat 3, the employer hunting the reporter: no address, user agent or time of day is kept.

Every request of a whole journey carries a distinctive client address,
X-Forwarded-For, X-Real-IP, User-Agent and Referer. None of them may reach the
database, the instance folder or any log record (every logger at DEBUG).
Werkzeug's development server, which writes the client address and the time
at the start of each request line, is run for real to show its log keeps the
request line and nothing of the client. Dates a reporter causes are days.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Date, DateTime, select, text
from werkzeug.serving import make_server

from tests.conftest import follow_up, form_post, login, reports_listed, runtime_of
from tests.security.helpers import (
    ListHandler,
    capture_every_logger,
    leaks_in_database,
    leaks_in_files,
    leaks_in_records,
    post_multipart,
    receipt_needles,
    submit_report_with_files,
    text_needles,
)
from whistle.models import Attachment, Message, Report, ServerSession, SessionKind

REMOTE_ADDR = "198.51.100.23"
FORWARDED_FOR = "203.0.113.77"
REAL_IP = "192.0.2.199"
USER_AGENT = "MARKER-UA-Agent/9.9"
REFERER = "https://intranet.example/MARKER-REFERER-3e8d?staff=4471"
CLIENT = {
    "REMOTE_ADDR": REMOTE_ADDR,
    "HTTP_USER_AGENT": USER_AGENT,
    "HTTP_X_FORWARDED_FOR": f"{FORWARDED_FOR}, {REAL_IP}",
    "HTTP_X_REAL_IP": REAL_IP,
    "HTTP_REFERER": REFERER,
    "HTTP_FORWARDED": f"for={FORWARDED_FOR};proto=https",
}
TRACES = [REMOTE_ADDR, FORWARDED_FOR, REAL_IP, USER_AGENT, "MARKER-REFERER-3e8d"]

WHAT = "MARKER-TRACE-WHAT-b71e"
REPLY = "MARKER-TRACE-REPLY-0a3f"
OFFICER_REPLY = "MARKER-TRACE-OFFICER-77c2"
FILE_NAME = "MARKER-TRACE-FILE-9d9d.txt"
CONTENT = "MARKER-TRACE-CONTENT-6b1a"


def _client(app):
    client = app.test_client()
    client.environ_base.update(CLIENT)
    return client


def _journey(app, alice) -> str:
    """Submit, follow up, reply with a file, officer login, read, reply, download; return the receipt."""
    reporter = _client(app)
    assert reporter.get("/").status_code == 200
    receipt = submit_report_with_files(
        reporter,
        what_happened=f"Records were changed: {WHAT}",
        attachments=[((CONTENT + "\n").encode() * 5_000, FILE_NAME)],
    )

    returning = _client(app)
    assert follow_up(returning, receipt).status_code == 303
    assert returning.get("/follow-up/case").status_code == 200
    response = post_multipart(returning, "/follow-up/case", {"body": REPLY, "attachments": []})
    assert response.status_code == 303

    officer = _client(app)
    assert login(officer, alice).status_code == 303
    [public_id] = reports_listed(officer)
    page = officer.get(f"/officer/reports/{public_id}").get_data(as_text=True)
    assert WHAT in page
    assert REPLY in page
    link = re.search(r'href="(/officer/reports/[0-9a-f]+/attachments/[0-9a-f]+)"', page).group(1)
    assert CONTENT.encode() in officer.get(link).data
    response = form_post(
        officer,
        f"/officer/reports/{public_id}",
        {"body": OFFICER_REPLY},
        action=f"/officer/reports/{public_id}/messages",
    )
    assert response.status_code == 303
    assert OFFICER_REPLY in returning.get("/follow-up/case").get_data(as_text=True)
    # A few failures too: their pages and logs must not keep the client either.
    assert _client(app).get("/no-such-page").status_code == 404
    assert follow_up(_client(app), "AAAA-BBBB-CCCC-DDDD").status_code == 422
    assert _client(app).post("/follow-up", data={"receipt": receipt}).status_code == 400
    return receipt


def test_a_journey_leaves_no_trace_of_the_client(app, alice, instance, caplog):
    capture_every_logger(caplog)
    receipt = _journey(app, alice)
    needles = text_needles(*TRACES)

    assert leaks_in_database(runtime_of(app).engine, needles) == []
    assert leaks_in_files(instance.path, needles) == []
    assert leaks_in_records(caplog.records, needles) == []
    # Logs carry kinds and ids, never what was written, nor the receipt.
    content = [*text_needles(WHAT, REPLY, OFFICER_REPLY, FILE_NAME, CONTENT), *receipt_needles(receipt)]
    assert leaks_in_records(caplog.records, content) == []
    # The capture was live at DEBUG for every logger: the database layer's own
    # debug records (every statement) were caught, so silence is not an accident.
    assert any(record.name.startswith("sqlalchemy.engine") for record in caplog.records)


def test_rate_limit_storage_keeps_no_trace(app, alice):
    """The limiter's counters (in memory here, in Redis with several processes) are
    keyed by HMACs, never by an address, a user agent or a receipt."""
    from whistle.web.limits import limiter

    receipt = _journey(app, alice)
    storage = limiter.storage
    state = repr({name: value for name, value in vars(storage).items() if name not in {"timer", "locks"}})
    assert "receipt-one" in state, "the limiter recorded nothing, so this test would prove nothing"
    needles = [*text_needles(*TRACES, alice.email), *receipt_needles(receipt)]
    assert leaks_in_records([_as_record(state)], needles) == []


def _as_record(message: str) -> logging.LogRecord:
    return logging.LogRecord("limiter-state", logging.INFO, __file__, 0, "%s", (message,), None)


# --- the development server's request log --------------------------------------


@contextmanager
def _serving(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _get(url: str, *, data: bytes | None = None) -> int:
    request = urllib.request.Request(  # noqa: S310 - a local test server
        url,
        data=data,
        headers={
            "User-Agent": USER_AGENT,
            "Referer": REFERER,
            "X-Forwarded-For": FORWARDED_FOR,
            "X-Real-IP": REAL_IP,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            error.read()
        return int(error.code)


def _raw(base: str, payload: bytes) -> None:
    """Send bytes that are not a valid request, so the server logs an error line."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(payload)
        while connection.recv(4096):
            pass


@pytest.fixture
def werkzeug_records(caplog) -> Iterator[list[logging.LogRecord]]:
    """What the "werkzeug" logger passes on to its handlers, after its own filters ran."""
    caplog.set_level(logging.DEBUG, logger="werkzeug")
    handler = ListHandler()
    logger = logging.getLogger("werkzeug")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def test_development_server_logs_no_client_address_or_agent(app, werkzeug_records, caplog):
    with _serving(app) as base:
        assert _get(f"{base}/") == 200
        assert _get(f"{base}/report") == 200
        assert _get(f"{base}/static/whistle.css") == 200
        assert _get(f"{base}/no-such-page") == 404
        assert _get(f"{base}/follow-up", data=b"receipt=AAAA-BBBB-CCCC-DDDD") == 400
        _raw(base, b"NONSENSE\r\n\r\n")

    messages = [record.getMessage() for record in werkzeug_records]
    # The log still says what happened, so this cannot pass by logging nothing.
    assert any('"GET / HTTP/1.1" 200' in message for message in messages), messages
    assert any("GET /report HTTP/1.1" in message for message in messages), messages
    assert any("NONSENSE" in message for message in messages), messages

    needles = text_needles("127.0.0.1", *TRACES)
    assert leaks_in_records(werkzeug_records, needles) == []
    assert leaks_in_records(caplog.records, needles) == []
    # Nor the exact time a request came in (werkzeug's default is "[28/Nov/2026 11:21:29]").
    assert not [m for m in messages if re.search(r"\d{1,2}:\d{2}:\d{2}", m)], messages


def test_development_server_error_output_has_no_client_address(app, werkzeug_records, capsys):
    with _serving(app) as base:
        _raw(base, b"GET http://[bad/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert _get(f"{base}/") == 200  # the server is still up and logging
    captured = capsys.readouterr()
    output = captured.out + captured.err + "\n".join(record.getMessage() for record in werkzeug_records)
    assert "GET / HTTP/1.1" in output
    assert "127.0.0.1" not in output, output


# --- dates -------------------------------------------------------------------


@pytest.mark.parametrize("model", [Report, Message, Attachment])
def test_reporter_side_rows_have_no_time_of_day_columns(model):
    temporal = {
        column.name: type(column.type)
        for column in model.__table__.columns
        if isinstance(column.type, Date | DateTime)
    }
    assert temporal, f"{model.__name__} has no date at all, so this test would prove nothing"
    assert {name: kind for name, kind in temporal.items() if kind is not Date} == {}


def test_stored_dates_are_days(app, alice):
    _journey(app, alice)
    rt = runtime_of(app)
    with rt.session_factory() as db:
        received = db.scalars(select(Report.received_on)).all()
        assert received
        assert all(type(value) is dt.date for value in received)
        for table, columns in {
            "report": ["received_on", "status_changed_on", "first_read_on", "acknowledged_on"],
            "message": ["sent_on"],
            "attachment": ["uploaded_on"],
        }.items():
            rows = db.execute(text(f"SELECT {', '.join(columns)} FROM {table}")).all()  # noqa: S608
            assert rows, table
            for row in rows:
                for value in row:
                    if value is not None:
                        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value)), (table, value)


def test_reporter_sessions_keep_only_a_coarse_sweep_time(app, alice):
    """A reporter's session row must not say when they were active: its sweep
    time is on the hour (the exact idle limit is sealed inside)."""
    _journey(app, alice)
    with runtime_of(app).session_factory() as db:
        rows = db.scalars(select(ServerSession).where(ServerSession.kind != SessionKind.OFFICER)).all()
        anonymous = db.scalars(select(ServerSession).where(ServerSession.kind.is_(None))).all()
    rows = [*rows, *anonymous]
    assert rows, "no reporter session was stored, so this test would prove nothing"
    for row in rows:
        expires = row.expires_at
        assert (expires.minute, expires.second, expires.microsecond) == (0, 0, 0), expires


def test_sealed_files_do_not_record_when_they_were_uploaded(app, instance):
    client = _client(app)
    before = time.time()
    submit_report_with_files(client, attachments=[(b"evidence", "a.txt")])
    after = time.time()
    store = instance.path / "files"
    [blob] = [path for path in store.rglob("*") if path.is_file()]
    # The file, the folder it went into (new for its first file), and the root that a new folder changes.
    for path in (blob, blob.parent, store):
        mtime = path.stat().st_mtime
        assert not (int(before) - 1 <= mtime <= after + 1), f"{path.name}'s mtime is the moment of the upload"
