"""Settings fail closed: an instance that is missing, damaged or misconfigured does not start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from whistle import crypto
from whistle.config import (
    MIN_SECRET_BYTES,
    ORGANISATION_KEY_FILE,
    PEPPER_FILE,
    SECRET_KEY_FILE,
    SETTINGS_FILE,
    WEAK_KDF_ENV,
    ConfigError,
    Settings,
    create_instance,
)


@pytest.fixture(autouse=True)
def _no_whistle_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets itself may reach the settings."""
    for name in list(os.environ):
        if name.startswith("WHISTLE_") and name != WEAK_KDF_ENV:
            monkeypatch.delenv(name)


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    path = tmp_path / "instance"
    create_instance(path)
    return path


def _settings_file(path: Path, text: str) -> None:
    (path / SETTINGS_FILE).write_text(text)


# --- a working instance ----------------------------------------------------------


def test_a_new_instance_loads_with_its_secrets_and_the_defaults(instance: Path) -> None:
    settings = Settings.load(instance)
    assert settings.instance_path == instance.resolve()
    assert settings.secret_key == bytes.fromhex((instance / SECRET_KEY_FILE).read_text())
    assert settings.pepper == bytes.fromhex((instance / PEPPER_FILE).read_text())
    assert len(settings.secret_key) == len(settings.pepper) == MIN_SECRET_BYTES
    assert settings.secret_key != settings.pepper
    assert settings.organisation_public_key == bytes.fromhex((instance / ORGANISATION_KEY_FILE).read_text())
    assert settings.database_url == f"sqlite:///{instance.resolve() / 'whistle.db'}"
    assert settings.files_path == instance.resolve() / "files"
    assert settings.kdf == crypto.KdfParams(settings.kdf_time_cost, settings.kdf_memory_cost, 1)
    assert settings.secure_cookies is False
    for secret in (settings.secret_key, settings.pepper, settings.organisation_public_key):
        assert secret.hex() not in repr(settings)


def test_the_instance_folder_comes_from_whistle_instance(
    instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHISTLE_INSTANCE", str(instance))
    assert Settings.load().instance_path == instance.resolve()


def test_settings_file_then_environment_then_overrides(
    instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings_file(
        instance,
        'organisation_name = "Northshire Council"\npage_size = 20\nmax_files = 4\n'
        'kdf_time_cost = 1\nkdf_memory_cost = 8\ndatabase_url = "sqlite:///elsewhere.db"\n',
    )
    monkeypatch.setenv("WHISTLE_PAGE_SIZE", "30")
    monkeypatch.setenv("WHISTLE_MAX_FILES", "5")
    monkeypatch.setenv("WHISTLE_ORGANISATION_NAME", "Southshire Council")
    settings = Settings.load(instance, max_files=6)
    assert settings.page_size == 30
    assert settings.max_files == 6
    assert settings.organisation_name == "Southshire Council"
    assert settings.kdf == crypto.KdfParams(time_cost=1, memory_cost=8, parallelism=1)
    assert settings.database_url == "sqlite:///elsewhere.db"


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("1", True),
        ("true", True),
        ("True", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
    ],
)
def test_booleans_from_the_environment(
    instance: Path, monkeypatch: pytest.MonkeyPatch, value: str, parsed: bool
) -> None:
    monkeypatch.setenv("WHISTLE_SECURE_COOKIES", value)
    assert Settings.load(instance).secure_cookies is parsed


def test_booleans_from_the_settings_file(instance: Path) -> None:
    _settings_file(instance, "secure_cookies = true\n")
    assert Settings.load(instance).secure_cookies is True


@pytest.mark.parametrize("value", ["ture", "enabled", "2"])
def test_an_unknown_boolean_word_is_refused(
    instance: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("WHISTLE_SECURE_COOKIES", value)
    with pytest.raises(ConfigError):
        Settings.load(instance)


# --- failing closed ----------------------------------------------------------------


def test_an_instance_that_was_never_initialised_does_not_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="whistle init"):
        Settings.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not initialised"):
        Settings.load(tmp_path / "empty")


@pytest.mark.parametrize("name", [SECRET_KEY_FILE, PEPPER_FILE])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("ab" * (MIN_SECRET_BYTES - 1), "too short", id="too-short"),
        pytest.param("", "too short", id="empty"),
        pytest.param("zz" * MIN_SECRET_BYTES, "cannot read", id="not-hex"),
        pytest.param("dev", "cannot read", id="a-word"),
    ],
)
def test_a_weak_or_damaged_secret_stops_start_up(
    instance: Path, name: str, content: str, message: str
) -> None:
    (instance / name).write_text(content + "\n")
    with pytest.raises(ConfigError, match=message):
        Settings.load(instance)


def test_a_missing_pepper_stops_start_up(instance: Path) -> None:
    (instance / PEPPER_FILE).unlink()
    with pytest.raises(ConfigError, match=PEPPER_FILE):
        Settings.load(instance)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(None, id="missing"),
        pytest.param("not hex", id="not-hex"),
        pytest.param(crypto.generate_keypair().public.hex()[:-2], id="one-byte-short"),
        pytest.param(crypto.generate_keypair().public.hex() + "00", id="one-byte-long"),
        pytest.param("", id="empty"),
    ],
)
def test_a_damaged_organisation_key_stops_start_up(instance: Path, content: str | None) -> None:
    path = instance / ORGANISATION_KEY_FILE
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    with pytest.raises(ConfigError, match="organisation key"):
        Settings.load(instance)


