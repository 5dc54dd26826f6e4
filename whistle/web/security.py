"""Security headers on every response, error pages and static files included."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from urllib.parse import quote

from flask import Flask, Response, abort, request
from werkzeug.exceptions import SecurityError
from werkzeug.sansio.utils import host_is_trusted

from whistle.web.runtime import runtime

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
#: Downloads of attachments get a policy that runs nothing at all.
SANDBOX_POLICY = "default-src 'none'; sandbox"
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), "
    "payment=(), usb=(), interest-cohort=(), browsing-topics=()"
)


def content_disposition(filename: str) -> str:
    """``attachment`` with the file's name (RFC 6266): an ASCII fallback, and the
    exact name as ``filename*`` when it is not plain ASCII."""
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    fallback = "".join(c for c in fallback if c.isprintable() and c not in '"\\;') or "file"
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers["Permissions-Policy"] = PERMISSIONS_POLICY
    headers["Cache-Control"] = "no-store"
    headers["Pragma"] = "no-cache"
    if request.is_secure:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    onion = onion_location()
    if onion:
        headers["Onion-Location"] = onion
    return response


def onion_location() -> str | None:
    """This page's address on the onion service (the ``onion_location`` setting), for Tor
    Browser to offer; None when there is none, or when the request came through it."""
    onion = runtime().settings.onion_location.rstrip("/")
    # The Host header as given (request.host would refuse an untrusted one again here).
    host = request.environ.get("HTTP_HOST", "").partition(":")[0].lower()
    if not onion or host.endswith(".onion"):
        return None
    path = quote(request.script_root + request.path, safe="/:@!$&'()*+,;=-._~")
    query = request.query_string.decode("latin-1")
    return f"{onion}{path}?{quote(query, safe='=&+%/:@!$,;-._~')}" if query else f"{onion}{path}"


def trusted_hosts_check(hosts: list[str]) -> Callable[[], None]:
    """Refuse a Host (or, behind a trusted proxy, X-Forwarded-Host) that is not ours.

    Checked here rather than with Flask's TRUSTED_HOSTS, which refuses the host
    while the request context is being set up, before any error page can be built.
    """

    def check() -> None:
        if not host_is_trusted(request.host, hosts):
            raise SecurityError("untrusted host")

    return check


def refuse_raw_control_characters() -> None:
    """A browser percent-encodes control characters in a query; one sent raw is refused here,
    before routing can echo it into a redirect's Location header (where Werkzeug would fail)."""
    if any(byte < 0x20 or byte == 0x7F for byte in request.query_string):
        abort(400)


def install(app: Flask, trusted_hosts: str = "") -> None:
    app.before_request(refuse_raw_control_characters)
    hosts = [host.strip() for host in trusted_hosts.split(",") if host.strip()]
    if hosts:
        app.before_request(trusted_hosts_check(hosts))
    app.after_request(add_security_headers)
