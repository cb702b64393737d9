"""Which session an inbound message belongs to: the open one of its (bot, chat, user), or
a new one after the tenant's timeout of silence or a /reset."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db import connection
from django.utils import timezone

from channels_im.models import Bot
from channels_im.platforms.base import InboundMessage

from .models import Conversation

_TABLE = Conversation._meta.db_table

# The newest fresh session of (bot, chat, user), open: its id and last activity.
# Parameters: bot, chat, user, the oldest last activity that is still fresh.
FIND_SQL = f"""
    SELECT id, last_activity_at FROM {_TABLE}
    WHERE bot_id = %s AND chat_id = %s AND user_id = %s
        AND last_activity_at >= %s AND closed_at IS NULL
    ORDER BY last_activity_at DESC
    LIMIT 1
"""  # noqa: S608 - a constant table name, values as parameters
# A session's activity is written again only once it is older than this. A write locks
# the row until its message commits, the commit's flush to disk included, so a burst in
# one session (a group whose bot shares one, 20 people at once) queued on that lock,
# message after message. Against session timeouts of minutes, a second is no difference.
# (On PostgreSQL the intake's statement also skips a row another message holds:
# intake_sql.py.)
TOUCH_EVERY = timedelta(seconds=1)
# `session_for`'s mark of the found session's activity, if older than TOUCH_EVERY
# ({found}: a FIND_SQL row), on databases other than PostgreSQL; the UPDATE's own
# `closed_at IS NULL` keeps it off a session a /reset closed. Parameters: now, {found}'s
# own if it is a subquery, now - TOUCH_EVERY.
TOUCH_SQL = f"""
    UPDATE {_TABLE} SET last_activity_at = %s
    WHERE closed_at IS NULL AND id = (SELECT id FROM {{found}} WHERE last_activity_at < %s)
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
    find: list[Any] = [bot.pk, inbound.chat, user_id, at(fresh_after(bot, now))]
    with connection.cursor() as cursor:
        touch = TOUCH_SQL.format(found=f"({FIND_SQL}) found")
        cursor.execute(touch, [at(now), *find, at(now - TOUCH_EVERY)])
        if (touched := cursor.fetchone()) is not None:
            return Session(touched[0], opened=False)
        cursor.execute(FIND_SQL, find)
        if (found := cursor.fetchone()) is not None:  # active within TOUCH_EVERY
            return Session(found[0], opened=False)
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