def test_an_unknown_setting_in_the_file_is_refused(instance: Path) -> None:
    _settings_file(instance, "page_size = 20\nmax_file_size = 10\n")
    with pytest.raises(ConfigError, match="max_file_size"):
        Settings.load(instance)


def test_an_unknown_setting_in_the_environment_is_refused(
    instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHISTLE_SECURE_COOKIE", "1")
    with pytest.raises(ConfigError, match="secure_cookie"):
        Settings.load(instance)


def test_an_unknown_override_is_refused(instance: Path) -> None:
    with pytest.raises(ConfigError, match="colour"):
        Settings.load(instance, colour="red")


@pytest.mark.parametrize("name", ["secret_key", "pepper", "organisation_public_key", "instance_path"])
def test_secrets_and_the_instance_path_are_not_settings(instance: Path, name: str) -> None:
    _settings_file(instance, f'{name} = "{"ab" * MIN_SECRET_BYTES}"\n')
    with pytest.raises(ConfigError, match=name):
        Settings.load(instance)


@pytest.mark.parametrize("value", ["ten", "1.5", "", "10 files"])
def test_a_number_that_is_not_whole_is_refused(
    instance: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("WHISTLE_MAX_FILES", value)
    with pytest.raises(ConfigError, match="whole number"):
        Settings.load(instance)


def test_a_number_written_as_text_in_the_file_is_read_or_refused(instance: Path) -> None:
    _settings_file(instance, 'page_size = "25"\n')
    assert Settings.load(instance).page_size == 25
    _settings_file(instance, 'page_size = "many"\n')
    with pytest.raises(ConfigError, match="whole number"):
        Settings.load(instance)


@pytest.mark.parametrize("value", ["2.5", "true"])
def test_a_number_of_the_wrong_type_in_the_file_is_refused(instance: Path, value: str) -> None:
    _settings_file(instance, f"kdf_time_cost = {value}\n")
    with pytest.raises(ConfigError):
        Settings.load(instance)


# --- creating an instance ----------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_instance_writes_private_files_and_returns_the_private_key(tmp_path: Path) -> None:
    path = tmp_path / "new" / "instance"
    private_key = create_instance(path, 'organisation_name = "Northshire Council"\n')
    assert _mode(path) == 0o700
    names = {SECRET_KEY_FILE, PEPPER_FILE, ORGANISATION_KEY_FILE, SETTINGS_FILE}
    assert {p.name for p in path.iterdir()} == names
    for name in names:
        assert _mode(path / name) == 0o600, name
    public = bytes.fromhex((path / ORGANISATION_KEY_FILE).read_text())
    assert crypto.public_key_of(private_key) == public
    # The private half is never written anywhere in the instance.
    for file in path.iterdir():
        assert private_key.hex() not in file.read_text()
    assert Settings.load(path).organisation_name == "Northshire Council"


def test_create_instance_without_settings_writes_no_settings_file(tmp_path: Path) -> None:
    create_instance(tmp_path / "instance")
    assert not (tmp_path / "instance" / SETTINGS_FILE).exists()


def test_create_instance_keeps_a_settings_file_that_is_already_there(tmp_path: Path) -> None:
    path = tmp_path / "instance"
    path.mkdir()
    _settings_file(path, 'organisation_name = "Prepared by IT"\n')
    create_instance(path, 'organisation_name = "Default"\n')
    assert Settings.load(path).organisation_name == "Prepared by IT"


def test_create_instance_refuses_an_existing_instance_and_changes_nothing(instance: Path) -> None:
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in instance.iterdir()}
    with pytest.raises(ConfigError, match="already holds an instance"):
        create_instance(instance, "page_size = 5\n")
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in instance.iterdir()} == before


def test_every_instance_gets_its_own_secrets(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    create_instance(first)
    create_instance(second)
    for name in (SECRET_KEY_FILE, PEPPER_FILE, ORGANISATION_KEY_FILE):
        assert (first / name).read_text() != (second / name).read_text()


@pytest.mark.parametrize(
    ("base_url", "secure"),
    [
        ("http://127.0.0.1:5000", False),
        ("http://localhost:8000", False),
        ("http://[::1]:5000", False),
        ("https://speakup.example.org", True),
        ("http://10.0.0.5", True),
    ],
)
def test_cookies_are_secure_unless_the_portal_is_served_on_loopback(
    instance: Path, base_url: str, secure: bool
) -> None:
    _settings_file(instance, f'base_url = "{base_url}"\n')
    assert Settings.load(instance).secure_cookies is secure
    _settings_file(instance, f'base_url = "{base_url}"\nsecure_cookies = {str(not secure).lower()}\n')
    assert Settings.load(instance).secure_cookies is (not secure)


@pytest.mark.parametrize("weak", ["kdf_memory_cost = 8192\n", "kdf_time_cost = 1\n"])
def test_argon2_parameters_below_the_floor_stop_start_up(
    instance: Path, monkeypatch: pytest.MonkeyPatch, weak: str
) -> None:
    monkeypatch.delenv(WEAK_KDF_ENV)
    _settings_file(instance, weak)
    with pytest.raises(ConfigError, match="at least 19456"):
        Settings.load(instance)
    _settings_file(instance, "kdf_memory_cost = 19456\nkdf_time_cost = 2\n")
    assert Settings.load(instance).kdf.memory_cost == 19456
