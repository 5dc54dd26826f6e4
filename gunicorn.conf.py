"""gunicorn settings for Whistle: `gunicorn -c gunicorn.conf.py wsgi:app`.

The access log leaves out the client address (%(h)s), the time (%(t)s), the
user agent (%(a)s) and the referrer (%(f)s): none of them may be kept.
"""

import multiprocessing
import os

bind = os.environ.get("WHISTLE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WHISTLE_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("WHISTLE_THREADS", 4))
worker_class = "gthread"
# Large uploads over slow connections: a request may take a long time to arrive.
timeout = 300
graceful_timeout = 30
keepalive = 5
accesslog = "-"
access_log_format = '"%(r)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
forwarded_allow_ips = os.environ.get("WHISTLE_FORWARDED_ALLOW_IPS", "127.0.0.1")
umask = 0o077
