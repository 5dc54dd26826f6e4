"""The values services are given instead of reaching for settings: keys, clock, policy."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from whistle import crypto
from whistle.crypto import KdfParams
from whistle.services.turns import FairQueues, Work


@dataclass(frozen=True)
class Keyring:
    #: HMAC key for receipt lookups; lives in the instance folder, not the database.
    pepper: bytes = field(repr=False)
    #: Public half of the organisation recovery key; every report key is wrapped for it.
    organisation_public_key: bytes = field(repr=False)
    kdf: KdfParams = field(default_factory=KdfParams)


@dataclass(frozen=True)
class Moment:
    """One instant, and the organisation's day it falls on."""

    now: dt.datetime
    today: dt.date


@dataclass(frozen=True)
class Clock:
    """The time, and the organisation's calendar day, in one place tests can set."""

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/London"))

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def today(self) -> dt.date:
        return self.now().astimezone(self.timezone).date()

    def moment(self) -> Moment:
        now = self.now()
        return Moment(now, now.astimezone(self.timezone).date())


@dataclass(frozen=True)
class Policy:
    """The organisation's rules: limits and legal deadlines."""

    max_files: int = 10
    max_files_per_case: int = 50
    max_file_bytes: int = 100 * 1024 * 1024
    #: Files up to this size have their metadata removed; larger ones are stored as sent.
    max_clean_bytes: int = 32 * 1024 * 1024
    acknowledge_days: int = 7
    feedback_months: int = 3


#: How much lower than the rest of the process a derivation runs (a nice increment, Linux).
DERIVATION_NICENESS = 10


class DerivationGate:
    """Bounds how many Argon2id derivations run at once in this process, with a fair queue
    for each kind of work.

    Each derivation takes tens of megabytes of memory and a core for a fraction
    of a second, so only ``slots`` run at once, in fair turns (:mod:`turns`):
    beyond them a request waits in the queue of its kind of :class:`Work`, so a
    flood of one kind (junk reports, say) cannot starve the others.

    Derivations run on threads of their own at a lower CPU priority (nice +10
    where the system allows it), so that when the cores are busy deriving,
    the scheduler still gives them to the requests that only render a page.
    A derivation is no slower when nothing else wants the CPU.
    """

    def __init__(self, slots: int, wait_seconds: float, niceness: int = DERIVATION_NICENESS) -> None:
        self.slots = slots
        self.wait_seconds = wait_seconds
        self.niceness = niceness
        self.turns = FairQueues(slots, wait_seconds)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def _threads(self) -> ThreadPoolExecutor:
        # Made on first use, so a server that forks its workers starts no thread before the fork.
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.slots,
                    thread_name_prefix="whistle-kdf",
                    initializer=_lower_priority,
                    initargs=(self.niceness,),
                )
            return self._pool

    def queued(self, kind: Work) -> int:
        """How many requests of this kind wait for a slot now."""
        return self.turns.queued(kind)

    def derive_key(self, secret: bytes, salt: bytes, params: KdfParams, kind: Work = Work.OFFICER) -> bytes:
        with self.turns.turn(kind):
            return self._threads().submit(crypto.derive_key, secret, salt, params).result()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None


def _lower_priority(niceness: int) -> None:
    """Lower the calling thread's CPU priority (on Linux, nice values are per thread)."""
    thread = threading.get_native_id()
    # A system without per-thread priorities (or that refuses) runs derivations at normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + niceness)


#: The process's gate; ``configure_derivations`` sets its size at start-up.
_gate = DerivationGate(slots=os.cpu_count() or 2, wait_seconds=5.0)


def configure_derivations(slots: int, wait_seconds: float) -> None:
    global _gate  # one bound per process, set once at start-up
    _gate.close()
    _gate = DerivationGate(slots, wait_seconds)


def derive_key(secret: bytes, salt: bytes, params: KdfParams, kind: Work = Work.OFFICER) -> bytes:
    """Argon2id through the process's gate, in the queue of its kind of work."""
    return _gate.derive_key(secret, salt, params, kind)
