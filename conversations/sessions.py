"""Which session an inbound message belongs to: the open one of its (bot, chat, user), or
a new one after the tenant's timeout of silence or a /reset."""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

from django.db import connection
from django.utils import timezone

from channels_im.models import Bot
from channels_im.platforms.base import InboundMessage

from .models import Conversation

_TABLE = Conversation._meta.db_table

# Find the newest fresh session and mark its activity in one statement (it runs for every
# message). The outer `closed_at IS NULL` is checked again on the row's newest version, so
# a /reset committed meanwhile makes this return nothing and a new session open.
_TOUCH_SQL = f"""
    UPDATE {_TABLE} SET last_activity_at = %s
    WHERE closed_at IS NULL AND id = (
        SELECT id FROM {_TABLE}
        WHERE bot_id = %s AND chat_id = %s AND user_id = %s
            AND last_activity_at >= %s AND closed_at IS NULL
        ORDER BY last_activity_at DESC
        LIMIT 1
    )
    RETURNING id
"""  # noqa: S608 - a constant table name, values as parameters


class Session(NamedTuple):
    id: int
    opened: bool  # by this call


def session_for(bot: Bot, inbound: InboundMessage) -> Session:
    """The session `inbound` continues, or one opened for it if none is fresh."""
    user_id = "" if (inbound.is_group and bot.shared_group_session) else inbound.sender
    now = timezone.now()
    fresh_after = now - timedelta(seconds=bot.tenant.session_timeout_seconds)
    at = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(_TOUCH_SQL, [at(now), bot.pk, inbound.chat, user_id, at(fresh_after)])
        touched = cursor.fetchone()
    if touched is not None:
        return Session(touched[0], opened=False)
    opened = Conversation.objects.create(
        tenant_id=bot.tenant_id,
        bot=bot,
        chat_id=inbound.chat,
        user_id=user_id,
        last_activity_at=now,
    )
    return Session(opened.pk, opened=True)


def close(session_id: int) -> None:
    """End a session: the next message opens a new one."""
    Conversation.objects.filter(pk=session_id).update(closed_at=timezone.now())
