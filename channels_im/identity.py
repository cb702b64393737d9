"""What a bot's platform can tell about the bot itself, learned so the admin need not.

A Feishu app's credentials are enough to ask Feishu for the bot's own open_id, which
tells its @mentions from anyone else's in a group. A periodic task asks every active bot
whose platform has something to tell; never the callback view, which answers the
platform in milliseconds and calls no platform API.
"""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import transaction

from .models import Bot
from .platforms.base import DeliveryError

logger = logging.getLogger(__name__)


# A platform that refused is asked again after this long, not every minute: the bot's
# last error says why once, and real delivery errors are not buried under it.
RETRY_AFTER_SECONDS = 3600


def learn_identities() -> int:
    """Store what each active bot's platform tells about it; the number of bots updated.

    A platform that refuses (bad credentials, no scope) is recorded as the bot's last
    error and asked again an hour later.
    """
    learned = 0
    for bot in Bot.objects.filter(is_active=True, tenant__is_active=True).select_related("tenant"):
        refused = f"im:identity-refused:{bot.pk}"
        if cache.get(refused):
            continue
        try:
            found = bot.adapter.learn_identity()
        except DeliveryError as exc:
            logger.warning("bot %s: could not learn its identity: %s", bot.pk, exc)
            bot.record_error(f"identity: {exc}")
            cache.set(refused, 1, RETRY_AFTER_SECONDS)
            continue
        if found:
            remember(bot.pk, found)
            learned += 1
    return learned


def remember(bot_id: int, found: dict[str, str]) -> None:
    """Merge `found` into the stored credentials, against an admin's concurrent save."""
    with transaction.atomic():
        bot = Bot.objects.select_for_update().get(pk=bot_id)
        bot.credentials = {**bot.credentials, **found}
        bot.save(update_fields=["credentials"])
