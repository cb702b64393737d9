"""`GET /api/v1/usage/`: what the tenant's questions cost, grouped by day, bot or user, and
where the tenant, its bots and (asked for) a person stand against their quotas."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from django.db.models import F, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_im.models import Bot
from tenants.api_auth import tenant_of
from tenants.models import Tenant

from .. import quotas
from ..models import Message

STATUSES = ("answered", "failed", "rate_limited", "quota_exceeded")


class UsageQuery(serializers.Serializer):
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    group_by = serializers.ChoiceField(choices=["day", "bot", "user"], default="day")
    user = serializers.CharField(
        required=False,
        max_length=200,
        help_text="A person (their sender id): `quota` shows their use against the per-user "
        "quotas too.",
    )


USAGE_ROW = inline_serializer(
    "UsageRow",
    {
        "key": serializers.CharField(),
        "messages": serializers.IntegerField(),
        "answered": serializers.IntegerField(),
        "failed": serializers.IntegerField(),
        "rate_limited": serializers.IntegerField(),
        "quota_exceeded": serializers.IntegerField(),
        "prompt_tokens": serializers.IntegerField(),
        "completion_tokens": serializers.IntegerField(),
        "p50_total_ms": serializers.IntegerField(allow_null=True),
        "p95_total_ms": serializers.IntegerField(allow_null=True),
    },
)


# Use against quota; a limit of null is no quota.
STANDING: dict[str, serializers.Field] = {
    "messages_today": serializers.IntegerField(),
    "messages_per_day": serializers.IntegerField(allow_null=True),
    "tokens_this_month": serializers.IntegerField(),
    "estimated_tokens": serializers.IntegerField(help_text="The part of the tokens estimated."),
    "tokens_per_month": serializers.IntegerField(allow_null=True),
}
QUOTA = inline_serializer(
    "QuotaStanding",
    {
        "time_zone": serializers.CharField(),
        "day": serializers.DateField(),
        "day_resets_at": serializers.DateTimeField(),
        "month": serializers.DateField(help_text="The month's first day."),
        "month_resets_at": serializers.DateTimeField(),
        "tenant": inline_serializer("TenantStanding", STANDING),
        "bots": inline_serializer(
            "BotStanding",
            {"bot": serializers.UUIDField(), "name": serializers.CharField(), **STANDING},
            many=True,
        ),
        "user": inline_serializer(
            "UserStanding", {"user": serializers.CharField(), **STANDING}, allow_null=True
        ),
    },
)


class UsageView(APIView):
    """Questions, outcomes, tokens and answer times per day (in the tenant's time zone),
    per bot (its public_id) or per user; and, whatever the period asked for, use against
    quota now: today's questions and this month's tokens of the tenant, of each bot and,
    given `user`, of that person."""

    required_scopes = ("logs:read",)

    @extend_schema(
        parameters=[UsageQuery],
        responses=inline_serializer(
            "Usage", {"results": USAGE_ROW.__class__(many=True), "quota": QUOTA}
        ),
        summary="Usage: messages, outcomes, tokens and answer times; use against quota",
    )
    def get(self, request: Request) -> Response:
        query = UsageQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        tenant = tenant_of(request)
        rows = Message.objects.filter(tenant=tenant, role=Message.Role.USER)
        if "since" in query.validated_data:
            rows = rows.filter(created_at__gte=query.validated_data["since"])
        if "until" in query.validated_data:
            rows = rows.filter(created_at__lt=query.validated_data["until"])
        return Response(
            {
                "results": usage(rows, query.validated_data["group_by"], tenant),
                "quota": quota(tenant, query.validated_data.get("user")),
            }
        )


def usage(rows: QuerySet[Message], group_by: str, tenant: Tenant) -> list[dict[str, Any]]:
    """One row of figures per group, in key order; days as the tenant's time zone has them."""
    day = TruncDate("created_at", tzinfo=quotas.zone_of(tenant))
    group = {"day": day, "bot": F("bot__public_id"), "user": F("sender")}
    values = rows.annotate(group=group[group_by])
    groups: dict[str, dict[str, Any]] = defaultdict(lambda: _empty())
    times: dict[str, list[int]] = defaultdict(list)
    for group, status, prompt, completion, total in values.values_list(
        "group", "status", "prompt_tokens", "completion_tokens", "total_ms"
    ).iterator(chunk_size=2000):
        figures = groups[str(group)]
        figures["messages"] += 1
        if status in STATUSES:
            figures[status] += 1
        figures["prompt_tokens"] += prompt or 0
        figures["completion_tokens"] += completion or 0
        if status == Message.Status.ANSWERED and total is not None:
            times[str(group)].append(total)
    return [
        {"key": name, **figures, **_percentiles(times[name])}
        for name, figures in sorted(groups.items())
    ]


def _empty() -> dict[str, int]:
    return dict.fromkeys(("messages", *STATUSES, "prompt_tokens", "completion_tokens"), 0)


def _percentiles(times: list[int]) -> dict[str, int | None]:
    if not times:
        return {"p50_total_ms": None, "p95_total_ms": None}
    if len(times) == 1:
        return {"p50_total_ms": times[0], "p95_total_ms": times[0]}
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return {"p50_total_ms": round(cuts[49]), "p95_total_ms": round(cuts[94])}


def quota(tenant: Tenant, user: str | None) -> dict[str, Any]:
    """Where the tenant, each of its bots and (given) a person stand now."""
    now = timezone.now()
    period = quotas.Period.at(tenant, now)
    bots = list(Bot.objects.filter(tenant=tenant).order_by("name"))
    wanted = [quotas.of_tenant(tenant), *(quotas.of_bot(bot) for bot in bots)]
    if user:
        wanted.append(quotas.of_user(tenant, user))
    standing = quotas.standings(tenant, wanted, now)
    return {
        "time_zone": str(period.zone),
        "day": period.day,
        "day_resets_at": period.resets_at(quotas.MESSAGES),
        "month": period.month,
        "month_resets_at": period.resets_at(quotas.TOKENS),
        "tenant": _standing(standing[0]),
        "bots": [
            {"bot": bot.public_id, "name": bot.name, **_standing(figures)}
            for bot, figures in zip(bots, standing[1 : len(bots) + 1], strict=True)
        ],
        "user": {"user": user, **_standing(standing[-1])} if user else None,
    }


def _standing(standing: quotas.Standing) -> dict[str, int | None]:
    return {
        "messages_today": standing.messages,
        "messages_per_day": standing.messages_per_day or None,
        "tokens_this_month": standing.tokens,
        "estimated_tokens": standing.estimated_tokens,
        "tokens_per_month": standing.tokens_per_month or None,
    }
