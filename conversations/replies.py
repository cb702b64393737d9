"""Assistant rows: stored in the caller's transaction, delivered after it commits."""

from __future__ import annotations

import logging

from django.db import transaction

from .claims import claimed_until
from .models import Message

logger = logging.getLogger(__name__)


def add_reply(question: Message, text: str, *, model: str = "", claimed: bool = False) -> Message:
    """Store the assistant's row answering `question`.

    `claimed`: the calling worker sends it itself right after commit; otherwise (inside a
    web request) the delivery queue does, once committed.
    """
    reply = new_reply(question, text, model=model, claimed=claimed)
    reply.save(force_insert=True)
    if not claimed:
        transaction.on_commit(lambda: enqueue_delivery(reply.pk))
    return reply


def new_reply(question: Message, text: str, *, model: str = "", claimed: bool) -> Message:
    """The assistant's row answering `question`, not stored yet."""
    return Message(
        tenant=question.tenant,
        bot=question.bot,
        conversation_id=question.conversation_id,
        reply_to=question,
        role=Message.Role.ASSISTANT,
        content=text,
        model=model,
        status=Message.Status.ANSWERING if claimed else Message.Status.QUEUED,
        claimed_until=claimed_until() if claimed else None,
        attempts=1 if claimed else 0,
    )


def enqueue_delivery(reply_id: int, countdown: float = 0) -> None:
    from .tasks import deliver_reply

    try:
        deliver_reply.apply_async((reply_id,), countdown=countdown)
    except Exception:
        logger.exception("could not enqueue delivery of %s; the sweep will retry", reply_id)
