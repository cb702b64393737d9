"""The conversation log in the admin: read-only, tenant-scoped, cheap on large tables.

Rows are written by the reply pipeline alone; auditors and tenant admins browse, filter,
search and export them, and only the operator may delete (a data-removal request, say).
A conversation's page is its transcript (transcript.py); the message list exports what
it shows, filtered and searched, as CSV or JSON Lines.
"""

from __future__ import annotations

from functools import partial

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from tenants.admin import TenantRelatedListFilter, TenantScopedAdmin
from tenants.audit_admin import AuditedLooks

from . import transcript
from .admin_filters import (
    ActivityPeriodFilter,
    ChatFilter,
    PeriodFilter,
    PlatformFilter,
    UserFilter,
)
from .export import FORMATS, download
from .models import Conversation, Message


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows.

    A plain COUNT(*) reads the whole log table on PostgreSQL; past the cap the list
    simply stops paging, and a filter (a period, say) narrows it instead.
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

    class Media:
        css = {"all": ["conversations/log.css"]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser


@admin.register(Conversation)
class ConversationAdmin(LogAdmin):
    """A conversation's page is its transcript, below its fields
    (templates/admin/conversations/conversation/change_form.html)."""

    list_display = (
        "id",
        "started_at",
        "last_activity_at",
        "tenant",
        "bot",
        "chat_id",
        "user_id",
        "transcript_link",
        "messages_link",
    )
    list_filter = (
        ActivityPeriodFilter,
        ("bot", TenantRelatedListFilter),
        PlatformFilter,
        UserFilter,
        ChatFilter,
    )
    search_fields = ("chat_id", "user_id")
    # Newest first, and a stable order for the autocomplete's pages too.
    ordering = ("-id",)
    list_select_related = ("tenant", "bot")
    raw_id_fields = ("bot",)
    fields = (
        ("tenant", "bot", "platform"),
        ("chat_id", "user_id"),
        ("started_at", "last_activity_at", "closed_at"),
        "messages_link",
    )
    readonly_fields = ("platform", "messages_link")

    @admin.display(description=_("platform"))
    def platform(self, conversation: Conversation) -> str:
        return conversation.bot.get_platform_display()

    @admin.display(description=_("transcript"))
    def transcript_link(self, conversation: Conversation) -> str:
        url = reverse("admin:conversations_conversation_change", args=[conversation.pk])
        return format_html('<a href="{}">{}</a>', url, _("Read"))

    @admin.display(description=_("messages"))
    def messages_link(self, conversation: Conversation) -> str:
        url = reverse("admin:conversations_message_changelist")
        return format_html(
            '<a href="{}?conversation__id__exact={}">{}</a>', url, conversation.pk, _("View")
        )


@admin.register(Message)
class MessageAdmin(LogAdmin):
    """Each message's text links to its place in its conversation's transcript."""

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
    # No date_hierarchy: its year and month links read every row's date; the period
    # filter reads an index range.
    list_filter = (
        PeriodFilter,
        "status",
        "stopped",
        "role",
        ("bot", TenantRelatedListFilter),
        PlatformFilter,
        UserFilter,
        ChatFilter,
    )
    # The text alone: the trigram index serves it (log_filters.py); the user and chat
    # have filters of their own.
    search_fields = ("content",)
    list_select_related = ("tenant", "bot")
    raw_id_fields = ("conversation", "bot", "reply_to")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("tenant", "bot", "conversation", "reply_to"),
                    ("role", "sender", "external_id"),
                    ("status", "stopped", "model", "attempts"),
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
                    ("created_at", "delivered_at", "redacted_at"),
                    ("queue_wait_ms", "first_token_ms", "total_ms"),
                    ("prompt_tokens", "completion_tokens"),
                )
            },
        ),
    )

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_export_%s"
        exports = [
            path(
                f"export/{kind}/",
                self.admin_site.admin_view(partial(self.export_view, kind=kind)),
                name=name % kind,
            )
            for kind in FORMATS
        ]
        return exports + super().get_urls()

    def export_view(self, request: HttpRequest, kind: str) -> HttpResponseBase:
        """The list as its query string filters, searches and orders it, every page of
        it, as a file ("csv" or "jsonl"); recorded in the audit trail with its count."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            rows = self.get_changelist_instance(request).queryset
        except IncorrectLookupParameters as exc:
            # Plain text: the error quotes the query string back.
            error = gettext("Bad filter: %(error)s") % {"error": exc}
            return HttpResponseBadRequest(error, content_type="text/plain; charset=utf-8")
        self.record_export(request, rows, kind)
        return download(rows, kind)

    @admin.display(description=_("content"))
    def short_content(self, message: Message) -> str:
        text = _("(redacted)") if message.redacted_at else Truncator(message.content).chars(60)
        return format_html('<a href="{}">{}</a>', transcript.url(message), text)

    @admin.display(description=_("tokens (prompt / completion)"))
    def tokens(self, message: Message) -> str:
        return transcript.tokens(message) or "-"
