"""Bots with their tenants, remembered for a few seconds in each process.

Platforms call hard (the WeCom robot polls every stream about once a second), and the
bot lookup with its decryption is the largest part of answering a poll; workers need
the bot and tenant of every message they claim. A change to a bot or tenant is seen at
once by the process that saved it, and by the others within IM_BOT_CACHE_SECONDS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any
from uuid import UUID

from django.conf import settings

from .models import Bot

_bots: dict[Hashable, tuple[float, Bot]] = {}


def active_bot(platform: str, public_id: UUID) -> Bot:
    """The active bot of an active tenant at this address; Bot.DoesNotExist otherwise."""
    return _remembered(
        (platform, public_id),
        lambda: Bot.objects.select_related("tenant").get(
            public_id=public_id, platform=platform, is_active=True, tenant__is_active=True
        ),
    )


def bot_by_id(pk: int) -> Bot:
    """A bot, active or not, with its tenant: a message accepted before a bot was switched
    off is still answered."""
    return _remembered(pk, lambda: Bot.objects.select_related("tenant").get(pk=pk))


def _remembered(key: Hashable, load: Callable[[], Bot]) -> Bot:
    now = time.monotonic()
    hit = _bots.get(key)
    if hit and hit[0] > now:
        return hit[1]
    bot = load()
    if settings.IM_BOT_CACHE_SECONDS > 0:
        _bots[key] = (now + settings.IM_BOT_CACHE_SECONDS, bot)
    return bot


def forget_all(**kwargs: Any) -> None:
    """Receiver for saves and deletes of bots and tenants."""
    _bots.clear()
