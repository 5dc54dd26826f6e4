"""Fair turns: a few slots shared between kinds of work, each kind waiting in a queue of its own.

Without a client's address, one attacker's requests cannot be told from a
hundred people's; but a request's kind of work can be. Costly work (a
derivation, a form a flood keeps posting) runs in a few slots; beyond them a
request waits in the queue of its kind, first come first served, and a freed
slot goes to the kind served least recently. A flood of one kind therefore
fills only its own queue, and someone doing another kind of work waits for at
most one turn of each other kind. Waiting costs a server thread and no CPU; a
request that has waited ``wait_seconds`` gets :class:`ServerBusy`. A full queue
does not refuse at once: a script refused at once asks again at once, and its
refusals would take the cores that the queue keeps free. The server's threads
bound how many wait (gunicorn.conf.py gives each worker enough for every queue
to hold :func:`waiting_for` requests, with threads left for pages).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

from whistle.services.errors import ServerBusy


class Work(StrEnum):
    """The kinds of work anyone may ask for, each with a queue of its own."""

    #: A new report: sealing its key under its receipt.
    REPORT = "report"
    #: Opening a report with its receipt.
    RECEIPT = "receipt"
    #: An officer's login, password change, reset or invitation.
    OFFICER = "officer"


def waiting_for(slots: int) -> int:
    """How many requests of one kind the server's threads are sized to let wait for a slot.

    Enough that a crowd (fifty reporters sending at the same moment, on two cores)
    is mostly queued rather than told "busy", and served within a few seconds.
    """
    return 8 + 4 * slots


#: Threads a worker keeps for pages that need no turn, however full the queues are.
PAGE_THREADS = 4


def threads_for(slots: int) -> int:
    """Threads a worker needs so that, with every slot running and every queue full, pages are
    still served (whistle.gunicorn_conf sizes its workers with it)."""
    return slots + len(Work) * waiting_for(slots) + PAGE_THREADS


class FairQueues:
    """``slots`` shared between the kinds of :class:`Work`, each kind queueing on its own."""

    def __init__(self, slots: int, wait_seconds: float) -> None:
        self.slots = slots
        self.wait_seconds = wait_seconds
        self._free = slots
        self._queues: dict[Work, deque[threading.Event]] = {kind: deque() for kind in Work}
        #: When each kind was last given a slot (a count of slots given, not a time).
        self._served: dict[Work, int] = dict.fromkeys(Work, 0)
        self._given = 0
        self._lock = threading.Lock()

    def queued(self, kind: Work) -> int:
        """How many requests of this kind wait for a slot now."""
        with self._lock:
            return len(self._queues[kind])

    def _give(self, kind: Work) -> None:
        self._given += 1
        self._served[kind] = self._given

    def enter(self, kind: Work) -> None:
        """Take a slot, or wait in this kind's queue for one."""
        turn = threading.Event()
        with self._lock:
            queue = self._queues[kind]
            if self._free and not any(self._queues.values()):
                self._free -= 1
                self._give(kind)
                return
            queue.append(turn)
        if turn.wait(self.wait_seconds):
            return
        with self._lock:
            if turn.is_set():  # given a slot just as the wait ran out
                return
            queue.remove(turn)
        raise ServerBusy()

    def leave(self) -> None:
        """Hand the slot to the head of the queue served least recently, or free it."""
        with self._lock:
            waiting = [kind for kind in Work if self._queues[kind]]
            if not waiting:
                self._free += 1
                return
            kind = min(waiting, key=self._served.__getitem__)
            self._give(kind)
            self._queues[kind].popleft().set()

    @contextmanager
    def turn(self, kind: Work) -> Iterator[None]:
        """Run the block in a slot, after waiting for one in this kind's queue."""
        self.enter(kind)
        try:
            yield
        finally:
            self.leave()
