"""Whistle: a speak-up portal where everything a reporter provides is sealed at rest."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from flask.ctx import RequestContext
from flask.sansio.blueprints import Blueprint
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from whistle import audit
from whistle.config import Settings
from whistle.db import make_engine, make_session_factory
from whistle.shipped import folder

csrf = CSRFProtect()


class Whistle(Flask):
    def log_exception(self, exc_info: Any) -> None:
        from whistle.web.errors import log_exception_kind

        log_exception_kind(exc_info)

    def request_context(self, environ: Any) -> RequestContext:
        """A context that opens the session when a request first uses it (see web.sessions)."""
        from whistle.web.sessions import LazySessionContext

        return LazySessionContext(self, environ)

    def register_blueprint(self, blueprint: Blueprint, **options: Any) -> None:
        """Register a blueprint if it belongs to the interface this process serves
        (the ``interface`` setting: a split deployment, see whistle.web.interfaces)."""
        from whistle.web.interfaces import serves

        if serves(self.config.get("WHISTLE_INTERFACE", "all"), blueprint.name):
            super().register_blueprint(blueprint, **options)


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the app for an instance folder (``WHISTLE_INSTANCE``, or ./instance)."""
    from whistle.services import maintenance
    from whistle.services.context import configure_derivations
    from whistle.web import (
        account,
        admin,
        dates,
        errors,
        health,
        logs,
        markdown,
        officer,
        oversight,
        queues,
        reporter,
        security,
        setup,
    )
    from whistle.web.interfaces import choose_interface
    from whistle.web.limits import limiter, storage_options
    from whistle.web.runtime import (
        PublicIdConverter,
        Runtime,
        close_request,
        finish_request,
        organisation,
    )
    from whistle.web.sessions import SealedSessionInterface
    from whistle.web.uploads import WhistleRequest

    logs.install()
    settings = settings or Settings.load(**overrides)
    app = Whistle(
        __name__,
        instance_path=str(settings.instance_path),
        template_folder=str(folder("templates")),
        static_folder=str(folder("static")),
    )
    app.request_class = WhistleRequest
    app.url_map.converters["public_id"] = PublicIdConverter
    choose_interface(app, settings.interface)
    if settings.proxy_count:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=0,
            x_proto=settings.proxy_count,
            x_host=settings.proxy_count,
            x_port=0,
            x_prefix=0,
        )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.request_limit,
        MAX_FORM_MEMORY_SIZE=4 * 1024 * 1024,
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        SESSION_COOKIE_SAMESITE="Strict",
        WTF_CSRF_TIME_LIMIT=None,  # the session's own idle limit bounds a token's life
        # Pages send no Referer (Referrer-Policy: no-referrer), so Flask-WTF's HTTPS
        # referrer check would refuse every form; the token and the SameSite=Strict
        # cookie are the defence against cross-site requests.
        WTF_CSRF_SSL_STRICT=False,
    )
    slots = settings.kdf_slots or os.cpu_count() or 2
    configure_derivations(slots, settings.kdf_wait_seconds)
    queues.install(app, slots, settings.kdf_wait_seconds)
    engine = make_engine(settings.database_url)
    sessions_info = {audit.TIME_KEY: settings.organisation_public_key}
    rt = Runtime.build(settings, engine, make_session_factory(engine, sessions_info))
    app.extensions["whistle"] = rt
    with rt.session_factory() as db, db.begin():
        maintenance.sweep(db, rt.store, rt.clock.now())  # what `whistle maintain` does hourly
    app.session_interface = SealedSessionInterface(rt)
    app.config["RATELIMIT_STORAGE_URI"] = settings.rate_limit_storage
    app.config["RATELIMIT_STORAGE_OPTIONS"] = storage_options(settings)
    limiter.init_app(app)
    csrf.init_app(app)
    csrf.exempt(reporter.new_report)
    csrf.exempt(reporter.add_message)
    # Checked in the view, after its rate limits: a refused guess costs no session lookup.
    csrf.exempt(reporter.follow_up)

    app.register_blueprint(reporter.bp)
    app.register_blueprint(officer.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(setup.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(oversight.bp)
    app.after_request(finish_request)
    app.teardown_request(close_request)
    security.install(app, settings.trusted_hosts)
    errors.install(app)
    health.install(app)
    app.jinja_env.filters["markdown"] = markdown.render
    dates.install(app)
    app.context_processor(lambda: {"organisation_name": organisation()["organisation_name"]})
    return app
