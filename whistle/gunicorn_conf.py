"""gunicorn settings for Whistle: what ``whistle serve`` runs gunicorn with.

``whistle serve`` is ``gunicorn -c python:whistle.gunicorn_conf whistle.wsgi:app``, after the migrations.

Sizes follow the cores this process may use (WHISTLE_WORKERS, WHISTLE_THREADS
and WHISTLE_BIND override them; docs/deploy.md says more):

- workers: one per core when the rate-limit counters are shared (Redis, the
  ``rate_limit_storage`` setting); one alone while they live in process memory
  (``memory://``, the default), since every worker would count on its own and
  each limit would be multiplied by their number.
- Argon2id derivations (64 MiB and a core each): unless ``kdf_slots`` is set,
  each worker may run cores / workers of them at once, so that all workers
  together use the cores without exhausting memory.
- threads: a worker spends most of its time waiting (for the network: a large
  upload arrives slowly, a download leaves slowly; or in a queue for a
  derivation), so enough that every derivation slot can run, every queue can
  be full and four threads are still left for pages (``turns.threads_for``).

Timeouts: with threads, ``timeout`` only detects a worker that has hung; a
request may take as long as its upload does (nginx in front drops clients that
stall). ``graceful_timeout`` lets uploads in flight finish when the server is
restarted or stopped.

Nothing identifying is logged. There is no access log unless it is asked for
(WHISTLE_ACCESS_LOG=- for standard output, or a file): wherever its lines go,
something (the journal, a log shipper) stamps each with the time, which dates a
reporter's visit. When asked for, it leaves out the client address (%(h)s), the
time (%(t)s), the user agent (%(a)s) and the referrer (%(f)s). gunicorn's own
warning about a malformed request is written without the address it names.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from gunicorn.glogging import Logger

from whistle.services.turns import threads_for


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _instance_settings() -> Any:
    """The instance's settings, or None if they cannot be read (the app then says why at start-up)."""
    from whistle.config import ConfigError, Settings

    try:
        return Settings.load()
    except (ConfigError, ValueError):  # ValueError: a whistle.toml that is not TOML
        return None


cores = _cores()
_settings = _instance_settings()
_shared_limits = _settings is not None and not _settings.rate_limit_storage.startswith("memory")

bind = os.environ.get("WHISTLE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WHISTLE_WORKERS", cores if _shared_limits else 1))
_slots = (_settings.kdf_slots if _settings is not None else 0) or max(1, cores // workers)
threads = int(os.environ.get("WHISTLE_THREADS", threads_for(_slots)))
worker_class = "gthread"

timeout = 60
graceful_timeout = 120
keepalive = 5
# Many Whistle servers may run side by side (hosts, interfaces, tests): none
# takes the user's one gunicornc control socket ($HOME/.gunicorn/gunicorn.ctl).
control_socket_disable = True
umask = 0o077
forwarded_allow_ips = os.environ.get("WHISTLE_FORWARDED_ALLOW_IPS", "127.0.0.1")

_access_log = os.environ.get("WHISTLE_ACCESS_LOG", "off")
accesslog = None if _access_log.lower() in ("", "off", "none") else _access_log
access_log_format = '"%(r)s" %(s)s %(b)s %(M)sms'
errorlog = "-"

#: "Invalid request from ip=192.0.2.1: ..." (and ip=::1, or ip= for a Unix socket).
_CLIENT_ADDRESS = re.compile(r"\bip=\S*?(?=: )")


def _without_client_address(record: logging.LogRecord) -> bool:
    if isinstance(record.msg, str) and "ip=" in record.msg:
        record.msg = _CLIENT_ADDRESS.sub("ip=-", record.msg)
    return True


class NoClientAddressLogger(Logger):
    """gunicorn's logger, minus the client address of its warning about a malformed request,
    and with access-log atoms that name nothing about the client."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.error_log.addFilter(_without_client_address)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        """What an access-log format may show: the request line, status, size and duration.

        gunicorn's own offers the client's address, the time, the user agent, the
        referrer and every header (an operator's format could print them: here they
        come out as "-"), and builds them all for every request, which under a flood
        of refused guesses was a tenth of the server's work.
        """
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        sent = getattr(resp, "sent", None)
        seconds, micros = request_time.seconds, request_time.microseconds
        return {
            "r": f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}",
            "m": environ.get("REQUEST_METHOD"),
            "U": environ.get("PATH_INFO"),
            "H": environ.get("SERVER_PROTOCOL"),
            "s": status,
            "b": str(sent) if sent is not None else "-",
            "B": sent,
            "T": seconds,
            "M": seconds * 1000 + micros // 1000,
            "D": seconds * 1_000_000 + micros,
            "L": f"{seconds}.{micros:06d}",
        }


logger_class = NoClientAddressLogger


def on_starting(server: Any) -> None:
    """Before the workers start, with their number as finally set (the command line wins)."""
    count = server.cfg.workers
    server.log.info("Whistle: %s worker(s) of %s thread(s) on %s core(s)", count, server.cfg.threads, cores)
    if _settings is None:
        return
    if count > 1 and not _shared_limits:
        server.log.warning(
            "Whistle: %s workers count rate limits each in their own memory: set rate_limit_storage "
            "to a Redis server (WHISTLE_RATE_LIMIT_STORAGE=redis://...) so that they share them",
            count,
        )
    if not _settings.kdf_slots and "WHISTLE_KDF_SLOTS" not in os.environ:
        os.environ["WHISTLE_KDF_SLOTS"] = str(max(1, cores // count))  # inherited by the workers
