"""Logging without a trace of the reporter.

Werkzeug's development server starts every request line with the client's
address and the exact time. The filter here blanks both before anything is
written; gunicorn is given an access-log format without them (see the README).
"""

from __future__ import annotations

import logging
import re
import sys

from werkzeug import serving

_ADDRESS_AND_TIME = re.compile(r"^\S+ - - \[[^\]]*\] ")


class NoClientAddress(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _ADDRESS_AND_TIME.sub("- - - ", record.msg)
        return True


def _handle_error(_server: object, _request: object, _client_address: object) -> None:
    """socketserver prints the client's address with a failed request; say only what failed."""
    kind = sys.exc_info()[0]
    logging.getLogger("werkzeug").error("error while handling a request: %s", kind.__name__ if kind else "?")


def install() -> None:
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, NoClientAddress) for f in logger.filters):
        logger.addFilter(NoClientAddress())
    # The development server (``whistle run``) reports broken requests through
    # socketserver's handle_error, which prints the client's address to stderr.
    serving.BaseWSGIServer.handle_error = _handle_error  # type: ignore[method-assign,assignment]
