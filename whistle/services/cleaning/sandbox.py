"""Cleaning uploads in a child process whose memory and CPU time are bounded.

The cleaners parse hostile files with libraries (Pillow, pypdf, zipfile,
expat), and the cleaners bound what they can see coming: pixels, nesting, what
a package inflates to. What no check foresees, the operating system bounds:
each file is cleaned in a child process of its own that may use so much
address space and so many seconds of CPU time, at a lower priority than the
pages, and is killed if it takes longer than a wall-clock bound. Past a bound
the file is kept exactly as it was sent and marked "not cleaned", as for
every file that cannot be cleaned.

The plaintext stays in memory and in a pipe (a socket pair): the child is
forked from multiprocessing's fork server, which holds none of the
server's open files, connections or keys; it may write no file (RLIMIT_FSIZE)
and leaves no core dump (RLIMIT_CORE). Its reply is plain bytes, never a
pickle: a child that a hostile file took over can lie about the file, which
cleaning in this process could not prevent either, but cannot run code here.

What it costs (bench/RESULTS.md, "Cleaning uploads"): under gunicorn, 10 to
50 ms of CPU time a file more than cleaning in the worker would take, partly
because each child runs the imports of the server's main script again (Python
3.11's fork server does not preload it, whatever its preload list says). The
first file a process cleans also starts the fork server, about half a second.
At most two files are cleaned at once in a process, so plan for twice
`Bounds.memory_bytes` a worker.

Linux and other Unix systems only (the ``resource`` module).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection

from whistle.services.cleaning import CleanStatus, Outcome, clean_bytes, public_kind

__all__ = ["MAX_GROWTH", "Bounds", "Sandbox", "clean_bytes_in_child"]

_MIB = 1024 * 1024
#: Children are forked from a small server process that has imported the cleaners once (so
#: that a child starts in milliseconds) and that holds nothing of the server's. "__main__" is
#: multiprocessing's own default, kept for the versions of Python that honour it.
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["__main__", "whistle.services.cleaning"])
#: The cleaned copy may be this many times the cleaning limit (a JPEG encoded again at quality
#: 95 grows; a PNG or an Office package hardly does); a longer reply is refused unread.
MAX_GROWTH = 4
_CLEANED = (CleanStatus.CLEANED, CleanStatus.NOTHING_FOUND)


@dataclass(frozen=True)
class Bounds:
    """What cleaning one file may take."""

    #: Address space of the child (RLIMIT_AS). The child starts at about 90 MiB; a
    #: 48-megapixel photo (the most MAX_PIXELS lets through) takes about 450 MiB more.
    memory_bytes: int = 1024 * _MIB
    #: CPU time of the child (RLIMIT_CPU). A photo takes well under a second; XML is
    #: rewritten at a few megabytes a second, so a document whose text is tens of
    #: megabytes may not be cleaned in time, and is then kept as sent.
    cpu_seconds: int = 15
    #: Time from sending the file to the reply: CPU time, and waiting for a core.
    wall_seconds: float = 45.0
    #: How much lower than the server's the child's CPU priority is (a nice increment).
    niceness: int = 10


class Sandbox:
    """Cleans files in bounded child processes, at most `slots` at once."""

    def __init__(self, bounds: Bounds | None = None, slots: int = 2) -> None:
        self.bounds = bounds or Bounds()
        self._slots = threading.BoundedSemaphore(slots)

    def clean_bytes(self, data: bytes, kind: str, max_bytes: int) -> Outcome:
        """`clean_bytes` in a child process: a Cleaner."""
        with self._slots:
            return _clean_in_child(data, kind, max_bytes, self.bounds)


def _clean_in_child(data: bytes, kind: str, max_bytes: int, bounds: Bounds) -> Outcome:
    ours, theirs = _CONTEXT.Pipe()
    child = _CONTEXT.Process(target=_child_main, args=(theirs, kind, max_bytes, bounds), daemon=True)
    child.start()
    theirs.close()  # the child holds its end now: when it dies, reading ours ends
    try:
        ours.send_bytes(data)
        if ours.poll(bounds.wall_seconds):
            return _outcome(ours.recv_bytes(MAX_GROWTH * max_bytes + 1024))
    except (EOFError, OSError, ValueError):
        pass  # the child died (past a bound), or its reply was too long or made no sense
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        child.close()
        ours.close()
    return Outcome(CleanStatus.OVER_BOUNDS, public_kind(kind))


def _outcome(reply: bytes) -> Outcome:
    header, _, body = reply.partition(b"\n")
    status_name, _, kind_name = header.decode("ascii").partition(" ")
    status = CleanStatus(status_name)
    return Outcome(status, kind_name, body if status in _CLEANED else None)


def _child_main(connection: Connection, kind: str, max_bytes: int, bounds: Bounds) -> None:
    """The child: bound itself, then clean one file and reply."""
    os.nice(bounds.niceness)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a core dump would hold the plaintext
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # nor may anything else be written to a file
    resource.setrlimit(resource.RLIMIT_CPU, (bounds.cpu_seconds, bounds.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_AS, (bounds.memory_bytes, bounds.memory_bytes))
    data = connection.recv_bytes(max_bytes)
    outcome = clean_bytes(data, kind, max_bytes)
    header = f"{outcome.status.value} {outcome.kind}\n".encode("ascii")
    connection.send_bytes(header + (outcome.cleaned or b""))
    connection.close()


#: The process's sandbox: every upload is cleaned through it.
_sandbox = Sandbox()


def clean_bytes_in_child(data: bytes, kind: str, max_bytes: int) -> Outcome:
    """`clean_bytes` in a bounded child process (the process's sandbox)."""
    return _sandbox.clean_bytes(data, kind, max_bytes)
