"""A conversation as the auditor reads it: each question with its answer and figures.

The admin's conversation page shows it (templates/admin/conversations/conversation/),
PER_PAGE questions at a time, oldest first; `?message=<id>` opens the page that holds
that message, which the message list's links use with an anchor at the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.paginator import Page, Paginator
from django.urls import reverse
from django.utils.translation import gettext as _

from .dashboard import duration
from .models import Conversation, Message

PER_PAGE = 50


@dataclass(frozen=True)
class Exchange:
    """A question and its answer (None until there is one). The question's row carries
    the exchange's status, error, timings and tokens; the answer's its text and delivery."""

    question: Message
    answer: Message | None

    @property
    def anchor(self) -> str:
        return anchor(self.question)

    @property
    def answer_anchor(self) -> str:
        return anchor(self.answer) if self.answer else ""

    @property
    def figures(self) -> list[tuple[str, str]]:
        """(label, text) of each figure the question has, in reading order."""
        row = self.question
        model = (self.answer.model if self.answer else "") or row.model
        timings = [
            (_("queue wait"), row.queue_wait_ms),
            (_("time to first token"), row.first_token_ms),
            (_("total time"), row.total_ms),
        ]
        shown = [(_("model"), model), (_("tokens (prompt / completion)"), tokens(row))]
        shown += [(label, duration(ms)) for label, ms in timings if ms is not None]
        shown.append((_("done reason"), row.done_reason))
        return [(label, text) for label, text in shown if text]


def anchor(message: Message) -> str:
    """The id of the message's place in the transcript's HTML."""
    return f"message-{message.pk}"


def url(message: Message) -> str:
    """The transcript of the message's conversation, opened at the message."""
    page = reverse("admin:conversations_conversation_change", args=[message.conversation_id])
    return f"{page}?message={message.pk}#{anchor(message)}"


def page(conversation: Conversation, query: Mapping[str, str]) -> Page[Any]:
    """One page of the conversation's exchanges, chosen by the query's `message` (a
    message id of this conversation) or else its `page` (a number; out of range or not a
    number gives the nearest page)."""
    questions = conversation.messages.filter(role=Message.Role.USER).select_related("reply")
    questions = questions.order_by("id")
    paginator = Paginator(questions, PER_PAGE)
    number = query.get("page")
    wanted = query.get("message", "")
    if wanted.isdigit():
        found = conversation.messages.filter(pk=wanted).values_list("pk", "reply_to_id").first()
        if found:
            before = questions.filter(pk__lt=found[1] or found[0]).count()
            number = str(before // PER_PAGE + 1)
    shown: Page[Any] = paginator.get_page(number)
    shown.object_list = [exchange(row) for row in shown.object_list]  # the page's Exchanges
    return shown


def exchange(question: Message) -> Exchange:
    return Exchange(question, getattr(question, "reply", None))


def tokens(row: Message) -> str:
    """The counts as "120 / 48", "(estimated)" where the endpoint reported none; "" for none."""
    if row.prompt_tokens is None and row.completion_tokens is None:
        return ""
    text = f"{row.prompt_tokens or 0} / {row.completion_tokens or 0}"
    return _("%(counts)s (estimated)") % {"counts": text} if row.tokens_estimated else text
