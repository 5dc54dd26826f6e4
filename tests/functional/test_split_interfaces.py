"""Split deployment: the ``interface`` setting makes a process serve the reporter's pages only, or
the officers' only, from the same code and the same instance.

A reporter process must not answer for any officer page (the officer side may
then live on an internal network only), and an officer process must not answer
for the reporter's; each still serves static files and its own error pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import (
    CHEAP_KDF,
    REPORT,
    add_officer,
    csrf_token,
    login,
    reports_listed,
    runtime_of,
    submit_report,
)
from whistle import create_app
from whistle.config import ConfigError, Settings, create_instance
from whistle.db import upgrade
from whistle.services import officers

REPORTER_PAGES = ["/", "/report", "/follow-up"]
OFFICER_PAGES = ["/officer/login"]
#: Pages of the other side, asked for by a visitor who is not logged in.
OFFICER_ONLY = ["/officer/login", "/officer/", "/officer/reset", "/admin/officers", "/admin/settings"]
REPORTER_ONLY = ["/", "/report", "/follow-up", "/follow-up/case"]


@pytest.fixture
def instance_path(tmp_path: Path) -> Path:
    path = tmp_path / "instance"
    url = f"sqlite:///{path / 'whistle.db'}"
    create_instance(path, f'{CHEAP_KDF}database_url = "{url}"\norganisation_name = "Northshire Council"\n')
    upgrade(url)
    return path


@pytest.fixture
def processes(instance_path: Path) -> Iterator[dict[str, Flask]]:
    """The three ways to serve one instance, side by side as separate processes would."""
    apps = {}
    for interface in ("all", "reporter", "officer"):
        app = create_app(Settings.load(instance_path, interface=interface))
        app.config["TESTING"] = True
        apps[interface] = app
    yield apps
    for app in apps.values():
        runtime_of(app).engine.dispose()


def static_file_served(client: FlaskClient) -> bool:
    with client.get("/static/whistle.css") as response:
        return response.status_code == 200


def setup_token(app: Flask) -> str:
    rt = runtime_of(app)
    with rt.session_factory() as db, db.begin():
        token = officers.new_setup_token(db, rt.clock.now())
    assert token is not None
    return token


def test_the_reporter_process_answers_404_for_every_officer_page(processes: dict[str, Flask]) -> None:
    client = processes["reporter"].test_client()
    for page in REPORTER_PAGES:
        assert client.get(page).status_code == 200, page
    assert static_file_served(client)
    token = setup_token(processes["reporter"])
    for page in [*OFFICER_ONLY, f"/setup/{token}"]:
        response = client.get(page)
        assert response.status_code == 404, page
        assert "Page not found" in response.get_data(as_text=True)
    assert (
        client.post("/officer/login", data={"email": "a@example.org", "password": "x" * 12}).status_code
        == 404
    )
    # The same link works where the officer side is served.
    assert processes["officer"].test_client().get(f"/setup/{token}").status_code == 200


def test_the_officer_process_answers_404_for_every_reporter_page(processes: dict[str, Flask]) -> None:
    client = processes["officer"].test_client()
    for page in OFFICER_PAGES:
        assert client.get(page).status_code == 200, page
    assert static_file_served(client)
    for page in REPORTER_ONLY:
        response = client.get(page)
        assert response.status_code == 404, page
        page_text = response.get_data(as_text=True)
        assert "Page not found" in page_text
        # The error page's "start page" is this process's own, not the reporter's missing one.
        assert 'href="/officer/"' in page_text
        assert 'href="/"' not in page_text
    assert client.post("/report", data=REPORT).status_code == 404
    assert client.post("/follow-up", data={"receipt": "AAAA-AAAA-AAAA-AAAA"}).status_code == 404


def test_each_process_registers_only_its_own_blueprints(processes: dict[str, Flask]) -> None:
    served = {interface: set(app.blueprints) for interface, app in processes.items()}
    assert served["reporter"] == {"reporter"}
    assert "reporter" not in served["officer"]
    assert {"officer", "admin", "setup"} <= served["officer"]
    assert served["all"] == served["reporter"] | served["officer"]
    endpoints = {rule.endpoint for rule in processes["reporter"].url_map.iter_rules()}
    # Static files and the health check are served by both halves.
    assert {e.partition(".")[0] for e in endpoints} == {"reporter", "static", "health"}


def test_the_two_halves_serve_one_instance(processes: dict[str, Flask]) -> None:
    """A report sent to the reporter process is read through the officer process."""
    officer = add_officer(processes["officer"], "Alice Officer", "alice@example.org", admin=True)
    reporter_client = processes["reporter"].test_client()
    receipt = submit_report(reporter_client)
    officer_client = processes["officer"].test_client()
    assert login(officer_client, officer).status_code == 303
    (public_id,) = reports_listed(officer_client)
    page = officer_client.get(f"/officer/reports/{public_id}").get_data(as_text=True)
    assert REPORT["what_happened"] in page
    # The reporter comes back through the reporter process with the receipt.
    form = reporter_client.get("/follow-up").get_data(as_text=True)
    back = reporter_client.post("/follow-up", data={"csrf_token": csrf_token(form), "receipt": receipt})
    assert back.status_code == 303
    assert reporter_client.get("/follow-up/case").status_code == 200


def test_all_serves_both_sides(processes: dict[str, Flask]) -> None:
    client = processes["all"].test_client()
    for page in [*REPORTER_PAGES, *OFFICER_PAGES]:
        assert client.get(page).status_code == 200, page


def test_the_interface_comes_from_the_environment_and_an_unknown_one_stops_start_up(
    instance_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHISTLE_INTERFACE", "officer")
    assert Settings.load(instance_path).interface == "officer"
    monkeypatch.setenv("WHISTLE_INTERFACE", "reporters")
    with pytest.raises(ConfigError, match=re.escape("interface must be one of all, reporter, officer")):
        Settings.load(instance_path)
