"""Threat 1, a copy of the data: nothing a reporter wrote, chose or attached is stored in clear.

A full journey runs with a distinctive marker in every field a reporter or an
officer fills in (and in a file's name, type and bytes, one file large enough
to be spooled to disk), then every byte at rest is searched: the SQLite
database with its WAL and shared-memory files, the sealed files, every other
file of the instance folder, and every value of every row of every table (on
PostgreSQL too). The receipt must not be there in any spelling. The officer
reading everything back shows that the data was stored, only sealed.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import follow_up, form_post, login, reports_listed, runtime_of, submit_report
from tests.security.helpers import (
    database_values,
    instance_files,
    is_sqlite,
    leaks_in_database,
    leaks_in_files,
    post_multipart,
    receipt_needles,
    submit_report_with_files,
    text_needles,
)

WHAT = "MARKER-WHAT-7f3a"
WHAT_UNICODE = "Zoë-MARKER-ÜBER-ß-61e0"
WHEN = "MARKER-WHEN-2b9c"
RAISED = "MARKER-RAISED-41d0"
REPORTER_REPLY = "MARKER-REPLY-REPORTER-8e21"
OFFICER_REPLY = "MARKER-REPLY-OFFICER-c5f7"
FILE_CONTENT = "MARKER-FILE-CONTENT-93ab"
FILE_NAME = "MARKER-FILE-NAME-0d6e"
FILE_TYPE = "application/x-marker-type-5a5a"
REPLY_FILE_CONTENT = "MARKER-REPLY-CONTENT-1c1c"
REPLY_FILE_NAME = "MARKER-REPLY-FILE-71b4"
#: A reporter's choice is as secret as their words: the value of the chosen category.
CATEGORY = "exploitation"
CATEGORY_LABEL = "Child sexual exploitation"

MARKERS = [
    WHAT,
    WHAT_UNICODE,
    WHEN,
    RAISED,
    REPORTER_REPLY,
    OFFICER_REPLY,
    FILE_CONTENT,
    FILE_NAME,
    FILE_TYPE,
    REPLY_FILE_CONTENT,
    REPLY_FILE_NAME,
    CATEGORY,
]

#: Larger than 1 MB, so the upload is spooled to a temporary file, and sealed
#: into the store in many chunks.
LARGE_FILE = (f"{FILE_CONTENT} line of evidence\n" * 40_000).encode()
REPLY_FILE = f"%PDF-1.4 {REPLY_FILE_CONTENT}".encode()
LARGE_NAME = f"{FILE_NAME}.txt"
REPLY_NAME = f"{REPLY_FILE_NAME}.pdf"


def _journey(app, client, alice) -> tuple[str, str]:
    """Run the whole journey; return the receipt and the report's public id."""
    assert len(LARGE_FILE) > 1024 * 1024
    receipt = submit_report_with_files(
        client,
        category=CATEGORY,
        what_happened=f"On the ward {WHAT} was told to change the notes. {WHAT_UNICODE}",
        when_where=f"Last Tuesday, {WHEN}",
        raised_before="yes",
        raised_before_result=f"I told my manager: {RAISED}",
        attachments=[(LARGE_FILE, LARGE_NAME, FILE_TYPE)],
    )

    reporter = app.test_client()
    assert follow_up(reporter, receipt).status_code == 303
    response = post_multipart(
        reporter,
        "/follow-up/case",
        {"body": f"One more thing: {REPORTER_REPLY}", "attachments": [(REPLY_FILE, REPLY_NAME)]},
    )
    assert response.status_code == 303, response.get_data(as_text=True)

    officer = app.test_client()
    assert login(officer, alice).status_code == 303
    [public_id] = reports_listed(officer)
    response = form_post(
        officer,
        f"/officer/reports/{public_id}",
        {"body": f"Thank you. {OFFICER_REPLY}"},
        action=f"/officer/reports/{public_id}/messages",
    )
    assert response.status_code == 303
    return receipt, public_id


