"""What every benchmark needs: scratch instances, gunicorn, an HTTP client, statistics, RESULTS.md,
and nginx in front of gunicorn as docs/deploy.md configures it (the configuration read from the guide).

Everything large goes under bench/out/ (git-ignored) and is removed by the
benchmark that made it. PostgreSQL benchmarks use a scratch database of their
own (``whistle_bench``), made with an AUTOCOMMIT connection and dropped at the end.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Self

import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from whistle.config import WEAK_KDF_ENV, create_instance
from whistle.crypto import KdfParams
from whistle.db import make_engine, make_session_factory, upgrade
from whistle.services import officers

# Most scenarios run Argon2id cheaply, below the portal's floor, so that they measure the rest.
os.environ.setdefault(WEAK_KDF_ENV, "1")

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
RESULTS = ROOT / "bench" / "RESULTS.md"
DEPLOY_GUIDE = ROOT / "docs" / "deploy.md"
CORES = os.cpu_count() or 1
MB = 1024 * 1024
PASSWORD = "correct horse battery staple"  # noqa: S105 - the benchmark officers' password
CHEAP_KDF = KdfParams(time_cost=1, memory_cost=8, parallelism=1)
POSTGRES_ENV = "BENCH_POSTGRES"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def log(message: str) -> None:
    print(message, flush=True)


# --- statistics ----------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (the 95th of 20 values is the 19th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-int(fraction * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


# --- instances -----------------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    path: Path
    database_url: str


def make_instance(path: Path, database_url: str | None = None, kdf: KdfParams = CHEAP_KDF) -> Instance:
    """A new instance folder with its schema; ``kdf`` is the Argon2id cost it runs with."""
    if path.exists():
        shutil.rmtree(path)
    url = database_url or f"sqlite:///{path / 'whistle.db'}"
    create_instance(
        path,
        f"kdf_time_cost = {kdf.time_cost}\nkdf_memory_cost = {kdf.memory_cost}\n"
        f"kdf_parallelism = {kdf.parallelism}\n"
        f'database_url = "{url}"\norganisation_name = "Benchmark Council"\n',
    )
    upgrade(url)
    return Instance(path, url)


def add_officers(instance: Instance, names: Iterable[str], kdf: KdfParams = CHEAP_KDF) -> list[str]:
    """Officers with the benchmark password; returns their email addresses (first one first)."""
    engine = make_engine(instance.database_url)
    emails = []
    try:
        with make_session_factory(engine)() as db, db.begin():
            for name in names:
                email = f"{name.split()[0].lower()}@example.org"
                officers.create_officer(
                    db, kdf, email, name, PASSWORD, dt.datetime.now(dt.UTC), is_admin=True
                )
                emails.append(email)
    finally:
        engine.dispose()
    return emails


@contextmanager
def scratch_postgresql(name: str = "whistle_bench") -> Iterator[str | None]:
    """A fresh database on the benchmark PostgreSQL server, dropped afterwards; None if unreachable."""
    admin_url = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # the server is optional: say so and go on without it
        log(
            f"  PostgreSQL at {make_url(admin_url).render_as_string()} is not usable ({type(error).__name__})"
        )
        admin.dispose()
        yield None
        return
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- the real server -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """The children of a process: gunicorn's workers, or nginx's."""
    return [child.pid for child in psutil.Process(pid).children()]


def answers(port: int) -> bool:
    """Whether the landing page on ``port`` answers 200."""
    try:
        return Client(port, timeout=2).get("/").status == 200
    except OSError:
        return False


def tail(path: Path, lines: int = 30) -> str:
    text_ = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text_.splitlines()[-lines:])


def _stop_group(process: subprocess.Popen[bytes], first: signal.Signals) -> None:
    """Stop a process started in a session of its own, children included: ``first``, then SIGKILL."""
    try:
        os.killpg(process.pid, first)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


class _Daemon(ABC):
    """A server of a process and its workers, in a process group of its own: started by ``_launch``
    on a free port, ready once all its workers run and it answers, stopped by ``stop_signal``
    (then SIGKILL). Its error log is ``workdir/error.log``."""

    name: str
    stop_signal: signal.Signals
    workdir: Path
    workers: int
    port: int
    process: subprocess.Popen[bytes] | None
    worker_pids: list[int]

    @abstractmethod
    def _launch(self) -> subprocess.Popen[bytes]:
        """Start the server's master process (its port is chosen already)."""

    def start(self, timeout: float = 60.0) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process = process = self._launch()
        deadline = time.monotonic() + timeout
        try:
            while not self._ready(process.pid):
                if process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited at start-up:\n{self.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not answer within {timeout} s:\n{self.log_tail()}")
                time.sleep(0.1)
        except RuntimeError:
            self.stop()
            raise
        return self

    def _ready(self, pid: int) -> bool:
        self.worker_pids = child_pids(pid)
        return len(self.worker_pids) == self.workers and answers(self.port)

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process, self.stop_signal)
            self.process = None

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.workdir / "error.log", lines)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


