"""The Celery app. Queues are split by latency: model calls never hold up deliveries."""

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
from common.collector import freeze_start_up
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
def _freeze_the_main_process(**kwargs: object) -> None:
    """The main process (the dispatcher's) is up: what it loaded, out of the garbage
    collector's way (common/collector.py)."""
    freeze_start_up()


@worker_process_init.connect
def _freeze_a_pool_child(**kwargs: object) -> None:
    """A pool child is up: the same, without a collection of what it shares with its
    parent."""
    freeze_start_up(collect=False)
