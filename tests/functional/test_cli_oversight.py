"""`whistle audit verify` and `whistle recover`, as an operator runs them on a live instance."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text, update

from tests.conftest import add_officer, login, reports_listed, submit_report
from whistle import crypto
from whistle.cli import cli
from whistle.models import AuditEvent


@pytest.fixture(autouse=True)
def _cli_environment(instance, monkeypatch) -> Iterator[None]:
    """Point the command at the test's instance; give back the umask it sets."""
    monkeypatch.setenv("WHISTLE_INSTANCE", str(instance.path))
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def whistle(*args: str):
    return CliRunner().invoke(cli, list(args))


def _some_history(app, client, alice) -> str:
    submit_report(client)
    officer = app.test_client()
    login(officer, alice)
    (report_id,) = reports_listed(officer)
    officer.get(f"/officer/reports/{report_id}")
    return report_id


def test_an_intact_audit_log_verifies(app, client, alice):
    _some_history(app, client, alice)
    result = whistle("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "The audit log is intact: 2 entries." in result.output
    assert "Head hash" in result.output


@pytest.mark.parametrize(
    "tamper",
    [
        lambda db, first, second: db.execute(
            update(AuditEvent).where(AuditEvent.id == first).values(kind="logout")
        ),
        lambda db, first, second: db.execute(
            update(AuditEvent).where(AuditEvent.id == first).values(detail="x")
        ),
        lambda db, first, second: db.execute(
            update(AuditEvent).where(AuditEvent.id == first).values(actor="someone")
        ),
        lambda db, first, second: db.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": first}),
    ],
    ids=["kind changed", "detail changed", "actor changed", "row removed"],
)
def test_a_changed_or_removed_entry_fails_verification_and_is_named(app, client, alice, tamper):
    _some_history(app, client, alice)
    rt = app.extensions["whistle"]
    with rt.session_factory() as db, db.begin():
        first, second = db.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()
        tamper(db, first, second)
    result = whistle("audit", "verify")
    assert result.exit_code != 0
    # A changed entry is named itself; after a removed one, the next no longer follows.
    with rt.session_factory() as db:
        named = first if db.get(AuditEvent, first) is not None else second
    assert f"entry {named} does not follow" in result.output


def test_removing_the_last_entry_is_noticed(app, client, alice):
    _some_history(app, client, alice)
    rt = app.extensions["whistle"]
    with rt.session_factory() as db, db.begin():
        last = db.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
        db.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": last})
    result = whistle("audit", "verify")
    assert result.exit_code != 0
    assert "1 entries are missing at its end" in result.output


def test_recover_gives_an_officer_every_case_except_those_they_were_excluded_from(
    app, client, alice, instance, tmp_path
):
    dave = add_officer(app, "Dave Newcomer", "dave@example.org")
    submit_report(client)
    submit_report(client, excluded_officers=[dave.public_id])
    newcomer = app.test_client()
    login(newcomer, dave)
    assert len(reports_listed(newcomer)) == 1
    key_file = tmp_path / "recovery.txt"
    key_file.write_text(crypto.export_private_key(instance.organisation_private_key))

    result = whistle("recover", "--key-file", str(key_file), "--officer", "dave@example.org")

    assert result.exit_code == 0, result.output
    assert "can now open 0 more case(s); they already held 1;" in result.output
    assert "1 were not given because the reporter excluded them" in result.output
    assert len(reports_listed(newcomer)) == 1  # the excluded one stays hidden


def test_recover_after_officers_lost_their_keys(app, client, alice, instance, tmp_path):
    submit_report(client)
    erin = add_officer(app, "Erin Later", "erin@example.org")
    key_file = tmp_path / "recovery.txt"
    key_file.write_text(crypto.export_private_key(instance.organisation_private_key))
    result = whistle("recover", "--key-file", str(key_file), "--officer", "erin@example.org")
    assert result.exit_code == 0, result.output
    assert "can now open 1 more case(s)" in result.output
    reader = app.test_client()
    login(reader, erin)
    (report_id,) = reports_listed(reader)
    assert "Caseloads are far beyond safe limits" in reader.get(f"/officer/reports/{report_id}").get_data(
        as_text=True
    )
    assert whistle("audit", "verify").exit_code == 0


def test_recover_refuses_another_organisations_key_and_garbage(app, alice, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text(crypto.export_private_key(crypto.generate_keypair().private))
    result = whistle("recover", "--key-file", str(other), "--officer", "alice@example.org")
    assert result.exit_code != 0
    assert "not this organisation's" in result.output
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("hello")
    result = whistle("recover", "--key-file", str(garbage), "--officer", "alice@example.org")
    assert result.exit_code != 0
    assert "not a recovery key" in result.output


def test_only_the_recovery_key_reads_the_exact_times_of_the_log(app, client, alice, instance, tmp_path):
    report_id = _some_history(app, client, alice)
    rt = app.extensions["whistle"]
    with rt.session_factory() as db:
        days = set(db.scalars(select(AuditEvent.day)))
        assert set(db.scalars(select(AuditEvent.at))) == {None}, "no exact time in clear"
    key_file = tmp_path / "recovery.txt"
    key_file.write_text(crypto.export_private_key(instance.organisation_private_key))

    result = whistle("audit", "times", "--key-file", str(key_file), "--report", report_id)

    assert result.exit_code == 0, result.output
    (line,) = result.output.splitlines()
    _entry, when, kind, _actor = line.split("\t")
    assert kind == "report_opened" and when[:10] in {day.isoformat() for day in days}
    assert len(when) >= 19 and when[13] == ":"  # to the second
    wrong = tmp_path / "other.txt"
    wrong.write_text(crypto.export_private_key(crypto.generate_keypair().private))
    refused = whistle("audit", "times", "--key-file", str(wrong))
    assert refused.exit_code != 0 and "not this organisation's" in refused.output


def test_maintain_settles_new_files_so_none_keeps_the_time_of_its_upload(app, client, alice, instance):
    import io
    import time

    submit_report(client, attachments=[(io.BytesIO(b"rota photo"), "rota.png", "image/png")])
    files = instance.path / "files"
    (waiting,) = [path for path in (files / "new").iterdir() if not path.name.startswith(".")]
    uploaded = waiting.stat()
    time.sleep(1.1)

    result = whistle("maintain")

    assert result.exit_code == 0, result.output
    # Settled by this run, or by the start-up of the command's own app, which does the same.
    assert result.output.startswith("Settled ")
    (settled,) = [path for path in files.glob("??/*")]
    assert settled.name == waiting.name and not waiting.exists()
    assert settled.stat().st_ctime > uploaded.st_ctime and settled.stat().st_mtime % 86_400 == 0
    # The officer still downloads it.
    officer = app.test_client()
    login(officer, alice)
    (report_id,) = reports_listed(officer)
    page = officer.get(f"/officer/reports/{report_id}").get_data(as_text=True)
    assert "rota.png" in page
