"""Thin Celery tasks, and the only module that talks to the broker.

Each task takes a row id and hands it to one service function. A service that wants a
row worked on again later raises RetryLater after queuing the row itself, so the
database (not the broker) knows what is pending; the task then enqueues that row's task
with the countdown (a failed answer send becomes a delivery task); questions granted a
model slot after waiting their turn are enqueued when admission says so (the
`question_granted` signal). The sweep enqueues what a lost broker message or a dead
worker left behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager

from celery import Task, current_app, shared_task
from kombu import Producer

from channels_im import identity
from common import metrics
from tenants.audit import Actor

from . import delivery, pipeline, retention, rollup
from .claims import RetryLater, stuck
from .models import Message

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def generate_reply(message_id: int) -> None:
    _run(pipeline.answer, message_id)


@shared_task(acks_late=True)
def deliver_reply(reply_id: int) -> None:
    _run(delivery.deliver, reply_id)


@shared_task
def sweep_stuck_messages() -> int:
    """Enqueue again what a lost broker message or a dead worker left behind."""
    rows = stuck()
    for row_id, role in rows:
        metrics.STUCK_ROWS.labels(role).inc()
        enqueue(row_id, role)
    return len(rows)


@shared_task
def learn_bot_identities() -> int:
    """Ask the platforms what they can tell about their bots (a Feishu bot's open_id)."""
    return identity.learn_identities()


@shared_task
def refresh_dashboard() -> int:
    """Recompute the admin dashboard's figures of today and yesterday from the log."""
    return rollup.refresh()


# Longer than the default, which is an answer's: a first purge may have months to go
# through. Cut short, it has committed its batches, and the next night goes on.
@shared_task(soft_time_limit=3600, time_limit=3660)
def purge_expired() -> int:
    """Delete or redact message content past each tenant's retention; the messages it
    purged."""
    return sum(run.messages for run in retention.purge_all(Actor.system("retention")))


def enqueue(
    row_id: int,
    role: str,
    countdown: float = 0,
    queue: str | None = None,
    producer: Producer | None = None,
) -> None:
    """Send the task that works on this row: answering a question, delivering an answer;
    to `queue`, or its task's own (settings.CELERY_TASK_ROUTES); through `producer`
    (`producer()`), or one taken from Celery's pool for this task alone.

    A broker outage is logged and nothing more: the row stays queued in the database and
    the sweep enqueues it once the broker is back.
    """
    task: Task = generate_reply if role == Message.Role.USER else deliver_reply
    try:
        task.apply_async(
            (row_id,),
            countdown=countdown,
            producer=producer,
            **({"queue": queue} if queue else {}),
        )
    except Exception:
        logger.exception("could not enqueue %s row %s; the sweep will retry", role, row_id)


def producer() -> AbstractContextManager[Producer]:
    """A producer of Celery's pool, held for a run of `enqueue`s (the dispatcher's whole
    time in office): taking one from the pool for each task was 5 % of the dispatcher's
    time at 150 questions a second (py-spy). It reconnects on its own when the broker
    comes back."""
    return current_app.producer_pool.acquire(block=True)


def wake_granted(message_ids: list[int]) -> None:
    """Questions that waited their turn were granted a model slot: answer them now, from
    the `granted` queue, ahead of the new questions in `inference`."""
    for message_id in message_ids:
        enqueue(message_id, Message.Role.USER, queue="granted")


def _run(service: Callable[[int], None], row_id: int) -> None:
    try:
        service(row_id)
    except RetryLater as later:
        enqueue(later.row_id, later.role, later.countdown)
