"""gunicorn's settings, read from the working directory by every way of starting the web
process (`gunicorn -b HOST:PORT`, no other arguments): the Dockerfile, docker-compose,
bin/run, the benchmarks and the tests that start it.

The ASGI application on uvicorn's worker (common/webserver.py says why): connections wait
on an event loop, so clients waiting on answers or sending slowly hold no thread, and a
kept-alive connection lets a platform send its next callback without reconnecting.
"""

import os

from common.collector import freeze_start_up
from common.logs import FORMAT
from common.webserver import seconds

wsgi_app = "assistant.asgi:application"
worker_class = "common.webserver.Worker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# How long a kept-alive connection may sit idle before the server closes it (uvicorn's
# timeout_keep_alive): longer than the proxy or load balancer in front keeps its idle
# ones (nginx's upstream keepalive_timeout and AWS's load balancers: 60 s). A request
# sent on a connection as the server closes it is reset, and a proxy does not send a
# POST again: gunicorn's default of 2 s made that race likely wherever a client kept
# connections longer (bench/open_loop.py, at 400/s, saw one in 24,000).
keepalive = int(seconds("WEB_KEEPALIVE", 75, 1, 3600))
# gunicorn's own records and the access log in the one format of every process. The
# access log is uvicorn's line per request, written through the handlers configured here
# for "gunicorn.access" (uvicorn_worker hands them over): gunicorn's `accesslog` and
# `access_log_format` do not apply to it.
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


def post_worker_init(worker: object) -> None:
    """A web process has loaded the application: load the URLconf too (Django would at
    the first request), then freeze what it loaded (common/collector.py)."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - loading is the point
    freeze_start_up()
