"""Who owns a row right now, and everything that is written on a row while it is owned.

The same small state machine drives answering (a user row) and delivery (an assistant
row): queued (due) → answering (claimed until T) → answered | failed, or back to queued
with a "not before" time after a transient failure. `Claim.take` is one conditional
UPDATE, so a redelivered task, a retry and the sweep may all point at one row and only
one of them does the work. The `Claim` it returns is the only writer of that row until
the outcome is recorded:

- the answer row is created, unsaved, by the claim of its question (`Claim.answer`) and
  held by its own claim, whose `record` INSERTs it the first time something must be
  kept: a part of a split answer sent, the outcome of the send, or the apology stored
  with its question's failure. (The web's intake stores the bot's own answers, to a
  command or over a rate limit, as queued rows for the delivery queue: services.py.);
- `Claim.fail` alone decides retry-or-fail, with the bot's last error;
- `Claim.crash_loop` is the one guard against a row whose workers keep dying;
- the metrics of what is written (final statuses, tokens, queue waits, delivery
  failures) are counted here, as it is written.

Retrying is said by raising RetryLater, naming the row to work on again (a question, or
the answer whose send failed); `tasks.py`, the only module that talks to the broker,
enqueues that row's task for when it is due.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from channels_im.bot_cache import bot_by_id
from channels_im.platforms.base import DeliveryError
from common import metrics

from . import quotas
from .llm import LLMError
from .models import Message

logger = logging.getLogger(__name__)


class RetryLater(Exception):
    """A transient failure: the row is queued again and due in `countdown` seconds."""

    def __init__(self, row_id: int, role: str, countdown: float):
        super().__init__(f"retry {role} row {row_id} in {countdown:.1f}s")
        self.row_id = row_id
        self.role = role
        self.countdown = countdown


class GaveUp(Exception):
    """No more tries for this row: its workers kept dying on it, or its time ran out."""

    permanent = True


# What failed: the model, the platform, or the row's own tries and time.
Failure = LLMError | DeliveryError | GaveUp


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    first_backoff: float  # seconds before the first retry; doubles with each attempt
    label: str  # names the step in the bot's last error
    # Seconds from the row's creation after which it is not retried (None: no bound).
    budget: float | None = None


def policy(role: str) -> RetryPolicy:
    """Answering retries the model, within the question's answer budget; delivering
    retries the platform."""
    if role == Message.Role.USER:
        return RetryPolicy(
            settings.OLLAMA_MAX_RETRIES,
            settings.OLLAMA_RETRY_BACKOFF,
            "model",
            budget=settings.IM_ANSWER_BUDGET_SECONDS,
        )
    return RetryPolicy(
        settings.IM_DELIVERY_MAX_RETRIES, settings.IM_DELIVERY_RETRY_BACKOFF, "delivery"
    )


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


class Claim:
    """This worker's hold on one row (`row`), until `row.claimed_until`."""

    def __init__(self, row: Message):
        self.row = row
        self.policy = policy(row.role)

    @classmethod
    def take(cls, message_id: int, role: str) -> Claim | None:
        """The row for this worker, or None if it is done or someone else owns it.

        Its bot and tenant come from the bot cache. The queue wait is measured now and
        written with the outcome.
        """
        now = timezone.now()
        at = connection.ops.adapt_datetimefield_value
        answering, queued = Message.Status.ANSWERING, Message.Status.QUEUED
        params = [answering, at(claimed_until()), message_id, role]
        params += [queued, at(now), answering, at(now)]
        taken = list(Message.objects.raw(_CLAIM_SQL, params))
        if not taken:
            return None
        [row] = taken
        row.bot = bot_by_id(row.bot_id)
        row.tenant = row.bot.tenant
        if row.queue_wait_ms is None:
            row.queue_wait_ms = ms_between(row.created_at, now)
            queue = "inference" if role == Message.Role.USER else "delivery"
            metrics.QUEUE_WAIT_SECONDS.labels(queue).observe(row.queue_wait_ms / 1000)
        return cls(row)

    def answer(self, text: str, *, model: str = "") -> Claim:
        """The claim of the answer to this question: held by this worker, not stored yet."""
        reply = self.row.new_reply(text, model=model)
        reply.status = Message.Status.ANSWERING
        reply.claimed_until = claimed_until()
        reply.attempts = 1
        return Claim(reply)

    def seconds_left(self) -> float | None:
        """What remains of the row's budget (negative once it ran out); None: unbounded."""
        if self.policy.budget is None:
            return None
        spent = (timezone.now() - self.row.created_at).total_seconds()
        return self.policy.budget - spent

    @property
    def out_of_time(self) -> GaveUp | None:
        """The failure to record when the budget ran out before work began (a long queue)."""
        left = self.seconds_left()
        if left is None or left > 0:
            return None
        return GaveUp(f"no answer within {self.policy.budget:.0f} s")

    @property
    def crash_loop(self) -> GaveUp | None:
        """The failure to record when workers died on this row more often than it may be
        retried (a time limit, an OOM kill): stop, rather than try forever."""
        if self.row.attempts <= self.policy.max_retries + 1:
            return None
        return GaveUp(f"gave up after {self.row.attempts - 1} attempts")

    def record(self, **fields: Any) -> None:
        """Write `fields` on the row, keeping the claim; an answer row not stored yet is
        INSERTed now (the only place the worker does), with the queue wait measured at
        the claim."""
        for name, value in fields.items():
            setattr(self.row, name, value)
        if self.row.pk is None:
            self.row.save(force_insert=True)
        else:
            wait = self.row.queue_wait_ms
            Message.objects.filter(pk=self.row.pk).update(queue_wait_ms=wait, **fields)
        if fields.get("status") in FINAL:
            count_final(self.row)

    def succeed(self, **fields: Any) -> None:
        """The row's work is done: answered, the claim released, no error. An answer
        delivered is its bot's last success."""
        self.record(status=Message.Status.ANSWERED, claimed_until=None, error="", **fields)
        if self.row.role == Message.Role.ASSISTANT:
            self.row.bot.record_success()

    def retry_in(self, exc: Failure) -> float | None:
        """Seconds until this failure is retried; None if it is not: permanent, out of
        tries, or due past the row's budget. Its jitter is drawn once per claim."""
        if exc.permanent or self.row.attempts > self.policy.max_retries:
            return None
        left = self.seconds_left()
        return self._backoff if left is None or self._backoff < left else None

    @cached_property
    def _backoff(self) -> float:
        return backoff(self.row.attempts, self.policy.first_backoff)

    def fail(self, exc: Failure, *, apology: str = "", **fields: Any) -> Claim | None:
        """Retry a transient failure later, or record the failure for good.

        Either way the bot's last error says what failed, from the first failure on. A
        retry must be due within the row's budget. Retrying gives the row back to the
        queue and raises RetryLater. Failing for good records `fields` and the error and,
        given an `apology`, stores it as the answer in the same transaction and returns
        its claim for sending. An answer that never reached the person fails its question
        too: the question's status is what the person saw.
        """
        self.row.bot.record_error(f"{self.policy.label}: {exc}")
        if isinstance(exc, DeliveryError):
            permanence = metrics.permanence(exc.permanent)
            metrics.DELIVERY_FAILURES.labels(self.row.bot.platform, permanence).inc()
        countdown = self.retry_in(exc)
        if countdown is not None:
            due = timezone.now() + timedelta(seconds=countdown)
            self.record(status=Message.Status.QUEUED, claimed_until=due, error=str(exc))
            raise RetryLater(self.row.pk, self.row.role, countdown) from exc
        logger.warning("%s row %s failed for good: %s", self.row.role, self.row.pk, exc)
        reply = None
        with transaction.atomic():
            self.record(status=Message.Status.FAILED, claimed_until=None, error=str(exc), **fields)
            if apology:
                reply = self.answer(apology)
                reply.record()
            if self.row.role == Message.Role.ASSISTANT:
                # Its question, recorded answered when the answer went to the delivery
                # queue (a question still held is failed by its own claim: fail_with).
                Message.objects.filter(reply=self.row, status=Message.Status.ANSWERED).update(
                    status=Message.Status.FAILED, error=f"{self.policy.label}: {exc}"
                )
        return reply

    def fail_with(self, answer: Claim, **fields: Any) -> None:
        """This question's outcome when its answer failed for good: the person saw nothing."""
        error = f"{answer.policy.label}: {answer.row.error}"
        self.record(status=Message.Status.FAILED, claimed_until=None, error=error, **fields)


