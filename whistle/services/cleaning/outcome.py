"""What cleaning a file came to, and why a file is kept as it came."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CleanStatus(enum.StrEnum):
    #: Identifying metadata was removed.
    CLEANED = "cleaned"
    #: A supported type, with nothing to remove (still rewritten, or passed through).
    NOTHING_FOUND = "nothing_found"
    #: The reporter asked to keep the file exactly as it is.
    KEPT = "kept"
    #: A type we cannot clean: stored as it is.
    UNSUPPORTED = "unsupported"
    #: Larger than the cleaning limit: stored as it is.
    TOO_LARGE = "too_large"
    #: Looked like a supported type but could not be parsed: stored as it is.
    FAILED = "failed"
    #: Would take more memory or time to clean than a file may (a ZIP or image bomb): stored as it is.
    OVER_BOUNDS = "over_bounds"


@dataclass(frozen=True)
class Outcome:
    """What cleaning the whole bytes of a file came to."""

    status: CleanStatus
    kind: str
    #: The cleaned copy, or None when the bytes are to be kept as they came.
    cleaned: bytes | None = None


class Unsupported(Exception):
    """A type we recognise but do not clean (an encrypted PDF, a camera raw file, a plain ZIP)."""


class BeyondBounds(Exception):
    """Cleaning the file would take more memory or time than a file may."""
