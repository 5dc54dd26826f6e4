"""gunicorn settings of a source checkout: ``gunicorn -c gunicorn.conf.py wsgi:app``.

The settings themselves are whistle.gunicorn_conf, which the package carries:
``whistle serve`` runs gunicorn with them wherever Whistle is installed.
"""

from whistle.gunicorn_conf import *  # noqa: F403
