"""`/api/v1/bots/` (scope `admin`): the tenant's bots, with credentials write-only.

Reads show each credential masked (its last 4 characters at most), identifiers too
(spec/api.md); a write merges what it gives into what is stored, and a platform's
required credentials must all be there.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from common.selftest import STATUSES
from tenants.api_auth import tenant_of
from tenants.audit_api import AuditedWrites
from tenants.encryption import mask

from . import selftest
from .models import Bot
from .platforms import PLATFORMS, adapter_class


def texts() -> serializers.DictField:
    """A text of a check in every language: {language code: text}."""
    return serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        help_text="The text in each language, by language code (zh-hans, en).",
    )


EXAMPLE_CHECKS = [
    {
        "key": "credentials",
        "status": "passed",
        "label": {"zh-hans": "凭据有效", "en": "Credentials accepted"},
        "detail": {"zh-hans": "平台发放了访问令牌。", "en": "The platform gave an access token."},
        "action": {"zh-hans": "", "en": ""},
    },
    {
        "key": "trusted_ip",
        "status": "failed",
        "label": {
            "zh-hans": "本服务器的 IP 是应用的可信 IP",
            "en": "This server's IP is trusted by the app",
        },
        "detail": {
            "zh-hans": "企业微信拒绝了本服务器的 IP：WeCom /cgi-bin/agent/get: code 60020 "
            "not allow to access from your ip, from ip: 203.0.113.7",
            "en": "WeCom refused this server's IP: WeCom /cgi-bin/agent/get: code 60020 "
            "not allow to access from your ip, from ip: 203.0.113.7",
        },
        "action": {
            "zh-hans": "请把 203.0.113.7 加入应用的企业可信IP（应用管理 → 该应用 → 企业可信IP），"
            "然后重新测试。",
            "en": "Add 203.0.113.7 to the app's trusted IPs (应用管理 → the app → 企业可信IP), "
            "then test again.",
        },
    },
]


class CheckSerializer(serializers.Serializer):
    """One check of a self-test (common.selftest.Finding, as stored)."""

    key = serializers.CharField(help_text="The check's stable name, e.g. credentials, model.")
    status = serializers.ChoiceField(choices=STATUSES)
    # A declared field, taken off the class: the Field attribute `label` stays the serializer's.
    label = texts()  # type: ignore[assignment]
    detail = texts()
    action = texts()


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "一项未通过 / one check failed",
            value={
                "passed": False,
                "tested_at": "2025-03-01T10:15:00+08:00",
                "checks": EXAMPLE_CHECKS,
            },
            response_only=True,
        )
    ]
)
class SelfTestSerializer(serializers.Serializer):
    """A bot's last self-test: whether no check failed, when it ran, and each check."""

    passed = serializers.BooleanField()
    tested_at = serializers.DateTimeField()
    checks = CheckSerializer(many=True)


def self_test_of(bot: Bot) -> dict[str, Any] | None:
    """The bot's last self-test as SelfTestSerializer shows it; None if never tested."""
    if bot.self_tested_at is None:
        return None
    return SelfTestSerializer(
        {"passed": bot.self_test_passed, "tested_at": bot.self_tested_at, "checks": bot.self_test}
    ).data


class BotSerializer(serializers.ModelSerializer):
    # The API's own bot is made on first use of the messages endpoint, one per tenant.
    platform = serializers.ChoiceField(choices=[key for key in PLATFORMS if key != "api"])
    credentials = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=1000), required=False
    )
    callback_url = serializers.CharField(read_only=True)
    self_test = serializers.SerializerMethodField()

    class Meta:
        model = Bot
        fields = [
            "public_id", "name", "platform", "is_active", "callback_url", "system_prompt",
            "shared_group_session", "credentials", "last_error", "last_error_at", "self_test",
        ]  # fmt: skip
        read_only_fields = ["public_id", "last_error", "last_error_at"]

    @extend_schema_field(SelfTestSerializer(allow_null=True))
    def get_self_test(self, bot: Bot) -> dict[str, Any] | None:
        return self_test_of(bot)

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

    @extend_schema(
        request=None,
        responses={200: SelfTestSerializer},
        summary="Test the bot",
        description=(
            "Runs the bot's self-test, as the admin's “Test this bot” button and `manage.py "
            "check_bot` do: its credentials, the model endpoint and model, the callback URL "
            "and the platform's own settings, each passed, failed or skipped, with what to "
            "do in Chinese and English. 200 whatever the checks find; the result is kept "
            "on the bot (`self_test`). One test per bot every few seconds: 429 otherwise."
        ),
    )
    @action(detail=True, methods=["post"], url_path="test", url_name="test")
    def self_test(self, request: Request, public_id: str | None = None) -> Response:
        bot = self.get_object()
        try:
            selftest.run(bot)
        except selftest.TooSoon as exc:
            detail = "This bot was tested moments ago; try again in a few seconds."
            raise exceptions.Throttled(wait=exc.retry_after, detail=detail) from exc
        return Response(self_test_of(bot))
