"""Assistant rows: stored in the caller's transaction, delivered after it commits."""

from __future__ import annotations

import logging

from django.db import transaction

from .models import Message

logger = logging.getLogger(__name__)


def add_reply(question: Message, text: str, *, model: str = "") -> Message:
    """Store the assistant's row answering `question` and deliver it once committed."""
    reply = Message.objects.create(
        tenant_id=question.tenant_id,
        bot_id=question.bot_id,
        conversation_id=question.conversation_id,
        reply_to=question,
        role=Message.Role.ASSISTANT,
        content=text,
        status=Message.Status.QUEUED,
        model=model,
    )
    transaction.on_commit(lambda: enqueue_delivery(reply.pk))
    return reply


def enqueue_delivery(reply_id: int) -> None:
    from .tasks import deliver_reply

    try:
        deliver_reply.delay(reply_id)
    except Exception:
        logger.exception("could not enqueue delivery of %s; the sweep will retry", reply_id)
