"""What the model sees: the system prompt, the session's last rounds and the new message.

Token counts are estimated, not measured (the model's tokenizer is not at hand): one
token per CJK character and one per four other characters, rounded up, plus a few
tokens of chat-template overhead per message. That overestimates English slightly
and Chinese hardly at all, which is the safe direction for a context budget.
"""

from __future__ import annotations

import math

from django.conf import settings

from .models import Message

TEMPLATE_TOKENS_PER_MESSAGE = 4


def estimate_tokens(text: str) -> int:
    cjk = sum(1 for ch in text if _is_cjk(ch))
    return cjk + math.ceil((len(text) - cjk) / 4) + TEMPLATE_TOKENS_PER_MESSAGE


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x3000 <= code <= 0x9FFF  # CJK symbols, kana, unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x20000 <= code <= 0x2FFFF
    )


def build_messages(question: Message) -> list[dict[str, str]]:
    """The chat history for `question`, trimmed oldest-first to the tenant's budget."""
    tenant = question.tenant
    system = question.bot.system_prompt or tenant.system_prompt
    budget = tenant.num_ctx - settings.OLLAMA_NUM_PREDICT
    head = [{"role": "system", "content": system}] if system else []
    tail = [{"role": "user", "content": question.content}]
    budget -= sum(estimate_tokens(m["content"]) for m in head + tail)

    history: list[dict[str, str]] = []
    for asked, answer in _rounds(question, tenant.context_max_rounds):  # newest first
        cost = estimate_tokens(asked) + estimate_tokens(answer)
        if cost > budget:
            break
        budget -= cost
        history[:0] = [{"role": "user", "content": asked}, {"role": "assistant", "content": answer}]
    return head + history + tail


def _rounds(question: Message, max_rounds: int) -> list[tuple[str, str]]:
    """The session's last answered questions with their answers, newest first: one
    indexed query, bounded rows. Failed questions, commands and refusals are left out."""
    if max_rounds == 0:
        return []
    return list(
        Message.objects.filter(
            conversation_id=question.conversation_id,
            id__lt=question.pk,
            role=Message.Role.USER,
            status=Message.Status.ANSWERED,
        )
        .order_by("-id")
        .values_list("content", "reply__content")[:max_rounds]
    )
