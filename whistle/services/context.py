"""The values services are given instead of reaching for settings: keys, clock, policy."""

from __future__ import annotations

import datetime as dt
import os
import threading
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from whistle import crypto
from whistle.crypto import KdfParams
from whistle.services.errors import ServerBusy


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
    #: Files up to this size have their metadata removed; larger ones are stored as sent.
    max_clean_bytes: int = 32 * 1024 * 1024
    acknowledge_days: int = 7
    feedback_months: int = 3


class DerivationGate:
    """Bounds how many Argon2id derivations run at once in this process.

    Each derivation takes tens of megabytes of memory and a core for a fraction
    of a second, so a flood of receipt or login attempts could exhaust memory or
    starve every other page. Beyond the bound a request waits a little, then
    gets :class:`ServerBusy` (a 503 with Retry-After).
    """

    def __init__(self, slots: int, wait_seconds: float) -> None:
        self.slots = slots
        self.wait_seconds = wait_seconds
        self._semaphore = threading.BoundedSemaphore(slots)

    def derive_key(self, secret: bytes, salt: bytes, params: KdfParams) -> bytes:
        if not self._semaphore.acquire(timeout=self.wait_seconds):
            raise ServerBusy()
        try:
            return crypto.derive_key(secret, salt, params)
        finally:
            self._semaphore.release()


#: The process's gate; ``configure_derivations`` sets its size at start-up.
_gate = DerivationGate(slots=os.cpu_count() or 2, wait_seconds=5.0)


def configure_derivations(slots: int, wait_seconds: float) -> None:
    global _gate  # one bound per process, set once at start-up
    _gate = DerivationGate(slots, wait_seconds)


def derive_key(secret: bytes, salt: bytes, params: KdfParams) -> bytes:
    """Argon2id through the process's gate."""
    return _gate.derive_key(secret, salt, params)
