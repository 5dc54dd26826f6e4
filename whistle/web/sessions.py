"""Flask's ``session``, kept server-side and sealed (see services.sessions).

Only ``<id>.<key>`` travels in the cookie: HttpOnly, SameSite=Strict, Secure
behind HTTPS, and without an expiry date, so the browser forgets it on close.
No cookie is set until something is stored (the landing page sets none).

A session that holds nothing but its CSRF token (a form merely loaded, the
report form above all) is kept in the cookie alone, signed, and writes no row:
a row written when someone opens the report form would date their visit.

The session is opened when a request first uses it, not when the request
starts (:class:`LazySessionContext`): a page that needs none, and a request
refused by a rate limit, never touch the session store.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, Response, g
from flask.ctx import RequestContext
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import NullSession, SessionInterface, SessionMixin
from itsdangerous import BadSignature, URLSafeSerializer
from werkzeug.datastructures import CallbackDict

from whistle.models import SessionKind
from whistle.services import sessions
from whistle.web.runtime import Runtime

COOKIE_NAME = "whistle"
#: A cookie that carries a signed CSRF token only, rather than a server-side session's id and key.
TOKEN_ONLY = "csrf."  # noqa: S105 - a cookie prefix, not a secret
_TOKEN_KEYS = {"csrf_token"}


class SealedSession(CallbackDict[str, Any], SessionMixin):
    def __init__(self, data: dict[str, Any] | None = None, cookie: str | None = None, refresh: bool = False):
        def on_update(_self: Any) -> None:
            self.modified = True

        super().__init__(data or {}, on_update)
        self.cookie = cookie
        self.refresh = refresh
        self.modified = False
        self.discard_cookie: str | None = None

    def regenerate(self) -> None:
        """Start a new session id (at login), so an old id is worth nothing."""
        self.discard_cookie = self.cookie
        self.cookie = None
        self.modified = True


class SealedSessionInterface(SessionInterface):
    serializer = TaggedJSONSerializer()

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def _signer(self) -> URLSafeSerializer:
        return URLSafeSerializer(self.runtime.settings.secret_key, salt="whistle-csrf-only-session")

    def _token_only(self, cookie: str) -> SealedSession:
        """The token of a cookie-only session, which lasts as long as a reporter's idle limit
        from the last page that used it, as a server-side session would."""
        try:
            signed = self._signer().loads(cookie[len(TOKEN_ONLY) :])
        except BadSignature:
            return SealedSession()
        if not (isinstance(signed, list) and len(signed) == 2 and isinstance(signed[1], dict)):
            return SealedSession()
        until, data = signed
        if (
            not isinstance(until, int)
            or until <= self.runtime.clock.now().timestamp()
            or set(data) - _TOKEN_KEYS
        ):
            return SealedSession()
        return SealedSession(data)

    def _idle(self, data: dict[str, Any]) -> Any:
        return (
            self.runtime.officer_idle
            if data.get("kind") == SessionKind.OFFICER
            else self.runtime.reporter_idle
        )

    def open_session(self, app: Flask, request: Request) -> SealedSession:
        cookie = request.cookies.get(COOKIE_NAME)
        if not cookie:
            return SealedSession()
        if cookie.startswith(TOKEN_ONLY):
            return self._token_only(cookie)
        now = self.runtime.clock.now()
        with self.runtime.session_factory() as db, db.begin():
            found = sessions.load(db, cookie, now)
        if found is None:
            return SealedSession()
        payload, expires = found
        data = self.serializer.loads(payload.decode())
        return SealedSession(data, cookie, sessions.needs_refresh(expires, self._idle(data), now))

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, SealedSession)
        if not (session or session.cookie or session.discard_cookie):
            return  # nothing stored, nothing to end: no need to open the database
        if g.get("database_unavailable"):
            return  # the page that says so: the session stays as it was until the database is back
        secure = self.runtime.settings.secure_cookies
        if session.cookie is None and not session.discard_cookie and set(session) <= _TOKEN_KEYS:
            # Signed again on every page that used it, so its idle limit runs from the last one.
            until = int((self.runtime.clock.now() + self.runtime.reporter_idle).timestamp())
            token_only = TOKEN_ONLY + self._signer().dumps([until, dict(session)])
            response.set_cookie(
                COOKIE_NAME, token_only, path="/", secure=secure, httponly=True, samesite="Strict"
            )
            response.vary.add("Cookie")
            return
        with self.runtime.session_factory() as db, db.begin():
            if session.discard_cookie:
                sessions.end(db, session.discard_cookie)
            if not session:
                if session.cookie:
                    sessions.end(db, session.cookie)
                    response.delete_cookie(
                        COOKIE_NAME, path="/", secure=secure, samesite="Strict", httponly=True
                    )
                return
            if not (session.modified or session.refresh or session.cookie is None):
                return
            kind = session.get("kind")
            cookie = sessions.save(
                db,
                session.cookie,
                self.serializer.dumps(dict(session)).encode(),
                SessionKind(kind) if kind else None,
                session.get("officer_id"),
                self._idle(session),
                self.runtime.clock.now(),
            )
        if cookie is None:
            response.delete_cookie(COOKIE_NAME, path="/", secure=secure, samesite="Strict", httponly=True)
            return
        response.set_cookie(COOKIE_NAME, cookie, path="/", secure=secure, httponly=True, samesite="Strict")
        response.vary.add("Cookie")


#: What a request context holds until its session is first used (a null session is never saved).
_NOT_OPENED = NullSession()


class LazySessionContext(RequestContext):
    """A request context that opens the session on first use rather than when it is pushed.

    Flask opens the session as the request starts, before routing or any
    ``before_request`` function: with a cookie, that is a database query and a
    decryption for every request, even one that a rate limit turns away or a
    static file. Here ``flask.session`` opens it the first time it is read; a
    session never opened is never saved (Flask saves no null session).
    """

    def push(self) -> None:
        if self._session is None:
            self._session = _NOT_OPENED  # Flask's push() opens the session only when this is None
        super().push()

    @property
    def session(self) -> SessionMixin:
        if self._session is _NOT_OPENED:
            interface = self.app.session_interface
            opened = interface.open_session(self.app, self.request)
            self._session = interface.make_null_session(self.app) if opened is None else opened
        return super().session
