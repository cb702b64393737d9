"""Answers that went out, remembered where a database outage cannot lose them.

A worker sends an answer, then writes its row. With the database down at that moment
the row cannot say so, and the question, taken again once the database is back, would
be answered a second time: Feishu drops the copy (one message per uuid), but WeCom and
DingTalk show it. So a sent answer is first written to the cache (Redis in production,
shared by every worker; it does not depend on the database), by question, for a day; a
worker that finds it there records the answer instead of asking and sending again.
"""

from __future__ import annotations

import logging

from django.core.cache import cache

logger = logging.getLogger(__name__)

# Longer than any question stays pending: the sweep hands a question on within minutes.
REMEMBER_SECONDS = 24 * 3600


def remember(question_id: int, text: str) -> None:
    """`text` went out as the answer to this question. A cache outage is logged, not
    raised: the answer is out, and its row still records it."""
    try:
        cache.set(_key(question_id), text, REMEMBER_SECONDS)
    except Exception:  # noqa: BLE001 - any cache backend's failure
        logger.warning("could not remember that question %s was answered", question_id)


def recall(question_id: int) -> str | None:
    """The answer that went out to this question, if one did; None if none (or the
    cache cannot say)."""
    try:
        return cache.get(_key(question_id))
    except Exception:  # noqa: BLE001 - any cache backend's failure
        logger.warning("could not ask the cache whether question %s was answered", question_id)
        return None


def _key(question_id: int) -> str:
    return f"im:sent:{question_id}"
