"""The values services are given instead of reaching for settings: keys, clock, policy."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
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


class Work(StrEnum):
    """The kinds of work that need a derivation, each with a queue of its own."""

    #: Sealing a new report's key under its receipt.
    REPORT = "report"
    #: Opening a report with its receipt.
    RECEIPT = "receipt"
    #: An officer's login, password change, reset or invitation.
    OFFICER = "officer"


def waiting_for(slots: int) -> int:
    """How many requests of one kind may wait for a slot: twice as many as there are slots."""
    return max(2, 2 * slots)


#: Threads a worker keeps for pages that need no derivation, however full the queues are.
PAGE_THREADS = 4


def threads_for(slots: int) -> int:
    """Threads a worker needs so that, with every slot running and every queue full, pages are
    still served (gunicorn.conf.py sizes its workers with it)."""
    return slots + len(Work) * waiting_for(slots) + PAGE_THREADS


class DerivationGate:
    """Bounds how many Argon2id derivations run at once in this process, with a fair queue
    for each kind of work.

    Each derivation takes tens of megabytes of memory and a core for a fraction
    of a second, so only ``slots`` run at once. Beyond them a request waits in
    the queue of its kind (:class:`Work`), first come first served, for at most
    ``wait_seconds``; a freed slot goes to the kind served least recently, so a
    flood of one kind (junk reports, say) cannot starve the others: a returning
    reporter or an officer waits for at most one derivation of each other kind.
    A queue holds at most :func:`waiting_for` requests, since each waiting
    request holds a server thread; one more gets :class:`ServerBusy` (a 503
    that says nothing was lost), as does one that waited too long.

    Derivations run on threads of their own at a lower CPU priority (nice +10
    where the system allows it), so that when the cores are busy deriving,
    the scheduler still gives them to the requests that only render a page.
    A derivation is no slower when nothing else wants the CPU.
    """

    def __init__(self, slots: int, wait_seconds: float, niceness: int = DERIVATION_NICENESS) -> None:
        self.slots = slots
        self.wait_seconds = wait_seconds
        self.niceness = niceness
        self.waiting = waiting_for(slots)
        self._free = slots
        self._queues: dict[Work, deque[threading.Event]] = {kind: deque() for kind in Work}
        #: When each kind was last given a slot (a count of slots given, not a time).
        self._served: dict[Work, int] = dict.fromkeys(Work, 0)
        self._given = 0
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
        with self._lock:
            return len(self._queues[kind])

    def _give(self, kind: Work) -> None:
        self._given += 1
        self._served[kind] = self._given

    def _enter(self, kind: Work) -> None:
        """Take a slot, or wait in this kind's queue for one (see the class)."""
        turn = threading.Event()
        with self._lock:
            queue = self._queues[kind]
            if self._free and not any(self._queues.values()):
                self._free -= 1
                self._give(kind)
                return
            if len(queue) >= self.waiting:
                raise ServerBusy()
            queue.append(turn)
        if turn.wait(self.wait_seconds):
            return
        with self._lock:
            if turn.is_set():  # given a slot just as the wait ran out
                return
            queue.remove(turn)
        raise ServerBusy()

    def _leave(self) -> None:
        """Hand the slot to the head of the queue served least recently, or free it."""
        with self._lock:
            waiting = [kind for kind in Work if self._queues[kind]]
            if not waiting:
                self._free += 1
                return
            kind = min(waiting, key=self._served.__getitem__)
            self._give(kind)
            self._queues[kind].popleft().set()

    def derive_key(self, secret: bytes, salt: bytes, params: KdfParams, kind: Work = Work.OFFICER) -> bytes:
        self._enter(kind)
        try:
            return self._threads().submit(crypto.derive_key, secret, salt, params).result()
        finally:
            self._leave()

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
