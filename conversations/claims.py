"""Who owns a row right now. The same small state machine drives answering and delivery:

queued (due) → answering (claimed until T) → answered | failed, or back to queued with a
"not before" time after a transient failure. A claim is taken under a row lock, so a
redelivered task, a Celery retry and the sweep may all point at one row and only one
of them does the work.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .models import Message


class RetryLater(Exception):
    """A transient failure: the row is queued again and due in `countdown` seconds."""

    def __init__(self, countdown: float):
        super().__init__(f"retry in {countdown:.1f}s")
        self.countdown = countdown


def backoff(attempt: int, base: float) -> float:
    """Exponential with jitter, so retries from many rows spread out."""
    ceiling = base * 2 ** (attempt - 1)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def claimable(now: datetime) -> Q:
    """Rows nobody owns: queued and due, or answering under a claim that has run out."""
    due = Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)
    return (Q(status=Message.Status.QUEUED) & due) | Q(
        status=Message.Status.ANSWERING, claimed_until__lte=now
    )


def claim(message_id: int, role: str) -> Message | None:
    """Take the row for this worker, or None if it is done or someone else owns it.

    One short transaction: the row is locked (another claimer skips it), checked and
    marked, with its bot, tenant and conversation loaded by the same query.
    """
    now = timezone.now()
    with transaction.atomic():
        row = (
            Message.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant", "bot", "conversation", "reply_to")
            .filter(claimable(now), pk=message_id, role=role)
            .first()
        )
        if row is None:
            return None
        row.status = Message.Status.ANSWERING
        row.claimed_until = claimed_until()
        row.attempts += 1
        if row.queue_wait_ms is None:
            row.queue_wait_ms = ms_between(row.created_at, now)
        row.save(update_fields=["status", "claimed_until", "attempts", "queue_wait_ms"])
    return row


def claimed_until() -> datetime:
    """The end of a claim taken now."""
    return timezone.now() + timedelta(seconds=settings.IM_CLAIM_SECONDS)


def ms_between(start: datetime, end: datetime) -> int:
    return max(int((end - start).total_seconds() * 1000), 0)


def release(message: Message, *, after: float, error: str) -> None:
    """Give the row back to the queue, due again in `after` seconds."""
    Message.objects.filter(pk=message.pk).update(
        status=Message.Status.QUEUED,
        claimed_until=timezone.now() + timedelta(seconds=after),
        error=error,
    )


def stuck(limit: int = 500) -> list[tuple[int, str]]:
    """(id, role) of rows whose task was lost: claimable and older than the grace period."""
    now = timezone.now()
    grace = now - timedelta(seconds=settings.IM_STUCK_AFTER_SECONDS)
    return list(
        Message.objects.filter(claimable(now), created_at__lt=grace)
        .order_by("id")
        .values_list("id", "role")[:limit]
    )
