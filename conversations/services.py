"""Intake: what happens to an inbound message inside the callback's request.

One transaction: drop duplicates, apply rate limits, find or open the session, store
the message, and enqueue the reply once the row is committed. No model or platform
call happens here.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction

from channels_im.models import Bot
from channels_im.platforms.base import InboundMessage

from . import ratelimit, texts
from .commands import command_for
from .models import Message
from .replies import add_reply
from .sessions import session_for

logger = logging.getLogger(__name__)


def receive(bot: Bot, inbound: InboundMessage) -> Message | None:
    """Store an inbound message and enqueue what answers it; None for a duplicate."""
    command = command_for(inbound.text)
    try:
        with transaction.atomic():
            status = Message.Status.IGNORED if command else Message.Status.QUEUED
            message = store(bot, inbound, status)
    except IntegrityError:
        return None  # a platform retry: the first copy is already in hand
    if command:
        add_reply(message, command(message))
        return message
    # Counted after the duplicate check, so retries never use up anyone's limit.
    verdict = ratelimit.check_or_allow(bot.tenant, inbound.sender)
    if not verdict.limited:
        # Outside any transaction this runs at once; inside a caller's, after its commit.
        transaction.on_commit(lambda: enqueue_answer(message.pk))
        return message
    with transaction.atomic():
        Message.objects.filter(pk=message.pk).update(status=Message.Status.RATE_LIMITED)
        message.status = Message.Status.RATE_LIMITED
        if verdict.notify or bot.adapter.answers_every_message:
            add_reply(message, texts.rate_limited(bot.tenant))
    return message


def store(bot: Bot, inbound: InboundMessage, status: str) -> Message:
    return Message.objects.create(
        tenant_id=bot.tenant_id,
        bot=bot,
        conversation_id=session_for(bot, inbound),
        role=Message.Role.USER,
        content=inbound.text,
        sender=inbound.sender,
        external_id=inbound.external_id,
        status=status,
        reply_context={"is_group": inbound.is_group, **inbound.reply_context},
    )


def enqueue_answer(message_id: int) -> None:
    from .tasks import generate_reply

    try:
        generate_reply.delay(message_id)
    except Exception:
        # The broker is down: the row stays queued and the sweep enqueues it later.
        logger.exception("could not enqueue message %s; the sweep will retry", message_id)