# The statuses a claim leaves a row in for good (the intake's own are counted there).
FINAL = (Message.Status.ANSWERED, Message.Status.FAILED, Message.Status.QUOTA_EXCEEDED)


def count_final(row: Message) -> None:
    """Count a row whose final status was just written, with the tokens its answer took:
    in the metrics, and against its quotas."""
    metrics.MESSAGES.labels(row.role, row.status).inc()
    for kind, tokens in (("prompt", row.prompt_tokens), ("completion", row.completion_tokens)):
        if tokens:
            metrics.TOKENS.labels(row.tenant.slug, kind).inc(tokens)
    quotas.spend(row)


def claimed_until() -> datetime:
    """The end of a claim taken now."""
    return timezone.now() + timedelta(seconds=settings.IM_CLAIM_SECONDS)


def ms_between(start: datetime, end: datetime) -> int:
    return max(int((end - start).total_seconds() * 1000), 0)


def stuck(limit: int = 500) -> list[tuple[int, str]]:
    """(id, role) of rows whose task was lost: claimable and older than the grace period."""
    now = timezone.now()
    grace = now - timedelta(seconds=settings.IM_STUCK_AFTER_SECONDS)
    return list(
        Message.objects.filter(claimable(now), created_at__lt=grace)
        .order_by("id")
        .values_list("id", "role")[:limit]
    )
