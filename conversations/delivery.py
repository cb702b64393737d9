"""Sending an assistant row through its bot's platform module, exactly once."""

from __future__ import annotations

import logging
from dataclasses import replace

from django.conf import settings
from django.utils import timezone

from channels_im.platforms.base import DeliveryError, OutboundReply

from .claims import RetryLater, backoff, claim, release, settle
from .models import Message

logger = logging.getLogger(__name__)


def deliver(reply_id: int) -> None:
    """Send one stored reply, or do nothing if it was sent or another worker owns it."""
    reply = claim(reply_id, Message.Role.ASSISTANT)
    if reply is None:
        logger.info("reply %s is not claimable (sent or owned); skipping", reply_id)
        return
    if reply.attempts > settings.IM_DELIVERY_MAX_RETRIES + 1:
        # Claimed again and again without an outcome (a crash loop): record it and stop.
        handle_failure(reply, DeliveryError(f"gave up after {reply.attempts - 1} attempts"))
        return
    send(reply)


def send(reply: Message) -> None:
    """Send a reply this worker has claimed; record the outcome on its row."""
    try:
        reply.bot.adapter.send(outbound(reply))
    except DeliveryError as exc:
        handle_failure(reply, exc)
        return
    except Exception as exc:  # noqa: BLE001 - a bug must not strand the row
        logger.exception("delivering reply %s failed unexpectedly", reply.pk)
        handle_failure(reply, DeliveryError(f"{type(exc).__name__}: {exc}"))
        return
    settle(
        reply,
        status=Message.Status.ANSWERED,
        delivered_at=timezone.now(),
        claimed_until=None,
        error="",
    )


def outbound(reply: Message) -> OutboundReply:
    def on_part_sent(count: int) -> None:
        # Parts remain: a crash from here on resumes after this one, never repeats it.
        reply.reply_context["parts_sent"] = count
        settle(reply, reply_context=reply.reply_context)

    return replace(
        # One answer per question, so the question names it: the same key whether the
        # answer was stored before it went or not.
        outbound_for(reply.reply_to, text=reply.content, key=f"a{reply.reply_to_id}"),
        parts_sent=reply.reply_context.get("parts_sent", 0),
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
    )


def handle_failure(reply: Message, exc: DeliveryError) -> None:
    if not exc.permanent and reply.attempts <= settings.IM_DELIVERY_MAX_RETRIES:
        countdown = backoff(reply.attempts, settings.IM_DELIVERY_RETRY_BACKOFF)
        release(reply, after=countdown, error=str(exc))
        raise RetryLater(countdown) from exc
    logger.warning("reply %s could not be delivered: %s", reply.pk, exc)
    settle(reply, status=Message.Status.FAILED, claimed_until=None, error=str(exc))
    reply.bot.record_error(f"delivery: {exc}")
