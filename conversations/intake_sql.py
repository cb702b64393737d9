"""An inbound message's row on PostgreSQL, in one statement: continue or open its session,
insert the message unless the platform sent it before, and put a question in its model
endpoint's line (admission.py).

The ORM's way (services.store on other databases) costs two or three round trips, and
its INSERT alone was half of `receive`'s CPU in a cProfile on PostgreSQL: Django compiles
a 28-column INSERT for every message. Here the statement is a
constant and only the message's own values travel; a column the statement leaves out
takes the value the model's default gives (tests/conversations/test_intake_sql.py
compares both ways field by field).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from django.db import connection

from common.postgresql import prepared_cursor

from .models import Admission, Conversation, Message, ModelEndpoint
from .sessions import FIND_SQL, TOUCH_EVERY

_CONVERSATIONS = Conversation._meta.db_table
_MESSAGES = Message._meta.db_table
_ADMISSIONS = Admission._meta.db_table
_ENDPOINTS = ModelEndpoint._meta.db_table

# Parameters: FIND_SQL's, then now - TOUCH_EVERY ("recent") twice, now, then
# the session's (tenant, bot, chat, user, now), then the message's (tenant, bot, content,
# sender, external id, status, reply context, now), then its place in line (tenant, cap,
# endpoint key: NULL for none). A copy that hits the unique (bot, external_id) stores
# nothing and returns no id; an endpoint without a row yet takes no one in line (the
# caller makes the row).
#
# The session's activity is written at most once every TOUCH_EVERY (sessions.py), and no
# message waits for another's write: `due` locks the found session's row only if it is
# older than that, and reads it as it is now, not as the statement's snapshot has it
# (PostgreSQL re-reads a row it locks): closed meanwhile, a new session opens; written
# meanwhile, it is continued unwritten. A session found active within TOUCH_EVERY, or
# whose row someone else holds (skipped: another message's write, or a /reset's close not
# yet committed, so a message sent during that commit joins the session it closes, as
# one sent between the /reset and its close always could), has no `due` row and is
# continued as found. Should the holder roll back (a refused value), those that
# skipped its row leave the activity as it was, which a later message refreshes unless the
# session's timeout has run out on it first.
_STORE_SQL = f"""
    WITH found AS ({FIND_SQL}),
    due AS (
        SELECT c.id, c.closed_at IS NULL AS open, c.last_activity_at < %s AS stale
        FROM {_CONVERSATIONS} c JOIN found ON c.id = found.id
        WHERE found.last_activity_at < %s
        FOR NO KEY UPDATE OF c SKIP LOCKED
    ),
    touched AS (
        UPDATE {_CONVERSATIONS} SET last_activity_at = %s
        WHERE id = (SELECT id FROM due WHERE open AND stale)
        RETURNING id
    ),
    continued AS (
        SELECT id FROM touched
        UNION ALL SELECT id FROM due WHERE open AND NOT stale
        UNION ALL SELECT id FROM found WHERE NOT EXISTS (SELECT FROM due)
    ),
    opened AS (
        INSERT INTO {_CONVERSATIONS} (tenant_id, bot_id, chat_id, user_id, started_at,
            last_activity_at)
        SELECT %s, %s, %s, %s, %s, %s WHERE NOT EXISTS (SELECT FROM continued)
        RETURNING id
    ),
    session AS (SELECT id, FALSE AS opened FROM continued UNION ALL SELECT id, TRUE FROM opened),
    stored AS (
        INSERT INTO {_MESSAGES} (tenant_id, bot_id, conversation_id, role, content, sender,
            external_id, status, reply_context, created_at, error, model, endpoint,
            fallback, done_reason, attempts, tokens_estimated, stopped, quota_counted)
        SELECT %s, %s, session.id, '{Message.Role.USER}', %s, %s, %s, %s, %s, %s,
            '', '', '', FALSE, '', 0, FALSE, FALSE, FALSE
        FROM session
        ON CONFLICT (bot_id, external_id) WHERE external_id IS NOT NULL DO NOTHING
        RETURNING id
    ),
    entered AS (
        INSERT INTO {_ADMISSIONS} (message_id, endpoint_id, tenant_id, cap)
        SELECT stored.id, e.id, %s, %s FROM stored JOIN {_ENDPOINTS} e ON e.key = %s
        RETURNING message_id
    )
    SELECT session.id, session.opened, stored.id, EXISTS (SELECT FROM entered)
    FROM session LEFT JOIN stored ON TRUE
"""  # noqa: S608 - constant table names, values as parameters


class Stored(NamedTuple):
    session_id: int
    opened: bool  # the session, by this statement
    stored: bool  # False: the platform sent this message before
    in_line: bool  # in its endpoint's line, by this statement


def store(
    message: Message,
    *,
    chat: str,
    user_id: str,
    fresh_after: datetime,
    line: tuple[str, int] | None,
) -> Stored:
    """Continue or open the session of (`message`'s bot, `chat`, `user_id`), insert
    `message` (not saved yet) into it and, given `line` (admission.place: an endpoint's
    key and a cap), put it in that endpoint's line; in one round trip. Once stored, the
    instance has its id and session and is as the database holds it.

    Raises DataError for a value the database refuses (nothing of it stays).
    """
    at = connection.ops.adapt_datetimefield_value
    now = at(message.created_at)
    context = Message._meta.get_field("reply_context").get_db_prep_save(
        message.reply_context, connection
    )
    tenant, bot = message.tenant_id, message.bot_id
    recent = at(message.created_at - TOUCH_EVERY)
    params = [
        *(bot, chat, user_id, at(fresh_after), recent, recent, now),
        *(tenant, bot, chat, user_id, now, now),
        *(tenant, bot, message.content, message.sender, message.external_id, message.status),
        *(context, now),
        tenant,
        *(reversed(line) if line else (0, None)),  # a NULL key matches no endpoint
    ]
    with prepared_cursor() as cursor:
        cursor.execute(_STORE_SQL, params)
        session_id, opened, message_id, in_line = cursor.fetchone()
    if message_id is None:
        return Stored(session_id, opened, stored=False, in_line=False)
    message.id, message.conversation_id = message_id, session_id
    message._state.adding = False
    message._state.db = connection.alias
    return Stored(session_id, opened, stored=True, in_line=in_line)
