"""Two hosts, one site: gunicorn twice (two workers each) on one PostgreSQL database and one Redis.

Host A and host B are separate gunicorn servers on different ports that share
what a production deployment shares: the database (``database_url``), the
rate-limit counters (``rate_limit_storage`` on Redis) and the instance folder
(its secrets and the sealed files; in production, copied secrets and shared
file storage, see docs/deploy.md). Every request opens a new connection, so it
may land on either worker of either host: nothing may live in one process's
memory. A visitor keeps one cookie jar for both, as a browser does for one name.

Needs WHISTLE_TEST_DATABASE_URL and WHISTLE_TEST_REDIS_URL; each test run
makes its own database on that server and its own key prefix in that Redis,
and removes both at the end. Every HTTP call has a timeout, and the servers
are always stopped.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.conftest import CHEAP_KDF, PASSWORD, PG_ENV
from tests.functional.servers import (
    HTTP_TIMEOUT,
    OFFICER_EMAIL,
    Browser,
    Instance,
    Server,
    receipt_on,
    report_fields,
)
from tests.unit.databases import empty_postgresql, scratch_postgresql
from whistle import crypto
from whistle.config import WEAK_KDF_ENV, create_instance
from whistle.crypto import KdfParams
from whistle.db import make_engine, make_session_factory
from whistle.services import officers

REDIS_ENV = "WHISTLE_TEST_REDIS_URL"
WHISTLE = Path(sys.executable).with_name("whistle")
SETUP_LINK = re.compile(r"https?://\S+?(/setup/\S+)")
PER_RECEIPT = 3

pytestmark = pytest.mark.postgresql


@dataclass
class Site:
    instance: Instance
    a: Server
    b: Server
    redis: redis.Redis
    prefix: str

    def browser(self, server: Server) -> Browser:
        return Browser(server.port)

    def limit_keys(self) -> list[bytes]:
        return list(self.redis.scan_iter(match=f"{self.prefix}:*"))


def on(browser: Browser, server: Server) -> Browser:
    """The same visitor (the same cookie jar) talking to another host."""
    other = Browser(server.port, timeout=browser.timeout)
    other.cookies = browser.cookies
    return other


def whistle_command(instance: Instance, *args: str) -> subprocess.CompletedProcess[str]:
    """A ``whistle`` command as an operator runs it on a host, for this instance."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WHISTLE_") or key == WEAK_KDF_ENV
    }
    env["WHISTLE_INSTANCE"] = str(instance.path)
    return subprocess.run(
        [str(WHISTLE), *args], env=env, capture_output=True, text=True, timeout=120, check=True
    )


