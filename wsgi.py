"""The WSGI entry point of a source checkout: ``gunicorn wsgi:app`` (whistle.wsgi is the installed one)."""

from whistle.wsgi import app

__all__ = ["app"]
