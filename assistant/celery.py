"""The Celery app. Queues are split by latency: model calls never hold up deliveries."""

import logging.config
import os

from celery import Celery
from celery.signals import setup_logging

from conversations.heartbeat import Heartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.settings")

app = Celery("assistant")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add(Heartbeat)


@setup_logging.connect
def _log_as_the_web_does(loglevel: int | None = None, **kwargs: object) -> None:
    """Worker and beat log through settings.LOGGING, not Celery's own format and local
    time: a receiver of this signal replaces Celery's logging set-up entirely."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:  # the command's -l
        logging.getLogger().setLevel(loglevel)
