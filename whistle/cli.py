"""The ``whistle`` command: ``init``, ``officer add``, ``setup-link``, ``db upgrade``, ``serve`` (gunicorn),
Flask's ``run``;
for cron, ``purge`` (retention), ``notify`` (email to officers) and ``db analyze`` (query statistics)."""

from __future__ import annotations

import os
import sys
from typing import TextIO

import click
from flask import current_app
from flask.cli import FlaskGroup
from sqlalchemy.pool import NullPool

from whistle import audit, create_app
from whistle.config import ConfigError, Settings, create_instance, instance_path_from_env
from whistle.crypto import CryptoError, InvalidCode, export_private_key, import_private_key
from whistle.db import analyze, checkpoint, make_engine, upgrade
from whistle.services import maintenance, notifications, officers, recovery, retention
from whistle.services import settings as settings_service
from whistle.services.errors import OfficerExists, UnknownOfficer, WeakPassword, WrongRecoveryKey
from whistle.web.runtime import Runtime

DEFAULT_SETTINGS = """\
# Whistle instance settings. Every setting can also be given as a WHISTLE_<NAME>
# environment variable. See the README for the full list.
organisation_name = "Our organisation"
base_url = "http://127.0.0.1:5000"
"""


def _create_app() -> object:
    try:
        app = create_app()
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    # A command's database connections close with the command, not at interpreter exit.
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(app.extensions["whistle"].engine.dispose)
    return app


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
@click.version_option(package_name="whistle", message="%(prog)s %(version)s")
def cli() -> None:
    """Whistle, a speak-up portal. WHISTLE_INSTANCE selects the instance folder."""
    # Everything Whistle writes (database, journal, secrets) is for its own user only.
    os.umask(0o077)


def _runtime() -> Runtime:
    rt: Runtime = current_app.extensions["whistle"]
    return rt


@cli.command("init", with_appcontext=False)
@click.option("--if-missing", is_flag=True, help="Do nothing if the instance already exists.")
def init_command(if_missing: bool) -> None:
    """Create the instance folder: secrets, database, organisation recovery key."""
    path = instance_path_from_env()
    try:
        private_key = create_instance(path, DEFAULT_SETTINGS)
    except ConfigError as error:
        if if_missing:
            return
        raise click.ClickException(str(error)) from error
    upgrade(Settings.load(path).database_url)
    click.echo(f"Created a new Whistle instance in {path}.\n")
    click.echo("=" * 72)
    click.echo("ORGANISATION RECOVERY KEY: print this now and keep it offline, in a safe.")
    click.echo("It is shown once and is not stored anywhere. With it, the organisation can")
    click.echo("still open every report if all officers lose their passwords.")
    click.echo("=" * 72)
    click.echo(export_private_key(private_key))
    click.echo("=" * 72)


@cli.group("officer")
def officer_group() -> None:
    """Manage officers."""