def _officer_reads_everything(app, alice, receipt: str, public_id: str) -> None:
    """The data is there, sealed: an officer (and the reporter) can read all of it back."""
    officer = app.test_client()
    assert login(officer, alice).status_code == 303
    page = officer.get(f"/officer/reports/{public_id}").get_data(as_text=True)
    for text in (WHAT, WHAT_UNICODE, WHEN, RAISED, REPORTER_REPLY, OFFICER_REPLY, LARGE_NAME, REPLY_NAME):
        assert text in page, f"the officer cannot read {text!r}"
    assert CATEGORY_LABEL in page

    links = re.findall(rf'href="(/officer/reports/{public_id}/attachments/[0-9a-f]+)"', page)
    assert len(links) == 2
    downloads = {}
    for link in links:
        response = officer.get(link)
        assert response.status_code == 200
        downloads[response.headers["Content-Disposition"]] = response.data
    by_name = {next(n for n in (LARGE_NAME, REPLY_NAME) if n in k): v for k, v in downloads.items()}
    assert by_name == {LARGE_NAME: LARGE_FILE, REPLY_NAME: REPLY_FILE}

    reporter = app.test_client()
    assert follow_up(reporter, receipt).status_code == 303
    case = reporter.get("/follow-up/case").get_data(as_text=True)
    assert OFFICER_REPLY in case
    assert REPORTER_REPLY in case


def _all_needles(receipt: str):
    return [*text_needles(*MARKERS), *receipt_needles(receipt)]


def test_nothing_a_reporter_provides_is_at_rest_in_clear(app, client, alice, instance):
    receipt, public_id = _journey(app, client, alice)
    _officer_reads_everything(app, alice, receipt, public_id)
    needles = _all_needles(receipt)
    engine = runtime_of(app).engine

    files = instance_files(instance.path)
    blobs = {name: data for name, data in files.items() if name.startswith("files/")}
    assert len(blobs) == 2, sorted(files)
    assert sum(map(len, blobs.values())) > len(LARGE_FILE), "the large file is not in the store"
    if is_sqlite(app):
        assert "whistle.db" in files
        assert "whistle.db-wal" in files, "the WAL is part of what a copy of the disk holds"

    assert leaks_in_files(instance.path, needles) == []
    assert leaks_in_database(engine, needles) == []
    # Every table holding a reporter's data was looked at, so the scan was not of an empty database.
    tables = {table for table, _column, _value in database_values(engine)}
    assert {"report", "message", "attachment", "key_wrap", "server_session"} <= tables

    if is_sqlite(app):
        # Once the last connection closes, SQLite checkpoints the WAL into the
        # main file: the pages it moves and frees must hold nothing in clear either.
        engine.dispose()
        assert leaks_in_files(instance.path, needles) == []


@pytest.mark.parametrize("field", ["what_happened", "when_where", "raised_before_result"])
def test_each_field_alone_is_sealed(app, client, alice, instance, field):
    """A single field's marker, with nothing else distinctive: the field itself is sealed,
    not merely hidden among other sealed values."""
    marker = f"MARKER-ALONE-{field}-e4d2"
    receipt = submit_report(client, **{field: f"{marker} in a sentence", "raised_before": "yes"})
    needles = [*text_needles(marker), *receipt_needles(receipt)]
    assert leaks_in_files(instance.path, needles) == []
    assert leaks_in_database(runtime_of(app).engine, needles) == []

    officer = app.test_client()
    login(officer, alice)
    [public_id] = reports_listed(officer)
    assert marker in officer.get(f"/officer/reports/{public_id}").get_data(as_text=True)


@pytest.mark.parametrize("category", ["child_at_risk", "exploitation", "reprisals"])
def test_the_chosen_category_is_not_stored_in_clear(app, client, alice, instance, category):
    receipt = submit_report(client, category=category)
    needles = [*text_needles(category), *receipt_needles(receipt)]
    assert leaks_in_files(instance.path, needles) == []
    assert leaks_in_database(runtime_of(app).engine, needles) == []
