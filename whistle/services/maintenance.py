"""Housekeeping that keeps the instance tidy after crashes (run at start-up), and the health check's
view of what this process can reach."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from whistle.models import Attachment
from whistle.services import sessions
from whistle.storage import SealedStore, start_of_day

#: Half-written files younger than this may belong to a submission still in
#: flight in another process, so they are never swept.
GRACE = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Swept:
    partial_files: int
    orphaned_files: int
    expired_sessions: int
    #: New files copied into place (see ``SealedStore.settle``).
    settled_files: int = 0


def sweep(db: Session, store: SealedStore, now: dt.datetime) -> Swept:
    """``whistle maintain`` (hourly, and at start-up): settle new files into place, so that no
    file or folder time dates an upload more finely than the hour; remove half-written files,
    sealed files no row refers to, and expired sessions; leave the store's root with its day only.

    A crash between writing an attachment and committing its report leaves a
    sealed file (never plaintext) with no row; it is deleted here once it is
    certainly not a submission still in flight elsewhere.
    """
    settled = store.settle(now.timestamp())
    partial = store.remove_partial(older_than=(now - GRACE).timestamp())
    # Published files carry only their day, so an orphan is swept once its day
    # is over and a whole day more has passed.
    candidates = set(store.names(older_than=start_of_day((now - dt.timedelta(days=1)).timestamp())))
    if candidates:
        referenced = set(db.scalars(select(Attachment.blob_name).where(Attachment.blob_name.in_(candidates))))
        orphans = candidates - referenced
    else:
        orphans = set()
    for name in orphans:
        store.delete(name)
    store.blur_root_time()
    return Swept(partial, len(orphans), sessions.sweep(db, now), settled)


def unavailable(db: Session, store: SealedStore) -> list[str]:
    """The parts of the instance this process cannot use now: "database", "file store"."""
    failing = []
    try:
        db.execute(select(1))
    except SQLAlchemyError:
        db.rollback()
        failing.append("database")
    if not store.writable():
        failing.append("file store")
    return failing
