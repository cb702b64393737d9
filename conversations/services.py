"""Intake: what happens to an inbound message inside the callback's request.

Find or open the session, store the message (a platform's retry stops here), apply the
rate limits, and enqueue the reply once the row is committed. No model or platform call
happens here.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext

from django.db import DataError, IntegrityError, connection, transaction

from channels_im.models import Bot
from channels_im.platforms.base import InboundMessage

from . import ratelimit, sessions, tasks, texts
from .commands import command_for
from .models import Conversation, Message

logger = logging.getLogger(__name__)


def receive(bot: Bot, inbound: InboundMessage) -> Message | None:
    """Store an inbound message and enqueue what answers it; None for a duplicate."""
    command = command_for(inbound.text)
    message = store(bot, inbound, Message.Status.IGNORED if command else Message.Status.QUEUED)
    if message is None:
        return None  # a platform retry: the first copy is already in hand
    if command:
        add_reply(message, command(message))
        return message
    # Counted after the duplicate check, so retries never use up anyone's limit.
    verdict = ratelimit.check_or_allow(bot.tenant, inbound.sender)
    if not verdict.limited:
        # Outside any transaction this runs at once; inside a caller's, after its commit.
        transaction.on_commit(lambda: tasks.enqueue(message.pk, Message.Role.USER))
        return message
    with transaction.atomic():
        Message.objects.filter(pk=message.pk).update(status=Message.Status.RATE_LIMITED)
        message.status = Message.Status.RATE_LIMITED
        if verdict.notify or bot.adapter.answers_every_message:
            add_reply(message, texts.rate_limited(bot.tenant))
    return message


def store(bot: Bot, inbound: InboundMessage, status: str) -> Message | None:
    """The message's row in its session; None if the platform sent it before.

    Two statements and no transaction around them, which would cost two more round trips
    on every message. All a transaction would undo is a session opened by a copy that
    turns out to be a duplicate (copies racing each other); it is closed again, so no
    later message continues an empty session.
    """
    session = sessions.session_for(bot, inbound)
    try:
        with _contained():
            return Message.objects.create(
                tenant_id=bot.tenant_id,
                bot=bot,
                conversation_id=session.id,
                role=Message.Role.USER,
                content=inbound.text,
                sender=inbound.sender,
                external_id=inbound.external_id,
                status=status,
                reply_context={"is_group": inbound.is_group, **inbound.reply_context},
            )
    except IntegrityError:
        if session.opened:
            sessions.close(session.id)
        return None
    except DataError:
        # Refused, so nothing of it may stay: not even the session it opened.
        if session.opened:
            Conversation.objects.filter(pk=session.id).delete()
        raise


def _contained() -> AbstractContextManager:
    """Inside a caller's transaction, a savepoint, so that a duplicate's error does not
    break it; in autocommit, the INSERT is a transaction of its own already."""
    return transaction.atomic() if connection.in_atomic_block else nullcontext()


def add_reply(question: Message, text: str) -> Message:
    """Store the bot's own answer to `question` (a command's, a limit notice), for the
    delivery queue to send once the caller's transaction commits."""
    reply = question.new_reply(text)
    reply.save(force_insert=True)
    transaction.on_commit(lambda: tasks.enqueue(reply.pk, Message.Role.ASSISTANT))
    return reply
