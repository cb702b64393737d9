"""Quotas: questions a day and tokens a month, of a tenant, of each bot and of each person.

Where they are counted: the worker that claimed a question admits it right before the
model would be asked (pipeline.py). `admit` counts the question against every quota that
applies, atomically, or names the one it is over; a question refused never reaches the
model. Tokens are known only once the model has answered, so `spend` adds them when the
question's outcome is written (claims.py): a question is admitted while its subjects'
tokens are under their quotas, and the answer that crosses one finishes.

Counters are rows (QuotaUse), one per subject, so every worker shares them and they
survive restarts. Each question is counted, whether quotas are set or not, so a quota
set in the middle of a month knows the month so far. Days and months are the tenant's
(`Tenant.time_zone`); a row still on an earlier day or month starts over when counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from channels_im.models import Bot
from common.postgresql import relaxed_commit
from tenants.models import Tenant

from .models import Message, QuotaUse

logger = logging.getLogger(__name__)

MESSAGES, TOKENS = "messages", "tokens"
Scope = QuotaUse.Scope
TABLE = QuotaUse._meta.db_table
COLUMNS = "tenant_id, scope, subject, bot_id, day, messages, month, tokens, estimated_tokens"


@dataclass(frozen=True)
class Period:
    """The tenant's day and month at one moment."""

    day: date
    month: date  # its first day
    zone: ZoneInfo

    @classmethod
    def at(cls, tenant: Tenant, now: datetime) -> Period:
        zone = zone_of(tenant)
        day = now.astimezone(zone).date()
        return cls(day, day.replace(day=1), zone)

    def resets_at(self, kind: str) -> datetime:
        """When the count of `kind` (MESSAGES: daily, TOKENS: monthly) starts over."""
        if kind == MESSAGES:
            start = self.day + timedelta(days=1)
        else:
            start = (self.month + timedelta(days=31)).replace(day=1)
        return datetime.combine(start, time(), tzinfo=self.zone)


