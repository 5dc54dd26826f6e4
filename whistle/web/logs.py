"""Logging without a trace of the reporter.

Werkzeug's development server starts every request line with the client's
address and the exact time. The filter here blanks both before anything is
written; gunicorn is given an access-log format without them (see the README).
"""

from __future__ import annotations

import logging
import re

_ADDRESS_AND_TIME = re.compile(r"^\S+ - - \[[^\]]*\] ")


class NoClientAddress(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _ADDRESS_AND_TIME.sub("- - - ", record.msg)
        return True


def install() -> None:
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, NoClientAddress) for f in logger.filters):
        logger.addFilter(NoClientAddress())
