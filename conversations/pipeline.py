"""The worker's side: claim a queued question, ask the model, deliver and store the answer.

The question's `Claim` (claims.py) owns its row and, until it is written, its answer's:
when each is written and who retries what is decided there. The answer is sent by the
same worker (no second broker hop) and its row written right after, with the outcome;
then the question is marked answered with its figures. Writing the row first would keep
nothing safer: a worker dying between the send and its record answers twice either way
(the platform's idempotency key, one per question, catches that where there is one). A
question claimed again that has an answer row only records the outcome: that row carries
its own delivery.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from common import metrics
from tenants.models import Tenant
from tenants.validators import ollama_keep_alive

from . import delivery, llm, quotas, sent, stop_signal, texts
from .claims import Claim, Failure, RetryLater, ms_between
from .context import build_messages, estimate_tokens
from .live import LiveProgress, SignOfLife
from .models import Message
from .streams import TIMEOUT

logger = logging.getLogger(__name__)


def answer(message_id: int) -> None:
    """Answer one queued question, or do nothing if another worker owns it.

    Raises RetryLater when the question (transient model failure) or its answer
    (transient send failure) is to be worked on again later.
    """
    question = Claim.take(message_id, Message.Role.USER)
    if question is None:
        logger.info("message %s is not claimable (answered or owned); skipping", message_id)
        return
    if question.row.attempts > 1 and Message.objects.filter(reply_to=question.row).exists():
        # An earlier worker sent or stored the answer, then died before recording this
        # question: the answer row carries its own delivery.
        question.succeed()
        return
    if question.row.attempts > 1 and (earlier := sent.recall(question.row)) is not None:
        # An earlier worker sent the answer while the database could not record it.
        question.answer(earlier).succeed(delivered_at=timezone.now())
        question.succeed()
        return
    if (gave_up := question.crash_loop or question.out_of_time) is not None:
        fail(question, gave_up)
        return
    # Admitted on its first claim: a retry was counted then.
    if question.row.attempts == 1 and (over := quotas.admit(question.row)) is not None:
        refuse(question, over)
        return
    stop = stop_signal.Watch(question.row.pk)
    try:
        completion = ask_model(question, stop)
    except llm.LLMError as exc:
        fail(question, exc)
        return
    except Exception as exc:  # noqa: BLE001 - a bug or a time limit must not strand the row
        logger.exception("answering message %s failed unexpectedly", question.row.pk)
        fail(question, llm.ModelUnavailable(f"{type(exc).__name__}: {exc}"))
        return
    text = completion.content
    if completion.done_reason in ("length", TIMEOUT):
        text = f"{text.rstrip()}\n\n{texts.cut_off(question.row.tenant, completion.done_reason)}"
    elif completion.done_reason == llm.STOPPED:
        if stop_signal.silent(question.row, text, stop.how):
            question.succeed(**figures(question.row, completion))
            return
        text = texts.stopped(question.row.tenant, text)
    answer_claim = question.answer(text, model=completion.model)
    try:
        delivery.send(answer_claim)
    except RetryLater:
        # Stored for the delivery queue: the question is answered, its answer waits.
        question.succeed(**figures(question.row, completion))
        raise
    if answer_claim.row.status == Message.Status.FAILED:
        question.fail_with(answer_claim, **figures(question.row, completion))
    else:
        question.succeed(**figures(question.row, completion))


def ask_model(question: Claim, stop: stop_signal.Watch) -> llm.Completion:
    """The model's answer to the question, within what is left of its budget; the text
    so far (done_reason "stopped") once `stop` sees the question stopped."""
    row = question.row
    tenant = row.tenant
    check_model_settings(tenant)
    messages = build_messages(row)
    live = row.bot.adapter.live(delivery.outbound_for(row))
    progress = LiveProgress(question, live, texts.thinking(tenant)) if live else None
    # One sign of life per question: a retry does not send another.
    first = row.attempts == 1
    waiting = (
        SignOfLife(question, texts.still_writing(tenant)) if first and not live else nullcontext()
    )
    with waiting, stop:
        completion = llm.chat(
            tenant.endpoint,
            tenant.model,
            messages,
            options=model_options(tenant),
            keep_alive=ollama_keep_alive(tenant.keep_alive),
            on_delta=progress,
            on_thinking=progress.thinking if progress else None,
            deadline=time.monotonic() + (question.seconds_left() or 0),
            hangup=stop.hangup,
        )
    if not completion.content.strip() and completion.done_reason != llm.STOPPED:
        raise llm.ModelUnavailable("the model returned an empty answer")
    if completion.prompt_tokens is None or completion.completion_tokens is None:
        # An OpenAI-compatible server may report no usage: estimated, and marked so.
        completion.prompt_tokens = sum(estimate_tokens(m["content"]) for m in messages)
        completion.completion_tokens = estimate_tokens(completion.content)
        completion.tokens_estimated = True
    return completion


def check_model_settings(tenant: Tenant) -> None:
    """Raise ModelRejected (permanent) if the tenant's endpoint or options fail today's
    validators: a row saved before them may name a host we no longer call, and retrying
    cannot fix it."""
    try:
        tenant.check_model_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{name}: {' '.join(messages)}" for name, messages in exc.message_dict.items()
        )
        raise llm.ModelRejected(f"the tenant's model settings need fixing: {problems}") from exc


def model_options(tenant: Tenant) -> dict[str, Any]:
    options: dict[str, Any] = {"num_ctx": tenant.num_ctx}
    if tenant.temperature is not None:
        options["temperature"] = tenant.temperature
    return options


def figures(question: Message, completion: llm.Completion) -> dict[str, Any]:
    """The question's figures; total_ms runs until the answer was sent."""
    return {
        "model": completion.model,
        "done_reason": completion.done_reason,
        "first_token_ms": completion.first_token_ms,
        "total_ms": ms_between(question.created_at, timezone.now()),
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "tokens_estimated": completion.tokens_estimated,
        "stopped": completion.done_reason == llm.STOPPED,
    }


def fail(question: Claim, exc: Failure) -> None:
    """Retry a transient failure later (raises RetryLater); otherwise the person gets an
    apology and the row says why."""
    row = question.row
    apology = question.fail(
        exc,
        apology=texts.apology(row.tenant, exc),
        model=row.tenant.model,
        total_ms=ms_between(row.created_at, timezone.now()),
    )
    if apology is not None:
        delivery.send(apology)


def refuse(question: Claim, over: quotas.Refusal) -> None:
    """Log the question as over a quota, the model unasked; tell the person once per
    period (on a platform that must answer every message, every time)."""
    row = question.row
    metrics.REFUSED.labels(row.tenant.slug, over.reason).inc()
    notice = None
    with transaction.atomic():
        question.record(status=Message.Status.QUOTA_EXCEEDED, claimed_until=None, error=str(over))
        if over.notify or row.bot.adapter.answers_every_message:
            notice = question.answer(texts.quota_exceeded(row.tenant, over))
            notice.record()
    if notice is not None:
        delivery.send(notice)
