"""What a /stop or a recalled question does in the web process: stop the asker's answers.

Every stop is first signalled (stop_signal.py), so whichever worker holds the question,
now or after it waited in the queue, closes its model request within a second and sends
the text so far, marked as stopped. A question still waiting in the queue is then
claimed here, as a worker would claim it, and stopped at once: the model is never asked,
and its answer (nothing so far, marked as stopped) goes to the delivery queue, which
finishes a placeholder the platform shows for it. A recalled question that shows
nothing yet gets no answer at all (stop_signal.silent).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from channels_im.models import Bot
from common import metrics

from . import admission, stop_signal, tasks, texts
from .claims import Claim, ms_between
from .llm import STOPPED
from .models import Message

# A question in these has an answer still to come.
IN_FLIGHT = (Message.Status.QUEUED, Message.Status.ANSWERING)


def stop_asker(message: Message) -> int:
    """Stop every answer in flight for the sender of `message` (a /stop) in the same chat
    with the same bot; returns how many. Another person's answers are never touched,
    even in a group that shares one conversation."""
    questions = Message.objects.filter(
        bot_id=message.bot_id,
        role=Message.Role.USER,
        sender=message.sender,
        conversation__chat_id=message.conversation.chat_id,
        status__in=IN_FLIGHT,
    ).exclude(pk=message.pk)
    found = list(questions.values_list("pk", flat=True))
    for question_id in found:
        stop(question_id, stop_signal.COMMAND)
    if not found:
        metrics.STOPS.labels(stop_signal.COMMAND, "nothing").inc()
    return len(found)


def stop_recalled(bot: Bot, external_id: str) -> bool:
    """Stop the answer to the bot's question whose platform message id is `external_id`,
    now recalled by its sender; False if it has none in flight (an answer that is done
    stays as it is)."""
    question_id = (
        Message.objects.filter(
            bot=bot, external_id=external_id, role=Message.Role.USER, status__in=IN_FLIGHT
        )
        .values_list("pk", flat=True)
        .first()
    )
    if question_id is None:
        metrics.STOPS.labels(stop_signal.RECALL, "nothing").inc()
        return False
    stop(question_id, stop_signal.RECALL)
    return True


def stop(question_id: int, how: str) -> None:
    """Stop the answer to one question, wherever it is; `how` is stop_signal.COMMAND or
    RECALL."""
    stop_signal.request(question_id, how)
    admission.due_now(question_id)  # one waiting its turn is stopped now, not at its turn
    question = Claim.take(question_id, Message.Role.USER)
    if question is None:  # a worker holds it, or it waits for a retry: the signal does it
        metrics.STOPS.labels(how, "answering").inc()
        return
    row = question.row
    with transaction.atomic():
        if not stop_signal.silent(row, "", how):
            reply = row.new_reply(texts.stopped(row.tenant, ""))
            reply.save(force_insert=True)
            transaction.on_commit(lambda: tasks.enqueue(reply.pk, Message.Role.ASSISTANT))
        total_ms = ms_between(row.created_at, timezone.now())
        question.succeed(stopped=True, done_reason=STOPPED, total_ms=total_ms)
    admission.leave(question_id)  # a slot granted to it as it was stopped goes on
    metrics.STOPS.labels(how, "queued").inc()
