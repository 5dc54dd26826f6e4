"""gunicorn's threaded worker, with refused connections paced (gunicorn.conf.py uses it).

A client refused with 429 (a rate limit) or 503 (every Argon2 slot taken) is
told in ``Retry-After`` when to try again. A script guessing receipts does not
wait: it asks again the moment it is answered, and on a kept-alive connection
each of its thousands of tries a second takes a worker thread and a share of
the cores from everyone else, the reporter opening the landing page included.

This worker leaves a kept-alive connection unread for :data:`PAUSE` after a
refusal. Its next request waits in the kernel's socket buffer meanwhile,
costing no thread and no CPU, and everyone else is answered. A person who was
refused sees the refusal page that much later (the browser asks for its
stylesheet on the same connection), and reads it for longer than that anyway.

Nothing identifies the client: the pause belongs to the connection and ends
with it. A connection closed after its answer is never paused, so a client
that opens a new connection for every request is not slowed here (nothing
could tell it apart without its address, which Whistle never uses); behind
nginx every request comes on a connection of its own, and the guide's
``limit_req`` paces floods there instead (docs/deploy.md, section 7).

It relies on two parts of gunicorn's ``gthread`` worker (27.x): the
``finish_request(conn, fs)`` step that hands a kept-alive connection back to
the poller, and the ``method_queue`` that runs a callback on the worker's main
thread. tests/functional/test_real_server.py fails if either stops working.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from functools import partial
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

#: How long a refused connection stays unread (seconds).
PAUSE = 0.5
#: Answers that ask the client to slow down.
REFUSALS = ("429", "503")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Refusals:
    """WSGI middleware: notes the connections whose answer was a refusal."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        #: Sockets of the refused connections, until the worker has seen them (set.add and
        #: set.discard are atomic: the worker threads add, the main thread takes away).
        self.sockets: set[object] = set()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            connection = environ.get("gunicorn.socket")
            if status[:3] in REFUSALS and connection is not None:
                self.sockets.add(connection)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


class _Pacer:
    """Runs callbacks through ``defer`` (onto the worker's main thread) :data:`PAUSE` after they come.

    Every wait is the same length, so the first to come is the first due: a
    queue and one thread, which sleeps while nothing waits.
    """

    def __init__(self, defer: Callable[[Callable[[], None]], None]) -> None:
        self._defer = defer
        self._waiting: deque[tuple[float, Callable[[], None]]] = deque()
        self._changed = threading.Condition()
        threading.Thread(target=self._run, name="whistle-pacer", daemon=True).start()

    def later(self, callback: Callable[[], None]) -> None:
        with self._changed:
            self._waiting.append((time.monotonic() + PAUSE, callback))
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._waiting:
                    self._changed.wait()
                due, callback = self._waiting[0]
                left = due - time.monotonic()
                if left > 0:
                    self._changed.wait(left)
                    continue
                self._waiting.popleft()
            self._defer(callback)


class PacingWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's ``gthread`` worker that leaves a refused kept-alive connection unread for a while."""

    wsgi: WSGIApp

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.refusals = _Refusals(self.wsgi)
        self.wsgi = self.refusals
        self.pacer = _Pacer(self.method_queue.defer)

    def finish_request(self, conn: Any, fs: Future[Any]) -> None:
        refused = conn.sock in self.refusals.sockets
        self.refusals.sockets.discard(conn.sock)
        kept_alive = not fs.cancelled() and fs.exception() is None and fs.result() is True
        if refused and kept_alive and self.alive:
            self.pacer.later(partial(super().finish_request, conn, fs))
        else:
            super().finish_request(conn, fs)
