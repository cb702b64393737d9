"""`GET /api/v1/usage/`: what the tenant's questions cost, grouped by day, bot or user."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from django.db.models import F, QuerySet
from django.db.models.functions import TruncDate
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.api_auth import tenant_of

from ..models import Message

STATUSES = ("answered", "failed", "rate_limited")


class UsageQuery(serializers.Serializer):
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    group_by = serializers.ChoiceField(choices=["day", "bot", "user"], default="day")


USAGE_ROW = inline_serializer(
    "UsageRow",
    {
        "key": serializers.CharField(),
        "messages": serializers.IntegerField(),
        "answered": serializers.IntegerField(),
        "failed": serializers.IntegerField(),
        "rate_limited": serializers.IntegerField(),
        "prompt_tokens": serializers.IntegerField(),
        "completion_tokens": serializers.IntegerField(),
        "p50_total_ms": serializers.IntegerField(allow_null=True),
        "p95_total_ms": serializers.IntegerField(allow_null=True),
    },
)


class UsageView(APIView):
    """Questions, outcomes, tokens and answer times per day (in the server's time zone,
    TIME_ZONE), per bot (its public_id) or per user."""

    required_scopes = ("logs:read",)

    @extend_schema(
        parameters=[UsageQuery],
        responses=inline_serializer("Usage", {"results": USAGE_ROW.__class__(many=True)}),
        summary="Usage: messages, outcomes, tokens and answer times",
    )
    def get(self, request: Request) -> Response:
        query = UsageQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = Message.objects.filter(tenant=tenant_of(request), role=Message.Role.USER)
        if "since" in query.validated_data:
            rows = rows.filter(created_at__gte=query.validated_data["since"])
        if "until" in query.validated_data:
            rows = rows.filter(created_at__lt=query.validated_data["until"])
        return Response({"results": usage(rows, query.validated_data["group_by"])})


def usage(rows: QuerySet[Message], group_by: str) -> list[dict[str, Any]]:
    """One row of figures per group, in key order."""
    # Days as the server's time zone (TIME_ZONE) counts them.
    group = {"day": TruncDate("created_at"), "bot": F("bot__public_id"), "user": F("sender")}
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
