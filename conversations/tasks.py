"""Thin Celery tasks: each takes an id and hands it to one service function.

Retries are driven by RetryLater, raised after the row itself was queued again, so the
database (not the broker) knows what is pending.
"""

from celery import shared_task

from . import delivery, pipeline
from .claims import RetryLater, stuck
from .models import Message


@shared_task(bind=True, acks_late=True, max_retries=None)
def generate_reply(self, message_id: int) -> None:
    try:
        pipeline.answer(message_id)
    except RetryLater as exc:
        raise self.retry(countdown=exc.countdown) from exc


@shared_task(bind=True, acks_late=True, max_retries=None)
def deliver_reply(self, reply_id: int) -> None:
    try:
        delivery.deliver(reply_id)
    except RetryLater as exc:
        raise self.retry(countdown=exc.countdown) from exc


@shared_task
def sweep_stuck_messages() -> int:
    """Enqueue again what a lost broker message or a dead worker left behind."""
    rows = stuck()
    for message_id, role in rows:
        task = generate_reply if role == Message.Role.USER else deliver_reply
        task.delay(message_id)
    return len(rows)
