"""Split deployment: one process may serve only the reporter's interface or only the officers'.

The ``interface`` setting chooses at start-up: ``all`` (the default) serves
everything; ``reporter`` registers the reporter's blueprint only; ``officer``
registers every other blueprint (officer area, administration, accounts, first
run) and not the reporter's. Static files and error pages are served by both.
The same code and the same instance serve both halves, so the officer side
can be reachable from the internal network only.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import Flask, url_for

#: The blueprints of the reporter's interface; every other blueprint is the officers'.
REPORTER_BLUEPRINTS = frozenset({"reporter"})
#: Where a link to the other interface leads instead (a page such as the error
#: page is shared, and its "start page" is this process's own).
HOME = {"reporter": "reporter.index", "officer": "officer.list_reports"}


def serves(interface: str, blueprint: str) -> bool:
    """Whether a process serving ``interface`` registers the blueprint named ``blueprint``."""
    if interface == "all":
        return True
    return (blueprint in REPORTER_BLUEPRINTS) == (interface == "reporter")


def choose_interface(app: Flask, interface: str) -> None:
    """Choose the interface before any blueprint is registered (see ``Whistle.register_blueprint``)."""
    app.config["WHISTLE_INTERFACE"] = interface
    if interface != "all":
        app.url_build_error_handlers.append(partial(_link_home, interface))


def _link_home(interface: str, error: Exception, endpoint: str, values: dict[str, Any]) -> str:
    """A link to a page of the interface this process does not serve leads to its own start page."""
    blueprint, dot, _view = endpoint.partition(".")
    if not dot or serves(interface, blueprint):
        raise error  # a genuine mistake, not a page of the other interface
    return url_for(HOME[interface])
