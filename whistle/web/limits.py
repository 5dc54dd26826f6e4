"""Rate limits (Flask-Limiter): never keyed by a client address.

A whistleblowing portal must not key anything on who is asking, and many
reporters share one address (a hospital's network, a Tor exit). So limits are
kept per report whose right receipt is tried, per officer for password resets
(both counted only once a report or an active officer is found, so that a flood
of made-up receipts or emails leaves no counter behind), per officer's known
browser for logins (a login from elsewhere is slowed by
``officers.check_password_login`` instead, so that nobody can keep an officer
out by using up a limit on their account), and globally only if the operator
sets a global limit (a flood would use it up and turn genuine reporters away).
Each key is an HMAC, so no receipt, email address or device id reaches the
limiter's storage (process memory for one process, Redis through
``rate_limit_storage`` when there are several).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from flask_limiter import Limiter
from limits import RateLimitItem, parse

from whistle.config import Settings
from whistle.web import devices
from whistle.web.runtime import runtime

limiter = Limiter(key_func=lambda: "everyone", headers_enabled=False, strategy="moving-window")
_REDIS_SCHEMES = ("redis", "valkey")  # redis, rediss, redis+unix, redis+sentinel, valkey...


def storage_options(settings: Settings) -> dict[str, str | bool]:
    """In Redis, an instance's counters live under its own prefix (several instances may share one
    server); every process of one instance, on every host, must use the same storage and prefix.

    A storage that fails raises limits' own ``StorageError``, whatever the storage, so that the
    limited forms answer with a page of their own (see ``errors.handle_limits_unavailable``).
    """
    options: dict[str, str | bool] = {"wrap_exceptions": True}
    if settings.rate_limit_storage.startswith(_REDIS_SCHEMES):
        options["key_prefix"] = settings.rate_limit_prefix
    return options


def _hashed(label: bytes, value: str) -> str:
    return hmac.new(runtime().settings.secret_key, label + value.encode(), hashlib.sha256).hexdigest()[:24]


def _counted(setting: str, scope: str, public_id: str) -> tuple[RateLimitItem, str, str]:
    return parse(setting), scope, _hashed(scope.encode() + b":", public_id)


def _report_tries(report_public_id: str) -> tuple[RateLimitItem, str, str]:
    return _counted(runtime().settings.receipt_attempts_per_receipt, "receipt-one", report_public_id)


def _reset_tries(officer_public_id: str) -> tuple[RateLimitItem, str, str]:
    return _counted(runtime().settings.login_attempts_per_account, "reset", officer_public_id)


def _hit(counted: tuple[RateLimitItem, str, str]) -> bool:
    item, *identifiers = counted
    return limiter.limiter.hit(item, *identifiers)


def _seconds_left(counted: tuple[RateLimitItem, str, str]) -> int:
    item, *identifiers = counted
    stats = limiter.limiter.get_window_stats(item, *identifiers)
    return max(1, math.ceil(stats.reset_time - time.time()))


def may_open(report_public_id: str) -> bool:
    """Count a try of the right receipt of this report; whether it is within the limit.

    Only receipts that match a report are counted (``reports.open_with_receipt`` asks),
    so a flood of random receipts leaves no counter behind: keyed by the receipt
    typed, it used to leave one per guess, half a kilobyte each, for an hour.
    """
    return _hit(_report_tries(report_public_id))


def seconds_until_open(report_public_id: str) -> int:
    """How long until this report's receipt may be tried again."""
    return _seconds_left(_report_tries(report_public_id))


def may_reset(officer_public_id: str) -> bool:
    """Count a reset tried for this (active) officer; whether it is within the limit. As for
    receipts, a made-up email is never counted, so a flood of them leaves nothing behind."""
    return _hit(_reset_tries(officer_public_id))


def seconds_until_reset(officer_public_id: str) -> int:
    return _seconds_left(_reset_tries(officer_public_id))


def device_key() -> str:
    return _hashed(b"device:", devices.device_id() or "")


def no_known_device() -> bool:
    return devices.device_id() is None


def everyone() -> str:
    return "everyone"


def receipt_limit_global() -> str:
    return runtime().settings.receipt_attempts_global


def login_limit_per_device() -> str:
    return runtime().settings.login_attempts_per_device


def submission_limit() -> str:
    return runtime().settings.submissions_global


def no_receipt_limit_global() -> bool:
    return not runtime().settings.receipt_attempts_global


def no_submission_limit() -> bool:
    return not runtime().settings.submissions_global


receipt_limits = [
    limiter.limit(
        receipt_limit_global,
        key_func=everyone,
        methods=["POST"],
        scope="receipt-all",
        exempt_when=no_receipt_limit_global,
    ),
]
login_limit = limiter.limit(
    login_limit_per_device,
    key_func=device_key,
    methods=["POST"],
    scope="login-device",
    exempt_when=no_known_device,
)
submission_limits = limiter.limit(
    submission_limit, key_func=everyone, methods=["POST"], scope="submit", exempt_when=no_submission_limit
)


def seconds_until_retry() -> int:
    """How long the limit that was just hit has left to run."""
    current = limiter.current_limit
    if current is None:
        return 60
    return max(1, math.ceil(current.reset_at - time.time()))
