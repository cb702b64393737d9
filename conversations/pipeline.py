"""The worker's side: claim a queued message, ask the model, deliver and store the answer.

The row is the source of truth: a redelivered task, a Celery retry and the sweep may all
point at one row, and only the one holding its claim answers. The answer is sent by the
same worker (no second broker hop) and its row written right after, with the outcome;
then the question is marked answered with its figures. Writing the row first would keep
nothing safer: a worker dying between the send and its record answers twice either way
(the platform's idempotency key, one per question, catches that where there is one). An
answer sent in parts is stored once its first part is out, so a crash resumes after the
parts sent; a failed send stores it for the delivery queue to retry; and a question
claimed again that has a reply row only records the outcome.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import delivery, llm, texts
from .claims import RetryLater, backoff, claim, ms_between, release, settle
from .context import build_messages
from .live import LiveProgress
from .models import Message
from .replies import add_reply, enqueue_delivery, new_reply

logger = logging.getLogger(__name__)


def answer(message_id: int) -> None:
    """Answer one queued message, or do nothing if another worker owns it."""
    question = claim(message_id, Message.Role.USER)
    if question is None:
        logger.info("message %s is not claimable (answered or owned); skipping", message_id)
        return
    if question.attempts > 1 and Message.objects.filter(reply_to=question).exists():
        # An earlier worker sent or stored the answer, then died before recording this
        # question: the reply row carries its own delivery.
        settle(question, status=Message.Status.ANSWERED, claimed_until=None, error="")
        return
    if question.attempts > settings.OLLAMA_MAX_RETRIES + 1:
        # Claimed again and again without an outcome (a crash loop): stop and apologise.
        gave_up = llm.ModelUnavailable(f"gave up after {question.attempts - 1} attempts")
        deliver_now(handle_failure(question, gave_up))
        return
    try:
        completion = ask_model(question)
    except llm.LLMError as exc:
        reply = handle_failure(question, exc)
    except Exception as exc:  # noqa: BLE001 - a bug or a time limit must not strand the row
        logger.exception("answering message %s failed unexpectedly", question.pk)
        reply = handle_failure(question, llm.ModelUnavailable(f"{type(exc).__name__}: {exc}"))
    else:
        deliver_now(new_reply(question, completion.content, model=completion.model, claimed=True))
        record_answer(question, completion)
        return
    deliver_now(reply)


def ask_model(question: Message) -> llm.Completion:
    tenant = question.tenant
    live = question.bot.adapter.live(delivery.outbound_for(question))
    completion = llm.chat(
        tenant.endpoint,
        tenant.model,
        build_messages(question),
        options=model_options(tenant),
        keep_alive=tenant.keep_alive or None,
        on_delta=LiveProgress(question, live) if live else None,
    )
    if not completion.content.strip():
        raise llm.ModelUnavailable("the model returned an empty answer")
    return completion


def model_options(tenant) -> dict:  # noqa: ANN001 - a Tenant
    options: dict = {"num_ctx": tenant.num_ctx}
    if tenant.temperature is not None:
        options["temperature"] = tenant.temperature
    return options


def record_answer(question: Message, completion: llm.Completion) -> None:
    """The question's outcome and figures; total_ms runs until the answer was sent."""
    settle(
        question,
        status=Message.Status.ANSWERED,
        claimed_until=None,
        error="",
        model=completion.model,
        first_token_ms=completion.first_token_ms,
        total_ms=ms_between(question.created_at, timezone.now()),
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
    )


def handle_failure(question: Message, exc: llm.LLMError) -> Message:
    """Retry a transient failure with backoff; otherwise store an apology and say why."""
    if not exc.permanent and question.attempts <= settings.OLLAMA_MAX_RETRIES:
        countdown = backoff(question.attempts, settings.OLLAMA_RETRY_BACKOFF)
        release(question, after=countdown, error=str(exc))
        raise RetryLater(countdown) from exc
    logger.warning("message %s failed for good: %s", question.pk, exc)
    with transaction.atomic():
        settle(
            question,
            status=Message.Status.FAILED,
            claimed_until=None,
            error=str(exc),
            model=question.tenant.model,
            total_ms=ms_between(question.created_at, timezone.now()),
        )
        reply = add_reply(question, texts.apology(question.tenant), claimed=True)
    question.bot.record_error(f"model: {exc}")
    return reply


def deliver_now(reply: Message) -> None:
    """Send a reply this worker owns (stored or not yet); a transient failure goes to the
    queue, stored."""
    try:
        delivery.send(reply)
    except RetryLater as exc:
        enqueue_delivery(reply.pk, countdown=exc.countdown)
