"""``GET /health``: whether this process can serve, for a load balancer or a monitor.

It answers ``ok`` (200) when the process can reach its database, make files in
its file store and reach its rate-limit storage (Redis, where one is set), and
``unavailable`` (503) when any of them fails. The answer names no part and no
version, since the address is public on the reporter's side too; which part
failed goes to the log, for the operator. Both halves of a split deployment
serve it. It opens no session and sets no cookie, and it has no rate limit: a
limit would make a busy site look down.
"""

from __future__ import annotations

import logging

from flask import Flask, Response

from whistle.services import maintenance
from whistle.web.limits import limiter
from whistle.web.runtime import db, runtime

log = logging.getLogger("whistle")


def health() -> Response:
    failing = maintenance.unavailable(db(), runtime().store)
    if not limiter.storage.check():
        failing.append("rate-limit storage")
    if failing:
        log.error("health check: %s unavailable", ", ".join(failing))
    text, status = ("unavailable\n", 503) if failing else ("ok\n", 200)
    response = Response(text, status, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response


def install(app: Flask) -> None:
    app.add_url_rule("/health", "health", health)
