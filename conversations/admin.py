"""The conversation log in the admin: read-only, tenant-scoped, cheap on large tables.

Rows are written by the reply pipeline alone; auditors and tenant admins browse, search
and export them, and only the operator may delete (a data-removal request, say).
"""

from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Model, QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from tenants.admin import TenantRelatedListFilter, TenantScopedAdmin
from tenants.audit_admin import AuditedLooks

from .export import csv_lines
from .models import Conversation, Message


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows.

    A plain COUNT(*) reads the whole log table on PostgreSQL; past the cap the list
    simply stops paging, and a filter or the date drill-down narrows it instead.
    """

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        # A sliced count is COUNT(*) over a LIMIT subquery: bounded work.
        log: QuerySet[Message] = self.object_list  # type: ignore[assignment]
        return log[: self.CAP].count()


class LogAdmin(AuditedLooks, TenantScopedAdmin):
    """Read-only for everyone (the pipeline owns these rows); superusers may delete.
    Every look (open, search, filter, export) is recorded in the audit trail."""

    show_full_result_count = False
    # Facets COUNT every filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser


@admin.register(Conversation)
class ConversationAdmin(LogAdmin):
    list_display = (
        "id",
        "started_at",
        "last_activity_at",
        "tenant",
        "bot",
        "chat_id",
        "user_id",
        "messages_link",
    )
    list_filter = (("bot", TenantRelatedListFilter),)
    search_fields = ("chat_id", "user_id")
    list_select_related = ("tenant", "bot")
    raw_id_fields = ("bot",)
    fields = (
        "tenant",
        "bot",
        "chat_id",
        "user_id",
        "started_at",
        "last_activity_at",
        "messages_link",
    )
    readonly_fields = fields

    @admin.display(description=_("messages"))
    def messages_link(self, conversation: Conversation) -> str:
        url = reverse("admin:conversations_message_changelist")
        return format_html(
            '<a href="{}?conversation__id__exact={}">{}</a>', url, conversation.pk, _("View")
        )


@admin.register(Message)
class MessageAdmin(LogAdmin):
    list_display = (
        "created_at",
        "tenant",
        "bot",
        "role",
        "sender",
        "short_content",
        "status",
        "model",
        "queue_wait_ms",
        "first_token_ms",
        "total_ms",
        "tokens",
    )
    list_filter = ("status", "role", ("bot", TenantRelatedListFilter))
    date_hierarchy = "created_at"
    search_fields = ("content", "sender", "external_id")
    list_select_related = ("tenant", "bot")
    raw_id_fields = ("conversation", "bot", "reply_to")
    actions = ("export_csv",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("tenant", "bot", "conversation", "reply_to"),
                    ("role", "sender", "external_id"),
                    ("status", "model", "attempts"),
                    ("endpoint", "fallback"),
                    "content",
                    "error",
                )
            },
        ),
        (
            _("Timings and tokens"),
            {
                "fields": (
                    ("created_at", "delivered_at"),
                    ("queue_wait_ms", "first_token_ms", "total_ms"),
                    ("prompt_tokens", "completion_tokens"),
                )
            },
        ),
    )

    @admin.display(description=_("content"))
    def short_content(self, message: Message) -> str:
        return Truncator(message.content).chars(60)

    @admin.display(description=_("tokens (prompt / completion)"))
    def tokens(self, message: Message) -> str:
        if message.prompt_tokens is None and message.completion_tokens is None:
            return "-"
        return f"{message.prompt_tokens or 0} / {message.completion_tokens or 0}"

    @admin.action(description=_("Export selected as CSV"), permissions=["view"])
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[Message]
    ) -> StreamingHttpResponse:
        self.record_export(request, queryset, "csv")
        # Streamed, so exporting a month of logs never holds them all in memory.
        response = StreamingHttpResponse(
            csv_lines(queryset.select_related("tenant", "bot")),
            content_type="text/csv; charset=utf-8",
        )
        filename = f"messages-{timezone.localtime():%Y%m%d-%H%M%S}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
