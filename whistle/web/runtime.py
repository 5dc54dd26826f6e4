"""What a running app holds: settings, database, store, keys; and the per-request session."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, g, url_for
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.routing import BaseConverter

from whistle.config import Settings
from whistle.services import settings as settings_service
from whistle.services.context import Clock, Keyring, Policy
from whistle.storage import SealedStore

#: How old the organisation's settings may be on a page that must cost no query
#: (see ``recent_organisation``).
RECENT_SECONDS = 30.0


class LastRead:
    """The administrators' settings as this process last read them, and when (a monotonic time)."""

    def __init__(self) -> None:
        self.value: tuple[float, dict[str, Any]] | None = None


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Any]
    store: SealedStore
    keyring: Keyring
    policy: Policy
    clock: Clock
    organisation_read: LastRead = field(default_factory=LastRead, compare=False, repr=False)

    @classmethod
    def build(cls, settings: Settings, engine: Engine, session_factory: sessionmaker[Any]) -> Runtime:
        return cls(
            settings=settings,
            engine=engine,
            session_factory=session_factory,
            store=SealedStore(settings.files_path),
            keyring=Keyring(
                pepper=settings.pepper,
                organisation_public_key=settings.organisation_public_key,
                kdf=settings.kdf,
            ),
            policy=Policy(
                max_files=settings.max_files,
                max_files_per_case=settings.max_files_per_case,
                max_file_bytes=settings.max_file_bytes,
                max_clean_bytes=settings.max_clean_bytes,
                acknowledge_days=settings.acknowledge_days,
                feedback_months=settings.feedback_months,
            ),
            clock=Clock(ZoneInfo(settings.timezone)),
        )

    @property
    def officer_idle(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.settings.officer_idle_minutes)

    @property
    def reporter_idle(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.settings.reporter_idle_minutes)


class PublicIdConverter(BaseConverter):
    """A random public id in a URL: 32 lower-case hex digits, anything else is a 404."""

    regex = "[0-9a-f]{32}"


def runtime() -> Runtime:
    value: Runtime = current_app.extensions["whistle"]
    return value


def db() -> Session:
    """The request's database session; the web layer commits it once, at the end."""
    if "db" not in g:
        g.db = runtime().session_factory()
    session: Session = g.db
    return session


def policy() -> Policy:
    """The organisation's policy, with the periods administrators set in the app."""
    if "policy" not in g:
        g.policy = settings_service.policy(db(), runtime().policy)
    value: Policy = g.policy
    return value


def organisation() -> dict[str, Any]:
    """The settings administrators change in the app, read once per request."""
    if "organisation" not in g:
        rt = runtime()
        g.organisation = settings_service.load(db(), {"organisation_name": rt.settings.organisation_name})
        rt.organisation_read.value = (time.monotonic(), g.organisation)
    value: dict[str, Any] = g.organisation
    return value


def recent_organisation() -> dict[str, Any]:
    """The administrators' settings as read by this request, else as this process last read
    them if that was less than RECENT_SECONDS ago, else read now.

    For pages that must cost no query when many are asked for at once (a refusal
    under a flood): a change by an administrator shows there within RECENT_SECONDS.
    """
    if "organisation" not in g:
        last = runtime().organisation_read.value
        if last is None or time.monotonic() - last[0] > RECENT_SECONDS:
            return organisation()
    return known_organisation()


def known_organisation() -> dict[str, Any]:
    """The administrators' settings as this process last read them, however long ago, or the
    instance's own name: for a page that must make no query (the database is not answering)."""
    if "organisation" not in g:
        rt = runtime()
        last = rt.organisation_read.value
        g.organisation = last[1] if last else {"organisation_name": rt.settings.organisation_name}
    value: dict[str, Any] = g.organisation
    return value


def finish_request(response: Any) -> Any:
    """Commit the request's work if it succeeded; otherwise leave it to be rolled back."""
    session = g.pop("db", None)
    if session is not None:
        try:
            if response.status_code < 400:
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()
    return response


def close_request(_exc: BaseException | None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.rollback()
        session.close()


def public_url(endpoint: str, **values: Any) -> str:
    """The full address of a page as the organisation publishes it (``base_url``), never as
    the request's Host header gives it: a link printed or sent must lead to the real portal."""
    return runtime().settings.base_url.rstrip("/") + url_for(endpoint, **values)
