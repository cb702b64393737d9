"""Use against quota of every subject, the tenant, its bots and each person: read-only
(registered by ConversationsConfig.ready). The counts are what quotas.py keeps."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tenants.admin import TenantScopedAdmin

from . import quotas
from .models import QuotaUse


@admin.register(QuotaUse)
class QuotaUseAdmin(TenantScopedAdmin):
    list_display = ("who", "scope", "tenant", "messages_today", "tokens_this_month")
    list_filter = ("scope", ("tenant", admin.RelatedOnlyFieldListFilter))
    search_fields = ("subject", "bot__name")
    list_select_related = ("tenant", "bot")
    ordering = ("-month", "-tokens")
    fields = ("tenant", "scope", "who", "day", "messages", "month", "tokens", "estimated_tokens")
    readonly_fields = ("who",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # the counts are what the quotas hold people to

    @admin.display(description=_("who"), ordering="subject")
    def who(self, use: QuotaUse) -> str:
        if use.scope == QuotaUse.Scope.BOT and use.bot is not None:
            return use.bot.name
        if use.scope == QuotaUse.Scope.TENANT:
            return str(_("(whole tenant)"))
        return use.subject

    @admin.display(description=_("messages today"))
    def messages_today(self, use: QuotaUse) -> str:
        standing = _standing(use)
        return _figure(standing.messages, standing.messages_per_day)

    @admin.display(description=_("tokens this month"), ordering="tokens")
    def tokens_this_month(self, use: QuotaUse) -> str:
        standing = _standing(use)
        shown = _figure(standing.tokens, standing.tokens_per_month)
        if standing.estimated_tokens:
            estimated = _("%(n)s estimated") % {"n": f"{standing.estimated_tokens:,}"}
            shown = f"{shown} ({estimated})"
        return shown


def _standing(use: QuotaUse) -> quotas.Standing:
    """The row's use now, against the quotas of its subject."""
    if use.scope == QuotaUse.Scope.USER:
        subject = quotas.of_user(use.tenant, use.subject)
    elif use.scope == QuotaUse.Scope.BOT and use.bot is not None:
        subject = quotas.of_bot(use.bot)
    else:
        subject = quotas.of_tenant(use.tenant)
    return quotas.standing(use, subject, quotas.Period.at(use.tenant, timezone.now()))


def _figure(used: int, limit: int) -> str:
    """ "3 / 20", or "3" where there is no quota."""
    return f"{used:,} / {limit:,}" if limit else f"{used:,}"
