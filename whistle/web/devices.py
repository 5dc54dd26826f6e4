"""Devices an officer has logged in from: a signed cookie that spares them the wait
that strangers' wrong passwords impose (``officers.check_password_login``).

The cookie names the officer and a random device id, signed with the instance's
secret key, and is sent only to the officer area. It opens nothing: the password
(and code) are still needed. It only says "this officer has logged in here
before", so a flood of wrong passwords for their address does not slow them.
"""

from __future__ import annotations

import datetime as dt

from flask import request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from whistle import crypto
from whistle.web.runtime import runtime

COOKIE_NAME = "whistle_device"
#: How long a device stays known after the officer's last login on it.
KNOWN_FOR = dt.timedelta(days=365)
_PATH = "/officer"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(runtime().settings.secret_key, salt="whistle-officer-device")


def _read() -> dict[str, str] | None:
    cookie = request.cookies.get(COOKIE_NAME)
    if not cookie:
        return None
    try:
        data = _serializer().loads(cookie, max_age=int(KNOWN_FOR.total_seconds()))
    except BadSignature:
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(name), str) for name in ("officer", "id")):
        return None
    return data


def known_officer() -> str | None:
    """The officer (public id) who has logged in from this device before, if any."""
    data = _read()
    return data["officer"] if data else None


def device_id() -> str | None:
    """This device's id, if an officer has logged in from it."""
    data = _read()
    return data["id"] if data else None


def remember(response: Response, officer_public_id: str) -> Response:
    """Mark this device as the officer's (again, so that it stays known a year from now)."""
    data = _read()
    same = data is not None and data["officer"] == officer_public_id
    device = data["id"] if same and data else crypto.new_token()
    response.set_cookie(
        COOKIE_NAME,
        _serializer().dumps({"officer": officer_public_id, "id": device}),
        max_age=int(KNOWN_FOR.total_seconds()),
        path=_PATH,
        secure=runtime().settings.secure_cookies,
        httponly=True,
        samesite="Strict",
    )
    return response
