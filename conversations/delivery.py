"""Sending an assistant row through its bot's platform module, exactly once."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from django.utils import timezone

from channels_im.platforms.base import DeliveryError, OutboundReply
from common import metrics

from . import sent
from .claims import Claim
from .models import Message

logger = logging.getLogger(__name__)


def deliver(reply_id: int) -> None:
    """Send one stored reply, or do nothing if it was sent or another worker owns it.

    Raises RetryLater when a transient failure leaves the row queued for later.
    """
    reply = Claim.take(reply_id, Message.Role.ASSISTANT)
    if reply is None:
        logger.info("reply %s is not claimable (sent or owned); skipping", reply_id)
        return
    if (gave_up := reply.crash_loop) is not None:
        reply.fail(gave_up)
        return
    send(reply)


def send(reply: Claim) -> None:
    """Send a reply this worker holds (stored or not yet) and record the outcome on it.

    An answer to the same question that went out before, but whose row could not say so
    (the database was down), is recorded instead of sent again (sent.py). Raises
    RetryLater when a transient failure leaves the row queued for later.
    """
    question = reply.row.reply_to
    assert question is not None, "an assistant row always answers a question"
    # A new answer (not stored yet) was checked by the pipeline before the model was asked.
    if reply.row.pk is not None and (earlier := sent.recall(question)) is not None:
        reply.succeed(content=earlier, delivered_at=timezone.now())
        return
    started = time.perf_counter()
    try:
        reply.row.bot.adapter.send(outbound(reply))
    except DeliveryError as exc:
        reply.fail(exc)
        return
    except Exception as exc:  # noqa: BLE001 - a bug must not strand the row
        logger.exception("delivering reply %s failed unexpectedly", reply.row.pk)
        reply.fail(DeliveryError(f"{type(exc).__name__}: {exc}"))
        return
    seconds = time.perf_counter() - started
    metrics.DELIVERY_SECONDS.labels(reply.row.bot.platform).observe(seconds)
    sent.remember(question, reply.row.content)
    reply.succeed(delivered_at=timezone.now())


def outbound(reply: Claim) -> OutboundReply:
    """The reply as its platform module takes it, resuming after the parts already sent."""
    row = reply.row
    question = row.reply_to
    assert question is not None, "an assistant row always answers a question"

    def on_part_sent(count: int) -> None:
        # Parts remain: a crash from here on resumes after this one, never repeats it.
        reply.record(reply_context={**row.reply_context, "parts_sent": count})

    return replace(
        # One answer per question, so the question names it: the same key whether the
        # answer was stored before it went or not.
        outbound_for(question, text=row.content, key=f"a{question.pk}"),
        parts_sent=row.reply_context.get("parts_sent", 0),
        on_part_sent=on_part_sent,
    )


def outbound_for(question: Message, *, text: str = "", key: str = "") -> OutboundReply:
    """The answer to `question`, addressed as the platform module needs it."""
    context = question.reply_context
    return OutboundReply(
        key=key or f"q{question.pk}",
        text=text,
        recipient=question.sender,
        is_group=bool(context.get("is_group")),
        reply_context=context,
        live=context.get("live") or {},
    )
