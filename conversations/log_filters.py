"""What the log's filters mean, once, for the admin's lists and the REST API alike.

A filter is a name and a value: `bot` (a bot's public_id), `platform` (a platform key),
`user`, `chat`, `status`, `role`, `q` (a substring of the text, any case) and a period,
`since` (inclusive) and `until` (exclusive), aware datetimes. Conversations take the
names that make sense for a session; their period is that of their last activity.

`q` is `icontains`: on PostgreSQL `UPPER(content) LIKE UPPER('%…%')`, which the trigram
index of migration 0008 serves once the text has three characters or more; on SQLite a
plain LIKE.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from django.db.models import QuerySet

from . import rollup
from .models import Conversation, Message

Row = TypeVar("Row", Message, Conversation)

# Each filter's ORM lookup, per table.
LOOKUPS: dict[type[Message | Conversation], dict[str, str]] = {
    Message: {
        "bot": "bot__public_id",
        "platform": "bot__platform",
        "user": "sender",
        "chat": "conversation__chat_id",
        "status": "status",
        "role": "role",
        "q": "content__icontains",
    },
    Conversation: {
        "bot": "bot__public_id",
        "platform": "bot__platform",
        "user": "user_id",
        "chat": "chat_id",
    },
}
# The time a period selects on.
WHEN = {Message: "created_at", Conversation: "last_activity_at"}


def narrow(rows: QuerySet[Row], given: Mapping[str, Any]) -> QuerySet[Row]:
    """`rows` (messages or conversations) that match every filter in `given`
    ({name: value}); a name the table has no filter of is ignored, as is a None value."""
    model = rows.model
    lookups = {
        LOOKUPS[model][name]: value
        for name, value in given.items()
        if name in LOOKUPS[model] and value is not None
    }
    if given.get("since") is not None:
        lookups[f"{WHEN[model]}__gte"] = given["since"]
    if given.get("until") is not None:
        lookups[f"{WHEN[model]}__lt"] = given["until"]
    return rows.filter(**lookups)


def days(first: date | None, last: date | None) -> dict[str, datetime | None]:
    """The days from `first` to `last`, both included, in TIME_ZONE, as `since` and
    `until` for `narrow`; None leaves that end open."""
    return {
        "since": rollup.day_start(first) if first else None,
        "until": rollup.day_start(last + timedelta(days=1)) if last else None,
    }
