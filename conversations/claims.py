"""Who owns a row right now. The same small state machine drives answering and delivery:

queued (due) → answering (claimed until T) → answered | failed, or back to queued with a
"not before" time after a transient failure. A claim is one conditional UPDATE, so a
redelivered task, a Celery retry and the sweep may all point at one row and only one
of them does the work.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from channels_im.bot_cache import bot_by_id

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


# `claimable` and the marking of the claim in one statement that returns the row. The
# database re-checks the WHERE on the row's newest version after a racing claimer's
# UPDATE, so the second of two claimers takes nothing. Raw SQL: it runs for every
# message, and takes half the time of the ORM's UPDATE and read (PostgreSQL and
# SQLite >= 3.35 both have RETURNING).
_CLAIM_SQL = f"""
    UPDATE {Message._meta.db_table}
    SET status = %s, claimed_until = %s, attempts = attempts + 1
    WHERE id = %s AND role = %s AND (
        (status = %s AND (claimed_until IS NULL OR claimed_until <= %s))
        OR (status = %s AND claimed_until <= %s)
    )
    RETURNING *
"""  # noqa: S608 - a constant table name, values as parameters


def claim(message_id: int, role: str) -> Message | None:
    """Take the row for this worker, or None if it is done or someone else owns it.

    Its bot and tenant come from the bot cache. The queue wait is measured now and
    written with the outcome (`settle`).
    """
    now = timezone.now()
    at = connection.ops.adapt_datetimefield_value
    answering, queued = Message.Status.ANSWERING, Message.Status.QUEUED
    params = [answering, at(claimed_until()), message_id, role, queued, at(now), answering, at(now)]
    taken = list(Message.objects.raw(_CLAIM_SQL, params))
    if not taken:
        return None
    [row] = taken
    row.bot = bot_by_id(row.bot_id)
    row.tenant = row.bot.tenant
    if row.queue_wait_ms is None:
        row.queue_wait_ms = ms_between(row.created_at, now)
    return row


def settle(row: Message, **fields: Any) -> None:
    """Record what became of a claimed row, with the queue wait measured at its claim.

    A row not stored yet (an answer is sent before its row is written) is stored now.
    """
    if row.pk is None:
        for name, value in fields.items():
            setattr(row, name, value)
        row.save(force_insert=True)
        return
    Message.objects.filter(pk=row.pk).update(queue_wait_ms=row.queue_wait_ms, **fields)


def claimed_until() -> datetime:
    """The end of a claim taken now."""
    return timezone.now() + timedelta(seconds=settings.IM_CLAIM_SECONDS)


def ms_between(start: datetime, end: datetime) -> int:
    return max(int((end - start).total_seconds() * 1000), 0)


def release(message: Message, *, after: float, error: str) -> None:
    """Give the row back to the queue, due again in `after` seconds."""
    settle(
        message,
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
