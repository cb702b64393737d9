"""Each person's use against the per-user quotas, read-only (registered by
ConversationsConfig.ready). The tenant's and each bot's own use show on their pages."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenants.admin import TenantScopedAdmin

from . import quotas
from .models import QuotaUse


@admin.register(QuotaUse)
class QuotaUseAdmin(TenantScopedAdmin):
    list_display = ("subject", "tenant", "messages_today", "tokens_this_month")
    list_filter = (("tenant", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("subject",)
    list_select_related = ("tenant",)
    ordering = ("-month", "-tokens")
    fields = ("tenant", "subject", "day", "messages", "month", "tokens", "estimated_tokens")

    def get_queryset(self, request: HttpRequest) -> QuerySet[QuotaUse]:
        return super().get_queryset(request).filter(scope=QuotaUse.Scope.USER)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # the counts are what the quotas hold people to

    @admin.display(description=_("messages today"))
    def messages_today(self, use: QuotaUse) -> str:
        standing = self._standing(use)
        return _figure(standing.messages, standing.messages_per_day)

    @admin.display(description=_("tokens this month"), ordering="tokens")
    def tokens_this_month(self, use: QuotaUse) -> str:
        standing = self._standing(use)
        shown = _figure(standing.tokens, standing.tokens_per_month)
        if standing.estimated_tokens:
            estimated = _("%(n)s estimated") % {"n": f"{standing.estimated_tokens:,}"}
            shown = f"{shown} ({estimated})"
        return shown

    @staticmethod
    def _standing(use: QuotaUse) -> quotas.Standing:
        subject = quotas.of_user(use.tenant, use.subject)
        period = quotas.Period.at(use.tenant, timezone.now())
        return quotas.standing(use, subject, period)


def _figure(used: int, limit: int) -> str:
    """ "3 / 20", or "3" where there is no quota."""
    return f"{used:,} / {limit:,}" if limit else f"{used:,}"
