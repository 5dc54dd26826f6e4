"""The forms a flood keeps posting take fair turns, so that they cannot take every core.

One attacker asking again the moment each answer comes can keep as many
requests running as it has threads, and every other page then waits for its
share of the cores. Posts to the receipt form and the login form, and the
sealing of a new report, run in a few slots per process (one a core) with a
queue for each kind (``services.turns``): a flood waits its turn there, costing
a thread and no CPU, while pages that need no turn are served at once. A
person with a right receipt or password waits behind at most one turn of each
other kind, and the flood's own requests of their kind ahead of them.

A request's body is read before it queues, so that a client sending it slowly
holds no slot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, current_app, request

from whistle.services.turns import FairQueues, Work

View = TypeVar("View", bound=Callable[..., Any])


def install(app: Flask, slots: int, wait_seconds: float) -> None:
    app.extensions["whistle.turns"] = FairQueues(slots, wait_seconds)


@contextmanager
def turn(kind: Work) -> Iterator[None]:
    """Run the block in this app's slots, after waiting in the queue of its kind."""
    queues: FairQueues = current_app.extensions["whistle.turns"]
    with queues.turn(kind):
        yield


def posts_in_turn(kind: Work) -> Callable[[View], View]:
    """A view whose POSTs run in turn (its body read first); other methods run at once."""

    def decorate(view: View) -> View:
        @wraps(view)
        def in_turn(*args: Any, **kwargs: Any) -> Any:
            if request.method != "POST":
                return view(*args, **kwargs)
            request.form  # noqa: B018 - the whole body is read here, before queueing
            with turn(kind):
                return view(*args, **kwargs)

        return in_turn  # type: ignore[return-value]

    return decorate