def zone_of(tenant: Tenant) -> ZoneInfo:
    """The tenant's time zone; the server's (TIME_ZONE) for a name this machine does not
    know (a row saved past the validator, or a zone the tz database dropped), so that
    its questions are still counted and answered."""
    try:
        return ZoneInfo(tenant.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        logger.warning("tenant %s has an unknown time zone; using TIME_ZONE", tenant.slug)
        return ZoneInfo(settings.TIME_ZONE)


@dataclass(frozen=True)
class Subject:
    """Who a quota is of, and its limits (0: none)."""

    scope: str  # a QuotaUse.Scope
    key: str  # QuotaUse.subject
    messages_per_day: int
    tokens_per_month: int
    bot_id: int | None = None  # scope "bot": QuotaUse.bot


def of_user(tenant: Tenant, sender: str) -> Subject:
    return Subject(
        Scope.USER.value,
        sender,
        tenant.user_quota_messages_per_day,
        tenant.user_quota_tokens_per_month,
    )


def of_bot(bot: Bot) -> Subject:
    return Subject(
        Scope.BOT.value,
        str(bot.pk),
        bot.quota_messages_per_day,
        bot.quota_tokens_per_month,
        bot_id=bot.pk,
    )


def of_tenant(tenant: Tenant) -> Subject:
    return Subject(
        Scope.TENANT.value, "", tenant.quota_messages_per_day, tenant.quota_tokens_per_month
    )


def subjects(question: Message) -> list[Subject]:
    """The person, the bot and the tenant a question counts for, most particular first
    (the quota a refusal names is the first one over)."""
    return [
        of_user(question.tenant, question.sender),
        of_bot(question.bot),
        of_tenant(question.tenant),
    ]


@dataclass(frozen=True)
class Refusal:
    """The quota a question is over. `notify`: the first refusal of this person by a quota
    of this kind in this period, whom the bot tells."""

    scope: str
    kind: str  # MESSAGES or TOKENS
    limit: int
    used: int
    resets_at: datetime  # aware, in the tenant's time zone
    notify: bool = False

    @property
    def reason(self) -> str:
        """The `reason` label of the refused-messages metric, e.g. "quota_messages_user"."""
        return f"quota_{self.kind}_{self.scope}"

    def __str__(self) -> str:
        per = "day" if self.kind == MESSAGES else "month"
        return (
            f"over the {self.scope} quota of {self.limit} {self.kind} a {per} "
            f"({self.used} used); it resets at {self.resets_at.isoformat()}"
        )


# A question counted on a subject's row that exists (one on an earlier day or month
# starts over), where {where} allows it.
_COUNTED = """
    ON CONFLICT (tenant_id, scope, subject) DO UPDATE SET
        messages = CASE WHEN q.day = excluded.day THEN q.messages + 1 ELSE 1 END,
        day = excluded.day,
        tokens = CASE WHEN q.month = excluded.month THEN q.tokens ELSE 0 END,
        estimated_tokens = CASE
            WHEN q.month = excluded.month THEN q.estimated_tokens ELSE 0 END,
        month = excluded.month
    {where}
"""
# Count one question on subjects' rows ({rows}: one _ROW each).
_COUNT_SQL = f"INSERT INTO {TABLE} AS q ({COLUMNS}) VALUES {{rows}} {_COUNTED}"  # noqa: S608
# `_COUNT_SQL` with no limits, counting only a question not counted before (its id the
# first parameter): PostgreSQL marks and counts it in one statement. {relaxed}: a count
# that a crash of the database may lose (common/postgresql.relaxed_commit), leaving the
# question uncounted (with everything after it, its answer recorded by a later claim).
_COUNT_ONCE_SQL = f"""
    WITH first AS (
        UPDATE {Message._meta.db_table} SET quota_counted = TRUE
        WHERE id = %s AND NOT quota_counted RETURNING id, {{relaxed}}
    )
    INSERT INTO {TABLE} AS q ({COLUMNS}) SELECT v.* FROM (VALUES {{rows}}) v, first
    {_COUNTED.format(where="")}
"""  # noqa: S608 - constant names, values as parameters
_ROW = "(%s, %s, %s, %s, %s, 1, %s, 0, 0)"
# Count one question on a subject's row, unless the row's day is today and its count at
# the limit, or its month is this month and its tokens at theirs (a limit of 0: none).
# One statement: PostgreSQL locks the row and re-reads it for a racing counter, and SQLite
# writes one at a time, so 20 questions at once against a limit of 5 admit exactly 5.
_ADMIT_SQL = _COUNT_SQL.format(
    rows=_ROW,
    where="""WHERE (%s = 0 OR q.day <> excluded.day OR q.messages < %s)
        AND (%s = 0 OR q.month <> excluded.month OR q.tokens < %s)
    RETURNING id""",
)


def admit(question: Message, now: datetime | None = None) -> Refusal | None:
    """Count `question` as sent to the model today, for its person, bot and tenant; or,
    counting nothing, return the first of their quotas it is over."""
    tenant = question.tenant
    period = Period.at(tenant, now or timezone.now())
    day, month = _adapt(period.day), _adapt(period.month)
    refusal = None
    counted = subjects(question)
    if not any(s.messages_per_day or s.tokens_per_month for s in counted):
        _count(question, [[tenant.pk, s.scope, s.key, s.bot_id, day, month] for s in counted])
        return None
    with transaction.atomic(), connection.cursor() as cursor:
        if not _first_count(question):
            return None
        for subject in counted:
            messages, tokens = subject.messages_per_day, subject.tokens_per_month
            params = [tenant.pk, subject.scope, subject.key, subject.bot_id, day, month]
            cursor.execute(_ADMIT_SQL, [*params, messages, messages, tokens, tokens])
            if cursor.fetchone() is None:
                refusal = _over(tenant, subject, period)
                transaction.set_rollback(True)  # the subjects counted before it
                break
    if refusal is None:
        return None
    return replace(refusal, notify=_first_notice(question, refusal, period))


def _first_count(question: Message) -> bool:
    """Mark the question counted; False if it was already. Once per question, whatever
    its claims: one waiting its turn at the model, or handed to a fallback, is claimed
    again."""
    first = Message.objects.filter(pk=question.pk, quota_counted=False)
    return bool(first.update(quota_counted=True))


def _count(question: Message, rows: list[list[Any]]) -> None:
    """The usual case, no quota set: count the question on every subject's row (`rows`:
    `_ROW`'s values each), once. One statement on PostgreSQL: it runs for every question."""
    values = ", ".join([_ROW] * len(rows))
    params = [value for row in rows for value in row]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            count = _COUNT_ONCE_SQL.format(rows=values, relaxed=relaxed_commit())
            cursor.execute(count, [question.pk, *params])
            return
        with transaction.atomic():
            if _first_count(question):
                cursor.execute(_COUNT_SQL.format(rows=values, where=""), params)


def _over(tenant: Tenant, subject: Subject, period: Period) -> Refusal:
    """Which of the subject's quotas its row is at (one is: `admit` counted nothing)."""
    use = QuotaUse.objects.get(tenant=tenant, scope=subject.scope, subject=subject.key)
    limit = subject.messages_per_day
    if limit and use.day == period.day and use.messages >= limit:
        return Refusal(subject.scope, MESSAGES, limit, use.messages, period.resets_at(MESSAGES))
    limit = subject.tokens_per_month
    return Refusal(subject.scope, TOKENS, limit, use.tokens, period.resets_at(TOKENS))


# Mark that a person was told about a quota of one kind in this period; a row comes back
# only the first time.
_TOLD_SQL = f"""
    INSERT INTO {TABLE} AS q ({COLUMNS}, {{told}}) VALUES (%s, %s, %s, NULL, %s, 0, %s, 0, 0, %s)
    ON CONFLICT (tenant_id, scope, subject) DO UPDATE SET {{told}} = excluded.{{told}}
    WHERE q.{{told}} IS NULL OR q.{{told}} <> excluded.{{told}}
    RETURNING id
"""  # noqa: S608


def _first_notice(question: Message, refusal: Refusal, period: Period) -> bool:
    """True once per person, kind of quota and period: the bot tells them then only."""
    told, when = (
        ("told_day", period.day) if refusal.kind == MESSAGES else ("told_month", period.month)
    )
    params = [question.tenant_id, Scope.USER.value, question.sender, _adapt(period.day)]
    params += [_adapt(period.month), _adapt(when)]
    with connection.cursor() as cursor:
        cursor.execute(_TOLD_SQL.format(told=told), params)
        return cursor.fetchone() is not None


# Add an answer's tokens to its subjects' month (a row on an earlier month starts over).
# {relaxed}: as `_COUNT_ONCE_SQL`'s; tokens lost to a crash go uncounted.
_SPEND_SQL = f"""
    INSERT INTO {TABLE} AS q ({COLUMNS}) VALUES {{rows}}
    ON CONFLICT (tenant_id, scope, subject) DO UPDATE SET
        tokens = CASE WHEN q.month = excluded.month THEN q.tokens ELSE 0 END
            + excluded.tokens,
        estimated_tokens = CASE WHEN q.month = excluded.month THEN q.estimated_tokens ELSE 0 END
            + excluded.estimated_tokens,
        month = excluded.month
    RETURNING {{relaxed}}
"""  # noqa: S608


def spend(question: Message, now: datetime | None = None) -> None:
    """Add the tokens `question` took (prompt + completion, as the model reported them or
    as estimated) to this month's use of its person, bot and tenant."""
    tokens = (question.prompt_tokens or 0) + (question.completion_tokens or 0)
    if question.role != Message.Role.USER or not tokens:
        return
    estimated = tokens if question.tokens_estimated else 0
    period = Period.at(question.tenant, now or timezone.now())
    day, month = _adapt(period.day), _adapt(period.month)
    rows = [
        [question.tenant_id, subject.scope, subject.key, subject.bot_id, day]
        + [0, month, tokens, estimated]
        for subject in subjects(question)
    ]
    placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    with connection.cursor() as cursor:
        spent = _SPEND_SQL.format(rows=placeholders, relaxed=relaxed_commit())
        cursor.execute(spent, [v for row in rows for v in row])


@dataclass(frozen=True)
class Standing:
    """A subject's use against its quotas now (limits 0: none)."""

    messages: int  # today
    messages_per_day: int
    tokens: int  # this month
    estimated_tokens: int  # the part of `tokens` that is estimated
    tokens_per_month: int


def standings(tenant: Tenant, wanted: list[Subject], now: datetime | None = None) -> list[Standing]:
    """Each subject's standing, in the order given: one query."""
    period = Period.at(tenant, now or timezone.now())
    rows = {
        (use.scope, use.subject): use
        for use in QuotaUse.objects.filter(
            tenant=tenant, scope__in={s.scope for s in wanted}, subject__in={s.key for s in wanted}
        )
    }
    return [standing(rows.get((s.scope, s.key)), s, period) for s in wanted]


def standing(use: QuotaUse | None, subject: Subject, period: Period) -> Standing:
    """The subject's standing in `period`, from its row (None: nothing used yet)."""
    today = use is not None and use.day == period.day
    this_month = use is not None and use.month == period.month
    return Standing(
        messages=use.messages if use and today else 0,
        messages_per_day=subject.messages_per_day,
        tokens=use.tokens if use and this_month else 0,
        estimated_tokens=use.estimated_tokens if use and this_month else 0,
        tokens_per_month=subject.tokens_per_month,
    )


def _adapt(day: date) -> Any:
    return connection.ops.adapt_datefield_value(day)
