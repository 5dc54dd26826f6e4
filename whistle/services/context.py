"""The values services are given instead of reaching for settings: keys, clock, policy."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from whistle.crypto import KdfParams


@dataclass(frozen=True)
class Keyring:
    #: HMAC key for receipt lookups; lives in the instance folder, not the database.
    pepper: bytes = field(repr=False)
    #: Public half of the organisation recovery key; every report key is wrapped for it.
    organisation_public_key: bytes = field(repr=False)
    kdf: KdfParams = field(default_factory=KdfParams)


@dataclass(frozen=True)
class Clock:
    """The time, and the organisation's calendar day, in one place tests can set."""

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/London"))

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def today(self) -> dt.date:
        return self.now().astimezone(self.timezone).date()


@dataclass(frozen=True)
class Policy:
    """The organisation's rules: limits and legal deadlines."""

    max_files: int = 10
    max_file_bytes: int = 100 * 1024 * 1024
    acknowledge_days: int = 7
    feedback_months: int = 3
