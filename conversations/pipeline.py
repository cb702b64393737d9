"""The worker's side: claim a queued question, ask the model, deliver and store the answer.

The question's `Claim` (claims.py) owns its row and, until it is written, its answer's:
when each is written and who retries what is decided there. The answer is sent by the
same worker (no second broker hop) and its row written right after, with the outcome;
then the question is marked answered with its figures. Writing the row first would keep
nothing safer: a worker dying between the send and its record answers twice either way
(the platform's idempotency key, one per question, catches that where there is one). A
question claimed again that has an answer row only records the outcome: that row carries
its own delivery.

Before the model is asked, the question takes a slot on its model endpoint (admission.py):
one that must wait its turn goes back to the queue, holding no worker, its asker told where
it stands (notices.py). A model that fails for good hands the question to the tenant's
fallback model, if it has one.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from typing import Any, NoReturn

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from common import metrics
from tenants.models import Tenant
from tenants.validators import ollama_keep_alive

from . import admission, delivery, llm, notices, quotas, sent, stop_signal, texts
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
    if (over := quotas.admit(question.row)) is not None:  # counted once, at its first claim
        refuse(question, over)
        return
    endpoint, model = target(question.row)
    stop = stop_signal.Watch(question.row.pk)
    try:
        check_model_settings(question.row.tenant)
        with stop, slot(question, endpoint, stop) as lease:
            completion = ask_model(question, endpoint, model, lease, stop)
    except RetryLater:
        raise  # waiting its turn: queued again, holding no worker
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


def target(question: Message) -> tuple[str, str]:
    """The endpoint and model that answer `question`: the tenant's, or its fallback once
    the question was handed to it."""
    tenant = question.tenant
    if question.fallback and tenant.has_fallback:
        return tenant.fallback_endpoint, tenant.fallback_model or tenant.model
    return tenant.endpoint, tenant.model


def slot(question: Claim, endpoint: str, stop: stop_signal.Watch) -> admission.Lease:
    """The question's slot on its model endpoint (admission.py); none for a question
    stopped already, whose model is not asked. While it waits its turn, its asker is told
    where it stands and RetryLater is raised: the question is queued again until it is
    granted a slot, or due a notice, holding no worker meanwhile."""
    if stop.hangup.requested:
        return admission.Lease.unheld()
    ticket = admission.admit(question, endpoint)
    if isinstance(ticket, admission.Lease):
        return ticket
    return admission.park(question, endpoint, ticket, notices.queue_position(question, ticket))


def ask_model(
    question: Claim, endpoint: str, model: str, lease: admission.Lease, stop: stop_signal.Watch
) -> llm.Completion:
    """The model's answer to the question, within what is left of its budget; the text
    so far (done_reason "stopped") once `stop` sees the question stopped. Every token
    renews the question's slot."""
    row = question.row
    tenant = row.tenant
    messages = build_messages(row)
    live = row.bot.adapter.live(delivery.outbound_for(row))
    progress = LiveProgress(question, live, texts.thinking(tenant)) if live else None
    # One notice of each kind per question: a retry does not send another.
    first = row.attempts == 1 and not stop.hangup.requested
    loading = first and notices.model_loading(question, progress, endpoint, model)
    waiting = (
        SignOfLife(question, texts.still_writing(tenant))
        if first and not live and not loading
        else nullcontext()
    )
    with waiting:
        completion = llm.chat(
            endpoint,
            model,
            messages,
            options=model_options(tenant),
            keep_alive=ollama_keep_alive(tenant.keep_alive),
            on_delta=progress,
            on_thinking=progress.thinking if progress else None,
            deadline=time.monotonic() + (question.seconds_left() or 0),
            hangup=stop.hangup,
            on_token=lease.renew,
        )
    lease.answer_seconds = completion.total_ms / 1000
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
        "endpoint": target(question)[0],
        "done_reason": completion.done_reason,
        "first_token_ms": completion.first_token_ms,
        "total_ms": ms_between(question.created_at, timezone.now()),
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "tokens_estimated": completion.tokens_estimated,
        "stopped": completion.done_reason == llm.STOPPED,
    }


def fail(question: Claim, exc: Failure) -> None:
    """Retry a transient failure later (raises RetryLater); hand a model's failure for good
    to the tenant's fallback model (raises RetryLater); otherwise the person gets an
    apology and the row says why."""
    row = question.row
    if falls_back(question, exc):
        hand_to_fallback(question, exc)
    endpoint, model = target(row)
    apology = question.fail(
        exc,
        apology=texts.apology(row.tenant, exc),
        model=model,
        endpoint=endpoint,
        total_ms=ms_between(row.created_at, timezone.now()),
    )
    admission.leave(row.pk)  # failed for good: out of its model's line, if still in it
    if apology is not None:
        delivery.send(apology)


def refuse(question: Claim, over: quotas.Refusal) -> None:
    """Log the question as over a quota, the model unasked; tell the person once per
    period (on a platform that must answer every message, every time)."""
    row = question.row
    admission.leave(row.pk)  # never to be asked: out of its model's line
    metrics.REFUSED.labels(row.tenant.slug, over.reason).inc()
    notice = None
    with transaction.atomic():
        question.record(status=Message.Status.QUOTA_EXCEEDED, claimed_until=None, error=str(over))
        if over.notify or row.bot.adapter.answers_every_message:
            notice = question.answer(texts.quota_exceeded(row.tenant, over))
            notice.record()
    if notice is not None:
        delivery.send(notice)


def falls_back(question: Claim, exc: Failure) -> bool:
    """The tenant's model failed for good (no retry left, or one that cannot help) and
    its fallback has not been asked yet. A failure that is the question's own (too long,
    a model thinking past its length) would fail the fallback as well."""
    row = question.row
    return (
        isinstance(exc, llm.LLMError)
        and not exc.notice
        and row.tenant.has_fallback
        and not row.fallback
        and question.retry_in(exc) is None
    )


def hand_to_fallback(question: Claim, exc: Failure) -> NoReturn:
    """Queue the question again at once for the tenant's fallback model, which answers
    it from now on, its tries counted afresh; raises RetryLater."""
    row = question.row
    logger.warning("message %s: the model failed for good, asking the fallback: %s", row.pk, exc)
    row.bot.record_error(f"{question.policy.label}: {exc}")
    metrics.FALLBACKS.labels(metrics.endpoint_label(row.tenant.endpoint)).inc()
    question.record(
        status=Message.Status.QUEUED,
        claimed_until=None,
        attempts=0,
        fallback=True,
        error=f"{question.policy.label}: {exc}",
    )
    raise RetryLater(row.pk, row.role, 0)
