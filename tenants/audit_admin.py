"""Looks at the conversation log in the admin, recorded in the audit trail.

`AuditedLooks` goes before TenantScopedAdmin in a log admin's bases. Opening a row is a
view, of that row's tenant. A list narrowed by a search or a filter is a search, and an
export is an export with its filter and row count, both of every tenant the user may
see (the operator's: the operator's chain), since such a list spans them.
"""

from __future__ import annotations

from typing import Any

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

from . import audit
from .admin import tenant_ids
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
    """The list's search text and its filters (date drill-down included)."""
    filters = {key: str(value) for key, value in request.GET.items() if key not in NOT_FILTERS}
    return request.GET.get(SEARCH_VAR, "").strip(), filters


def audited_tenants(request: HttpRequest) -> list[Tenant | None]:
    """The chains a look across the user's tenants goes to."""
    if request.user.is_superuser:
        return [None]
    return list(Tenant.objects.filter(pk__in=tenant_ids(request)).order_by("pk"))
