"""`whistle rotate-secret`: a new Flask secret key, and what it changes (docs/deploy.md).

The secret key signs Flask-WTF's CSRF tokens and keys the HMACs that name
rate-limit counters; sessions are sealed server-side under a key that only the
cookie holds, so they survive a rotation. A form opened before the restart must
be sent again once.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import CHEAP_KDF, REPORT, add_officer, csrf_token, login, runtime_of
from whistle import create_app
from whistle.cli import cli
from whistle.config import (
    SECRET_KEY_FILE,
    WEAK_KDF_ENV,
    ConfigError,
    Settings,
    create_instance,
    replace_secret_key,
)
from whistle.db import upgrade

RECEIPT = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")


@pytest.fixture(autouse=True)
def _restore_umask() -> Iterator[None]:
    """The command sets a umask of 077 for the process; give the next test the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("WHISTLE_") and name != WEAK_KDF_ENV:
            monkeypatch.delenv(name)
    path = tmp_path / "instance"
    url = f"sqlite:///{path / 'whistle.db'}"
    create_instance(path, f'{CHEAP_KDF}database_url = "{url}"\n')
    upgrade(url)
    monkeypatch.setenv("WHISTLE_INSTANCE", str(path))
    return path


def test_rotate_secret_writes_a_new_private_key_and_says_what_to_do(instance: Path) -> None:
    before = (instance / SECRET_KEY_FILE).read_text()
    result = CliRunner().invoke(cli, ["rotate-secret"])
    assert result.exit_code == 0, result.output
    assert "restart every Whistle process" in result.output
    after = (instance / SECRET_KEY_FILE).read_text()
    assert after != before
    assert len(bytes.fromhex(after.strip())) == 32
    assert stat.S_IMODE((instance / SECRET_KEY_FILE).stat().st_mode) == 0o600
    assert sorted(p.name for p in instance.iterdir() if p.name.startswith(".")) == []
    assert Settings.load(instance).secret_key == bytes.fromhex(after)


def test_a_restored_instance_without_its_secret_key_gets_a_new_one(instance: Path) -> None:
    (instance / SECRET_KEY_FILE).unlink()
    with pytest.raises(ConfigError):
        Settings.load(instance)
    result = CliRunner().invoke(cli, ["rotate-secret"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((instance / SECRET_KEY_FILE).stat().st_mode) == 0o600
    assert len(Settings.load(instance).secret_key) == 32


def test_rotate_secret_refuses_a_folder_that_is_not_an_instance(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not initialised"):
        replace_secret_key(tmp_path)


def test_after_a_restart_sessions_survive_and_an_old_form_is_sent_again(instance: Path) -> None:
    old_app = create_app(Settings.load(instance))
    old_app.config["TESTING"] = True
    alice = add_officer(old_app, "Alice Officer", "alice@example.org", admin=True)
    client = old_app.test_client()
    assert login(client, alice).status_code == 303
    reporter = old_app.test_client()
    stale_form = reporter.get("/report").get_data(as_text=True)
    runtime_of(old_app).engine.dispose()

    replace_secret_key(instance)
    new_app = create_app(Settings.load(instance))  # the restart
    new_app.config["TESTING"] = True
    try:
        # The same cookies against the restarted app: the officer is still logged in ...
        client.application = reporter.application = new_app
        assert client.get("/officer/").status_code == 200
        # ... and a report written in a form opened before the restart comes back, its words
        # kept, to be sent again (the form's token was signed with the old key).
        data = {**REPORT, "csrf_token": csrf_token(stale_form)}
        refused = reporter.post("/report", data=data, content_type="multipart/form-data")
        assert refused.status_code == 422
        assert REPORT["what_happened"] in refused.get_data(as_text=True)
        data["csrf_token"] = csrf_token(refused.get_data(as_text=True))
        sent = reporter.post("/report", data=data, content_type="multipart/form-data")
        assert sent.status_code == 200
        assert RECEIPT.search(sent.get_data(as_text=True))
    finally:
        runtime_of(new_app).engine.dispose()