@dataclass
class Server(_Daemon):
    """gunicorn with the project's gunicorn.conf.py, in a process group of its own."""

    instance: Instance
    workdir: Path
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    worker_pids: list[int] = field(default_factory=list)
    name = "gunicorn"
    stop_signal = signal.SIGTERM

    def _launch(self) -> subprocess.Popen[bytes]:
        (self.workdir / "tmp").mkdir(mode=0o700, exist_ok=True)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("WHISTLE_") or key == WEAK_KDF_ENV
        }
        env.update(WHISTLE_INSTANCE=str(self.instance.path), TMPDIR=str(self.workdir / "tmp"), **self.env)
        command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
        command += ["--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers)]
        import gunicorn

        if gunicorn.version_info >= (25, 1):
            command.append("--no-control-socket")
        with (self.workdir / "access.log").open("ab") as out, (self.workdir / "error.log").open("ab") as err:
            return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                [*command, "wsgi:app"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )


# --- nginx in front, as docs/deploy.md configures it ---------------------------------------


def nginx_binary() -> str | None:
    """The nginx program, if it is installed (Debian's is in /usr/sbin, outside some users' PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def nginx_version(binary: str) -> str:
    """The version of the nginx program: "nginx/1.22.1", say."""
    checked = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)  # noqa: S603
    return checked.stderr.strip().removeprefix("nginx version: ")


def nginx_config(prefix: Path, port: int, upstream: int, workers: int = 1) -> str:
    """nginx.conf for nginx on 127.0.0.1:``port`` in front of gunicorn on ``upstream``, from the
    nginx blocks of docs/deploy.md (section 7): whistle-proxy.conf, then the ``location = /...``
    blocks of the outer bound on the forms in the same server, and its ``map`` and
    ``limit_req_zone`` lines in http {}. Only what needs TLS or system paths changes: the server block
    listens over plain HTTP, and ``proxy_pass``, the error log, the pid file and the temporary
    folders (which the guide's buffering settings leave unused) point at the benchmark's own."""
    proxy, bounded, limits = _guide_nginx_blocks()

    def ours(block: str) -> str:
        block = re.sub(r"(proxy_pass http://)[^;/]+", lambda m: f"{m[1]}127.0.0.1:{upstream}", block)
        return re.sub(r"(error_log )\S+", lambda m: f"{m[1]}{prefix / 'error.log'}", block)

    temp_paths = "".join(
        f"    {kind}_temp_path {prefix / 'temp' / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    blocks = "\n".join(ours(block) for block in [proxy, *bounded])
    server = textwrap.indent(f"listen 127.0.0.1:{port};\n\n{blocks}", " " * 8)
    return (
        f"# From {DEPLOY_GUIDE.relative_to(ROOT)}, section 7, by bench/common.py: only the addresses and\n"
        "# paths are the benchmark's, and it is plain HTTP on the loopback (no TLS).\n"
        f"daemon off;\nworker_processes {workers};\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} warn;\n\nevents {{}}\n\nhttp {{\n{temp_paths}\n"
        f"{textwrap.indent(limits, ' ' * 4)}\n    server {{\n{server}    }}\n}}\n"
    )


def guide_bounds() -> str:
    """The outer bound on the forms as docs/deploy.md sets it: "/follow-up 20r/s, burst=40", say."""
    _, bounded, limits = _guide_nginx_blocks()
    rates = dict(re.findall(r"\bzone=(\w+):\S+ rate=([^;\s]+)", limits))
    described = []
    for block in bounded:
        path = re.search(r"^location = (\S+)", block, re.MULTILINE)
        limit = re.search(r"limit_req zone=(\w+)( [^;]+)?;", block)
        if path and limit:
            described.append(f"`{path[1]}` {rates.get(limit[1], '?')}{(limit[2] or '').replace(' ', ', ')}")
    return "; ".join(described)


_NGINX_BLOCK = re.compile(r"^```nginx\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _guide_nginx_blocks() -> tuple[str, list[str], str]:
    """docs/deploy.md's whistle-proxy.conf, its ``location = /...`` blocks with a limit_req, and the
    lines of the outer bound for http {}; a clear error if one is missing or a bounded location
    differs from ``location /`` by more than its limit."""
    blocks = _NGINX_BLOCK.findall(DEPLOY_GUIDE.read_text())

    def block_with(marker: str, what: str) -> str:
        found = [block for block in blocks if marker in block]
        if len(found) != 1:
            raise RuntimeError(
                f"{DEPLOY_GUIDE}: {what} not found (expected one ```nginx block with `{marker}`, "
                f"found {len(found)})"
            )
        return str(found[0])

    proxy = block_with("location / {", "whistle-proxy.conf")
    limits = block_with("limit_req_zone", "the outer bound's `map` and `limit_req_zone` for http {}")
    bounded = [str(block) for block in blocks if block.startswith("location = ") and "limit_req " in block]
    if not bounded:
        raise RuntimeError(f"{DEPLOY_GUIDE}: no `location = ...` block with `limit_req` (the outer bound)")
    for block in bounded:
        if [line for line in _directives(block) if not line.startswith("limit_req")] != _directives(proxy):
            raise RuntimeError(
                f"{DEPLOY_GUIDE}: `{block.splitlines()[0]}` is not the `location /` block of "
                "whistle-proxy.conf with limit_req added"
            )
    return proxy, bounded, limits


def _directives(block: str) -> list[str]:
    """The directives of the (first) location block in ``block``, without comments."""
    location = re.search(r"^location [^{]*\{\n(.*?)^\}", block, re.MULTILINE | re.DOTALL)
    lines = location[1].splitlines() if location else []
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


@dataclass
class Nginx(_Daemon):
    """nginx in front of the gunicorn on port ``upstream``, configured by :func:`nginx_config`, in a
    process group of its own, with everything it writes under ``workdir``; stopped gracefully
    (SIGQUIT: it finishes what it is answering)."""

    binary: str
    workdir: Path
    upstream: int
    workers: int = 1
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    worker_pids: list[int] = field(default_factory=list)
    name = "nginx"
    stop_signal = signal.SIGQUIT

    def _launch(self) -> subprocess.Popen[bytes]:
        (self.workdir / "temp").mkdir(exist_ok=True)
        config = self.workdir / "nginx.conf"
        config.write_text(nginx_config(self.workdir, self.port, self.upstream, self.workers))
        command = [self.binary, "-p", f"{self.workdir}/", "-c", str(config)]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)  # noqa: S603
        if checked.returncode:
            raise RuntimeError(f"nginx -t refused the configuration made from the guide:\n{checked.stderr}")
        with (self.workdir / "error.log").open("ab") as log_file:
            return subprocess.Popen(  # noqa: S603 - nginx with our own configuration
                command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True
            )


# --- memory of a process -----------------------------------------------------------------


def _status_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise LookupError(name)


def rss_mib(pid: int) -> float:
    return _status_kib(pid, "VmRSS") / 1024


def reset_peak(pid: int) -> bool:
    """Reset a process's peak resident size (VmHWM); False where the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_mib(pid: int) -> float:
    return _status_kib(pid, "VmHWM") / 1024


# --- an HTTP client -------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class Client:
    """One visitor with its own cookies, redirects not followed: a fresh connection a request,
    or with ``keep_alive`` one connection kept open between requests, as a browser does."""

    def __init__(self, port: int, timeout: float = 60.0, keep_alive: bool = False) -> None:
        self.port = port
        self.timeout = timeout
        self.keep_alive = keep_alive
        self.cookies: dict[str, str] = {}
        self._connection: http.client.HTTPConnection | None = None

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {**({} if self.keep_alive else {"Connection": "close"}), **(extra or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return headers

    def _remember(self, headers: http.client.HTTPMessage) -> None:
        for header in headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        if self.keep_alive:
            reply = self._on_kept_connection(method, path, body, headers)
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                reply = self._exchange(connection, method, path, body, headers)
            finally:
                connection.close()
        self._remember(reply.headers)
        return reply

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] | None,
        headers: dict[str, str] | None,
    ) -> Reply:
        connection.request(method, path, body=body, headers=self.headers(headers))
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())

    def _on_kept_connection(
        self, method: str, path: str, body: bytes | Iterable[bytes] | None, headers: dict[str, str] | None
    ) -> Reply:
        """A request on the kept connection; if the server had closed it meanwhile (its keep-alive
        timeout), once more on a new one, as browsers do. A body given as pieces is sent once only."""
        reused = self._connection is not None
        if self._connection is None:
            self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            return self._exchange(self._connection, method, path, body, headers)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            if not reused or not (body is None or isinstance(body, bytes)):
                raise
            self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            return self._exchange(self._connection, method, path, body, headers)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the kept connection, if there is one."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post_form(self, path: str, fields: list[tuple[str, str]]) -> Reply:
        content_type, body = multipart(fields)
        return self.request("POST", path, body, {"Content-Type": content_type})

    def submit_form(self, page: str, fields: list[tuple[str, str]]) -> Reply:
        """GET a form, then POST it with its CSRF token, as a browser would."""
        return self.post_form(page, [("csrf_token", csrf_token(self.get(page).text)), *fields])

    def login(self, email: str, password: str = PASSWORD) -> None:
        reply = self.submit_form("/officer/login", [("email", email), ("password", password)])
        if reply.status != 303:
            raise RuntimeError(f"officer login failed with {reply.status}")


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    if not match:
        raise RuntimeError("the page has no CSRF token")
    return match.group(1) or match.group(2)


REPORT_FIELDS = [
    ("category", "caseloads"),
    ("what_happened", "Caseloads are far beyond safe limits; visits are being missed."),
    ("when_where", "Since the spring, in the east locality team"),
    ("immediate_risk", "no"),
    ("raised_before", "no"),
]


def multipart(fields: list[tuple[str, str]], boundary: str | None = None) -> tuple[str, bytes]:
    boundary = boundary or "----bench" + secrets.token_hex(12)
    body = b"".join(_field(boundary, name, value) for name, value in fields) + f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def _field(boundary: str, name: str, value: str) -> bytes:
    return f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()


def multipart_with_file(
    fields: list[tuple[str, str]],
    field_name: str,
    filename: str,
    content_type: str,
    data: Iterable[bytes],
    size: int,
) -> tuple[str, int, Iterator[bytes]]:
    """A multipart body whose one file is streamed from ``data``: content type, length, pieces."""
    boundary = "----bench" + secrets.token_hex(12)
    head = (
        b"".join(_field(boundary, name, value) for name, value in fields)
        + (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
    )
    tail = f"\r\n--{boundary}--\r\n".encode()

    def pieces() -> Iterator[bytes]:
        yield head
        yield from data
        yield tail

    return f"multipart/form-data; boundary={boundary}", len(head) + size + len(tail), pieces()


def pattern(size: int, piece: int = MB) -> Iterator[bytes]:
    """``size`` bytes that do not compress (one random block, repeated), in pieces of ``piece`` bytes."""
    block = secrets.token_bytes(piece)
    sent = 0
    while sent < size:
        yield block if size - sent >= piece else block[: size - sent]
        sent += min(piece, size - sent)


class PatternReader:
    """A read(n) file over :func:`pattern`'s bytes: the source of the machine-limit measurements."""

    def __init__(self, size: int) -> None:
        self.block = secrets.token_bytes(MB)
        self.remaining = size
        self.offset = 0

    def read(self, n: int = -1) -> bytes:
        n = self.remaining if n < 0 else min(n, self.remaining)
        out = bytearray()
        while len(out) < n:
            take = min(n - len(out), MB - self.offset)
            out += self.block[self.offset : self.offset + take]
            self.offset = (self.offset + take) % MB
        self.remaining -= n
        return bytes(out)


# --- RESULTS.md --------------------------------------------------------------------------------


def machine_line() -> str:
    return (
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {CORES} cores ({platform.machine()}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}); "
        f"load average at the end {_load_average()}."
    )


def _load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the (shared) machine was."""
    try:
        return ", ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


HEADER = """# Benchmark results

Written by `make bench` (`bench/run.py`); each benchmark rewrites its own section.
The machine is shared and noisy: compare figures within one section (each
measures its limit in the same run), and see the load average each section
records. Large files and scratch instances live under `bench/out/` (removed
afterwards); PostgreSQL figures use scratch databases (`whistle_bench`, and one a size for the list).
"""


def write_section(name: str, title: str, body: str, results: Path = RESULTS) -> None:
    """Replace (or add) one benchmark's section of RESULTS.md, leaving the others as they are."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    section = f"{start}\n## {title}\n\n{machine_line()}\n\n{body.strip()}\n{end}"
    current = results.read_text() if results.exists() else HEADER
    if start in current and end in current:
        before, rest = current.split(start, 1)
        updated = before + section + rest.split(end, 1)[1]
    else:
        updated = current.rstrip("\n") + "\n\n" + section + "\n"
    results.write_text(updated)


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"
