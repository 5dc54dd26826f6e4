"""The database stops answering under a running portal: what a visitor, a load balancer and the
operator's log see.

The outage is a real one (``tests.conftest.database_down``).
"""

from __future__ import annotations

import logging
import re

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tests.conftest import REPORT, Instance, csrf_token, database_down, runtime_of
from whistle import create_app
from whistle.config import Settings
from whistle.models import Report

ADVICE = "Go back, and send the page again in a minute: what you typed is still in the page"


def _unavailable(response, caplog: pytest.LogCaptureFixture) -> str:
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "60"
    page: str = response.get_data(as_text=True)
    assert "The portal cannot take this right now" in page
    assert ADVICE in page
    assert "Northshire Council" in page  # the page is the portal's own, made without a query
    # The driver's kind of error, for the operator: OperationalError, AdminShutdown, ...
    assert re.search(r"database unavailable \((\w+)\)", caplog.text)
    # The log names the kind of failure only: no SQL, no parameters, no driver message.
    assert "SELECT" not in caplog.text and "open database" not in caplog.text
    assert "connections" not in caplog.text
    return page


def test_a_database_that_stops_answering_gives_a_503_page_that_asks_to_send_again(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    assert client.get("/").status_code == 200
    sending = {"csrf_token": csrf_token(client.get("/report").get_data(as_text=True)), **REPORT}
    with database_down(app), caplog.at_level(logging.ERROR, logger="whistle"):
        _unavailable(client.get("/"), caplog)
        _unavailable(client.post("/report", data=sending, content_type="multipart/form-data"), caplog)
        # A new visitor opening the form: its token is made, but no session can be kept for it.
        _unavailable(app.test_client().get("/report"), caplog)
    # Back up: the page sent again, as the browser kept it, goes through once; the session
    # (and so the form's token) was left as it was.
    sent = client.post("/report", data=sending, content_type="multipart/form-data")
    assert sent.status_code == 200
    assert "Your receipt code is" in sent.get_data(as_text=True)
    with runtime_of(app).session_factory() as db:
        assert db.scalar(select(func.count(Report.id))) == 1


def test_a_process_that_never_reached_its_database_still_names_the_organisation(
    instance: Instance, caplog: pytest.LogCaptureFixture
) -> None:
    """A process that has not read the administrators' settings yet falls back on the instance's
    own name, rather than failing again on the page that reports the failure."""
    fresh = create_app(Settings.load(instance.path))
    fresh.config["TESTING"] = True
    assert runtime_of(fresh).organisation_read.value is None
    try:
        with database_down(fresh), caplog.at_level(logging.ERROR, logger="whistle"):
            _unavailable(fresh.test_client().get("/"), caplog)
    finally:
        runtime_of(fresh).engine.dispose()


# PostgreSQL only: a SQLite connection cannot be cut from outside.
@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_a_connection_lost_as_a_report_is_committed_keeps_nothing_and_asks_to_send_again(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """The database goes away between the report being written and its commit, the last step of
    a request: nothing is kept, and the reporter gets the same page as for an outage."""
    url = make_url(runtime_of(app).settings.database_url)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the error goes to the error page
    client = app.test_client()
    sending = {"csrf_token": csrf_token(client.get("/report").get_data(as_text=True)), **REPORT}
    admin = create_engine(url, isolation_level="AUTOCOMMIT")

    def cut(session: Session) -> None:
        if any(isinstance(row, Report) for row in session.identity_map.values()):
            pid = session.connection().connection.dbapi_connection.info.backend_pid
            with admin.connect() as connection:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    event.listen(Session, "before_commit", cut)
    try:
        with caplog.at_level(logging.ERROR, logger="whistle"):
            _unavailable(client.post("/report", data=sending, content_type="multipart/form-data"), caplog)
    finally:
        event.remove(Session, "before_commit", cut)
        admin.dispose()
    with runtime_of(app).session_factory() as db:
        assert db.scalar(select(func.count(Report.id))) == 0
    sent = client.post("/report", data=sending, content_type="multipart/form-data")
    assert "Your receipt code is" in sent.get_data(as_text=True)
