"""Which session an inbound message belongs to: the open one of its (bot, chat, user), or
a new one after the tenant's timeout of silence or a /reset."""

from __future__ import annotations

from datetime import datetime, timedelta
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
TOUCH_SQL = f"""
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


def user_of(bot: Bot, inbound: InboundMessage) -> str:
    """Whose session a message is in, beside its chat: its sender's, or no one's where a
    bot shares one session per group."""
    return "" if (inbound.is_group and bot.shared_group_session) else inbound.sender


def fresh_after(bot: Bot, now: datetime) -> datetime:
    """The oldest last activity a session may have to be continued at `now`."""
    return now - timedelta(seconds=bot.tenant.session_timeout_seconds)


def session_for(bot: Bot, inbound: InboundMessage, now: datetime) -> Session:
    """The session `inbound` continues, or one opened for it if none is fresh."""
    user_id = user_of(bot, inbound)
    at = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(
            TOUCH_SQL, [at(now), bot.pk, inbound.chat, user_id, at(fresh_after(bot, now))]
        )
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
