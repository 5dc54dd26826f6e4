"""Robustness of the real server: gunicorn with gunicorn.conf.py, killed with -9 and flooded.

What a crash must never leave: a half-stored report, or a reporter's words or
evidence in clear on disk (threat model, item 1). What a crowd of reporters at
once must never get: a failed request, a lost or doubled report, a reply filed
under the wrong report. What one attacker flooding the portal must never do: keep
out a new reporter, a returning reporter or an officer (threat model, item 5).
And what gunicorn's logs must never hold: the client's address, a receipt, what
a reporter wrote (threat model, item 3).

Every server runs in a process group of its own and is stopped in a ``finally``
(SIGTERM, then SIGKILL); every HTTP call has a timeout, and the crowd has an
overall deadline, so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest
from PIL import Image
from sqlalchemy import create_engine, make_url, text

from tests.conftest import PG_ENV, csrf_token
from tests.functional.servers import (
    OFFICER_EMAIL,
    Browser,
    Page,
    RawUpload,
    Server,
    files_containing,
    make_instance,
    pattern,
    receipt_on,
    report_fields,
)
from whistle.db import make_engine, upgrade
from whistle.services import maintenance

MB = 1024 * 1024
T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.01) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def check_access_log(
    server: Server,
    *request_lines: str,
    counts: dict[str, int] | None = None,
    secrets_kept_out: tuple[str, ...] = (),
) -> None:
    """The access log shows what was asked, never who asked (nor a receipt or what was written).

    gunicorn writes a request's line after the client has its answer, so the
    lines looked for are waited for a little.
    """
    wanted = {line: 1 for line in request_lines} | (counts or {})
    deadline = time.monotonic() + 5
    while True:
        log = server.access_log.read_text(errors="replace")
        if all(log.count(line) >= n for line, n in wanted.items()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for line in request_lines:
        assert line in log, f"{line!r} is not in the access log\n{server.logs_tail()}"
    for line, n in (counts or {}).items():
        assert log.count(line) == n, f"{line!r} is {log.count(line)} times in the access log, not {n}"
    assert "127.0.0.1" not in log, f"the access log holds the client's address\n{server.logs_tail()}"
    everything = log + server.error_log.read_text(errors="replace")
    for secret in secrets_kept_out:
        assert secret not in everything, f"{secret!r} was written to the server's logs"


def assert_no_plaintext(server: Server, *markers: bytes) -> None:
    for folder in (server.instance.path, server.tmpdir):
        for marker in markers:
            found = files_containing(folder, marker)
            assert not found, f"{marker!r} is in clear in {found}\n{server.logs_tail()}"


def officer_sees(server: Server) -> tuple[Browser, list[str]]:
    officer = Browser(server.port)
    response = officer.login()
    assert response.status == 303, f"{response.describe()}\n{server.logs_tail()}"
    return officer, officer.listed_reports()


def start_upload(server: Server, words: str, marker: bytes, size: int) -> RawUpload:
    """Open the report form, then begin posting it with a ``size``-byte file of ``marker``."""
    reporter = Browser(server.port)
    form = reporter.get("/report")
    assert form.status == 200, f"{form.describe()}\n{server.logs_tail()}"
    return RawUpload(
        reporter,
        "/report",
        [("csrf_token", csrf_token(form.text)), *report_fields(words)],
        ("attachments", "evidence.bin", "application/octet-stream"),
        marker,
        size,
    )


def kill_mid_submission(
    server: Server,
    words: str,
    marker: bytes,
    size: int,
    caught: Callable[[], object],
    attempts: int,
    run_for: float = 0.002,
) -> int:
    """Submit a report, run the worker in steps and kill -9 it as soon as ``caught()`` holds.

    ``caught()`` is only looked at while the worker is stopped, so what it saw is
    what the kill leaves. If a step overshoots (the answer came first: a loaded
    machine), that report is stored whole and the next attempt begins. Returns
    how many reports were stored whole that way.
    """
    stored_whole = 0
    for _attempt in range(attempts):
        upload = start_upload(server, words, marker, size)
        try:
            upload.send()
            outcome = server.step_until(
                partial(_answered_or_caught, upload, caught), timeout=30, run_for=run_for
            )
            if outcome == "caught":
                server.kill()
                return stored_whole
            server.thaw()
            status, _body = upload.response()
            assert status == 200, f"the upload got {status}\n{server.logs_tail()}"
            stored_whole += 1
        finally:
            upload.close()
    pytest.fail(f"the worker was not caught in {attempts} attempts\n{server.logs_tail()}")


def _answered_or_caught(upload: RawUpload, caught: Callable[[], object]) -> str:
    if upload.answered():
        return "answered"
    return "caught" if caught() else ""


@pytest.fixture(scope="module")
def scratch_postgresql() -> Iterator[str]:
    """A database of this module's own on the suite's PostgreSQL server, dropped at the end.

    Other tests use the suite's database at the same time; this one is ours alone.
    """
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set, so the PostgreSQL variant is skipped")
    name = f"whistle_robust_{secrets.token_hex(6)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(base).set(database=name).render_as_string(hide_password=False)
            upgrade(url)
            yield url
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _emptied(url: str) -> str:
    """Every table of the schema emptied (the migrations' own bookkeeping kept)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            tables = connection.scalars(
                text(
                    "SELECT tablename FROM pg_tables"
                    " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            ).all()
            listed = ", ".join(f'"{table}"' for table in tables)
            connection.execute(text(f"TRUNCATE {listed} RESTART IDENTITY CASCADE"))
            connection.execute(text("INSERT INTO audit_head (id, entries) VALUES (1, 0)"))
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def server_database(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite in the instance folder (the default), or an empty PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return _emptied(request.getfixturevalue("scratch_postgresql"))


@contextmanager
def stopped_at_the_end(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(tmp_path: Path, server_database: str | None) -> Iterator[Server]:
    """One worker, on SQLite and on PostgreSQL; started by the test, always stopped at the end."""
    with stopped_at_the_end(
        Server(make_instance(tmp_path / "instance", server_database), tmp_path / "server")
    ) as running:
        yield running


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[Server]:
    """The same on SQLite only, for what happens before anything reaches the database."""
    with stopped_at_the_end(Server(make_instance(tmp_path / "instance"), tmp_path / "server")) as running:
        yield running


# --- the logs ------------------------------------------------------------------


def test_without_being_asked_gunicorn_writes_no_access_log(tmp_path):
    """Whatever receives an access log's lines stamps them with the time: none unless asked for."""
    server = Server(make_instance(tmp_path / "instance"), tmp_path / "server", access_log_on=False)
    with stopped_at_the_end(server):
        server.start()
        visitor = Browser(server.port)
        assert visitor.get("/report").status == 200
        assert visitor.get("/").status == 200
        server.stop()
        log = server.access_log.read_text(errors="replace") + server.error_log.read_text(errors="replace")
        assert "GET /report" not in log
        assert "GET / HTTP" not in log


def test_a_malformed_request_leaves_no_client_address_in_the_error_log(sqlite_server):
    """A request line too long (a mangled link, a proxy's doing) must not date and place the reporter."""
    server = sqlite_server
    server.start()
    before = len(server.error_log.read_text().splitlines())  # "Listening at: 127.0.0.1:..." is ours
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"GET /report?" + b"a" * 8000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 414"), answer[:100]
    new_lines = server.error_log.read_text().splitlines()[before:]
    assert not [line for line in new_lines if "127.0.0.1" in line], "\n".join(new_lines)
    check_access_log(server)  # gunicorn logs no line for a request it could not read


# --- kill -9 -----------------------------------------------------------------------


def test_kill_9_during_an_upload_leaves_no_report_and_nothing_in_clear(sqlite_server):
    server = sqlite_server
    marker, words = b"MARKER-KILL-", "WORDS-KILL-7f3a what the reporter wrote"
    instance = server.instance
    server.start()
    upload = start_upload(server, words, marker, 30 * MB)
    try:
        upload.send(upto=15 * MB, pause=0.002)
        # The worker is now inside the request, spooling the file: wait until a good
        # part of it has arrived, and look at what its temporary files hold.
        wait_for(
            lambda: sum(path.stat().st_size for path in server.spooled_files().values()) >= 8 * MB,
            timeout=20,
            what=f"the worker to spool 8 MB of the upload\n{server.logs_tail()}",
            interval=0.05,
        )
        for name, path in server.spooled_files().items():
            in_clear = marker in path.read_bytes()
            assert not in_clear, f"the upload is spooled in clear in {name}"
        server.kill()
    finally:
        upload.close()

    assert instance.count_reports() == 0, server.logs_tail()
    assert instance.published_files() == []
    assert_no_plaintext(server, marker, words.encode())
    # The store is written only once the whole request is in, so nothing is left
    # there to sweep (the sweep of partial files is tested with the next kill).
    assert instance.partial_files() == []

    server.start()
    _officer, listed = officer_sees(server)
    assert listed == []
    check_access_log(server, '"GET /report HTTP/1.1" 200', '"POST /officer/login HTTP/1.1" 303')


@pytest.mark.skipif(
    not os.environ.get("WHISTLE_TEST_RACE_WINDOWS"),
    reason="catching a kill -9 inside a millisecond window by stepping a stopped worker takes minutes "
    "on a loaded machine; set WHISTLE_TEST_RACE_WINDOWS=1 to run it",
)
def test_kill_9_while_the_file_is_sealed_leaves_a_sealed_partial_that_the_sweep_removes(sqlite_server):
    """Killed after the whole request arrived, while the attachment is written to the store.

    The worker is run in short steps (SIGSTOP/SIGCONT) and killed while it is
    stopped with a partial file in the store, so the kill falls between the
    file's creation and the report's commit. Should a step still overshoot
    (a loaded machine), that report is complete and the test tries again.
    """
    server = sqlite_server
    marker, words = b"MARKER-SEAL-", "WORDS-SEAL-51c0 what the reporter wrote"
    instance = server.instance
    server.start()
    stored_whole = kill_mid_submission(server, words, marker, 40 * MB, instance.partial_files, attempts=5)
    leftovers = instance.partial_files()
    assert len(leftovers) == 1
    assert instance.count_reports() == stored_whole, "a report was committed before its file was finished"
    assert len(instance.published_files()) == stored_whole
    assert_no_plaintext(server, marker, words.encode())

    # Young partial files may be a submission in flight in another worker: kept.
    server.start()
    assert instance.partial_files() == leftovers, "the sweep removed a file younger than its grace"
    server.stop()

    # Older than the grace, they are crash leftovers: swept at start-up.
    old = time.time() - maintenance.GRACE.total_seconds() - 3600
    for path in leftovers:
        os.utime(path, (old, old))
    server.start()
    assert instance.partial_files() == [], server.logs_tail()
    assert len(instance.published_files()) == stored_whole
    _officer, listed = officer_sees(server)
    assert len(listed) == stored_whole


@pytest.mark.skipif(
    not os.environ.get("WHISTLE_TEST_RACE_WINDOWS"),
    reason="catching a kill -9 inside a millisecond window by stepping a stopped worker takes minutes "
    "on a loaded machine; set WHISTLE_TEST_RACE_WINDOWS=1 to run it",
)
def test_kill_9_before_the_commit_leaves_a_sealed_orphan_that_the_sweep_removes(server):
    """Killed after the file was published in the store but before its report was committed.

    The orphan carries only its day, so the sweep takes it once that day and a
    whole day more are over; here it is made three days old.
    """
    marker, words = b"MARKER-ORPH-", "WORDS-ORPH-0d9e what the reporter wrote"
    instance = server.instance
    server.start()

    def orphan() -> bool:
        # The worker is stopped: a report that is not in the database now is not committed.
        return len(instance.published_files()) > instance.count_reports()

    stored_whole = kill_mid_submission(server, words, marker, 2 * MB, orphan, attempts=8, run_for=0.0005)
    assert instance.count_reports() == stored_whole, server.logs_tail()
    published = instance.published_files()
    assert len(published) == stored_whole + 1
    assert instance.partial_files() == []
    assert_no_plaintext(server, marker, words.encode())

    three_days_ago = time.time() - 3 * 86_400
    for path in published:
        os.utime(path, (three_days_ago, three_days_ago))
    server.start()
    assert len(instance.published_files()) == stored_whole, "the orphan survived the sweep, or more went"
    officer, listed = officer_sees(server)
    assert len(listed) == stored_whole
    for public_id in listed:  # the reports stored whole kept their files
        page = officer.get(f"/officer/reports/{public_id}")
        link = re.search(r'href="(/officer/reports/[0-9a-f]{32}/attachments/[0-9a-f]{32})"', page.text)
        assert link, "the attachment is not listed"
        assert officer.get(link.group(1)).body == b"".join(pattern(marker, 2 * MB))


def test_a_reporter_who_gives_up_mid_upload_leaves_nothing_behind(sqlite_server):
    """The connection drops mid-upload (a phone losing signal): nothing is stored, nothing leaks."""
    server = sqlite_server
    marker, words = b"MARKER-GONE-", "WORDS-GONE-33b8 what the reporter wrote"
    instance = server.instance
    server.start()
    baseline = set(server.spooled_files())  # gunicorn's own heartbeat file
    log_lines = len(server.error_log.read_text().splitlines())
    for _attempt in range(3):
        upload = start_upload(server, words, marker, 30 * MB)
        try:
            upload.send(upto=10 * MB)
            wait_for(
                lambda: set(server.spooled_files()) - baseline,
                timeout=20,
                what=f"the worker to spool the upload\n{server.logs_tail()}",
            )
        finally:
            upload.close()
        wait_for(
            lambda: set(server.spooled_files()) == baseline,
            timeout=10,
            what=f"the worker to close the spool of an abandoned upload\n{server.logs_tail()}",
        )
    assert Browser(server.port).get("/report").status == 200, "the server no longer answers"
    assert instance.count_reports() == 0
    assert instance.published_files() == [] and instance.partial_files() == []
    assert_no_plaintext(server, marker, words.encode())
    # The error log dates what it records: an abandoned upload must not be in it.
    assert len(server.error_log.read_text().splitlines()) == log_lines, server.logs_tail()


def test_the_real_server_cleans_a_photo_in_a_child_and_leaves_nothing_in_clear(sqlite_server):
    marker, words = "MARKER-ARTIST-c7e2", "WORDS-PHOTO-5b0e what the reporter wrote"
    server = sqlite_server
    server.start()
    photo = io.BytesIO()
    exif = Image.Exif()
    exif[0x013B] = marker  # Artist
    Image.new("RGB", (64, 48), "blue").save(photo, "JPEG", exif=exif)
    stored = Browser(server.port).submit_form(
        "/report", report_fields(words), files=[("attachments", "ward.jpg", "image/jpeg", photo.getvalue())]
    )
    assert stored.status == 200, f"{stored.describe()}\n{server.logs_tail()}"
    assert "Hidden details (such as author, device or location) were removed." in stored.text

    officer, listed = officer_sees(server)
    page = officer.get(f"/officer/reports/{listed[0]}")
    link = re.search(r'href="(/officer/reports/[0-9a-f]{32}/attachments/[0-9a-f]{32})"', page.text)
    assert link, "the attachment is not listed"
    download = officer.get(link.group(1))
    assert download.status == 200, download.describe()
    assert marker.encode() not in download.body
    assert Image.open(io.BytesIO(download.body)).size == (64, 48)
    assert_no_plaintext(server, marker.encode(), words.encode())


def test_a_report_stored_before_kill_9_is_whole_after_the_restart(server):
    marker, words = b"MARKER-DONE-", "WORDS-DONE-a41d what the reporter wrote"
    instance = server.instance
    server.start()
    payload = b"".join(pattern(marker, 3 * MB))
    reporter = Browser(server.port)
    stored = reporter.submit_form(
        "/report",
        report_fields(words),
        files=[("attachments", "minutes.bin", "application/octet-stream", payload)],
    )
    assert stored.status == 200, f"{stored.describe()}\n{server.logs_tail()}"
    receipt = receipt_on(stored)
    server.kill()

    assert instance.count_reports() == 1, server.logs_tail()
    assert instance.partial_files() == []
    assert len(instance.published_files()) == 1
    assert_no_plaintext(server, marker, words.encode())

    server.start()
    officer, listed = officer_sees(server)
    assert len(listed) == 1
    page = officer.get(f"/officer/reports/{listed[0]}")
    assert page.status == 200, page.describe()
    assert words in page.text
    link = re.search(r'href="(/officer/reports/[0-9a-f]{32}/attachments/[0-9a-f]{32})"', page.text)
    assert link, "the attachment is not listed"
    download = officer.get(link.group(1))
    assert download.status == 200, download.describe()
    assert download.body == payload

    returning = Browser(server.port)
    back = returning.submit_form("/follow-up", [("receipt", receipt)])
    assert back.status == 303, f"{back.describe()}\n{server.logs_tail()}"
    case = returning.get("/follow-up/case")
    assert case.status == 200, case.describe()
    assert "minutes.bin" in case.text
    # The kill may come before gunicorn logs the POST it has just answered: look for later lines.
    check_access_log(
        server,
        '"POST /follow-up HTTP/1.1" 303',
        '"GET /follow-up/case HTTP/1.1" 200',
        secrets_kept_out=(receipt, words),
    )


# --- a crowd of reporters ---------------------------------------------------------

REPORTERS = 50
CROWD_DEADLINE = 60.0


@pytest.fixture
def crowded_server(tmp_path: Path, server_database: str | None) -> Iterator[Server]:
    """Three workers of four threads, with limits raised so that only the server's capacity counts."""
    env = {
        # gunicorn.conf.py's own variables (with WHISTLE_BIND and WHISTLE_WORKERS, which every
        # server here is given): they are not Whistle settings and must not stop start-up.
        "WHISTLE_THREADS": "4",
        "WHISTLE_FORWARDED_ALLOW_IPS": "127.0.0.1",
        "WHISTLE_SUBMISSIONS_GLOBAL": "100000 per minute",
        "WHISTLE_RECEIPT_ATTEMPTS_GLOBAL": "100000 per minute",
        "WHISTLE_KDF_SLOTS": "4",
        "WHISTLE_PAGE_SIZE": "20",  # so the officer's list has pages to walk through
    }
    instance = make_instance(tmp_path / "instance", server_database)
    running = Server(instance, tmp_path / "server", workers=3, env=env)
    try:
        yield running
    finally:
        running.stop()


def _reporter_journey(port: int, number: int, deadline: float) -> tuple[list[str], str | None]:
    """Raise a concern, come back with the receipt, answer once; return the problems seen."""
    browser = Browser(port, timeout=30, deadline=deadline)
    problems: list[str] = []

    def expect(page, status: int) -> bool:
        if page.status != status:
            problems.append(f"{page.describe()} (expected {status}): {page.text[:200]!r}")
        return page.status == status

    try:
        stored = browser.submit_form("/report", report_fields(f"Caseloads: CONCURRENT-{number:03d}."))
        if not expect(stored, 200):
            return problems, None
        receipt = receipt_on(stored)
        if not expect(browser.submit_form("/follow-up", [("receipt", receipt)]), 303):
            return problems, receipt
        case = browser.get("/follow-up/case")
        if not expect(case, 200):
            return problems, receipt
        reply = browser.post(
            "/follow-up/case", [("csrf_token", csrf_token(case.text)), ("body", f"More: REPLY-{number:03d}.")]
        )
        if expect(reply, 303):
            shown = browser.get("/follow-up/case?sent=1")
            if expect(shown, 200) and f"REPLY-{number:03d}" not in shown.text:
                problems.append(f"reporter {number} does not see their own reply")
        return problems, receipt
    except Exception as error:  # every failure is reported, with the pages seen so far
        seen = ", ".join(page.describe() for page in browser.history)
        problems.append(f"reporter {number}: {type(error).__name__}: {error} after [{seen}]")
        return problems, None


def test_fifty_reporters_at_once_each_get_exactly_their_report(crowded_server):
    server = crowded_server
    server.start(timeout=30)
    deadline = time.monotonic() + CROWD_DEADLINE
    pool = ThreadPoolExecutor(max_workers=REPORTERS)
    try:
        futures = [pool.submit(_reporter_journey, server.port, n, deadline) for n in range(REPORTERS)]
        _done, not_done = wait(futures, timeout=CROWD_DEADLINE + 5)
        assert not not_done, f"{len(not_done)} reporters were still waiting\n{server.logs_tail()}"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    results = [future.result() for future in futures]
    problems = [problem for found, _receipt in results for problem in found]
    assert not problems, "\n".join(problems[:20]) + f"\n{server.logs_tail()}"
    receipts = [receipt for _found, receipt in results]
    assert len(set(receipts)) == REPORTERS, "two reporters were given the same receipt"

    officer = Browser(server.port, deadline=time.monotonic() + 30)
    assert officer.login().status == 303, server.logs_tail()
    listed = officer.listed_reports()
    assert len(listed) == REPORTERS, f"{len(listed)} reports listed\n{server.logs_tail()}"
    assert len(set(listed)) == REPORTERS, "a report is listed twice"

    markers: Counter[str] = Counter()
    replies: Counter[str] = Counter()
    for public_id in listed:
        page = officer.get(f"/officer/reports/{public_id}")
        assert page.status == 200, page.describe()
        mine = re.findall(r"CONCURRENT-(\d{3})", page.text)
        answered = re.findall(r"REPLY-(\d{3})", page.text)
        assert len(mine) == 1, f"report {public_id} holds the markers {mine}"
        assert answered == mine, f"report CONCURRENT-{mine[0]} holds the replies {answered}"
        markers.update(mine)
        replies.update(answered)
    expected = Counter(f"{n:03d}" for n in range(REPORTERS))
    assert markers == expected
    assert replies == expected

    check_access_log(
        server,
        counts={
            '"POST /report HTTP/1.1" 200': REPORTERS,
            '"POST /follow-up HTTP/1.1" 303': REPORTERS,
            '"POST /follow-up/case HTTP/1.1" 303': REPORTERS,
        },
        secrets_kept_out=tuple(receipts),
    )


# --- one attacker flooding while genuine people act --------------------------------

FLOOD_THREADS = 9


def _flood(port: int, kind: str, stop: threading.Event, answers: Counter[str]) -> None:
    """One of the attacker's threads: ask again the moment it is answered, until told to stop."""
    browser = Browser(port, timeout=30)
    while not stop.is_set():
        try:
            if kind == "login":
                email = f"{secrets.token_hex(4)}@example.org"
                page = browser.submit_form("/officer/login", [("email", email), ("password", "a guess")])
            elif kind == "officer's password":
                page = browser.submit_form(
                    "/officer/login", [("email", OFFICER_EMAIL), ("password", secrets.token_hex(8))]
                )
            elif kind == "receipt":
                receipt = "-".join(secrets.token_hex(2).upper() for _ in range(4))
                page = browser.submit_form("/follow-up", [("receipt", receipt)])
            else:
                page = browser.submit_form("/report", report_fields(f"junk {secrets.token_hex(8)}"))
            answers[f"{kind} {page.status}"] += 1
        except OSError as error:
            answers[f"{kind} {type(error).__name__}"] += 1


def _until_not_busy(send: Callable[[], Page], tries: int = 5) -> Page:
    """A person told "busy, send it again" sends it again, a few seconds later."""
    for _ in range(tries - 1):
        page = send()
        if page.status != 503:
            return page
        time.sleep(2)
    return send()


def test_a_flood_keeps_out_no_new_reporter_returning_reporter_or_officer(tmp_path):
    """One attacker, nine threads: made-up logins, wrong passwords for the officer's own address,
    random receipts and junk reports, each as fast as answered. Meanwhile a new report is sent,
    a report is opened with its receipt, and the officer logs in from their own browser."""
    instance = make_instance(tmp_path / "instance")
    server = Server(instance, tmp_path / "server", workers=1)
    stop = threading.Event()
    answers: Counter[str] = Counter()
    kinds = [
        "login",
        "login",
        "officer's password",
        "receipt",
        "receipt",
        "receipt",
        "report",
        "report",
        "report",
    ]
    assert len(kinds) == FLOOD_THREADS
    with stopped_at_the_end(server):
        server.start()
        returning, officer = Browser(server.port), Browser(server.port)
        receipt = receipt_on(returning.submit_form("/report", report_fields("The rota is falsified.")))
        assert officer.login().status == 303  # the officer's own browser, known from now on
        page = officer.get("/officer/")
        assert officer.post("/officer/logout", [("csrf_token", csrf_token(page.text))]).status == 303
        flood = [threading.Thread(target=_flood, args=(server.port, kind, stop, answers)) for kind in kinds]
        try:
            for thread in flood:
                thread.start()
            time.sleep(3)  # the flood is in full swing: the officer's address is being guessed at

            new = Browser(server.port)
            sent = _until_not_busy(lambda: new.submit_form("/report", report_fields("Visits are missed.")))
            assert sent.status == 200, f"{sent.describe()}\n{server.logs_tail()}"
            assert receipt_on(sent)

            back = _until_not_busy(lambda: returning.submit_form("/follow-up", [("receipt", receipt)]))
            assert back.status == 303, f"{back.describe()}\n{server.logs_tail()}"
            case = returning.get("/follow-up/case")
            assert case.status == 200, case.describe()

            logged_in = _until_not_busy(officer.login)
            assert logged_in.status == 303, f"{logged_in.describe()}\n{server.logs_tail()}"
            assert officer.get("/officer/").status == 200
        finally:
            stop.set()
            for thread in flood:
                thread.join(60)
    # The flood was real: every kind was answered many times, and none with a server error.
    for kind in set(kinds):
        assert sum(n for key, n in answers.items() if key.startswith(kind + " ")) >= 5, answers
    assert not [key for key in answers if key.endswith(" 500")], answers
    assert answers["officer's password 429"] > 0, answers  # a new browser is slowed down
