"""Error pages: plain words, the right status, never the text of an exception."""

from __future__ import annotations

import logging

from flask import Flask, current_app, g, render_template, request
from limits.errors import StorageError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, SecurityError
from werkzeug.sansio.response import Response

from whistle.services.errors import ServerBusy
from whistle.web.runtime import known_organisation, recent_organisation

log = logging.getLogger("whistle")
RETRY_AFTER_SECONDS = 10
#: When the rate-limit storage or the database does not answer, a visitor is asked to wait this long.
UNAVAILABLE_RETRY_SECONDS = 60
#: At most this many different error pages are kept rendered (a few dozen are ever made).
KEPT_PAGES = 256

MESSAGES = {
    400: ("Something in that request was not right", "Please go back and try again."),
    403: ("You cannot do that", "If you think you should be able to, ask an administrator."),
    404: ("Page not found", "The address may have been mistyped, or the page no longer exists."),
    405: ("That is not possible here", "Please go back and use the page's own buttons."),
    413: (
        "That was too large to send",
        "The files together were larger than this portal accepts. Go back, choose fewer "
        "or smaller files, and send again. Your text is still in the page you came from "
        "if you use the browser's back button.",
    ),
    429: ("Too many attempts", "Please wait a little before trying again."),
    500: ("Something went wrong on our side", "Nothing you did caused this. Please try again later."),
    503: (
        "The portal is busy",
        "Nothing was lost: go back and send the page again in a few seconds.",
    ),
}


def error_page(status: int, title: str, advice: str) -> str:
    """An error page, rendered once and then kept for this app.

    A flood is answered with refusals (429, 503): each must cost as little as
    possible, so no template is rendered and no query is made for it. The page
    has the organisation's name as this process read it recently (see
    ``recent_organisation``); the security headers are added to every response
    as usual.
    """
    name = recent_organisation()["organisation_name"]
    pages: dict[tuple[str, ...], str] = current_app.extensions["whistle.error_pages"]
    key = (str(status), title, advice, name, request.script_root)
    page = pages.get(key)
    if page is None:
        page = render_template("errors/error.html", title=title, advice=advice, status=status)
        if len(pages) >= KEPT_PAGES:
            pages.clear()
        pages[key] = page
    return page


def render_error(status: int) -> tuple[str, int]:
    title, advice = MESSAGES.get(status, MESSAGES[500] if status >= 500 else MESSAGES[400])
    return error_page(status, title, advice), status


def handle_http(error: HTTPException) -> tuple[str, int]:
    return render_error(error.code or 500)


def wait_text(seconds: int) -> str:
    """A wait in whole minutes, for a person: "a minute", "3 minutes"."""
    minutes = max(1, -(-seconds // 60))
    return "a minute" if minutes == 1 else f"{minutes} minutes"


def handle_too_many(error: HTTPException) -> Response | tuple[str, int, dict[str, str]]:
    """A limit was hit: the page the form made for it (its typed text kept), or a page of our own."""
    if error.response is not None:
        return error.response
    from whistle.web.limits import seconds_until_retry

    return too_many(seconds_until_retry())


def too_many(seconds: int) -> tuple[str, int, dict[str, str]]:
    """The page of a limit that was hit, saying when to try again."""
    title, _advice = MESSAGES[429]
    advice = (
        f"For everyone's safety, this is limited. Please try again in {wait_text(seconds)}. "
        "Nothing has been lost."
    )
    return error_page(429, title, advice), 429, {"Retry-After": str(seconds)}


def handle_untrusted_host(_error: SecurityError) -> tuple[str, int]:
    """A Host header that is not one of ``trusted_hosts`` (links on the page are relative)."""
    title, _advice = MESSAGES[400]
    return error_page(400, title, "This portal does not answer to that address."), 400


def handle_busy(_error: ServerBusy) -> tuple[str, int, dict[str, str]]:
    page, status = render_error(503)
    return page, status, {"Retry-After": str(RETRY_AFTER_SECONDS)}


def handle_limits_unavailable(_error: StorageError) -> tuple[str, int, dict[str, str]]:
    """The rate-limit storage (Redis) does not answer: the limited forms (receipt, login,
    submission) are refused rather than run without a limit, with a page that says so."""
    log.error("rate-limit storage unavailable")
    return _cannot_take_this(
        "Nothing was sent and nothing was lost: go back, and send the page again in a minute."
    )


def _cannot_take_this(advice: str) -> tuple[str, int, dict[str, str]]:
    """A 503 for a part of the portal that does not answer: a visitor should send again shortly."""
    page = error_page(503, "The portal cannot take this right now", advice)
    return page, 503, {"Retry-After": str(UNAVAILABLE_RETRY_SECONDS)}


def handle_unexpected(error: InternalServerError) -> tuple[str, int] | tuple[str, int, dict[str, str]]:
    # An error after the view (the commit at the end of the request) reaches here, not the
    # handler of its own kind.
    if isinstance(error.original_exception, OperationalError):
        return handle_database_unavailable(error.original_exception)
    return render_error(500)


def handle_database_unavailable(error: OperationalError) -> tuple[str, int, dict[str, str]]:
    """The database does not answer (down, unreachable, out of space, or locked for too long).

    A 503, which tells a load balancer and a monitor what it is, where a 500
    would say our code failed; and a page that makes no query of its own. The
    reporter is told to send the page again, and that their words are still in
    it. The page does not promise that nothing was kept: the session is saved
    after the request's work is committed, and may be what failed.

    The log gives the driver's kind of error (a lost connection, a statement
    timeout, a limit of the database), never its message, which may quote
    the statement and its values.
    """
    log.error("database unavailable (%s)", type(error.orig).__name__)
    g.database_unavailable = True  # nor is the session saved with this page (web.sessions)
    # The request's settings from what this process last read: the page and its template then
    # take the organisation's name from there, not from the database.
    known_organisation()
    return _cannot_take_this(
        "Go back, and send the page again in a minute: what you typed is still in the page "
        "you came from if you use the browser's back button."
    )


def log_exception_kind(
    exc_info: tuple[type[BaseException], BaseException, object] | tuple[None, None, None],
) -> None:
    """Log the kind of an unhandled error only: its text or a traceback's locals
    may carry what a reporter wrote, and the request line may carry an address."""
    kind = exc_info[0].__name__ if exc_info[0] else "unknown"
    log.error("unhandled error: %s", kind)


def handle_undecodable(_error: UnicodeDecodeError) -> tuple[str, int]:
    """A query string of bytes that are not UTF-8: a bad request, not a failure of ours."""
    return render_error(400)


def install(app: Flask) -> None:
    app.extensions["whistle.error_pages"] = {}
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(UnicodeDecodeError, handle_undecodable)
    app.register_error_handler(SecurityError, handle_untrusted_host)
    app.register_error_handler(InternalServerError, handle_unexpected)
    app.register_error_handler(ServerBusy, handle_busy)
    app.register_error_handler(StorageError, handle_limits_unavailable)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(429, handle_too_many)
