"""The Celery app. Queues are split by latency: model calls never hold up deliveries."""

import gc
import logging.config
import os

from celery import Celery, Task
from celery.signals import (
    setup_logging,
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_ready,
)
from django.db import close_old_connections

from common import broker
from conversations.dispatch import Dispatcher
from conversations.heartbeat import Heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings")
broker.install()  # redis:// and rediss:// brokers through one client a channel

app = Celery("assistant")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add(Heartbeat)
app.steps["worker"].add(Dispatcher)


@setup_logging.connect
def _log_as_the_web_does(loglevel: int | None = None, **kwargs: object) -> None:
    """Worker and beat log through settings.LOGGING, not Celery's own format and local
    time: a receiver of this signal replaces Celery's logging set-up entirely."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:  # the command's -l
        logging.getLogger().setLevel(loglevel)


@task_prerun.connect
@task_postrun.connect
def _check_database_connections(sender: Task | None = None, **kwargs: object) -> None:
    """Around every task, what Django does around every web request: drop a connection
    that failed or outlived CONN_MAX_AGE, and health-check the next one. Celery's Django
    fixup skips this while it reuses connections (CELERY_DB_REUSE_MAX), so after a
    database restart every task failed with "the connection is closed" until the worker
    was restarted. Not in a test's eager task, whose transaction it would close."""
    if sender is not None and not getattr(sender.request, "is_eager", False):
        close_old_connections()


@worker_ready.connect
@worker_process_init.connect
def _freeze_what_is_loaded(**kwargs: object) -> None:
    """Once the worker's main process, or a pool child, is up: out of the garbage
    collector's way, what lives as long as the process (assistant/asgi.py says why). A
    full collection stopped the main process, the dispatcher's, for 73 ms in a run at
    150 callbacks a second, and 7 ms once frozen (a probe's gc.callbacks)."""
    gc.freeze()
