"""The worker's side: claim a queued message, ask the model, store and deliver the answer.

The row is the source of truth. A claim is a conditional UPDATE, so a redelivered task,
a retry and the sweep can all point at the same row and only one of them answers.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import llm, texts
from .claims import RetryLater, backoff, claim, release
from .context import build_messages
from .delivery import outbound_for
from .live import LiveProgress
from .models import Message
from .replies import add_reply

logger = logging.getLogger(__name__)


def answer(message_id: int) -> None:
    """Answer one queued message, or do nothing if another worker owns it."""
    question = claim(message_id, Message.Role.USER)
    if question is None:
        logger.info("message %s is not claimable (answered or owned); skipping", message_id)
        return
    if question.queue_wait_ms is None:
        question.queue_wait_ms = _ms(timezone.now() - question.created_at)
        Message.objects.filter(pk=question.pk).update(queue_wait_ms=question.queue_wait_ms)
    tenant = question.tenant
    live = question.bot.adapter.live(outbound_for(question))
    try:
        completion = llm.chat(
            tenant.endpoint,
            tenant.model,
            build_messages(question),
            options=model_options(tenant),
            keep_alive=tenant.keep_alive or None,
            on_delta=LiveProgress(question, live) if live else None,
        )
    except llm.LLMError as exc:
        handle_failure(question, exc)
        return
    record_answer(question, completion)


def model_options(tenant) -> dict:  # noqa: ANN001 - a Tenant
    options: dict = {"num_ctx": tenant.num_ctx}
    if tenant.temperature is not None:
        options["temperature"] = tenant.temperature
    return options


@transaction.atomic
def record_answer(question: Message, completion: llm.Completion) -> None:
    Message.objects.filter(pk=question.pk).update(
        status=Message.Status.ANSWERED,
        claimed_until=None,
        error="",
        model=completion.model,
        first_token_ms=completion.first_token_ms,
        total_ms=_ms(timezone.now() - question.created_at),
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
    )
    add_reply(question, completion.content, model=completion.model)


def handle_failure(question: Message, exc: llm.LLMError) -> None:
    """Retry a transient failure with backoff; otherwise apologise and record why."""
    if not exc.permanent and question.attempts <= settings.OLLAMA_MAX_RETRIES:
        countdown = backoff(question.attempts, settings.OLLAMA_RETRY_BACKOFF)
        release(question, after=countdown, error=str(exc))
        raise RetryLater(countdown) from exc
    logger.warning("message %s failed for good: %s", question.pk, exc)
    with transaction.atomic():
        Message.objects.filter(pk=question.pk).update(
            status=Message.Status.FAILED,
            claimed_until=None,
            error=str(exc),
            model=question.tenant.model,
            total_ms=_ms(timezone.now() - question.created_at),
        )
        add_reply(question, texts.apology(question.tenant))
    question.bot.record_error(f"model: {exc}")


def _ms(delta: timedelta) -> int:
    return max(int(delta.total_seconds() * 1000), 0)
