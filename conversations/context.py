"""What the model sees: the system prompt, the session's last rounds and the new message.

Never more than fits: Ollama silently drops the start of a prompt longer than num_ctx
(the system prompt first), and an OpenAI-compatible server ends the stream without its
end marker. So the system prompt is kept, old rounds are dropped first, and a question
that does not fit on its own is refused (QuestionTooLong, permanent) before any call.

Token counts are estimated, not measured (the model's tokenizer is not at hand), and on
the high side, the safe direction for a context budget: two tokens per CJK character
and one per three other characters, plus a few tokens of chat-template overhead per
message. Real tokenizers measured 1.5–1.95 tokens per Chinese character (small models'
English-centred vocabularies) and 3.6 characters per English token.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.db import connection

from .llm import ModelRejected
from .models import Message

TEMPLATE_TOKENS_PER_MESSAGE = 4
# Plain SQL: it runs for every question, and the ORM took longer to build it than the
# database to answer it (msg_context_idx). A question closed without an answer row (taken
# back, or stopped before a word) is no round.
_ROUNDS_SQL = f"""
    SELECT q.content, a.content FROM {Message._meta.db_table} q
    JOIN {Message._meta.db_table} a ON a.reply_to_id = q.id
    WHERE q.conversation_id = %s AND q.id < %s AND q.role = %s AND q.status = %s
        AND q.redacted_at IS NULL
    ORDER BY q.id DESC
    LIMIT %s
"""  # noqa: S608 - a constant table name, values as parameters


class QuestionTooLong(ModelRejected):
    """The question alone does not fit the model's context: the person must shorten it."""

    notice = "question_too_long"

    def __init__(self, needed: int, room: int):
        super().__init__(f"the question needs about {needed} tokens; the context has {room}")
        self.needed, self.room = needed, room


def estimate_tokens(text: str) -> int:
    """Tokens `text` takes as one chat message, estimated high (see the module docstring)."""
    cjk = sum(1 for ch in text if _is_cjk(ch))
    return 2 * cjk + math.ceil((len(text) - cjk) / 3) + TEMPLATE_TOKENS_PER_MESSAGE


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
    """The chat history for `question`, trimmed oldest-first to the tenant's budget.

    Raises QuestionTooLong when the system prompt and the question alone leave no room
    for the answer (OLLAMA_NUM_PREDICT tokens) within num_ctx.
    """
    tenant = question.tenant
    system = question.bot.system_prompt or tenant.system_prompt
    room = tenant.num_ctx - settings.OLLAMA_NUM_PREDICT
    head = [{"role": "system", "content": system}] if system else []
    tail = [{"role": "user", "content": question.content}]
    needed = sum(estimate_tokens(m["content"]) for m in head + tail)
    if needed > room:
        raise QuestionTooLong(needed, room)
    budget = room - needed

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
    indexed query, bounded rows. Failed questions, commands and refusals are left out,
    and so are questions closed without an answer and rounds whose text retention has
    redacted."""
    if max_rounds == 0:
        return []
    params: list[Any] = [question.conversation_id, question.pk]
    params += [Message.Role.USER, Message.Status.ANSWERED, max_rounds]
    with connection.cursor() as cursor:
        cursor.execute(_ROUNDS_SQL, params)
        return cursor.fetchall()
