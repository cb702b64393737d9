"""gunicorn's settings, read from the working directory by every way of starting the web
process: the Dockerfile, docker-compose, bin/run and the benchmarks.

Threads rather than sync workers: a callback mostly waits on the database and Redis, the
WeCom robot polls each live answer about once a second, and a thread keeps the platform's
connection alive between callbacks instead of reconnecting for each.
"""

import os

from common.logs import FORMAT

# gthread, except that a request is read in full before a thread takes it, with time
# limits: clients sending slowly cannot hold the threads (common/webserver.py).
worker_class = "common.webserver.BufferingThreadWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "8"))
accesslog = "-"
# The record's own timestamp (UTC, common/logs.py) says when; gunicorn's %(t)s is local time.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
# gunicorn's own records and the access log in the one format of every process.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"()": "common.logs.UTCFormatter", "format": FORMAT}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        name: {"handlers": ["console"], "level": "INFO", "propagate": False}
        for name in ("gunicorn.error", "gunicorn.access")
    },
}
