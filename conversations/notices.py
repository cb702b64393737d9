"""What the asker is told while the answer cannot start: where the question stands in its
model's queue, and that the model is loading.

Both go where the answer will appear when the platform shows an answer growing (a WeCom
robot's stream, a Feishu or DingTalk card: `LiveProgress.status`), the answer then taking
their place; elsewhere as one short message. A channel that carries only the answer (the
REST API's event stream) is told nothing: the API shows the question's status.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from . import admission, llm, texts
from .admission import Waiting, endpoint_key
from .claims import Claim
from .delivery import outbound_for
from .live import LiveProgress, send_notice

logger = logging.getLogger(__name__)

# A loaded model is asked about again after this long (it unloads after its keep_alive).
_LOADED_SECONDS = 60
# `/api/ps` is a lookup in the server's memory: a server slower than this is busy anyway.
_PS_TIMEOUT = 1.0
# A live notice is said again every IM_QUEUE_UPDATE_SECONDS, or every this fraction of the
# question's estimated wait when that is longer: each update wakes the question and reads
# its endpoint's line, and 2,000 questions of a burst updated every 10 s would be 200 such
# reads a second, for figures that barely move.
_UPDATE_FRACTION = 1 / 6


def queue_position(question: Claim, waiting: Waiting) -> datetime | None:
    """Tell the asker where `question` stands once it has waited IM_QUEUE_NOTICE_SECONDS:
    in the live message (said again every IM_QUEUE_UPDATE_SECONDS, or every sixth of
    the estimated wait when that is longer), else once as a short message. Returns when
    to tell them next; None: nothing more to tell."""
    row = question.row
    live = row.bot.adapter.live(outbound_for(row))
    told = waiting.notified_at
    if settings.IM_QUEUE_NOTICE_SECONDS <= 0 or (live is None and told is not None):
        return None
    if live is not None and not live.shows_thinking:
        return None  # a channel that carries only the answer
    if told is None:
        due = row.created_at + timedelta(seconds=settings.IM_QUEUE_NOTICE_SECONDS)
    else:
        due = told + _update_every(waiting)
    now = timezone.now()
    if now < due:
        return due
    text = texts.queued(row.tenant, waiting.ahead, waiting.eta_seconds)
    if live is None:
        send_notice(row, text, key=f"p{row.pk}")
    else:
        LiveProgress(question, live, texts.thinking(row.tenant)).status(text)
    admission.notified(row.pk, now)
    return None if live is None else now + _update_every(waiting)


def _update_every(waiting: Waiting) -> timedelta:
    seconds = max(settings.IM_QUEUE_UPDATE_SECONDS, (waiting.eta_seconds or 0) * _UPDATE_FRACTION)
    return timedelta(seconds=seconds)


def model_loading(
    question: Claim, progress: LiveProgress | None, endpoint: str, model: str
) -> bool:
    """If `model` must be loaded before it answers, tell the asker so: in the live message
    (`progress`), else as one short message. Returns whether they were told."""
    if not must_load(endpoint, model):
        return False
    row = question.row
    text = texts.loading(row.tenant)
    if progress is not None:
        return progress.status(text)
    send_notice(row, text, key=f"l{row.pk}")
    return True


def must_load(endpoint: str, model: str) -> bool:
    """Whether the endpoint says `model` is not in its memory (Ollama unloads a model after
    its keep_alive of quiet, and loading takes seconds to a minute). False when it is, or
    when the endpoint cannot tell; the answer is shared through the cache for a while."""
    key = f"im:model-loaded:{endpoint_key(endpoint)}:{model}"
    try:
        if cache.get(key):
            return False
        loaded = llm.loaded_models(endpoint, _PS_TIMEOUT)
        # A name without a tag is Ollama's ":latest".
        if loaded is None or model in loaded or f"{model}:latest" in loaded:
            cache.set(key, True, _LOADED_SECONDS)
            return False
    except Exception:  # noqa: BLE001 - any cache backend's failure: a notice is not worth it
        logger.warning("could not tell whether %s is loaded", model)
        return False
    return True
