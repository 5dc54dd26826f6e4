"""The `whistle` command as an operator runs it: init, officer add, setup-link, db upgrade."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import inspect

from whistle import crypto
from whistle.cli import cli
from whistle.config import ORGANISATION_KEY_FILE, WEAK_KDF_ENV, Settings
from whistle.db import make_engine, make_session_factory
from whistle.services import officers
from whistle.services.errors import LoginFailed

PASSWORD = "correct horse battery staple"
RECOVERY_CODE = re.compile(rf"^[{crypto.CROCKFORD}]{{4}}(-[{crypto.CROCKFORD}]{{4}}){{7}}$", re.MULTILINE)


@pytest.fixture(autouse=True)
def _restore_umask() -> Iterator[None]:
    """The command sets a umask of 077 for the process; give the next test the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An instance folder named by WHISTLE_INSTANCE (not created yet), with cheap Argon2."""
    for name in list(os.environ):
        if name.startswith("WHISTLE_") and name != WEAK_KDF_ENV:
            monkeypatch.delenv(name)
    path = tmp_path / "instance"
    monkeypatch.setenv("WHISTLE_INSTANCE", str(path))
    monkeypatch.setenv("WHISTLE_KDF_TIME_COST", "1")
    monkeypatch.setenv("WHISTLE_KDF_MEMORY_COST", "8")
    return path


def whistle(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin)


def _init(instance: Path) -> Result:
    result = whistle("init")
    assert result.exit_code == 0, result.output
    return result


def _recovery_key(output: str) -> str:
    """The block printed between the header and the next rule."""
    lines = output.splitlines()
    start = lines.index("WHISTLE ORGANISATION RECOVERY KEY")
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("===="))
    return "\n".join(lines[start:end])


def _snapshot(path: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(path)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in path.rglob("*")
        if p.is_file()
    }


def _authenticate(instance: Path, email: str, password: str) -> tuple[str, bytes, bytes]:
    settings = Settings.load(instance)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as db:
            officer, private_key = officers.authenticate(db, email, password, pepper=settings.pepper)
            return officer.display_name, officer.public_key, private_key
    finally:
        engine.dispose()


def _add_officer(email: str = "ada@example.org", name: str = "Ada Admin", password: str = PASSWORD) -> Result:
    return whistle("officer", "add", "--email", email, "--name", name, stdin=password + "\n")


# --- init ------------------------------------------------------------------------------


def test_init_creates_the_instance_and_prints_the_organisation_recovery_key(instance: Path) -> None:
    result = _init(instance)

    assert instance.is_dir()
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    for name in ("secret_key", "pepper", ORGANISATION_KEY_FILE, "whistle.toml", "whistle.db"):
        assert (instance / name).is_file(), name
        assert stat.S_IMODE((instance / name).stat().st_mode) & 0o077 == 0, name
    private_key = crypto.import_private_key(_recovery_key(result.output))
    public_key = bytes.fromhex((instance / ORGANISATION_KEY_FILE).read_text().strip())
    assert crypto.public_key_of(private_key) == public_key
    # The private half is printed once and stored nowhere.
    for file in instance.iterdir():
        if file.is_file():
            assert private_key.hex().encode() not in file.read_bytes()
            assert private_key not in file.read_bytes()
    settings = Settings.load(instance)
    engine = make_engine(settings.database_url)
    try:
        assert {"officer", "report", "alembic_version"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_second_init_fails_and_leaves_the_instance_unchanged(instance: Path) -> None:
    _init(instance)
    before = _snapshot(instance)
    result = whistle("init")
    assert result.exit_code != 0
    assert "already holds an instance" in result.output
    assert "RECOVERY KEY" not in result.output
    assert _snapshot(instance) == before


def test_init_if_missing_is_a_quiet_no_op_on_an_existing_instance(instance: Path) -> None:
    _init(instance)
    before = _snapshot(instance)
    result = whistle("init", "--if-missing")
    assert (result.exit_code, result.output) == (0, "")
    assert _snapshot(instance) == before


def test_init_if_missing_creates_a_missing_instance(instance: Path) -> None:
    result = whistle("init", "--if-missing")
    assert result.exit_code == 0, result.output
    assert "RECOVERY KEY" in result.output
    assert (instance / "secret_key").is_file()


def test_the_command_keeps_what_it_writes_private(instance: Path) -> None:
    os.umask(0o022)
    _init(instance)
    assert _add_officer().exit_code == 0
    for path in instance.rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


# --- officers ----------------------------------------------------------------------------


def test_officer_add_creates_an_officer_who_can_log_in(instance: Path) -> None:
    _init(instance)
    result = _add_officer("Ada@Example.org", "Ada Admin")
    assert result.exit_code == 0, result.output
    assert "ada@example.org" in result.output
    assert PASSWORD not in result.output
    assert len(RECOVERY_CODE.findall(result.output)) == 1

    name, public_key, private_key = _authenticate(instance, "ada@example.org", PASSWORD)
    assert name == "Ada Admin"
    assert crypto.public_key_of(private_key) == public_key
    with pytest.raises(LoginFailed):
        _authenticate(instance, "ada@example.org", PASSWORD + "x")


def test_officer_add_with_admin_makes_an_administrator(instance: Path) -> None:
    _init(instance)
    assert _add_officer().exit_code == 0
    assert (
        whistle(
            "officer", "add", "--email", "b@example.org", "--name", "B", "--admin", stdin=PASSWORD
        ).exit_code
        == 0
    )
    settings = Settings.load(instance)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as db:
            roles = {o.email: o.is_admin for o in officers.active_officers(db)}
    finally:
        engine.dispose()
    assert roles == {"ada@example.org": False, "b@example.org": True}


def test_officer_add_refuses_a_short_password(instance: Path) -> None:
    _init(instance)
    result = _add_officer(password="too short")
    assert result.exit_code != 0
    assert "at least 12 characters" in result.output
    with pytest.raises(LoginFailed):
        _authenticate(instance, "ada@example.org", "too short")


def test_officer_add_refuses_an_email_already_in_use(instance: Path) -> None:
    _init(instance)
    assert _add_officer("ada@example.org", "Ada Admin").exit_code == 0
    result = _add_officer("ADA@example.org", "Another Ada", password=PASSWORD + "!")
    assert result.exit_code != 0
    assert "ada@example.org" in result.output.lower()
    assert RECOVERY_CODE.search(result.output) is None
    assert _authenticate(instance, "ada@example.org", PASSWORD)[0] == "Ada Admin"


def test_officer_add_says_why_a_duplicate_email_is_refused(instance: Path) -> None:
    _init(instance)
    assert _add_officer().exit_code == 0
    result = _add_officer()
    assert result.exit_code != 0
    assert "already" in result.output


def test_officer_add_on_an_instance_that_does_not_exist_fails(instance: Path) -> None:
    result = _add_officer()
    assert result.exit_code != 0
    assert not (instance / "whistle.db").exists()


@pytest.mark.parametrize(
    "command", [("officer", "add", "--email", "a@example.org", "--name", "A"), ("setup-link",)]
)
def test_a_command_on_an_instance_that_does_not_exist_says_what_to_do(
    instance: Path, command: tuple[str]
) -> None:
    result = whistle(*command, stdin=PASSWORD)
    assert isinstance(result.exception, SystemExit)
    assert result.exit_code != 0
    assert "whistle init" in result.output


# --- the setup link and the schema --------------------------------------------------------


def test_setup_link_is_printed_only_while_there_is_no_officer(instance: Path) -> None:
    _init(instance)
    first = whistle("setup-link")
    assert first.exit_code == 0, first.output
    links = re.findall(r"http://127\.0\.0\.1:5000/setup/(\S+)", first.output)
    assert len(links) == 1
    second = whistle("setup-link")
    (token,) = re.findall(r"/setup/(\S+)", second.output)
    assert token != links[0]

    assert _add_officer().exit_code == 0
    after = whistle("setup-link")
    assert (after.exit_code, after.output) == (0, "")


def test_db_upgrade_brings_the_schema_up_to_date(instance: Path) -> None:
    _init(instance)
    result = whistle("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    assert _add_officer().exit_code == 0


def test_db_upgrade_on_an_instance_that_does_not_exist_fails_with_a_message(instance: Path) -> None:
    result = whistle("db", "upgrade")
    assert result.exit_code != 0
    assert "whistle init" in result.output


def _report_statistics(instance: Path) -> dict[str, str]:
    """What SQLite knows of the report table's indexes, by index: empty until it has analysed them."""
    engine = make_engine(Settings.load(instance).database_url)
    try:
        with engine.connect() as connection:
            if not connection.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"
            ).first():
                return {}
            rows = connection.exec_driver_sql("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'report'")
            return {idx: stat for idx, stat in rows}
    finally:
        engine.dispose()


def test_db_analyze_gives_the_database_the_statistics_it_plans_the_case_list_by(instance: Path) -> None:
    _init(instance)
    assert _add_officer().exit_code == 0
    seeded = whistle("seed", "--cases", "40")
    assert seeded.exit_code == 0, seeded.output
    # Seeding analyses what it added, as the daily command would.
    assert _report_statistics(instance)["ix_report_next_deadline"]
    engine = make_engine(Settings.load(instance).database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("DELETE FROM sqlite_stat1")
    finally:
        engine.dispose()
    assert _report_statistics(instance) == {}

    result = whistle("db", "analyze")

    assert result.exit_code == 0, result.output
    assert "statistics are up to date" in result.output
    statistics = _report_statistics(instance)
    # Each index: how many rows it holds, then how many share a value of its leading columns.
    assert statistics["ix_report_received"].split()[0] == "40"
    assert {"ix_report_next_deadline", "ix_report_status_received"} <= set(statistics)


def test_db_analyze_on_an_instance_that_does_not_exist_fails_with_a_message(instance: Path) -> None:
    result = whistle("db", "analyze")
    assert result.exit_code != 0
    assert "whistle init" in result.output
