"""The dashboard's rollup of the log (BotDay, UserDay), recomputed from the log by the beat.

Recomputed rather than counted by the worker as rows settle: a question's final status is
written in several places (the intake stores rate-limited and ignored rows, a claim records
answers and failures, and a failed delivery turns an answered question failed after the
fact), so counting at each of them would mean un-counting too, and one missed path would
drift for good. Recomputing the recent days is idempotent, repairs itself, and reads one
index range per tenant (the log's tenant and creation time); the dashboard lags by at most
the beat's interval. Older days are never recomputed by the beat, so their figures outlive
the content that retention removes.

Days are TIME_ZONE's. Latency and time to first token are kept as counts per bucket of
EDGES_MS, from which `percentile` reads p50 and p95 to within one bucket.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from tenants.models import Tenant

from . import retention
from .models import BotDay, Message, UserDay

# Upper bounds (ms) of the latency buckets; one more bucket holds everything above.
EDGES_MS = (
    *(50, 100, 200, 300, 500, 750),
    *(1_000, 1_500, 2_000, 3_000, 4_000, 5_000, 7_500),
    *(10_000, 15_000, 20_000, 30_000, 45_000, 60_000, 90_000),
    *(120_000, 180_000, 300_000),
)
# The timings kept as histograms.
TIMED = ("total_ms", "first_token_ms")
# The busiest people kept per tenant and day. A month's top ten is read from them: a person
# never among a day's busiest is left out, and a listed person's count is a lower bound.
USERS_PER_DAY = 30
BOT_DAY_FIGURES = [
    "messages",
    "prompt_tokens",
    "completion_tokens",
    "histograms",
    "last_at",
]
# Today and yesterday: a question settles within its answer budget and delivery retries.
RECENT_DAYS = 2


def today() -> date:
    return timezone.localdate(timezone=timezone.get_default_timezone())


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


def refresh(days: int = RECENT_DAYS) -> int:
    """Recompute the figures of the last `days` days (today included) of every tenant
    from the log; returns how many rollup rows now stand for them. Days some of whose
    messages the tenant's retention deleted keep the figures they have."""
    first = today() - timedelta(days=days - 1)
    tenants = Tenant.objects.only("retention_days", "retention_action")
    return sum(
        refresh_tenant(tenant.pk, max(first, retention.first_whole_day(tenant) or first))
        for tenant in tenants
    )


def refresh_tenant(tenant_id: int, first: date) -> int:
    """Replace one tenant's rollup rows from day `first` on with figures from its log."""
    questions = Message.objects.filter(
        tenant_id=tenant_id, role=Message.Role.USER, created_at__gte=day_start(first)
    ).annotate(day=TruncDate("created_at", tzinfo=timezone.get_default_timezone()))
    bot_days = [BotDay(tenant_id=tenant_id, **row) for row in bot_figures(questions)]
    user_days = [UserDay(tenant_id=tenant_id, **row) for row in busiest(questions)]
    # Upserts, so that a concurrent refresh (a slow beat run, the command) cannot collide.
    with transaction.atomic():
        BotDay.objects.filter(tenant_id=tenant_id, day__gte=first).delete()
        BotDay.objects.bulk_create(
            bot_days,
            update_conflicts=True,
            unique_fields=["bot", "day", "status"],
            update_fields=BOT_DAY_FIGURES,
        )
        UserDay.objects.filter(tenant_id=tenant_id, day__gte=first).delete()
        UserDay.objects.bulk_create(
            user_days,
            update_conflicts=True,
            unique_fields=["tenant", "day", "sender"],
            update_fields=["messages", "tokens"],
        )
    return len(bot_days) + len(user_days)


def bot_figures(questions: Any) -> Iterable[dict[str, Any]]:
    """BotDay fields of each (bot, day, status) group of `questions`."""
    histograms = {name: count for field in TIMED for name, count in _histogram(field).items()}
    groups = questions.values("bot_id", "day", "status").annotate(
        messages=Count("id"),
        prompt_tokens=Coalesce(Sum("prompt_tokens"), 0),
        completion_tokens=Coalesce(Sum("completion_tokens"), 0),
        last_at=Max("created_at"),
        **histograms,
    )
    for row in groups.order_by():
        row["histograms"] = {
            field: [row.pop(f"{field}_{n}") for n in range(len(EDGES_MS) + 1)] for field in TIMED
        }
        yield row


def _histogram(field: str) -> dict[str, Count]:
    bounds: list[int | None] = [0, *EDGES_MS, None]
    counts = {}
    for n, (low, high) in enumerate(pairwise(bounds)):
        within = Q(**{f"{field}__gte": low})
        if high is not None:
            within &= Q(**{f"{field}__lt": high})
        counts[f"{field}_{n}"] = Count("id", filter=within)
    return counts


def busiest(questions: Any) -> list[dict[str, Any]]:
    """UserDay fields of the USERS_PER_DAY busiest senders of each day of `questions`."""
    tokens = Coalesce(Sum("prompt_tokens"), 0) + Coalesce(Sum("completion_tokens"), 0)
    per_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for row in questions.values("day", "sender").annotate(messages=Count("id"), tokens=tokens):
        per_day[row["day"]].append(row)
    kept = []
    for rows in per_day.values():
        rows.sort(key=lambda row: (-row["messages"], -row["tokens"], row["sender"]))
        kept += rows[:USERS_PER_DAY]
    return kept


def percentile(buckets: Sequence[int], fraction: float) -> int | None:
    """The value (ms) below which `fraction` (0 to 1) of the counted questions fall,
    interpolated within its bucket of EDGES_MS; None when nothing was counted. Above the
    last edge the answer is that edge: the estimate says "at least"."""
    total = sum(buckets)
    if not total:
        return None
    rank = fraction * total
    below = 0
    for n, count in enumerate(buckets):
        if count and below + count >= rank:
            low = EDGES_MS[n - 1] if n else 0
            high = EDGES_MS[n] if n < len(EDGES_MS) else low
            return round(low + (high - low) * (rank - below) / count)
        below += count
    return EDGES_MS[-1]


def summed(histograms: Iterable[Sequence[int]]) -> list[int]:
    """Bucket counts added up bucket by bucket ([] for none)."""
    return [sum(column) for column in zip(*histograms, strict=True)]