def start_up_migrations(instance: Instance) -> None:
    """Both hosts start at once, each running `whistle db upgrade` first (as `make serve` does)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WHISTLE_") or key == WEAK_KDF_ENV
    }
    env["WHISTLE_INSTANCE"] = str(instance.path)
    upgrades = [
        subprocess.Popen(
            [str(WHISTLE), "db", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _host in "ab"
    ]
    for process in upgrades:
        try:
            output, _ = process.communicate(timeout=120)
        finally:
            process.kill()
        assert process.returncode == 0, output
        assert "The database is up to date." in output


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    database, redis_url = os.environ.get(PG_ENV), os.environ.get(REDIS_ENV)
    if not database or not redis_url:
        pytest.skip(f"{PG_ENV} and {REDIS_ENV} must both be set to run two hosts on one site")
    store = redis.Redis.from_url(redis_url, socket_timeout=10)
    prefix = f"whistle-test-{secrets.token_hex(6)}"
    root = tmp_path_factory.mktemp("two_hosts")
    with scratch_postgresql(database, "two_hosts") as url:
        path = root / "instance"
        create_instance(
            path, f'{CHEAP_KDF}database_url = "{url}"\norganisation_name = "Northshire Council"\n'
        )
        instance = Instance(path, url)
        start_up_migrations(instance)
        env = {
            "WHISTLE_RATE_LIMIT_STORAGE": redis_url,
            "WHISTLE_RATE_LIMIT_PREFIX": prefix,
            "WHISTLE_RECEIPT_ATTEMPTS_PER_RECEIPT": f"{PER_RECEIPT} per hour",
        }
        a = Server(instance, root / "host_a", workers=2, env=env)
        b = Server(instance, root / "host_b", workers=2, env=env)
        try:
            a.start()
            b.start()
            yield Site(instance, a, b, store, prefix)
        finally:
            try:
                a.stop()
            finally:
                b.stop()
                keys = list(store.scan_iter(match=f"{prefix}:*"))
                if keys:
                    store.delete(*keys)
                store.close()


@pytest.fixture
def fresh(site: Site) -> Site:
    """The site with an empty database (the servers keep running)."""
    engine = make_engine(site.instance.database_url)
    try:
        empty_postgresql(engine)
    finally:
        engine.dispose()
    return site


def add_officer(instance: Instance) -> None:
    engine = make_engine(instance.database_url)
    try:
        with make_session_factory(engine)() as db, db.begin():
            officers.create_officer(
                db,
                KdfParams(time_cost=1, memory_cost=8, parallelism=1),
                OFFICER_EMAIL,
                "Olive Officer",
                PASSWORD,
                dt.datetime.now(dt.UTC),
                is_admin=True,
            )
    finally:
        engine.dispose()


# --- a journey across both hosts ----------------------------------------------------------


def test_a_report_is_sent_on_one_host_and_followed_on_the_other(fresh: Site) -> None:
    site = fresh
    add_officer(site.instance)
    words = "Caseloads on the east team are far beyond safe limits. TWO-HOSTS-7c1e"
    evidence = b"Rota for March: 31 open cases per worker.\n"

    # The reporter sends the report (with a file) on A ...
    reporter_a = site.browser(site.a)
    sent = reporter_a.submit_form(
        "/report", report_fields(words), files=[("attachments", "rota.txt", "text/plain", evidence)]
    )
    assert sent.status == 200, sent.describe()
    receipt = receipt_on(sent)

    # ... comes back with the receipt on B, and replies there.
    reporter_b = site.browser(site.b)
    back = reporter_b.submit_form("/follow-up", [("receipt", receipt)])
    assert back.status == 303, back.describe()
    assert reporter_b.get("/follow-up/case").status == 200
    reply = "I can add that two posts have been empty since January. REPLY-ON-B-51d2"
    answered = reporter_b.submit_form("/follow-up/case", [("body", reply)])
    assert answered.status == 303, answered.describe()
    assert reply in reporter_b.get("/follow-up/case?sent=1").text

    # The officer logs in on A and reads the report and the reply ...
    officer_a = site.browser(site.a)
    assert officer_a.login().status == 303
    (public_id,) = officer_a.listed_reports()
    case = officer_a.get(f"/officer/reports/{public_id}")
    assert case.status == 200, case.describe()
    assert words in case.text
    assert reply in case.text

    # ... then opens the same case on B with the same session cookie (sessions are in the database).
    officer_b = on(officer_a, site.b)
    case_b = officer_b.get(f"/officer/reports/{public_id}")
    assert case_b.status == 200, case_b.describe()
    assert reply in case_b.text
    # The file sent to A is read through B (the sealed files are shared).
    (download,) = re.findall(
        rf'href="(/officer/reports/{public_id}/attachments/[0-9a-f]{{32}})"', case_b.text
    )
    assert officer_b.get(download).body == evidence

    # The officer answers on B; the reporter, whose session began on B, reads it on A.
    answer = "Thank you. We have opened a review of staffing. OFFICER-ON-B-0a9f"
    replied = officer_b.submit_form(
        f"/officer/reports/{public_id}", [("body", answer)], action=f"/officer/reports/{public_id}/messages"
    )
    assert replied.status == 303, replied.describe()
    assert answer in on(reporter_b, site.a).get("/follow-up/case").text

    # Logging out on A ends the session on B too, even for a copy of the cookie kept from before.
    kept = Browser(site.b.port)
    kept.cookies = dict(officer_a.cookies)
    assert officer_a.submit_form("/officer/", [], action="/officer/logout").status == 303
    assert kept.get(f"/officer/reports/{public_id}").status == 303


# --- rate limits ------------------------------------------------------------------------------


def test_a_rate_limit_hit_on_one_host_counts_on_the_other(fresh: Site) -> None:
    site = fresh
    a, b = site.browser(site.a), site.browser(site.b)
    sent = a.submit_form("/report", report_fields("Rotas are falsified."))
    assert sent.status == 200, sent.describe()
    guess = receipt_on(sent)  # only the right receipt of a report is counted
    for browser in (a, a, b):  # PER_RECEIPT tries: 2 on A, 1 on B
        tried = browser.submit_form("/follow-up", [("receipt", guess)])
        assert tried.status == 303, tried.describe()
    for browser in (a, b):  # the next one is refused on either host
        refused = browser.submit_form("/follow-up", [("receipt", guess)])
        assert refused.status == 429, refused.describe()
        assert int(refused.headers["Retry-After"]) > 0
    # The limit is per report: a wrong receipt is still told it is wrong.
    other = b.submit_form("/follow-up", [("receipt", crypto.new_receipt())])
    assert other.status == 422, other.describe()

    # The counters are in Redis under the instance's prefix, and no receipt is there in clear.
    keys = site.limit_keys()
    assert keys, "no rate-limit counter reached Redis"
    normalised = crypto.normalise_receipt(guess)
    for key in keys:
        assert normalised.encode() not in key
        assert guess.encode() not in key


# --- first run --------------------------------------------------------------------------------


def setup_path(site: Site) -> str:
    printed = whistle_command(site.instance, "setup-link").stdout
    match = SETUP_LINK.search(printed)
    assert match, printed
    return match.group(1)


def test_the_first_run_link_works_on_either_host_once(fresh: Site) -> None:
    site = fresh
    replaced = setup_path(site)
    path = setup_path(site)  # a new link replaces the one printed before
    for server in (site.a, site.b):
        assert site.browser(server).get(replaced).status == 404
        assert site.browser(server).get(path).status == 200
    done = site.browser(site.b).submit_form(
        path,
        [("display_name", "Ada Admin"), ("email", "ada@example.org"), ("password", PASSWORD)],
    )
    assert done.status == 200, done.describe()
    assert "Your account is ready" in done.text
    for server in (site.a, site.b):
        assert site.browser(server).get(path).status == 404
    assert whistle_command(site.instance, "setup-link").stdout == ""
    # The administrator it made logs in on the other host.
    assert site.browser(site.a).login("ada@example.org", PASSWORD).status == 303


# --- logs -------------------------------------------------------------------------------------


def test_a_malformed_request_is_logged_without_the_client_address(site: Site) -> None:
    with socket.create_connection(("127.0.0.1", site.a.port), timeout=HTTP_TIMEOUT) as connection:
        connection.sendall(b"NOT AN HTTP REQUEST\r\n\r\n")
        assert connection.recv(100).startswith(b"HTTP/1.1 400")
    # gunicorn logs the warning before it answers, so it is in the log by now.
    log = site.a.error_log.read_text(errors="replace")
    assert "Invalid request from ip=-" in log
    assert "ip=127.0.0.1" not in log


def test_both_hosts_report_themselves_healthy_to_a_load_balancer(site: Site) -> None:
    """Through gunicorn, on the shared PostgreSQL and Redis: what a health check sees on each host."""
    for server in (site.a, site.b):
        visitor = site.browser(server)
        page = visitor.get("/health")
        assert (page.status, page.text) == (200, "ok\n")
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers.get_all("Set-Cookie") is None
