"""The audit trail in the admin: the trail itself, read-only, and the hook that records
looks at the conversation log.

`AuditedLooks` goes before TenantScopedAdmin in a log admin's bases. Opening a row is a
view, of that row's tenant. A list narrowed by a search or a filter is a search, and an
export is an export with its filter and row count, both of every tenant the user may
see (the operator's: the operator's chain), since such a list spans them.

TenantsConfig.ready() imports this module, which registers AuditEventAdmin (tenants.admin
cannot import it: this module builds on tenants.admin).
"""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.options import IS_POPUP_VAR, TO_FIELD_VAR
from django.contrib.admin.views.main import (  # type: ignore[attr-defined]
    ALL_VAR,
    ERROR_FLAG,
    IS_FACETS_VAR,
    ORDER_VAR,
    PAGE_VAR,
    SEARCH_VAR,
)
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from . import audit
from .admin import TenantScopedAdmin, tenant_ids
from .audit_models import CHANGED, AuditEvent
from .models import Tenant

Action = audit.Action

# Query parameters that page, sort or frame a list without narrowing it.
NOT_FILTERS = frozenset(
    {ALL_VAR, ERROR_FLAG, IS_FACETS_VAR, ORDER_VAR, PAGE_VAR, SEARCH_VAR}
    | {IS_POPUP_VAR, TO_FIELD_VAR}
)


class AuditedLooks:
    """Records views, searches and exports of a read-only log admin.

    A subclass's export calls `record_export(request, queryset, "csv")` before it
    streams the rows.
    """

    model: type[Model]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)  # type: ignore[misc]
        query, filters = looked_for(request)
        if request.method == "GET" and response.status_code == 200 and (query or filters):
            detail = {"query": query, "filters": filters}
            for tenant in audited_tenants(request):
                audit.record(
                    Action.SEARCH, tenant=tenant, obj=self.model, request=request, detail=detail
                )
        return response

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Model | None = None,
    ) -> HttpResponse:
        if obj is not None and request.method == "GET":
            audit.record(Action.VIEW, tenant=audit.owning_tenant(obj), obj=obj, request=request)
        return super().render_change_form(  # type: ignore[misc]
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )

    def record_export(self, request: HttpRequest, queryset: QuerySet[Any], kind: str) -> None:
        """Record an export of `queryset` as `kind` ("csv", "jsonl"), counting its rows."""
        query, filters = looked_for(request)
        detail = {"query": query, "filters": filters, "format": kind, "rows": queryset.count()}
        for tenant in audited_tenants(request):
            audit.record(
                Action.EXPORT, tenant=tenant, obj=self.model, request=request, detail=detail
            )


def looked_for(request: HttpRequest) -> tuple[str, dict[str, str]]:
    """The list's search text and its filters (date drill-down included); a filter left
    empty (a form's blank field) narrows nothing and is left out."""
    filters = {
        key: str(value) for key, value in request.GET.items() if key not in NOT_FILTERS and value
    }
    return request.GET.get(SEARCH_VAR, "").strip(), filters


def audited_tenants(request: HttpRequest) -> list[Tenant | None]:
    """The chains a look across the user's tenants goes to."""
    if request.user.is_superuser:
        return [None]
    return list(Tenant.objects.filter(pk__in=tenant_ids(request)).order_by("pk"))


class ActorListFilter(admin.SimpleListFilter):
    """The actors of the events the user may see."""

    title = _("actor")
    parameter_name = "actor"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        events = model_admin.get_queryset(request).order_by("actor_label")
        labels = events.values_list("actor_label", flat=True).distinct()[:200]
        return [(label, label) for label in labels]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(actor_label=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdmin):
    """The audit trail, read-only for everyone: operators see every chain, a tenant's
    admins and auditors their tenant's."""

    tenant_field = "tenant_id"
    show_full_result_count = False
    list_display = (
        "created_at", "tenant_slug", "action", "actor_label", "object_kind", "object_label", "ip"
    )  # fmt: skip
    list_filter = ("action", ActorListFilter, ("created_at", admin.DateFieldListFilter))
    date_hierarchy = "created_at"
    search_fields = ("actor_label", "object_label", "object_id", "tenant_slug")
    fields = (
        ("created_at", "action"),
        ("tenant_slug", "tenant_id"),
        ("actor_label", "actor_user_id", "actor_key_id", "ip"),
        ("object_kind", "object_id", "object_label"),
        "changes_list",
        "detail_json",
        ("prev_hash", "hash"),
    )
    # Everything else is read-only too: nobody has the change permission.
    readonly_fields = ("object_kind", "changes_list", "detail_json")

    def tenant_id_of(self, obj: Model) -> int | None:
        return obj.tenant_id  # type: ignore[attr-defined]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    @admin.display(description=_("object type"), ordering="object_type")
    def object_kind(self, event: AuditEvent) -> str:
        try:
            return str(apps.get_model(event.object_type)._meta.verbose_name)
        except (LookupError, ValueError):
            return event.object_type

    @admin.display(description=_("changed fields"))
    def changes_list(self, event: AuditEvent) -> str:
        rows = [(name, _change_text(change)) for name, change in event.changes.items()]
        return format_html_join("", "<div><code>{}</code>: {}</div>", rows) or "-"

    @admin.display(description=_("detail"))
    def detail_json(self, event: AuditEvent) -> str:
        if not event.detail:
            return "-"
        return format_html("<pre>{}</pre>", json.dumps(event.detail, ensure_ascii=False, indent=2))


def _change_text(change: Any) -> str:
    """ "old → new", or "changed" for a secret."""
    if change == CHANGED:
        return str(_("changed"))
    if isinstance(change, dict) and change.keys() == {"old", "new"}:
        return f"{_json(change['old'])} → {_json(change['new'])}"
    return _json(change)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
