"""Intake: what happens to an inbound message inside the callback's request.

Apply the rate limits (a platform's retry is not counted again), find or open the
session, store the message with its verdict (a retry stops here) and put a question in
its model's line (admission.py), then see that its reply is sent once the row is
committed. No model or platform call happens here.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext

from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from channels_im.models import Bot
from channels_im.platforms.base import TEXT, InboundMessage
from common import metrics

from . import admission, dispatch, intake_sql, ratelimit, sessions, tasks, texts
from .commands import command_for
from .models import Conversation, Message

logger = logging.getLogger(__name__)


def receive(bot: Bot, inbound: InboundMessage) -> Message | None:
    """Store an inbound message and enqueue what answers it; None for a duplicate.

    A question goes to the model; a command, or a message the bot cannot read (a picture,
    a file …), is answered by the bot itself and logged as `ignored`. All three count
    against the rate limits: each costs a platform send.
    """
    readable = inbound.kind == TEXT
    command = command_for(inbound.text) if readable else None
    # Judged before the row is written, so that a refused question is never queued, not
    # even for the moment a worker could take it in.
    event = f"{bot.pk}:{inbound.external_id}" if inbound.external_id else ""
    verdict = ratelimit.check_or_allow(bot.tenant, inbound.sender, event)
    if verdict.limited:
        status = Message.Status.RATE_LIMITED
    elif readable and not command:
        status = Message.Status.QUEUED
    else:
        status = Message.Status.IGNORED
    message = store(bot, inbound, status)
    if message is None:
        return None  # a platform retry: the first copy is already in hand
    if verdict.limited:
        metrics.REFUSED.labels(bot.tenant.slug, verdict.reason).inc()
        if verdict.notify or bot.adapter.answers_every_message:  # told once per window
            add_reply(message, texts.rate_limited(bot.tenant))
    elif command:
        add_reply(message, command(message))
    elif not readable:
        add_reply(message, texts.unreadable(bot.tenant))
    else:
        dispatch.question_stored(message.pk)
    if message.status != Message.Status.QUEUED:  # final already; claims.py counts the rest
        metrics.MESSAGES.labels(message.role, message.status).inc()
    return message


def store(bot: Bot, inbound: InboundMessage, status: str) -> Message | None:
    """The message's row in its session, and a question's place in its model's line;
    None if the platform sent it before.

    On PostgreSQL one statement (intake_sql.py), and a few more for an endpoint's first
    question ever (admission.enter makes its row). Elsewhere three, and no transaction
    around them, which would cost two more round trips on every message: all a
    transaction would undo is a session opened by a copy that turns out to be a duplicate
    (copies racing each other); it is closed again, so no later message continues an
    empty session.
    """
    now = timezone.now()
    message = Message(
        tenant_id=bot.tenant_id,
        bot=bot,
        role=Message.Role.USER,
        # What the log shows of a message the bot cannot read: its type.
        content=inbound.text if inbound.kind == TEXT else f"[{inbound.kind}]",
        sender=inbound.sender,
        external_id=inbound.external_id,
        status=status,
        reply_context={"is_group": inbound.is_group, **inbound.reply_context},
        created_at=now,
    )
    line = admission.place(bot.tenant) if status == Message.Status.QUEUED else None
    if connection.vendor == "postgresql":
        with _contained():
            stored = intake_sql.store(
                message,
                chat=inbound.chat,
                user_id=sessions.user_of(bot, inbound),
                fresh_after=sessions.fresh_after(bot, now),
                line=line,
            )
        if not stored.stored and stored.opened:
            sessions.close(stored.session_id)
        if stored.stored and line and not stored.in_line:
            admission.enter(message, bot.tenant)
        return message if stored.stored else None
    session = sessions.session_for(bot, inbound, now)
    message.conversation_id = session.id
    try:
        with _contained():
            message.save(force_insert=True)
    except IntegrityError:
        if session.opened:
            sessions.close(session.id)
        return None
    except DataError:
        # Refused, so nothing of it may stay: not even the session it opened.
        if session.opened:
            Conversation.objects.filter(pk=session.id).delete()
        raise
    if line:
        admission.enter(message, bot.tenant)
    return message


def _contained() -> AbstractContextManager:
    """Inside a caller's transaction, a savepoint, so that a refused value's error (or,
    through the ORM, a duplicate's) does not break it; in autocommit, the statement is a
    transaction of its own already."""
    return transaction.atomic() if connection.in_atomic_block else nullcontext()


def add_reply(question: Message, text: str) -> Message:
    """Store the bot's own answer to `question` (a command's, a limit notice), for the
    delivery queue to send once the caller's transaction commits."""
    reply = question.new_reply(text)
    reply.save(force_insert=True)
    transaction.on_commit(lambda: tasks.enqueue(reply.pk, Message.Role.ASSISTANT))
    return reply
