"""The WSGI entry point: ``gunicorn wsgi:app``. WHISTLE_INSTANCE selects the instance folder."""

from whistle import create_app

app = create_app()
