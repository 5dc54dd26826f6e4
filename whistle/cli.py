"""The ``whistle`` command: ``init``, ``officer add``, ``setup-link``, ``db upgrade``, Flask's ``run``."""

from __future__ import annotations

import os
import sys

import click
from flask import current_app
from flask.cli import FlaskGroup

from whistle import create_app
from whistle.config import ConfigError, Settings, create_instance, instance_path_from_env
from whistle.crypto import export_private_key
from whistle.db import upgrade
from whistle.services import officers
from whistle.services.errors import OfficerExists, WeakPassword
from whistle.web.runtime import Runtime

DEFAULT_SETTINGS = """\
# Whistle instance settings. Every setting can also be given as a WHISTLE_<NAME>
# environment variable. See the README for the full list.
organisation_name = "Our organisation"
base_url = "http://127.0.0.1:5000"
"""


def _create_app() -> object:
    try:
        return create_app()
    except ConfigError as error:
        raise click.ClickException(str(error)) from error


@click.group(cls=FlaskGroup, create_app=_create_app)
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
                db, rt.keyring.kdf, email, display_name, password, rt.clock.now(), is_admin=admin
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


@cli.group("db")
def db_group() -> None:
    """The database schema."""


@db_group.command("upgrade", with_appcontext=False)
def db_upgrade() -> None:
    """Apply every migration the database does not have yet (run it before starting)."""
    try:
        settings = Settings.load()
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    upgrade(settings.database_url)
    click.echo("The database is up to date.")
