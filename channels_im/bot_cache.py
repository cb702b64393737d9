"""Active bots by callback address, remembered for a few seconds in each process.

Platforms call hard (the WeCom robot polls every stream about once a second), and the
bot lookup with its decryption is the largest part of answering a poll. A change to a
bot or tenant is seen at once by the process that saved it, and by the others within
IM_BOT_CACHE_SECONDS.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from django.conf import settings

from .models import Bot

_bots: dict[tuple[str, UUID], tuple[float, Bot]] = {}


def active_bot(platform: str, public_id: UUID) -> Bot:
    """The active bot of an active tenant at this address; Bot.DoesNotExist otherwise."""
    key = (platform, public_id)
    now = time.monotonic()
    hit = _bots.get(key)
    if hit and hit[0] > now:
        return hit[1]
    bot = Bot.objects.select_related("tenant").get(
        public_id=public_id, platform=platform, is_active=True, tenant__is_active=True
    )
    if settings.IM_BOT_CACHE_SECONDS > 0:
        _bots[key] = (now + settings.IM_BOT_CACHE_SECONDS, bot)
    return bot


def forget_all(**kwargs: Any) -> None:
    """Receiver for saves and deletes of bots and tenants."""
    _bots.clear()