@officer_group.command("add")
@click.option("--email", required=True)
@click.option("--name", "display_name", required=True)
@click.option("--admin", is_flag=True, help="Give the officer the administrator role.")
def add_officer(email: str, display_name: str, admin: bool) -> None:
    """Create an officer; the password is read from standard input when it is not a terminal."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    rt = _runtime()
    with rt.session_factory() as db, db.begin():
        try:
            created = officers.create_officer(
                db,
                rt.keyring.kdf,
                email,
                display_name,
                password,
                rt.clock.now(),
                is_admin=admin,
                pepper=rt.keyring.pepper,
            )
        except (WeakPassword, OfficerExists) as error:
            raise click.ClickException(str(error)) from error
    click.echo(f"Officer {created.officer.email} created.")
    click.echo("One-time recovery key (give it to the officer to keep safe; it is not stored):")
    click.echo(created.recovery_code)


@cli.command("setup-link")
def setup_link() -> None:
    """Print a one-time link for the first administrator, if there is no officer yet."""
    rt = _runtime()
    with rt.session_factory() as db, db.begin():
        token = officers.new_setup_token(db, rt.clock.now())
    if token is None:
        return
    click.echo("This instance has no officer yet. Open this link once to become its administrator:")
    click.echo(f"  {rt.settings.base_url.rstrip('/')}/setup/{token}")


@cli.group("audit")
def audit_group() -> None:
    """The audit log."""


@audit_group.command("verify")
def audit_verify() -> None:
    """Check the hash chain; exit non-zero naming the first entry that does not fit."""
    rt = _runtime()
    with rt.session_factory() as db:
        verdict = audit.verify(db)
    if verdict.first_bad is not None:
        raise click.ClickException(
            f"the audit log was changed: entry {verdict.first_bad} does not follow from the one before it"
        )
    if verdict.missing_at_end:
        raise click.ClickException(
            f"the audit log was changed: {verdict.missing_at_end} entries are missing at its end"
        )
    click.echo(f"The audit log is intact: {verdict.entries} entries.")
    click.echo(f"Head hash (note it somewhere else to compare later): {verdict.head.hex()}")


@audit_group.command("times")
@click.option(
    "--key-file", type=click.File("r"), required=True, help="The organisation recovery key, as printed."
)
@click.option("--report", "report", default=None, help="Only the entries about this case (its public id).")
def audit_times(key_file: TextIO, report: str | None) -> None:
    """Print the exact time of each entry, which only the offline recovery key opens."""
    try:
        private_key = import_private_key(key_file.read())
    except InvalidCode as error:
        raise click.ClickException(f"that is not a recovery key: {error}") from error
    rt = _runtime()
    with rt.session_factory() as db:
        try:
            for event, moment in audit.exact_times(db, private_key, report=report):
                when = moment.isoformat() if moment else f"{event.day} (no exact time kept)"
                about = f" {event.report}" if event.report else ""
                click.echo(f"{event.id}\t{when}\t{event.kind}\t{event.actor}{about}")
        except CryptoError as error:
            raise click.ClickException("that recovery key is not this organisation's") from error


@cli.command("recover")
@click.option(
    "--key-file", type=click.File("r"), required=True, help="The organisation recovery key, as printed."
)
@click.option("--officer", "email", required=True, help="The email address of the officer to give access.")
def recover(key_file: TextIO, email: str) -> None:
    """Use the offline organisation recovery key to give an officer every case they are not excluded from."""
    try:
        private_key = import_private_key(key_file.read())
    except InvalidCode as error:
        raise click.ClickException(f"that is not a recovery key: {error}") from error
    rt = _runtime()
    with rt.session_factory() as db, db.begin():
        try:
            result = recovery.recover_access(db, rt.keyring, private_key, email, rt.clock.now())
        except WrongRecoveryKey as error:
            raise click.ClickException("that recovery key is not this organisation's") from error
        except UnknownOfficer as error:
            raise click.ClickException(f"no active officer has the email address {email}") from error
    click.echo(
        f"{email} can now open {result.granted} more case(s); they already held {result.already_held}; "
        f"{result.excluded} were not given because the reporter excluded them."
    )


@cli.group("db")
def db_group() -> None:
    """The database schema."""


def _database_url() -> str:
    try:
        return Settings.load().database_url
    except ConfigError as error:
        raise click.ClickException(str(error)) from error


@db_group.command("upgrade", with_appcontext=False)
def db_upgrade() -> None:
    """Apply every migration the database does not have yet (run it before starting)."""
    upgrade(_database_url())
    click.echo("The database is up to date.")


@cli.command("serve", with_appcontext=False, context_settings={"ignore_unknown_options": True})
@click.argument("gunicorn_options", nargs=-1, type=click.UNPROCESSED)
def serve(gunicorn_options: tuple[str, ...]) -> None:
    """Apply the migrations, then serve with gunicorn and Whistle's settings for it (docs/deploy.md).

    Options are passed to gunicorn (``whistle serve --workers 2``); WHISTLE_BIND
    (127.0.0.1:8000), WHISTLE_WORKERS and WHISTLE_THREADS are read by the settings.
    """
    upgrade(_database_url())
    command = [sys.executable, "-m", "gunicorn", "-c", "python:whistle.gunicorn_conf"]
    os.execv(sys.executable, [*command, *gunicorn_options, "whistle.wsgi:app"])  # noqa: S606


@db_group.command("analyze", with_appcontext=False)
def db_analyze() -> None:
    """Refresh the statistics the database plans queries with (cron: daily)."""
    engine = make_engine(_database_url(), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            analyze(connection)
    finally:
        engine.dispose()
    click.echo("The database's statistics are up to date.")


@cli.command("seed")
@click.option("--cases", "count", type=click.IntRange(1, 1_000_000), required=True, help="How many cases.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes sealing cases (default: a core each).",
)
def seed_command(count: int, workers: int | None) -> None:
    """Fill the instance with sealed demonstration cases; refuses an instance with real reports.

    Seeded cases open for officers like real ones, but no receipt opens them:
    a seeded report can never be followed up by a reporter.
    """
    from whistle.services import seed
    from whistle.services import settings as settings_service
    from whistle.services.errors import NobodyToRead, NotSeedable

    rt = _runtime()
    with rt.session_factory() as db:
        policy = settings_service.policy(db, rt.policy)

    def progress(done: int, wanted: int) -> None:
        click.echo(f"  sealed and stored {done:,} of {wanted:,} cases", err=True)

    try:
        total = seed.seed(
            rt.session_factory,
            rt.keyring,
            policy,
            rt.clock.now(),
            rt.clock.today(),
            count,
            workers=workers or os.cpu_count() or 1,
            progress=progress,
        )
    except (NotSeedable, NobodyToRead) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Added {count:,} demonstration cases; the instance holds {total:,} seeded cases.")


@cli.command("maintain")
def maintain() -> None:
    """Hourly housekeeping (cron): settle new files, sweep leftovers and expired sessions."""
    rt = _runtime()
    with rt.session_factory() as db, db.begin():
        swept = maintenance.sweep(db, rt.store, rt.clock.now())
    checkpoint(rt.engine)
    click.echo(
        f"Settled {swept.settled_files} new file(s); removed {swept.partial_files} half-written and "
        f"{swept.orphaned_files} orphaned file(s) and {swept.expired_sessions} expired session(s)."
    )


@cli.command("purge")
def purge() -> None:
    """Delete closed cases past the retention period (not those on legal hold). Safe to run from cron."""
    rt = _runtime()
    with rt.session_factory() as db, db.begin():
        months = int(settings_service.get(db, "retention_months"))
        result = retention.purge(
            db, rt.store, months, settings_service.policy(db, rt.policy), rt.clock.moment()
        )
    click.echo(f"Deleted {result.deleted} closed case(s) past the retention period of {months} month(s).")
    if result.held:
        click.echo(f"Kept {result.held} case(s) past it because they are on legal hold.")


@cli.command("notify")
def notify() -> None:
    """Email officers who have something to look at (never what it is). Run it from cron."""
    rt = _runtime()
    settings = rt.settings
    mail = notifications.MailSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password,
        sender=settings.smtp_from,
        starttls=settings.smtp_starttls,
    )
    if not mail.enabled:
        click.echo("Notifications are off: smtp_host is not set.")
        return
    if "@" not in mail.sender:
        raise click.ClickException("set smtp_from to the address notifications are sent from")
    with rt.session_factory() as db, db.begin():
        result = notifications.notify(
            db, mail, f"{settings.base_url.rstrip('/')}/officer/", rt.clock.moment()
        )
    click.echo(f"Sent {result.sent} email(s); {result.waiting} officer(s) have news held to the next hour.")
    if result.failed:
        raise click.ClickException(
            f"{result.failed} email(s) could not be sent; they are tried again next run"
        )


@cli.command("rotate-secret", with_appcontext=False)
def rotate_secret() -> None:
    """Replace the Flask secret key; then restart every Whistle process (docs/deploy.md)."""
    from whistle.config import replace_secret_key

    path = instance_path_from_env()
    try:
        replace_secret_key(path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{path / 'secret_key'} holds a new secret key; the old one is gone.")
    click.echo("Copy it to every other host of this instance, then restart every Whistle process:")
    click.echo("until then they keep signing with the old key. A form open in a browser at that")
    click.echo("moment must be sent again; sessions, reports and receipts are not affected.")
