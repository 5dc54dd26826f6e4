"""Rate limits (Flask-Limiter): never keyed by a client address.

A whistleblowing portal must not key anything on who is asking, and many
reporters share one address (a hospital's network, a Tor exit). So limits are
per report whose right receipt is tried, global (only if the operator sets one: a flood would use a
global limit up and turn genuine reporters away), per officer account (password resets) or per
officer's known device (logins: a login from elsewhere is slowed by
``officers.check_password_login`` instead, so that nobody can keep an officer
out by using up a limit on their account); each key is an HMAC, so
neither a receipt, an email address nor a device id reaches the limiter's storage
(process memory for one process, Redis through ``rate_limit_storage`` when
there are several).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from flask import request
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


def _report_tries() -> tuple[RateLimitItem, str]:
    return parse(runtime().settings.receipt_attempts_per_receipt), "receipt-one"


def may_open(report_public_id: str) -> bool:
    """Count a try of the right receipt of this report; whether it is within the limit.

    Only receipts that match a report are counted (``reports.open_with_receipt`` asks),
    so a flood of random receipts leaves no counter behind: keyed by the receipt
    typed, it used to leave one per guess, half a kilobyte each, for an hour.
    """
    item, scope = _report_tries()
    return limiter.limiter.hit(item, scope, _hashed(b"report:", report_public_id))


def seconds_until_open(report_public_id: str) -> int:
    """How long until this report's receipt may be tried again."""
    item, scope = _report_tries()
    stats = limiter.limiter.get_window_stats(item, scope, _hashed(b"report:", report_public_id))
    return max(1, math.ceil(stats.reset_time - time.time()))


def device_key() -> str:
    return _hashed(b"device:", devices.device_id() or "")


def no_known_device() -> bool:
    return devices.device_id() is None


def account_key() -> str:
    return _hashed(b"login:", request.form.get("email", "").strip().lower())


def everyone() -> str:
    return "everyone"


def receipt_limit_global() -> str:
    return runtime().settings.receipt_attempts_global


def login_limit_per_account() -> str:
    return runtime().settings.login_attempts_per_account


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
reset_limit = limiter.limit(login_limit_per_account, key_func=account_key, methods=["POST"], scope="login")
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
