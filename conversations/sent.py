"""Answers that went out, remembered where a database outage cannot lose them.

A worker sends an answer, then writes its row. With the database down at that moment
the row cannot say so, and the question, taken again once the database is back, would
be answered a second time: Feishu drops the copy (one message per uuid), but WeCom and
DingTalk show it. So a sent answer is first written to the cache (Redis in production,
shared by every worker; it does not depend on the database), by question, for a day; a
worker that finds it there records the answer instead of asking and sending again. The
cache must be shared by the workers (Redis, or the embedded file cache), as in every
supported setup.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache

from .models import Message

logger = logging.getLogger(__name__)


def remember(question: Message, text: str) -> None:
    """`text` went out as the answer to `question`. Kept until the sweep has certainly
    handed the question on (a claim's length plus the sweep's grace, and ten minutes);
    a cache outage is logged, not raised: the answer is out, and its row records it."""
    lifetime = settings.IM_CLAIM_SECONDS + settings.IM_STUCK_AFTER_SECONDS + 600
    try:
        cache.set(_key(question), text, lifetime)
    except Exception:  # noqa: BLE001 - any cache backend's failure
        logger.warning("could not remember that question %s was answered", question.pk)


def recall(question: Message) -> str | None:
    """The answer that went out to `question`, if one did; None if none (or the cache
    cannot say)."""
    try:
        return cache.get(_key(question))
    except Exception:  # noqa: BLE001 - any cache backend's failure
        logger.warning("could not ask the cache whether question %s was answered", question.pk)
        return None


def _key(question: Message) -> str:
    # The creation time as well: after a database is restored from a backup, ids are
    # handed out again, and a new question must not find an old one's answer.
    return f"im:sent:{question.pk}:{question.created_at.timestamp():.6f}"
