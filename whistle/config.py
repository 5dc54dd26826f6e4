"""Settings: read from the instance folder, its secret files and WHISTLE_* variables.

The instance folder is ``./instance`` unless ``WHISTLE_INSTANCE`` names another.
It holds ``whistle.toml`` (optional settings), the secret files that ``whistle
init`` writes (``secret_key``, ``pepper``, ``organisation.pub``), the SQLite
database and the sealed files. Settings fail closed: a missing or weak secret
stops start-up with a message that says what to do.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from whistle.crypto import PUBLIC_KEY_BYTES, KdfParams

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name, not a secret
PEPPER_FILE = "pepper"
ORGANISATION_KEY_FILE = "organisation.pub"
SETTINGS_FILE = "whistle.toml"
MIN_SECRET_BYTES = 32


class ConfigError(Exception):
    """The instance cannot be started as it is configured."""


def instance_path_from_env() -> Path:
    return Path(os.environ.get("WHISTLE_INSTANCE", "instance")).resolve()


@dataclass(frozen=True)
class Settings:
    instance_path: Path
    secret_key: bytes = field(repr=False)
    pepper: bytes = field(repr=False)
    organisation_public_key: bytes = field(repr=False)
    database_url: str = ""
    organisation_name: str = "Our organisation"
    base_url: str = "http://127.0.0.1:5000"
    kdf_time_cost: int = 3
    kdf_memory_cost: int = 64 * 1024
    kdf_parallelism: int = 1
    #: How many Argon2id derivations may run at once (0: one per core), and how
    #: long a request waits for a turn before it gets a 503.
    kdf_slots: int = 0
    kdf_wait_seconds: int = 20
    #: The most that one request may carry, files included; more gets a 413 page.
    #: 0 means room for max_files files of max_file_bytes, so that a file over
    #: its own limit is refused by the form, which gives the reporter's text back.
    max_request_bytes: int = 0
    max_file_bytes: int = 100 * 1024 * 1024
    max_files: int = 10
    #: How many files one case may hold in all, whatever the reporter adds later.
    max_files_per_case: int = 50
    max_clean_bytes: int = 32 * 1024 * 1024
    max_text_chars: int = 20_000
    officer_idle_minutes: int = 30
    reporter_idle_minutes: int = 20
    acknowledge_days: int = 7
    feedback_months: int = 3
    page_size: int = 50
    #: Rate limits, in the limits library's notation. Never keyed by address.
    #: The counters live in this process's memory (memory://) or, for several
    #: workers or hosts, in Redis (redis://host:6379/0), under rate_limit_prefix.
    rate_limit_storage: str = "memory://"
    rate_limit_prefix: str = "whistle"
    #: Limits on every receipt tried and every report sent, whoever sends them: none by
    #: default, since a flood of junk would use them up and turn away genuine reporters
    #: (docs/design.md); a wrong receipt costs next to nothing, and new reports queue fairly.
    receipt_attempts_global: str = ""
    receipt_attempts_per_receipt: str = "10 per hour"
    #: Password resets per account; logins per device an officer has logged in from
    #: (logins from elsewhere are slowed by wrong passwords instead).
    login_attempts_per_account: str = "10 per 15 minutes"
    login_attempts_per_device: str = "10 per 15 minutes"
    submissions_global: str = ""
    #: Messages and evidence a reporter may send on one case (empty: no limit). The
    #: counter is named by a value only the case's key gives, so it names no report.
    follow_ups_per_case: str = "20 per hour"
    timezone: str = "Europe/London"
    secure_cookies: bool = False
    #: Host names the portal answers to, comma-separated (empty: any).
    trusted_hosts: str = ""
    #: How many reverse proxies stand in front: their X-Forwarded-Proto and
    #: X-Forwarded-Host are then believed. X-Forwarded-For is never read.
    proxy_count: int = 0
    #: The portal's onion service (http://<56 characters>.onion): every page then
    #: carries an Onion-Location header that offers it to Tor Browser.
    onion_location: str = ""
    #: Which interface this process serves: "all", "reporter" or "officer" (the
    #: officer and administration pages, for a process on an internal network).
    interface: str = "all"
    #: Email to officers (``whistle notify``): an empty host means notifications are off.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = ""
    #: Upgrade the connection with STARTTLS before logging in (and refuse a server that cannot).
    smtp_starttls: bool = True

    def __post_init__(self) -> None:
        weak = self.kdf_memory_cost < MIN_KDF_MEMORY_KIB or self.kdf_time_cost < MIN_KDF_TIME_COST
        if weak and os.environ.get(WEAK_KDF_ENV) != "1":
            raise ConfigError(
                f"kdf_memory_cost must be at least {MIN_KDF_MEMORY_KIB} (KiB) and kdf_time_cost at least "
                f"{MIN_KDF_TIME_COST}: weaker Argon2id parameters make stolen password seals cheap to guess"
            )
        if self.interface not in INTERFACES:
            raise ConfigError(f"interface must be one of {', '.join(INTERFACES)}, not {self.interface!r}")
        if self.onion_location and not _ONION_LOCATION.fullmatch(self.onion_location):
            raise ConfigError(
                "onion_location must be an onion service's address, such as "
                f"http://{'a' * 56}.onion, not {self.onion_location!r}"
            )

    @property
    def kdf(self) -> KdfParams:
        return KdfParams(self.kdf_time_cost, self.kdf_memory_cost, self.kdf_parallelism)

    @property
    def request_limit(self) -> int:
        return self.max_request_bytes or self.max_files * self.max_file_bytes + 16 * 1024 * 1024

    @property
    def files_path(self) -> Path:
        return self.instance_path / "files"

    @classmethod
    def load(cls, instance_path: Path | None = None, **overrides: Any) -> Settings:
        """Read the settings of an instance; ``overrides`` win over everything."""
        path = (instance_path or instance_path_from_env()).resolve()
        if not (path / SECRET_KEY_FILE).exists():
            raise ConfigError(f"the instance folder {path} is not initialised: run `whistle init` first")
        values: dict[str, Any] = {}
        settings_file = path / SETTINGS_FILE
        if settings_file.exists():
            with settings_file.open("rb") as handle:
                values.update(tomllib.load(handle))
        values.update(_from_environment())
        values.update(overrides)
        known = {f.name: f for f in dataclasses.fields(cls) if f.name not in _FROM_FILES}
        unknown = set(values) - set(known)
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
        values = {name: _coerce(name, known[name].type, value) for name, value in values.items()}
        # Cookies go over HTTPS only unless the portal is served on this machine alone.
        values.setdefault("secure_cookies", not _served_on_loopback(values.get("base_url", cls.base_url)))
        values.setdefault("database_url", f"sqlite:///{path / 'whistle.db'}")
        return cls(
            instance_path=path,
            secret_key=_read_secret(path / SECRET_KEY_FILE),
            pepper=_read_secret(path / PEPPER_FILE),
            organisation_public_key=_read_public_key(path / ORGANISATION_KEY_FILE),
            **values,
        )


#: Fields that come from the instance folder and its secret files, never from settings.
_FROM_FILES = {"instance_path", "secret_key", "pepper", "organisation_public_key"}
_ENV_PREFIX = "WHISTLE_"
#: WHISTLE_* variables that are not settings: the instance folder, and those that
#: whistle.gunicorn_conf reads for gunicorn itself. WHISTLE_TEST_* are the test suite's.
_NOT_SETTINGS = {
    "WHISTLE_INSTANCE",
    "WHISTLE_BIND",
    "WHISTLE_WORKERS",
    "WHISTLE_THREADS",
    "WHISTLE_FORWARDED_ALLOW_IPS",
    "WHISTLE_ACCESS_LOG",
}
_TEST_PREFIX = "WHISTLE_TEST_"
#: OWASP's floor for Argon2id (19 MiB, two passes). Only the test suite may go below it, by setting
#: this variable, so that its thousands of derivations stay fast.
MIN_KDF_MEMORY_KIB = 19 * 1024
MIN_KDF_TIME_COST = 2
WEAK_KDF_ENV = "WHISTLE_TEST_WEAK_KDF"
INTERFACES = ("all", "reporter", "officer")
#: A v3 onion service's address: 56 base32 characters; no path, nothing else.
_ONION_LOCATION = re.compile(r"https?://[a-z2-7]{56}\.onion/?")


def _from_environment() -> dict[str, str]:
    return {
        key[len(_ENV_PREFIX) :].lower(): value
        for key, value in os.environ.items()
        if key.startswith(_ENV_PREFIX) and key not in _NOT_SETTINGS and not key.startswith(_TEST_PREFIX)
    }


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _served_on_loopback(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _coerce(name: str, kind: Any, value: Any) -> Any:
    """Read a setting as its declared type; anything unclear stops start-up."""
    if kind in ("bool", bool):
        word = str(value).strip().lower()
        if isinstance(value, bool) or word in _TRUE | _FALSE:
            return value if isinstance(value, bool) else word in _TRUE
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    if kind in ("int", int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise ConfigError(f"{name} must be a whole number, not {value!r}")
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be text, not {value!r}")
    return value


def _read_secret(path: Path) -> bytes:
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the secret {path.name}: run `whistle init`") from exc
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"the secret {path.name} is too short: run `whistle init` on a new instance")
    return secret


def _read_public_key(path: Path) -> bytes:
    try:
        key = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the organisation key {path.name}") from exc
    if len(key) != PUBLIC_KEY_BYTES:
        raise ConfigError(f"the organisation key {path.name} is damaged")
    return key


def create_instance(path: Path, settings_text: str = "") -> bytes:
    """Write a new instance's secrets and return the organisation's private key.

    The private key is returned to be shown once and is never written here.
    Refuses to touch a folder that already holds an instance.
    """
    from whistle.crypto import generate_keypair, new_key

    if (path / SECRET_KEY_FILE).exists():
        raise ConfigError(f"{path} already holds an instance; it was not changed")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    pair = generate_keypair()
    for name, value in (
        (SECRET_KEY_FILE, new_key().hex()),
        (PEPPER_FILE, new_key().hex()),
        (ORGANISATION_KEY_FILE, pair.public.hex()),
    ):
        _write_private(path / name, value + "\n")
    if settings_text and not (path / SETTINGS_FILE).exists():
        _write_private(path / SETTINGS_FILE, settings_text)
    return pair.private


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def replace_secret_key(path: Path) -> None:
    """Give an instance a new Flask secret key, in one step (the old one is gone).

    The file is replaced atomically, keeps its owner (that of the pepper if it
    was lost) and is readable by that owner only; the running processes go on
    with the old key until restarted.
    """
    from whistle.crypto import new_key

    target = path / SECRET_KEY_FILE
    if not (path / PEPPER_FILE).exists():
        raise ConfigError(f"the instance folder {path} is not initialised: run `whistle init` first")
    owner = (target if target.exists() else path / PEPPER_FILE).stat()
    temp = path / f".{SECRET_KEY_FILE}.new"
    temp.unlink(missing_ok=True)
    _write_private(temp, new_key().hex() + "\n")
    try:
        if (owner.st_uid, owner.st_gid) != (os.getuid(), os.getgid()):
            os.chown(temp, owner.st_uid, owner.st_gid)
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    folder = os.open(path, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
