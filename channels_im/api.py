"""`/api/v1/bots/` (scope `admin`): the tenant's bots, with credentials write-only.

Reads show each credential masked (its last 4 characters at most), identifiers too
(spec/api.md); a write merges what it gives into what is stored, and a platform's
required credentials must all be there.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from tenants.api_auth import tenant_of
from tenants.audit_api import AuditedWrites
from tenants.encryption import mask

from .models import Bot
from .platforms import PLATFORMS, adapter_class


class BotSerializer(serializers.ModelSerializer):
    # The API's own bot is made on first use of the messages endpoint, one per tenant.
    platform = serializers.ChoiceField(choices=[key for key in PLATFORMS if key != "api"])
    credentials = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=1000), required=False
    )
    callback_url = serializers.CharField(read_only=True)

    class Meta:
        model = Bot
        fields = [
            "public_id", "name", "platform", "is_active", "callback_url", "system_prompt",
            "shared_group_session", "quota_messages_per_day", "quota_tokens_per_month",
            "credentials", "last_error", "last_error_at",
        ]  # fmt: skip
        read_only_fields = ["public_id", "last_error", "last_error_at"]

    def to_representation(self, bot: Bot) -> dict[str, Any]:
        data = super().to_representation(bot)
        specs = adapter_class(bot.platform).credential_fields
        data["credentials"] = {
            spec.name: mask(str(value))
            for spec in specs
            if (value := (bot.credentials or {}).get(spec.name))
        }
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        bot = self.instance
        platform = attrs.get("platform", bot.platform if bot else None)
        if bot is not None and platform != bot.platform:
            raise serializers.ValidationError({"platform": ["A bot keeps its platform."]})
        adapter = adapter_class(platform)
        known = {spec.name: spec for spec in adapter.credential_fields}
        given = attrs.get("credentials", {})
        errors = {
            f"credentials.{name}": ["Not a credential of this platform."]
            for name in given
            if name not in known
        }
        cleaned = {}
        for name, value in given.items():
            if name in known:
                try:
                    cleaned[name] = known[name].clean(value)
                except DjangoValidationError as exc:
                    errors[f"credentials.{name}"] = exc.messages
        name = attrs.get("name")
        tenant = bot.tenant if bot else tenant_of(self.context["request"])
        others = Bot.objects.filter(tenant=tenant, name=name)
        if bot is not None:
            others = others.exclude(pk=bot.pk)
        if name and others.exists():
            errors["name"] = ["This tenant has a bot of this name."]
        merged = {**(bot.credentials if bot else {}), **cleaned}
        for name in adapter.missing_credentials(merged):
            errors.setdefault(f"credentials.{name}", ["This credential is required."])
        if errors:
            raise serializers.ValidationError(errors)
        attrs["credentials"] = merged
        if bot is None:
            attrs["tenant"] = tenant
        return attrs


QUOTAS_EXAMPLE = OpenApiExample(
    "Quotas",
    summary="This bot's own quotas (0: none), besides its tenant's",
    value={"quota_messages_per_day": 500, "quota_tokens_per_month": 1_000_000},
    request_only=True,
)


@extend_schema_view(partial_update=extend_schema(examples=[QUOTAS_EXAMPLE]))
class BotViewSet(AuditedWrites, viewsets.ModelViewSet):
    required_scopes = ("admin",)
    serializer_class = BotSerializer
    lookup_field = "public_id"
    lookup_value_converter = "uuid"
    http_method_names = ["get", "post", "patch", "delete"]

    def get_queryset(self) -> QuerySet[Bot]:
        if getattr(self, "swagger_fake_view", False):  # the schema's generation: no caller
            return Bot.objects.none()
        return Bot.objects.filter(tenant=tenant_of(self.request)).order_by("name")
