"""The real server for tests: gunicorn with the project's gunicorn.conf.py, and a small HTTP client.

:class:`Server` starts ``gunicorn -c gunicorn.conf.py wsgi:app`` from the project
folder in a session (process group) of its own, so that ``kill -9`` reaches the
master and every worker at once. Its access log (stdout) and error log (stderr)
go to files, and its temporary folder (``TMPDIR``) is one the test owns and can
scan. :class:`Browser` speaks HTTP with the standard library only: one cookie
jar per browser, no redirects followed, a timeout on every call.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import os
import re
import secrets
import select as io_select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TypeVar

import gunicorn
import psutil
from sqlalchemy import func, select

from tests.conftest import CHEAP_KDF, PASSWORD, csrf_token
from whistle.config import WEAK_KDF_ENV, create_instance
from whistle.crypto import KdfParams
from whistle.db import make_engine, make_session_factory, upgrade
from whistle.models import Report
from whistle.services import officers

ROOT = Path(__file__).resolve().parents[2]
HTTP_TIMEOUT = 20.0
RECEIPT = re.compile(r"\b([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})\b")
OFFICER_EMAIL = "officer@example.org"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- an instance folder ------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    path: Path
    database_url: str

    @property
    def files(self) -> Path:
        return self.path / "files"

    def partial_files(self) -> list[Path]:
        return sorted([*self.files.glob("??/.part-*"), *self.files.glob("new/.part-*")])

    def published_files(self) -> list[Path]:
        """Sealed files, settled into place or still waiting in new/ for ``whistle maintain``."""
        found = [*self.files.glob("??/*"), *self.files.glob("new/*")]
        return sorted(p for p in found if not p.name.startswith(".part-"))

    def count_reports(self) -> int:
        engine = make_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return int(connection.scalar(select(func.count()).select_from(Report)) or 0)
        finally:
            engine.dispose()


def make_instance(path: Path, database_url: str | None = None) -> Instance:
    """A new instance folder with cheap Argon2 parameters, its schema, and one officer."""
    url = database_url or f"sqlite:///{path / 'whistle.db'}"
    create_instance(path, f'{CHEAP_KDF}database_url = "{url}"\norganisation_name = "Northshire Council"\n')
    upgrade(url)
    kdf = KdfParams(time_cost=1, memory_cost=8, parallelism=1)
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as db, db.begin():
            officers.create_officer(
                db, kdf, OFFICER_EMAIL, "Olive Officer", PASSWORD, dt.datetime.now(dt.UTC), is_admin=True
            )
    finally:
        engine.dispose()
    return Instance(path, url)


# --- the server --------------------------------------------------------------


def _process_state(pid: int, proc: str = "/proc") -> str | None:
    """The kernel's one-letter state of a process or thread (Z: zombie, T: stopped), or None once gone."""
    try:
        stat = Path(f"{proc}/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _tasks(pid: int) -> list[Path]:
    try:
        return list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return []


def _children(pid: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:  # already gone and reaped: no children left either
        return []


@dataclass
class Server:
    """gunicorn serving one instance; logs and the temporary folder live in ``workdir``."""

    instance: Instance
    workdir: Path
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    #: gunicorn.conf.py writes no access log unless asked; the tests ask, to read it.
    access_log_on: bool = True
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    worker_pids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tmpdir.mkdir(mode=0o700, exist_ok=True)

    @property
    def tmpdir(self) -> Path:
        return self.workdir / "tmp"

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"

    @property
    def error_log(self) -> Path:
        return self.workdir / "error.log"

    def _environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("WHISTLE_") or key == WEAK_KDF_ENV
        }
        env.update(
            WHISTLE_INSTANCE=str(self.instance.path),
            WHISTLE_BIND=f"127.0.0.1:{self.port}",
            WHISTLE_WORKERS=str(self.workers),
            TMPDIR=str(self.tmpdir),
        )
        if self.access_log_on:
            env["WHISTLE_ACCESS_LOG"] = "-"
        env.update(self.env)
        return env

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
        if gunicorn.version_info >= (25, 1):
            # Its default control socket is one per user ($HOME/.gunicorn/gunicorn.ctl):
            # servers running side by side would take it from each other.
            command.append("--no-control-socket")
        return [*command, "wsgi:app"]

    def start(self, timeout: float = 30.0) -> Server:
        """Start gunicorn on a free port and wait until every worker answers."""
        assert self.process is None, "already running"
        self.port = free_port()
        with self.access_log.open("ab") as out, self.error_log.open("ab") as err:
            self.process = subprocess.Popen(
                self._command(),
                cwd=ROOT,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise AssertionError(f"gunicorn exited with {code} at start-up\n{self.logs_tail()}")
            self.worker_pids = _children(self.process.pid)
            if len(self.worker_pids) == self.workers and self._answers():
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"gunicorn did not answer within {timeout} s\n{self.logs_tail()}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def _wait_gone(self, pids: list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(_process_state(pid) not in (None, "Z") for pid in pids):
            if time.monotonic() > deadline:
                raise AssertionError(f"processes {pids} outlived their kill\n{self.logs_tail()}")
            time.sleep(0.02)

    def kill(self) -> None:
        """kill -9 the master and its workers at once, as a power cut or the OOM killer would."""
        if self.process is None:
            return
        pids = [self.process.pid, *_children(self.process.pid)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._wait_gone(pids, 10)
        self.process = None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if gunicorn has not shut down after ``grace`` seconds."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
        self.kill()

    def _wait_stopped(self, pid: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = [_process_state(int(task.name), f"/proc/{pid}/task") for task in _tasks(pid)]
            if all(state in ("T", "t", None) for state in states):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {pid} did not stop: {states}")
            time.sleep(0.0002)

    def step_until(self, condition: Callable[[], T], timeout: float, run_for: float = 0.002) -> T:
        """Let the (single) worker run in short steps until ``condition`` holds; leave it stopped.

        ``condition`` is checked only while the worker is stopped (SIGSTOP), so
        what it sees cannot change before the test acts on it, e.g. with kill().
        """
        (pid,) = self.worker_pids
        deadline = time.monotonic() + timeout
        while True:
            os.kill(pid, signal.SIGSTOP)
            self._wait_stopped(pid)
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGCONT)
                raise AssertionError(f"the condition did not hold within {timeout} s\n{self.logs_tail()}")
            os.kill(pid, signal.SIGCONT)
            time.sleep(run_for)

    def thaw(self) -> None:
        for pid in self.worker_pids:
            os.kill(pid, signal.SIGCONT)

    def logs_tail(self, lines: int = 40) -> str:
        tails = []
        for path in (self.error_log, self.access_log):
            text = path.read_text(errors="replace") if path.exists() else ""
            tails.append(
                f"--- {path.name} (last {lines} lines) ---\n" + "\n".join(text.splitlines()[-lines:])
            )
        return "\n".join(tails)

    def spooled_files(self) -> dict[str, Path]:
        """The workers' open files in the temporary folder, unnamed ones too, as /proc paths to read."""
        held = {}
        for pid in self.worker_pids:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith(str(self.tmpdir)):
                    held[f"{target} (fd {fd.name} of worker {pid})"] = fd
        return held


# --- HTTP --------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    method: str
    path: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def describe(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


def multipart(
    fields: list[tuple[str, str]], files: list[tuple[str, str, str, bytes]] = ()
) -> tuple[str, bytes]:
    """Encode form fields and ``(name, filename, content type, data)`` files; return (type, body)."""
    boundary = "----whistle" + secrets.token_hex(16)
    body = _field_parts(boundary, fields)
    for name, filename, content_type, data in files:
        body += _file_head(boundary, name, filename, content_type) + data + b"\r\n"
    return f"multipart/form-data; boundary={boundary}", body + _end(boundary)


def multipart_around_file(
    boundary: str, fields: list[tuple[str, str]], file: tuple[str, str, str]
) -> tuple[bytes, bytes]:
    """The bytes before and after one file's data, so the data itself can be streamed."""
    return _field_parts(boundary, fields) + _file_head(boundary, *file), b"\r\n" + _end(boundary)


def _field_parts(boundary: str, fields: list[tuple[str, str]]) -> bytes:
    return b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value.encode()
        + b"\r\n"
        for name, value in fields
    )


def _file_head(boundary: str, name: str, filename: str, content_type: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()


def _end(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode()


class Browser:
    """One visitor: a cookie jar of its own, every redirect left for the test to see."""

    def __init__(self, port: int, timeout: float = HTTP_TIMEOUT, deadline: float | None = None) -> None:
        self.port = port
        self.timeout = timeout
        #: A time.monotonic() after which no request is started and none waits longer.
        self.deadline = deadline
        self.cookies: dict[str, str] = {}
        self.history: list[Page] = []

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def _remember(self, headers: http.client.HTTPMessage) -> None:
        for header in headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> Page:
        headers = {"Connection": "close"}
        if self.cookies:
            headers["Cookie"] = self.cookie_header()
        if content_type:
            headers["Content-Type"] = content_type
        timeout = self.timeout
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - time.monotonic())
            if timeout <= 0:
                raise TimeoutError(f"out of time before {method} {path}")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            page = Page(response.status, response.headers, response.read(), method, path)
        finally:
            connection.close()
        self._remember(page.headers)
        self.history.append(page)
        return page

    def get(self, path: str) -> Page:
        return self.request("GET", path)

    def post(
        self, path: str, fields: list[tuple[str, str]], files: list[tuple[str, str, str, bytes]] = ()
    ) -> Page:
        content_type, body = multipart(fields, files)
        return self.request("POST", path, body, content_type)

    def submit_form(
        self,
        page: str,
        fields: list[tuple[str, str]],
        files: list[tuple[str, str, str, bytes]] = (),
        action: str | None = None,
    ) -> Page:
        """GET a form, then POST it with its CSRF token, as a browser would."""
        form = self.get(page)
        assert form.status == 200, form.describe()
        return self.post(action or page, [("csrf_token", csrf_token(form.text)), *fields], files)

    def login(self, email: str = OFFICER_EMAIL, password: str = PASSWORD) -> Page:
        return self.submit_form("/officer/login", [("email", email), ("password", password)])

    def listed_reports(self) -> list[str]:
        """Every report id on every page of the officer's list, following the "next" links."""
        found: list[str] = []
        path: str | None = "/officer/"
        while path:
            page = self.get(path)
            assert page.status == 200, page.describe()
            found += re.findall(r'href="/officer/reports/([0-9a-f]{32})"', page.text)
            following = re.search(r'href="([^"]+)" rel="next"', page.text)
            path = following.group(1).replace("&amp;", "&") if following else None
            assert len(found) < 10_000, "the list of reports does not end"
        return found


class RawUpload:
    """A multipart POST with one large file, written by hand to a socket.

    The test decides how much of the file goes and when, so it can kill the
    server while the body is still arriving.
    """

    def __init__(
        self,
        browser: Browser,
        path: str,
        fields: list[tuple[str, str]],
        file: tuple[str, str, str],
        marker: bytes,
        size: int,
    ) -> None:
        boundary = "----whistle" + secrets.token_hex(16)
        head, self._tail = multipart_around_file(boundary, fields, file)
        self._data = pattern(marker, size, piece=256 * 1024)
        self.size = size
        self.sent = 0
        self.socket = socket.create_connection(("127.0.0.1", browser.port), timeout=browser.timeout)
        request_head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{browser.port}\r\nConnection: close\r\n"
            f"Cookie: {browser.cookie_header()}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(head) + size + len(self._tail)}\r\n\r\n"
        )
        self.socket.sendall(request_head.encode() + head)

    def send(self, upto: int | None = None, pause: float = 0.0) -> None:
        """Send the file up to ``upto`` bytes (all of it and the closing boundary if None)."""
        limit = self.size if upto is None else upto
        while self.sent < limit:
            piece = next(self._data)
            self.socket.sendall(piece)
            self.sent += len(piece)
            if pause:
                time.sleep(pause)
        if upto is None:
            self.socket.sendall(self._tail)

    def answered(self) -> bool:
        """Whether the server has started to answer (or closed the connection)."""
        readable, _, _ = io_select.select([self.socket], [], [], 0)
        return bool(readable)

    def response(self) -> tuple[int, bytes]:
        response = http.client.HTTPResponse(self.socket, method="POST")
        response.begin()
        try:
            return response.status, response.read()
        finally:
            response.close()

    def close(self) -> None:
        self.socket.close()


REPORT_FIELDS = [
    ("category", "caseloads"),
    ("when_where", "Since the spring, in the east locality team"),
    ("immediate_risk", "no"),
    ("raised_before", "no"),
]


def report_fields(what_happened: str) -> list[tuple[str, str]]:
    return [*REPORT_FIELDS, ("what_happened", what_happened)]


def receipt_on(page: Page) -> str:
    match = RECEIPT.search(page.text)
    assert match, f"no receipt on the page: {page.describe()}"
    return match.group(1)


def pattern(marker: bytes, size: int, piece: int = 1024 * 1024) -> Iterator[bytes]:
    """``size`` bytes of ``marker`` repeated, in pieces of ``piece`` bytes.

    The bytes are the same whatever the piece size: each piece carries on
    from where the marker stood at the end of the last one.
    """
    block = marker * (piece // len(marker) + 2)
    sent = 0
    while sent < size:
        start = sent % len(marker)
        chunk = block[start : start + min(piece, size - sent)]
        sent += len(chunk)
        yield chunk


def files_containing(folder: Path, needle: bytes) -> list[Path]:
    """Every file under ``folder`` whose bytes hold ``needle``."""
    return [path for path in sorted(folder.rglob("*")) if path.is_file() and needle in path.read_bytes()]
