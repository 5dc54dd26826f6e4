"""What a copy of the database shows of a reporter: not the order of their actions, nor their words' length.

The insider holds the database and the audit log, whose officer entries are exact.
If keys increased, an officer reply, a reporter's reply and another officer reply
would place the reporter's reply between two audited instants. Here the
conversation alternates and the test reads the rows as that insider would.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from tests.conftest import follow_up, form_post, login, reports_listed, runtime_of, submit_report
from tests.security.helpers import post_multipart
from whistle.db import Base
from whistle.models import Message, StatusChange

TURNS = 8


def _message_ids(app) -> set[int]:
    with runtime_of(app).session_factory() as db:
        return set(db.scalars(select(Message.id)))


def _conversation(app, client, alice) -> tuple[list[int], str]:
    """An alternating conversation; the message keys in the order they were written, and the case."""
    receipt = submit_report(client)
    officer = app.test_client()
    assert login(officer, alice).status_code == 303
    (case,) = reports_listed(officer)
    assert follow_up(client, receipt).status_code == 303
    written: list[int] = []
    for turn in range(TURNS):
        before = _message_ids(app)
        page = f"/officer/reports/{case}"
        assert (
            form_post(officer, page, {"body": f"Officer turn {turn}"}, action=f"{page}/messages").status_code
            == 303
        )
        (new,) = _message_ids(app) - before
        written.append(new)
        before = _message_ids(app)
        sent = post_multipart(client, "/follow-up/case", {"body": f"Reporter turn {turn}", "attachments": []})
        assert sent.status_code == 303
        (new,) = _message_ids(app) - before
        written.append(new)
    return written, case


def test_message_keys_do_not_follow_the_order_they_were_written_in(app, client, alice):
    written, case = _conversation(app, client, alice)
    # Sixteen keys in writing order: sorted either way only by a chance of 2 in 16!.
    assert written != sorted(written) and written != sorted(written, reverse=True)
    # The conversation still reads in order, on both sides.
    officer = app.test_client()
    login(officer, alice)
    for page in (officer.get(f"/officer/reports/{case}"), client.get("/follow-up/case")):
        html = page.get_data(as_text=True)
        places = [
            html.index(f"{who} turn {turn}") for turn in range(TURNS) for who in ("Officer", "Reporter")
        ]
        assert places == sorted(places)


def test_a_case_history_keeps_its_order_without_ordered_keys(app, client, alice):
    submit_report(client)
    officer = app.test_client()
    login(officer, alice)
    (case,) = reports_listed(officer)
    page = f"/officer/reports/{case}"
    for status in ("acknowledged", "assessing", "investigating", "assessing"):
        assert form_post(officer, page, {"status": status}, action=f"{page}/status").status_code == 303
    with runtime_of(app).session_factory() as db:
        steps = db.scalars(select(StatusChange).order_by(StatusChange.seq)).all()
    assert [s.status.value for s in steps] == [
        "new",
        "acknowledged",
        "assessing",
        "investigating",
        "assessing",
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_keeps_no_hidden_row_number_beside_the_key(app, client, alice):
    """SQLite numbers rows in a hidden rowid unless the key is that rowid: every key must be."""
    _conversation(app, client, alice)
    with runtime_of(app).engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            if "id" not in table.columns or table.name in ("audit_event", "audit_head"):
                continue
            query = f'SELECT count(*) FROM "{table.name}" WHERE rowid != id'  # noqa: S608 - our own tables
            stray = connection.execute(text(query)).scalar()
            assert stray == 0, table.name


def test_the_size_of_what_a_reporter_wrote_is_not_in_the_database(app, client, alice):
    """A one-line report and a page-long one seal to the same size, and so do short replies."""
    from whistle.models import Report

    submit_report(client, what_happened="Visits missed.", when_where="")
    submit_report(client, what_happened="Visits are being missed every week. " * 20)
    with runtime_of(app).session_factory() as db:
        sizes = {len(sealed) for sealed in db.scalars(select(Report.answers_sealed))}
    assert len(sizes) == 1


def test_a_copy_of_the_database_alone_cannot_check_a_guess_of_an_officers_password(app, alice):
    """The password seal mixes in the instance's pepper, which is kept outside the database."""
    from whistle import crypto
    from whistle.models import Officer

    with runtime_of(app).session_factory() as db:
        officer = db.scalar(select(Officer).where(Officer.email == alice.email))
        stored_kdf, salt, sealed = officer.password_kdf, officer.password_salt, officer.private_key_sealed
    assert stored_kdf.startswith("pepper+")
    # The attacker knows (or guesses right) the password, and has every column: still nothing opens.
    params = crypto.KdfParams.decode(stored_kdf.removeprefix("pepper+"))
    guess = crypto.derive_key(alice.password.encode(), salt, params)
    context = crypto.context("officer", alice.public_id, "private-key", "password")
    with pytest.raises(crypto.CryptoError):
        crypto.open_sealed(guess, sealed, context)
    with pytest.raises(crypto.CryptoError):
        crypto.open_sealed(crypto.expand_key(guess, b"", b"officer password"), sealed, context)
    # With the pepper from the instance folder it does: the officer logs in.
    officer_client = app.test_client()
    assert login(officer_client, alice).status_code == 303


def test_an_officer_sealed_before_the_pepper_is_sealed_again_with_it_at_login(app, alice):
    from whistle import crypto
    from whistle.models import Officer
    from whistle.services import officers

    rt = runtime_of(app)
    with rt.session_factory() as db, db.begin():
        officer = db.scalar(select(Officer).where(Officer.email == alice.email))
        _, private_key = officers.authenticate(db, alice.email, alice.password, pepper=rt.keyring.pepper)
        # As an earlier version left it: Argon2id of the password alone.
        officer.password_salt = crypto.new_salt()
        officer.password_kdf = rt.keyring.kdf.encode()
        key = crypto.derive_key(alice.password.encode(), officer.password_salt, rt.keyring.kdf)
        officer.private_key_sealed = crypto.seal(
            key, private_key, crypto.context("officer", alice.public_id, "private-key", "password")
        )
    assert login(app.test_client(), alice).status_code == 303
    with rt.session_factory() as db:
        assert db.scalar(select(Officer.password_kdf).where(Officer.email == alice.email)).startswith(
            "pepper+"
        )
    assert login(app.test_client(), alice).status_code == 303


def test_sealed_files_show_only_the_order_of_magnitude_of_their_size(app, client, alice):
    import io
    import re

    sizes = (39_000, 40_900)  # 2 KiB apart, in one of Padmé's steps at this size
    contents = [bytes([n % 251]) * size for n, size in enumerate(sizes)]
    for data in contents:
        submit_report(client, attachments=[(io.BytesIO(data), "minutes.bin", "application/octet-stream")])
    files = runtime_of(app).store.root
    stored = {path.stat().st_size for path in files.rglob("*") if path.is_file()}
    assert len(stored) == 1, stored
    # Each downloads exactly, the filler left behind.
    officer = app.test_client()
    login(officer, alice)
    downloads = []
    for case in reports_listed(officer):
        page = officer.get(f"/officer/reports/{case}").get_data(as_text=True)
        (link,) = re.findall(r'href="(/officer/reports/[0-9a-f]+/attachments/[0-9a-f]+)"', page)
        downloads.append(officer.get(link).get_data())
    assert sorted(downloads) == sorted(contents)
